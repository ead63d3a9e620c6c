"""Blast states: every action a compare-and-set, with a plain refusal when it does not fit."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from core.config import Settings, get_settings
from core.db import transaction
from core.errors import BadInput, StateConflict
from core.models import Blast, BlastRecipient, OptOut, utcnow
from core.sending import blasts
from tests.support.factories import make_blast, make_recipient

KL = ZoneInfo("Asia/Kuala_Lumpur")


def _draft(engine: Engine, n: int = 3, **fields) -> int:
    with transaction(engine) as s:
        blast = make_blast(s, **fields)
        for _ in range(n):
            make_recipient(s, blast)
        return blast.id


def _state(engine: Engine, blast_id: int) -> tuple[str, str | None]:
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        return blast.state, blast.state_reason


def test_launch_now_starts_sending_and_stamps_the_blast(engine: Engine) -> None:
    blast_id = _draft(engine)
    with transaction(engine) as s:
        blast = blasts.launch(s, blast_id=blast_id, device="5850", timezone=KL)
        assert (blast.state, blast.device) == ("sending", "5850")
        assert blast.started_at is not None and blast.blast_time is not None


def test_launch_later_schedules(engine: Engine) -> None:
    blast_id = _draft(engine)
    later = utcnow() + dt.timedelta(hours=2)
    with transaction(engine) as s:
        blast = blasts.launch(s, blast_id=blast_id, at=later, device="d", timezone=KL)
        assert blast.state == "scheduled" and blast.scheduled_at == later
        assert blast.started_at is None


def test_launch_refuses_an_empty_message_or_no_recipients(engine: Engine) -> None:
    no_text = _draft(engine, message_template="  ")
    nobody = _draft(engine, n=0)
    with pytest.raises(BadInput, match="Write the message"), transaction(engine) as s:
        blasts.launch(s, blast_id=no_text, device="d", timezone=KL)
    with pytest.raises(BadInput, match="no one left"), transaction(engine) as s:
        blasts.launch(s, blast_id=nobody, device="d", timezone=KL)


def test_opted_out_numbers_are_taken_off_and_counted_at_launch(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s)
        keep = make_recipient(s, blast)
        gone = make_recipient(s, blast)
        s.add(OptOut(phone_number=gone.phone_number, source="webhook", keyword="STOP"))
        blast_id, keep_id = blast.id, keep.id
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        assert (blast.skipped_opted_out, blast.total_recipients) == (1, 1)
        assert [r.id for r in s.query(BlastRecipient).filter_by(blast_id=blast_id)] == [keep_id]


def test_pause_resume_cancel_follow_the_state_machine(engine: Engine) -> None:
    blast_id = _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)
    with transaction(engine) as s:
        blasts.pause(s, blast_id=blast_id)
    assert _state(engine, blast_id) == ("paused", "Paused by you.")
    with pytest.raises(StateConflict, match="it is paused"), transaction(engine) as s:
        blasts.pause(s, blast_id=blast_id)
    with transaction(engine) as s:
        blasts.resume(s, blast_id=blast_id)
    assert _state(engine, blast_id)[0] == "sending"
    with transaction(engine) as s:
        blasts.cancel(s, blast_id=blast_id)
    assert _state(engine, blast_id)[0] == "cancelled"
    for action in (blasts.resume, blasts.cancel, blasts.pause):
        with pytest.raises(StateConflict, match="cancelled"), transaction(engine) as s:
            action(s, blast_id=blast_id)
    with pytest.raises(StateConflict), transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)


def test_due_scheduled_blasts_start_and_long_overdue_ones_wait_for_a_person(engine: Engine) -> None:
    now = utcnow()
    due = _draft(engine)
    overdue = _draft(engine)
    future = _draft(engine)
    with transaction(engine) as s:
        # Minutes ahead, not seconds: a time already past as `launch` runs sends at once.
        for blast_id, when in ((due, now + dt.timedelta(minutes=1)),
                               (overdue, now + dt.timedelta(minutes=2)),
                               (future, now + dt.timedelta(hours=5))):
            blasts.launch(s, blast_id=blast_id, at=when, device="d", timezone=KL)
    with transaction(engine) as s:
        assert blasts.start_due_scheduled(s, now=now + dt.timedelta(minutes=3),
                                          grace=dt.timedelta(hours=1), zone=KL) == [due, overdue]
    assert _state(engine, future)[0] == "scheduled"

    late = _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=late, at=now + dt.timedelta(minutes=1), device="d", timezone=KL)
    with transaction(engine) as s:
        assert blasts.start_due_scheduled(s, now=now + dt.timedelta(hours=3),
                                          grace=dt.timedelta(hours=1), zone=KL) == []
    state, reason = _state(engine, late)
    due_here = (now + dt.timedelta(minutes=1)).astimezone(KL)
    assert state == "paused" and "Resume it to send now" in reason
    assert f"scheduled for {due_here:%d %b %H:%M} but" in reason, "the team's time, as everywhere else"


def test_a_blast_set_inside_the_quiet_hours_is_late_only_from_when_it_could_first_go(engine: Engine) -> None:
    """Set for midnight, quiet hours 21:00-09:00, a dashboard started at seven: it had been
    paused as missed, though not one message could have gone before nine."""
    from core.config import Settings

    settings = Settings(_env_file=None, send_pacing="on", send_quiet_hours="21:00-09:00",
                        app_timezone="Asia/Kuala_Lumpur")
    midnight = dt.datetime(2026, 12, 1, tzinfo=KL)
    at_seven, half_ten = midnight.replace(hour=7), midnight.replace(hour=10, minute=30)
    started, missed = _draft(engine), _draft(engine)
    with transaction(engine) as s:
        for blast_id in (started, missed):
            blasts.launch(s, blast_id=blast_id, at=midnight - dt.timedelta(days=1), device="d", timezone=KL)
            s.get(Blast, blast_id).scheduled_at = midnight
    with transaction(engine) as s:
        assert blasts.start_due_scheduled(s, now=at_seven, grace=dt.timedelta(hours=1), zone=KL,
                                          settings=settings, sent_here=Blast.id == started) == [started]
        assert blasts.start_due_scheduled(s, now=half_ten, grace=dt.timedelta(hours=1), zone=KL,
                                          settings=settings) == []
    state, reason = _state(engine, missed)
    assert state == "paused"
    assert ("It was scheduled for 01 Dec 00:00 (its first message could go at 01 Dec 09:00) but "
            "nothing was running then.") in reason


def _paused_by(engine: Engine, blast_id: int) -> str | None:
    with transaction(engine) as s:
        return s.get(Blast, blast_id).paused_by


def test_a_pause_says_who_made_it_and_leaving_the_pause_forgets_it(engine: Engine) -> None:
    """The health page lists the pauses the gateway made, whatever their words: who paused is a
    value of its own, not read back from the reason."""
    now = utcnow()
    by_hand, missed = _draft(engine), _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=by_hand, device="d", timezone=KL)
        blasts.launch(s, blast_id=missed, at=now + dt.timedelta(minutes=1), device="d", timezone=KL)
    with transaction(engine) as s:
        blasts.pause(s, blast_id=by_hand)
        blasts.start_due_scheduled(s, now=now + dt.timedelta(hours=3), grace=dt.timedelta(hours=1), zone=KL)
    assert (_paused_by(engine, by_hand), _paused_by(engine, missed)) == ("person", "schedule")
    with transaction(engine) as s:
        blasts.resume(s, blast_id=by_hand)
        blasts.cancel(s, blast_id=missed)
    assert (_paused_by(engine, by_hand), _paused_by(engine, missed)) == (None, None)
    with pytest.raises(AssertionError), transaction(engine) as s:
        blasts.change_state(s, blast_id=by_hand, from_states=("sending",), to_state="paused", reason="?")


def test_a_scheduled_blast_paused_and_resumed_waits_for_its_time_again(engine: Engine) -> None:
    """Paused on Wednesday, resumed the same day, a blast scheduled for Friday goes on Friday."""
    friday = utcnow() + dt.timedelta(days=2)
    waiting = _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=waiting, at=friday, device="d", timezone=KL)
        blasts.pause(s, blast_id=waiting)
    with transaction(engine) as s:
        blasts.resume(s, blast_id=waiting)
    with transaction(engine) as s:
        blast = s.get(Blast, waiting)
        assert (blast.state, blast.scheduled_at, blast.started_at) == ("scheduled", friday, None)
    # Resumed after its time (or paused for having been missed), it starts now.
    with transaction(engine) as s:
        blasts.pause(s, blast_id=waiting)
    with transaction(engine) as s:
        blasts.resume(s, blast_id=waiting, now=friday + dt.timedelta(minutes=1))
    with transaction(engine) as s:
        blast = s.get(Blast, waiting)
        assert (blast.state, blast.scheduled_at) == ("sending", None) and blast.started_at is not None


def test_a_blast_completes_when_nothing_is_queued_or_in_flight(engine: Engine) -> None:
    blast_id = _draft(engine, n=2)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)
        assert blasts.complete_finished(s, now=utcnow()) == []
        for r in s.query(BlastRecipient).filter_by(blast_id=blast_id):
            r.status = "PENDING" if r.id % 2 else "FAILED"
        s.flush()
        assert blasts.complete_finished(s, now=utcnow()) == [blast_id]
    assert _state(engine, blast_id)[0] == "completed"


def test_launch_writes_each_recipients_own_message(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, message_template="Hi {name}, *{Product}* is {{50%}} off 🎉")
        make_recipient(s, blast, contact_name="Aisyah", variables={"product": "Kuih"})
        make_recipient(s, blast, contact_name="Wei Ling", variables={"product": "Bak kwa"})
        blast_id = blast.id
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)
        texts = sorted(r.message_text for r in s.query(BlastRecipient).filter_by(blast_id=blast_id))
    assert texts == ["Hi Aisyah, *Kuih* is {50%} off 🎉", "Hi Wei Ling, *Bak kwa* is {50%} off 🎉"]


def test_launch_refuses_gaps_unless_the_marketer_accepts_them(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, message_template="Hi {name}!")
        make_recipient(s, blast, contact_name="", csv_line=7)
        make_recipient(s, blast, contact_name="Ravi")
        blast_id = blast.id
    with pytest.raises(BadInput, match="^1 recipient would get .*line 7"), transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)
    assert _state(engine, blast_id)[0] == "draft"
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL, allow_blanks=True)
    assert _state(engine, blast_id)[0] == "sending"


def test_launch_refuses_an_unknown_placeholder(engine: Engine) -> None:
    blast_id = _draft(engine, message_template="Hi {nmae}")
    with pytest.raises(BadInput, match="nmae"), transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)


@pytest.mark.parametrize("template", ["Hi {nmae}", "Hi {{name}}"])
def test_a_draft_kept_with_a_mistake_is_not_sent_with_it_even_with_blanks_allowed(
    engine: Engine, template: str
) -> None:
    """A draft keeps its message as typed; `core send --allow-blanks` had sent "Hi {name}" or
    "Hi " to everyone."""
    blast_id = _draft(engine, message_template=template)
    with pytest.raises(BadInput, match="nmae|double|braces"), transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL, allow_blanks=True)
    assert _state(engine, blast_id)[0] == "draft"


@pytest.mark.parametrize(("state", "moves"), [
    ("paused", True), ("scheduled", True), ("sending", False), ("completed", False), ("draft", False),
])
def test_a_waiting_blast_can_move_to_another_device(engine: Engine, state: str, moves: bool) -> None:
    """The device it was launched with is gone: the rest can go from the one set up now."""
    from core.errors import StateConflict

    blast_id = _draft(engine, state=state, device="OLD")
    with transaction(engine) as s:
        if moves:
            blasts.move_to_device(s, blast_id=blast_id, device="NEW")
        else:
            with pytest.raises(StateConflict):
                blasts.move_to_device(s, blast_id=blast_id, device="NEW")
    with transaction(engine) as s:
        assert s.get(Blast, blast_id).device == ("NEW" if moves else "OLD")


def test_a_practice_blast_never_moves_to_a_whatsapp_device_nor_back(engine: Engine) -> None:
    practice = _draft(engine, state="paused", device="sandbox")
    real = _draft(engine, state="paused", device="5850")
    for blast_id, to in ((practice, "5850"), (real, "sandbox")):
        with pytest.raises(BadInput, match="practice mode"), transaction(engine) as s:
            blasts.move_to_device(s, blast_id=blast_id, device=to)
    with transaction(engine) as s:
        assert (s.get(Blast, practice).device, s.get(Blast, real).device) == ("sandbox", "5850")


def test_a_blast_launched_into_quiet_hours_is_dated_when_sending_can_start(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The date the Overview filters on is the day the messages go out, not the click's."""
    quiet_nights = {"SEND_PACING": "on", "SEND_QUIET_HOURS": "21:00-09:00", "APP_TIMEZONE": str(KL)}
    for name, value in quiet_nights.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    blast_id = _draft(engine)
    at = dt.datetime(2030, 12, 1, 23, 30, tzinfo=KL)
    try:
        with transaction(engine) as s:
            blast = blasts.launch(s, blast_id=blast_id, at=at, device="d", timezone=KL)
    finally:
        get_settings.cache_clear()
    assert blast.scheduled_at == at
    assert (blast.blast_date, blast.blast_time) == (dt.datetime(2030, 12, 2, 9, 0, tzinfo=KL), dt.time(9, 0))


