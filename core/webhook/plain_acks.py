"""The everyday ack, applied by PostgreSQL in one statement.

Nearly every webhook is a receipt: one message id, a status that moves it along the funnel
(on its way, sent, received, read), and perhaps a time. The status engine's rules for such
an event are few: a move to a higher rank is real, it stamps each stage it reaches for the
first time, received also fills `message_c2s_timestamp`, a failed or unknown send that
proves to have gone loses its problem text; a move that is not real only fills an empty
`message_c2s_timestamp`. Judged in Python they cost the server's one interpreter about as
much as answering the post did, and the applier thread held the lock the event loop
answering the posts needed. Here the database judges and writes them. Those rules are
`core.status_engine.judge`'s, written again in SQL for this one kind of event; the ranks,
the stage columns and the statuses whose problem text goes are read from `core.statuses`
and `core.status_engine` as the statement is built, and `tests/test_plain_acks.py` holds
the two ways equal over random batches, so a rule changed in one place and not the other
fails it.

A batch looks up the acks' recipients (`match`), locks them with the rest of the batch's
recipients in id order (`core.status_batch.lock_recipients`), then applies them (`apply`).
Only what commutes with the rest of the batch is taken, so that applying it first gives
exactly what applying everything in arrival order gives (`tests/test_plain_acks.py` holds
the two equal over random batches):
- an entry still `new` (a waiting one has keys to clear), read as one ack for one message
  id, with no phone (an ack with a phone may settle an unknown send) and a status of rank
  1–4 (a failed ack writes its default error; a reply or a sale is not an ack's to give);
- whose message id no other event of the batch names;
- whose recipient's number no other event of the batch comes from or names (a reply, an
  opt-out or an unknown send is found by number).
Everything else, and a taken ack whose message id is not known yet or whose message has
failed or been lost (`_MATCH_SQL`), goes the general way
(`core.webhook.inbox`) in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, TypeGuard

from sqlalchemy.orm import Session

from core.bulk import json_scalar
from core.models import utcnow
from core.status_engine import LIFTS_FAILED_AFTER_TAKEN, SETTLED_FROM
from core.statuses import RANK, STAGE_MIN_RANK, STAGE_TIMESTAMP_COLUMN, Stage, Status
from core.webhook.parse import AckEvent, Event, IncomingMessage, ParseError

if TYPE_CHECKING:
    from core.webhook.inbox import _Entry

# The statuses an everyday ack brings: evidence the message got somewhere, short of a reply.
ACK_STATUSES = frozenset(s for s in Status if 1 <= RANK[s] < RANK[Status.REPLIED])


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
            candidates[entry.id] = events[0]
    alone = {i: ack for i, ack in candidates.items() if named[ack.message_ids[0]] == 1}
    return alone, sorted(phones)


def _everyday(event: Event) -> TypeGuard[AckEvent]:
    return (isinstance(event, AckEvent) and len(event.message_ids) == 1 and not event.phone
            and event.status in ACK_STATUSES)


def label(ack: AckEvent, message_id: str | None = None) -> str:
    """How an inbox entry's detail names an ack: "3EB0F… DELIVERY_ACK"."""
    return f"{message_id or ack.message_ids[0]} {ack.status}"


def match(session: Session, acks: Mapping[int, AckEvent], *, phones: Sequence[str]) -> dict[int, int]:
    """The recipient of each ack whose message id is known here ({inbox id: recipient id}),
    leaving out those on a number in `phones`. Nothing is locked yet: the caller locks these
    recipients with the rest of the batch's, in one go."""
    if not acks:
        return {}
    found = session.connection().exec_driver_sql(
        _MATCH_SQL, {"rows": _document(acks, received={}), "phones": list(phones)})
    return dict(found.all())


def apply(
    session: Session, acks: Mapping[int, AckEvent], *, recipients: Collection[int],
    received: Mapping[int, dt.datetime], now: dt.datetime, applied: str, max_detail: int,
) -> dict[int, str]:
    """Apply `acks` ({inbox id: ack}) to their `recipients`, locked by the caller: judge,
    write, record in history, and mark the entries `applied` (the inbox's state for it) with
    what became of each. Returns those details by inbox id; an ack whose recipient has gone
    since it was matched is left out."""
    if not acks:
        return {}
    done = session.connection().exec_driver_sql(_apply_sql(), {
        "rows": _document(acks, received=received), "ids": list(recipients), "now": now,
        "written_at": utcnow(), "applied": applied, "max_detail": max_detail})
    return dict(done.all())


def _document(acks: Mapping[int, AckEvent], *, received: Mapping[int, dt.datetime]) -> str:
    rows = [{"inbox_id": inbox_id, "message_id": ack.message_ids[0], "status": ack.status.value,
             "at": ack.at or received.get(inbox_id),
             "c2s": int(ack.at.timestamp()) if ack.status is Status.DELIVERY_ACK and ack.at else None,
             "raw": ack.raw}
            for inbox_id, ack in sorted(acks.items())]
    return json.dumps(rows, separators=(",", ":"), default=json_scalar)


_EVENTS = ("json_to_recordset(%(rows)s::json) AS ev(inbox_id integer, message_id text, status text, "
           "at timestamptz, c2s bigint, raw jsonb)")
_KNOWN = ", ".join(f"'{s.value}'" for s in RANK)

_SETTLED = ", ".join(f"'{s.value}'" for s in SETTLED_FROM)
_SENT_AT = STAGE_TIMESTAMP_COLUMN[Stage.SENT]
# A failed or unknown send with no send time goes the general way, which dates it by when it
# was tried (`core.status_engine.tried_at`); so does a failed message with a send time, which
# only some receipts lift (`core.status_engine.LIFTS_FAILED_AFTER_TAKEN`). The judging statement
# holds such a message too: it may have failed between this look and the lock.
_MATCH_SQL = f"""
SELECT ev.inbox_id, r.id FROM blast_recipients r JOIN {_EVENTS} ON r.message_id = ev.message_id
WHERE r.phone_number <> ALL(%(phones)s::text[]) AND r.status IN ({_KNOWN})
  AND NOT (r.status IN ({_SETTLED}) AND r.{_SENT_AT} IS NULL) AND r.status <> '{Status.FAILED.value}'
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
    judged = (*STAGE_TIMESTAMP_COLUMN.values(), "message_c2s_timestamp", "error")
    columns = ", ".join(f"r.{c}" for c in judged)
    return f"""
WITH m AS (
    SELECT r.id, r.status AS old, {columns}, ev.inbox_id, ev.message_id, ev.status AS new, ev.at,
           ev.c2s, ev.raw, {_rank('r.status')} AS old_rank, {_rank('ev.status')} AS new_rank,
           {_rank('ev.status')} > {_rank('r.status')} AND NOT (
               r.status = '{Status.FAILED.value}' AND r.{_SENT_AT} IS NOT NULL
               AND {_rank('ev.status')} < {LIFTS_FAILED_AFTER_TAKEN}) AS moves
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
        error = CASE WHEN m.moves AND m.old IN ({_SETTLED}) THEN NULL ELSE m.error END,
        updated_at = %(written_at)s
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
