"""The intake behind the webhook route: bodies stored together, applied together, none lost."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from core.db import make_engine, transaction
from core.models import BlastRecipient, WebhookInbox
from core.webhook import inbox as inbox_module
from core.webhook import intake as intake_module
from core.webhook.inbox import WebhookRules
from core.webhook.intake import STORAGE_ERRORS, Intake
from tests.support.factories import make_blast, make_recipient

JSON = "application/json"


def _sent(engine: Engine, n: int) -> list[int]:
    with transaction(engine) as s:
        blast = make_blast(s)
        return [make_recipient(s, blast, message_id=f"3EB0I{k:04d}", status="SERVER_ACK").id
                for k in range(n)]


def _ack(k: int, status: str = "READ_ACK") -> bytes:
    return json.dumps({"event": "message-ack", "data": {"id": f"3EB0I{k:04d}", "status": status}}).encode()


def _statuses(engine: Engine) -> Counter[str]:
    with transaction(engine) as s:
        return Counter(s.scalars(select(BlastRecipient.status)))


def _counting_inserts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sizes: list[int] = []
    real = Intake._insert

    def counted(self: Intake, bodies: list) -> list[int]:
        sizes.append(len(bodies))
        return real(self, bodies)

    monkeypatch.setattr(Intake, "_insert", counted)
    return sizes


def test_bodies_that_arrive_together_are_stored_together_and_all_applied(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sent(engine, 60)
    sizes = _counting_inserts(monkeypatch)
    intake = Intake(engine, rules=WebhookRules)
    futures = [intake.store(_ack(k), JSON) for k in range(60)]
    ids = [f.result(timeout=30) for f in futures]

    assert len(set(ids)) == 60 and ids == sorted(ids)  # one entry each, in arrival order
    assert sum(sizes) == 60 and len(sizes) < 60
    assert intake.wait_settled()
    assert _statuses(engine) == {"READ_ACK": 60}
    with transaction(engine) as s:
        assert Counter(s.scalars(select(WebhookInbox.state))) == {"applied": 60}


def test_a_body_the_applier_cannot_handle_stays_new_and_costs_the_others_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sent(engine, 5)
    real = inbox_module.parse_webhook
    # Flat, not wrapped: a body the database leaves to the parser (`plain_acks.take_stored`).
    flat = json.dumps({"id": "3EB0I0002", "status": "READ_ACK"}).encode()

    def fragile(body: bytes, *args: object, **kw: object) -> object:
        if b"3EB0I0002" in body:
            raise RuntimeError("a bug in the parser")
        return real(body, *args, **kw)

    monkeypatch.setattr(inbox_module, "parse_webhook", fragile)
    intake = Intake(engine, rules=WebhookRules)
    for future in [intake.store(flat if k == 2 else _ack(k), JSON) for k in range(5)]:
        future.result(timeout=30)
    assert intake.wait_settled()

    with transaction(engine) as s:
        states = dict(s.execute(select(WebhookInbox.body, WebhookInbox.state)).all())
    assert states[flat] == "new"  # kept for replay, which counts its attempts
    assert sorted(states.values()) == ["applied"] * 4 + ["new"]
    assert _statuses(engine) == {"READ_ACK": 4, "SERVER_ACK": 1}


def test_a_database_that_cannot_be_written_fails_every_waiting_body(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing' / 'blasts.db'}")
    intake = Intake(engine, rules=WebhookRules)
    futures = [intake.store(_ack(k), JSON) for k in range(3)]
    for future in futures:
        with pytest.raises(STORAGE_ERRORS):
            future.result(timeout=30)
    assert intake.wait_settled()


def test_its_threads_start_with_work_and_end_when_idle(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_module, "IDLE_SECONDS", 0.2)
    ran: list[str] = []  # which lanes' threads ran: by the time it is looked at, one may have ended
    real_run = intake_module._Lane._run
    monkeypatch.setattr(intake_module._Lane, "_run", lambda lane: (ran.append(lane._name), real_run(lane))[1])
    _sent(engine, 1)

    intake = Intake(engine, rules=WebhookRules)
    lanes = [intake._store, intake._apply]
    assert all(lane._thread is None for lane in lanes), "none before any work"
    intake.store(_ack(0), JSON).result(timeout=30)
    assert intake.wait_settled()
    assert sorted(ran) == ["webhook-apply", "webhook-store"]
    for lane in lanes:
        thread = lane._thread
        if thread is not None:
            thread.join(timeout=5)
    assert all(lane._thread is None for lane in lanes)

    intake.store(_ack(0, "PLAYED"), JSON).result(timeout=30)  # and start again
    assert intake.wait_settled()
    assert sorted(ran) == ["webhook-apply", "webhook-apply", "webhook-store", "webhook-store"]


def test_a_post_that_stopped_waiting_before_its_turn_is_not_stored(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Intake._insert
    release = threading.Event()

    def slow(self: Intake, bodies: list) -> list[int]:
        release.wait(timeout=30)
        return real(self, bodies)

    monkeypatch.setattr(Intake, "_insert", slow)
    intake = Intake(engine, rules=WebhookRules)
    first = intake.store(_ack(1), JSON)
    time.sleep(0.2)  # the writer holds the first body, waiting on the database
    second = intake.store(_ack(2), JSON)
    assert second.cancel()  # the route's wait ran out: it answered 503
    release.set()

    assert first.result(timeout=30) > 0
    assert intake.wait_settled()
    with transaction(engine) as s:
        assert list(s.scalars(select(WebhookInbox.body))) == [_ack(1)]


# --- saving from the server's event loop (on PostgreSQL, on a connection of the loop's own) --


def _save_all(intake: Intake, bodies: list[bytes], *, content_type: str = JSON) -> list[int | BaseException]:
    async def save_all() -> list[int | BaseException]:
        return await asyncio.gather(*(intake.save(b, content_type, timeout=30) for b in bodies),
                                    return_exceptions=True)

    return asyncio.run(save_all())


def test_posts_saved_from_an_event_loop_are_stored_together_in_order_and_applied(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sent(engine, 60)
    sizes: list[int] = []
    real = intake_module._LoopWriter._insert

    async def counted(self: intake_module._LoopWriter, batch: list) -> list[int]:
        sizes.append(len(batch))
        return await real(self, batch)

    monkeypatch.setattr(intake_module._LoopWriter, "_insert", counted)
    intake = Intake(engine, rules=WebhookRules)
    ids = _save_all(intake, [_ack(k) for k in range(60)])

    assert all(isinstance(i, int) for i in ids)
    assert len(set(ids)) == 60 and ids == sorted(ids)  # one entry each, in arrival order
    if engine.dialect.name == "postgresql":
        assert sum(sizes) == 60 and len(sizes) < 60
    assert intake.wait_settled()
    assert _statuses(engine) == {"READ_ACK": 60}
    with transaction(engine) as s:
        rows = s.execute(select(WebhookInbox.id, WebhookInbox.body, WebhookInbox.state)).all()
    assert {i: (b, st) for i, b, st in rows} == {i: (_ack(k), "applied") for k, i in enumerate(ids)}


@pytest.mark.postgres_only  # SQLite stores a NUL in text as it is
def test_a_body_the_server_refuses_from_the_event_loop_costs_the_others_nothing(engine: Engine) -> None:
    _sent(engine, 3)
    intake = Intake(engine, rules=WebhookRules)

    async def save_three() -> list[int | BaseException]:
        return await asyncio.gather(
            intake.save(_ack(0), JSON, timeout=30),
            intake.save(_ack(1), "application/json\x00", timeout=30),  # no NUL in PostgreSQL text
            intake.save(_ack(2), JSON, timeout=30),
            return_exceptions=True,
        )

    first, refused, third = asyncio.run(save_three())
    assert isinstance(first, int) and isinstance(third, int)
    assert isinstance(refused, STORAGE_ERRORS)
    assert intake.wait_settled()
    assert _statuses(engine) == {"READ_ACK": 2, "SERVER_ACK": 1}


@pytest.mark.postgres_only
def test_the_event_loop_connection_is_opened_again_when_the_server_drops_it_and_closed_when_idle(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_module, "IDLE_SECONDS", 0.3)
    _sent(engine, 2)
    intake = Intake(engine, rules=WebhookRules)

    async def scenario() -> tuple[int, int, bool]:
        first = await intake.save(_ack(0), JSON, timeout=30)
        writer = intake._loop_writer()
        backend = writer._connection.info.backend_pid
        with engine.connect() as c:  # as a restart or a managed server's idle timeout would
            c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        second = await intake.save(_ack(1), JSON, timeout=30)
        assert writer._connection.info.backend_pid != backend
        await asyncio.sleep(0.8)
        return first, second, writer._connection is None

    first, second, closed_when_idle = asyncio.run(scenario())
    assert 0 < first < second
    assert closed_when_idle
    assert intake.wait_settled()
    assert _statuses(engine) == {"READ_ACK": 2}


def test_a_post_that_stopped_waiting_on_the_event_loop_before_its_turn_is_not_stored(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> tuple[int, bool]:
        release, gate = asyncio.Event(), threading.Event()  # the database answering, each way
        if engine.dialect.name == "postgresql":
            real = intake_module._LoopWriter._insert

            async def slow(self: intake_module._LoopWriter, batch: list) -> list[int]:
                await release.wait()
                return await real(self, batch)

            monkeypatch.setattr(intake_module._LoopWriter, "_insert", slow)
        else:
            real_sync = Intake._insert
            monkeypatch.setattr(Intake, "_insert", lambda self, b: (gate.wait(30), real_sync(self, b))[1])
        intake = Intake(engine, rules=WebhookRules)
        first = asyncio.ensure_future(intake.save(_ack(1), JSON, timeout=30))
        await asyncio.sleep(0.2)  # the first body is being stored, the database is slow
        timed_out = False
        try:
            await intake.save(_ack(2), JSON, timeout=0.1)  # the route's wait runs out: 503
        except TimeoutError:
            timed_out = True
        release.set()
        gate.set()
        return await first, timed_out and intake.wait_settled()

    first, timed_out = asyncio.run(scenario())
    assert first > 0 and timed_out
    with transaction(engine) as s:
        assert list(s.scalars(select(WebhookInbox.body))) == [_ack(1)]


@pytest.mark.postgres_only
def test_the_writer_of_an_event_loop_goes_with_the_loop(engine: Engine) -> None:
    import gc

    _sent(engine, 1)
    intake = Intake(engine, rules=WebhookRules)
    [inbox_id] = _save_all(intake, [_ack(0)])  # asyncio.run: the loop ends with it
    assert isinstance(inbox_id, int)
    assert intake.wait_settled()
    gc.collect()
    assert len(intake._writers) == 0, "a server's ended loop would keep its writer and connection"
