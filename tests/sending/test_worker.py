"""The send worker against the simulator over real HTTP: exactly once, every fault, control."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError

from core.db import transaction
from core.models import Blast, BlastRecipient, StatusHistory
from core.opt_outs import add_opt_outs
from core.sending import blasts, queue
from core.sending.worker import SendWorker
from core.wsapme.answers import SendResult
from tests.sending.support import (
    KL,
    READ_TIMEOUT,
    AroundSends,
    blast_state,
    launched_blast,
    now,
    phone,
    statuses,
    worker_for,
)
from tests.support.simulator import TEST_TOKEN, running_simulator

LEASE = dt.timedelta(seconds=30)
T = TypeVar("T")


@pytest.fixture
def sim():
    with running_simulator() as simulator:
        yield simulator


def test_a_500_recipient_blast_sends_everyone_exactly_once(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 500)
    # Not a test of a slow gateway: a read timeout on a loaded machine would make one send
    # unknown (rightly never resent), so this one waits as long as a send could take.
    sent = worker_for(engine, sim, read_timeout=30.0).run(once=True)
    assert sent == 500
    assert all(sim.sent_count(phone(i).lstrip("+")) == 1 for i in range(500))
    assert len(sim.sent_messages()) == 500
    with transaction(engine) as s:
        rows = s.scalars(select(BlastRecipient).where(BlastRecipient.blast_id == blast_id)
                         .order_by(BlastRecipient.id)).all()  # unordered, PostgreSQL may give any row first
        assert {r.status for r in rows} <= {"PENDING", "SERVER_ACK"}
        assert len({r.message_id for r in rows}) == 500
        first = rows[0]
        assert first.wsapme_message_data and first.message_timestamp and first.sent_at
        assert first.message_text == "Hi P0!"
        history = s.scalars(select(StatusHistory).where(StatusHistory.recipient_id == first.id)).all()
        assert [(h.old_status, h.source) for h in history] == [("SENDING", "send")]
    by_message = {m.message_id: m for m in sim.sent_messages()}
    assert by_message[first.message_id].message == "Hi P0!"
    assert blast_state(engine, blast_id)[0] == "completed"


@pytest.mark.parametrize(("fault", "options", "expected"), [
    ("invalid_number", {}, "FAILED"),
    ("slow_answer", {"delay": 5.0}, "UNKNOWN"),
    ("drop_connection", {}, "UNKNOWN"),
    ("malformed_json", {}, "UNKNOWN"),
    ("no_message_id", {}, "UNKNOWN"),
    ("server_error", {"http_status": 503}, "PENDING"),  # not handled: retried, then sent
    ("rate_limited", {"retry_after": "0"}, "PENDING"),
])
def test_each_fault_ends_in_the_right_state(engine: Engine, sim, fault, options, expected) -> None:
    blast_id = launched_blast(engine, 3)
    sim.set_fault(fault, times=1, **options)
    # The slow answer's 5 s is far past a 2 s read timeout; the other sends keep the usual one.
    worker_for(engine, sim, read_timeout=2.0 if fault == "slow_answer" else READ_TIMEOUT).run(once=True)
    result = statuses(engine, blast_id)
    assert result[phone(0)] in ({expected, "SERVER_ACK"} if expected == "PENDING" else {expected})
    assert {result[phone(1)], result[phone(2)]} <= {"PENDING", "SERVER_ACK"}
    # The gateway's own count: an unknown outcome was taken once and never sent again.
    expected_count = 0 if expected == "FAILED" else 1
    assert sim.sent_count(phone(0).lstrip("+")) == expected_count
    with transaction(engine) as s:
        row = s.scalars(select(BlastRecipient).where(BlastRecipient.phone_number == phone(0))).one()
        if expected in ("FAILED", "UNKNOWN"):
            assert row.error, "the reason must be kept for the marketer"
    assert blast_state(engine, blast_id)[0] == "completed"


def test_a_gateway_failing_mid_send_leaves_one_unknown_and_pauses(engine: Engine, sim) -> None:
    """HTTP 500: the gateway failed while it handled the message, which it may have passed
    on. That one is unknown, never sent again by itself; the rest wait for a person to resume."""
    blast_id = launched_blast(engine, 3)
    sim.set_fault("server_error", times=1)
    worker_for(engine, sim).run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and "HTTP 500" in reason
    result = statuses(engine, blast_id)
    assert (result[phone(0)], result[phone(1)], result[phone(2)]) == ("UNKNOWN", "QUEUED", "QUEUED")
    with transaction(engine) as s:
        blasts.resume(s, blast_id=blast_id)
    worker_for(engine, sim).run(once=True)
    result = statuses(engine, blast_id)
    assert result[phone(0)] == "UNKNOWN" and {result[phone(1)], result[phone(2)]} <= {"PENDING", "SERVER_ACK"}
    assert sim.sent_count(phone(0).lstrip("+")) == 0, "not sent again"


@pytest.mark.parametrize("fault", ["bad_token", "device_offline"])
def test_auth_error_or_offline_device_pauses_the_blast(engine: Engine, sim, fault: str) -> None:
    blast_id = launched_blast(engine, 5)
    sim.set_fault(fault, times=None)
    worker_for(engine, sim).run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and reason
    assert set(statuses(engine, blast_id).values()) == {"QUEUED"}, "nothing failed, nothing lost"
    sim.clear_faults()
    with transaction(engine) as s:
        blasts.resume(s, blast_id=blast_id)
    worker_for(engine, sim).run(once=True)
    assert set(statuses(engine, blast_id).values()) <= {"PENDING", "SERVER_ACK"}
    with transaction(engine) as s:
        assert {r.attempts for r in s.scalars(select(BlastRecipient))} == {1}


@pytest.mark.parametrize("held_by", ["gap", "cap"])
def test_a_device_waiting_out_its_gap_or_its_cap_keeps_no_other_device_waiting(
    engine: Engine, sim, held_by: str
) -> None:
    """The worker had kept to the devices it knew while any of them waited: a blast launched
    on another device sat "sending" for the first one's hour-long gap, or, behind a finished
    blast at its day's cap, until the next day."""
    first = launched_blast(engine, 3 if held_by == "gap" else 1)
    pacing = ({"send_min_gap_seconds": 3600.0, "send_daily_cap": 0} if held_by == "gap"
              else {"send_min_gap_seconds": 0.0, "send_daily_cap": 1})
    worker = worker_for(engine, sim, send_pacing="on", send_jitter_seconds=0.0, send_pause_every=0,
                        send_quiet_hours="off", **pacing)
    assert worker.step() is True
    # Out of messages at its cap, the device has nothing to wait for.
    assert worker.step() not in (True, None) if held_by == "gap" else worker.step() is None
    other = launched_blast(engine, 2, device="7777")
    assert worker.step() is True
    assert [m.device for m in sim.sent_messages()] == ["5850", "7777"]
    assert statuses(engine, other)[phone(0)] in ("PENDING", "SERVER_ACK")
    assert statuses(engine, first)[phone(0)] in ("PENDING", "SERVER_ACK")