def test_a_draft_can_be_deleted_whole_but_a_blast_that_sent_anything_cannot(engine: Engine) -> None:
    draft, sent = _draft(engine), _draft(engine)
    with transaction(engine) as s:
        child = make_blast(s, parent_blast_id=draft)
        blasts.launch(s, blast_id=sent, device="d", timezone=KL)
        s.execute(BlastRecipient.__table__.update().where(BlastRecipient.blast_id == sent)
                  .values(status="SERVER_ACK"))
        child_id = child.id
    with transaction(engine) as s:
        blasts.delete_draft(s, blast_id=draft)
    with transaction(engine) as s:
        assert s.get(Blast, draft) is None
        assert s.scalars(select(BlastRecipient).where(BlastRecipient.blast_id == draft)).all() == []
        assert s.get(Blast, child_id).parent_blast_id is None, "a follow-up made of it stays"
    with pytest.raises(StateConflict, match="Cannot delete blast"), transaction(engine) as s:
        blasts.delete_draft(s, blast_id=sent)
    with transaction(engine) as s:  # a draft that was sent from once, then put back: kept
        s.execute(Blast.__table__.update().where(Blast.id == sent).values(state="draft"))
    with pytest.raises(StateConflict, match="some of its messages were sent"), transaction(engine) as s:
        blasts.delete_draft(s, blast_id=sent)


