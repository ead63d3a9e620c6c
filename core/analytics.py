"""Beyond the funnel: trends by day, tags compared fairly, response times, when people answer."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.funnel import FunnelFilter, apply_filter, status_rank
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


def _hour_bucket(session: Session, column: ColumnElement) -> ColumnElement[str]:
    """'YYYY-MM-DD HH' of a UTC timestamp, on either database (the zone shift happens later)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    return func.strftime("%Y-%m-%d %H", column)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _to_local(buckets: pd.Series, zone: str) -> pd.Series:
    return pd.to_datetime(buckets, format="%Y-%m-%d %H", utc=True).dt.tz_convert(zone)


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
        .join(Blast)
        .where(BlastRecipient.sent_at.is_not(None))
        .group_by(bucket)
    )
    rows = session.execute(apply_filter(query, filters)).all()
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
    frames = []
    for label, column in (("read", BlastRecipient.read_timestamp), ("replied", BlastRecipient.replied_at)):
        bucket = _hour_bucket(session, column)
        query = (
            select(bucket.label("hour"), func.count().label("n"))
            .select_from(BlastRecipient)
            .join(Blast)
            .where(column.is_not(None))
            .group_by(bucket)
        )
        rows = pd.DataFrame(session.execute(apply_filter(query, filters)).all(), columns=["hour", "n"])
        rows["what"] = label
        frames.append(rows)
    frame = pd.concat(frames, ignore_index=True)
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


def response_times(session: Session, *, filters: FunnelFilter) -> ResponseTimes:
    """Median and 90th percentile of time from sending to reading, and to replying."""
    results: dict[str, tuple[dt.timedelta | None, dt.timedelta | None]] = {}
    sampled = False
    for label, column in (("read", BlastRecipient.read_timestamp), ("reply", BlastRecipient.replied_at)):
        query = (
            select(BlastRecipient.sent_at, column)
            .select_from(BlastRecipient)
            .join(Blast)
            .where(BlastRecipient.sent_at.is_not(None), column.is_not(None))
            .order_by(BlastRecipient.id.desc())
            .limit(RESPONSE_SAMPLE)
        )
        rows = session.execute(apply_filter(query, filters)).all()
        sampled = sampled or len(rows) == RESPONSE_SAMPLE
        seconds = pd.Series([(later - sent).total_seconds() for sent, later in rows], dtype=float)
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
    """Each tag's read, reply and close rates of sent messages, with 95% Wilson intervals."""
    rank = status_rank()
    query = (
        select(
            Blast.blast_tag.label("tag"),
            _count_if(rank >= Stage.SENT.min_rank).label("sent"),
            _count_if(rank >= Stage.READ.min_rank).label("read"),
            _count_if(rank >= Stage.REPLIED.min_rank).label("replied"),
            _count_if(rank >= Stage.CLOSED.min_rank).label("closed"),
        )
        .select_from(BlastRecipient)
        .join(Blast)
        .group_by(Blast.blast_tag)
    )
    rows = session.execute(apply_filter(query, filters)).all()
    records = []
    for row in rows:
        record = {"tag": row.tag or "(no tag)", "sent": row.sent}
        for stage in ("read", "replied", "closed"):
            low, high = wilson_interval(getattr(row, stage), row.sent)
            record[f"{stage}_rate"] = 100.0 * getattr(row, stage) / row.sent if row.sent else 0.0
            record[f"{stage}_low"], record[f"{stage}_high"] = 100.0 * low, 100.0 * high
        records.append(record)
    return (
        pd.DataFrame.from_records(records).sort_values("sent", ascending=False) if records else pd.DataFrame()
    )
