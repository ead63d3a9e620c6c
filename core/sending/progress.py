"""How far a blast has got and when it will finish, under its device's pacing; how far recent
blasts got with a list's numbers; and whether anything is sending at all."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Row, and_, case, func, or_, select
from sqlalchemy.orm import Session

from core import bulk, uptime
from core.config import Settings
from core.csv_import.storage import RECENT, list_sample
from core.funnel import Funnel, FunnelFilter, funnel, not_practice
from core.models import Blast, BlastRecipient, BlastState, Device, utcnow
from core.sending import gateways
from core.sending.pacing import Finish, PacingRules, estimate_finish, sent_on
from core.sending.worker import checked_in
from core.statuses import RANK, Status

# The blast's own recent cadence, once it has this many gaps to go by, beats the rules'
# average: it counts the gateway's answer time (the next gap starts at the answer) and
# whatever else a real send takes.
OBSERVED_SENDS = 21
MIN_OBSERVED_GAPS = 5
OBSERVED_WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Ahead:
    """Other blasts' messages the worker sends from the same device before a blast's own."""

    messages: int = 0
    names: tuple[str, ...] = ()  # those blasts, in the order the worker sends them


@dataclass(frozen=True)
class Progress:
    funnel: Funnel
    remaining: int
    done: int
    eta: dt.datetime | None
    # The blast's measured seconds per message, when the ETA goes by it.
    pace_seconds: float | None = None
    # The other blasts whose messages go first and make this one finish later; empty when none do.
    waits_for: Ahead = field(default_factory=Ahead)
    # False for a blast of the other gateway (`gateways.sends`): its `remaining` do not go from here.
    sent_here: bool = True

    @property
    def fraction(self) -> float:
        total = self.done + self.remaining
        return 1.0 if total == 0 else self.done / total


def rules_for(session: Session, *, device: str | None, settings: Settings) -> PacingRules:
    row = session.get(Device, device) if device else None
    return PacingRules.of(row) if row is not None else PacingRules.from_settings(settings)


def queued_ahead(session: Session, *, device: str | None, blast_id: int | None = None) -> Ahead:
    """What the worker sends from `device` before blast `blast_id`'s messages (before a blast
    not made yet when None: it will be the newest).

    The worker sends the oldest sending blast of a device to the end before the next
    (`queue.claim_statement`), so these are the queued and in-flight messages of the older
    sending blasts there. An older paused or scheduled blast is not counted: it would go first
    too once resumed or due, but whether and when that happens is not known now.
    """
    if not device:
        return Ahead()
    query = (
        select(Blast.id, Blast.name, func.count(BlastRecipient.id))
        .join(BlastRecipient)
        .where(
            Blast.state == BlastState.SENDING,
            Blast.device == device,
            BlastRecipient.status.in_((Status.QUEUED.value, Status.SENDING.value)),
        )
        .group_by(Blast.id, Blast.name)
        .order_by(Blast.id)
    )
    if blast_id is not None:
        query = query.where(Blast.id < blast_id)
    rows = session.execute(query).all()
    return Ahead(messages=sum(count for _, _, count in rows),
                 names=tuple(name or f"Blast #{id_}" for id_, name, _ in rows))


def eta(
    session: Session, *, device: str | None, remaining: int, settings: Settings,
    start: dt.datetime | None = None, gap_seconds: float | None = None, ahead: int = 0,
) -> dt.datetime | None:
    """When the last of `remaining` messages should go, starting now (or at `start`), one
    every `gap_seconds` when that is known (see `observed_gap`), after `ahead` messages of
    other blasts (see `queued_ahead`)."""
    finish = finish_estimate(session, device=device, remaining=remaining, settings=settings, start=start,
                             gap_seconds=gap_seconds, ahead=ahead)
    return finish.at if finish else None


def finish_estimate(
    session: Session, *, device: str | None, remaining: int, settings: Settings,
    start: dt.datetime | None = None, gap_seconds: float | None = None, ahead: int = 0,
) -> Finish | None:
    """`eta`, with whether quiet hours, the daily cap or other blasts' messages hold the
    messages back, as the worker's pacing would: from the device's next slot and what it has
    sent today. The `ahead` messages go from now; this blast's after them, not before `start`."""
    if remaining == 0:
        return None
    now = utcnow()
    if settings.send_pacing == "off":
        return Finish(at=max(start or now, now))
    not_before = start if start is not None and start > now else None
    zone = settings.timezone
    row = session.get(Device, device) if device else None
    if row is None:
        return estimate_finish(PacingRules.from_settings(settings), remaining=remaining, start=now, zone=zone,
                               gap_seconds=gap_seconds, ahead=ahead, not_before=not_before)
    # The walk waits for quiet hours and the day's cap itself, as `earliest_send` does.
    first = max(now, row.next_send_at or now)
    return estimate_finish(PacingRules.of(row), remaining=remaining, start=first, zone=zone,
                           sent_today=sent_on(row, first, zone), sent_since_pause=row.sent_since_pause,
                           gap_seconds=gap_seconds, ahead=ahead, not_before=not_before)


