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
failed or been lost (`_MATCHABLE`), goes the general way
(`core.webhook.inbox`) in the same transaction.

The applier's batches, fresh from the webhook, go a shorter way first (`take_stored`,
`apply_stored`): the database also reads the ack from the stored body, under the same rules,
and the entries left go the way above after that transaction commits.
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
from core.webhook.parse import MAX_ID_LENGTH, AckEvent, Event, IncomingMessage, ParseError, parse_webhook
from core.wsapme.answers import AckNumbering

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
        _note_names(events, named=named, phones=phones)
        if entry.state == new_state and len(events) == 1 and _everyday(events[0]):
            candidates[entry.id] = events[0]
    alone = {i: ack for i, ack in candidates.items() if named[ack.message_ids[0]] == 1}
    return alone, sorted(phones)


def _note_names(events: Sequence[Event], *, named: Counter[str], phones: set[str]) -> None:
    """Add the message ids `events` name to `named`, and the numbers they come from or name
    to `phones`."""
    for event in events:
        if isinstance(event, AckEvent):
            named.update(event.message_ids)
        if isinstance(event, AckEvent | IncomingMessage) and event.phone:
            phones.add(event.phone)


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
        _match_sql(_EVENTS), {"rows": _document(acks, received={}), "phones": list(phones)})
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
    done = session.connection().exec_driver_sql(_apply_sql(_EVENTS), {
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
_MATCHABLE = (f"r.status IN ({_KNOWN}) AND NOT (r.status IN ({_SETTLED}) AND r.{_SENT_AT} IS NULL) "
              f"AND r.status <> '{Status.FAILED.value}'")


@functools.cache
def _match_sql(events: str) -> str:
    return f"""
SELECT ev.inbox_id, r.id FROM blast_recipients r JOIN {events} ON r.message_id = ev.message_id
WHERE r.phone_number <> ALL(%(phones)s::text[]) AND {_MATCHABLE}
"""


# --- the everyday ack read by the database from the stored body ------------------------------
#
# In a burst of receipts the applier's batches hold nothing else, and reading each body in
# Python (`core.webhook.parse`) cost the server's one interpreter about as much again as
# applying it. The database reads the gateway's commonest shape itself: one ack in
# {"event": "...", "data": {"id", "status", "timestamp"}}, the shape `parse._plain_ack` reads
# the short way. It takes only what it can read exactly as that does, and leaves the rest:
# - the body is that object and nothing else, in printable ASCII with no escapes (so that the
#   text is JSON that PostgreSQL cannot refuse, checked before it is cast), members of `data`
#   among those three, values text, whole numbers or null;
# - the id is text of 1 to 255 characters with no space;
# - the status is one of the names (not numbers, which depend on the ack numbering) that read
#   as an ack's status in `STATUS_NAMES`;
# - the time is missing, null, or a whole number of seconds between 2000 and 2100.
# `tests/test_plain_acks.py` holds this reading equal to `parse.parse_webhook` over bodies made
# to tell them apart.

_SPACE = "[ \\t\\n\\r]*"
_TEXT = '"[ !#-\\[\\]-~]*"'
_MEMBER = f'"(id|status|timestamp)"{_SPACE}:{_SPACE}({_TEXT}|-?(0|[1-9][0-9]*)|null)'
_SHAPE = (f'^{_SPACE}\\{{{_SPACE}"event"{_SPACE}:{_SPACE}{_TEXT}{_SPACE},{_SPACE}"data"{_SPACE}:'
          f'{_SPACE}\\{{{_SPACE}{_MEMBER}({_SPACE},{_SPACE}{_MEMBER})*{_SPACE}\\}}{_SPACE}\\}}{_SPACE}$')
# Longer than any such body can usefully be: a wall of text is not read by a regex.
_MAX_SHAPED = 2_000


def _status_names() -> dict[str, Status]:
    """The names the database reads as an ack's status, each as `parse` reads it."""
    from core.statuses import ALIASES
    from core.wsapme.answers import status_from_value

    names: dict[str, Status] = {}
    for name in (*(s.value for s in Status), *ALIASES):
        for spelling in (name, name.lower(), name.title()):
            read = [status_from_value(spelling, numbering=n) for n in ("baileys", "wwebjs")]
            if read[0] in ACK_STATUSES and read[0] == read[1]:
                names[spelling] = read[0]
    return names


STATUS_NAMES = _status_names()


def _stored_reading(body: str, *, shaped: bool = False) -> str:
    """A lateral subquery reading `body` (a bytea column) as an everyday ack, one row: its
    message_id, status, at (NULL when it gives no time), c2s and raw (the `data` object),
    all NULL when it is not one the database reads. `shaped`: the body is known to be of the
    shape already (`take_stored` read it in this transaction), and its text is cast without
    asking again."""
    from core.wsapme.answers import EARLIEST, LATEST

    statuses = " ".join(f"WHEN '{name}' THEN '{status.value}'" for name, status in STATUS_NAMES.items())
    shape_known = "true" if shaped else (f"octet_length({body}) <= {_MAX_SHAPED} "
                                         f"AND encode({body}, 'escape') ~ '{_SHAPE}'")
    # A CASE decides what is evaluated: the cast to jsonb only for a body of the shape, the
    # cast to bigint only for digits. OFFSET 0 keeps the planner from copying each step's
    # expressions into every place that uses them: the body's regular expression alone costs
    # about 10 µs, and every column above repeated it.
    return f"""LATERAL (
    SELECT CASE WHEN f.ok THEN f.message_id END AS message_id, CASE WHEN f.ok THEN f.status END AS status,
           CASE WHEN f.ok THEN to_timestamp(f.seconds) END AS at, CASE WHEN f.ok THEN f.data END AS raw,
           CASE WHEN f.ok AND f.status = '{Status.DELIVERY_ACK.value}' THEN f.seconds END AS c2s
    FROM (
        SELECT p.*, p.status IS NOT NULL AND jsonb_typeof(p.data -> 'id') = 'string'
                    AND p.message_id ~ '^[!-~]+$' AND length(p.message_id) <= {MAX_ID_LENGTH}
                    AND (p.time IS NULL OR p.time = 'null'::jsonb
                         OR coalesce(p.seconds BETWEEN {EARLIEST} AND {LATEST - 1}, false)) AS ok
        FROM (
            SELECT shaped.data, shaped.data ->> 'id' AS message_id, shaped.data -> 'timestamp' AS time,
                   CASE WHEN jsonb_typeof(shaped.data -> 'status') = 'string'
                        THEN CASE shaped.data ->> 'status' {statuses} END END AS status,
                   CASE WHEN jsonb_typeof(shaped.data -> 'timestamp') = 'number'
                             AND shaped.data ->> 'timestamp' ~ '^[1-9][0-9]*$'
                             AND length(shaped.data ->> 'timestamp') <= 12
                        THEN (shaped.data ->> 'timestamp')::bigint END AS seconds
            FROM (SELECT CASE WHEN {shape_known}
                              THEN encode({body}, 'escape')::jsonb -> 'data' END AS data
                  OFFSET 0) AS shaped
            OFFSET 0
        ) AS p
        OFFSET 0
    ) AS f
) AS ack"""


def take_stored(
    session: Session, inbox_ids: Sequence[int], *, new_state: str, open_states: Collection[str],
    numbering: AckNumbering,
) -> dict[int, int]:
    """The everyday acks among `inbox_ids` the database reads and may apply first: {inbox id:
    recipient id}. The entries are locked, in id order, those another process holds skipped;
    recipients are not locked yet.

    Taken, as by `take`: a new entry the database reads as one everyday ack, whose message id
    no other entry of the batch names, whose message is known here (`_MATCHABLE`), and whose
    recipient's number no other event of the batch comes from or names. Only the entries it
    does not read are parsed here, to learn what they name. What is left goes the general way
    after this batch's commit: it names nothing these name, so applying these first changes
    nothing for it."""
    if not inbox_ids:
        return {}
    rows = session.connection().exec_driver_sql(_take_sql(tuple(open_states)), {
        "ids": list(inbox_ids), "new": new_state}).all()
    named: Counter[str] = Counter()  # message ids, by how many events name them
    phones: set[str] = set()
    for _, everyday, message_id, _, _, body, content_type in rows:
        if everyday:
            named[message_id] += 1
            continue
        events = parse_webhook(body, content_type, numbering=numbering)
        if not isinstance(events, ParseError):
            _note_names(events, named=named, phones=phones)
    return {inbox_id: recipient for inbox_id, everyday, message_id, recipient, phone, _, _ in rows
            if everyday and recipient is not None and named[message_id] == 1 and phone not in phones}


def apply_stored(
    session: Session, taken: Mapping[int, int], *, now: dt.datetime, applied: str, max_detail: int,
) -> dict[int, str]:
    """`apply` for acks `take_stored` took ({inbox id: recipient id}), read from their bodies
    by the database; the recipients locked by the caller. Only entries `take_stored` took in
    this transaction: their bodies are not checked for the shape again."""
    if not taken:
        return {}
    done = session.connection().exec_driver_sql(_apply_sql(_STORED_EVENTS), {
        "taken": list(taken), "ids": list(taken.values()), "now": now, "written_at": utcnow(),
        "applied": applied, "max_detail": max_detail})
    return dict(done.all())


@functools.cache
def _take_sql(open_states: tuple[str, ...]) -> str:
    states = ", ".join(f"'{state}'" for state in open_states)
    return f"""
WITH batch AS (
    SELECT w.id, w.state, w.body, w.content_type FROM webhook_inbox w
    WHERE w.id = ANY(%(ids)s::integer[]) AND w.state IN ({states})
    ORDER BY w.id FOR UPDATE SKIP LOCKED
), read AS (
    SELECT b.id, b.state = %(new)s AND ack.status IS NOT NULL AS everyday, ack.message_id, b.body,
           b.content_type
    FROM batch b CROSS JOIN {_stored_reading('b.body')}
)
SELECT read.id, read.everyday, read.message_id, r.id, r.phone_number,
       CASE WHEN NOT read.everyday THEN read.body END, read.content_type
FROM read LEFT JOIN blast_recipients r ON read.everyday AND r.message_id = read.message_id AND {_MATCHABLE}
ORDER BY read.id
"""


_STORED_EVENTS = f"""(
    SELECT w.id AS inbox_id, ack.message_id, ack.status, coalesce(ack.at, w.received_at) AS at,
           ack.c2s, ack.raw
    FROM webhook_inbox w CROSS JOIN {_stored_reading('w.body', shaped=True)}
    WHERE w.id = ANY(%(taken)s::integer[]) AND ack.status IS NOT NULL
) AS ev"""


def _rank(expression: str) -> str:
    return f"CASE {expression} " + " ".join(f"WHEN '{s.value}' THEN {r}" for s, r in RANK.items()) + " END"


@functools.cache
def _apply_sql(events: str) -> str:
    """The judging and writing statement for the acks of `events`, built from the status
    model's tables."""

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
    FROM blast_recipients r JOIN {events} ON r.message_id = ev.message_id
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
