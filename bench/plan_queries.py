"""The plan's funnel queries (schema-plan.md), run over any filtered set of blasts, and a recount.

The plan's "Get Blast Metrics" and "Get Recipients Stuck at Each Stage" are written for
one blast (`WHERE b.id = ?`); here the same SQL takes the dashboard's filters instead, so
both sides count the same recipients. The recount applies our funnel definitions to the
raw rows: what the rollup-based queries must equal.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import TextClause, bindparam, case, func, select, text
from sqlalchemy.orm import Session

from core.funnel import Funnel, FunnelFilter, apply_filter, status_rank
from core.models import Blast, BlastRecipient, UtcDateTime
from core.statuses import Stage, Status

PLAN_METRICS = """
SELECT
  {group_columns}
  COUNT(*) as total_sent,
  COUNT(*) FILTER (WHERE br.status != 'PENDING') as received,
  COUNT(*) FILTER (WHERE br.status IN ('READ_ACK', 'REPLIED', 'CLOSED')) as read,
  COUNT(*) FILTER (WHERE br.status IN ('REPLIED', 'CLOSED')) as replied,
  COUNT(*) FILTER (WHERE br.status = 'CLOSED') as closed
FROM blasts b
LEFT JOIN blast_recipients br ON b.id = br.blast_id
WHERE {where}
{group_by}
"""

PLAN_STUCK = """
SELECT
  status,
  COUNT(*) as count,
  COUNT(*) * 100.0 / (SELECT COUNT(*) FROM blast_recipients WHERE blast_id IN ({blasts})) as percentage
FROM blast_recipients
WHERE blast_id IN ({blasts})
GROUP BY status
ORDER BY
  CASE status
    WHEN 'PENDING' THEN 1
    WHEN 'DELIVERY_ACK' THEN 2
    WHEN 'READ_ACK' THEN 3
    WHEN 'REPLIED' THEN 4
    WHEN 'CLOSED' THEN 5
  END
"""


def _where(filters: FunnelFilter, alias: str = "b") -> tuple[str, dict[str, object]]:
    """The filter as SQL on `blasts`, with its parameters (local days → UTC instants)."""
    zone = ZoneInfo(filters.timezone)
    parts, params = ["1 = 1"], {}
    if filters.start is not None:
        parts.append(f"{alias}.blast_date >= :start")
        params["start"] = _midnight(filters.start, zone)
    if filters.end is not None:
        parts.append(f"{alias}.blast_date < :end")
        params["end"] = _midnight(filters.end + dt.timedelta(days=1), zone)
    for name, column, values in (("tag", "blast_tag", filters.tags),
                                 ("stage", "follow_up_stage", filters.follow_up_stages),
                                 ("blast", "id", filters.blast_ids)):
        if values:
            keys = [f"{name}{i}" for i in range(len(values))]
            parts.append(f"{alias}.{column} IN ({', '.join(':' + k for k in keys)})")
            params.update(zip(keys, values, strict=True))
    return " AND ".join(parts), params


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)


def _bound(sql: str, params: dict[str, object]) -> TextClause:
    # Dates go through the model's column type, so SQLite compares its stored UTC text.
    clause = text(sql)
    dated = [bindparam(k, type_=UtcDateTime) for k in ("start", "end") if k in params]
    return clause.bindparams(*dated) if dated else clause


def plan_blast_metrics(session: Session, filters: FunnelFilter, *, per_blast: bool = True) -> list:
    """The plan's Get Blast Metrics over the filtered blasts: per blast, or one row for all."""
    where, params = _where(filters)
    sql = PLAN_METRICS.format(
        where=where,
        group_columns="b.id as blast_id, b.blast_tag, b.blast_date," if per_blast else "",
        group_by="GROUP BY b.id, b.blast_tag, b.blast_date" if per_blast else "",
    )
    return session.execute(_bound(sql, params), params).all()


def plan_stuck(session: Session, filters: FunnelFilter) -> list:
    """The plan's Get Recipients Stuck at Each Stage over the filtered blasts."""
    where, params = _where(filters)
    sql = PLAN_STUCK.format(blasts=f"SELECT b.id FROM blasts b WHERE {where}")
    return session.execute(_bound(sql, params), params).all()


def recount(session: Session, filters: FunnelFilter) -> Funnel:
    """Our funnel's definitions counted on the raw recipient rows (what core.funnel did
    before the rollups): the reference the rollup-based funnel must equal."""
    rank = status_rank()

    def count_where(condition, name: str):  # type: ignore[no-untyped-def]
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0).label(name)

    waiting = BlastRecipient.status.in_([Status.QUEUED.value, Status.SENDING.value])
    columns = [func.count(BlastRecipient.id).label("total"), count_where(waiting, "waiting")]
    columns += [count_where(rank >= stage.min_rank, stage.value) for stage in Stage]
    columns.append(count_where(BlastRecipient.status == Status.FAILED.value, "failed"))
    columns.append(count_where(BlastRecipient.status == Status.UNKNOWN.value, "unknown"))
    query = select(*columns).select_from(BlastRecipient).join(Blast)
    row = session.execute(apply_filter(query, filters)).one()
    return Funnel(**{k: int(v) for k, v in row._asdict().items()})