def test_a_blast_is_sent_from_its_own_device_the_one_its_pacing_counts(engine: Engine, sim) -> None:
    """A follow-up keeps its parent's device, and `core send --device` picks one: the message
    must leave from it, not from whichever device the settings name today."""
    blast_id = launched_blast(engine, 2, device="7777")
    worker_for(engine, sim, wsapme_device="5850", wsapme_token=TEST_TOKEN).run(once=True)
    assert [m.device for m in sim.sent_messages()] == ["7777", "7777"]
    assert blast_state(engine, blast_id)[0] == "completed"


def test_a_practice_blast_never_goes_to_whatsapp_nor_a_whatsapp_one_to_the_sandbox(
    engine: Engine, sim
) -> None:
    """A token set after practice: the blasts made in practice stay queued, whole, and the
    sandbox leaves alone what was made for WhatsApp."""
    practice = launched_blast(engine, 2, device="sandbox")
    demo = launched_blast(engine, 1, device="demo")  # a follow-up drafted from the demo data
    real = launched_blast(engine, 2, device="7777")
    worker_for(engine, sim, wsapme_device="7777", wsapme_token=TEST_TOKEN).run(once=True)
    assert [m.device for m in sim.sent_messages()] == ["7777", "7777"]
    assert set(statuses(engine, practice).values()) == set(statuses(engine, demo).values()) == {"QUEUED"}
    assert blast_state(engine, practice) == ("sending", None), "left as it was"
    later = launched_blast(engine, 2, device="7777")
    # The token taken out to practise, WSAPME_DEVICE left as it was: still not the sandbox's.
    worker_for(engine, sim, wsapme_device="7777", wsapme_token=None).run(once=True)
    assert sorted(m.device for m in sim.sent_messages()[2:]) == ["demo", "sandbox", "sandbox"]
    assert set(statuses(engine, later).values()) == {"QUEUED"}
    assert blast_state(engine, real)[0] == blast_state(engine, practice)[0] == "completed"


