"""Funnel queries: how many recipients reached each stage, over any set of blasts, from the rollups."""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Subquery, any_, bindparam, case, func, or_, select, text, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core import rollup_cache
from core.config import PRACTICE_DEVICES
from core.models import (
    Blast,
    BlastHourCount,
    BlastHourDelta,
    BlastRecipient,
    BlastStatusCount,
    BlastStatusDelta,
)
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
    # Once the dashboard sends to WhatsApp, the blasts made in practice mode (the sandbox's,
    # the demo data's) are not the team's results: their reads and replies were made up.
    leave_out_practice: bool = False


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
    device: str | None = None  # which gateway sends it: `core.sending.gateways.sends`


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def status_rank() -> ColumnElement[int]:
    """The status's rank as SQL, from the one table in core.statuses."""
    return case({s.value: r for s, r in RANK.items()}, value=BlastRecipient.status, else_=0)


# Which parts a filter uses. Statements are built once per shape and reused with the
# filter's values as parameters: building SQLAlchemy expressions cost more than running
# the queries once they read rollups.
_Shape = tuple[bool, bool, bool, bool, bool, bool]


def _shape(filters: FunnelFilter) -> _Shape:
    return (filters.start is not None, filters.end is not None, bool(filters.tags),
            bool(filters.follow_up_stages), bool(filters.blast_ids), filters.leave_out_practice)


def _params(filters: FunnelFilter) -> dict[str, object]:
    zone = ZoneInfo(filters.timezone)
    params: dict[str, object] = {}
    if filters.start is not None:
        params["start"] = _local_midnight(filters.start, zone)
    if filters.end is not None:
        params["end"] = _local_midnight(filters.end + dt.timedelta(days=1), zone)
    for name, values in (("tags", filters.tags), ("stages", filters.follow_up_stages),
                         ("blast_ids", filters.blast_ids)):
        if values:
            params[name] = list(values)
    return params


def _restrict(query: Select, shape: _Shape) -> Select:
    has_start, has_end, has_tags, has_stages, has_ids, no_practice = shape
    if has_start:
        query = query.where(Blast.blast_date >= bindparam("start"))
    if has_end:
        query = query.where(Blast.blast_date < bindparam("end"))
    if has_tags:
        query = query.where(Blast.blast_tag.in_(bindparam("tags", expanding=True)))
    if has_stages:
        query = query.where(Blast.follow_up_stage.in_(bindparam("stages", expanding=True)))
    if has_ids:
        query = query.where(Blast.id.in_(bindparam("blast_ids", expanding=True)))
    if no_practice:
        query = query.where(not_practice())
    return query


def not_practice() -> ColumnElement[bool]:
    """A blast not made in practice mode: a draft not yet given a device belongs to whichever
    gateway will send it, the one in use. The devices are fixed, so they are bound here."""
    return or_(Blast.device.is_(None),
               Blast.device.not_in(bindparam("practice_devices", list(PRACTICE_DEVICES), expanding=True)))


def of_selected_blasts(query: Select, blast_id: ColumnElement[int], filters: FunnelFilter,
                       dialect: str) -> Select:
    """Restrict `query` to rows whose `blast_id` is one of the filter's blasts.

    With no filter, nothing is added. On PostgreSQL the blast ids go in as an array, as for
    the rollups (see `_selected`): it then fetches the chosen blasts' rows by their blast,
    where a join made it scan the whole table (for the recipients of one tag, 45-60 ms
    against 220-460 ms at a million).
    """
    shape = _shape(filters)
    if not any(shape):
        return query
    return query.where(_chosen(blast_id, shape, dialect)).params(**_params(filters))


def _chosen(blast_id: ColumnElement[int], shape: _Shape, dialect: str) -> ColumnElement[bool]:
    """`blast_id` is one of the blasts a filter of this shape selects."""
    chosen = _restrict(select(Blast.id), shape)
    if dialect == "postgresql":
        return blast_id == any_(func.array(chosen.scalar_subquery()))
    return blast_id.in_(chosen)