def observed_gap(session: Session, *, blast_id: int, now: dt.datetime | None = None) -> float | None:
    """The blast's typical seconds from one send to the next, over its latest sends of the
    past hour; None until there are enough of them.

    The median, so that a pause every N messages or a quiet-hours break among them does
    not count as the pace (the rules add those in on their own).
    """
    now = now or utcnow()
    times = session.scalars(
        select(BlastRecipient.sent_at)
        .where(BlastRecipient.blast_id == blast_id, BlastRecipient.sent_at >= now - OBSERVED_WINDOW)
        .order_by(BlastRecipient.sent_at.desc())
        .limit(OBSERVED_SENDS)
    ).all()
    gaps = [(later - earlier).total_seconds() for later, earlier in zip(times, times[1:], strict=False)]
    return statistics.median(gaps) if len(gaps) >= MIN_OBSERVED_GAPS else None


def blast_progress(session: Session, *, blast_id: int, settings: Settings) -> Progress:
    counts = funnel(session, filters=FunnelFilter(blast_ids=(blast_id,)))
    blast_state, device, scheduled_at = session.execute(
        select(Blast.state, Blast.device, Blast.scheduled_at).where(Blast.id == blast_id)
    ).one()
    remaining = counts.waiting
    finish = gap = None
    ahead = Ahead()
    here = gateways.sends(device, settings=settings)
    if here and blast_state in ("sending", "scheduled", "draft"):
        gap = observed_gap(session, blast_id=blast_id) if blast_state == "sending" else None
        device = device or gateways.launch_device(settings)
        ahead = queued_ahead(session, device=device, blast_id=blast_id)
        finish = finish_estimate(session, device=device, remaining=remaining, settings=settings,
                                 start=scheduled_at, gap_seconds=gap, ahead=ahead.messages)
    return Progress(funnel=counts, remaining=remaining, done=counts.total - remaining,
                    eta=finish.at if finish else None, pace_seconds=gap,
                    waits_for=ahead if finish and finish.others_first else Ahead(), sent_here=here)


# A worker started beside the server checks in at its first look for work, within a second or
# two: until this long after the start (`core.uptime`), none having checked in is no news.
# Longer, and a blast sent just after a restart was said to be sending.
STARTUP_GRACE = dt.timedelta(seconds=10)


def nothing_sends(session: Session, *, settings: Settings, now: dt.datetime | None = None) -> bool:
    """Whether no blast can go out: this dashboard runs no send worker of its own (RUN_WORKER
    off) and none has checked in within the window the health page allows
    (`core.sending.worker.alive_within`), the server having run for `STARTUP_GRACE`.

    With RUN_WORKER on, the worker starts with the server itself: whether it keeps checking in
    is for the health page to watch, not for every blast to doubt."""
    if settings.run_worker:
        return False
    now = now or utcnow()
    if now - uptime.STARTED_AT < STARTUP_GRACE:
        return False
    return not checked_in(session, settings=settings, now=now)


# A message that went, or may have: the gateway took it, its answer was lost, or a worker holds
# it mid-send. A refused one (FAILED) reached no one.
_WENT = (*(s.value for s in Status if RANK[s] >= 1), Status.UNKNOWN.value, Status.SENDING.value)
# Blasts whose queued messages go out with no one acting: a sending one's in their turn, and a
# finished one's too (`blasts.reopen_requeued` takes it up again). A paused or draft blast's wait
# for a person, a scheduled one's for its time: changed or cancelled before then, they never go.
_SENDS_ITS_QUEUE = (BlastState.SENDING, BlastState.COMPLETED)
_HOLDS_ITS_QUEUE = (BlastState.PAUSED, BlastState.SCHEDULED, BlastState.DRAFT)


def _went() -> ColumnElement[bool]:
    """A blast's message to someone went, or may have, or goes in its turn (the rule above)."""
    return or_(BlastRecipient.status.in_(_WENT),
               and_(BlastRecipient.status == Status.QUEUED.value, Blast.state.in_(_SENDS_ITS_QUEUE)))


def _held() -> ColumnElement[bool]:
    """A blast's message to someone waits, queued, for a person or for its time."""
    return and_(BlastRecipient.status == Status.QUEUED.value, Blast.state.in_(_HOLDS_ITS_QUEUE))


