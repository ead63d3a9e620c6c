"""Webhook bodies in bulk: stored together, answered at once, applied together just after.

The gateway waits for each answer, and several of its posts are in flight at once. Storing
each body in its own transaction and applying it before answering cost a commit and a
dozen statements per event. Here every body that arrived meanwhile is stored with one
INSERT and one commit, and each request is answered as soon as its body is durable. On
PostgreSQL the server's event loop does that itself, on a connection of its own (no thread
between a request and its answer); on SQLite a writer thread does. An applier thread then
parses and applies what was stored, many bodies per transaction through
`core.status_batch` (on PostgreSQL the everyday ack is read from the stored body, judged and
written by the database itself, `core.webhook.plain_acks`, in a transaction before the rest).
If applying fails the entries stay `new`, and `replay_waiting` picks them up later: nothing
stored is lost.

One `Intake` per database per process (`intake_for`); its threads and its connection start
on the first post and end after a quiet spell, so a process that never receives a webhook
holds none.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

import psycopg
from sqlalchemy import Engine, insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.db import CONNECT_TIMEOUT_SECONDS, engine_for, transaction
from core.models import WebhookInbox, utcnow
from core.webhook.inbox import (
    InboxState,
    Outcome,
    WebhookRules,
    apply_everyday_acks,
    process_entries,
    process_entry,
    replay_for_message_ids,
)

log = logging.getLogger(__name__)

# "Cannot store" covers the server being away, a pool with no free connection, and a
# SQLite file whose folder cannot be written (psycopg's own errors come from the event
# loop's connection).
STORAGE_ERRORS = (DBAPIError, PoolTimeout, OSError, psycopg.Error)
MAX_STORE_BATCH = 500
MAX_APPLY_BATCH = 200
# Pauses between tries when the database fails while applying, about 15 s in all; after
# that the entries wait for the replay loop.
APPLY_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
IDLE_SECONDS = 10.0
# The applier waits this long for more bodies before it applies a batch: the posts are
# answered already, and a transaction costs about as much for one body as for fifty.
APPLY_GATHER_SECONDS = 0.1
# A stopping server waits this long for what it stored to be applied.
SETTLE_ON_STOP_SECONDS = 10.0


_INSERT = insert(WebhookInbox.__table__).returning(WebhookInbox.id, sort_by_parameter_order=True)


@dataclass(frozen=True)
class _Body:
    body: bytes
    content_type: str | None
    stored: Future[int]


class _Lane:
    """A queue with one worker thread, started when work arrives, gone when idle."""

    def __init__(self, name: str, handle: Callable[[list], None], *, batch: int, gather: float = 0.0) -> None:
        self._name = name
        self._handle = handle
        self._batch = batch
        self._gather = gather
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0  # items put and not handled yet

    def put(self, item: object) -> None:
        with self._lock:
            self._pending += 1
            self._queue.put(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def idle(self) -> bool:
        with self._lock:
            return self._pending == 0

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            items = [first]
            until = time.monotonic() + self._gather
            while len(items) < self._batch:
                try:
                    wait = until - time.monotonic()
                    items.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._handle(items)
            except Exception:  # the lane must outlive a bug; what it held is still stored
                log.exception("%s failed on a batch of %d", self._name, len(items))
            finally:
                with self._lock:
                    self._pending -= len(items)


class Intake:
    """Stores webhook bodies in batches and applies them in batches, off the request."""

    def __init__(self, engine: Engine, rules: Callable[[], WebhookRules]) -> None:
        self.engine = engine
        self._rules = rules
        self._store = _Lane("webhook-store", self._store_batch, batch=MAX_STORE_BATCH)
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWriter] = (
            weakref.WeakKeyDictionary()
        )
        self._apply = _Lane("webhook-apply", self._apply_batch, batch=MAX_APPLY_BATCH,
                            gather=APPLY_GATHER_SECONDS)

    def store(self, body: bytes, content_type: str | None) -> Future[int]:
        """The inbox id once the body is committed; the error if it could not be stored."""
        stored: Future[int] = Future()
        self._store.put(_Body(body, _content_type(content_type), stored))
        return stored

    async def save(self, body: bytes, content_type: str | None, *, timeout: float) -> int:
        """`store` for a request handler: the inbox id once the body is committed.

        Raises one of STORAGE_ERRORS if it cannot be stored, TimeoutError after `timeout`
        seconds (a body whose turn had not come by then is not stored at all)."""
        if self.engine.dialect.name == "postgresql":
            stored = self._loop_writer().store(body, _content_type(content_type))
        else:
            stored = asyncio.wrap_future(self.store(body, content_type))
        return await asyncio.wait_for(stored, timeout=timeout)

    def _loop_writer(self) -> _LoopWriter:
        loop = asyncio.get_running_loop()
        writer = self._writers.get(loop)
        if writer is None:
            writer = self._writers[loop] = _LoopWriter(self)
        return writer

    def settled(self) -> bool:
        """Nothing waiting to be stored or applied in this process."""
        writers = list(self._writers.values())
        return self._store.idle() and all(w.idle() for w in writers) and self._apply.idle()

    def wait_settled(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not self.settled():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # --- the writer ----------------------------------------------------------------------

    def _store_batch(self, bodies: list[_Body]) -> None:
        # A post that gave up waiting (and was told to come back) is not stored.
        bodies = [b for b in bodies if b.stored.set_running_or_notify_cancel()]
        if not bodies:
            return
        try:
            ids = self._insert(bodies)
        except STORAGE_ERRORS as exc:
            if len(bodies) == 1 or not _refused_a_row(exc):
                for body in bodies:
                    body.stored.set_exception(exc)
                return
            # The database refused a row, not the connection: store the bodies one by one,
            # so that one body it cannot take does not cost the others.
            for body in bodies:
                self._store_one(body)
            return
        except Exception as exc:  # a bug: the posts are answered with an error, and retried
            log.exception("storing %d webhook bodies failed", len(bodies))
            for body in bodies:
                body.stored.set_exception(exc)
            return
        for body, inbox_id in zip(bodies, ids, strict=True):
            body.stored.set_result(inbox_id)
        self.applying(ids)

    def applying(self, ids: list[int]) -> None:
        """Hand stored entries to the applier."""
        self._apply.put(ids)

    def _store_one(self, body: _Body) -> None:
        try:
            [inbox_id] = self._insert([body])
        except STORAGE_ERRORS as exc:
            body.stored.set_exception(exc)
            return
        body.stored.set_result(inbox_id)
        self._apply.put([inbox_id])

    def _insert(self, bodies: list[_Body]) -> list[int]:
        now = utcnow()
        rows = [{"body": b.body, "content_type": b.content_type, "state": InboxState.NEW,
                 "received_at": now, "attempts": 0} for b in bodies]
        if self.engine.dialect.name == "postgresql":
            # One statement is its own transaction: no BEGIN and COMMIT round trips.
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                return list(connection.execute(_INSERT, rows).scalars())
        with self.engine.begin() as connection:  # SQLite: BEGIN IMMEDIATE, see core.db
            return list(connection.execute(_INSERT, rows).scalars())

    # --- the applier ---------------------------------------------------------------------

    def _apply_batch(self, batches: list[list[int]]) -> None:
        ids = [i for batch in batches for i in batch]
        rules = self._rules()
        for attempt, pause in enumerate((*APPLY_RETRY_SECONDS, None), start=1):
            try:
                done: dict[int, Outcome] = {}
                if self.engine.dialect.name == "postgresql":  # SQLite: no write lock for nothing
                    with transaction(self.engine) as session:
                        done = apply_everyday_acks(session, inbox_ids=ids, rules=rules)
                rest = [i for i in ids if i not in done]
                outcomes: dict[int, Outcome] = {}
                if rest:
                    with transaction(self.engine) as session:
                        outcomes = process_entries(session, inbox_ids=rest, rules=rules)
                break
            except STORAGE_ERRORS as exc:
                # The database is away (or chose this batch as a deadlock victim): the bodies
                # are safe in it, so wait a little and try again before leaving them to replay.
                if pause is None:
                    log.warning("%d webhooks stored, not applied yet (%s); replay will retry",
                                len(ids), type(exc).__name__)
                    return
                log.info("applying %d webhooks failed (attempt %d, %s); trying again in %g s",
                         len(ids), attempt, type(exc).__name__, pause)
                time.sleep(pause)
            except Exception:  # a bug in one body must not hold up the others
                log.exception("applying %d webhooks together failed; applying them one by one", len(ids))
                self._apply_one_by_one(ids, rules)
                return
        waiting = [k for outcome in outcomes.values() for k in outcome.waiting_for]
        if waiting:
            self._look_again(waiting, rules)

    def _apply_one_by_one(self, ids: Iterable[int], rules: WebhookRules) -> None:
        for inbox_id in ids:
            try:
                with transaction(self.engine) as session:
                    process_entry(session, inbox_id=inbox_id, rules=rules)
            except Exception:  # stays `new`: replay retries it, counting its attempts
                log.exception("webhook %s stored but could not be applied", inbox_id)

    def _look_again(self, keys: list[str], rules: WebhookRules) -> None:
        # The send may have stored its message id, and already replayed, while these entries
        # were being marked waiting: one more look after our commit closes that gap.
        try:
            with transaction(self.engine) as session:
                replay_for_message_ids(session, message_ids=keys, rules=rules)
        except STORAGE_ERRORS as exc:
            log.warning("second look at waiting webhooks failed (%s)", type(exc).__name__)


def _refused_a_row(exc: BaseException) -> bool:
    if isinstance(exc, psycopg.Error):
        return not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
    return isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError | InterfaceError)


def _content_type(value: str | None) -> str | None:
    return (value or "")[:255] or None


@functools.cache
def _loop_insert(n: int) -> str:
    """The INSERT of `n` bodies, each value its own parameter: the driver converts bytes and
    text in C, where arrays are escaped element by element in Python (that was about half
    the CPU of storing a batch of two). Ids come from the sequence in the rows' order."""
    rows = ", ".join(["(%s, %s, %s, %s, 0)"] * n)
    return ("INSERT INTO webhook_inbox (body, content_type, state, received_at, attempts) "
            f"VALUES {rows} RETURNING id")


