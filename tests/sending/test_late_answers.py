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
