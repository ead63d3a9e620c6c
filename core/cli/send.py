"""`python -m core send BLAST_ID`: queue a draft blast for sending, now or at a time, its
message written first when `--message` gives it."""

from __future__ import annotations

import argparse
import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from core import templates
from core.cli import SUMMARIES, database_engine
from core.config import Settings, get_settings
from core.db import migrate, transaction
from core.errors import BadInput, NotFound, StateConflict
from core.followups import follow_up_placeholders
from core.models import Blast, BlastState, utcnow
from core.sending import blasts, gateways, pacing
from core.sending.worker import checked_in
from core.words import plural

# A --at this little in the past is taken as "now" (the minute it took to type); further back
# is most likely a typo in the date, and sending at once would surprise.
PAST_SLACK = dt.timedelta(minutes=5)
# A start held back by less than this is "now": the device's gap between messages, not a wait.
HELD_BACK = dt.timedelta(minutes=1)


def _when(text: str | None, zone: dt.tzinfo) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{text!r} is not a date and time like 2026-12-01T09:30") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(dt.UTC)


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    zone = settings.timezone
    at = _when(args.at, zone)
    now = utcnow()
    if at is not None and now - at > PAST_SLACK:
        raise BadInput(
            f"--at {at.astimezone(zone):%d %b %Y %H:%M} has already passed (it is "
            f"{now.astimezone(zone):%d %b %Y %H:%M} now). Give a time ahead, or leave out --at "
            "to send now."
        )
    here = gateways.launch_device(settings)
    device = args.device or here
    if gateways.crosses(device, here):
        # It would wait for the other gateway: a practice blast would go to WhatsApp with a token.
        raise BadInput(f"--device {device} is not sent from here. "
                       f"{gateways.not_sent_words(device)} Leave out --device.")
    engine = database_engine(settings.sqlalchemy_url)
    migrate(engine)
    with transaction(engine) as s:
        _write_message(s, blast_id=args.blast_id, message=args.message)
        before = s.get(Blast, args.blast_id)
        was_due = before.scheduled_at if before is not None and before.state == BlastState.SCHEDULED else None
        try:
            blast = blasts.launch(
                s, blast_id=args.blast_id, at=at, device=device,
                timezone=zone, allow_blanks=args.allow_blanks,
            )
        except BadInput as exc:
            if args.allow_blanks or "with a gap" not in exc.message:
                raise
            raise BadInput(
                f"{exc.message.rstrip('.')}. Fill those in and import again, leave that placeholder out "
                "of --message, or add --allow-blanks to send with the gaps left empty."
            ) from None
        state, total, scheduled = blast.state, blast.total_recipients, blast.scheduled_at
        when = scheduled if state == "scheduled" and scheduled is not None else now
        held = _held_back(s, device=device, when=when,
                          settings=settings, now=state != "scheduled")
        working = bool(checked_in(s, settings=settings, now=utcnow()))
    if state == "scheduled":
        print(f"blast {args.blast_id}: {plural(total, 'recipient')} scheduled for "
              f"{when.astimezone(zone):%d %b %Y %H:%M}{held or ''}")
    elif held:
        print(f"blast {args.blast_id}: {plural(total, 'recipient')} queued{held}")
    elif working:
        print(f"blast {args.blast_id}: {plural(total, 'recipient')} queued; a worker sends them now")
    else:
        print(f"blast {args.blast_id}: {plural(total, 'recipient')} queued")
    if not working:
        # As the blast page and Settings & health say it (`core.health`).
        print("No send worker is running now, so nothing goes until one starts: the dashboard with "
              "RUN_WORKER=true, or `python -m core worker` against the same database.")
    if was_due is not None and state != "scheduled":
        print(f"blast {args.blast_id} was scheduled for {was_due.astimezone(zone):%d %b %Y %H:%M}; "
              "it goes now instead (give --at to keep a time)")
    return 0


def _write_message(s: Session, *, blast_id: int, message: str | None) -> None:
    """Set a draft's message (`--message`), as the dashboard's draft page saves it; without
    one, a draft that has none is refused with the way to give it."""
    blast = s.get(Blast, blast_id)
    if blast is None:
        raise NotFound(f"Blast {blast_id} does not exist.")
    if message is None:
        if blast.state == BlastState.DRAFT and not (blast.message_template or "").strip():
            raise BadInput(f"Blast {blast_id} has no message yet: give it with --message, "
                           "e.g. --message 'Hi {name}, …'.")
        return
    if blast.state != BlastState.DRAFT:
        raise StateConflict(f"Blast {blast_id} is no longer a draft: its message cannot be changed.")
    # The blast's own columns: a misspelt {placeholder} is refused, never sent as a blank.
    templates.check(message, follow_up_placeholders(s, parent_id=blast_id))
    blast.message_template = message
    s.flush()


def _held_back(s: Session, *, device: str, when: dt.datetime, settings: Settings, now: bool) -> str | None:
    """Why and until when the device's rules hold back a start at `when`, by the worker's own
    rule (`pacing.earliest_send`); None when sending can start then."""
    if settings.send_pacing != "on":  # the worker keeps no quiet hours nor cap then
        return None
    zone: ZoneInfo = settings.timezone
    row = pacing.current_device(s, device=device, settings=settings)
    start = pacing.earliest_send(row, now=when, zone=zone)
    if start - when < HELD_BACK:
        return None
    rules = pacing.PacingRules.of(row)
    local, begins = when.astimezone(zone), start.astimezone(zone)
    starts = f"sending starts at {begins:%H:%M} on {begins.day} {begins:%b %Y}"
    if pacing.in_quiet_hours(rules, local):
        window = f"quiet hours ({rules.quiet_start:%H:%M}–{rules.quiet_end:%H:%M})"
        return f"; it is {local:%H:%M} now, inside {window}, so {starts}" if now else (
            f"; {local:%H:%M} is inside {window}, so {starts}")
    if rules.daily_cap and row.sent_day == local.date() and row.sent_in_day >= rules.daily_cap:
        return f"; device {device} has sent its {rules.daily_cap:,} messages for the day, so {starts}"
    return f"; device {device} is still pacing earlier messages, so {starts}"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("send", help=SUMMARIES["send"])
    parser.add_argument("blast_id", type=int)
    parser.add_argument("--at", help="send later, at this local time (2026-12-01T09:30)")
    parser.add_argument("--message", help="write the draft's message first, e.g. 'Hi {name}' "
                        "(a draft imported without one needs it)")
    parser.add_argument("--device", help="the WSAPME device to send from (default: WSAPME_DEVICE; "
                        "in practice mode, the sandbox's, and no WhatsApp device can be chosen)")
    parser.add_argument("--allow-blanks", action="store_true",
                        help="send even when a {placeholder} is empty for some recipients, "
                        "leaving the gap in their message")
    parser.set_defaults(func=run)