def test_a_blast_is_dated_by_its_first_message_not_by_its_launch(engine: Engine, sim) -> None:
    """Held back by quiet hours, a cap or a pause, a blast goes out later than it was launched:
    the Overview's days go by when it went out."""
    blast_id = launched_blast(engine, 3)
    launched = dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC)  # 23:30 in Kuala Lumpur
    with transaction(engine) as s:
        s.get(Blast, blast_id).blast_date = launched
    worker_for(engine, sim).run(once=True)
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        first = s.scalar(select(func.min(BlastRecipient.sent_at)).where(BlastRecipient.blast_id == blast_id))
        assert blast.blast_date == first and first > launched
        assert blast.blast_time == first.astimezone(KL).time().replace(microsecond=0)


def test_a_wrong_gateway_address_pauses_the_blast_and_loses_no_one(engine: Engine, sim) -> None:
    """Caught before the request leaves: the worker carries on, nothing is marked unknown."""
    from core.sending.worker import SendWorker
    from tests.sending.support import settings_for
    from tests.support.simulator import client_for

    blast_id = launched_blast(engine, 3)
    client = client_for(sim)
    client.api_url = "ftp://" + sim.url.removeprefix("http://")  # a setting typed wrong
    worker = SendWorker(engine=engine, client=client, settings=settings_for())
    worker.run(once=True)  # returns: the worker is still alive
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and "https://" in reason
    assert set(statuses(engine, blast_id).values()) == {"QUEUED"}
    with transaction(engine) as s:
        assert {r.attempts for r in s.scalars(select(BlastRecipient))} == {0}
    assert sim.sent_messages() == []


def test_a_token_with_a_line_break_pauses_the_blast_and_marks_no_one_unknown(engine: Engine, sim) -> None:
    """The token header is refused before the request leaves: nothing went out, so nothing is unknown."""
    from core.sending.worker import SendWorker
    from tests.sending.support import settings_for
    from tests.support.simulator import client_for

    blast_id = launched_blast(engine, 3)
    client = client_for(sim, token=TEST_TOKEN + "\n")  # a client built without the settings' trim
    SendWorker(engine=engine, client=client, settings=settings_for()).run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and "WSAPME_TOKEN" in reason and TEST_TOKEN not in reason
    assert set(statuses(engine, blast_id).values()) == {"QUEUED"}
    with transaction(engine) as s:
        assert {r.attempts for r in s.scalars(select(BlastRecipient))} == {0}
    assert sim.sent_messages() == []


def test_pause_resume_cancel_take_effect_before_the_next_message(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 40)
    worker = worker_for(engine, sim, send_pacing="on", send_min_gap_seconds=0.15,
                        send_jitter_seconds=0.0, send_pause_every=0, send_daily_cap=0)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _wait_until(lambda: len(sim.sent_messages()) >= 3)
        with transaction(engine) as s:
            blasts.pause(s, blast_id=blast_id)
        paused_at = len(sim.sent_messages())
        time.sleep(0.8)
        assert len(sim.sent_messages()) <= paused_at + 1  # at most the one already in flight
        settled = len(sim.sent_messages())
        time.sleep(0.5)
        assert len(sim.sent_messages()) == settled
        with transaction(engine) as s:
            blasts.resume(s, blast_id=blast_id)
        _wait_until(lambda: len(sim.sent_messages()) >= settled + 3)
        with transaction(engine) as s:
            blasts.cancel(s, blast_id=blast_id)
        cancelled_at = len(sim.sent_messages())
        time.sleep(0.8)
        assert len(sim.sent_messages()) <= cancelled_at + 1
    finally:
        stop.set()
        thread.join(10)
    result = statuses(engine, blast_id)
    assert blast_state(engine, blast_id)[0] == "cancelled"
    assert list(result.values()).count("QUEUED") == 40 - len(sim.sent_messages())
    assert all(sim.sent_count(p.lstrip("+")) <= 1 for p in result)


def _while_its_message_is_out(engine: Engine, sim, act: Callable[..., None], blast_id: int) -> None:  # type: ignore[no-untyped-def]
    """A worker's run in which a person acts on the blast (pause, cancel) just before each send."""
    def acted(to: str) -> None:
        with transaction(engine) as s:
            act(s, blast_id=blast_id)

    worker = worker_for(engine, sim)
    worker.client = AroundSends(worker.client, before=acted)
    worker.run(once=True)


