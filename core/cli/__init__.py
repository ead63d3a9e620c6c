"""`python -m core`: the command line. Each command lives in its own module here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from core.db import driver_says
from core.errors import BlastError, ConfigError
from core.server import LOG_FORMAT

# Each command: its module under core.cli (with `add_parser(subparsers)` setting
# `func(args) -> int`) and its one-line summary. Only the module of the command being run
# is imported, so `--help` and light commands start fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("migrate", "create or upgrade the database schema"),
    "settings": ("settings", "list every setting, its default and meaning"),
    "import-csv": ("import_csv", "create a draft blast from a CSV of contacts"),
    "send": ("send", "queue a draft blast for sending"),
    "worker": ("worker", "run a send worker"),
    "replay-webhooks": ("replay_webhooks",
                        "apply again webhook events set aside as unreadable, unmatched or failed"),
    "simulator": ("simulator", "run a stand-in WSAPME gateway on this machine"),
    "seed-demo": ("seed_demo", "fill the database with example blasts"),
    "hash-password": ("hash_password", "hash a dashboard password for the settings"),
}
SUMMARIES = {name: summary for name, (_, summary) in COMMANDS.items()}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core",
        description="Marketing Blast Tracker: WhatsApp blasts through WSAPME, tracked from sent to closed.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")), None)
    for name, (module, summary) in COMMANDS.items():
        if name == chosen:
            importlib.import_module(f"core.cli.{module}").add_parser(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except BlastError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except (OperationalError, InterfaceError) as exc:
        # No URL in the words: it may hold the database password. The driver's, checked.
        print("error: cannot use the database: check DATABASE_URL and that the server is "
              f"running ({driver_says(exc) or type(exc).__name__})", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        # The database answered, and refused: not a matter of DATABASE_URL. Its words may
        # quote the values written (numbers, names), so only the kind of refusal.
        print(f"error: the database refused this ({type(exc).__name__})", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"error: a part this program needs is not installed ({exc.name}): "
              "run pip install -r requirements.txt", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if not type(exc).__module__.startswith("alembic."):
            raise
        # Alembic's words name revisions, never the database URL.
        print(f"error: the database schema cannot be brought up to date: {exc}", file=sys.stderr)
        return 2


SUPPORTED_DATABASES = ("postgresql", "sqlite")


def database_engine(url: str, *, shared: bool = True) -> Engine:
    """The engine for DATABASE_URL, or a ConfigError naming what is wrong (never the URL: it
    may hold the password). `shared`: the process's one engine for the URL (`engine_for`)."""
    from core.db import engine_for, make_engine, parse_database_url

    backend = parse_database_url(url).get_backend_name()
    if backend not in SUPPORTED_DATABASES:
        raise ConfigError(
            f"DATABASE_URL is a {backend} address; this program works with PostgreSQL "
            "(postgresql://…) or SQLite (sqlite:///…) only"
        )
    try:
        return engine_for(url) if shared else make_engine(url)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the driver for DATABASE_URL is not installed ({exc.name}): "
            "run pip install -r requirements.txt"
        ) from None
    except OSError as exc:  # SQLite's folder; a SQLite URL holds no password, so it may be named
        folder = Path(parse_database_url(url).database or "").parent
        raise ConfigError(f"the folder for the SQLite database, {folder}, cannot be made: "
                          f"{exc.strerror or exc}") from None
