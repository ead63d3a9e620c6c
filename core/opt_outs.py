"""The opt-out list: numbers that asked not to be messaged, and keeping every queue clear of them.

A number joins the list by replying an opt-out word (the webhook) or by hand (someone asked on
the phone, or by email). From that moment no blast sends to it: not a draft, not one scheduled
for tomorrow, not one halfway through. Taking a number off the list is for a mistake; it puts
nobody back into a blast.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import Blast, BlastRecipient, BlastState, OptOut, RecipientReply, StatusHistory
from core.phones import typed_number
from core.status_engine import SOURCES, apply_status
from core.statuses import Status

# Blasts whose queued people may still be messaged: a draft, one scheduled, sending or paused.
_OPEN_STATES = (BlastState.DRAFT, BlastState.SCHEDULED, BlastState.SENDING, BlastState.PAUSED)
_PHONES_PER_LOOKUP = 5_000  # under what SQLite takes in one statement
# Why a message sent before, then queued again, did not go a second time: on its row and page.
NOT_SENT_AGAIN = "Not sent again: they asked not to be messaged (opt-out)."


@dataclass(frozen=True)
class Listed:
    """One number on the list, as the dashboard shows it."""

    phone_number: str
    created_at: dt.datetime
    source: str | None
    keyword: str | None  # the opt-out as the webhook matched it: upper case, no punctuation
    name: str | None = None  # the name the newest blast that had one knew them by
    said: str | None = None  # the reply that put them on the list, as they wrote it, when kept


def add_opt_outs(
    session: Session, phones: Iterable[str], *, source: str, keyword: str | None = None
) -> tuple[int, int]:
    """Put these numbers (E.164) on the list and take them out of every queue. A number already
    listed keeps its first entry. Returns (newly listed, messages withdrawn)."""
    wanted = list(dict.fromkeys(phones))
    if not wanted:
        return 0, 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    before = _count_listed(session, wanted)
    session.execute(
        insert(OptOut).on_conflict_do_nothing(index_elements=[OptOut.phone_number]),
        [{"phone_number": phone, "source": source, "keyword": keyword} for phone in wanted],
    )
    withdrawn = withdraw_from_queues(session, wanted, source=source if source in SOURCES else "manual")
    return _count_listed(session, wanted) - before, withdrawn


def withdraw_from_queues(session: Session, phones: Sequence[str], *, source: str = "send") -> int:
    """Take these numbers' unsent messages out of every blast that could still send them.
    Returns how many left a queue. A message already being sent (claimed by a worker) is past
    stopping.

    A message never tried is taken off its blast and counted there as opted out, as a launch
    does. One with a past stays, failed with the reason (`NOT_SENT_AGAIN`): it was sent before
    and found unknown, then sent again by a person, or some such; its first send may have
    reached them, and its row and history are the only record of it. `source` is the history's
    (`status_engine.SOURCES`)."""
    if not phones:
        return 0
    open_blasts = select(Blast.id).where(Blast.state.in_(_OPEN_STATES))
    queued = (BlastRecipient.phone_number.in_(tuple(phones)),
              BlastRecipient.status == Status.QUEUED.value,
              BlastRecipient.blast_id.in_(open_blasts))
    kept = _fail_those_with_a_past(session, queued, source=source)
    withdrawn = Counter(session.scalars(
        delete(BlastRecipient)
        .where(*queued, ~has_a_past())
        .returning(BlastRecipient.blast_id)
        .execution_options(synchronize_session=False)
    ))
    for blast_id, removed in withdrawn.items():
        session.execute(
            update(Blast).where(Blast.id == blast_id)
            .values(skipped_opted_out=Blast.skipped_opted_out + removed,
                    total_recipients=Blast.total_recipients - removed)
            .execution_options(synchronize_session=False)
        )
    return withdrawn.total() + kept


def has_a_past() -> ColumnElement[bool]:
    """A recipient with any history: only a real change of status writes one, and a row never
    tried has had none (launch writes none). Sent, found unknown or failed, sent again by a
    person: it may already have reached them."""
    return exists().where(StatusHistory.recipient_id == BlastRecipient.id)


def _fail_those_with_a_past(
    session: Session, queued: tuple[ColumnElement[bool], ...], *, source: str
) -> int:
    """Move the queued rows with a past to FAILED, through the status engine so their history
    says why. Only from QUEUED: a worker may have claimed one since it was read, and its send
    is past stopping. Returns how many moved."""
    ids = session.scalars(select(BlastRecipient.id).where(*queued, has_a_past())
                          .order_by(BlastRecipient.id)).all()
    return sum(
        apply_status(
            session, recipient_id=recipient_id, status=Status.FAILED, source=source,
            event={"reason": "the number is on the opt-out list"},
            updates={"error": NOT_SENT_AGAIN, "next_attempt_at": None},
            only_from=(Status.QUEUED.value,),
        ).changed
        for recipient_id in ids
    )


def remove_opt_out(session: Session, *, phone: str) -> bool:
    """Take a number off the list (it was put there by mistake); False when it was not on it."""
    return bool(session.execute(
        delete(OptOut).where(OptOut.phone_number == phone).execution_options(synchronize_session=False)
    ).rowcount)


def listed(
    session: Session, *, search: str = "", limit: int | None = 200, region: str | None = None
) -> tuple[list[Listed], int]:
    """The newest entries matching `search` (part of a number, or a whole one as it is typed in
    `region`, the configured PHONE_REGION unless given), and how many match in all; every one of
    them with no `limit`."""
    query = select(OptOut)
    if search.strip():
        query = query.where(_matches_search(search.strip(), region or get_settings().phone_region))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(OptOut.created_at.desc(), OptOut.phone_number).limit(limit)).all()
    names, said = _what_blasts_know(session, rows)
    return [Listed(r.phone_number, r.created_at, r.source, r.keyword, names.get(r.phone_number),
                   said.get(r.phone_number)) for r in rows], total


def _what_blasts_know(session: Session, rows: Sequence[OptOut]) -> tuple[dict[str, str], dict[str, str]]:
    """For the listed numbers, the name a blast knew each by (the newest blast's that had one)
    and, for those who opted out by replying, that reply as they wrote it: the latest of their
    replies that reads as the stored keyword. Read through the numbers' index: only the listed
    numbers' rows, a few each."""
    # Here, not at the top: the webhook package imports this module.
    from core.webhook.replies import normalise_words

    keywords = {r.phone_number: r.keyword for r in rows}
    names: dict[str, str] = {}
    replies: dict[str, list[tuple[dt.datetime | None, str]]] = {}
    phones = list(keywords)
    for start in range(0, len(phones), _PHONES_PER_LOOKUP):
        people = session.execute(
            select(BlastRecipient.phone_number, BlastRecipient.contact_name, BlastRecipient.replied_at,
                   BlastRecipient.reply_text, RecipientReply.replied_at, RecipientReply.text)
            .outerjoin(RecipientReply, RecipientReply.recipient_id == BlastRecipient.id)
            .where(BlastRecipient.phone_number.in_(phones[start:start + _PHONES_PER_LOOKUP]))
            .order_by(BlastRecipient.id)  # the newest blast last, so its name is the one kept
        )
        for phone, name, first_at, first, at, text in people:
            if name and name.strip():
                names[phone] = name.strip()
            keyword = keywords[phone]
            replies.setdefault(phone, []).extend(
                (when, written) for when, written in ((first_at, first), (at, text))
                if keyword and written and normalise_words(written).upper() == keyword
            )
    latest = dt.datetime.min.replace(tzinfo=dt.UTC)
    said = {phone: max(found, key=lambda r: r[0] or latest)[1] for phone, found in replies.items() if found}
    return names, said


def _matches_search(term: str, region: str) -> ColumnElement[bool]:
    """A listed number holding the digits typed, in order, or the whole number typed."""
    typed = typed_number(term, region)
    if typed is None:
        return OptOut.phone_number.contains(term, autoescape=True)
    by_digits = OptOut.phone_number.contains(typed.digits, autoescape=True)
    return or_(OptOut.phone_number == typed.e164, by_digits) if typed.e164 else by_digits


def _count_listed(session: Session, phones: Sequence[str]) -> int:
    return session.scalar(
        select(func.count()).select_from(OptOut).where(OptOut.phone_number.in_(tuple(phones)))
    ) or 0
