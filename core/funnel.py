"""Funnel queries: how many recipients reached each stage, over any set of blasts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.models import Blast, BlastRecipient
from core.statuses import RANK, Stage, Status


@dataclass(frozen=True)
class FunnelFilter:
    """Which blasts to count. Dates are the team's local calendar days, inclusive."""

    start: dt.date | None = None
    end: dt.date | None = None
    tags: tuple[str, ...] = ()
    follow_up_stages: tuple[str, ...] = ()
    blast_ids: tuple[int, ...] = ()
    timezone: str = "Asia/Kuala_Lumpur"


@dataclass(frozen=True)
class Funnel:
    total: int = 0
    waiting: int = 0
    sent: int = 0
    received: int = 0
    read: int = 0
    replied: int = 0
    closed: int = 0
    failed: int = 0
    unknown: int = 0

    def count(self, stage: Stage) -> int:
        return getattr(self, stage.value)

    def pct_of_sent(self, stage: Stage) -> float | None:
        return _pct(self.count(stage), self.sent)

    def pct_of_previous(self, stage: Stage) -> float | None:
        stages = list(Stage)
        index = stages.index(stage)
        if index == 0:
            return None
        return _pct(self.count(stage), self.count(stages[index - 1]))


@dataclass(frozen=True)
class BlastFunnel:
    blast_id: int
    blast_tag: str | None
    follow_up_stage: str | None
    blast_date: dt.datetime
    state: str
    name: str | None
    funnel: Funnel = field(default_factory=Funnel)


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def status_rank() -> ColumnElement[int]:
    """The status's rank as SQL, from the one table in core.statuses."""
    return case({s.value: r for s, r in RANK.items()}, value=BlastRecipient.status, else_=0)


def _count_columns() -> list[ColumnElement[int]]:
    rank = status_rank()

    def count_where(condition: ColumnElement[bool], name: str) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(name)

    waiting = BlastRecipient.status.in_([Status.QUEUED.value, Status.SENDING.value])
    columns = [func.count(BlastRecipient.id).label("total"), count_where(waiting, "waiting")]
    columns += [count_where(rank >= stage.min_rank, stage.value) for stage in Stage]
    columns.append(count_where(BlastRecipient.status == Status.FAILED.value, "failed"))
    columns.append(count_where(BlastRecipient.status == Status.UNKNOWN.value, "unknown"))
    return columns


def apply_filter(query: Select, filters: FunnelFilter) -> Select:
    """Restrict a query that involves `blasts` to the blasts the filter selects."""
    zone = ZoneInfo(filters.timezone)
    if filters.start is not None:
        query = query.where(Blast.blast_date >= _local_midnight(filters.start, zone))
    if filters.end is not None:
        next_day = filters.end + dt.timedelta(days=1)
        query = query.where(Blast.blast_date < _local_midnight(next_day, zone))
    if filters.tags:
        query = query.where(Blast.blast_tag.in_(filters.tags))
    if filters.follow_up_stages:
        query = query.where(Blast.follow_up_stage.in_(filters.follow_up_stages))
    if filters.blast_ids:
        query = query.where(Blast.id.in_(filters.blast_ids))
    return query


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)


def funnel(session: Session, *, filters: FunnelFilter | None = None) -> Funnel:
    """Cumulative stage counts over every recipient of the selected blasts."""
    query = select(*_count_columns()).select_from(BlastRecipient).join(Blast)
    row = session.execute(apply_filter(query, filters or FunnelFilter())).one()
    return Funnel(**row._asdict())


def funnel_by_blast(
    session: Session, *, filters: FunnelFilter | None = None
) -> list[BlastFunnel]:
    """One funnel per selected blast, newest first; blasts with no recipients included."""
    query = (
        select(
            Blast.id, Blast.blast_tag, Blast.follow_up_stage, Blast.blast_date, Blast.state,
            Blast.name, *_count_columns(),
        )
        .select_from(Blast)
        .outerjoin(BlastRecipient)
        .group_by(Blast.id)
        .order_by(Blast.blast_date.desc(), Blast.id.desc())
    )
    rows = session.execute(apply_filter(query, filters or FunnelFilter())).all()
    funnel_fields = Funnel.__dataclass_fields__.keys()
    return [
        BlastFunnel(
            blast_id=row.id,
            blast_tag=row.blast_tag,
            follow_up_stage=row.follow_up_stage,
            blast_date=row.blast_date,
            state=row.state,
            name=row.name,
            funnel=Funnel(**{k: getattr(row, k) for k in funnel_fields}),
        )
        for row in rows
    ]


def filter_options(session: Session) -> tuple[list[str], list[str]]:
    """The tags and follow-up stages in use, for the filter pickers."""
    tags = session.scalars(
        select(Blast.blast_tag).where(Blast.blast_tag.is_not(None)).distinct().order_by(Blast.blast_tag)
    ).all()
    stages = session.scalars(
        select(Blast.follow_up_stage)
        .where(Blast.follow_up_stage.is_not(None))
        .distinct()
        .order_by(Blast.follow_up_stage)
    ).all()
    return list(tags), list(stages)


def stuck_at_each_stage(session: Session, *, blast_id: int) -> list[tuple[str, int, float]]:
    """The plan's "stuck at each stage": recipients by current status, with % of the blast."""
    rows = session.execute(
        select(BlastRecipient.status, func.count())
        .where(BlastRecipient.blast_id == blast_id)
        .group_by(BlastRecipient.status)
    ).all()
    total = sum(count for _, count in rows) or 1
    order = {s.value: i for i, s in enumerate(Status)}
    return sorted(
        ((status, count, 100.0 * count / total) for status, count in rows),
        key=lambda r: order.get(r[0], 99),
    )