def test_a_deleted_drafts_number_is_never_given_to_another_blast(engine: Engine) -> None:
    """An old link to it (a bookmark, a colleague's tab) must not open some other blast."""
    _draft(engine)
    newest = _draft(engine)
    with transaction(engine) as s:
        blasts.delete_draft(s, blast_id=newest)
    assert _draft(engine) > newest


# The day's quiet hours would date a blast by when they end: times here are not the clock's.
UNPACED = Settings(_env_file=None, send_pacing="off")


def test_a_scheduled_blast_gets_another_time_and_its_date_follows(engine: Engine) -> None:
    now = utcnow()
    moved = _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=moved, at=now + dt.timedelta(days=1), device="d", timezone=KL)
    later = now + dt.timedelta(days=2, hours=3)
    with transaction(engine) as s:
        blasts.reschedule(s, blast_id=moved, at=later, timezone=KL, settings=UNPACED)
    with transaction(engine) as s:
        blast = s.get(Blast, moved)
        assert (blast.state, blast.scheduled_at, blast.started_at) == ("scheduled", later, None)
        assert (blast.blast_date, blast.blast_time) == (later, blasts.local_time(later, KL))
    with transaction(engine) as s:  # not started at the old time; at the new one it is
        assert blasts.start_due_scheduled(s, now=now + dt.timedelta(days=1, minutes=1),
                                          grace=dt.timedelta(hours=1), zone=KL) == []
        assert blasts.start_due_scheduled(s, now=later + dt.timedelta(minutes=1),
                                          grace=dt.timedelta(hours=1), zone=KL) == [moved]


