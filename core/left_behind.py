"""What the SQLite file in DATA_DIR holds once DATABASE_URL points elsewhere: the team's earlier
blasts and, what matters most, the numbers that asked not to be messaged.

Moving to PostgreSQL starts an empty database. Nothing is copied by itself (the earlier blasts'
receipts, replies and webhook address belong to that file), but the opt-out list must not be
lost: a number on it may never be messaged again, and the new list would not know it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core.config import Settings
from core.models import OptOut
from core.opt_outs import add_opt_outs

DEFAULT_FILE = "blasts.db"  # as `Settings.sqlalchemy_url` names it
_NUMBERS_PER_LOOKUP = 5_000  # under what SQLite takes in one statement


@dataclass(frozen=True)
class LeftBehind:
    """The earlier database: where it is, its blasts, and its opt-outs this list lacks."""

    path: Path
    blasts: int
    opt_outs: list[str]  # E.164 numbers, in the order they were listed there


def left_behind(session: Session, *, settings: Settings) -> LeftBehind | None:
    """The SQLite file in DATA_DIR when this dashboard uses another database and that file holds
    blasts or opt-outs; None otherwise (no such file, the file in use, nothing in it)."""
    path = settings.data_dir / DEFAULT_FILE
    if _in_use(session, path) or not path.is_file():
        return None
    try:
        with _read_only(path) as earlier:
            blasts = _count(earlier, "SELECT count(*) FROM blasts")
            listed = [row[0] for row in _rows(earlier, "SELECT phone_number FROM opt_outs "
                                                        "ORDER BY created_at")]
    except sqlite3.Error:  # not a database of ours, or one it cannot read: nothing to say of it
        return None
    missing = _not_listed_here(session, listed)
    if not blasts and not missing:
        return None
    return LeftBehind(path=path, blasts=blasts, opt_outs=missing)


def carry_over_opt_outs(session: Session, left: LeftBehind) -> int:
    """Put the earlier database's opt-outs on this list (and out of every queue here). Returns
    how many were added."""
    added, _ = add_opt_outs(session, left.opt_outs, source="manual")
    return added


def _in_use(session: Session, path: Path) -> bool:
    url = make_url(str(session.get_bind().engine.url))
    if url.get_backend_name() != "sqlite" or not url.database:
        return False
    with contextlib.suppress(OSError):
        return Path(url.database).resolve() == path.resolve()
    return False


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    # Read-only: never a write, never a WAL file made beside a database that another process
    # (a dashboard still started on it) may be using.
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        yield connection
    finally:
        connection.close()


def _count(connection: sqlite3.Connection, sql: str) -> int:
    try:
        return int(connection.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # no such table: a file made before it existed
        return 0


def _rows(connection: sqlite3.Connection, sql: str) -> list[tuple]:
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []


def _not_listed_here(session: Session, numbers: list[str]) -> list[str]:
    here: set[str] = set()
    for start in range(0, len(numbers), _NUMBERS_PER_LOOKUP):
        chunk = numbers[start:start + _NUMBERS_PER_LOOKUP]
        here.update(session.scalars(select(OptOut.phone_number).where(OptOut.phone_number.in_(chunk))))
    return [number for number in dict.fromkeys(numbers) if number not in here]
