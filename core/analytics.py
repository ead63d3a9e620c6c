"""Beyond the funnel: trends by day, tags compared fairly, response times, when people answer."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import BigInteger, Integer, Select, case, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.funnel import FunnelFilter, apply_filter, funnel_of, status_counts_by_tag, status_rank
from core.models import Blast, BlastRecipient
from core.statuses import Stage

Z_95 = 1.959964
RESPONSE_SAMPLE = 50_000


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval for a rate: honest for small blasts, unlike ± on the raw rate."""
    if trials == 0:
        return 0.0, 0.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def _hour_bucket(session: Session, column: ColumnElement) -> ColumnElement:
    """The UTC hour a timestamp falls in, on either database (the zone shift happens later).

    Both forms are cheap per row, which matters when a million rows are grouped:
    PostgreSQL truncates the timestamp (to_char took three times as long); SQLite holds
    UtcDateTime's 'YYYY-MM-DD HH:MM:SS.ffffff' text, whose first 13 characters are the
    hour that strftime('%Y-%m-%d %H') would parse out of it at twice the cost.
    """
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", column))
    return func.substr(column, 1, 13)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _to_local(buckets: pd.Series, zone: str) -> pd.Series:
    # SQLite's 'YYYY-MM-DD HH' text and PostgreSQL's naive UTC timestamps alike.
    return pd.to_datetime(buckets, format="ISO8601", utc=True).dt.tz_convert(zone)


def _of_selected_blasts(query: Select, filters: FunnelFilter) -> Select:
    """Restrict a query on blast_recipients to the filter's blasts.

    With nothing to restrict, `blasts` is left out: every recipient has its blast, and
    joining a million rows to it only to keep them all doubled the time.
    """
    if filters == FunnelFilter(timezone=filters.timezone):
        return query
    return apply_filter(query.join(Blast), filters)


def daily_trend(session: Session, *, filters: FunnelFilter) -> pd.DataFrame:
    """Per local day of sending: messages sent, and how many of them were read and replied to."""
    bucket = _hour_bucket(session, BlastRecipient.sent_at)
    rank = status_rank()
    query = (
        select(
            bucket.label("hour"),
            func.count().label("sent"),
            _count_if(rank >= Stage.READ.min_rank).label("read"),
            _count_if(rank >= Stage.REPLIED.min_rank).label("replied"),
        )
        .select_from(BlastRecipient)
        .where(BlastRecipient.sent_at.is_not(None))
        .group_by(bucket)
    )
    rows = session.execute(_of_selected_blasts(query, filters)).all()
    frame = pd.DataFrame(rows, columns=["hour", "sent", "read", "replied"])
    if frame.empty:
        return pd.DataFrame(columns=["day", "sent", "read", "replied", "read_rate", "reply_rate"])
    frame["day"] = _to_local(frame["hour"], filters.timezone).dt.date
    daily = frame.groupby("day", as_index=False)[["sent", "read", "replied"]].sum()
    daily["read_rate"] = 100.0 * daily["read"] / daily["sent"]
    daily["reply_rate"] = 100.0 * daily["replied"] / daily["sent"]
    return daily


def activity_by_hour(session: Session, *, filters: FunnelFilter) -> pd.DataFrame:
    """Reads and replies by local weekday and hour of day: when people answer."""
    # One pass over the rows for both: pairs of (read hour, reply hour) are few, because
    # people reply within hours of reading, and a second pass cost more than the pairs.
    read_hour = _hour_bucket(session, BlastRecipient.read_timestamp)
    reply_hour = _hour_bucket(session, BlastRecipient.replied_at)
    query = (
        select(read_hour, reply_hour, func.count())
        .select_from(BlastRecipient)
        .where(or_(BlastRecipient.read_timestamp.is_not(None), BlastRecipient.replied_at.is_not(None)))
        .group_by(read_hour, reply_hour)
    )
    pairs = pd.DataFrame(
        [tuple(row) for row in session.execute(_of_selected_blasts(query, filters))],
        columns=["read", "replied", "n"],
    )
    frame = pd.concat(
        [pairs[[what, "n"]].rename(columns={what: "hour"}).dropna().assign(what=what)
         for what in ("read", "replied")],
        ignore_index=True,
    )
    if frame.empty:
        return pd.DataFrame(columns=["what", "weekday", "hour_of_day", "n"])
    local = _to_local(frame["hour"], filters.timezone)
    frame["weekday"] = local.dt.day_name().str[:3]
    frame["hour_of_day"] = local.dt.hour
    return frame.groupby(["what", "weekday", "hour_of_day"], as_index=False)["n"].sum()


