"""The webhook inbox: raw bodies stored first, then parsed and applied, and replayed while waiting.

States: new → applied | ignored | waiting (a message id not known yet) | unmatched (gave up
waiting; kept) | unparseable (kept, with the reason) | unrecognised (about a message, but in a
shape or with a status this version cannot read; kept) | failed (applying raised MAX_ATTEMPTS
times; kept, with the error). The last four are set aside: applied again when a person asks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import BigInteger, Engine, and_, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from core import bulk, test_sends
from core.config import Settings, get_settings
from core.db import database_passwords, driver_says, transaction
from core.models import BlastRecipient, RecipientReply, WebhookInbox, WebhookWaiting, utcnow
from core.opt_outs import add_opt_outs
from core.status_batch import StatusEvent, apply_statuses, lock_recipients
from core.status_engine import StatusChange, found_lost_at
from core.statuses import RANK, Status
from core.webhook import plain_acks
from core.webhook.parse import AckEvent, Event, IncomingMessage, ParseError, parse_webhook
from core.webhook.replies import (
    CLOCK_SKEW,
    DEFAULT_OPT_OUT_WORDS,
    in_flight,
    is_being_sent,
    no_blast_note,
    not_a_reply,
    opt_out_keyword,
    quoted_recipient,
    replied_recipient,
    unread_sender,
)
from core.wsapme.answers import AckNumbering

log = logging.getLogger(__name__)

# How long an ack for an unknown message id is retried before it is marked unmatched. The
# race it waits out (an ack beating the send's own write) lasts seconds; acks for messages
# sent by hand from the phone never match.
DEFAULT_WAIT_LIMIT = dt.timedelta(hours=1)
# A `new` entry this old was left behind by a request that failed after storing it.
NEW_GRACE = dt.timedelta(minutes=1)
# Entries a replay applies in one transaction. One at a time, a replay of a few hundred
# entries waiting for messages sent from the phone (acks of ids no blast knows) cost a
# transaction and a pass of the status engine each, every half minute.
REPLAY_BATCH = 100
# Tries at applying a `new` entry before it is set aside as failed (a bug, a value the
# database refuses): retrying it every half minute for ever would hide it.
MAX_ATTEMPTS = 5
MAX_DETAIL = 20_000
# The note on a message that answers the team's own test message, quoting it or not.
TEST_REPLY = "a reply to a test message, not to a blast"
DB_ERRORS = (DBAPIError, PoolTimeout)


class InboxState:
    NEW = "new"
    APPLIED = "applied"
    IGNORED = "ignored"
    WAITING = "waiting"
    UNMATCHED = "unmatched"
    UNPARSEABLE = "unparseable"
    UNRECOGNISED = "unrecognised"
    FAILED = "failed"
    ALL = (NEW, APPLIED, IGNORED, WAITING, UNMATCHED, UNPARSEABLE, UNRECOGNISED, FAILED)


@dataclass(frozen=True)
class WebhookRules:
    """The settings that decide how an event is read and applied."""

    numbering: AckNumbering = "baileys"
    reply_window: dt.timedelta = dt.timedelta(hours=72)
    opt_out_words: tuple[str, ...] = DEFAULT_OPT_OUT_WORDS
    wait_limit: dt.timedelta = DEFAULT_WAIT_LIMIT
    # How long a send may have been in flight before it was marked unknown.
    send_lease: dt.timedelta = dt.timedelta(seconds=120)
    # Off when applying again what was read before: its opt-outs were recorded then, and a
    # person may have taken a number off the list since.
    record_opt_outs: bool = True
    # Once messages go to WhatsApp, a person's message answers a real one: a practice blast to
    # the same number reached no phone.
    leave_out_practice: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookRules:
        return cls(
            numbering=settings.wsapme_ack_numbering,
            reply_window=dt.timedelta(hours=settings.reply_window_hours),
            opt_out_words=DEFAULT_OPT_OUT_WORDS + _words(settings.opt_out_words),
            wait_limit=dt.timedelta(minutes=settings.webhook_wait_minutes),
            send_lease=dt.timedelta(seconds=settings.send_lease_seconds),
            leave_out_practice=not settings.sandbox,
        )


def _words(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(w.strip() for w in value if isinstance(w, str) and w.strip())
    return ()


@dataclass(frozen=True)
class Outcome:
    """What became of one inbox entry."""

    state: str
    kind: str
    detail: str
    # Message ids not known yet, or numbers whose send has not stored its answer yet.
    waiting_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplayReport:
    seen: int
    states: dict[str, int] = field(default_factory=dict)
    failed: int = 0

    def set_aside_words(self) -> str:
        """ "3 set-aside events tried again: 2 applied, 1 still could not be used." """
        if self.seen == 0:
            return "No events are set aside."
        used = self.states.get(InboxState.APPLIED, 0) + self.states.get(InboxState.IGNORED, 0)
        still = sum(self.states.get(state, 0) for state in
                    (InboxState.UNMATCHED, InboxState.UNPARSEABLE, InboxState.UNRECOGNISED))
        parts = [f"{used:,} applied"]
        for n, words in ((self.states.get(InboxState.WAITING, 0), "waiting for their message"),
                         (still, "still could not be used"), (self.failed, "failed (see the log)"),
                         (self.states.get("skipped", 0), "being applied by another process")):
            if n:
                parts.append(f"{n:,} {words}")
        events = "event" if self.seen == 1 else "events"
        return f"{self.seen:,} set-aside {events} tried again: " + ", ".join(parts) + "."


@dataclass(frozen=True)
class _Note:
    state: str
    kind: str
    text: str
    waiting_id: str | None = None


@dataclass(frozen=True)
class _Step:
    """One status change to make, planned before any recipient row is locked."""

    request: StatusEvent
    label: str
    kind: str
    position: int = 0  # the event's place in its body
    message_id: str | None = None  # a reply's own id, when the gateway sends it


# --- storing and processing ----------------------------------------------------------------


def store_raw(
    session: Session, *, body: bytes, content_type: str | None, now: dt.datetime | None = None
) -> int:
    """Keep a webhook body exactly as it came; returns the inbox id."""
    entry = WebhookInbox(
        body=body,
        content_type=(content_type or "")[:255] or None,
        state=InboxState.NEW,
        received_at=now or utcnow(),
    )
    session.add(entry)
    session.flush()
    return entry.id


def process_entry(
    session: Session, *, inbox_id: int, rules: WebhookRules, now: dt.datetime | None = None
) -> Outcome | None:
    """Parse and apply one new or waiting entry; None if it is done or another process has it."""
    return process_entries(session, inbox_ids=[inbox_id], rules=rules, now=now).get(inbox_id)


def process_entries(
    session: Session, *, inbox_ids: Iterable[int], rules: WebhookRules, now: dt.datetime | None = None
) -> dict[int, Outcome]:
    """Parse and apply new or waiting entries together, in the order they arrived; entries
    already done, or held by another process, are left out of the result."""
    ids = sorted(set(inbox_ids))
    if not ids:
        return {}
    dialect = session.get_bind().dialect
    entries = _entries(session, bulk.one_of(_INBOX.c.id, ids, dialect), _INBOX.c.state.in_(_OPEN))
    return _process(session, entries, rules=rules, now=now or utcnow())


def apply_everyday_acks(
    session: Session, *, inbox_ids: Iterable[int], rules: WebhookRules, now: dt.datetime | None = None
) -> dict[int, Outcome]:
    """PostgreSQL: the everyday acks among these entries, read and applied by the database
    from the stored bodies (`plain_acks.take_stored`); the outcome of each entry it applied.
    What it leaves is for `process_entries`, in a transaction of its own after this one
    commits."""
    if session.get_bind().dialect.name != "postgresql":
        return {}
    taken = plain_acks.take_stored(session, sorted(set(inbox_ids)), new_state=InboxState.NEW,
                                   open_states=_OPEN, numbering=rules.numbering)
    if not taken:
        return {}
    lock_recipients(session, taken.values())
    applied = plain_acks.apply_stored(session, taken, now=now or utcnow(), applied=InboxState.APPLIED,
                                      max_detail=MAX_DETAIL)
    return {i: Outcome(InboxState.APPLIED, "ack", detail) for i, detail in applied.items()}


_OPEN = (InboxState.NEW, InboxState.WAITING)
# Kept, and applied again only when a person asks (`replay_set_aside`).
# The kind of an entry kept of a body refused for its size (core.webhook.route): cut short, it
# can never be applied, so replaying set-aside entries leaves it, and the words of why, alone.
REFUSED = "refused"
SET_ASIDE = (InboxState.UNMATCHED, InboxState.UNPARSEABLE, InboxState.UNRECOGNISED, InboxState.FAILED)


@dataclass
class _Entry:
    """An inbox row as processing needs it (read and written without the ORM: this is the
    webhook's hot path)."""

    id: int
    body: bytes
    content_type: str | None
    received_at: dt.datetime
    attempts: int
    state: str


_INBOX = WebhookInbox.__table__
_WAITING = WebhookWaiting.__table__
_ENTRY_COLUMNS = (_INBOX.c.id, _INBOX.c.body, _INBOX.c.content_type, _INBOX.c.received_at,
                  _INBOX.c.attempts, _INBOX.c.state)
_ENTRY_WRITTEN = ("state", "kind", "detail", "attempts")


def _entries(session: Session, *conditions: Any) -> list[_Entry]:
    """Open entries matching `conditions`, locked in id order; those another process holds
    are skipped."""
    rows = session.connection().execute(
        select(*_ENTRY_COLUMNS).where(*conditions).order_by(_INBOX.c.id).with_for_update(skip_locked=True)
    )
    return [_Entry(r.id, r.body, r.content_type, r.received_at, r.attempts or 0, r.state) for r in rows]


def _process(
    session: Session, entries: list[_Entry], *, rules: WebhookRules, now: dt.datetime
) -> dict[int, Outcome]:
    if not entries:
        return {}
    parsed = {
        entry.id: parse_webhook(entry.body, entry.content_type, numbering=rules.numbering)
        for entry in entries
    }
    received = {e.id: e.received_at for e in entries}
    acks: dict[int, AckEvent] = {}
    matched: dict[int, int] = {}  # everyday acks the database applies: inbox id → recipient id
    if session.get_bind().dialect.name == "postgresql":
        acks, phones = plain_acks.take(entries, parsed, new_state=InboxState.NEW)
        matched = plain_acks.match(session, acks, phones=phones)
    rest = [entry for entry in entries if entry.id not in matched]
    events = {e.id: parsed[e.id] for e in rest if not isinstance(parsed[e.id], ParseError)}
    plan = _plan_bodies(session, bodies=events, rules=rules, received=received)
    outcomes: dict[int, Outcome] = {}
    if matched:
        # One lock over every recipient the batch moves, in id order as everywhere else:
        # locking the database's share and then the status engine's could deadlock with
        # another batch locking the same people in id order.
        lock_recipients(session, {*matched.values(), *plan.recipient_ids()})
        applied = plain_acks.apply(session, {i: acks[i] for i in matched}, recipients=matched.values(),
                                   received=received, now=now, applied=InboxState.APPLIED,
                                   max_detail=MAX_DETAIL)
        outcomes = {i: Outcome(InboxState.APPLIED, "ack", detail) for i, detail in applied.items()}
        # Deleted between the look and the lock: said as the status engine says it.
        rest += [entry for entry in entries if entry.id in matched and entry.id not in applied]
        outcomes.update({i: Outcome(InboxState.IGNORED, "ack", f"{plain_acks.label(acks[i])}: "
                                    "the recipient was deleted") for i in matched if i not in applied})
    outcomes.update(_carry_out(session, plan, rules=rules))
    written = []
    for entry in rest:
        found = parsed[entry.id]
        if isinstance(found, ParseError):
            outcome = Outcome(InboxState.UNPARSEABLE, "unknown", found.reason)
        else:
            outcome = outcomes[entry.id]
        if outcome.state == InboxState.WAITING and entry.received_at <= now - rules.wait_limit:
            waited = int(rules.wait_limit.total_seconds() // 60)
            outcome = dataclasses.replace(
                outcome, state=InboxState.UNMATCHED, detail=f"gave up after {waited} min: {outcome.detail}"
            )
        outcomes[entry.id] = outcome
        written.append({"id": entry.id, "state": outcome.state, "kind": outcome.kind,
                        "detail": outcome.detail[:MAX_DETAIL], "attempts": entry.attempts + 1})
    bulk.update_rows(session.connection(), _INBOX, key="id", columns=_ENTRY_WRITTEN, rows=written,
                     same={"processed_at": now})
    _keep_waiting_keys(session, rest, outcomes)
    return {entry.id: outcomes[entry.id] for entry in entries}


def _keep_waiting_keys(session: Session, entries: list[_Entry], outcomes: Mapping[int, Outcome]) -> None:
    """What each entry now waits for, as rows of `webhook_waiting`: those of entries applied
    before (waiting, or set aside after waiting) go, those of entries waiting now come. Nothing
    is written for the everyday entry, new and not waiting."""
    connection = session.connection()
    again = [entry.id for entry in entries if entry.state != InboxState.NEW]
    if again:
        connection.execute(delete(_WAITING).where(_WAITING.c.inbox_id.in_(again)))
    keys = [{"inbox_id": entry.id, "key": key} for entry in entries
            if outcomes[entry.id].state == InboxState.WAITING
            for key in dict.fromkeys(k[:255] for k in outcomes[entry.id].waiting_for)]
    bulk.insert_rows(connection, _WAITING, columns=("inbox_id", "key"), rows=keys)


def apply_bodies(
    session: Session, *, bodies: Mapping[int, list[Event]], rules: WebhookRules,
    received: Mapping[int, dt.datetime],
) -> dict[int, Outcome]:
    """Apply the events of several bodies (keyed by inbox id, applied in key order) in one
    pass of the status engine; say what became of each body.

    Events without a time take the time their body was received, so a replay hours later
    still judges a reply by when it was written.
    """
    plan = _plan_bodies(session, bodies=bodies, rules=rules, received=received)
    return _carry_out(session, plan, rules=rules)


@dataclass
class _Plan:
    """What applying some bodies will do, worked out before anything is locked or written."""

    order: list[int]  # the bodies' inbox ids, in arrival order
    steps: list[tuple[int, _Step]]  # (inbox id, status change to make)
    notes: dict[int, list[_Note]]
    opt_outs: dict[str, str]  # number → the word they wrote

    def recipient_ids(self) -> set[int]:
        return {step.request.recipient_id for _, step in self.steps}


def _plan_bodies(
    session: Session, *, bodies: Mapping[int, list[Event]], rules: WebhookRules,
    received: Mapping[int, dt.datetime],
) -> _Plan:
    order = sorted(bodies)
    message_ids = [m for k in order for e in bodies[k] if isinstance(e, AckEvent) for m in e.message_ids]
    known = _recipients_by_message_id(session, message_ids) if message_ids else {}
    quoted = {e.quoted_id for k in order for e in bodies[k] if isinstance(e, IncomingMessage) and e.quoted_id}
    tests = test_sends.among(session, {m for m in message_ids if m not in known} | quoted)
    strays = [(event, received[key]) for key in order for event in bodies[key]
              if isinstance(event, AckEvent) and not (known.keys() | tests) >= set(event.message_ids)]
    lost = _lost_sends(session, strays, rules=rules) if strays else {}
    plan = _Plan(order, [], {k: [] for k in order}, {})
    for key in order:
        for position, event in enumerate(bodies[key]):
            if isinstance(event, AckEvent):
                found = _plan_ack(event, known=known, lost=lost, tests=tests, received_at=received[key],
                                  notes=plan.notes[key])
            elif isinstance(event, IncomingMessage):
                found = _plan_message(session, event, rules=rules, received_at=received[key],
                                      notes=plan.notes[key], opt_outs=plan.opt_outs, tests=tests)
            else:
                # Set aside when it is about a message: a later version, or a corrected ack
                # numbering, may read it. Other news from the gateway needs nothing.
                state = InboxState.UNRECOGNISED if event.unread_message else InboxState.IGNORED
                plan.notes[key].append(_Note(state, "other", event.reason))
                found = []
            plan.steps += [(key, replace(step, position=position)) for step in found]
    return plan


def _carry_out(session: Session, plan: _Plan, *, rules: WebhookRules) -> dict[int, Outcome]:
    if not plan.order:
        return {}
    changes = apply_statuses(session, [step.request for _, step in plan.steps])
    replies = []
    for (key, step), change in zip(plan.steps, changes, strict=True):
        plan.notes[key].append(_note_for(step, change))
        if step.kind == "message" and change is not None:
            replies.append({"recipient_id": step.request.recipient_id, "replied_at": step.request.at,
                            "text": step.request.updates["reply_text"], "inbox_id": key,
                            "inbox_position": step.position, "message_id": step.message_id})
    if replies:
        _keep_replies(session, replies)
    # Listed, and taken out of every queue: a blast scheduled for tomorrow, or halfway
    # through, must not reach them.
    for phone, keyword in plan.opt_outs.items() if rules.record_opt_outs else ():
        add_opt_outs(session, [phone], source="webhook", keyword=keyword)
    return {key: _summarise(plan.notes[key]) for key in plan.order}


def _keep_replies(session: Session, replies: list[dict[str, Any]]) -> None:
    """Every reply, the first and the later ones that change no status, each once: a body
    applied again (a replay) adds nothing, nor does the same message delivered twice (the
    gateway retrying a post, each copy its own inbox entry): the same id from the same person,
    or, for a message without an id (or one kept before ids were), the same person, time and
    words. Two alike with ids of their own ("ok", "ok" within a second) are both kept."""
    ids: set[tuple[int, str]] = set()
    said_without_id: set[tuple[int, dt.datetime, str]] = set()
    said: set[tuple[int, dt.datetime, str]] = set()
    for rid, at, text, message_id in session.execute(
        select(RecipientReply.recipient_id, RecipientReply.replied_at, RecipientReply.text,
               RecipientReply.message_id)
        .where(RecipientReply.recipient_id.in_({r["recipient_id"] for r in replies}))
    ):
        said.add((rid, at, text))
        if message_id is None:
            said_without_id.add((rid, at, text))
        else:
            ids.add((rid, message_id))
    fresh = []
    for reply in replies:
        rid, message_id = reply["recipient_id"], reply["message_id"]
        words = (rid, reply["replied_at"], reply["text"])
        if message_id is None:
            if words in said:
                continue
            said_without_id.add(words)
        else:
            if (rid, message_id) in ids or words in said_without_id:
                continue
            ids.add((rid, message_id))
        said.add(words)
        fresh.append(reply)
    if not fresh:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(RecipientReply).on_conflict_do_nothing(index_elements=["inbox_id", "inbox_position"]),
        fresh,
    )
    _first_reply_first(session, fresh)


# Statuses a reply has reached: their `reply_text` and `replied_at` are the person's first reply.
_REPLIED_OR_BEYOND = tuple(s.value for s in Status if RANK[s] >= RANK[Status.REPLIED])


def _first_reply_first(session: Session, fresh: list[dict[str, Any]]) -> None:
    """A reply kept after a later one (the gateway retrying, or replaying, the person's first
    message after their second): the recipient's reply text and time move back to the earliest
    kept. Only the reply is corrected, on a row the status engine already moved to REPLIED or
    beyond (in this transaction, or before): no status changes here."""
    earliest: dict[int, dt.datetime] = {}
    for reply in fresh:
        rid, at = reply["recipient_id"], reply["replied_at"]
        earliest[rid] = min(at, earliest.get(rid, at))
    connection = session.connection()
    behind = {
        rid: replied_at for rid, replied_at in connection.execute(
            select(_RECIPIENTS.c.id, _RECIPIENTS.c.replied_at)
            .where(bulk.one_of(_RECIPIENTS.c.id, list(earliest), connection.dialect),
                   _RECIPIENTS.c.status.in_(_REPLIED_OR_BEYOND))
        )
        if replied_at is None or earliest[rid] < replied_at
    }
    for rid, replied_at in behind.items():
        first = connection.execute(
            select(RecipientReply.replied_at, RecipientReply.text).where(RecipientReply.recipient_id == rid)
            .order_by(RecipientReply.replied_at, RecipientReply.id).limit(1)
        ).first()
        if first is None or (replied_at is not None and first.replied_at >= replied_at):
            continue  # nothing kept earlier after all (a reply another entry already held)
        at, text = first
        connection.execute(
            update(_RECIPIENTS)
            .where(_RECIPIENTS.c.id == rid, _RECIPIENTS.c.status.in_(_REPLIED_OR_BEYOND))
            .values(reply_text=text, replied_at=at, **_no_later_than(at))
        )


def _no_later_than(at: dt.datetime) -> dict[str, Any]:
    """Received and read no later than the reply: the later reply that came first had stamped
    them with its own time, and left so, reads counted as slower than replies."""
    c, epoch = _RECIPIENTS.c, literal(int(at.timestamp()), BigInteger())  # past 2038 as well
    return {column.name: case((column > moment, moment), else_=column)
            for column, moment in ((c.delivered_at, at), (c.read_timestamp, at),
                                   (c.message_c2s_timestamp, epoch))}


_ID_CHUNK = 1000
_RECIPIENTS = BlastRecipient.__table__


def _recipients_by_message_id(session: Session, message_ids: list[str]) -> dict[str, int]:
    unique = list(dict.fromkeys(message_ids))
    known: dict[str, int] = {}
    connection = session.connection()
    for start in range(0, len(unique), _ID_CHUNK):
        rows = connection.execute(
            select(_RECIPIENTS.c.message_id, _RECIPIENTS.c.id)
            .where(bulk.one_of(_RECIPIENTS.c.message_id, unique[start:start + _ID_CHUNK],
                               connection.dialect))
        )
        known.update({message_id: recipient_id for message_id, recipient_id in rows})
    return known


def _plan_ack(
    event: AckEvent, *, known: Mapping[str, int], lost: Mapping[str, int], tests: Collection[str],
    received_at: dt.datetime, notes: list[_Note],
) -> list[_Step]:
    updates: dict[str, Any] = {}
    if event.status is Status.DELIVERY_ACK and event.at is not None:
        updates["message_c2s_timestamp"] = int(event.at.timestamp())
    defaults = {"error": FAILED_BY_GATEWAY} if event.status is Status.FAILED else {}
    steps = []
    for message_id in event.message_ids:
        recipient_id = known.get(message_id)
        label, written = plain_acks.label(event, message_id), updates
        if recipient_id is None and message_id in lost:
            recipient_id = lost[message_id]
            label += f", the unknown send to {event.phone}"
            written = {**updates, "message_id": message_id}
        if recipient_id is None and message_id in tests:
            notes.append(_Note(InboxState.IGNORED, "ack", f"{label}: a test message, not a blast's"))
            continue
        if recipient_id is None:
            notes.append(_Note(InboxState.WAITING, "ack", "", waiting_id=message_id))
            continue
        request = StatusEvent(recipient_id, event.status, event.at or received_at, "webhook",
                              event.raw, written, defaults)
        steps.append(_Step(request, label=label, kind="ack"))
    return steps


def _lost_sends(
    session: Session, strays: list[tuple[AckEvent, dt.datetime]], *, rules: WebhookRules
) -> dict[str, int]:
    """Message ids we never stored that are the lost answer of an UNKNOWN send, by recipient.

    A send whose answer was lost (a timeout, a dropped connection, a worker stopped mid-request)
    is UNKNOWN with no message id: it may or may not have gone. An ack from the gateway proves
    it went when the ack names the number it went to, says the message got at least as far as
    the gateway, and its time fits the send: no earlier than the lease before it was marked
    unknown, and no later than the clock's skew after (when it was marked unknown:
    `found_lost_at`, as for replies). The gateway's
    first ack of a message comes as it takes it, while our request was waiting: a later one
    may be a message typed on the phone to the same person (its acks name the number too), and
    had settled the send as gone when it never went. Only the one unknown send to that number
    that fits is settled, and only by one id; anything less certain keeps waiting, then is set
    aside, and the send stays for a person to decide.

    Nor is anything settled for a number with a message at the gateway right now (another
    blast's, say): the ack may be that message's, arrived before its answer was stored. It waits,
    and is applied by its id once the answer is stored.
    """
    proofs = [
        (event.message_ids[0], event.phone, event.at or received_at)
        for event, received_at in strays
        if event.phone and len(event.message_ids) == 1 and RANK[event.status] >= RANK[Status.PENDING]
    ]
    if not proofs:
        return {}
    connection = session.connection()
    phones = list({phone for _, phone, _ in proofs})
    being_sent = set(connection.scalars(
        select(BlastRecipient.phone_number)
        .where(in_flight(utcnow()), bulk.one_of(BlastRecipient.phone_number, phones, connection.dialect))
    ))
    phones = [phone for phone in phones if phone not in being_sent]
    if not phones:
        return {}
    rows = connection.execute(
        select(_RECIPIENTS.c.id, _RECIPIENTS.c.phone_number, found_lost_at(_RECIPIENTS))
        .where(_RECIPIENTS.c.status == Status.UNKNOWN.value, _RECIPIENTS.c.message_id.is_(None),
               bulk.one_of(_RECIPIENTS.c.phone_number, phones, connection.dialect))
    )
    unknown: dict[str, list[tuple[int, dt.datetime]]] = {}
    for recipient_id, phone, marked_at in rows:
        unknown.setdefault(phone, []).append((recipient_id, marked_at))
    fitting: dict[str, set[int]] = {}
    for message_id, phone, at in proofs:
        fitting.setdefault(message_id, set()).update(
            rid for rid, marked_at in unknown.get(phone, ())
            if marked_at - rules.send_lease - CLOCK_SKEW <= at <= marked_at + CLOCK_SKEW
        )
    # One send, one id: an id that fits two sends, or a send two ids fit, is not certain.
    found = {m: next(iter(rids)) for m, rids in fitting.items() if len(rids) == 1}
    owners = Counter(found.values())
    return {m: rid for m, rid in found.items() if owners[rid] == 1}


FAILED_BY_GATEWAY = "WhatsApp reported an error for this message: it did not reach them."


def _plan_message(
    session: Session, message: IncomingMessage, *, rules: WebhookRules, received_at: dt.datetime,
    notes: list[_Note], opt_outs: dict[str, str], tests: Collection[str] = (),
) -> list[_Step]:
    reason = not_a_reply(message)
    if reason is not None:
        notes.append(_Note(InboxState.IGNORED, "message", f"not a reply: {reason}"))
        return []
    unread = unread_sender(message)
    if unread is not None:
        # A reply, or a request to stop, that names no number: set aside, never taken for nothing.
        notes.append(_Note(InboxState.UNRECOGNISED, "message",
                           f"a message whose sender cannot be read: {unread}"))
        return []
    if message.quoted_id in tests:  # the team answering their own test, not a customer
        notes.append(_Note(InboxState.IGNORED, "message", TEST_REPLY))
        return []
    at = message.at or received_at
    keyword = opt_out_keyword(message.text, words=rules.opt_out_words)
    if keyword:
        # Honoured even from a number we never messaged: they asked not to be messaged.
        opt_outs.setdefault(message.phone, keyword)
    # A reply that quotes our message says which it answers; any other is the newest one's.
    recipient_id = None if message.quoted_id is None else quoted_recipient(
        session, phone=message.phone, quoted_id=message.quoted_id)
    if recipient_id is None and is_being_sent(session, phone=message.phone, now=utcnow()):
        # Waited for even when an earlier message fits: the reply may be to this newest one.
        notes.append(_Note(InboxState.WAITING, "message", "", waiting_id=message.phone))
        return []
    if recipient_id is None:
        recipient_id = replied_recipient(session, phone=message.phone, at=at, window=rules.reply_window,
                                         lease=rules.send_lease, leave_out_practice=rules.leave_out_practice)
    if recipient_id is None and not keyword and test_sends.answered_by(session, phone=message.phone, at=at):
        notes.append(_Note(InboxState.IGNORED, "message", TEST_REPLY))
        return []
    if recipient_id is None:
        state = InboxState.APPLIED if keyword else InboxState.IGNORED
        notes.append(_Note(state, "message", no_blast_note(message.phone, window=rules.reply_window,
                                                           opt_out=keyword)))
        return []
    label = f"reply from {message.phone}" + (f" (opt-out {keyword})" if keyword else "")
    request = StatusEvent(recipient_id, Status.REPLIED, at, "webhook", message.raw,
                          {"reply_text": message.text})
    return [_Step(request, label=label, kind="message", message_id=message.message_id)]


def _note_for(step: _Step, change: StatusChange | None) -> _Note:
    if change is None:
        return _Note(InboxState.IGNORED, step.kind, f"{step.label}: the recipient was deleted")
    if change.changed:
        what = f"{change.old_status} → {change.new_status}"
    else:
        what = f"no change (already {change.old_status})"
    return _Note(InboxState.APPLIED, step.kind, f"{step.label}: {what}")


def _summarise(notes: list[_Note]) -> Outcome:
    states = {n.state for n in notes}
    kinds = {n.kind for n in notes}
    waiting = tuple(dict.fromkeys(n.waiting_id for n in notes if n.waiting_id))
    if waiting:
        state = InboxState.WAITING
    elif InboxState.UNRECOGNISED in states:  # kept in sight, whatever else it held
        state = InboxState.UNRECOGNISED
    elif InboxState.APPLIED in states:
        state = InboxState.APPLIED
    else:
        state = InboxState.IGNORED
    kind = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")
    # What it waits for first, in words (webhook_waiting holds the same as values).
    texts = [f"waiting for {', '.join(waiting)} (not known yet)"] if waiting else []
    texts += [n.text for n in notes if n.text]
    return Outcome(state, kind, "; ".join(texts) or "nothing in it to apply", waiting)


# --- replay --------------------------------------------------------------------------------


def replay_for_message_ids(
    session: Session,
    *,
    message_ids: Iterable[str],
    rules: WebhookRules | None = None,
    now: dt.datetime | None = None,
) -> list[Outcome]:
    """Re-apply waiting entries that mention these message ids, or the numbers they were
    sent to (a reply can wait for its send too). Call it once a send stores its id."""
    ids = [i for i in dict.fromkeys(message_ids) if i]
    if not ids:
        return []
    rules = rules or WebhookRules.from_settings(get_settings())
    phones = session.scalars(
        select(BlastRecipient.phone_number).where(BlastRecipient.message_id.in_(ids))
    ).all()
    keys = list(dict.fromkeys([*ids, *phones]))
    entries = _entries(
        session,
        _INBOX.c.state == InboxState.WAITING,
        _INBOX.c.id.in_(select(_WAITING.c.inbox_id).where(_WAITING.c.key.in_(keys))),
    )
    return list(_process(session, entries, rules=rules, now=now or utcnow()).values())


def replay_after_send(
    engine: Engine, *, message_ids: Iterable[str], rules: WebhookRules | None = None
) -> int:
    """`replay_for_message_ids` in its own transaction, for the send worker to call right
    after the transaction that stored the message id commits. Never raises a database
    error: the periodic replay catches up. Returns how many entries were re-applied."""
    try:
        with transaction(engine) as session:
            return len(replay_for_message_ids(session, message_ids=message_ids, rules=rules))
    except DB_ERRORS as exc:
        log.warning("replaying waiting webhooks failed (%s); the periodic replay will retry",
                    type(exc).__name__)
        return 0


def replay_waiting(
    engine: Engine,
    *,
    rules: WebhookRules | None = None,
    now: dt.datetime | None = None,
    limit: int = 500,
    batch: int = REPLAY_BATCH,
) -> ReplayReport:
    """Re-apply waiting entries and `new` ones a failed request left behind, many to a
    transaction (`_process_each`); waiting entries older than the rules' wait limit become
    unmatched, and `new` ones that failed MAX_ATTEMPTS times are set aside as failed."""
    rules = rules or WebhookRules.from_settings(get_settings())
    now = now or utcnow()
    with transaction(engine) as session:
        # Left `new` after their last try before failing entries were set aside: no more hidden.
        session.execute(
            update(WebhookInbox)
            .where(WebhookInbox.state == InboxState.NEW, WebhookInbox.attempts >= MAX_ATTEMPTS)
            .values(state=InboxState.FAILED)
            .execution_options(synchronize_session=False)
        )
        ids = session.scalars(
            select(WebhookInbox.id)
            .where(or_(
                WebhookInbox.state == InboxState.WAITING,
                and_(WebhookInbox.state == InboxState.NEW,
                     WebhookInbox.received_at <= now - NEW_GRACE,
                     WebhookInbox.attempts < MAX_ATTEMPTS),
            ))
            .order_by(WebhookInbox.id)
            .limit(limit)
        ).all()
    return _process_each(engine, ids, rules=rules, now=now, batch=batch)


def _process_each(
    engine: Engine, ids: Sequence[int], *, rules: WebhookRules, now: dt.datetime, reopen: bool = False,
    batch: int = REPLAY_BATCH,
) -> ReplayReport:
    """Process the entries `batch` at a time, oldest first, each batch in a transaction of its
    own; a batch that fails is processed again one entry per transaction, so that one entry
    that cannot be applied costs only itself. With `reopen`, a set-aside entry first becomes
    new again (in the same transaction: if applying fails, it stays set aside)."""
    states: Counter[str] = Counter()
    failed = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        try:
            outcomes = _process_together(engine, chunk, rules=rules, now=now, reopen=reopen)
        except Exception as exc:  # one bad entry must not stop the others
            if len(chunk) > 1:
                log.info("replaying %d webhook entries together failed (%s); one by one now",
                         len(chunk), type(exc).__name__)
                report = _process_each(engine, chunk, rules=rules, now=now, reopen=reopen, batch=1)
                states.update(report.states)
                failed += report.failed
            else:
                failed += 1
                _note_failure(engine, inbox_id=chunk[0], exc=exc, gave_up_waiting=now - rules.wait_limit)
            continue
        states.update(outcomes[i].state if i in outcomes else "skipped" for i in chunk)
    return ReplayReport(seen=len(ids), states=dict(states), failed=failed)


def _process_together(
    engine: Engine, ids: Sequence[int], *, rules: WebhookRules, now: dt.datetime, reopen: bool
) -> dict[int, Outcome]:
    with transaction(engine) as session:
        if reopen:
            session.execute(
                update(WebhookInbox)
                .where(bulk.one_of(WebhookInbox.id, ids, session.get_bind().dialect),
                       WebhookInbox.state.in_(SET_ASIDE))
                .values(state=InboxState.NEW)
                .execution_options(synchronize_session=False)
            )
        return process_entries(session, inbox_ids=ids, rules=rules, now=now)


def replay_set_aside(
    engine: Engine, *, rules: WebhookRules | None = None, now: dt.datetime | None = None,
) -> ReplayReport:
    """Apply again the events set aside as unreadable, not understood, unmatched or failed:
    after the parser learned a new shape, a setting that decides how events are read (the
    ack numbering) was corrected, or the cause of a failure was fixed. Oldest first, many to a
    transaction (`_process_each`); one that still cannot be used is set aside again, with the
    reason as it stands now. Nothing is deleted either way."""
    rules = rules or WebhookRules.from_settings(get_settings())
    now = now or utcnow()
    with transaction(engine) as session:
        entries = session.execute(
            select(WebhookInbox.id, WebhookInbox.state)
            .where(WebhookInbox.state.in_(SET_ASIDE), WebhookInbox.kind.is_distinct_from(REFUSED))
            .order_by(WebhookInbox.id)
        ).all()
    # An unmatched entry was read, and its opt-outs recorded, when it first came.
    read_before = dataclasses.replace(rules, record_opt_outs=False)
    # A failed entry was never applied (its transaction rolled back): read as if it came now.
    never_read = (InboxState.UNPARSEABLE, InboxState.UNRECOGNISED, InboxState.FAILED)
    reports = [
        _process_each(engine, [i for i, state in entries if state in never_read], rules=rules,
                      now=now, reopen=True),
        _process_each(engine, [i for i, state in entries if state == InboxState.UNMATCHED],
                      rules=read_before, now=now, reopen=True),
    ]
    return ReplayReport(seen=len(entries), states=dict(sum((Counter(r.states) for r in reports), Counter())),
                        failed=sum(r.failed for r in reports))


def _note_failure(engine: Engine, *, inbox_id: int, exc: Exception, gave_up_waiting: dt.datetime) -> None:
    """Count the try and say what went wrong. A `new` entry tried MAX_ATTEMPTS times, or one
    waiting since before `gave_up_waiting`, is set aside as failed; a set-aside one stays as
    it was."""
    log.warning("webhook entry %s could not be applied (%s)", inbox_id, type(exc).__name__,
                exc_info=not isinstance(exc, DB_ERRORS))
    try:
        with transaction(engine) as session:
            entry = session.get(WebhookInbox, inbox_id)
            if entry is None:
                return
            entry.attempts = (entry.attempts or 0) + 1
            entry.detail = f"could not be applied: {error_words(exc)}"
            if (entry.state == InboxState.NEW and entry.attempts >= MAX_ATTEMPTS) or (
                    entry.state == InboxState.WAITING and entry.received_at <= gave_up_waiting):
                entry.state = InboxState.FAILED
                # No longer waiting: a replay reads it afresh, and what it waits for with it.
                session.execute(delete(_WAITING).where(_WAITING.c.inbox_id == inbox_id))
    except DB_ERRORS:
        pass  # the database is away; the attempt count only throttles retries


def error_words(exc: BaseException) -> str:
    """An error in a few words that hold no secret and no SQL: the driver's own words on a
    failed connection when they do not hold the password, else the error's first line when it
    holds none of the secrets set, else only its kind."""
    if isinstance(exc, SQLAlchemyError):
        original = getattr(exc, "orig", None) or exc
        said = driver_says(exc)
        return f"{type(original).__name__}: {said}" if said else type(original).__name__
    line = next(iter(str(exc).strip().splitlines()), "").strip()[:200]
    if not line or any(secret in line for secret in _secrets_set()):
        return type(exc).__name__
    return f"{type(exc).__name__}: {line}"


def _secrets_set() -> list[str]:
    settings = get_settings()
    values = [s.get_secret_value() for s in (settings.wsapme_token, settings.webhook_secret,
                                             settings.dashboard_password_hash) if s is not None]
    return [v for v in (*values, *(database_passwords() or ())) if v]


# --- health --------------------------------------------------------------------------------


def inbox_summary(session: Session) -> dict[str, Any]:
    """Counts by state and the times the health page shows."""
    counts = dict.fromkeys(InboxState.ALL, 0)
    rows = session.execute(select(WebhookInbox.state, func.count()).group_by(WebhookInbox.state))
    counts.update({state: n for state, n in rows})
    waiting_since = session.scalar(
        select(func.min(WebhookInbox.received_at)).where(WebhookInbox.state == InboxState.WAITING)
    )
    return {
        "counts": counts,
        "total": sum(counts.values()),
        "last_received_at": session.scalar(select(func.max(WebhookInbox.received_at))),
        "oldest_waiting_at": waiting_since,
    }
