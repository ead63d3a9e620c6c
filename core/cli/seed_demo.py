"""`python -m core seed-demo`: fill an empty database with weeks of realistic example blasts."""

from __future__ import annotations

import argparse

from sqlalchemy import func, select

from core.cli import SUMMARIES, database_engine
from core.config import get_settings
from core.db import migrate, transaction
from core.demo import seed_demo
from core.errors import ConfigError, StateConflict
from core.models import Blast


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if not settings.sandbox:
        # The dashboard hides its demo button then too: made-up blasts would mix with real ones.
        raise ConfigError(
            "Demo data is for practice mode only: WSAPME_TOKEN is set, so this database holds "
            "real blasts. Run seed-demo without WSAPME_TOKEN, on a database of its own."
        )
    engine = database_engine(settings.sqlalchemy_url)
    migrate(engine)
    with transaction(engine) as s:
        if s.scalar(select(func.count()).select_from(Blast)) and not args.force:
            raise StateConflict(
                "The database already has blasts; demo data would mix with them. "
                "Use --force to add it anyway."
            )
        added = seed_demo(s, weeks=args.weeks, seed=args.seed, timezone=settings.app_timezone)
        blasts = s.scalar(select(func.count()).select_from(Blast))
    print(f"added {added:,} demo recipients in {blasts:,} blasts over {args.weeks} weeks")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("seed-demo", help=SUMMARIES["seed-demo"])
    parser.add_argument("--weeks", type=int, default=6, help="how many weeks of history (default 6)")
    parser.add_argument("--seed", type=int, default=2026, help="random seed, for the same data again")
    parser.add_argument("--force", action="store_true", help="add demo data to a database that has blasts")
    parser.set_defaults(func=run)
