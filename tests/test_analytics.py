"""Trends, tag comparison with honest intervals, response times and hours people answer."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from core.analytics import activity_by_hour, daily_trend, response_times, tag_comparison, wilson_interval
from core.db import transaction
from core.funnel import FunnelFilter
from tests.support.factories import make_blast, make_recipient

UTC = dt.UTC


def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 0, 0.0, 0.0),
        (5, 10, 0.2366, 0.7634),
        (1, 1, 0.2065, 1.0),
        (0, 20, 0.0, 0.1611),
        (500, 1000, 0.4691, 0.5309),
    ],
)
def test_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


def _seed(engine: Engine) -> None:
    with transaction(engine) as s:
        big = make_blast(s, blast_tag="Big")
        # Sent 2026-03-01 15:30 UTC = 23:30 in KL (day 1); 16:30 UTC = 00:30 KL (day 2).
        for i in range(10):
            sent = t(1, 15, 30) if i < 6 else t(1, 16, 30)
            read = sent + dt.timedelta(minutes=10 * (i + 1)) if i < 5 else None
            status = "REPLIED" if i < 2 else ("READ_ACK" if i < 5 else "DELIVERY_ACK")
            make_recipient(
                s,
                big,
                status=status,
                sent_at=sent,
                read_timestamp=read,
                replied_at=sent + dt.timedelta(hours=1) if i < 2 else None,
            )
        small = make_blast(s, blast_tag="Small")
        make_recipient(
            s, small, status="REPLIED", sent_at=t(2, 1), read_timestamp=t(2, 2), replied_at=t(2, 2)
        )


def test_daily_trend_groups_by_the_teams_local_day(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        trend = daily_trend(s, filters=FunnelFilter())
    rows = {r.day: (r.sent, r.read, r.replied) for r in trend.itertuples()}
    assert rows == {dt.date(2026, 3, 1): (6, 5, 2), dt.date(2026, 3, 2): (5, 1, 1)}


def test_tag_comparison_gives_small_tags_wide_intervals(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        tags = tag_comparison(s, filters=FunnelFilter()).set_index("tag")
    assert tags.loc["Small", "replied_rate"] == 100.0
    assert tags.loc["Big", "replied_rate"] == 20.0
    small_width = tags.loc["Small", "replied_high"] - tags.loc["Small", "replied_low"]
    big_width = tags.loc["Big", "replied_high"] - tags.loc["Big", "replied_low"]
    assert small_width > big_width
    assert tags.loc["Small", "replied_low"] < tags.loc["Big", "replied_high"], "1 of 1 is no proven winner"


def test_response_times(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        times = response_times(s, filters=FunnelFilter(tags=("Big",)))
    assert times.read_median == dt.timedelta(minutes=30)
    assert times.read_p90 == dt.timedelta(minutes=46)
    assert times.reply_median == dt.timedelta(hours=1)
    assert not times.sampled


def test_activity_by_local_hour_and_weekday(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        activity = activity_by_hour(s, filters=FunnelFilter(tags=("Small",)))
    reads = activity[activity["what"] == "read"]
    # 2026-03-02 02:00 UTC is Monday 10:00 in Kuala Lumpur.
    assert list(zip(reads["weekday"], reads["hour_of_day"], reads["n"], strict=True)) == [("Mon", 10, 1)]


def test_empty_selection(engine: Engine) -> None:
    with transaction(engine) as s:
        assert daily_trend(s, filters=FunnelFilter()).empty
        assert activity_by_hour(s, filters=FunnelFilter()).empty
        assert tag_comparison(s, filters=FunnelFilter()).empty
        assert response_times(s, filters=FunnelFilter()).read_median is None
