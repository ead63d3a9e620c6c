"""No claim takes a number on the opt-out list, whichever way its row came back to the queue."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from core.db import transaction
from core.models import Blast, BlastRecipient, OptOut, StatusHistory
from core.opt_outs import NOT_SENT_AGAIN, add_opt_outs
from core.recipients import resend
from core.sending import queue
from core.statuses import Status
from tests.sending.support import AroundSends, launched_blast, now, phone, statuses, worker_for
from tests.support.simulator import running_simulator

LEASE = dt.timedelta(seconds=30)


@pytest.fixture
def sim():
    with running_simulator() as simulator:
        yield simulator


class StopNotYetCommitted:
    """The webhook's transaction for a STOP: the number listed and the queues cleared, and not
    committed until `commit`. Until then no one else can see it."""

    def __init__(self, engine: Engine, number: str) -> None:
        self.session = Session(engine)
        self.session.begin()
        add_opt_outs(self.session, [number], source="webhook", keyword="STOP")

    def commit(self) -> None:
        self.session.commit()
        self.session.close()


def skipped_opted_out(engine: Engine, blast_id: int) -> int:
    with transaction(engine) as s:
        return s.get(Blast, blast_id).skipped_opted_out


@pytest.mark.parametrize("pacing", ["off", "on"])
def test_a_queued_number_on_the_list_is_never_claimed_and_leaves_the_queue(
    engine: Engine, sim, pacing: str
) -> None:
    """A STOP the webhook's clearing of the queues did not reach (the row was out of its reach
    then) is caught by the claim, on every claim path: the row leaves the queue, counted as
    opted out, as if the STOP had come before the launch."""
    blast_id = launched_blast(engine, 3)
    with transaction(engine) as s:
        s.add(OptOut(phone_number=phone(1), source="webhook", keyword="STOP"))
    worker = worker_for(engine, sim, send_pacing=pacing, send_min_gap_seconds=0.0, send_jitter_seconds=0.0)
    worker.run(once=True)
    assert sim.sent_count(phone(1).lstrip("+")) == 0
    assert set(statuses(engine, blast_id)) == {phone(0), phone(2)}
    assert skipped_opted_out(engine, blast_id) == 1
    with transaction(engine) as s:
        assert s.get(Blast, blast_id).state == "completed"


def test_a_claim_with_only_listed_numbers_due_takes_them_off_and_finds_nothing(engine: Engine) -> None:
    blast_id = launched_blast(engine, 2)
    with transaction(engine) as s:
        s.add_all([OptOut(phone_number=phone(0)), OptOut(phone_number=phone(1))])
    with transaction(engine) as s:
        assert queue.claim_next(s, device="5850", worker="w1", now=now(), lease=LEASE) is None
    assert statuses(engine, blast_id) == {}
    assert skipped_opted_out(engine, blast_id) == 2


@pytest.mark.postgres_only
def test_a_stop_that_lands_while_a_refused_send_is_put_back_is_never_sent(engine: Engine, sim) -> None:
    """The STOP's transaction clears the queues while the row is being sent (past its reach);
    the gateway proves it did not take the message, and the worker puts it back before the
    STOP commits, so its own look at the list cannot see it. The next claim must."""
    blast_id = launched_blast(engine, 2)
    worker = worker_for(engine, sim)
    worker._backoff = lambda attempts, exc: 0.05  # type: ignore[method-assign]
    stops: list[StopNotYetCommitted] = []

    def stop_arrives_mid_call(to: str) -> None:
        if to == phone(0).lstrip("+") and not stops:
            stops.append(StopNotYetCommitted(engine, phone(0)))
            sim.set_fault("server_error", times=1, http_status=503)

    worker.client = AroundSends(worker.client, before=stop_arrives_mid_call)
    try:
        assert worker.step() is True
        assert statuses(engine, blast_id)[phone(0)] == Status.QUEUED.value, "put back, the STOP unseen"
    finally:
        stops[0].commit()
    worker.run(once=True)
    assert sim.sent_count(phone(0).lstrip("+")) == 0
    assert set(statuses(engine, blast_id)) == {phone(1)}
    assert skipped_opted_out(engine, blast_id) == 1


@pytest.mark.postgres_only
def test_a_stop_that_lands_while_an_unknown_send_is_sent_again_is_never_sent(engine: Engine, sim) -> None:
    """"Send again" reads the list before it queues the row; a STOP committed in between finds
    the row unknown (not queued) and leaves it. The claim must still refuse it."""
    blast_id = launched_blast(engine, 1)
    with transaction(engine) as s:
        claim = queue.claim_next(s, device="5850", worker="gone", now=now(), lease=LEASE)
        assert claim is not None
        queue.expire_leases(s, now=now() + 2 * LEASE)
    stop = StopNotYetCommitted(engine, phone(0))
    try:
        with transaction(engine) as s:
            assert resend(s, recipient_ids=[claim.recipient_id]).queued == 1
    finally:
        stop.commit()
    assert statuses(engine, blast_id) == {phone(0): Status.QUEUED.value}, "sent again, the STOP unseen"
    worker_for(engine, sim).run(once=True)
    assert sim.sent_count(phone(0).lstrip("+")) == 0
    # Its first send may have reached them: the row stays, failed with the reason.
    assert statuses(engine, blast_id) == {phone(0): Status.FAILED.value}
    assert skipped_opted_out(engine, blast_id) == 0
    with transaction(engine) as s:
        assert s.get(BlastRecipient, claim.recipient_id).error == NOT_SENT_AGAIN


def sent_again_after_a_lost_send(engine: Engine, blast_id: int, number: str) -> int:
    """The row of `number`: claimed by a worker that vanished, marked unknown when its lease ran
    out, and sent again by a person. Its first message may have reached them."""
    with transaction(engine) as s:
        recipient_id = s.scalar(select(BlastRecipient.id).where(BlastRecipient.blast_id == blast_id,
                                                               BlastRecipient.phone_number == number))
        claim = queue.claim_next(s, device="5850", worker="gone", now=now(), lease=LEASE)
        assert claim is not None and claim.recipient_id == recipient_id
        assert queue.expire_leases(s, now=now() + 2 * LEASE) == [recipient_id]
        assert resend(s, recipient_ids=[recipient_id]).queued == 1
    return recipient_id


def history_of(engine: Engine, recipient_id: int) -> list[tuple[str, str, str]]:
    with transaction(engine) as s:
        rows = s.scalars(select(StatusHistory).where(StatusHistory.recipient_id == recipient_id)
                         .order_by(StatusHistory.id))
        return [(h.old_status, h.new_status, h.source) for h in rows]


def blast_counts(engine: Engine, blast_id: int) -> tuple[int, int]:
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        return blast.total_recipients, blast.skipped_opted_out


@pytest.mark.parametrize("pacing", ["off", "on"])
def test_a_send_again_whose_number_opts_out_keeps_its_row_and_history_and_fails_with_the_reason(
    engine: Engine, sim, pacing: str
) -> None:
    """A STOP the webhook's clearing did not reach lands on a row that was sent once, found
    unknown and sent again: the claim refuses it, and it leaves the queue failed, with its row
    and the history of the first send that may have reached them."""
    blast_id = launched_blast(engine, 2)
    again = sent_again_after_a_lost_send(engine, blast_id, phone(0))
    before = history_of(engine, again)
    assert [new for _, new, _ in before] == [Status.UNKNOWN.value, Status.QUEUED.value]
    with transaction(engine) as s:
        s.add(OptOut(phone_number=phone(0), source="webhook", keyword="STOP"))
    worker = worker_for(engine, sim, send_pacing=pacing, send_min_gap_seconds=0.0, send_jitter_seconds=0.0)
    worker.run(once=True)
    assert sim.sent_count(phone(0).lstrip("+")) == 0
    assert statuses(engine, blast_id) == {phone(0): Status.FAILED.value, phone(1): Status.PENDING.value}
    with transaction(engine) as s:
        assert s.get(BlastRecipient, again).error == NOT_SENT_AGAIN
        assert s.get(Blast, blast_id).state == "completed"
    assert history_of(engine, again) == [*before, (Status.QUEUED.value, Status.FAILED.value, "send")]
    assert blast_counts(engine, blast_id) == (2, 0), "still one of the blast's, not skipped"


def test_a_claim_takes_a_sent_again_row_out_of_the_queue_and_an_untouched_one_off_the_blast(
    engine: Engine
) -> None:
    """Both kinds blocking one claim: the claim ends, the untouched row is gone and counted as
    opted out, the other kept and failed."""
    blast_id = launched_blast(engine, 2)
    again = sent_again_after_a_lost_send(engine, blast_id, phone(0))
    with transaction(engine) as s:
        s.add_all([OptOut(phone_number=phone(0)), OptOut(phone_number=phone(1))])
    with transaction(engine) as s:
        assert queue.claim_next(s, device="5850", worker="w1", now=now(), lease=LEASE) is None
    assert statuses(engine, blast_id) == {phone(0): Status.FAILED.value}
    assert history_of(engine, again)[-1] == (Status.QUEUED.value, Status.FAILED.value, "send")
    assert blast_counts(engine, blast_id) == (1, 1)
