"""Pacing rules: gaps with jitter, pauses, daily cap and quiet hours in the team's time zone."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from core.models import Device
from core.sending.pacing import (
    PacingRules,
    earliest_send,
    estimate_finish,
    keep_gap_after_send,
    parse_quiet_hours,
    record_send,
)

KL = ZoneInfo("Asia/Kuala_Lumpur")


def kl(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=KL).astimezone(dt.UTC)


def device(**fields) -> Device:
    values = dict(device="d1", min_gap_seconds=8.0, jitter_seconds=7.0, pause_every=50,
                  pause_seconds=300.0, daily_cap=500, quiet_start=dt.time(21), quiet_end=dt.time(9),
                  next_send_at=None, sent_day=None, sent_in_day=0, sent_since_pause=0)
    values.update(fields)
    return Device(**values)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("21:00-09:00", (dt.time(21), dt.time(9))), ("off", (None, None)), ("", (None, None)),
     (" 13:30 - 14:00 ", (dt.time(13, 30), dt.time(14))), ("21:00-9:00", (dt.time(21), dt.time(9))),
     ("22-7", (dt.time(22), dt.time(7))), ("OFF", (None, None))],
)
def test_parse_quiet_hours(text: str, expected) -> None:
    assert parse_quiet_hours(text) == expected


@pytest.mark.parametrize("text", ["21:00", "21.00-09.00", "24:00-09:00", "21:60-09:00", "-", "x-y"])
def test_quiet_hours_that_cannot_be_read_are_refused_in_words(text: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        parse_quiet_hours(text)


def test_a_free_device_sends_now() -> None:
    assert earliest_send(device(), now=kl(2, 10), zone=KL) == kl(2, 10)


def test_the_gap_holds_until_next_send_at() -> None:
    assert earliest_send(device(next_send_at=kl(2, 10, 1)), now=kl(2, 10), zone=KL) == kl(2, 10, 1)


@pytest.mark.parametrize(("now", "expected"), [
    (kl(2, 22), kl(3, 9)),      # evening: wait for tomorrow morning
    (kl(3, 2), kl(3, 9)),       # after midnight: same morning
    (kl(3, 9), kl(3, 9)),       # quiet hours end exactly now
    (kl(3, 20, 59), kl(3, 20, 59)),
])
def test_quiet_hours_wrap_midnight_in_the_team_zone(now, expected) -> None:
    assert earliest_send(device(), now=now, zone=KL) == expected


def test_daily_cap_waits_for_the_next_local_morning() -> None:
    full = device(daily_cap=3, sent_day=dt.date(2026, 3, 2), sent_in_day=3)
    assert earliest_send(full, now=kl(2, 15), zone=KL) == kl(3, 9)
    yesterday = device(daily_cap=3, sent_day=dt.date(2026, 3, 1), sent_in_day=3)
    assert earliest_send(yesterday, now=kl(2, 15), zone=KL) == kl(2, 15)


def test_record_send_counts_and_spaces_with_jitter_and_pauses() -> None:
    d = device(pause_every=3, pause_seconds=100.0)
    rng = random.Random(7)
    gaps = []
    now = kl(2, 10)
    for _ in range(6):
        record_send(d, now=now, zone=KL, rng=rng)
        gaps.append((d.next_send_at - now).total_seconds())
        now = d.next_send_at
    assert d.sent_in_day == 6 and d.sent_day == dt.date(2026, 3, 2)
    for i, gap in enumerate(gaps):
        extra = 100.0 if i in (2, 5) else 0.0
        assert 8.0 + extra <= gap <= 15.0 + extra
    assert len(set(gaps)) == 6, "jitter should vary the gaps"


def test_a_new_local_day_resets_the_daily_count() -> None:
    d = device(sent_day=dt.date(2026, 3, 1), sent_in_day=499)
    record_send(d, now=kl(2, 0, 30), zone=KL, rng=random.Random(1))
    assert (d.sent_day, d.sent_in_day) == (dt.date(2026, 3, 2), 1)


def test_estimate_finish_honours_every_rule() -> None:
    rules = PacingRules(min_gap_seconds=10, jitter_seconds=0, pause_every=0, pause_seconds=0,
                        daily_cap=0, quiet_start=None, quiet_end=None)
    assert estimate_finish(rules, remaining=7, start=kl(2, 10), zone=KL).at == kl(2, 10, 1)
    with_pause = PacingRules(min_gap_seconds=10, jitter_seconds=0, pause_every=3, pause_seconds=600,
                             daily_cap=0, quiet_start=None, quiet_end=None)
    # 3 sends (0, 10, 20 s), then 10 s + 600 s pause: the 4th goes at 630 s.
    fourth = kl(2, 10) + dt.timedelta(seconds=630)
    assert estimate_finish(with_pause, remaining=4, start=kl(2, 10), zone=KL).at == fourth
    # A measured pace replaces the average gap; the pause still comes on top.
    measured = kl(2, 10) + dt.timedelta(seconds=3 * 12 + 600)
    assert estimate_finish(with_pause, remaining=4, start=kl(2, 10), zone=KL, gap_seconds=12).at == measured
    capped = PacingRules(min_gap_seconds=60, jitter_seconds=0, pause_every=0, pause_seconds=0,
                         daily_cap=2, quiet_start=dt.time(21), quiet_end=dt.time(9))
    # Two today at 20:58 and 20:59, then quiet hours: the third goes tomorrow at 09:00.
    assert estimate_finish(capped, remaining=3, start=kl(2, 20, 58), zone=KL).at == kl(3, 9)
    assert estimate_finish(rules, remaining=0, start=kl(2, 10), zone=KL).at == kl(2, 10)


def test_the_gap_also_runs_from_the_gateways_answer() -> None:
    d = device(min_gap_seconds=10, jitter_seconds=0.0)
    record_send(d, now=kl(3, 10), zone=KL, rng=random.Random(1))
    assert d.next_send_at == kl(3, 10) + dt.timedelta(seconds=10)  # counted from the claim
    keep_gap_after_send(d, claimed=kl(3, 10), finished=kl(3, 10) + dt.timedelta(seconds=30))
    assert d.next_send_at == kl(3, 10) + dt.timedelta(seconds=40)  # and from a slow answer

    d = device(min_gap_seconds=10, jitter_seconds=0.0, next_send_at=None)
    keep_gap_after_send(d, claimed=kl(3, 10), finished=kl(3, 10) - dt.timedelta(seconds=1))
    assert d.next_send_at is None  # a clock step backwards moves nothing


def test_a_device_standing_still_says_why_and_until_when() -> None:
    """A blast that stood still for its five-minute break had looked stuck."""
    from core.sending.pacing import Held, Waiting, held_back

    now = kl(2, 14)
    assert held_back(device(), now=now, zone=KL) is None, "nothing sent yet"
    at_pace = device(next_send_at=now + dt.timedelta(seconds=12), sent_since_pause=7)
    assert held_back(at_pace, now=now, zone=KL) is None, "a gap is no break"
    on_break = device(next_send_at=now + dt.timedelta(minutes=4), sent_day=now.astimezone(KL).date(),
                      sent_in_day=50)
    assert held_back(on_break, now=now, zone=KL) == Waiting(now + dt.timedelta(minutes=4), Held.BREAK)
    into_the_night = device(next_send_at=kl(2, 21, 3), sent_day=now.astimezone(KL).date(), sent_in_day=100)
    assert held_back(into_the_night, now=kl(2, 20, 58), zone=KL) == Waiting(kl(3, 9), Held.QUIET)
    assert held_back(device(), now=kl(2, 23), zone=KL) == Waiting(kl(3, 9), Held.QUIET)
    capped = device(next_send_at=now + dt.timedelta(seconds=10), sent_day=now.astimezone(KL).date(),
                    sent_in_day=500)
    assert held_back(capped, now=now, zone=KL) == Waiting(kl(3, 9), Held.CAP)


def test_a_pace_that_risks_the_number_says_what_in_it_does() -> None:
    from core.sending.pacing import risky

    careful = PacingRules.of(device())
    assert risky(careful) == []
    reckless = PacingRules.of(device(min_gap_seconds=2, jitter_seconds=1, pause_every=0, daily_cap=0,
                                     quiet_start=None, quiet_end=None))
    assert risky(reckless) == ["under 5 seconds between messages on average", "no longer pauses",
                               "no limit a day", "no quiet hours (messages at night)"]
    assert risky(PacingRules.of(device(daily_cap=5000))) == ["over 1,000 messages a day"]
