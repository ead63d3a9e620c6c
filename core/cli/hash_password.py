"""`python -m core hash-password`: make the DASHBOARD_PASSWORD_HASH value for a password."""

from __future__ import annotations

import argparse
import getpass
import sys

from core.cli import SUMMARIES
from core.errors import BadInput
from core.passwords import hash_password


def run(_args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Dashboard password: ")
        if getpass.getpass("Again: ") != password:
            raise BadInput("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 10:
        raise BadInput("use at least 10 characters")
    print(hash_password(password))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("hash-password", help=SUMMARIES["hash-password"])
    parser.set_defaults(func=run)