def test_a_pause_by_hand_while_the_device_is_found_offline_says_the_device_is_offline(
    engine: Engine, sim
) -> None:
    """The person's pause landed first and kept "Paused by you.": resumed, the blast spent one
    more try before saying why nothing went."""
    blast_id = launched_blast(engine, 3)
    sim.set_fault("device_offline", times=None)
    _while_its_message_is_out(engine, sim, blasts.pause, blast_id)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and reason != blasts.PAUSED_BY_YOU and "device is offline" in reason
    with transaction(engine) as s:
        assert s.get(Blast, blast_id).paused_by == "gateway"
    assert set(statuses(engine, blast_id).values()) == {"QUEUED"}


def test_a_message_put_back_after_its_blast_was_cancelled_promises_no_next_try(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 2)
    sim.set_fault("server_error", times=1, http_status=503)
    _while_its_message_is_out(engine, sim, blasts.cancel, blast_id)
    assert blast_state(engine, blast_id)[0] == "cancelled"
    with transaction(engine) as s:
        found = s.execute(select(BlastRecipient.status, BlastRecipient.error, BlastRecipient.next_attempt_at)
                          .where(BlastRecipient.blast_id == blast_id)).all()
    assert [tuple(row) for row in found] == [("QUEUED", None, None)] * 2
    assert sim.sent_messages() == []


def test_pacing_spaces_messages_by_the_minimum_gap(engine: Engine, sim) -> None:
    launched_blast(engine, 6)
    worker_for(engine, sim, send_pacing="on", send_min_gap_seconds=0.2, send_jitter_seconds=0.1,
               send_pause_every=0, send_daily_cap=0).run(once=True)
    times = sorted(m.sent_at for m in sim.sent_messages())
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # The gap runs from the claim and again from the gateway's answer, so however slow a
    # call (or its arrival at the gateway), the next one reaches the gateway a gap later.
    assert len(times) == 6
    assert min(gaps) >= 0.2 * 0.95


def test_two_workers_never_send_from_one_device_while_a_call_is_out(engine: Engine, sim) -> None:
    """The gateway takes 0.6 s to answer and the gap is 0.3 s: a second worker must wait for
    the first one's answer, then the gap, not only the gap from the first one's claim."""
    launched_blast(engine, 4)
    sim.set_fault("slow_answer", times=None, delay=0.6)
    workers = [worker_for(engine, sim, send_pacing="on", send_min_gap_seconds=0.3, send_jitter_seconds=0.0,
                          send_pause_every=0, send_daily_cap=0) for _ in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    times = sorted(m.sent_at for m in sim.sent_messages())
    assert len(times) == 4
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= (0.6 + 0.3) * 0.95


def test_a_daily_cap_stops_the_day_without_losing_anyone(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 5)
    worker_for(engine, sim, send_pacing="on", send_min_gap_seconds=0.0, send_jitter_seconds=0.0,
               send_pause_every=0, send_daily_cap=3).run(once=True)
    result = statuses(engine, blast_id)
    assert list(result.values()).count("QUEUED") == 2
    assert blast_state(engine, blast_id)[0] == "sending"


def _wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _one_claimed(engine: Engine, sim) -> tuple[SendWorker, queue.Claim]:  # type: ignore[no-untyped-def]
    """A worker and the claim it holds on a one-recipient blast, its answer not stored yet."""
    launched_blast(engine, 1)
    worker = worker_for(engine, sim)
    with transaction(engine) as s:
        claim = queue.claim_next(s, device="5850", worker=worker.name, now=now(), lease=LEASE)
    assert claim is not None
    return worker, claim


def test_an_answer_that_clashes_with_a_stored_one_is_not_retried_as_an_outage(
    engine: Engine, sim, caplog: pytest.LogCaptureFixture
) -> None:
    """An IntegrityError (say, a message id already stored) will not go away by waiting: it had
    stalled the worker for 17 s of retries. The row is left to its lease, then unknown; the log
    says which recipient and message, to be matched by hand."""
    worker, claim = _one_claimed(engine, sim)
    calls = []

    def clashing_write() -> None:
        calls.append("tried")
        raise IntegrityError("UPDATE blast_recipients …", {}, Exception("duplicate message_id"))

    assert worker._store(clashing_write, claim=claim, message_id="3EB0CLASH") is None
    assert calls == ["tried"]
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"recipient {claim.recipient_id}" in m and "3EB0CLASH" in m for m in said), said


def asked_once(write: Callable[[], T]) -> Callable[[], T]:
    """`write`, failing the test if it is asked a second time: asked again means waited for."""
    calls: list[int] = []

    def once() -> T:
        if calls:
            pytest.fail("the write was tried again, as through an outage")
        calls.append(1)
        return write()

    return once