def test_a_blast_paused_for_its_missed_time_gets_a_new_one(engine: Engine) -> None:
    now = utcnow()
    missed = _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=missed, at=now + dt.timedelta(minutes=1), device="d", timezone=KL)
    with transaction(engine) as s:
        blasts.start_due_scheduled(s, now=now + dt.timedelta(hours=3), grace=dt.timedelta(hours=1), zone=KL)
    assert _paused_by(engine, missed) == "schedule"
    tomorrow = now + dt.timedelta(days=1)
    with transaction(engine) as s:
        blasts.reschedule(s, blast_id=missed, at=tomorrow, timezone=KL, now=now + dt.timedelta(hours=3),
                          settings=UNPACED)
    with transaction(engine) as s:
        blast = s.get(Blast, missed)
        assert (blast.state, blast.scheduled_at, blast.state_reason, blast.paused_by) == (
            "scheduled", tomorrow, None, None)


def test_a_scheduled_blast_sent_now_starts_without_the_people_who_opted_out_meanwhile(engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as s:
        blast = make_blast(s)
        keep, gone = make_recipient(s, blast), make_recipient(s, blast)
        blast_id, keep_id, gone_phone = blast.id, keep.id, gone.phone_number
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, at=now + dt.timedelta(days=1), device="d", timezone=KL)
        s.add(OptOut(phone_number=gone_phone, source="webhook", keyword="STOP"))
    with transaction(engine) as s:
        blasts.reschedule(s, blast_id=blast_id, at=None, timezone=KL, settings=UNPACED)
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        assert (blast.state, blast.scheduled_at) == ("sending", None)
        assert blast.started_at is not None and blast.started_at >= now
        assert abs(blast.blast_date - blast.started_at) < dt.timedelta(seconds=1)
        assert [r.id for r in s.query(BlastRecipient).filter_by(blast_id=blast_id)] == [keep_id]


