"""Numbers and times in a marketer's words."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from dashboard.format import ago, duration_words, one_of_many, plural, state_word, when_words

KL = ZoneInfo("Asia/Kuala_Lumpur")
NOW = dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC)  # Thursday 10:00 in Kuala Lumpur


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        (dt.datetime(2026, 11, 26, 6, 5, tzinfo=dt.UTC), "14:05"),
        (dt.datetime(2026, 11, 26, 16, 30, tzinfo=dt.UTC), "Fri 00:30"),  # past midnight there: tomorrow
        (dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.UTC), "Sat 09:00"),
        (dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC), "3 Dec"),
    ],
)
def test_a_moment_short_enough_for_a_metric(moment: dt.datetime, words: str) -> None:
    assert when_words(moment, zone=KL, now=NOW) == words


def test_plurals_and_states() -> None:
    assert [plural(1, "recipient"), plural(1_200, "recipient"), plural(2, "person", "people")] == [
        "1 recipient", "1,200 recipients", "2 people"]
    assert [state_word("completed"), state_word("draft"), state_word("archived")] == [
        "Finished", "Draft", "Archived"]


@pytest.mark.parametrize(("text", "count", "shown"), [
    ("Ok", 1, "Ok"), ("Ok", 0, "Ok"), ("Ok", 3, "Ok  (+2 more)"), (None, 0, ""),
    ("Nak", 1_001, "Nak  (+1,000 more)"),
])
def test_one_reply_of_many(text: str | None, count: int, shown: str) -> None:
    assert one_of_many(text, count) == shown


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "—"),
        (59, "< 1 min"),
        (96, "2 min"),  # a blast that took 1 min 36 s did not take "1 min"
        (89, "1 min"),
        (3 * 3600 + 47 * 60 + 40, "3 h 48 min"),
        (2 * 86400 + 3 * 3600 + 50 * 60, "2 days 4 h"),
        (86400 - 20, "1 day"),
    ],
)
def test_a_duration_is_rounded_to_the_nearest_minute(seconds: float | None, words: str) -> None:
    assert duration_words(None if seconds is None else dt.timedelta(seconds=seconds)) == words


def test_how_long_ago_counts_whole_minutes() -> None:
    assert ago(NOW - dt.timedelta(seconds=100), now=NOW) == "1 min ago"
    assert ago(NOW - dt.timedelta(seconds=30), now=NOW) == "just now"


@pytest.mark.parametrize(("part", "whole", "shown", "words"), [
    (1_999, 2_000, 99.9, ">99.9%"), (2_000, 2_000, 100.0, "100.0%"), (1, 2_500, 0.1, "<0.1%"),
    (0, 2_500, 0.0, "0.0%"), (1, 1_000, 0.1, "0.1%"), (575, 1_000, 57.5, "57.5%"),
    (9_994, 10_000, 99.9, "99.9%"),
])
def test_a_share_never_reads_all_or_none_unless_it_is(
    part: int, whole: int, shown: float, words: str
) -> None:
    """1,999 of 2,000 received read "100.0% of sent": everyone, which was not so."""
    from core.words import percent_words, shown_percent

    value = 100.0 * part / whole
    assert (shown_percent(value), percent_words(value)) == (shown, words)
