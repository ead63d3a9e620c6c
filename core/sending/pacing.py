"""Per-device pacing kept in the database, so it holds across restarts and workers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import random
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.config import Settings, parse_quiet_hours
from core.models import Device

__all__ = ["PacingRules", "parse_quiet_hours"]  # parse_quiet_hours: read with the settings


@dataclass(frozen=True)
class PacingRules:
    min_gap_seconds: float
    jitter_seconds: float
    pause_every: int
    pause_seconds: float
    daily_cap: int
    quiet_start: dt.time | None
    quiet_end: dt.time | None

    @classmethod
    def from_settings(cls, settings: Settings) -> PacingRules:
        """The rules a device gets from the settings the first time it is seen."""
        quiet_start, quiet_end = parse_quiet_hours(settings.send_quiet_hours)
        return cls(
            min_gap_seconds=settings.send_min_gap_seconds, jitter_seconds=settings.send_jitter_seconds,
            pause_every=settings.send_pause_every, pause_seconds=settings.send_pause_seconds,
            daily_cap=settings.send_daily_cap, quiet_start=quiet_start, quiet_end=quiet_end,
        )

    @classmethod
    def of(cls, device: Device) -> PacingRules:
        return cls(
            min_gap_seconds=device.min_gap_seconds,
            jitter_seconds=device.jitter_seconds,
            pause_every=device.pause_every,
            pause_seconds=device.pause_seconds,
            daily_cap=device.daily_cap,
            quiet_start=device.quiet_start,
            quiet_end=device.quiet_end,
        )


def ensure_device(session: Session, *, device: str, settings: Settings, lock: bool = False) -> Device:
    """The device's pacing row, created from the settings' defaults the first time it is seen.

    With `lock`, the row stays locked until the transaction ends: that is how several
    workers share one device's pacing without stepping on each other.
    """
    values = {"device": device, **dataclasses.asdict(PacingRules.from_settings(settings))}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(Device).values(**values).on_conflict_do_nothing())
    query = select(Device).where(Device.device == device).execution_options(populate_existing=True)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one()


def current_device(session: Session, *, device: str, settings: Settings) -> Device:
    """The device's pacing row; for a device not seen yet, the one `ensure_device` will give it
    when the worker first sends from it, left unsaved."""
    row = session.get(Device, device)
    if row is not None:
        return row
    rules = dataclasses.asdict(PacingRules.from_settings(settings))
    return Device(device=device, **rules, sent_in_day=0, sent_since_pause=0)


def in_quiet_hours(rules: PacingRules, local: dt.datetime) -> bool:
    if rules.quiet_start is None or rules.quiet_end is None or rules.quiet_start == rules.quiet_end:
        return False
    t = local.time()
    if rules.quiet_start < rules.quiet_end:
        return rules.quiet_start <= t < rules.quiet_end
    return t >= rules.quiet_start or t < rules.quiet_end  # the window wraps midnight


def after_quiet_hours(rules: PacingRules, moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """`moment`, or the end of the quiet hours it falls in."""
    local = moment.astimezone(zone)
    if not in_quiet_hours(rules, local):
        return moment
    assert rules.quiet_end is not None
    end = dt.datetime.combine(local.date(), rules.quiet_end, tzinfo=zone)
    if end <= local:
        end = dt.datetime.combine(local.date() + dt.timedelta(days=1), rules.quiet_end, tzinfo=zone)
    return end.astimezone(dt.UTC)


def _next_local_midnight(moment: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    day = moment.astimezone(zone).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time.min, tzinfo=zone).astimezone(dt.UTC)


def sent_on(device: Device, moment: dt.datetime, zone: ZoneInfo) -> int:
    """What the device has sent on `moment`'s day in the team's time zone (its count is of the
    last day it sent on)."""
    return device.sent_in_day if device.sent_day == moment.astimezone(zone).date() else 0


def earliest_send(device: Device, *, now: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first moment the device may send again under its rules."""
    rules = PacingRules.of(device)
    moment = max(now, device.next_send_at or now)
    for _ in range(3):  # a cap day can end in quiet hours and vice versa; settles quickly
        if rules.daily_cap and sent_on(device, moment, zone) >= rules.daily_cap:
            moment = _next_local_midnight(moment, zone)
        moment = after_quiet_hours(rules, moment, zone)
    return moment