def test_a_new_time_inside_the_quiet_hours_dates_the_blast_when_they_end(engine: Engine) -> None:
    settings = Settings(_env_file=None, send_pacing="on", send_quiet_hours="21:00-09:00",
                        app_timezone="Asia/Kuala_Lumpur")
    midnight = dt.datetime.combine(utcnow().astimezone(KL).date() + dt.timedelta(days=3), dt.time(),
                                   tzinfo=KL)
    blast_id = _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, at=midnight + dt.timedelta(hours=12), device="d", timezone=KL,
                      settings=settings)
        blasts.reschedule(s, blast_id=blast_id, at=midnight, timezone=KL, settings=settings)
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        assert blast.scheduled_at == midnight
        assert blast.blast_date == midnight.replace(hour=9) and blast.blast_time == dt.time(9, 0)


def test_only_a_blast_that_sent_nothing_yet_gets_another_time(engine: Engine) -> None:
    now = utcnow()
    later = now + dt.timedelta(days=1)
    draft, started, scheduled = _draft(engine), _draft(engine), _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=started, device="d", timezone=KL)
        blasts.pause(s, blast_id=started)
        blasts.launch(s, blast_id=scheduled, at=later, device="d", timezone=KL)
    with pytest.raises(StateConflict, match="has started sending"), transaction(engine) as s:
        blasts.reschedule(s, blast_id=started, at=later, timezone=KL)
    with pytest.raises(StateConflict, match="it is a draft"), transaction(engine) as s:
        blasts.reschedule(s, blast_id=draft, at=later, timezone=KL)
    with pytest.raises(BadInput, match="That time has passed"), transaction(engine) as s:
        blasts.reschedule(s, blast_id=scheduled, at=now - dt.timedelta(minutes=1), timezone=KL)
    with transaction(engine) as s:
        blasts.cancel(s, blast_id=scheduled)
    with pytest.raises(StateConflict, match="it is cancelled"), transaction(engine) as s:
        blasts.reschedule(s, blast_id=scheduled, at=later, timezone=KL)
    assert _state(engine, started)[0] == "paused"


