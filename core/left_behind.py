"""What the SQLite file in DATA_DIR holds once DATABASE_URL points elsewhere: the team's earlier
blasts and, what matters most, the numbers that asked not to be messaged.

Moving to PostgreSQL starts an empty database. Nothing is copied by itself (the earlier blasts'
receipts, replies and webhook address belong to that file), but the opt-out list must not be
lost: a number on it may never be messaged again, and the new list would not know it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core import app_state
from core.config import Settings
from core.csv_import.storage import opted_out_among
from core.models import Blast, OptOut
from core.opt_outs import withdraw_from_queues

log = logging.getLogger(__name__)
DEFAULT_FILE = "blasts.db"  # as `Settings.sqlalchemy_url` names it
# The numbers carried over from an earlier file, by its path: one taken off the list here later
# (put there by mistake) is not offered again.
_CARRIED = "left_behind:carried:"


@dataclass(frozen=True)
class EarlierOptOut:
    phone_number: str
    created_at: dt.datetime | None
    source: str | None
    keyword: str | None


@dataclass(frozen=True)
class LeftBehind:
    """The earlier database: where it is, its blasts, and its opt-outs this list lacks."""

    path: Path
    blasts: int
    opt_outs: list[EarlierOptOut]  # in the order they were listed there
    unreadable: bool = False  # then what it holds is not known: its opt-outs may be missing here


def left_behind(session: Session, *, settings: Settings) -> LeftBehind | None:
    """The SQLite file in DATA_DIR when this dashboard uses another database and that file holds
    blasts or opt-outs, or cannot be read (said, and logged); None otherwise (no such file, the
    file in use, nothing in it)."""
    path = settings.data_dir / DEFAULT_FILE
    if _in_use(session, path) or not path.is_file():
        return None
    try:
        with _read_only(path) as earlier, Session(earlier) as s:
            blasts = s.scalar(select(func.count()).select_from(Blast)) or 0
            listed = [EarlierOptOut(*row) for row in s.execute(
                select(OptOut.phone_number, OptOut.created_at, OptOut.source, OptOut.keyword)
                .order_by(OptOut.created_at, OptOut.phone_number))]
    except SQLAlchemyError as exc:  # damaged, not a database, or one this server may not read
        log.warning("the earlier database %s could not be read (%s)", path, type(exc).__name__)
        return LeftBehind(path=path, blasts=0, opt_outs=[], unreadable=True)
    carried = set(_carried(session, path))
    missing = _not_listed_here(session, [o for o in listed if o.phone_number not in carried])
    if not blasts and not missing:
        return None
    return LeftBehind(path=path, blasts=blasts, opt_outs=missing)


def carry_over_opt_outs(session: Session, left: LeftBehind) -> int:
    """Put the earlier database's opt-outs on this list as they were listed there (when, how,
    with which word), and take them out of every queue here. Returns how many were added."""
    if not left.opt_outs:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    rows = [{"phone_number": o.phone_number, "source": o.source, "keyword": o.keyword,
             **({"created_at": o.created_at} if o.created_at else {})} for o in left.opt_outs]
    added = 0
    for row in rows:  # one by one: a row without its time takes the column's default
        added += len(session.execute(
            insert(OptOut).values(**row).on_conflict_do_nothing(index_elements=[OptOut.phone_number])
            .returning(OptOut.phone_number)
        ).all())
    numbers = [o.phone_number for o in left.opt_outs]
    withdraw_from_queues(session, numbers, source="manual")
    app_state.put(session, key=_carried_key(left.path),
                  value={"numbers": sorted({*_carried(session, left.path), *numbers})})
    return added


def _carried_key(path: Path) -> str:
    # By the file's path, hashed: a key holds 100 characters, a path may not.
    return _CARRIED + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]


def _carried(session: Session, path: Path) -> list[str]:
    kept = app_state.get(session, key=_carried_key(path))
    return list(kept[0].get("numbers", [])) if kept else []


def _in_use(session: Session, path: Path) -> bool:
    url = make_url(str(session.get_bind().engine.url))
    if url.get_backend_name() != "sqlite" or not url.database:
        return False
    with contextlib.suppress(OSError):
        return Path(url.database).resolve() == path.resolve()
    return False


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[Engine]:
    # Opened read-only, with none of `core.db`'s settings (they write: WAL mode). SQLite may
    # still make its -wal and -shm files beside a database in WAL mode to read it.
    engine = create_engine(f"sqlite:///{path.resolve().as_uri()}?mode=ro&uri=true",
                           connect_args={"timeout": 5})
    try:
        yield engine
    finally:
        engine.dispose()


def _not_listed_here(session: Session, earlier: list[EarlierOptOut]) -> list[EarlierOptOut]:
    here = opted_out_among(session, (o.phone_number for o in earlier))
    missing: dict[str, EarlierOptOut] = {}
    for o in earlier:
        if o.phone_number not in here:
            missing.setdefault(o.phone_number, o)
    return list(missing.values())
