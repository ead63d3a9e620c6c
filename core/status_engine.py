"""The one way a recipient's status changes: ranked, monotonic, stamped and recorded in history."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    Table,
    Update,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.models import BlastRecipient, StatusHistory, UtcDateTime, utcnow
from core.statuses import (
    RANK,
    STAGE_TIMESTAMP_COLUMN,
    Stage,
    Status,
    stages_between,
)

SOURCES = ("send", "webhook", "polling", "manual", "import")

# Moves between equal ranks that are real: a worker's claim and release, and the two
# outcomes that sit beside the funnel. FAILED/UNKNOWN back to QUEUED only by hand.
_SIDEWAYS = {
    (Status.QUEUED, Status.SENDING),
    (Status.SENDING, Status.QUEUED),
    (Status.QUEUED, Status.FAILED),
    (Status.SENDING, Status.FAILED),
    (Status.QUEUED, Status.UNKNOWN),
    (Status.SENDING, Status.UNKNOWN),
}
# The one move down: the gateway took the message (on its way, one tick) and then reported an
# error for it (WhatsApp could not deliver it: a number not on WhatsApp, a phone that lost the
# message). It never reached the person, so it leaves the funnel. Once a receipt or a reply
# from the person has proved otherwise (received and on), an error changes nothing.
_FAILED_AFTER_TAKEN = {
    (Status.PENDING, Status.FAILED),
    (Status.SERVER_ACK, Status.FAILED),
}
# A message that failed after the gateway took it keeps its send time (it went from here),
# and only evidence from the person's phone lifts it again: a late "on its way" or "one tick"
# was sent before the error, whatever order the two arrive in.
LIFTS_FAILED_AFTER_TAKEN = Stage.RECEIVED.min_rank


@dataclass(frozen=True)
class StatusChange:
    recipient_id: int
    old_status: str
    new_status: str
    changed: bool


def is_allowed(old: Status, new: Status, *, manual: bool = False) -> bool:
    """Whether moving from `old` to `new` is a real change under the ranked model."""
    if old == new:
        return False
    if manual:
        return True
    if RANK[new] > RANK[old]:
        return True
    return (old, new) in _SIDEWAYS or (old, new) in _FAILED_AFTER_TAKEN


def apply_status(
    session: Session,
    *,
    recipient_id: int,
    status: Status | str,
    source: str,
    at: dt.datetime | None = None,
    event: Mapping[str, Any] | None = None,
    manual: bool = False,
    updates: Mapping[str, Any] | None = None,
    record_history: bool = True,
    known_old: Status | None = None,
    stamp_skipped: bool = True,
    only_from: Collection[str] | None = None,
) -> StatusChange:
    """Move one recipient to `status` if that is progress, and record the change.

    Only upward moves happen, whatever order events arrive in; `manual=True` allows a
    person's correction in any direction. Each stage reached for the first time gets
    `at` as its timestamp (a skipped stage takes the later event's time, unless
    `stamp_skipped` is off: a sale says when it was made, not when the message was read or
    answered, so it stamps only its own stage). `updates` are
    column values stored with a real change; on a non-change they only fill empty
    columns, so a late event can still complete missing details.

    `only_from` makes the move a compare-and-set: a recipient found, once locked, in any other
    status is left as it is. A person's decision about the status they saw (send an unknown
    send again) must not undo a reply that landed meanwhile.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown status source {source!r}")
    new = Status(status)
    at = at or utcnow()
    if (known_old is not None and known_old is not Status.FAILED and not manual and stamp_skipped
            and is_allowed(known_old, new)):
        fast = _compare_and_set(
            session, recipient_id=recipient_id, old=known_old, new=new, source=source, at=at,
            event=event, updates=updates or {}, record_history=record_history,
        )
        if fast is not None:
            return fast
    recipient = _locked_recipient(session, recipient_id)
    row = {column: getattr(recipient, column) for column in (*JUDGED_COLUMNS, *(updates or {}))}
    old = Status(row["status"])
    if only_from is not None and old.value not in only_from:
        return StatusChange(recipient_id, old.value, old.value, changed=False)
    tried = tried_at(session, {recipient_id: row}).get(recipient_id)
    changed, columns = judge(row, new, at=at, updates=updates or {}, manual=manual,
                             stamp_skipped=stamp_skipped, tried=tried)
    for column in columns:
        setattr(recipient, column, row[column])
    if not changed:
        return StatusChange(recipient_id, old.value, old.value, changed=False)
    if record_history:
        session.add(
            StatusHistory(
                recipient_id=recipient_id,
                old_status=old.value,
                new_status=new.value,
                changed_at=at,
                source=source,
                event=dict(event) if event is not None else None,
            )
        )
    session.flush()
    return StatusChange(recipient_id, old.value, new.value, changed=True)