def apply_filter(query: Select, filters: FunnelFilter) -> Select:
    """Restrict a query that involves `blasts` to the blasts the filter selects."""
    return _restrict(query, _shape(filters)).params(**_params(filters))


def _local_midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)


def _rollup(shape: _Shape, dialect: str) -> Subquery:
    """Recipients per (blast, status) of the selected blasts: the trigger-kept counts plus
    PostgreSQL's unfolded deltas.

    Summing `n` gives what counting blast_recipients would, at the cost of a few rows per
    blast instead of one per recipient.
    """
    counts = select(
        BlastStatusCount.blast_id, BlastStatusCount.status, BlastStatusCount.recipients.label("n")
    )
    deltas = select(
        BlastStatusDelta.blast_id, BlastStatusDelta.status, BlastStatusDelta.delta.label("n")
    )
    return _selected(counts, BlastStatusCount.blast_id, deltas, BlastStatusDelta.blast_id,
                     shape, dialect).subquery("rollup")


def _selected(counts: Select, counts_blast: ColumnElement[int], deltas: Select,
              deltas_blast: ColumnElement[int], shape: _Shape, dialect: str) -> Select:
    """A rollup's counts and deltas, of the selected blasts only, as one UNION ALL.

    The filter sits inside each branch, so a narrow selection reads only its blasts' rows.
    On PostgreSQL the selected blast ids go in as an array (`blast_id = ANY(ARRAY(SELECT …))`),
    which it reads through the primary key; joined instead, it scanned every count row to
    hash them (1.7 ms against 0.26 ms for the last 30 days at a million recipients). With
    no filter there is nothing to join.
    """
    if any(shape):
        if dialect == "postgresql":
            counts = counts.where(_chosen(counts_blast, shape, dialect))
            deltas = deltas.where(_chosen(deltas_blast, shape, dialect))
        else:
            counts = _restrict(counts.join(Blast, Blast.id == counts_blast), shape)
            deltas = _restrict(deltas.join(Blast, Blast.id == deltas_blast), shape)
    return union_all(counts, deltas)


# The measures of the hour rollups (migrations 0004 and 0005).
SENT, READ, REPLIED = "sent", "read", "replied"


@functools.cache
def _hour_counts_statement(shape: _Shape, dialect: str) -> Select:
    c, d = BlastHourCount, BlastHourDelta
    counts = select(c.what, c.hour, c.status, c.recipients.label("n")).where(
        c.what.in_(bindparam("what", expanding=True)))
    deltas = select(d.what, d.hour, d.status, d.delta.label("n")).where(
        d.what.in_(bindparam("what", expanding=True)))
    rollup = _selected(counts, c.blast_id, deltas, d.blast_id, shape, dialect).subquery("hours")
    total = func.sum(rollup.c.n)
    return (select(rollup.c.what, rollup.c.hour, rollup.c.status, total)
            .group_by(rollup.c.what, rollup.c.hour, rollup.c.status)
            .having(total != 0))


@functools.cache
def _sent_by_hour_statement(shape: _Shape, dialect: str) -> Select:
    c, d = BlastHourCount, BlastHourDelta
    counts = select(c.hour, c.status, c.recipients.label("n")).where(c.what == SENT)
    deltas = select(d.hour, d.status, d.delta.label("n")).where(d.what == SENT)
    rollup = _selected(counts, c.blast_id, deltas, d.blast_id, shape, dialect).subquery("hours")
    status, n = rollup.c.status, rollup.c.n

    def reaching(stage: Stage) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((status.in_(statuses_reaching(stage.min_rank)), n), else_=0)), 0)

    # Sent by rank, as in the funnel: a message that failed after the gateway took it keeps its
    # send time, but was not sent to anyone.
    sent = reaching(Stage.SENT)
    return (select(rollup.c.hour, sent, reaching(Stage.READ), reaching(Stage.REPLIED))
            .group_by(rollup.c.hour).having(sent != 0))