# Below these a pace looks like a machine's to WhatsApp: a number sending faster, without
# breaks, all night or without a day's limit is the kind that gets flagged.
SAFE_AVERAGE_GAP_SECONDS = 5.0
SAFE_DAILY_CAP = 1000


def risky(rules: PacingRules) -> list[str]:
    """What in a pace risks the number being flagged, in words ("no quiet hours"); none for a
    careful one."""
    said = []
    if rules.min_gap_seconds + max(rules.jitter_seconds, 0.0) / 2 < SAFE_AVERAGE_GAP_SECONDS:
        said.append(f"under {SAFE_AVERAGE_GAP_SECONDS:.0f} seconds between messages on average")
    if not rules.pause_every or not rules.pause_seconds:
        said.append("no longer pauses")
    if not rules.daily_cap or rules.daily_cap > SAFE_DAILY_CAP:
        said.append("no limit a day" if not rules.daily_cap else f"over {SAFE_DAILY_CAP:,} messages a day")
    if rules.quiet_start is None or rules.quiet_start == rules.quiet_end:
        said.append("no quiet hours (messages at night)")
    return said


class Held(enum.StrEnum):
    """Why a device sends nothing for longer than a gap (`held_back`)."""

    BREAK = "break"  # the planned break after every `pause_every` messages
    QUIET = "quiet"  # quiet hours
    CAP = "cap"  # the day's cap is reached


@dataclass(frozen=True)
class Waiting:
    until: dt.datetime
    why: Held


def held_back(device: Device, *, now: dt.datetime, zone: ZoneInfo) -> Waiting | None:
    """Why the device sends nothing now and until when, when it waits longer than one gap
    between messages: its planned break, quiet hours or the day's cap. None while it sends at
    its pace (or has sent nothing yet)."""
    rules = PacingRules.of(device)
    until = earliest_send(device, now=now, zone=zone)
    if until <= now + dt.timedelta(seconds=rules.min_gap_seconds + max(rules.jitter_seconds, 0.0)):
        return None
    if rules.daily_cap and sent_on(device, now, zone) >= rules.daily_cap:
        return Waiting(until, Held.CAP)
    # Quiet now, or the break runs into them.
    if any(in_quiet_hours(rules, moment.astimezone(zone)) for moment in (now, device.next_send_at or now)):
        return Waiting(until, Held.QUIET)
    return Waiting(until, Held.BREAK)


def record_send(
    device: Device, *, now: dt.datetime, zone: ZoneInfo, rng: random.Random | None = None
) -> None:
    """Count one send against the device and push its next slot out by gap + jitter (+ pause)."""
    rng = rng or random.Random()
    device.sent_in_day = sent_on(device, now, zone) + 1
    device.sent_day = now.astimezone(zone).date()
    gap = device.min_gap_seconds + rng.uniform(0, max(device.jitter_seconds, 0.0))
    device.sent_since_pause += 1
    if device.pause_every and device.sent_since_pause >= device.pause_every:
        gap += device.pause_seconds
        device.sent_since_pause = 0
    # Counted from this send, not from the slot it waited for: a late send must not let the
    # next one catch up, because the gap is a minimum that WhatsApp's spam checks see.
    device.next_send_at = now + dt.timedelta(seconds=gap)


def take_back_send(device: Device, *, claimed: dt.datetime, zone: ZoneInfo) -> None:
    """Undo `record_send`'s count for a message claimed at `claimed` that the gateway did not
    take and that goes back in the queue: it is counted again when it really goes, so the day's
    cap counts messages, not tries. The slot it pushed out stays: the gap ran all the same."""
    if device.sent_day == claimed.astimezone(zone).date() and device.sent_in_day > 0:
        device.sent_in_day -= 1
    if device.sent_since_pause > 0:
        device.sent_since_pause -= 1


def keep_gap_after_send(device: Device, *, claimed: dt.datetime, finished: dt.datetime) -> None:
    """Move the device's next slot back by however long the gateway took to answer.

    The slot was counted from the claim, before the call; a message reaches the gateway at
    some moment until its answer, so only a gap counted from the answer is sure to be seen
    by WhatsApp as a gap. The jitter and any pause chosen at the claim are kept."""
    took = finished - claimed
    if took > dt.timedelta(0):
        device.next_send_at = (device.next_send_at or finished) + took


