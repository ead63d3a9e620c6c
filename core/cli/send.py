"""`python -m core send BLAST_ID`: queue a draft blast for sending, now or at a time."""

from __future__ import annotations

import argparse
import datetime as dt

from core.cli import SUMMARIES
from core.config import get_settings
from core.db import engine_for, migrate, transaction
from core.errors import BadInput
from core.sending import blasts


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
    engine = engine_for(settings.sqlalchemy_url)
    migrate(engine)
    with transaction(engine) as s:
        blast = blasts.launch(
            s, blast_id=args.blast_id, at=_when(args.at, settings.timezone),
            device=args.device or settings.wsapme_device, timezone=settings.timezone,
        )
        state, total, scheduled = blast.state, blast.total_recipients, blast.scheduled_at
    if state == "scheduled":
        local = scheduled.astimezone(settings.timezone)
        print(f"blast {args.blast_id}: {total} recipients scheduled for {local:%d %b %Y %H:%M}")
    else:
        print(f"blast {args.blast_id}: {total} recipients queued; a worker sends them now")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("send", help=SUMMARIES["send"])
    parser.add_argument("blast_id", type=int)
    parser.add_argument("--at", help="send later, at this local time (2026-12-01T09:30)")
    parser.add_argument("--device", help="the WSAPME device to send from (default: WSAPME_DEVICE)")
    parser.set_defaults(func=run)
