"""Funnel answers kept in memory on PostgreSQL, dropped once the database says they moved.

A funnel over a few blasts reads a handful of rollup rows: PostgreSQL answers in a tenth of a
millisecond, and the call around it (a connection from the pool, a round trip, the session)
costs several times that. The dashboard asks the same questions on every click, and between two
clicks the counts usually have not moved. So an answer is kept, and dropped when they do.

How it learns they moved: migration 0017's triggers on `blast_recipients` and `blasts` append
to `blast_count_changes` the blasts each statement touched (`*` for "any": a truncate, a
schema change, or too many to name), with the transaction's id. A thread of this process
(`Watch`) looks every `POLL_SECONDS` for the changes committed since its last look: those whose
transaction its new snapshot sees and its last one did not, so one that began earlier and
committed later is never skipped. Each change is numbered as it is read; an answer remembers the
number current when its query started, and is used only while no change since then names one
of its blasts (an answer for named blasts) or any blast at all (an answer for a date range or a
tag, whose set of blasts a new blast can join).

What keeps it right:
- Only reads made through `core.db.reading` are answered from memory or kept: they run by
  themselves (autocommit), so they never see, nor keep, what an open transaction wrote.
- Another process's change is seen at the next look, a fifth of a second after it commits
  while the database answers promptly. This process's own writes through SQLAlchemy that
  change recipients or blasts drop every kept answer when they are made, and again when their
  connection goes back to the pool, after the commit (an answer read meanwhile by another
  thread is gone too): a page that records a sale and draws its funnel again sees the sale.
- Memory is trusted only within `TRUST_SECONDS` of the start of the last look that
  succeeded, and only while all eight triggers are there and switched on (each look counts
  them). A dropped connection, a stalled one, a server restart or triggers switched off
  therefore cost speed, not a count more than a second old. A watch away longer than
  `AWAY_SECONDS` starts afresh (the log keeps at least `LOG_MINUTES` of commits).
- Whatever is not logged is read again after `KEEP_SECONDS` at most; an answer built on kept
  ones is as old as the oldest. Not logged: the rollup tables written by hand or restored on
  their own, and rows written where the triggers do not fire (a session with
  `session_replication_role = replica`, as logical replication's apply and some restores set;
  a trigger switched off and on again inside one transaction).
- The watch stops looking after `IDLE_SECONDS` without a question, so an idle dashboard keeps
  no connection open (a managed server can sleep); the next question starts it again.

The looks are plain statements, so they work through a transaction pooler (Neon's `-pooler`
address) as directly. PostgreSQL's NOTIFY was not used: it commits notifying transactions one
at a time (bench/RESULTS.md change 32).

SQLite has no log: its calls read the database every time (a few blasts' rollups there take
about as long as a round trip would).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from core import app_state
from core.db import CONNECT_TIMEOUT_SECONDS, READ_ONLY
from core.models import utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
TRUST_SECONDS = 1.0
AWAY_SECONDS = 120.0
KEEP_SECONDS = 30.0
IDLE_SECONDS = 120.0
RETRY_SECONDS = 5.0
MAX_ANSWERS = 256
MAX_ROWS = 50_000  # rows of per-blast answers kept in all (a blast's funnel: a few hundred bytes)
EVERY_BLAST = "*"  # the log's words for "any blast may have moved"
# Migration 0017's triggers: memory is trusted only while all of them fire.
LOG_TRIGGERS = (
    "trg_blast_recipients_changes_insert", "trg_blast_recipients_changes_delete",
    "trg_blast_recipients_changes_update", "trg_blast_recipients_changes_truncate",
    "trg_blasts_changes_insert", "trg_blasts_changes_delete", "trg_blasts_changes_update",
    "trg_blasts_changes_truncate",
)
# An execution option for statements that change no count (folding the deltas into the counts).
COUNTS_UNCHANGED = "counts_unchanged"
# libpq: a peer gone silent is found in seconds, not after the system's TCP timeout.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
               "tcp_user_timeout": 15_000}

T = TypeVar("T")


class _ReadAt(threading.local):
    """While an answer is computed: when the oldest kept answer it used was read."""

    oldest = float("inf")


_read_at = _ReadAt()
_Kept = tuple[Any, int, "frozenset[int] | None", float, int]


class Watch:
    """One database's logged changes and the answers kept for it."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()  # the numbers and the answers
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.closed = False
        # Numbers of changes read: the last one of all, the last that named every blast, and per blast.
        self._seq = 0
        self._any = 0
        self._every = 0
        self._touched: dict[int, int] = {}
        self._looked_at: float | None = None  # when the last look that succeeded began
        self._looking_since: int | None = None  # the change number when the first look was taken
        self._asked_at = clock()
        # key -> (answer, number when read, its blasts or None, when read, rows)
        self._answers: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._rows = 0
        self.hits = 0
        self.misses = 0
        self.changes = 0  # logged changes read
        self.backend_pid: int | None = None  # the looking connection's server process

    # -- the readers' side

    def answer(self, key: Hashable, blasts: frozenset[int] | None, compute: Callable[[], T]) -> T:
        """`compute()`'s result, or the one kept for `key` if none of `blasts` (None: any blast)
        has moved since it was computed."""
        now = self._asked_at = self._clock()
        if self.closed:
            return compute()
        self._ensure_looking()
        if not self._trusted_at(now):
            self.misses += 1
            return compute()
        kept = self._answers.get(key)
        if kept is not None and now - kept[3] < KEEP_SECONDS and self._still_true(kept[1], kept[2]):
            self.hits += 1
            with self._lock:
                if key in self._answers:
                    self._answers.move_to_end(key)
            _read_at.oldest = min(_read_at.oldest, kept[3])  # an answer built on it is as old
            return kept[0]  # type: ignore[no-any-return]
        self.misses += 1
        started = self._seq  # before the query: a change read during it makes the answer old
        outer, _read_at.oldest = _read_at.oldest, now
        try:
            value = compute()
            read_at = _read_at.oldest
        finally:
            _read_at.oldest = min(outer, _read_at.oldest)
        self._keep(key, value, started, blasts, read_at)
        return value

    def _keep(self, key: Hashable, value: object, started: int, blasts: frozenset[int] | None,
              now: float) -> None:
        rows = len(value) if isinstance(value, list) else 1
        if rows > MAX_ROWS:
            return
        with self._lock:
            if not (self._trusted_at(self._clock()) and self._still_true(started, blasts)):
                return
            old = self._answers.pop(key, None)
            if old is not None:
                self._rows -= old[4]
            self._answers[key] = (value, started, blasts, now, rows)
            self._rows += rows
            while len(self._answers) > MAX_ANSWERS or self._rows > MAX_ROWS:
                self._rows -= self._answers.popitem(last=False)[1][4]

    def resting(self) -> bool:
        """Not looking: nobody has asked lately (or it has only just been made)."""
        thread = self._thread
        return thread is None or not thread.is_alive()

    def trusted(self) -> bool:
        """A look taken lately has read every change committed before it: kept answers may be used."""
        return self._trusted_at(self._clock())

    def _trusted_at(self, now: float) -> bool:
        looked = self._looked_at
        return looked is not None and self._looking_since is not None and now - looked < TRUST_SECONDS

    def _still_true(self, since: int, blasts: frozenset[int] | None) -> bool:
        looking = self._looking_since
        if looking is None or since < looking or self._every > since:
            return False
        if blasts is None:
            return self._any <= since
        touched = self._touched
        return all(touched.get(b, 0) <= since for b in blasts)

    # -- what moves the numbers

    def moved(self, payload: str) -> None:
        """A logged change: the blasts it names (or every blast) may count differently now."""
        with self._lock:
            seq = self._seq + 1
            parts = payload.split(",")
            if payload == EVERY_BLAST or not all(part.isdigit() for part in parts):
                self._every = seq  # "*", or not ours to read: every blast
            else:
                for part in parts:
                    self._touched[int(part)] = seq
            self._any = seq
            self._seq = seq
            self.changes += 1

    def forget_all(self) -> None:
        with self._lock:
            seq = self._seq + 1
            self._every = self._any = seq
            self._seq = seq
            self._answers.clear()
            self._rows = 0

    # -- the looking thread

    def _ensure_looking(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self.closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._look, name="blast-counts-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _look(self) -> None:
        warned = False
        while not self._stopping.is_set() and not self._idle():
            try:
                self._look_until_idle()
            except Exception as exc:  # any failure: read the database until looking again
                if not warned:  # once an outage, not every few seconds while it lasts
                    log.warning("Funnel counts are read from the database every time until its "
                                "change log can be read again (%s).", type(exc).__name__)
                    warned = True
                self._deaf()
                self._stopping.wait(RETRY_SECONDS)
            else:
                self._deaf()
                warned = False

    def _idle(self) -> bool:
        return self._clock() - self._asked_at > IDLE_SECONDS

    def _look_until_idle(self) -> None:
        import psycopg

        args, params = self._engine.dialect.create_connect_args(self._engine.url)
        params = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **_KEEPALIVES, **params, "autocommit": True}
        with psycopg.connect(*args, **params) as conn:
            self.backend_pid = conn.info.backend_pid
            snapshot: str | None = None
            names = {"triggers": list(LOG_TRIGGERS)}
            while not self._stopping.is_set() and not self._idle():
                started = self._clock()
                if snapshot is not None and started - (self._looked_at or 0.0) > AWAY_SECONDS:
                    snapshot = None  # the log may have been trimmed past the last look
                if snapshot is None:
                    snapshot, triggers = conn.execute(_FIRST_LOOK, names).fetchone()
                    changed: list[str] = []
                    self.forget_all()
                    self._looking_since = self._seq
                else:
                    rows = conn.execute(_LOOK, {**names, "since": snapshot}).fetchall()
                    snapshot, triggers = rows[0][0], rows[0][1]
                    changed = [blasts for _, _, blasts in rows if blasts is not None]
                for blasts in changed:
                    self.moved(blasts)
                if triggers != len(LOG_TRIGGERS):  # changes would go unlogged
                    raise RuntimeError("the change log's triggers are not all there")
                self._looked_at = started
                self._stopping.wait(POLL_SECONDS)

    def _deaf(self) -> None:
        self._looking_since = None
        self._looked_at = None
        self.forget_all()


