"""`python -m core replay-webhooks`: apply again the events set aside as unreadable, unmatched or
failed."""

from __future__ import annotations

import argparse

from core.cli import SUMMARIES, database_engine
from core.config import get_settings
from core.db import migrate
from core.webhook.inbox import replay_set_aside


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = database_engine(settings.sqlalchemy_url)
    migrate(engine)
    report = replay_set_aside(engine)
    print(report.set_aside_words())
    return 1 if report.failed else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay-webhooks", help=SUMMARIES["replay-webhooks"],
        description="Events the webhook could not read, whose message never turned up, or whose "
        "applying failed again and again, are kept. After an update that reads more shapes, a "
        "corrected WSAPME_ACK_NUMBERING, or a fix for what made applying fail, this applies them "
        "again; any that still cannot be used are kept as they were.",
    )
    parser.set_defaults(func=run)
