"""The replies inbox: who wrote back, across all blasts, newest first, for the day's follow-up.

One row per recipient, not per reply. A sales team follows up people, not messages: someone who
wrote "ok", then "2 boxes please", then "to Shah Alam" is one call to make and one sale to record,
and three rows would make them look like three leads and push other people off the page. Each row
carries the person's latest reply (what they want now) and how many they sent, and is placed by
that latest reply, so whoever writes again comes back to the top. A recipient is a person in one
blast: a number that replied to two blasts is two rows, as a sale is recorded on one of them.

Built for a million recipients: only the replies inside the window are read, through the index
on `recipient_replies.replied_at` (migration 0007), and grouped per recipient; blasts and
recipients are joined to those few, and the latest text and the count are read for one page's
rows only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Subquery,
    and_,
    case,
    exists,
    func,
    not_,
    select,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session, aliased

from core.config import get_settings
from core.funnel import not_practice
from core.models import WITH_MESSAGES, Blast, BlastRecipient, OptOut, RecipientReply, WebhookInbox, utcnow
from core.phones import typed_number
from core.recipients import cell_of, matches_search, replies, sale_in_campaign
from core.statuses import Status
from core.webhook.parse import IncomingMessage, parse_webhook
from core.webhook.replies import NO_BLAST, no_blast_numbers, not_a_reply

DEFAULT_DAYS = 7
PAGE_SIZE = 50
_IDS_PER_LOOKUP = 5_000

# A reply without text: WhatsApp sent a photo, a sticker, a voice note (the webhook keeps it as "").
NO_TEXT_REPLY = "(a photo, sticker or voice message: open WhatsApp to see it)"


def reply_words(text: str | None) -> str:
    """A reply as a person reads it: one without text says what it was, so it never looks empty.
    Only for showing: the stored text stays as it came."""
    return text if text and text.strip() else NO_TEXT_REPLY


@dataclass(frozen=True)
class InboxFilter:
    """Which replies to list: since a day in the team's time zone, by tag, open or all, and a search."""

    since: dt.date
    timezone: str  # the team's: the first day starts at its midnight
    tags: tuple[str, ...] = ()
    only_open: bool = True  # only people to follow up: no sale recorded, and not opted out
    search: str | None = None
    # Once the dashboard sends to WhatsApp, practice blasts' replies were made up by the sandbox.
    leave_out_practice: bool = False


@dataclass(frozen=True)
class InboxRow:
    recipient_id: int
    blast_id: int
    blast_name: str | None
    phone_number: str
    contact_name: str | None
    status: str
    opted_out: bool  # asked not to be messaged: not someone to call about a sale
    last_reply_at: dt.datetime
    last_reply: str
    replies: int  # every reply they sent, the ones before the window too
    blast_date: dt.datetime | None = None  # when the blast went: tells apart blasts of one name
    blast_tag: str | None = None
    earlier: tuple[str, ...] = ()  # their replies before the latest, in the order written
    # Their cells in the uploaded list's own columns (Branch, Agent…), (heading, value), blank
    # ones left out: who in the team is theirs to call.
    own: tuple[tuple[str, str], ...] = ()
    # The other blast of the campaign where their sale is recorded (one sale a person a
    # campaign): not a lead any more, though this message of theirs is not the one closed.
    sale_on: int | None = None


def sale_elsewhere(row: InboxRow) -> str | None:
    """"Sale on #52": where the row's person has their sale recorded, when it is on another
    blast of the campaign and not on this row's."""
    if row.sale_on is None or row.status == Status.CLOSED.value:
        return None
    return f"Sale on #{row.sale_on}"


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    total: int  # rows across all pages, every filter applied
    replied: int  # people (numbers) who replied in the window, tags and search applied, closed or not
    to_follow_up: int  # of them, those with a reply to a message still without a sale in its campaign,
    # not opted out
    page: int
    pages: int


def default_since(*, timezone: str, now: dt.datetime | None = None) -> dt.date:
    """The first day of the last seven, today included, in the team's time zone."""
    today = (now or utcnow()).astimezone(ZoneInfo(timezone)).date()
    return today - dt.timedelta(days=DEFAULT_DAYS - 1)


