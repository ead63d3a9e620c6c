"""`python -m core`: the command line. Each command lives in its own module here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from core.errors import BlastError

# Modules under core.cli, each with `add_parser(subparsers)` that sets `func(args) -> int`.
COMMANDS = ("migrate", "settings", "send", "worker", "simulator", "import_csv", "seed_demo", "hash_password")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Marketing Blast Tracker: WhatsApp blasts through WSAPME, "
        "tracked from sent to closed.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"core.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except BlastError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
