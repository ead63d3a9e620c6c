"""`python -m core migrate`: bring the database schema up to date by hand."""

from __future__ import annotations

import argparse

from core.cli import SUMMARIES
from core.config import get_settings
from core.db import current_revision, make_engine, migrate


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help=SUMMARIES["migrate"])
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    engine = make_engine(get_settings().sqlalchemy_url)
    migrate(engine, args.revision)
    print(f"database schema at revision {current_revision(engine)}")
    return 0