def held_by(
    session: Session, *, blast_ids: Sequence[int], numbers: Sequence[str], leave_out_practice: bool = False,
) -> set[str]:
    """Those of `numbers` that these blasts messaged (or may have, or send to in their turn), or
    hold not sent yet: every one, not a sample, for a new list to leave them out."""
    if not blast_ids or not numbers:
        return set()
    query = (
        select(BlastRecipient.phone_number).join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(Blast.id.in_(blast_ids), or_(_went(), _held()),
               bulk.one_of(BlastRecipient.phone_number, list(numbers), session.get_bind().dialect))
    )
    if leave_out_practice:
        query = query.where(not_practice())
    return set(session.scalars(query))


@dataclass(frozen=True)
class ListReach:
    """What one blast did with a list's numbers, counted for the whole list."""

    messaged: int  # it messaged them, or may have, or sends to them in its turn
    unsent: int  # it holds them queued, waiting for a person (resume, send) or for its time
    # Any of them: another blast of the list messages those twice, however many others the
    # gateway refused or it still holds.
    messaged_some: bool
    holds_most_unsent: bool  # none messaged, but most of the list is in it and not sent yet


@dataclass(frozen=True)
class RecentReach:
    """How many of a list the blasts of the past week messaged (or may have, or are sending
    to in their turn), and which blasts those were, the newest first; with every number asked
    about, which numbers they were (`phones`)."""

    people: int
    blasts: tuple[tuple[int, str | None], ...] = ()
    phones: frozenset[str] = frozenset()


def recently_messaged(
    session: Session, numbers: Sequence[str], *, now: dt.datetime, leave_out_practice: bool = False,
    every: bool = False,
) -> RecentReach:
    """The people of `numbers` a blast made in the last week (`csv_import.storage.RECENT`), not
    cancelled, has messaged: a new list that shares some of them messages those twice in a
    week. Counted as `list_reach` counts (a long list by a sample spread over it); with `every`,
    each number is asked about and those messaged are kept (`phones`): the people to leave out
    of a new list when the marketer asks."""
    sample = list_sample(numbers)
    asked = sorted(set(numbers)) if every else sample.numbers
    rows = [row for start in range(0, len(asked), _CHUNK)  # SQLite takes a bounded number of parameters
            for row in _messaged_this_week(session, asked[start:start + _CHUNK], now=now,
                                           leave_out_practice=leave_out_practice)]
    rows.sort(key=lambda row: (row.created_at, row.id), reverse=True)
    phones = frozenset(phone for phone, *_ in rows)
    blasts = tuple(dict.fromkeys((blast_id, name) for _, blast_id, name, _ in rows))
    if every:
        return RecentReach(len(phones), blasts, phones)
    return RecentReach(sample.scaled(len(phones)), blasts)


_CHUNK = 1000


def _messaged_this_week(
    session: Session, numbers: Sequence[str], *, now: dt.datetime, leave_out_practice: bool
) -> Sequence[Row[tuple[str, int, str | None, dt.datetime]]]:
    query = (
        select(BlastRecipient.phone_number, Blast.id, Blast.name, Blast.created_at)
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(Blast.created_at >= now - RECENT, Blast.state != BlastState.CANCELLED, _went(),
               bulk.one_of(BlastRecipient.phone_number, numbers, session.get_bind().dialect))
    )
    if leave_out_practice:
        query = query.where(not_practice())
    return session.execute(query).all()


def list_reach(
    session: Session, *, blast_ids: Sequence[int], numbers: Sequence[str], leave_out_practice: bool = False,
) -> dict[int, ListReach]:
    """How far each of `blast_ids` got with `numbers`, counted as `recent_blasts_with` counts a
    list (a long one by a sample spread over it; "most" is MOSTLY of it). With
    `leave_out_practice`, blasts made in practice mode are not in the answer: nobody got their
    messages."""
    sample = list_sample(numbers)
    wanted = sample.numbers
    if not wanted or not blast_ids:
        return {}
    query = (
        select(Blast.id, func.sum(case((_went(), 1), else_=0)), func.sum(case((_held(), 1), else_=0)))
        .join(BlastRecipient, BlastRecipient.blast_id == Blast.id)
        .where(Blast.id.in_(blast_ids),
               bulk.one_of(BlastRecipient.phone_number, wanted, session.get_bind().dialect))
        .group_by(Blast.id)
    )
    if leave_out_practice:
        query = query.where(not_practice())
    counted = {blast_id: (int(messaged or 0), int(unsent or 0))
               for blast_id, messaged, unsent in session.execute(query)}
    return {
        blast_id: ListReach(
            messaged=sample.scaled(messaged), unsent=sample.scaled(unsent),
            messaged_some=messaged > 0, holds_most_unsent=messaged == 0 and unsent >= sample.most,
        )
        for blast_id, (messaged, unsent) in counted.items()
    }
