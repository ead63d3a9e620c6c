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

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import Blast, BlastRecipient, BlastState, OptOut
from core.phones import typed_number
from core.statuses import Status

# Blasts whose queued people may still be messaged: a draft, one scheduled, sending or paused.
_OPEN_STATES = (BlastState.DRAFT, BlastState.SCHEDULED, BlastState.SENDING, BlastState.PAUSED)


@dataclass(frozen=True)
class Listed:
    """One number on the list, as the dashboard shows it."""

    phone_number: str
    created_at: dt.datetime
    source: str | None
    keyword: str | None


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
    return _count_listed(session, wanted) - before, withdraw_from_queues(session, wanted)


def withdraw_from_queues(session: Session, phones: Sequence[str]) -> int:
    """Take these numbers' unsent messages out of every blast that could still send them, and
    count them on each blast as opted out, as a launch does. A message already being sent
    (claimed by a worker) is past stopping."""
    if not phones:
        return 0
    open_blasts = select(Blast.id).where(Blast.state.in_(_OPEN_STATES))
    withdrawn = Counter(session.scalars(
        delete(BlastRecipient)
        .where(BlastRecipient.phone_number.in_(tuple(phones)),
               BlastRecipient.status == Status.QUEUED.value,
               BlastRecipient.blast_id.in_(open_blasts))
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
    return withdrawn.total()


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
    rows = session.scalars(query.order_by(OptOut.created_at.desc(), OptOut.phone_number).limit(limit))
    return [Listed(r.phone_number, r.created_at, r.source, r.keyword) for r in rows], total


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