def inbox_page(
    session: Session, *, filters: InboxFilter, page: int = 1, page_size: int | None = PAGE_SIZE
) -> InboxPage:
    """One page of the people who replied, latest reply first, with the counts the page states;
    everyone on one page with no `page_size` (a download)."""
    matching = _matching(filters)
    counts = _replied_counts(session, filters=filters)
    total = counts.rows_to_follow_up if filters.only_open else counts.rows
    pages = max(1, -(-total // page_size)) if page_size else 1
    page = min(max(page, 1), pages)
    if filters.only_open:
        matching = matching.where(_to_follow_up(matching.selected_columns))
    ordered = matching.order_by(matching.selected_columns.last_at.desc(), BlastRecipient.id.desc())
    if page_size:
        ordered = ordered.offset((page - 1) * page_size).limit(page_size)
    found = session.execute(ordered).all()
    said = said_by(session, recipient_ids=[row.recipient_id for row in found])
    columns = _upload_columns(session, blast_ids={row.blast_id for row in found})
    rows = [
        InboxRow(
            recipient_id=row.recipient_id, blast_id=row.blast_id, blast_name=row.blast_name,
            phone_number=row.phone_number, contact_name=row.contact_name, status=row.status,
            opted_out=row.opted_out, last_reply_at=row.last_at, last_reply=said[row.recipient_id][-1][1],
            replies=len(said[row.recipient_id]), blast_date=row.blast_date, blast_tag=row.blast_tag,
            earlier=tuple(text for _, text in said[row.recipient_id][:-1]),
            own=own_cells(columns.get(row.blast_id), row.variables), sale_on=row.sale_on,
        )
        for row in found
    ]
    return InboxPage(rows=rows, total=total, replied=counts.people, to_follow_up=counts.people_to_follow_up,
                     page=page, pages=pages)


def _upload_columns(session: Session, *, blast_ids: set[int]) -> dict[int, list[list[str]]]:
    ids = sorted(blast_ids)
    found: dict[int, list[list[str]]] = {}
    for start in range(0, len(ids), _IDS_PER_LOOKUP):
        found.update((blast_id, columns) for blast_id, columns in session.execute(
            select(Blast.id, Blast.upload_columns)
            .where(Blast.id.in_(ids[start:start + _IDS_PER_LOOKUP]), Blast.upload_columns.is_not(None))))
    return found


def own_cells(
    columns: list[list[str]] | None, variables: dict[str, Any] | None
) -> tuple[tuple[str, str], ...]:
    """A recipient's cells in their list's own columns, (heading, value), in the file's order;
    blank ones left out."""
    said = ((heading, cell_of(variables, key).strip()) for key, heading in columns or ())
    return tuple((heading, value) for heading, value in said if value)


def as_they_stand(session: Session, rows: list[InboxRow]) -> list[InboxRow] | None:
    """`rows` with where each person stands now (status, opted out, a sale on another blast of
    the campaign), in the same order; None when one of them can no longer be found (their blast
    was deleted)."""
    ids = [r.recipient_id for r in rows]
    now = {found.id: found for found in session.execute(
        select(BlastRecipient.id, BlastRecipient.status, sale_in_campaign().label("sale_on"))
        .join(Blast, Blast.id == BlastRecipient.blast_id).where(BlastRecipient.id.in_(ids)))}
    if set(now) != set(ids):
        return None
    from core.csv_import.storage import opted_out_among  # the import package reaches this module

    stopped = opted_out_among(session, (r.phone_number for r in rows))
    return [dataclasses.replace(r, status=now[r.recipient_id].status, opted_out=r.phone_number in stopped,
                                sale_on=now[r.recipient_id].sale_on)
            for r in rows]


def who_replied(session: Session, *, filters: InboxFilter) -> tuple[int, int]:
    """How many people replied in the window (tags and search applied), and how many of them
    are to follow up (no sale recorded, not opted out). A person is a number: one who
    answered a blast and its follow-up is one person, listed once for each."""
    counts = _replied_counts(session, filters=filters)
    return counts.people, counts.people_to_follow_up


@dataclass(frozen=True)
class _Counts:
    rows: int  # a row per message replied to
    rows_to_follow_up: int
    people: int
    people_to_follow_up: int


def _replied_counts(session: Session, *, filters: InboxFilter) -> _Counts:
    """The list's rows and the people in them, all and to follow up: one query. Materialized
    first: flattened, each use of "to follow up" asked the sale look-up again."""
    counted = _matching(filters).cte("counted").prefix_with("MATERIALIZED")
    open_ = _to_follow_up(counted.c)
    found = session.execute(
        select(func.count(), func.coalesce(func.sum(case((open_, 1), else_=0)), 0),
               func.count(counted.c.phone_number.distinct()),
               func.count(case((open_, counted.c.phone_number)).distinct()))
        .select_from(counted)
    ).one()
    return _Counts(*(int(n) for n in found))


def _to_follow_up(columns: Any) -> ColumnElement[bool]:
    """No sale recorded yet, here or on another blast of the campaign, and they did not ask to
    stop: a STOP is a reply, not a lead."""
    return and_(columns.status != Status.CLOSED.value, not_(columns.opted_out), columns.sale_on.is_(None))


def _window(filters: InboxFilter) -> Subquery:
    """Recipients with a reply since the first day, and their latest reply's time. Every later
    reply is inside the window too, so its latest is their latest of all."""
    start = dt.datetime.combine(filters.since, dt.time.min, tzinfo=ZoneInfo(filters.timezone))
    # Materialized first: asked in one go, SQLite walks every reply in recipient order to
    # spare itself a sort, ten times slower than reading the window's days and sorting those.
    recent = (
        select(RecipientReply.recipient_id, RecipientReply.replied_at)
        .where(RecipientReply.replied_at >= start.astimezone(dt.UTC))
        .cte("recent").prefix_with("MATERIALIZED")
    )
    return (
        select(recent.c.recipient_id, func.max(recent.c.replied_at).label("last_at"))
        .group_by(recent.c.recipient_id)
        .subquery("replied")
    )


def _matching(filters: InboxFilter) -> Select:
    window = _window(filters)
    query = (
        select(
            window.c.recipient_id, window.c.last_at, BlastRecipient.blast_id, Blast.name.label("blast_name"),
            Blast.blast_date, Blast.blast_tag, BlastRecipient.variables,
            BlastRecipient.phone_number, BlastRecipient.contact_name, BlastRecipient.status,
            exists().where(OptOut.phone_number == BlastRecipient.phone_number).label("opted_out"),
            sale_in_campaign().label("sale_on"),
        )
        .join(BlastRecipient, BlastRecipient.id == window.c.recipient_id)
        .join(Blast, Blast.id == BlastRecipient.blast_id)
    )
    return _chosen_by(query, filters)


def _chosen_by(query: Select, filters: InboxFilter) -> Select:
    """A query over replies joined to their recipients and blasts, with the filter's tags,
    search and practice blasts applied (the only-open choice aside: each asks it its own way)."""
    if filters.tags:
        query = query.where(Blast.blast_tag.in_(filters.tags))
    if filters.search and filters.search.strip():
        query = query.where(matches_search(filters.search.strip()))
    return query.where(not_practice()) if filters.leave_out_practice else query


def said_by(session: Session, *, recipient_ids: list[int]) -> dict[int, list[tuple[dt.datetime, str]]]:
    """Each recipient's kept replies, (time, text), in the order written (whatever order the
    gateway delivered them in), as `replies` lists them; a recipient without any is left out."""
    found: dict[int, list[tuple[dt.datetime, str]]] = {}
    # In chunks: a download of everyone can name more ids than SQLite takes in one statement.
    for start in range(0, len(recipient_ids), _IDS_PER_LOOKUP):
        rows = session.execute(
            select(RecipientReply.recipient_id, RecipientReply.replied_at, RecipientReply.text)
            .where(RecipientReply.recipient_id.in_(recipient_ids[start:start + _IDS_PER_LOOKUP]))
            .order_by(RecipientReply.recipient_id, RecipientReply.replied_at, RecipientReply.id)
        )
        for recipient_id, at, text in rows:
            found.setdefault(recipient_id, []).append((at, text))
    return found


@dataclass(frozen=True)
class Conversation:
    """A recipient's side of the chat in the order it happened: what the blast sent them, then
    everything they wrote back."""

    sent_at: dt.datetime | None
    sent_text: str | None  # None when no message was kept for them
    replies: list[tuple[dt.datetime, str]]


def conversation(session: Session, *, recipient_id: int) -> Conversation:
    """The message sent to this recipient and their replies, in the order written."""
    sent_at, sent_text = session.execute(
        select(BlastRecipient.sent_at, BlastRecipient.message_text).where(BlastRecipient.id == recipient_id)
    ).one()
    said = replies(session, recipient_id=recipient_id)
    return Conversation(sent_at, sent_text, [(reply.replied_at, reply.text) for reply in said])


@dataclass(frozen=True)
class FirstReply:
    at: dt.datetime
    text: str  # as it came: "" for a photo, a sticker or a voice note
    replies: int  # every reply they sent


def first_replies(session: Session, *, recipient_ids: list[int]) -> dict[int, FirstReply]:
    """Each recipient's first reply by the time it was written (whatever order the gateway
    delivered them in), and how many they sent; a recipient without kept replies is left out."""
    return {recipient_id: FirstReply(*said[0], len(said))
            for recipient_id, said in said_by(session, recipient_ids=recipient_ids).items()}


# --- messages no blast explains -------------------------------------------------------------

UNMATCHED_SHOWN = 200


@dataclass(frozen=True)
class UnmatchedMessage:
    """A message from a person that answers no recent blast: a new lead who found the number,
    or a late answer to an older blast."""

    at: dt.datetime
    phone_number: str
    name: str | None  # the name they gave WhatsApp, when the gateway passes it on
    text: str
    last_blast_id: int | None  # the last blast that messaged this number, however long ago
    last_blast_name: str | None


def unmatched_messages(
    session: Session, *, filters: InboxFilter, numbering: str = "baileys", limit: int = UNMATCHED_SHOWN
) -> list[UnmatchedMessage]:
    """The messages since the filter's first day that no recipient matched, newest first, the
    search applied to the number, the name and the words (tags do not apply: no blast is
    theirs); a message that asked to stop is no lead and is left out. Found by the note the
    webhook inbox writes on them (core.webhook.replies `no_blast_note`), in bodies of messages
    only or of messages with receipts, at most `limit` of them."""
    start = dt.datetime.combine(filters.since, dt.time.min, tzinfo=ZoneInfo(filters.timezone))
    found: list[UnmatchedMessage] = []
    wanted = _found_by(filters.search)
    for _, received_at, detail, body, content_type in _unmatched_entries(session, start=start):
        numbers = no_blast_numbers(detail)
        events = parse_webhook(body, content_type, numbering=numbering)  # type: ignore[arg-type]
        for event in events if isinstance(events, list) else []:
            if not isinstance(event, IncomingMessage) or event.phone not in numbers or not_a_reply(event):
                continue
            name = event.raw.get("pushName") if isinstance(event.raw, dict) else None
            message = UnmatchedMessage(event.at or received_at, event.phone,
                                       name if isinstance(name, str) and name.strip() else None,
                                       event.text, None, None)
            if wanted(message):
                found.append(message)
        if len(found) >= limit:
            break
    return _with_last_blasts(session, found[:limit])


def _unmatched_entries(session: Session, *, start: dt.datetime) -> Iterator[Row]:
    """Inbox entries since `start` whose note names a message no blast explains, newest first,
    read only as far as they are asked for. The kinds are written into the SQL as the messages'
    partial index states them (migration 0011), where the planner sees them match it."""
    inbox = WebhookInbox.__table__
    return iter(session.execute(
        select(inbox.c.id, inbox.c.received_at, inbox.c.detail, inbox.c.body, inbox.c.content_type)
        .where(sql_text(WITH_MESSAGES), inbox.c.received_at >= start.astimezone(dt.UTC),
               inbox.c.detail.contains(NO_BLAST, autoescape=True))
        .order_by(inbox.c.received_at.desc(), inbox.c.id.desc())
    ))


def _found_by(search: str | None) -> Callable[[UnmatchedMessage], bool]:
    """Whether a message is found by the search on its number, its words or its name; the
    search read once for all the messages."""
    term = (search or "").strip()
    if not term:
        return lambda message: True
    typed = typed_number(term, get_settings().phone_region)
    folded = term.casefold()

    def found(message: UnmatchedMessage) -> bool:
        if typed is not None and (typed.digits in message.phone_number or typed.e164 == message.phone_number):
            return True
        return folded in message.text.casefold() or folded in (message.name or "").casefold()
    return found


def _with_last_blasts(session: Session, messages: list[UnmatchedMessage]) -> list[UnmatchedMessage]:
    """Each message with the last blast sent to its number, if any ever was."""
    phones = sorted({m.phone_number for m in messages})
    if not phones:
        return messages
    ranked = (
        select(BlastRecipient.phone_number, BlastRecipient.blast_id, Blast.name, BlastRecipient.sent_at,
               func.row_number().over(partition_by=BlastRecipient.phone_number,
                                      order_by=(BlastRecipient.sent_at.desc(), BlastRecipient.id.desc()))
               .label("newest"))
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(BlastRecipient.phone_number.in_(phones), BlastRecipient.sent_at.is_not(None))
        .subquery()
    )
    last = {row.phone_number: row for row in session.execute(select(ranked).where(ranked.c.newest == 1))}
    return [
        dataclasses.replace(m, last_blast_id=last[m.phone_number].blast_id,
                            last_blast_name=last[m.phone_number].name)
        if m.phone_number in last else m
        for m in messages
    ]


# --- what came in since the list was read ---------------------------------------------------


@dataclass(frozen=True)
class InboxMark:
    """Where the replies and the webhook inbox stood when a list was read: their highest ids.
    Ids, not times: a reply is stamped with the phone's clock, which may be behind."""

    reply_id: int
    inbox_id: int


@dataclass(frozen=True)
class NewSince:
    replies: int  # replies the list would now show, its filters applied
    unmatched: int  # bodies holding a message no recent blast explains (about one message each)


def inbox_mark(session: Session) -> InboxMark:
    """The mark to compare against later: two reads of a primary key's end."""
    reply_id, inbox_id = session.execute(
        select(select(func.max(RecipientReply.id)).scalar_subquery(),
               select(func.max(WebhookInbox.id)).scalar_subquery())
    ).one()
    return InboxMark(reply_id or 0, inbox_id or 0)


def new_since(session: Session, *, mark: InboxMark, filters: InboxFilter) -> NewSince:
    """What arrived after `mark`, reading only the rows past it (by their primary keys): the
    replies from people the list's filters keep, and the messages no recent blast explains (not
    when tags are chosen, no blast is theirs, nor with a search, which reads their words). Cheap
    enough to ask every half minute."""
    arrived = aliased(RecipientReply)  # the search reads RecipientReply of its own
    counted = (
        select(func.count()).select_from(arrived)
        .join(BlastRecipient, BlastRecipient.id == arrived.recipient_id)
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(arrived.id > mark.reply_id)
    )
    counted = _chosen_by(counted, filters)
    if filters.only_open:
        stopped = exists().where(OptOut.phone_number == BlastRecipient.phone_number)
        counted = counted.where(BlastRecipient.status != Status.CLOSED.value, not_(stopped),
                                sale_in_campaign().is_(None))
    new_replies = session.scalar(counted) or 0
    if filters.tags or (filters.search and filters.search.strip()):
        return NewSince(int(new_replies), 0)
    inbox = WebhookInbox.__table__
    # Each noted number that did not ask to stop (a STOP is no lead): the entries of half a
    # minute are few, and their notes say which numbers wrote.
    notes = session.scalars(
        select(inbox.c.detail).where(inbox.c.id > mark.inbox_id, sql_text(WITH_MESSAGES),
                                     inbox.c.detail.contains(NO_BLAST, autoescape=True))
    )
    return NewSince(int(new_replies), sum(len(no_blast_numbers(note)) for note in notes))