class _LoopWriter:
    """PostgreSQL: bodies stored by the event loop itself, on a connection of its own.

    A post adds its body to the list and waits on a future of the loop; one task stores
    whatever is listed with one autocommitted INSERT, then whatever arrived while that ran.
    No thread hand-over in either direction, no pool checkout: a round trip per batch. The
    connection is opened on the first post, opened again when the server dropped it (a
    restart, a managed server's idle timeout: the batch is tried once more on the new
    one), and closed after a quiet spell.
    """

    # It keeps no reference to its loop: the intake finds it by loop in a weak mapping, and
    # a writer of a loop that has ended goes with the loop.
    def __init__(self, intake: Intake) -> None:
        self._intake = intake
        self._waiting: list[tuple[bytes, str | None, asyncio.Future[int]]] = []
        self._busy = 0  # bodies listed or being stored
        self._task: asyncio.Task | None = None
        self._connection: psycopg.AsyncConnection | None = None
        self._last_used = 0.0

    def idle(self) -> bool:
        return self._busy == 0

    def store(self, body: bytes, content_type: str | None) -> asyncio.Future[int]:
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[int] = loop.create_future()
        self._waiting.append((body, content_type, stored))
        self._busy += 1
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return stored

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_STORE_BATCH], self._waiting[MAX_STORE_BATCH:]
                try:
                    await self._store_batch(batch)
                except Exception as exc:  # a bug: the posts are answered with an error, and retried
                    log.exception("storing %d webhook bodies failed", len(batch))
                    _fail([stored for _, _, stored in batch], exc)
                finally:
                    self._busy -= len(batch)
        finally:
            self._task = None
        asyncio.get_running_loop().call_later(IDLE_SECONDS, self._close_if_idle)

    async def _store_batch(self, batch: list[tuple[bytes, str | None, asyncio.Future[int]]]) -> None:
        # A post that gave up waiting (and was told to come back) is not stored.
        batch = [item for item in batch if not item[2].done()]
        if not batch:
            return
        try:
            ids = await self._insert(batch)
        except STORAGE_ERRORS as exc:
            if len(batch) > 1 and _refused_a_row(exc):
                for item in batch:  # one body the database cannot take must not cost the others
                    await self._store_batch([item])
                return
            _fail([stored for _, _, stored in batch], exc)
            return
        for (_, _, stored), inbox_id in zip(batch, ids, strict=True):
            if not stored.done():
                stored.set_result(inbox_id)
        self._intake.applying(ids)

    async def _insert(self, batch: list[tuple[bytes, str | None, asyncio.Future[int]]]) -> list[int]:
        now = utcnow()
        params = [value for body, content_type, _ in batch
                  for value in (body, content_type, InboxState.NEW, now)]
        for last_try in (False, True):
            connection = await self._connect()
            try:
                cursor = await connection.execute(_loop_insert(len(batch)), params)
                self._last_used = time.monotonic()
                return sorted(row[0] for row in await cursor.fetchall())
            except psycopg.OperationalError:
                if last_try or not connection.broken:
                    raise
                await self.close()  # dropped while idle: once more on a new connection
        raise AssertionError("unreachable")

    async def _connect(self) -> psycopg.AsyncConnection:
        if self._connection is None or self._connection.closed:
            engine = self._intake.engine
            args, kwargs = engine.dialect.create_connect_args(engine.url)
            kwargs.pop("context", None)  # SQLAlchemy's adapters: this connection uses psycopg's own
            kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
            self._connection = await psycopg.AsyncConnection.connect(*args, autocommit=True, **kwargs)
        return self._connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            with contextlib.suppress(psycopg.Error):
                await connection.close()

    def _close_if_idle(self) -> None:
        quiet = time.monotonic() - self._last_used >= IDLE_SECONDS - 0.1  # else a later call closes
        if self._task is None and self._connection is not None and quiet:
            self._task = asyncio.get_running_loop().create_task(self._close_then_free())

    async def _close_then_free(self) -> None:
        try:
            await self.close()
        finally:
            self._task = None
            if self._waiting:  # posts that came while it closed
                self._task = asyncio.get_running_loop().create_task(self._drain())


def _fail(futures: list[asyncio.Future[int]], exc: BaseException) -> None:
    for stored in futures:
        if not stored.done():
            stored.set_exception(exc)


_INTAKES: dict[str, Intake] = {}
_INTAKES_LOCK = threading.Lock()


def intake_for(url: str) -> Intake:
    """The process's intake for the database at `url`."""
    from core.config import get_settings

    found = _INTAKES.get(url)  # every post asks: no lock once it exists
    if found is not None:
        return found
    with _INTAKES_LOCK:
        found = _INTAKES.get(url)
        if found is None:
            found = _INTAKES[url] = Intake(
                engine_for(url), rules=lambda: WebhookRules.from_settings(get_settings()))
        return found


async def finish(timeout: float = SETTLE_ON_STOP_SECONDS) -> bool:
    """For a server that is stopping: apply what it stored and close the event loop's
    connection. What is still unapplied after `timeout` seconds stays `new` for the replay
    loop of the next start. True when everything was applied."""
    settled = True
    for intake in list(_INTAKES.values()):
        settled = await asyncio.to_thread(intake.wait_settled, timeout) and settled
        writer = intake._writers.get(asyncio.get_running_loop())
        if writer is not None:
            await writer.close()
    return settled