@dataclass(frozen=True)
class Finish:
    """When the last message would go out, and what made it later than its pace alone."""

    at: dt.datetime
    quiet_hours: bool = False  # some send waited for quiet hours to end
    daily_cap: bool = False  # some send waited for the next day's count
    others_first: bool = False  # other blasts' messages, sent first from the device, made it later


def estimate_finish(
    rules: PacingRules,
    *,
    remaining: int,
    start: dt.datetime,
    zone: ZoneInfo,
    sent_today: int = 0,
    sent_since_pause: int = 0,
    gap_seconds: float | None = None,
    ahead: int = 0,
    not_before: dt.datetime | None = None,
) -> Finish:
    """When `remaining` messages will have gone out, honouring every rule: one every
    `gap_seconds` (as measured), or else at the rules' average gap. `sent_today` is what the
    device has sent on `start`'s day.

    `ahead`: other blasts' messages the device sends first, from `start`, under the same rules;
    the `remaining` go after them, and not before `not_before` (a scheduled blast's time)."""
    counted_at_start = {"sent_today": sent_today, "sent_since_pause": sent_since_pause}
    moment = start
    day = start.astimezone(zone).date()
    average_gap = rules.min_gap_seconds + rules.jitter_seconds / 2 if gap_seconds is None else gap_seconds
    quiet = capped = False
    last = start
    for sent in range(ahead + remaining):
        if sent == ahead and not_before is not None:
            moment = max(moment, not_before)
        allowed = after_quiet_hours(rules, moment, zone)
        quiet |= allowed != moment
        moment = allowed
        if moment.astimezone(zone).date() != day:
            day, sent_today = moment.astimezone(zone).date(), 0
        if rules.daily_cap and sent_today >= rules.daily_cap:
            capped = True
            midnight = _next_local_midnight(moment, zone)
            moment = after_quiet_hours(rules, midnight, zone)
            quiet |= moment != midnight
            day, sent_today = moment.astimezone(zone).date(), 0
        sent_today += 1
        sent_since_pause += 1
        gap = average_gap
        if rules.pause_every and sent_since_pause >= rules.pause_every:
            gap += rules.pause_seconds
            sent_since_pause = 0
        last = moment
        moment = moment + dt.timedelta(seconds=gap)
    finish = Finish(at=last, quiet_hours=quiet, daily_cap=capped)
    if ahead:
        alone = estimate_finish(rules, remaining=remaining, start=start, zone=zone, gap_seconds=gap_seconds,
                                not_before=not_before, **counted_at_start)
        finish = dataclasses.replace(finish, others_first=finish.at > alone.at)
    return finish


def pauses_among(rules: PacingRules, *, sent_since_pause: int, first: int, count: int) -> int:
    """How many of the longer pauses (one after every `pause_every` messages, `record_send`)
    come between the `count` messages that go out from the device's message `first` on
    (0: its next), as `estimate_finish` counts them from `sent_since_pause`. A pause after
    the last of them holds none of them back, and is not counted."""
    every = rules.pause_every
    if every <= 0 or rules.pause_seconds <= 0 or count < 2:
        return 0
    next_pause = max(every - sent_since_pause, 1) - 1  # the message the next pause comes after
    last = first + count - 2  # the last message with one of them still to go after it
    if last < next_pause:
        return 0
    skipped = max(0, -(-(first - next_pause) // every))  # pauses before `first`, rounded up
    return max(0, (last - next_pause) // every - skipped + 1)


def save_rules(session: Session, *, device: str, rules: PacingRules, settings: Settings) -> Device:
    """Store a device's pacing rules as a person set them; counters and slots are kept."""
    row = ensure_device(session, device=device, settings=settings, lock=True)
    row.min_gap_seconds = rules.min_gap_seconds
    row.jitter_seconds = rules.jitter_seconds
    row.pause_every = rules.pause_every
    row.pause_seconds = rules.pause_seconds
    row.daily_cap = rules.daily_cap
    row.quiet_start, row.quiet_end = rules.quiet_start, rules.quiet_end
    return row
