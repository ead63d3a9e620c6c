"""The status engine for many events at once: `apply_status`'s rules, in a few statements.

The webhook applies whatever arrived together in one transaction. The recipients are
locked by one SELECT … FOR UPDATE in id order (so two batches cannot deadlock), each
event is judged in memory in the order given by `core.status_engine.judge`, the rules
`apply_status` runs too — several events for one recipient are applied one after another,
exactly as separate `apply_status` calls would be — and the
results are written with one UPDATE per set of changed columns and one history INSERT
(see `core.bulk`: on PostgreSQL each is one statement over a JSON document of the rows).
`tests/test_status_batch.py` checks it against `apply_status` event by event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import bulk
from core.models import BlastRecipient, StatusHistory, utcnow
from core.status_engine import JUDGED_COLUMNS, SETTLED_FROM, SOURCES, StatusChange, judge, tried_at
from core.statuses import Status

_TABLE = BlastRecipient.__table__
_HISTORY = StatusHistory.__table__
_HISTORY_COLUMNS = ("recipient_id", "old_status", "new_status", "changed_at", "source", "metadata")
_LOCK_CHUNK = 1000  # ids per IN list


@dataclass(frozen=True)
class StatusEvent:
    """One status to apply to one recipient, as `apply_status` takes it (never manual)."""

    recipient_id: int
    status: Status
    at: dt.datetime
    source: str
    event: Mapping[str, Any] | None = None
    # Stored with a real change; on a non-change they only fill empty columns.
    updates: Mapping[str, Any] = field(default_factory=dict)
    # Stored with a real change, and only into columns that are still empty.
    defaults: Mapping[str, Any] = field(default_factory=dict)


def apply_statuses(session: Session, events: Sequence[StatusEvent]) -> list[StatusChange | None]:
    """Apply `events` in order; one result per event, None for a recipient that does not exist."""
    for event in events:
        if event.source not in SOURCES:
            raise ValueError(f"unknown status source {event.source!r}")
    if not events:
        return []
    extra = sorted({c for e in events for c in (*e.updates, *e.defaults)} - set(JUDGED_COLUMNS))
    rows = _locked_rows(session, {e.recipient_id for e in events}, columns=(*JUDGED_COLUMNS, *extra))
    tried = tried_at(session, rows)
    dirty: dict[int, set[str]] = {}
    history: list[dict[str, Any]] = []
    results: list[StatusChange | None] = []
    for event in events:
        row = rows.get(event.recipient_id)
        if row is None:
            results.append(None)
            continue
        change, columns = _judge(row, event, tried=tried.get(event.recipient_id))
        results.append(change)
        if change.changed and Status(change.new_status) in SETTLED_FROM:
            tried[event.recipient_id] = event.at  # as its history row, written below, will say
        if columns:
            dirty.setdefault(event.recipient_id, set()).update(columns)
        if change.changed:
            history.append({
                "recipient_id": event.recipient_id, "old_status": change.old_status,
                "new_status": change.new_status, "changed_at": event.at, "source": event.source,
                "metadata": dict(event.event) if event.event is not None else None,
            })
    _write(session, rows, dirty)
    bulk.insert_rows(session.connection(), _HISTORY, columns=_HISTORY_COLUMNS, rows=history)
    return results


def lock_recipients(session: Session, ids: Iterable[int]) -> None:
    """Lock these recipients in id order, as every batch does (PostgreSQL; SQLite
    transactions already hold the write lock): a batch that moves recipients in more than
    one way locks them all first, so that it cannot deadlock with another."""
    if session.connection().dialect.name == "postgresql":
        _locked_rows(session, ids, columns=())


def _locked_rows(
    session: Session, ids: Iterable[int], *, columns: tuple[str, ...]
) -> dict[int, dict[str, Any]]:
    # FOR UPDATE in id order serialises concurrent batches without deadlocks on PostgreSQL;
    # SQLite transactions already hold the write lock (BEGIN IMMEDIATE, see core.db).
    ordered = sorted(ids)
    rows: dict[int, dict[str, Any]] = {}
    connection = session.connection()
    for start in range(0, len(ordered), _LOCK_CHUNK):
        chunk = ordered[start:start + _LOCK_CHUNK]
        statement = (
            select(_TABLE.c.id, *(_TABLE.c[c] for c in columns))
            .where(bulk.one_of(_TABLE.c.id, chunk, connection.dialect))
            .order_by(_TABLE.c.id)
            .with_for_update()
        )
        for found in connection.execute(statement).mappings():
            rows[found["id"]] = dict(found)
    return rows


def _judge(
    row: dict[str, Any], event: StatusEvent, *, tried: dt.datetime | None
) -> tuple[StatusChange, set[str]]:
    """What `apply_status` would do to `row` (updated in place); the columns it changed."""
    old = row["status"]
    changed, columns = judge(row, Status(event.status), at=event.at, updates=event.updates,
                             defaults=event.defaults, tried=tried)
    return StatusChange(event.recipient_id, old, row["status"], changed=changed), columns


def _write(session: Session, rows: dict[int, dict[str, Any]], dirty: dict[int, set[str]]) -> None:
    groups: dict[tuple[str, ...], list[int]] = {}
    for recipient_id, columns in dirty.items():
        groups.setdefault(tuple(sorted(columns)), []).append(recipient_id)
    now = utcnow()
    connection = session.connection()
    for columns, ids in groups.items():  # one statement per set of changed columns
        bulk.update_rows(connection, _TABLE, key="id", columns=columns,
                         rows=[rows[i] for i in ids], same={"updated_at": now})
