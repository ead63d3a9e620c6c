"""How far a blast has got and when it will finish, under its device's pacing."""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import Settings
from core.funnel import Funnel, FunnelFilter, funnel
from core.models import Blast, BlastRecipient, Device, utcnow
from core.sending.pacing import Finish, PacingRules, estimate_finish, parse_quiet_hours

# The blast's own recent cadence, once it has this many gaps to go by, beats the rules'
# average: it counts the gateway's answer time (the next gap starts at the answer) and
# whatever else a real send takes.
OBSERVED_SENDS = 21
MIN_OBSERVED_GAPS = 5
OBSERVED_WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Progress:
    funnel: Funnel
    remaining: int
    done: int
    eta: dt.datetime | None
    # The blast's measured seconds per message, when the ETA goes by it.
    pace_seconds: float | None = None

    @property
    def fraction(self) -> float:
        total = self.done + self.remaining
        return 1.0 if total == 0 else self.done / total


def default_rules(settings: Settings) -> PacingRules:
    quiet_start, quiet_end = parse_quiet_hours(settings.send_quiet_hours)
    return PacingRules(
        min_gap_seconds=settings.send_min_gap_seconds, jitter_seconds=settings.send_jitter_seconds,
        pause_every=settings.send_pause_every, pause_seconds=settings.send_pause_seconds,
        daily_cap=settings.send_daily_cap, quiet_start=quiet_start, quiet_end=quiet_end,
    )


def rules_for(session: Session, *, device: str | None, settings: Settings) -> PacingRules:
    row = session.get(Device, device) if device else None
    return PacingRules.of(row) if row is not None else default_rules(settings)


def eta(
    session: Session, *, device: str | None, remaining: int, settings: Settings,
    start: dt.datetime | None = None, gap_seconds: float | None = None,
) -> dt.datetime | None:
    """When the last of `remaining` messages should go, starting now (or at `start`), one
    every `gap_seconds` when that is known (see `observed_gap`)."""
    finish = finish_estimate(session, device=device, remaining=remaining, settings=settings, start=start,
                             gap_seconds=gap_seconds)
    return finish.at if finish else None


def finish_estimate(
    session: Session, *, device: str | None, remaining: int, settings: Settings,
    start: dt.datetime | None = None, gap_seconds: float | None = None,
) -> Finish | None:
    """`eta`, with whether quiet hours or the daily cap hold the messages back, as the
    worker's pacing would: from the device's next slot and what it has sent today."""
    if remaining == 0:
        return None
    now = utcnow()
    start = max(start or now, now)
    zone = settings.timezone
    if settings.send_pacing == "off":
        return Finish(at=start)
    row = session.get(Device, device) if device else None
    if row is None:
        return estimate_finish(default_rules(settings), remaining=remaining, start=start, zone=zone,
                               gap_seconds=gap_seconds)
    # The walk waits for quiet hours and the day's cap itself, as `earliest_send` does.
    start = max(start, row.next_send_at or start)
    sent_today = row.sent_in_day if row.sent_day == start.astimezone(zone).date() else 0
    return estimate_finish(PacingRules.of(row), remaining=remaining, start=start, zone=zone,
                           sent_today=sent_today, sent_since_pause=row.sent_since_pause,
                           gap_seconds=gap_seconds)


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
    if blast_state in ("sending", "scheduled", "draft"):
        gap = observed_gap(session, blast_id=blast_id) if blast_state == "sending" else None
        finish = eta(session, device=device or settings.wsapme_device, remaining=remaining,
                     settings=settings, start=scheduled_at, gap_seconds=gap)
    return Progress(funnel=counts, remaining=remaining, done=counts.total - remaining, eta=finish,
                    pace_seconds=gap)