def _compare_and_set(
    session: Session, *, recipient_id: int, old: Status, new: Status, source: str,
    at: dt.datetime, event: Mapping[str, Any] | None, updates: Mapping[str, Any], record_history: bool,
) -> StatusChange | None:
    """The hot path when the caller knows the current status (a worker storing its own send):
    one conditional UPDATE instead of lock, read, write. None when the row has moved on."""
    params = compare_and_set_params(recipient_id=recipient_id, source=source, at=at, event=event,
                                    updates=updates)
    # On the connection: the ORM has nothing to load or synchronise here.
    connection = session.connection()
    if record_history and connection.dialect.name == "postgresql":
        recorded = connection.execute(compare_and_set_statement(old, new, tuple(updates)), params).rowcount
        return StatusChange(recipient_id, old.value, new.value, changed=True) if recorded == 1 else None
    if connection.execute(_compare_and_set_statement(old, new, tuple(updates)), params).rowcount != 1:
        return None
    if record_history:
        connection.execute(_HISTORY_INSERT, {
            "recipient_id": recipient_id, "old_status": old.value, "new_status": new.value,
            "changed_at": at, "source": source, "metadata": dict(event) if event is not None else None,
        })
    return StatusChange(recipient_id, old.value, new.value, changed=True)


_HISTORY_INSERT = insert(StatusHistory.__table__)


def compare_and_set_params(
    *, recipient_id: int, source: str, at: dt.datetime, event: Mapping[str, Any] | None,
    updates: Mapping[str, Any],
) -> dict[str, Any]:
    """The parameters of `compare_and_set_statement` (and of the two statements SQLite runs)."""
    params = {f"set_{name}": value for name, value in updates.items()}
    params.update(recipient_id=recipient_id, updated_at=utcnow(), at=at, at_epoch=int(at.timestamp()),
                  source=source, metadata=dict(event) if event is not None else None)
    return params


@functools.cache
def compare_and_set_statement(old: Status, new: Status, columns: tuple[str, ...]) -> Insert:
    """The fast path's UPDATE and its history row as one PostgreSQL statement (a data-modifying
    WITH): one round trip, and atomic even run outside a transaction (the send worker does).
    The history row is written only if the UPDATE matched, so its row count tells both."""
    history = StatusHistory.__table__
    moved = _compare_and_set_statement(old, new, columns)
    changed = moved.returning(BlastRecipient.__table__.c.id).cte("moved")
    rows = select(
        changed.c.id, literal(old.value), literal(new.value), bindparam("at", type_=UtcDateTime),
        bindparam("source", type_=history.c.source.type),
        bindparam("metadata", type_=history.c["metadata"].type),
    )
    names = ["recipient_id", "old_status", "new_status", "changed_at", "source", "metadata"]
    # An INSERT's row count is only kept when asked for.
    return (insert(history).from_select(names, rows).add_cte(changed)
            .execution_options(preserve_rowcount=True))


@functools.cache
def _compare_and_set_statement(old: Status, new: Status, columns: tuple[str, ...]) -> Update:
    """Built once per move and set of columns, then run with parameters: building the
    UPDATE anew took longer than the database took to run it (the send worker's settle)."""
    table = BlastRecipient.__table__
    values: dict[str, Any] = {"status": new.value, "updated_at": bindparam("updated_at", type_=UtcDateTime)}
    values.update({name: bindparam(f"set_{name}", type_=table.c[name].type) for name in columns})
    for stage in stages_between(RANK[old], RANK[new]):
        name = STAGE_TIMESTAMP_COLUMN[stage]
        values[name] = func.coalesce(table.c[name], bindparam("at", type_=UtcDateTime))
        if stage is Stage.RECEIVED:
            values["message_c2s_timestamp"] = func.coalesce(
                table.c.message_c2s_timestamp, bindparam("at_epoch", type_=BigInteger())
            )
    return (
        update(table)
        .where(table.c.id == bindparam("recipient_id"), table.c.status == old.value)
        .values(values)
    )


