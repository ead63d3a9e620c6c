"""Funnel answers kept in memory on PostgreSQL, dropped the moment the database says they moved.

A funnel over a few blasts reads a handful of rollup rows: PostgreSQL answers in a tenth of a
millisecond, and the call around it (a connection from the pool, a round trip, the session)
costs several times that. The dashboard asks the same questions on every click, and between two
clicks the counts usually have not moved. So an answer is kept, and dropped when they do.

How it learns they moved: migration 0017's triggers on `blast_recipients` and `blasts` send
a notice on the `blast_counts` channel when a transaction that changed them commits, naming
the blasts it touched (`*` for "any": a truncate, or too many to name). A thread of this
process listens on a connection of its own (`Watch`). Each notice is numbered as it arrives;
an answer remembers the number current when its query started, and is used only while no
notice since then names one of its blasts (an answer for named blasts) or any blast at all
(an answer for a date range or a tag, whose set of blasts a new blast can join).

What keeps it right:
- Only reads made through `core.db.reading` are answered from memory or kept: they run by
  themselves (autocommit), so they never see, nor keep, what an open transaction wrote.
- A notice is sent on commit, so another process's change is seen once the notice arrives (a
  few milliseconds). This process's own writes drop every kept answer at once, when they
  are made (`_written`): a page that records a sale and draws its funnel again sees the sale.
- Memory is trusted only while the listener is known to hear: every second a second
  connection sends it a notice and, when none has come back for `TRUST_SECONDS`, every call
  reads the database again. A dropped connection, a server restart or a pooler that does not
  pass notices on (PgBouncer in transaction mode, Neon's `-pooler` addresses) therefore costs
  speed, never a wrong count.
- The listener stops after `IDLE_SECONDS` without a question, so an idle dashboard keeps no
  connection open (a managed server can sleep); the next question starts it again.

SQLite has no notices: its calls read the database every time (a few blasts' rollups there
take about as long as a round trip would).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from core.db import CONNECT_TIMEOUT_SECONDS, READ_ONLY

log = logging.getLogger(__name__)

CHANNEL = "blast_counts"
EVERY_BLAST = "*"  # a notice's words for "any blast may have moved"
ALIVE = "alive"  # the start of a listener's heartbeat, which names no blast
HEARTBEAT_SECONDS = 1.0
TRUST_SECONDS = 3.0
IDLE_SECONDS = 120.0
RETRY_SECONDS = 5.0
MAX_ANSWERS = 512

T = TypeVar("T")


class Watch:
    """One database's notices and the answers kept for it."""

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Numbers of notices: the last one of all, the last that named every blast, and per blast.
        self._seq = 0
        self._any = 0
        self._every = 0
        self._touched: dict[int, int] = {}
        self._heard_at: float | None = None  # when the listener last heard its own notice
        self._listening_since: int | None = None  # the notice number when LISTEN took effect
        self._asked_at = clock()
        self._answers: OrderedDict[Hashable, tuple[object, int, frozenset[int] | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.notices = 0  # change notices heard (its own heartbeats left out)
        self.backend_pid: int | None = None  # the listening connection's server process

    # -- the readers' side

    def answer(self, key: Hashable, blasts: frozenset[int] | None, compute: Callable[[], T]) -> T:
        """`compute()`'s result, or the one kept for `key` if none of `blasts` (None: any blast)
        has moved since it was computed."""
        self._asked_at = self._clock()
        self._ensure_listening()
        if not self.trusted():
            self.misses += 1
            return compute()
        kept = self._answers.get(key)
        if kept is not None and self._still_true(kept[1], kept[2]):
            self.hits += 1
            return kept[0]  # type: ignore[return-value]
        self.misses += 1
        started = self._seq  # before the query: a notice arriving during it makes the answer old
        value = compute()
        if self.trusted() and self._still_true(started, blasts):
            with self._lock:
                self._answers[key] = (value, started, blasts)
                self._answers.move_to_end(key)
                while len(self._answers) > MAX_ANSWERS:
                    self._answers.popitem(last=False)
        return value

    def trusted(self) -> bool:
        """Listening, and heard its own notice lately: kept answers may be used."""
        heard = self._heard_at
        return heard is not None and self._listening_since is not None and \
            self._clock() - heard < TRUST_SECONDS

    def _still_true(self, since: int, blasts: frozenset[int] | None) -> bool:
        if self._listening_since is None or since < self._listening_since or self._every > since:
            return False
        if blasts is None:
            return self._any <= since
        touched = self._touched
        return all(touched.get(b, 0) <= since for b in blasts)

    # -- what moves the numbers

    def moved(self, payload: str) -> None:
        """A notice: the blasts it names (or every blast) may count differently now."""
        seq = self._seq + 1
        if payload == EVERY_BLAST:
            self._every = seq
        else:
            touched = self._touched
            for part in payload.split(","):
                if part.isdigit():
                    touched[int(part)] = seq
                else:  # not ours to read: take it as every blast
                    self._every = seq
        self._any = seq
        self._seq = seq
        self.notices += 1

    def forget_all(self) -> None:
        seq = self._seq + 1
        self._every = self._any = seq
        self._seq = seq
        with self._lock:
            self._answers.clear()

    # -- the listener

    def _ensure_listening(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._listen, name="blast-counts-listener", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
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

        args, params = self._engine.dialect.create_connect_args(self._engine.url)
        params = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **params, "autocommit": True}
        # The heartbeat goes out on a second connection, the way another process's change
        # would: heard, it proves notices from other sessions reach this one. (Through a
        # transaction pooler a session's own notice can come back while others' do not.)
        alive = f"{ALIVE}:{secrets.token_hex(8)}"
        with psycopg.connect(*args, **params) as conn, psycopg.connect(*args, **params) as sender:
            self.backend_pid = conn.info.backend_pid
            conn.execute(f"LISTEN {CHANNEL}")
            self.forget_all()
            self._listening_since = self._seq
            heartbeat = f"SELECT pg_notify('{CHANNEL}', '{alive}')"
            sender.execute(heartbeat)
            while not self._stopping.is_set() and not self._idle():
                for notice in conn.notifies(timeout=HEARTBEAT_SECONDS):
                    if notice.payload == alive:
                        self._heard_at = self._clock()
                    elif not notice.payload.startswith(ALIVE):  # another listener's heartbeat
                        self.moved(notice.payload)
                sender.execute(heartbeat)

    def _deaf(self) -> None:
        self._listening_since = None
        self._heard_at = None
        self.forget_all()


_watches: dict[str, Watch] = {}
# Which watch a pool's engine answers to: looked up once per pool, not per statement.
_by_pool: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def _key(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def watch(engine: Engine) -> Watch | None:
    """Keep funnel answers for this engine's database in memory (PostgreSQL only); the watch,
    one per database per process."""
    if engine.dialect.name != "postgresql":
        return None
    with _registry_lock:
        found = _watches.get(_key(engine))
        if found is None:
            found = _watches[_key(engine)] = Watch(engine)
            _by_pool.clear()
        _hook_writes()
        return found


def unwatch(engine: Engine) -> None:
    """Stop keeping answers for this engine's database (tests, a server that stops)."""
    with _registry_lock:
        found = _watches.pop(_key(engine), None)
        _by_pool.clear()
    if found is not None:
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
        found = _watches.get(_key(engine)) if _watches else None
        _by_pool[pool] = found
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


def _hook_writes() -> None:
    """This process's own writes drop the kept answers when they are made, before their notice
    comes back (see the module's note)."""
    global _hooked
    if _hooked:
        return
    event.listen(Engine, "commit", _on_commit)
    event.listen(Engine, "after_cursor_execute", _on_statement)
    _hooked = True


def _written(conn) -> None:  # type: ignore[no-untyped-def]
    if not _watches:
        return
    found = _watch_of(conn.engine)
    if found is not None:
        found.forget_all()


def _on_commit(conn) -> None:  # type: ignore[no-untyped-def]
    # A reading session ends with a commit too: it wrote nothing.
    if _watches and not conn.get_execution_options().get(READ_ONLY):
        _written(conn)


def _on_statement(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
    # Reads move nothing; anything else may (an autocommitted UPDATE has no commit of its own).
    if _watches and statement[:16].lstrip()[:6].upper() != "SELECT":
        _written(conn)
