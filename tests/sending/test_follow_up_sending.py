"""A follow-up asks its choice again for each person just before their message goes: it takes
hours at a person's pace, and whoever replied or bought meanwhile must not get "Still keen?"."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.followups import create_follow_up, follow_up_audience
from core.models import Blast, BlastRecipient
from core.recipients import StageSelector
from core.sending import blasts
from core.statuses import Stage
from tests.sending.support import KL, worker_for
from tests.support.factories import make_blast, make_recipient
from tests.support.simulator import running_simulator

READ_NO_REPLY = StageSelector(stage=Stage.READ, not_stage=Stage.REPLIED)
# Pacing off (the direct statements on PostgreSQL), and on with a short gap (claims in the
# pacing transaction).
PACES = {
    "unpaced": {},
    "paced": {"send_pacing": "on", "send_min_gap_seconds": 0.01, "send_jitter_seconds": 0.0,
              "send_pause_every": 0, "send_daily_cap": 0},
}


@pytest.fixture
def sim():
    with running_simulator() as simulator:
        yield simulator


def _parent(engine: Engine, n: int) -> tuple[int, list[str]]:
    """A finished blast whose `n` people have read it, two days ago, and not replied."""
    read_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    with transaction(engine) as s:
        parent = make_blast(s, state="completed", device="5850", name="Raya")
        people = [make_recipient(s, parent, status="READ_ACK", sent_at=read_at, delivered_at=read_at,
                                 read_timestamp=read_at, message_id=f"3EB0{i:04d}") for i in range(n)]
        return parent.id, [p.phone_number for p in people]


def _move(engine: Engine, parent_id: int, phone: str, status: str) -> None:
    with transaction(engine) as s:
        row = s.scalars(select(BlastRecipient).where(
            BlastRecipient.blast_id == parent_id, BlastRecipient.phone_number == phone)).one()
        row.status = status


@pytest.mark.parametrize("pace", list(PACES))
def test_who_replied_or_bought_after_a_follow_up_started_is_not_messaged(
    engine: Engine, sim, pace: str
) -> None:
    parent_id, (replied, bought, still) = _parent(engine, 3)
    with transaction(engine) as s:
        child = create_follow_up(s, parent_id=parent_id, message_template="Still keen?",
                                 selector=READ_NO_REPLY).id
        blasts.launch(s, blast_id=child, device="5850", timezone=KL)
    # Under way: the first messages are out, the rest wait for the pace.
    _move(engine, parent_id, replied, "REPLIED")
    _move(engine, parent_id, bought, "CLOSED")
    assert worker_for(engine, sim, **PACES[pace]).run(once=True) == 1
    assert [m.to for m in sim.sent_messages()] == [still.lstrip("+")]
    with transaction(engine) as s:
        blast = s.get(Blast, child)
        assert (blast.skipped_moved_on, blast.total_recipients, blast.state) == (2, 1, "completed")
        kept = s.scalars(select(BlastRecipient.phone_number).where(BlastRecipient.blast_id == child))
        assert list(kept) == [still]


def test_a_blast_from_a_file_is_sent_to_everyone_whatever_they_did_in_another(engine: Engine, sim) -> None:
    parent_id, phones = _parent(engine, 2)
    _move(engine, parent_id, phones[0], "REPLIED")
    with transaction(engine) as s:
        from_file = make_blast(s, device="5850")
        for p in phones:
            make_recipient(s, from_file, phone_number=p)
        blasts.launch(s, blast_id=from_file.id, device="5850", timezone=KL)
    assert worker_for(engine, sim).run(once=True) == 2


def test_people_a_follow_up_failed_to_reach_can_be_followed_up_again(engine: Engine) -> None:
    """Follow-up 1 went out while the device was offline and every message failed: those people
    never heard from it, so a second follow-up takes them."""
    parent_id, phones = _parent(engine, 3)
    with transaction(engine) as s:
        first = make_blast(s, state="completed", device="5850", parent_blast_id=parent_id)
        for p in phones[:2]:
            make_recipient(s, first, phone_number=p, status="FAILED")
        make_recipient(s, first, phone_number=phones[2], status="DELIVERY_ACK")
    with transaction(engine) as s:
        audience = follow_up_audience(s, parent_id=parent_id, selector=READ_NO_REPLY)
        assert (audience.matching, audience.followed_up, audience.reached) == (3, 1, 2)
        second = create_follow_up(s, parent_id=parent_id, message_template="Still keen?",
                                  selector=READ_NO_REPLY)
        taken = s.scalars(select(BlastRecipient.phone_number).where(BlastRecipient.blast_id == second.id))
        assert sorted(taken) == sorted(phones[:2])


def test_a_database_error_while_asking_again_leaves_the_person_queued_not_unknown(
    engine: Engine, sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim is made, then the database blips while the choice is asked again: nothing was
    sent, so the person goes back in the queue (had stayed 'sending', to become unknown)."""
    from sqlalchemy.exc import OperationalError

    from core import followups

    parent_id, phones = _parent(engine, 2)
    with transaction(engine) as s:
        child = create_follow_up(s, parent_id=parent_id, message_template="Still keen?",
                                 selector=READ_NO_REPLY).id
        blasts.launch(s, blast_id=child, device="5850", timezone=KL)
    asked = followups.still_wanted
    blips = iter([True])

    def blip_once(*args: object, **kwargs: object) -> bool:
        if next(blips, False):
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return asked(*args, **kwargs)

    monkeypatch.setattr(followups, "still_wanted", blip_once)
    assert worker_for(engine, sim).run(once=True) == 2
    with transaction(engine) as s:
        kept = list(s.scalars(select(BlastRecipient.status).where(BlastRecipient.blast_id == child)))
    assert len(kept) == 2 and set(kept) <= {"PENDING", "SERVER_ACK"}, kept
    assert sorted(m.to for m in sim.sent_messages()) == sorted(p.lstrip("+") for p in phones)


