"""Funnel answers kept in memory on PostgreSQL, dropped the moment the database says they moved.

A funnel over a few blasts reads a handful of rollup rows: PostgreSQL answers in a tenth of a
millisecond, and the call around it (a connection from the pool, a round trip, the session)
costs several times that. The dashboard asks the same questions on every click, and between two
clicks the counts usually have not moved. So an answer is kept, and dropped when they do.

How it learns they moved: migration 0017's triggers on `blast_recipients` and `blasts` send
a notice on the `blast_counts` channel when a transaction that changed them commits, naming
the blasts it touched (`*` for "any": a truncate, a schema change, or too many to name). A
thread of this process listens on a connection of its own (`Watch`). Each notice is numbered
as it arrives; an answer remembers the number current when its query started, and is used only
while no notice since then names one of its blasts (an answer for named blasts) or any blast
at all (an answer for a date range or a tag, whose set of blasts a new blast can join).

What keeps it right:
- Only reads made through `core.db.reading` are answered from memory or kept: they run by
  themselves (autocommit), so they never see, nor keep, what an open transaction wrote.
- Another process's change is seen once its notice arrives, a few milliseconds after it
  commits. This process's own writes through SQLAlchemy to recipients or blasts drop every
  kept answer when they are made, and again when their connection goes back to the pool,
  after the commit (an answer read meanwhile by another thread is gone too): a page that
  records a sale and draws its funnel again sees the sale.
- Memory is trusted only while the listener is known to hear: twice a second a second
  connection sends it a heartbeat, only while the notice triggers are there and switched on,
  and PostgreSQL delivers notices in commit order, so a heartbeat heard proves every change
  committed before it was sent has been heard. Kept answers are used only within
  `TRUST_SECONDS` of the last heartbeat heard being sent; past `OVERDUE_SECONDS` the listener
  connects again. A dropped connection, a stalled one, a server restart, triggers switched off
  or a pooler that does not pass notices on (PgBouncer in transaction mode, Neon's `-pooler`
  addresses: `DATABASE_LISTEN_URL` gives a direct one) therefore cost speed, never a count more
  than two seconds old.
- Whatever is not announced (the rollup tables written by hand or restored on their own) is
  read again after `KEEP_SECONDS` at most; an answer built on kept ones is as old as the
  oldest.
- The listener stops after `IDLE_SECONDS` without a question, so an idle dashboard keeps no
  connection open (a managed server can sleep); the next question starts it again.

SQLite has no notices: its calls read the database every time (a few blasts' rollups there
take about as long as a round trip would).
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import URL, Engine, event, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from core.db import CONNECT_TIMEOUT_SECONDS, READ_ONLY

log = logging.getLogger(__name__)

CHANNEL = "blast_counts"
EVERY_BLAST = "*"  # a notice's words for "any blast may have moved"
ALIVE = "alive"  # the start of a listener's heartbeat, which names no blast
HEARTBEAT_SECONDS = 0.5
TRUST_SECONDS = 2.0
OVERDUE_SECONDS = 5.0
KEEP_SECONDS = 30.0
IDLE_SECONDS = 120.0
RETRY_SECONDS = 5.0
MAX_ANSWERS = 256
MAX_ROWS = 50_000  # rows of per-blast answers kept in all (a blast's funnel: a few hundred bytes)
# Migration 0017's triggers: the heartbeat goes out only while all of them fire.
NOTICE_TRIGGERS = (
    "trg_blast_recipients_notice_insert", "trg_blast_recipients_notice_delete",
    "trg_blast_recipients_notice_update", "trg_blast_recipients_notice_truncate",
    "trg_blasts_notice_insert", "trg_blasts_notice_delete", "trg_blasts_notice_update",
    "trg_blasts_notice_truncate",
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
    """One database's notices and the answers kept for it."""

    def __init__(self, engine: Engine, *, listen_url: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        # Where to listen, when not where the engine connects (a pooler passes no notices on).
        self._listen_url = make_url(listen_url) if listen_url else engine.url
        self._clock = clock
        self._lock = threading.Lock()  # the numbers and the answers
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.closed = False
        # Numbers of notices: the last one of all, the last that named every blast, and per blast.
        self._seq = 0
        self._any = 0
        self._every = 0
        self._touched: dict[int, int] = {}
        self._heard_sent_at: float | None = None  # when the last heartbeat heard was sent
        self._listening_since: int | None = None  # the notice number when LISTEN took effect
        self._asked_at = clock()
        # key -> (answer, number when read, its blasts or None, when read, rows)
        self._answers: OrderedDict[Hashable, _Kept] = OrderedDict()
        self._rows = 0
        self.hits = 0
        self.misses = 0
        self.notices = 0  # change notices heard (heartbeats left out)
        self.backend_pid: int | None = None  # the listening connection's server process

    # -- the readers' side

    def answer(self, key: Hashable, blasts: frozenset[int] | None, compute: Callable[[], T]) -> T:
        """`compute()`'s result, or the one kept for `key` if none of `blasts` (None: any blast)
        has moved since it was computed."""
        now = self._asked_at = self._clock()
        if self.closed:
            return compute()
        self._ensure_listening()
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
        started = self._seq  # before the query: a notice arriving during it makes the answer old
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

    def trusted(self) -> bool:
        """Listening, and a heartbeat sent lately has been heard: kept answers may be used."""
        return self._trusted_at(self._clock())

    def _trusted_at(self, now: float) -> bool:
        sent = self._heard_sent_at
        return sent is not None and self._listening_since is not None and now - sent < TRUST_SECONDS

    def _still_true(self, since: int, blasts: frozenset[int] | None) -> bool:
        listening = self._listening_since
        if listening is None or since < listening or self._every > since:
            return False
        if blasts is None:
            return self._any <= since
        touched = self._touched
        return all(touched.get(b, 0) <= since for b in blasts)

    # -- what moves the numbers

    def moved(self, payload: str) -> None:
        """A notice: the blasts it names (or every blast) may count differently now."""
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
            self.notices += 1

    def forget_all(self) -> None:
        with self._lock:
            seq = self._seq + 1
            self._every = self._any = seq
            self._seq = seq
            self._answers.clear()
            self._rows = 0

    # -- the listener

    def _ensure_listening(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self.closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._listen, name="blast-counts-listener", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _listen(self) -> None:
        warned = False
        while not self._stopping.is_set() and not self._idle():
            try:
                self._listen_once()
            except Exception as exc:  # any failure: read the database until listening again
                if not warned:  # once an outage, not every few seconds while it lasts
                    log.warning("Funnel counts are read from the database every time until its "
                                "notices can be heard again (%s).", type(exc).__name__)
                    warned = True
                self._deaf()
                self._stopping.wait(RETRY_SECONDS)
            else:
                self._deaf()
                warned = False

    def _idle(self) -> bool:
        return self._clock() - self._asked_at > IDLE_SECONDS

    def _listen_once(self) -> None:
        import psycopg

        def connect(url: URL) -> psycopg.Connection:
            args, params = self._engine.dialect.create_connect_args(url)
            return psycopg.connect(*args, **{"connect_timeout": CONNECT_TIMEOUT_SECONDS, **_KEEPALIVES,
                                             **params, "autocommit": True})

        # The heartbeat goes out on a second connection, to the engine's own address, the way a
        # change would: heard, it proves that notices from other sessions on the database the
        # answers come from reach this one. (Through a transaction pooler a session's own notice
        # can come back while others' do not; a listening address on another database hears none.)
        token = secrets.token_hex(8)
        sent: dict[str, float] = {}
        beats = iter(range(1 << 62))
        with connect(self._listen_url) as conn, connect(self._engine.url) as sender:
            self.backend_pid = conn.info.backend_pid
            conn.execute(f"LISTEN {CHANNEL}")
            self.forget_all()
            self._listening_since = self._seq
            started = self._clock()

            def beat() -> None:
                payload = f"{ALIVE}:{token}:{next(beats)}"
                sent[payload] = self._clock()
                sender.execute(_HEARTBEAT, {"channel": CHANNEL, "payload": payload,
                                            "triggers": list(NOTICE_TRIGGERS)})

            beat()
            while not self._stopping.is_set() and not self._idle():
                for notice in conn.notifies(timeout=HEARTBEAT_SECONDS):
                    if notice.payload.startswith(ALIVE):
                        at = sent.pop(notice.payload, None)
                        if at is not None:  # ours (another listener's names another token)
                            self._heard_sent_at = at
                            for older in [p for p, t in sent.items() if t <= at]:
                                del sent[older]
                    else:
                        self.moved(notice.payload)
                last = self._heard_sent_at or started
                if self._clock() - last > OVERDUE_SECONDS:
                    raise TimeoutError("no heartbeat heard")
                beat()

    def _deaf(self) -> None:
        self._listening_since = None
        self._heard_sent_at = None
        self.forget_all()


# Sent only while every notice trigger is there and fires in ordinary sessions ('O') or always
# ('A'): with one dropped or switched off, changes would go unannounced.
_HEARTBEAT = """
SELECT pg_notify(%(channel)s, %(payload)s)
WHERE (SELECT count(*) FROM pg_trigger
       WHERE tgrelid IN (to_regclass('blast_recipients'), to_regclass('blasts'))
         AND tgname = ANY(%(triggers)s) AND tgenabled IN ('O', 'A')) = cardinality(%(triggers)s)
"""

_watches: dict[str, Watch] = {}
# Which watch a pool's engine answers to: looked up once per pool, not per statement.
_by_pool: weakref.WeakKeyDictionary[Pool, Watch | None] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def watch(engine: Engine, *, listen_url: str | None = None) -> Watch | None:
    """Keep funnel answers for this engine's database in memory (PostgreSQL only); the watch,
    one per database per process. `listen_url`: a direct address of the same database for
    its notices, when the engine's goes through a transaction pooler (DATABASE_LISTEN_URL)."""
    if engine.dialect.name != "postgresql":
        return None
    with _registry_lock:
        found = _watches.get(_key(engine))
        if found is None:
            found = _watches[_key(engine)] = Watch(engine, listen_url=listen_url)
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
    if (not _watches or _reads_only(statement) or context.execution_options.get(COUNTS_UNCHANGED)
            or _COUNTED.search(statement) is None):
        return
    found = _watch_of(conn.engine)
    if found is not None:
        found.forget_all()
        # Answers read by other threads before this commits are dropped once it has.
        conn.info[_WROTE] = found


def _reads_only(statement: str) -> bool:
    start = statement[:16].lstrip()[:6].upper()
    if start == "SELECT":
        return True
    # A WITH that only reads (a data-modifying one names what it changes).
    return start.startswith("WITH") and _CHANGES_ROWS.search(statement) is None


def _on_checkin(dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
    found = record.info.pop(_WROTE, None) if record is not None else None
    if found is not None:
        found.forget_all()