@dataclass(frozen=True)
class ResponseTimes:
    read_median: dt.timedelta | None
    read_p90: dt.timedelta | None
    reply_median: dt.timedelta | None
    reply_p90: dt.timedelta | None
    sampled: bool


def _microseconds_between(
    session: Session, earlier: ColumnElement, later: ColumnElement
) -> ColumnElement[int]:
    """`later - earlier` in whole microseconds, worked out by the database.

    Exact, as the timedelta arithmetic it replaces was: turning 100,000 timestamps into
    Python datetimes cost more than finding the rows. SQLite's text holds whole seconds
    in the first 19 characters and six digits of fraction after the dot.
    """
    if session.get_bind().dialect.name == "postgresql":
        seconds = func.extract("epoch", later) - func.extract("epoch", earlier)
        return cast(seconds * 1_000_000, BigInteger)
    # The fraction is cut off before strftime, which would round .9995 up to the next second.
    whole = cast(func.strftime("%s", func.substr(later, 1, 19)), Integer) - cast(
        func.strftime("%s", func.substr(earlier, 1, 19)), Integer
    )
    fraction = cast(func.substr(later, 21), Integer) - cast(func.substr(earlier, 21), Integer)
    return whole * 1_000_000 + fraction


def response_times(session: Session, *, filters: FunnelFilter) -> ResponseTimes:
    """Median and 90th percentile of time from sending to reading, and to replying, over
    the most recent RESPONSE_SAMPLE messages that got that far."""
    results: dict[str, tuple[dt.timedelta | None, dt.timedelta | None]] = {}
    sampled = False
    for label, column in (("read", BlastRecipient.read_timestamp), ("reply", BlastRecipient.replied_at)):
        query = (
            select(_microseconds_between(session, BlastRecipient.sent_at, column))
            .select_from(BlastRecipient)
            .where(BlastRecipient.sent_at.is_not(None), column.is_not(None))
            .order_by(BlastRecipient.id.desc())
            .limit(RESPONSE_SAMPLE)
        )
        micros = session.scalars(_of_selected_blasts(query, filters)).all()
        sampled = sampled or len(micros) == RESPONSE_SAMPLE
        seconds = pd.Series(micros, dtype="int64") / 1e6
        seconds = seconds[seconds >= 0]
        if seconds.empty:
            results[label] = (None, None)
        else:
            results[label] = (
                dt.timedelta(seconds=float(seconds.median())),
                dt.timedelta(seconds=float(seconds.quantile(0.9))),
            )
    return ResponseTimes(*results["read"], *results["reply"], sampled=sampled)


def tag_comparison(session: Session, *, filters: FunnelFilter) -> pd.DataFrame:
    """Each tag's read, reply and close rates of sent messages, with 95% Wilson intervals.

    From the per-blast status rollups, like the funnel: a few rows per blast, not one per
    recipient. Tags with equal numbers sent are listed by name.
    """
    records = []
    for tag, counts in status_counts_by_tag(session, filters=filters).items():
        totals = funnel_of(counts)
        record: dict[str, object] = {"tag": tag or "(no tag)", "sent": totals.sent}
        for stage in (Stage.READ, Stage.REPLIED, Stage.CLOSED):
            reached = totals.count(stage)
            low, high = wilson_interval(reached, totals.sent)
            record[f"{stage}_rate"] = 100.0 * reached / totals.sent if totals.sent else 0.0
            record[f"{stage}_low"], record[f"{stage}_high"] = 100.0 * low, 100.0 * high
        records.append(record)
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(records).sort_values(["sent", "tag"], ascending=[False, True])
    return frame.reset_index(drop=True)