def sent_by_hour(session: Session, *, filters: FunnelFilter | None = None) -> list[tuple[str, int, int, int]]:
    """(UTC hour 'YYYY-MM-DD HH', sent, of them read, of them replied) over the selected
    blasts, from the hour rollups; read and replied by the statuses' ranks, as in the funnel.
    Grouped in the database: a few thousand hours, not a row per blast, hour and status."""
    filters = filters or FunnelFilter()
    statement = _sent_by_hour_statement(_shape(filters), _dialect(session))
    return [tuple(row) for row in session.connection().execute(statement, _params(filters)).all()]


def hour_counts(
    session: Session, *, filters: FunnelFilter | None = None, what: tuple[str, ...] = (SENT, READ, REPLIED)
) -> list[tuple[str, str, str, int]]:
    """(measure, UTC hour 'YYYY-MM-DD HH', status, recipients) over the selected blasts,
    from the hour rollups: `SENT` by the hour of sending and current status; `READ` and
    `REPLIED` by the hour it happened (status ''). Hours with none left out."""
    filters = filters or FunnelFilter()
    statement = _hour_counts_statement(_shape(filters), _dialect(session))
    # Tens of thousands of rows at a million recipients: read without the ORM's row handling,
    # and fetched at once (row by row, psycopg's checks per fetch took 8 µs a row).
    rows = session.connection().execute(statement, {**_params(filters), "what": list(what)}).all()
    return [tuple(row) for row in rows]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


_WAITING = (Status.QUEUED.value, Status.SENDING.value)


def statuses_reaching(min_rank: int) -> list[str]:
    """The statuses at or past a rank: every one that has got that far."""
    return [s.value for s, r in RANK.items() if r >= min_rank]


def _count_columns(rollup: Subquery) -> list[ColumnElement[int]]:
    """One summed column per Funnel field, in the dataclass's order (rows unpack into it)."""
    status, n = rollup.c.status, rollup.c.n

    def count_where(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, n), else_=0)), 0)

    columns = {
        "total": func.coalesce(func.sum(n), 0),
        "waiting": count_where(status.in_(_WAITING)),
        "failed": count_where(status == Status.FAILED.value),
        "unknown": count_where(status == Status.UNKNOWN.value),
    }
    columns.update({stage.value: count_where(status.in_(statuses_reaching(stage.min_rank)))
                    for stage in Stage})
    return [columns[name].label(name) for name in Funnel.__dataclass_fields__]



@functools.cache
def _status_counts_statement(shape: _Shape, dialect: str) -> Select:
    rollup = _rollup(shape, dialect)
    total = func.sum(rollup.c.n)
    return select(rollup.c.status, total).group_by(rollup.c.status).having(total != 0)


@functools.cache
def _by_blast_statement(shape: _Shape, dialect: str) -> Select:
    rollup = _rollup(shape, dialect)
    query = (
        select(
            Blast.id, Blast.blast_tag, Blast.follow_up_stage, Blast.blast_date, Blast.state,
            Blast.name, Blast.device, *_count_columns(rollup),
        )
        .select_from(Blast)
        .outerjoin(rollup, rollup.c.blast_id == Blast.id)
        .group_by(Blast.id)
        .order_by(Blast.blast_date.desc(), Blast.id.desc())
    )
    return _restrict(query, shape)


def _blasts_of(filters: FunnelFilter) -> frozenset[int] | None:
    """The blasts whose moves can change a filter's answer (`core.rollup_cache`): its named
    blasts, or None for any blast (a date range or a tag gains a blast when one is made)."""
    return frozenset(filters.blast_ids) if filters.blast_ids else None


def status_counts(session: Session, *, filters: FunnelFilter | None = None) -> dict[str, int]:
    """Recipients of the selected blasts by current status (statuses with none left out)."""
    filters = filters or FunnelFilter()

    def read() -> dict[str, int]:
        rows = session.execute(_status_counts_statement(_shape(filters), _dialect(session)), _params(filters))
        return {status: int(n) for status, n in rows}

    return dict(rollup_cache.remembered(session, ("status_counts", filters), _blasts_of(filters), read))


