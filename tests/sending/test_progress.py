"""A sending blast's ETA goes by its own recent pace once it has one: that pace counts the
gateway's answer time, which the rules alone cannot know. It comes after the messages of the
blasts the worker sends first from the same device."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select, update

from core.config import Settings
from core.db import transaction
from core.models import Blast, BlastRecipient, utcnow
from core.sending import blasts
from core.sending.pacing import PacingRules, ensure_device, estimate_finish
from core.sending.progress import Ahead, blast_progress, observed_gap, queued_ahead
from core.statuses import Status
from tests.sending.support import KL, launched_blast, settings_for
from tests.support.factories import make_blast, make_recipient

PACED = {"send_pacing": "on", "send_min_gap_seconds": 10.0, "send_jitter_seconds": 0.0,
         "send_pause_every": 0, "send_daily_cap": 0}


def _sent(engine: Engine, blast_id: int, times: list[dt.datetime]) -> None:
    """Mark the blast's first recipients sent at `times`, one each."""
    with transaction(engine) as s:
        ids = s.scalars(select(BlastRecipient.id).where(BlastRecipient.blast_id == blast_id)
                        .order_by(BlastRecipient.id)).all()
        for recipient_id, at in zip(ids, times, strict=False):
            s.execute(update(BlastRecipient).where(BlastRecipient.id == recipient_id)
                      .values(status=Status.SERVER_ACK.value, sent_at=at))


def test_the_pace_is_the_median_gap_of_the_latest_sends(engine: Engine) -> None:
    blast_id = launched_blast(engine, 40)
    now = utcnow()
    # 12 s apart, with one 5-minute pause among them, and two sends from yesterday.
    times, at = [], now - dt.timedelta(minutes=20)
    for i in range(16):
        times.append(at)
        at += dt.timedelta(seconds=312 if i == 7 else 12)
    _sent(engine, blast_id, [now - dt.timedelta(days=1, seconds=s) for s in (0, 50)] + times)
    with transaction(engine) as s:
        assert observed_gap(s, blast_id=blast_id, now=now) == 12.0


def test_too_few_recent_sends_give_no_pace(engine: Engine) -> None:
    blast_id = launched_blast(engine, 10)
    now = utcnow()
    _sent(engine, blast_id, [now - dt.timedelta(seconds=12 * i) for i in range(5)])  # 4 gaps
    with transaction(engine) as s:
        assert observed_gap(s, blast_id=blast_id, now=now) is None


def test_a_sending_blasts_eta_counts_the_answer_time_the_rules_leave_out(engine: Engine) -> None:
    settings = settings_for(**PACED)
    blast_id = launched_blast(engine, 30)
    with transaction(engine) as s:
        ensure_device(s, device="5850", settings=settings)
        before = blast_progress(s, blast_id=blast_id, settings=settings).eta
    started = utcnow()
    # Rules say 10 s a message; the gateway took 2 s to answer each, so they went 12 s apart.
    _sent(engine, blast_id, [started - dt.timedelta(seconds=12 * i) for i in range(10)])
    with transaction(engine) as s:
        progress = blast_progress(s, blast_id=blast_id, settings=settings)
    assert progress.remaining == 20 and progress.pace_seconds == 12.0
    # The first of the 20 left goes now, the last 19 gaps of 12 s later.
    expected = utcnow() + dt.timedelta(seconds=19 * 12)
    assert abs((progress.eta - expected).total_seconds()) < 5
    # Before any send, the rules' 10 s: 29 gaps.
    assert abs((before - started - dt.timedelta(seconds=29 * 10)).total_seconds()) < 5


# -- other blasts on the same device -------------------------------------------------------

# The defaults: a daily cap and quiet hours, so that the wait for another blast's messages
# carries this one's over to another day.
DEFAULTS = {"send_pacing": "on", "send_min_gap_seconds": 8.0, "send_jitter_seconds": 7.0,
            "send_pause_every": 50, "send_pause_seconds": 300.0, "send_daily_cap": 500,
            "send_quiet_hours": "21:00-09:00"}


def _named(engine: Engine, blast_id: int, name: str) -> None:
    with transaction(engine) as s:
        s.get(Blast, blast_id).name = name


def _device_sent_today(engine: Engine, settings: Settings, count: int) -> PacingRules:
    with transaction(engine) as s:
        device = ensure_device(s, device="5850", settings=settings)
        device.sent_day, device.sent_in_day = utcnow().astimezone(KL).date(), count
        return PacingRules.of(device)


def _alone(rules: PacingRules, remaining: int, *, sent_today: int) -> dt.datetime:
    return estimate_finish(rules, remaining=remaining, start=utcnow(), zone=KL, sent_today=sent_today).at


def _close(a: dt.datetime | None, b: dt.datetime) -> bool:
    """The same moment, but for the milliseconds between the two estimates' `now`."""
    return a is not None and abs((a - b).total_seconds()) < 5


