"""The everyday ack, applied by PostgreSQL in two statements.

Nearly every webhook is a receipt: one message id, a status that moves it along the funnel
(on its way, sent, received, read), and perhaps a time. The status engine's rules for such
an event are few: a move to a higher rank is real, it stamps each stage it reaches for the
first time, received also fills `message_c2s_timestamp`, a failed or unknown send that
proves to have gone loses its problem text; a move that is not real only fills an empty
`message_c2s_timestamp`. Judged in Python they cost the server's one interpreter about as
much as answering the post did, and the applier thread held the lock the event loop
answering the posts needed. Here the database judges and writes them, with the statuses'
ranks and stage columns written into the statement from `core.statuses`, so they are the
ones the Python engine reads.

Only what commutes with the rest of the batch is taken, so that applying it first gives
exactly what applying everything in arrival order gives (`tests/test_plain_acks.py` holds
the two equal over random batches):
- an entry still `new` (a waiting one has keys to clear), read as one ack for one message
  id, with no phone (an ack with a phone may settle an unknown send) and a status of rank
  1–4 (a failed ack writes its default error; a reply or a sale is not an ack's to give);
- whose message id no other event of the batch names;
- whose recipient's number no other event of the batch comes from or names (a reply, an
  opt-out or an unknown send is found by number).
Everything else, and a taken ack whose message id is not known yet, goes the general way
(`core.webhook.inbox.apply_bodies`) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.statuses import RANK, STAGE_MIN_RANK, STAGE_TIMESTAMP_COLUMN, Stage, Status
from core.webhook.parse import AckEvent, Event, IncomingMessage, ParseError

if TYPE_CHECKING:
    from core.webhook.inbox import _Entry

# The statuses an everyday ack brings: evidence the message got somewhere, short of a reply.
ACK_STATUSES = frozenset(s for s in Status if 1 <= RANK[s] < RANK[Status.REPLIED])
# A failed or unknown send whose message turns out to have gone loses its problem text
# (core.status_engine._SETTLED_FROM; every ack status here proves it went).
_SETTLED_FROM = (Status.FAILED, Status.UNKNOWN)


def take(
    entries: Sequence[_Entry], parsed: Mapping[int, list[Event] | ParseError], *, new_state: str
) -> tuple[dict[int, AckEvent], list[str]]:
    """The entries this path may apply ({inbox id: its ack}), and the numbers the other
    events of the batch come from or name, which its recipients must not have."""
    candidates: dict[int, AckEvent] = {}
    named: Counter[str] = Counter()  # message ids, by how many events name them
    phones: set[str] = set()
    for entry in entries:
        events = parsed[entry.id]
        if isinstance(events, ParseError):
            continue
        for event in events:
            if isinstance(event, AckEvent):
                named.update(event.message_ids)
            if isinstance(event, AckEvent | IncomingMessage) and event.phone:
                phones.add(event.phone)
        if entry.state == new_state and len(events) == 1 and _everyday(events[0]):
            candidates[entry.id] = events[0]  # type: ignore[assignment]
    alone = {i: ack for i, ack in candidates.items() if named[ack.message_ids[0]] == 1}
    return alone, sorted(phones)


def _everyday(event: Event) -> bool:
    return (isinstance(event, AckEvent) and len(event.message_ids) == 1 and not event.phone
            and event.status in ACK_STATUSES)


def apply(
    session: Session, acks: Mapping[int, AckEvent], *, phones: Sequence[str],
    received: Mapping[int, dt.datetime], now: dt.datetime, applied: str, max_detail: int,
) -> dict[int, str]:
    """Apply `acks` ({inbox id: ack}); the entries applied, with what became of each.

    Marks those entries `applied` (the inbox's state for it). An ack whose message id
    matches no recipient it may touch (not stored yet, or on a number `take` names) is
    left out, for the general way."""
    if not acks:
        return {}
    rows = [{"inbox_id": inbox_id, "message_id": ack.message_ids[0], "status": ack.status.value,
             "at": (ack.at or received[inbox_id]).isoformat(),
             "c2s": int(ack.at.timestamp()) if ack.status is Status.DELIVERY_ACK and ack.at else None,
             "raw": ack.raw}
            for inbox_id, ack in sorted(acks.items())]
    document = json.dumps(rows, separators=(",", ":"), default=_json_scalar)
    connection = session.connection()
    # Locked first, in id order as everywhere else, by a statement of its own: the next one
    # then reads them as they are now, and nothing can change them under it.
    locked = connection.exec_driver_sql(_LOCK_SQL, {"rows": document, "phones": list(phones)}).scalars().all()
    if not locked:
        return {}
    applied = connection.exec_driver_sql(
        _apply_sql(), {"rows": document, "ids": locked, "now": now, "applied": applied,
                      "max_detail": max_detail})
    return dict(applied.all())


def _json_scalar(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot go into a webhook's history")


_EVENTS = ("json_to_recordset(%(rows)s::json) AS ev(inbox_id integer, message_id text, status text, "
           "at timestamptz, c2s bigint, raw jsonb)")
_KNOWN = ", ".join(f"'{s.value}'" for s in RANK)

_LOCK_SQL = f"""
SELECT r.id FROM blast_recipients r JOIN {_EVENTS} ON r.message_id = ev.message_id
WHERE r.phone_number <> ALL(%(phones)s::text[]) AND r.status IN ({_KNOWN})
ORDER BY r.id FOR UPDATE OF r
"""


def _rank(expression: str) -> str:
    return f"CASE {expression} " + " ".join(f"WHEN '{s.value}' THEN {r}" for s, r in RANK.items()) + " END"


@functools.cache
def _apply_sql() -> str:
    """The judging and writing statement, built from the status model's tables."""

    def stamp(stage: Stage) -> str:
        column, least = STAGE_TIMESTAMP_COLUMN[stage], STAGE_MIN_RANK[stage]
        return (f"CASE WHEN m.moves AND m.old_rank < {least} AND m.new_rank >= {least} "
                f"THEN coalesce(m.{column}, m.at) ELSE m.{column} END")

    received = STAGE_MIN_RANK[Stage.RECEIVED]
    stamps = ",\n        ".join(f"{STAGE_TIMESTAMP_COLUMN[stage]} = {stamp(stage)}" for stage in Stage)
    settled = ", ".join(f"'{s.value}'" for s in _SETTLED_FROM)
    judged = (*STAGE_TIMESTAMP_COLUMN.values(), "message_c2s_timestamp", "error")
    columns = ", ".join(f"r.{c}" for c in judged)
    return f"""
WITH m AS (
    SELECT r.id, r.status AS old, {columns}, ev.inbox_id, ev.message_id, ev.status AS new, ev.at,
           ev.c2s, ev.raw, {_rank('r.status')} AS old_rank, {_rank('ev.status')} AS new_rank,
           {_rank('ev.status')} > {_rank('r.status')} AS moves
    FROM blast_recipients r JOIN {_EVENTS} ON r.message_id = ev.message_id
    WHERE r.id = ANY(%(ids)s::integer[])
),
written AS (
    UPDATE blast_recipients t SET
        status = CASE WHEN m.moves THEN m.new ELSE m.old END,
        {stamps},
        message_c2s_timestamp = CASE
            WHEN m.c2s IS NOT NULL AND (m.moves OR m.message_c2s_timestamp IS NULL) THEN m.c2s
            WHEN m.moves AND m.old_rank < {received} AND m.new_rank >= {received}
                 AND m.message_c2s_timestamp IS NULL THEN trunc(extract(epoch FROM m.at))::bigint
            ELSE m.message_c2s_timestamp END,
        error = CASE WHEN m.moves AND m.old IN ({settled}) THEN NULL ELSE m.error END,
        updated_at = %(now)s
    FROM m
    WHERE t.id = m.id AND (m.moves OR (m.c2s IS NOT NULL AND m.message_c2s_timestamp IS NULL))
),
history AS (
    INSERT INTO status_history (recipient_id, old_status, new_status, changed_at, source, metadata)
    SELECT m.id, m.old, m.new, m.at, 'webhook', m.raw FROM m WHERE m.moves ORDER BY m.inbox_id
),
outcomes AS (
    UPDATE webhook_inbox w SET state = %(applied)s, kind = 'ack', attempts = w.attempts + 1,
        processed_at = %(now)s,
        detail = left(m.message_id || ' ' || m.new || ': ' || CASE WHEN m.moves
                 THEN m.old || ' → ' || m.new ELSE 'no change (already ' || m.old || ')' END,
                 %(max_detail)s)
    FROM m WHERE w.id = m.inbox_id
    RETURNING w.id, w.detail
)
SELECT id, detail FROM outcomes
"""