@pytest.mark.parametrize("error", [DataError, ProgrammingError])
def test_an_answer_the_database_refuses_is_not_retried_as_an_outage(
    engine: Engine, sim, caplog: pytest.LogCaptureFixture, error: type[DBAPIError]
) -> None:
    """A value the column cannot hold, or a statement the database cannot run, is refused again
    however long one waits: it had stalled the worker until shortly before the lease ended,
    then been logged as an outage. Given up at once, left to its lease, logged with its ids."""
    worker, claim = _one_claimed(engine, sim)

    def refused() -> None:
        raise error("UPDATE blast_recipients …", {}, Exception("value too long for type character varying"))

    assert worker._store(asked_once(refused), claim=claim, message_id="3EB0LONG") is None
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"recipient {claim.recipient_id}" in m and "3EB0LONG" in m and "refused" in m
               and error.__name__ in m for m in said), said
    assert not any("unavailable" in m for m in said)


def test_an_answer_is_still_stored_after_the_connection_was_lost(engine: Engine, sim) -> None:
    """A lost connection is an outage: asked again, the answer is stored."""
    worker, claim = _one_claimed(engine, sim)
    calls = []

    def lost_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise DBAPIError("UPDATE blast_recipients …", {}, Exception("server closed the connection"),
                             connection_invalidated=True)
        return "stored"

    assert worker._store(lost_once, claim=claim, message_id="3EB0BACK") == "stored"
    assert len(calls) == 2


@pytest.mark.postgres_only
def test_a_message_id_longer_than_its_column_is_given_up_at_once(
    engine: Engine, sim, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway's id does not fit the column: PostgreSQL refuses the answer on the worker's
    own path (straight on the driver). The row is left to its lease, for a person to match by
    the logged id; the log holds the ids, not the message."""
    worker, claim = _one_claimed(engine, sim)
    too_long = "3EB0" + "9" * 300
    result = SendResult(message_id=too_long, gateway_status="PENDING", message_timestamp=None,
                        data={"id": too_long}, raw={"id": too_long})
    stored = asked_once(functools.partial(worker._accepted, claim, result, now()))
    assert worker._store(stored, claim=claim, message_id=too_long) is None
    with transaction(engine) as s:
        assert s.get(BlastRecipient, claim.recipient_id).status == "SENDING"
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f"recipient {claim.recipient_id}" in m and too_long in m and "DataError" in m
               for m in said), said
    assert not any(claim.message_text in m or TEST_TOKEN in m for m in said)


@pytest.mark.parametrize(("fault", "options"), [
    ("server_error", {"http_status": 503}),  # tried again later
    ("device_offline", {}),  # the blast pauses; its message goes back to the queue
])
def test_a_number_that_opts_out_while_its_message_is_out_is_not_tried_again(
    engine: Engine, sim, fault: str, options: dict
) -> None:
    """STOP arrives while the gateway holds the message (too late to stop it then); the gateway
    then proves it did not take it. Putting it back in the queue would send it after the STOP."""
    blast_id = launched_blast(engine, 2)
    worker = worker_for(engine, sim)

    def stop_arrives_mid_call(to: str) -> None:
        if to == phone(0).lstrip("+") and not sim.sent_count(to):
            with transaction(engine) as s:
                add_opt_outs(s, [phone(0)], source="webhook", keyword="STOP")
            sim.set_fault(fault, times=1, **options)

    worker.client = AroundSends(worker.client, before=stop_arrives_mid_call)
    worker._backoff = lambda attempts, exc: 0.05
    worker.run(once=True)
    if fault == "device_offline":
        with transaction(engine) as s:
            blasts.resume(s, blast_id=blast_id)
        worker.run(once=True)
    assert sim.sent_count(phone(0).lstrip("+")) == 0
    assert set(statuses(engine, blast_id)) == {phone(1)}, "taken off the queue, as at launch"
    with transaction(engine) as s:
        assert s.get(Blast, blast_id).skipped_opted_out == 1


def test_a_worker_is_listed_while_it_runs_and_not_once_it_stops(engine: Engine, sim) -> None:
    """The health page lists workers by their heartbeat: one that stopped (a restart) had stayed
    listed, with what it had sent, for half a minute."""
    from core import app_state
    from core.sending.worker import HEARTBEAT_PREFIX

    def listed() -> bool:
        with transaction(engine) as s:
            return app_state.get(s, key=HEARTBEAT_PREFIX + worker.name) is not None

    launched_blast(engine, 2)
    worker = worker_for(engine, sim)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,))
    running.start()
    try:
        _wait_until(listed)
    finally:
        stop.set()
        running.join(timeout=30)
    assert not running.is_alive() and not listed()