def test_a_follow_up_message_sent_before_and_sent_again_is_kept_when_they_move_on(
    engine: Engine, sim
) -> None:
    """Its first send timed out (unknown), a person sent it again, then they replied to the
    first blast: not sent again, and the row stays with its history, unknown again with the
    reason. The first message may have reached them; taken off the blast, it had left no trace."""
    from core.models import StatusHistory
    from core.recipients import resend
    from core.sending.queue import MOVED_ON
    from core.status_engine import apply_status
    from core.statuses import Status

    parent_id, (replied, still) = _parent(engine, 2)
    with transaction(engine) as s:
        child = create_follow_up(s, parent_id=parent_id, message_template="Still keen?",
                                 selector=READ_NO_REPLY).id
        blasts.launch(s, blast_id=child, device="5850", timezone=KL)
        row = s.scalars(select(BlastRecipient).where(BlastRecipient.blast_id == child,
                                                     BlastRecipient.phone_number == replied)).one()
        row_id = row.id
        apply_status(s, recipient_id=row_id, status=Status.UNKNOWN, source="send",
                     updates={"error": "No answer from the gateway in time."})
        assert resend(s, recipient_ids=[row_id]).queued == 1
    _move(engine, parent_id, replied, "REPLIED")
    worker_for(engine, sim).run(once=True)
    assert [m.to for m in sim.sent_messages()] == [still.lstrip("+")]
    with transaction(engine) as s:
        kept = s.get(BlastRecipient, row_id)
        assert (kept.status, kept.error) == ("UNKNOWN", MOVED_ON)
        history = s.scalars(select(StatusHistory.new_status).where(StatusHistory.recipient_id == row_id)
                            .order_by(StatusHistory.id)).all()
        assert history[0] == "UNKNOWN" and history[-1] == "UNKNOWN" and len(history) >= 3
        assert s.get(Blast, child).skipped_moved_on == 0, "not counted as taken off: it is still there"
