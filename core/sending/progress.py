"""How far a blast has got and when it will finish, under its device's pacing."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.config import Settings
from core.funnel import Funnel, FunnelFilter, funnel
from core.models import Blast, BlastRecipient, BlastState, Device, utcnow
from core.sending import gateways
from core.sending.pacing import Finish, PacingRules, estimate_finish
from core.statuses import Status

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
    sent_today = row.sent_in_day if row.sent_day == first.astimezone(zone).date() else 0
    return estimate_finish(PacingRules.of(row), remaining=remaining, start=first, zone=zone,
                           sent_today=sent_today, sent_since_pause=row.sent_since_pause,
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