@functools.cache
def _by_tag_statement(shape: _Shape, dialect: str) -> Select:
    rollup = _rollup(shape, dialect)
    total = func.sum(rollup.c.n)
    return (
        select(Blast.blast_tag, rollup.c.status, total)
        .select_from(rollup)
        .join(Blast, Blast.id == rollup.c.blast_id)
        .group_by(Blast.blast_tag, rollup.c.status)
        .having(total != 0)
    )


def status_counts_by_tag(
    session: Session, *, filters: FunnelFilter | None = None
) -> dict[str | None, dict[str, int]]:
    """Recipients of the selected blasts by campaign tag and current status, from the rollups
    (tags whose recipients are all gone left out)."""
    filters = filters or FunnelFilter()
    by_tag: dict[str | None, dict[str, int]] = {}
    statement = _by_tag_statement(_shape(filters), _dialect(session))
    for tag, status, n in session.execute(statement, _params(filters)):
        by_tag.setdefault(tag, {})[status] = int(n)
    return by_tag


def funnel_of(counts: dict[str, int]) -> Funnel:
    """The funnel that recipients by status make: each counts in every stage its status reaches."""
    rank = {s.value: r for s, r in RANK.items()}
    stages = {stage.value: sum(n for status, n in counts.items() if rank.get(status, 0) >= stage.min_rank)
              for stage in Stage}
    return Funnel(
        total=sum(counts.values()),
        waiting=sum(counts.get(status, 0) for status in _WAITING),
        failed=counts.get(Status.FAILED.value, 0),
        unknown=counts.get(Status.UNKNOWN.value, 0),
        **stages,
    )


def funnel(session: Session, *, filters: FunnelFilter | None = None) -> Funnel:
    """Cumulative stage counts over every recipient of the selected blasts."""
    filters = filters or FunnelFilter()
    return rollup_cache.remembered(session, ("funnel", filters), _blasts_of(filters),
                                   lambda: funnel_of(status_counts(session, filters=filters)))


def funnel_by_blast(
    session: Session, *, filters: FunnelFilter | None = None
) -> list[BlastFunnel]:
    """One funnel per selected blast, newest first; blasts with no recipients included."""
    filters = filters or FunnelFilter()

    def read() -> list[BlastFunnel]:
        rows = session.execute(_by_blast_statement(_shape(filters), _dialect(session)), _params(filters))
        # Unpacked by position: attribute access on 2,000 rows × 15 columns costs more than the query.
        return [
            BlastFunnel(
                blast_id=blast_id,
                blast_tag=tag,
                follow_up_stage=stage,
                blast_date=date,
                state=state,
                name=name,
                funnel=Funnel(*map(int, counts)),
                device=device,
            )
            for blast_id, tag, stage, date, state, name, device, *counts in rows
        ]

    return list(rollup_cache.remembered(session, ("funnel_by_blast", filters), _blasts_of(filters), read))


def filter_options(session: Session, *, leave_out_practice: bool = False) -> tuple[list[str], list[str]]:
    """The tags and follow-up stages in use, for the filter pickers (with `leave_out_practice`,
    those of blasts not made in practice mode). Stages come in the order they are sent in."""
    options = []
    for column in (Blast.blast_tag, Blast.follow_up_stage):
        query = select(column).where(column.is_not(None)).distinct().order_by(column)
        if leave_out_practice:
            query = query.where(not_practice())
        options.append(list(session.scalars(query)))
    tags, stages = options
    return tags, sorted(stages, key=stage_order)


INITIAL_STAGE = "Initial"
_ENDS_IN_NUMBER = re.compile(r"(\d+)\s*$")


def follow_up_number(stage: str | None) -> int | None:
    """N for "Follow-up N" however it is typed ("follow up 2", "Followup 2"); None for any other stage."""
    found = _ENDS_IN_NUMBER.search(stage or "")
    return int(found.group(1)) if found and "follow" in (stage or "").casefold() else None