# How many of the log's triggers are there and fire in ordinary sessions ('O') or always ('A').
_TRIGGERS_ON = """
(SELECT count(*) FROM pg_trigger
 WHERE tgrelid IN (to_regclass('blast_recipients'), to_regclass('blasts'))
   AND tgname = ANY(%(triggers)s) AND tgenabled IN ('O', 'A'))
"""
_FIRST_LOOK = f"SELECT pg_current_snapshot()::text, {_TRIGGERS_ON}"
# The changes whose transaction committed between the last look's snapshot and this one's. A
# transaction still running at the last look has an id at or past that snapshot's xmin.
_LOOK = f"""
SELECT pg_current_snapshot()::text, {_TRIGGERS_ON}, c.blasts
FROM (SELECT 1) AS one
LEFT JOIN blast_count_changes AS c
  ON c.xid >= pg_snapshot_xmin(%(since)s::pg_snapshot)::text::bigint
 AND pg_visible_in_snapshot(c.xid::text::xid8, pg_current_snapshot())
 AND NOT pg_visible_in_snapshot(c.xid::text::xid8, %(since)s::pg_snapshot)
ORDER BY c.id
"""

def trim_log(session: Session) -> None:
    """Delete the change log's entries committed `LOG_MINUTES` ago or more: those a snapshot
    saved at least that long ago sees (by when an entry was written, a transaction that
    commits long after it wrote would lose its entry before a watch read it). Every
    `LOG_MINUTES` the snapshot used is replaced by the current one. PostgreSQL only; run by the
    deltas' fold, one process at a time."""
    saved = app_state.get(session, key=_TRIMMED_KEY)
    if saved is not None and utcnow() - saved[1] < dt.timedelta(minutes=LOG_MINUTES):
        return
    snapshot = saved[0].get("snapshot") if saved is not None and isinstance(saved[0], dict) else None
    if isinstance(snapshot, str) and _SNAPSHOT.fullmatch(snapshot):  # a damaged one is replaced
        session.execute(_TRIM, {"saved": snapshot})
    app_state.put(session, key=_TRIMMED_KEY,
                  value={"snapshot": session.scalar(text("SELECT pg_current_snapshot()::text"))})