@pytest.mark.postgres_only
def test_a_blast_given_another_time_while_the_worker_starts_it_waits_for_that_time(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker read the blast as due; before it changed it, a person moved it to tomorrow
    (committed meanwhile: PostgreSQL's UPDATE then reads the row afresh). It had been sent at once."""
    now = utcnow()
    due, overdue = _draft(engine), _draft(engine)
    with transaction(engine) as s:
        for blast_id, ahead in ((due, dt.timedelta(minutes=1)), (overdue, dt.timedelta(minutes=2))):
            blasts.launch(s, blast_id=blast_id, at=now + ahead, device="d", timezone=KL, settings=UNPACED)
    tomorrow = now + dt.timedelta(days=1)
    real, moved = blasts.change_state, []

    def person_moves_it_first(session, *, blast_id: int, **changes):  # type: ignore[no-untyped-def]
        if blast_id not in moved:
            moved.append(blast_id)
            with transaction(engine) as other:
                blasts.reschedule(other, blast_id=blast_id, at=tomorrow, timezone=KL, settings=UNPACED,
                                  now=now + dt.timedelta(minutes=3))
        return real(session, blast_id=blast_id, **changes)

    monkeypatch.setattr(blasts, "change_state", person_moves_it_first)
    with transaction(engine) as s:  # the first due, the second long past its time
        assert blasts.start_due_scheduled(s, now=now + dt.timedelta(minutes=3),
                                          grace=dt.timedelta(minutes=1, seconds=30), zone=KL) == []
    monkeypatch.undo()
    with transaction(engine) as s:
        for blast_id in (due, overdue):
            blast = s.get(Blast, blast_id)
            assert (blast.state, blast.scheduled_at, blast.started_at, blast.paused_by) == (
                "scheduled", tomorrow, None, None)


@pytest.mark.postgres_only
def test_a_message_put_back_while_a_person_cancels_its_blast_promises_no_next_try(engine: Engine) -> None:
    """The gateway did not take a message, and the worker puts it back with a time for its next
    try. A cancel committed between the worker's look at the blast and its write had left that
    row promising a retry in a cancelled blast; the look now waits for the cancel."""
    import threading

    from core.sending import queue

    blast_id = _draft(engine, n=1)
    now = utcnow()
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, at=None, device="d", timezone=KL, settings=UNPACED)
        claim = queue.claim_next(s, device="d", worker="w", now=now, lease=dt.timedelta(minutes=2))
    assert claim is not None
    released: list[bool] = []

    def put_back() -> None:
        with transaction(engine) as s:
            released.append(queue.release(s, claim=claim, worker="w", error="The gateway was busy.",
                                          retry_at=now + dt.timedelta(minutes=1)))

    worker = threading.Thread(target=put_back)
    with transaction(engine) as person:
        blasts.cancel(person, blast_id=blast_id)
        worker.start()
        time.sleep(0.5)  # the worker reads the blast while the cancel is not committed yet
    worker.join(timeout=30)
    assert released == [True]
    with transaction(engine) as s:
        row = s.scalars(select(BlastRecipient).where(BlastRecipient.blast_id == blast_id)).one()
        assert (row.status, row.next_attempt_at, row.error) == ("QUEUED", None, None)
    assert _state(engine, blast_id)[0] == "cancelled"


def test_send_now_that_finds_the_blast_already_started_is_not_refused(engine: Engine) -> None:
    blast_id = _draft(engine)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=blast_id, device="d", timezone=KL)
    with transaction(engine) as s:
        assert blasts.reschedule(s, blast_id=blast_id, at=None, timezone=KL).state == "sending"
    with pytest.raises(StateConflict, match="has started sending"), transaction(engine) as s:
        blasts.reschedule(s, blast_id=blast_id, at=utcnow() + dt.timedelta(days=1), timezone=KL)