def _locked_recipient(session: Session, recipient_id: int) -> BlastRecipient:
    # FOR UPDATE serialises concurrent events for one recipient on PostgreSQL; SQLite
    # transactions already hold the write lock (BEGIN IMMEDIATE, see core.db).
    recipient = session.scalars(
        select(BlastRecipient)
        .where(BlastRecipient.id == recipient_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if recipient is None:
        raise NotFound(f"recipient {recipient_id} does not exist")
    return recipient


# The columns `judge` reads and may write, besides the event's own.
JUDGED_COLUMNS = ("status", *STAGE_TIMESTAMP_COLUMN.values(), "message_c2s_timestamp", "error")
# A failed or unknown send whose message turns out to have gone: its problem text no longer holds.
SETTLED_FROM = (Status.FAILED, Status.UNKNOWN)
_SETTLED = sorted(status.value for status in SETTLED_FROM)


def tried_at(session: Session, rows: Mapping[int, Mapping[str, Any]]) -> dict[int, dt.datetime]:
    """When each failed or unknown send among `rows` ({recipient id: JUDGED_COLUMNS}) with no
    send time was tried: the time of the last history row that found it failed or unknown
    (the worker, as the gateway's answer fails, or the gateway's own report), not a person's
    decision about it later (marking it failed, undoing a sale). One query for all of them;
    none for anyone else."""
    sent = STAGE_TIMESTAMP_COLUMN[Stage.SENT]
    asked = [rid for rid, row in rows.items() if row["status"] in _SETTLED and row[sent] is None]
    if not asked:
        return {}
    found = session.execute(
        select(StatusHistory.recipient_id, func.max(StatusHistory.changed_at))
        .where(StatusHistory.recipient_id.in_(sorted(asked)), _found_lost(StatusHistory.__table__))
        .group_by(StatusHistory.recipient_id)
    )
    return dict(found.all())  # the latest of each, as `found_lost_at` takes it


def _found_lost(history: Table) -> ColumnElement[bool]:
    """A history row that found a send failed or unknown: the worker's or the gateway's, not
    a person's decision about it later (marking it failed, undoing a sale)."""
    return and_(history.c.new_status.in_(_SETTLED), history.c.source != "manual")


def found_lost_at(recipients: Table = BlastRecipient.__table__) -> ColumnElement[dt.datetime]:
    """`tried_at` for a query, on each row of `recipients`: when a failed or unknown send was
    found so by the worker or the gateway. A person's decision about it later (undoing a sale
    recorded on it) changes the row again, and had made a send lost days ago pass for one made
    that minute: replies and buyers went to it rather than to the message that did arrive since.
    The row's last change for one with no such history."""
    history = StatusHistory.__table__
    tried = (select(func.max(history.c.changed_at))
             .where(history.c.recipient_id == recipients.c.id, _found_lost(history))
             .scalar_subquery())
    return func.coalesce(tried, recipients.c.updated_at)


def _held_failed(row: Mapping[str, Any], old: Status, new: Status) -> bool:
    """A message that failed after the gateway took it (it has a send time) is not lifted by
    a receipt short of received (`LIFTS_FAILED_AFTER_TAKEN`)."""
    return (old is Status.FAILED and row[STAGE_TIMESTAMP_COLUMN[Stage.SENT]] is not None
            and RANK[new] < LIFTS_FAILED_AFTER_TAKEN)


def judge(
    row: dict[str, Any], new: Status, *, at: dt.datetime, updates: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None, manual: bool = False, stamp_skipped: bool = True,
    tried: dt.datetime | None = None,
) -> tuple[bool, set[str]]:
    """The status rules, on a recipient's values (`row`: JUDGED_COLUMNS and the event's
    columns, changed in place): whether the move is a real change, and the columns written.

    A real change sets the status, stamps each stage reached for the first time with `at`
    (received also fills `message_c2s_timestamp`; with `stamp_skipped` off, only the new
    status's own stage), clears the problem text of a failed or
    unknown send that proves to have gone, stores `updates`, and `defaults` where still
    empty; a manual correction downwards un-reaches the stages above the new status.
    A failed or unknown send that proves to have gone was sent when it was `tried`
    (`tried_at`), not when the proof came: a reply a day later, or a sale, does not make
    the message a day younger (a receipt that came before it was found unknown dates it
    earlier still). Without that time it takes `at`, as any skipped stage does (and a sale,
    stamping only its own stage, leaves it empty).
    An error reported for a message on its way or at one tick fails it, keeping its send
    time; such a message is lifted again only from received on (`_held_failed`).
    A non-change only fills empty columns from `updates`. The one place these rules live:
    `apply_status` runs them on the row it locked, `core.status_batch` on many rows at once.
    """
    old = Status(row["status"])
    written: set[str] = set()

    def put(column: str, value: Any) -> None:
        row[column] = value
        written.add(column)

    if not is_allowed(old, new, manual=manual) or (not manual and _held_failed(row, old, new)):
        for column, value in updates.items():
            if row[column] is None and value is not None:
                put(column, value)
        return False, written
    put("status", new.value)
    if old in SETTLED_FROM and RANK[new] >= Stage.SENT.min_rank and row["error"] is not None:
        put("error", None)  # a reply to an unknown send: the person is no longer a problem
    reached = list(stages_between(RANK[old], RANK[new]))
    went_when_tried = old in SETTLED_FROM and tried is not None and Stage.SENT in reached
    if went_when_tried and row[STAGE_TIMESTAMP_COLUMN[Stage.SENT]] is None:
        put(STAGE_TIMESTAMP_COLUMN[Stage.SENT], min(tried, at))
    for stage in reached if stamp_skipped else reached[-1:]:
        column = STAGE_TIMESTAMP_COLUMN[stage]
        if row[column] is None:
            put(column, at)
        if stage is Stage.RECEIVED and row["message_c2s_timestamp"] is None:
            put("message_c2s_timestamp", int(at.timestamp()))
    if manual and RANK[new] < RANK[old]:
        for stage in stages_between(RANK[new], RANK[old]):
            put(STAGE_TIMESTAMP_COLUMN[stage], None)
            if stage is Stage.RECEIVED:
                put("message_c2s_timestamp", None)
    for column, value in updates.items():
        put(column, value)
    for column, value in (defaults or {}).items():
        if row[column] is None and value is not None:
            put(column, value)
    return True, written