LOG_MINUTES = 10  # far past AWAY_SECONDS: a watch that may not have read an entry starts afresh
_TRIMMED_KEY = "count_changes_trimmed_by"
_SNAPSHOT = re.compile(r"\d+:\d+:(\d+(,\d+)*)?")  # pg_snapshot's text: xmin:xmax:xip,…
_TRIM = text(
    "DELETE FROM blast_count_changes "
    "WHERE xid < pg_snapshot_xmax(CAST(:saved AS pg_snapshot))::text::bigint "
    "AND pg_visible_in_snapshot(xid::text::xid8, CAST(:saved AS pg_snapshot))"
).execution_options(**{COUNTS_UNCHANGED: True})

_watches: dict[str, Watch] = {}
# Which watch a pool's engine answers to: looked up once per pool, not per statement.
_by_pool: weakref.WeakKeyDictionary[Pool, Watch | None] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def watch(engine: Engine) -> Watch | None:
    """Keep funnel answers for this engine's database in memory (PostgreSQL only); the watch,
    one per database per process."""
    if engine.dialect.name != "postgresql":
        return None
    key = _key(engine)
    with _registry_lock:
        found = _watches.get(key)
        if found is None:
            found = _watches[key] = Watch(engine)
            _by_pool.clear()
        _hook_writes()
        return found


