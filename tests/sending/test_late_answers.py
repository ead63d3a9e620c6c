"""An answer that comes after its claim's lease ran out: kept, and never taken for another claim's."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.models import BlastRecipient, StatusHistory
from core.recipients import resend
from core.sending import queue
from core.sending.queue import Claim
from core.statuses import Status
from core.wsapme.answers import SendResult
from tests.sending.support import AroundSends, launched_blast, now, worker_for
from tests.support.simulator import running_simulator

# What a worker waits for from the other at most; far longer than any step here takes.
WAIT = 10.0


@pytest.fixture
def sim():
    with running_simulator() as simulator:
        yield simulator


def test_a_late_answer_does_not_settle_the_claim_of_a_worker_sending_the_row_again(
    engine: Engine, sim, caplog: pytest.LogCaptureFixture
) -> None:
    """Worker A's call outlasts its lease: the row is marked unknown, a person sends it again,
    and worker B claims it and sends. A's answer is stored while B's call is out: the row stays
    B's, and ends with B's message id; A's, whose message went out too, is kept in the row's
    history and in the log."""
    launched_blast(engine, 1)
    first, second = worker_for(engine, sim), worker_for(engine, sim)
    b_may_claim, b_call_out, a_stored = threading.Event(), threading.Event(), threading.Event()

    def lease_runs_out_and_a_person_sends_it_again(to: str) -> None:
        lease_over = now() + dt.timedelta(seconds=first.settings.send_lease_seconds + 1)
        with transaction(engine) as s:
            [expired] = queue.expire_leases(s, now=lease_over)
            assert resend(s, recipient_ids=[expired]).queued == 1
        b_may_claim.set()
        assert b_call_out.wait(WAIT)

    def a_stores_its_answer_meanwhile(to: str) -> None:
        b_call_out.set()
        assert a_stored.wait(WAIT)

    first.client = AroundSends(first.client, after=lease_runs_out_and_a_person_sends_it_again)
    second.client = AroundSends(second.client, after=a_stores_its_answer_meanwhile)

    def a_sends() -> bool | float | None:
        try:
            return first.step()
        finally:
            a_stored.set()

    caplog.set_level(logging.WARNING, logger="core.sending")
    with ThreadPoolExecutor(1) as pool:
        a = pool.submit(a_sends)
        assert b_may_claim.wait(WAIT)
        assert second.step() is True
        assert a.result(WAIT) is True
    a_id, b_id = (m.message_id for m in sim.sent_messages())
    with transaction(engine) as s:
        row = s.scalars(select(BlastRecipient)).one()
        assert (row.status, row.message_id, row.claimed_by) == ("PENDING", b_id, None)
        kept = [h.event for h in s.scalars(select(StatusHistory).where(
            StatusHistory.old_status == "SENDING", StatusHistory.new_status == "SENDING"))]
    assert [(e["message_id"], e["late_answer"]) for e in kept] == [(a_id, "PENDING")]
    assert any(a_id in r.getMessage() and f"recipient {row.id}" in r.getMessage() for r in caplog.records)


LEASE = dt.timedelta(seconds=30)
B_ANSWER = {"message_id": "m-B", "gateway_status": "PENDING", "error": None}


def answered_again(engine: Engine, *, first: str) -> Claim:
    """Worker `first` claims the row and its lease runs out (unknown); a person sends it again,
    and worker B claims it, sends, and stores its answer (PENDING, message id m-B) before
    `first`'s answer comes. Returns `first`'s claim."""
    launched_blast(engine, 1)
    with transaction(engine) as s:
        a = queue.claim_next(s, device="5850", worker=first, now=now(), lease=LEASE)
        assert a is not None and queue.expire_leases(s, now=now() + 2 * LEASE) == [a.recipient_id]
        assert resend(s, recipient_ids=[a.recipient_id]).queued == 1
    with transaction(engine) as s:
        b = queue.claim_next(s, device="5850", worker="B", now=now(), lease=LEASE)
        assert b is not None and b.recipient_id == a.recipient_id
    with transaction(engine) as s:
        assert queue.settle(s, claim=b, status=Status.PENDING, at=now(), event={"answer": "b"},
                            updates=B_ANSWER)
    return a


def as_b_left_it(engine: Engine, recipient_id: int) -> tuple[object, ...]:
    with transaction(engine) as s:
        row = s.get(BlastRecipient, recipient_id)
        return (row.status, row.message_id, row.gateway_status, row.error, row.wsapme_message_data,
                row.claimed_by)


def late_answers(engine: Engine) -> list[dict]:
    with transaction(engine) as s:
        return [h.event for h in s.scalars(select(StatusHistory).order_by(StatusHistory.id))
                if h.event and "late_answer" in h.event]


@pytest.mark.parametrize(("status", "updates"), [
    (Status.PENDING, {"message_id": "m-A", "wsapme_message_data": {"id": "m-A"}, "gateway_status": "SENT",
                      "error": None}),
    (Status.UNKNOWN, {"error": "The gateway did not answer in time."}),  # no message id
])
def test_a_late_answer_after_the_send_again_was_answered_is_kept_and_fills_nothing(
    engine: Engine, caplog: pytest.LogCaptureFixture, status: Status, updates: dict
) -> None:
    """B's answer is the row's: A's must neither lend it A's details (the gateway's data, a
    problem text) nor vanish; it is kept in the history, with the id that came late, and logged."""
    a = answered_again(engine, first="A")
    settled_by_b = as_b_left_it(engine, a.recipient_id)
    assert settled_by_b == ("PENDING", "m-B", "PENDING", None, None, None)
    caplog.set_level(logging.WARNING, logger="core.sending")
    with transaction(engine) as s:
        assert not queue.settle(s, claim=a, status=status, at=now(), event={"answer": "a"}, updates=updates)
    assert as_b_left_it(engine, a.recipient_id) == settled_by_b
    late_id = updates.get("message_id")
    assert [(e["late_answer"], e["message_id"], e["answer"]) for e in late_answers(engine)] == [
        (status.value, late_id, "a")]
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"recipient {a.recipient_id}" in m and str(late_id or "none given") in m and "m-B" in m
               for m in said), said


def test_the_worker_keeps_a_late_answer_the_same_way_on_either_path(
    engine: Engine, sim, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker stores its answer straight on PostgreSQL's driver, falling back to the status
    engine when the row moved on; on SQLite, through the engine. Both keep the late answer."""
    worker = worker_for(engine, sim)
    a = answered_again(engine, first=worker.name)
    settled_by_b = as_b_left_it(engine, a.recipient_id)
    caplog.set_level(logging.WARNING, logger="core.sending")
    result = SendResult(message_id="m-A", gateway_status="PENDING", message_timestamp=None,
                        data={"id": "m-A"}, raw={"id": "m-A"})
    worker._store(lambda: worker._accepted(a, result, now()), claim=a, message_id="m-A")
    assert as_b_left_it(engine, a.recipient_id) == settled_by_b
    assert [(e["late_answer"], e["message_id"]) for e in late_answers(engine)] == [("PENDING", "m-A")]
    assert any("m-A" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


@pytest.mark.parametrize("sent_again", [False, True])
def test_a_late_answer_still_settles_a_row_no_other_send_has_answered(
    engine: Engine, sent_again: bool
) -> None:
    """Unknown since the lease ran out, or sent again but not yet claimed: the row has no message
    id, and the late answer is the only word on what became of it."""
    launched_blast(engine, 1)
    with transaction(engine) as s:
        a = queue.claim_next(s, device="5850", worker="A", now=now(), lease=LEASE)
        assert a is not None and queue.expire_leases(s, now=now() + 2 * LEASE) == [a.recipient_id]
        if sent_again:
            assert resend(s, recipient_ids=[a.recipient_id]).queued == 1
    with transaction(engine) as s:
        assert queue.settle(s, claim=a, status=Status.PENDING, at=now(), event={"answer": "a"},
                            updates={"message_id": "m-A", "error": None})
    with transaction(engine) as s:
        row = s.get(BlastRecipient, a.recipient_id)
        assert (row.status, row.message_id, row.error) == ("PENDING", "m-A", None)
    assert late_answers(engine) == []