def test_a_blast_behind_another_on_the_device_finishes_after_all_their_messages(engine: Engine) -> None:
    """The worker sends the older blast to the end first: the reviewer's case, 400 left of it
    and 100 of this one, with 50 already sent today."""
    settings = settings_for(**DEFAULTS)
    first = launched_blast(engine, 400)
    _named(engine, first, "Raya promo")
    with transaction(engine) as s:  # one of them is with the gateway now: still to go
        s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == first)
                  .where(BlastRecipient.id == s.scalar(select(func.min(BlastRecipient.id))
                                                       .where(BlastRecipient.blast_id == first)))
                  .values(status=Status.SENDING.value))
    second = launched_blast(engine, 100)
    rules = _device_sent_today(engine, settings, 50)
    with transaction(engine) as s:
        progress = blast_progress(s, blast_id=second, settings=settings)
    assert _close(progress.eta, _alone(rules, 500, sent_today=50))
    # At least the 400 messages' gaps later than alone, whatever the hour now ("twelve hours
    # later" had held in the day, not a few minutes before the quiet hours begin).
    ahead = dt.timedelta(seconds=400 * rules.min_gap_seconds)
    assert progress.eta > _alone(rules, 100, sent_today=50) + ahead
    assert progress.waits_for == Ahead(messages=400, names=("Raya promo",))


def test_a_blast_is_not_held_back_by_the_ones_after_it(engine: Engine) -> None:
    settings = settings_for(**DEFAULTS)
    first = launched_blast(engine, 400)
    launched_blast(engine, 100)
    rules = _device_sent_today(engine, settings, 50)
    with transaction(engine) as s:
        progress = blast_progress(s, blast_id=first, settings=settings)
        assert queued_ahead(s, device="5850", blast_id=first) == Ahead()
    assert _close(progress.eta, _alone(rules, 400, sent_today=50))
    assert progress.waits_for == Ahead()


def test_only_sending_blasts_on_the_same_device_go_first(engine: Engine) -> None:
    """Paused, scheduled, draft and cancelled blasts wait their turn; another device's
    blasts have their own pacing."""
    settings = settings_for(**DEFAULTS)
    paused = launched_blast(engine, 300)
    with transaction(engine) as s:
        blasts.pause(s, blast_id=paused)
        for state in ("scheduled", "draft", "cancelled"):
            other = make_blast(s, state=state, device="5850", name=state)
            for _ in range(50):
                make_recipient(s, other)
    launched_blast(engine, 200, device="other")
    mine = launched_blast(engine, 100)
    rules = _device_sent_today(engine, settings, 50)
    with transaction(engine) as s:
        progress = blast_progress(s, blast_id=mine, settings=settings)
        assert queued_ahead(s, device="5850") == Ahead(messages=100, names=("test",))  # a new blast's
    assert _close(progress.eta, _alone(rules, 100, sent_today=50))
    assert progress.waits_for == Ahead()


def test_a_scheduled_blast_waits_only_for_what_is_still_going_at_its_time() -> None:
    rules = PacingRules(min_gap_seconds=60, jitter_seconds=0, pause_every=0, pause_seconds=0,
                        daily_cap=0, quiet_start=None, quiet_end=None)
    start = dt.datetime(2026, 11, 26, 2, tzinfo=dt.UTC)
    # 60 messages ahead go out by 02:59; a blast at 04:00 does not wait, one at 02:30 does.
    later = estimate_finish(rules, remaining=10, start=start, zone=KL, ahead=60,
                            not_before=start + dt.timedelta(hours=2))
    assert (later.at, later.others_first) == (start + dt.timedelta(hours=2, minutes=9), False)
    sooner = estimate_finish(rules, remaining=10, start=start, zone=KL, ahead=60,
                             not_before=start + dt.timedelta(minutes=30))
    assert (sooner.at, sooner.others_first) == (start + dt.timedelta(minutes=69), True)
    # With nothing ahead, the old estimate from the scheduled time.
    at_two = start + dt.timedelta(hours=2)
    alone = estimate_finish(rules, remaining=10, start=start, zone=KL, not_before=at_two)
    assert alone == estimate_finish(rules, remaining=10, start=at_two, zone=KL)


def test_others_first_is_judged_against_this_blasts_own_start_not_after_the_others() -> None:
    """90 messages ahead under a cap of 100 leave the cap nearly used: the comparison run
    "alone" must start from the device's count at the start, or it lands on the next day and
    the wait for the other blast goes unsaid."""
    rules = PacingRules(min_gap_seconds=10, jitter_seconds=0, pause_every=0, pause_seconds=0,
                        daily_cap=100, quiet_start=None, quiet_end=None)
    start = dt.datetime(2026, 5, 4, 2, 0, tzinfo=dt.UTC)  # 10:00 in Kuala Lumpur
    behind = estimate_finish(rules, remaining=10, start=start, zone=KL, ahead=90)
    alone = estimate_finish(rules, remaining=10, start=start, zone=KL)
    assert behind.at == start + dt.timedelta(seconds=99 * 10) and alone.at == start + dt.timedelta(seconds=90)
    assert behind.others_first and not behind.daily_cap