def unwatch(engine: Engine) -> None:
    """Stop keeping answers for this engine's database (tests, a server that stops)."""
    with _registry_lock:
        found = _watches.pop(_key(engine), None)
        _by_pool.clear()
    if found is not None:
        found.closed = True
        found.stop()
        found.forget_all()


def forget_everything() -> None:
    """Drop every kept answer of every database (a benchmark's first visit)."""
    for found in list(_watches.values()):
        found.forget_all()


def _watch_of(engine: Engine) -> Watch | None:
    pool = engine.pool
    try:
        return _by_pool[pool]
    except KeyError:
        with _registry_lock:
            found = _by_pool[pool] = _watches.get(_key(engine))
        return found


def remembered(session: Session, key: Hashable, blasts: frozenset[int] | None, compute: Callable[[], T]) -> T:
    """`compute()`, answered from memory when the session is a `core.db.reading` one on a
    watched database and nothing it counts has moved since."""
    if not _watches:
        return compute()
    bind = session.get_bind()
    if not bind.get_execution_options().get(READ_ONLY):
        return compute()
    found = _watch_of(bind)
    if found is None:
        return compute()
    return found.answer(key, blasts, compute)


_hooked = False
_WROTE = "blast_counts_written"  # in a pooled connection's info: the watch its writes concern
_CHANGES_ROWS = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)
_COUNTED = re.compile(r"\b(blasts|blast_recipients)\b", re.IGNORECASE)


def _hook_writes() -> None:
    """This process's own writes drop the kept answers when they are made and once their
    transaction is over (see the module's note)."""
    global _hooked
    if _hooked:
        return
    event.listen(Engine, "after_cursor_execute", _on_statement)
    event.listen(Pool, "checkin", _on_checkin)
    _hooked = True


def _on_statement(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
    # Only a write that names what is counted (a recipient, or a blast, whose deletion takes its
    # recipients along) can move a count: the worker's heartbeat, the webhook's inbox and the
    # history leave the answers be.
    if not _watches:
        return
    start = statement[:16].lstrip()[:6].upper()
    if (_reads_only(start, statement) or context.execution_options.get(COUNTS_UNCHANGED)
            or _COUNTED.search(statement) is None):
        return
    if cursor is not None and cursor.rowcount == 0 and not start.startswith("WITH"):
        # Nothing it matched: the send worker's housekeeping asks every second whether a lease
        # ran out or a scheduled blast is due, and mostly none is. (A data-modifying WITH counts
        # the rows of its last part, which may not be the ones it changed.)
        return
    found = _watch_of(conn.engine)
    if found is not None:
        found.forget_all()
        # Answers read by other threads before this commits are dropped once it has.
        conn.info[_WROTE] = found


def _reads_only(start: str, statement: str) -> bool:
    """`start`: the statement's first six letters, in capitals."""
    if start == "SELECT":
        return True
    # A WITH that only reads (a data-modifying one names what it changes).
    return start.startswith("WITH") and _CHANGES_ROWS.search(statement) is None


def _on_checkin(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    found = record.info.pop(_WROTE, None) if record is not None else None
    if found is not None:
        found.forget_all()