def stage_order(stage: str) -> tuple[int, int, str]:
    """"Initial", then "Follow-up 1", "Follow-up 2" … "Follow-up 10" by number (not as text,
    which puts 10 before 2 and every follow-up before "Initial"), then any other name A to Z."""
    if stage.strip().casefold() == INITIAL_STAGE.casefold():
        return (0, 0, "")
    number = follow_up_number(stage)
    if number is not None:
        return (1, number, stage.casefold())
    return (2, 0, stage.casefold())


def closed_without_reply(session: Session, *, filters: FunnelFilter) -> int:
    """Sales recorded (by hand or from a file) for recipients of the selected blasts who never
    wrote back: the funnel counts them as replied, since each stage counts everyone who got
    that far."""
    query = (
        select(func.count()).select_from(BlastRecipient)
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(BlastRecipient.status == Status.CLOSED.value, BlastRecipient.replied_at.is_(None))
    )
    return session.scalar(apply_filter(query, filters)) or 0


def stuck_at_each_stage(session: Session, *, blast_id: int) -> list[tuple[str, int, float]]:
    """The plan's "stuck at each stage": recipients by current status, with % of the blast."""
    filters = FunnelFilter(blast_ids=(blast_id,))

    def read() -> list[tuple[str, int, float]]:
        counts = status_counts(session, filters=filters)
        total = sum(counts.values()) or 1
        return sorted(
            ((status, count, 100.0 * count / total) for status, count in counts.items()),
            key=lambda r: _STATUS_ORDER.get(r[0], 99),
        )

    return list(rollup_cache.remembered(session, ("stuck", blast_id), _blasts_of(filters), read))


_STATUS_ORDER = {s.value: i for i, s in enumerate(Status)}


# Any fixed number: one fold at a time, so two folds cannot lock count rows in turn.
_FOLD_LOCK_ID = 7_305_114
_FOLD = text("""
WITH moved AS (
    DELETE FROM blast_status_deltas RETURNING blast_id, status, delta
), folded AS (  -- runs in full although nothing reads it
    INSERT INTO blast_status_counts AS c (blast_id, status, recipients)
    SELECT m.blast_id, m.status, sum(m.delta)
    FROM moved m JOIN blasts b ON b.id = m.blast_id
    GROUP BY m.blast_id, m.status
    HAVING sum(m.delta) <> 0
    ON CONFLICT (blast_id, status) DO UPDATE SET recipients = c.recipients + excluded.recipients
)
SELECT count(*) FROM moved
""").execution_options(**{rollup_cache.COUNTS_UNCHANGED: True})  # the sums stay as they were
_FOLD_HOURS = text("""
WITH moved AS (
    DELETE FROM blast_hour_deltas RETURNING blast_id, what, hour, status, delta
), folded AS (
    INSERT INTO blast_hour_counts AS c (blast_id, what, hour, status, recipients)
    SELECT m.blast_id, m.what, m.hour, m.status, sum(m.delta)
    FROM moved m JOIN blasts b ON b.id = m.blast_id
    GROUP BY m.blast_id, m.what, m.hour, m.status
    HAVING sum(m.delta) <> 0
    ON CONFLICT (blast_id, what, hour, status) DO UPDATE SET recipients = c.recipients + excluded.recipients
)
SELECT count(*) FROM moved
""").execution_options(**{rollup_cache.COUNTS_UNCHANGED: True})


def fold_rollup_deltas(session: Session) -> int:
    """Fold PostgreSQL's status and hour deltas into their counts, and trim the change log;
    returns how many deltas were folded.

    Readers are right either way (they add the deltas); folding keeps them fast. Deltas of
    a blast deleted meanwhile are dropped. A no-op on SQLite, whose triggers count directly,
    and while another process is folding.
    """
    if session.get_bind().dialect.name != "postgresql":
        return 0
    if not session.scalar(select(func.pg_try_advisory_xact_lock(_FOLD_LOCK_ID))):
        return 0
    rollup_cache.trim_log(session)
    return int(session.scalar(_FOLD) or 0) + int(session.scalar(_FOLD_HOURS) or 0)
