"""Webhook bodies in bulk: stored together, answered at once, applied together just after.

The gateway waits for each answer, and several of its posts are in flight at once. Storing
each body in its own transaction and applying it before answering cost a commit and a
dozen statements per event. Here one writer thread stores every body that arrived
meanwhile in one INSERT and one commit; each request is answered as soon as its body is
durable. An applier thread then parses and applies what was stored, many bodies per
transaction through `core.status_batch`. If applying fails the entries stay `new`, and
`replay_waiting` picks them up later: nothing stored is lost.

One `Intake` per database per process (`intake_for`); its threads start on the first post
and end after a quiet spell, so a process that never receives a webhook runs none.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Engine, insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.db import engine_for, transaction
from core.models import WebhookInbox, utcnow
from core.webhook.inbox import (
    InboxState,
    WebhookRules,
    process_entries,
    process_entry,
    replay_for_message_ids,
)

log = logging.getLogger(__name__)

# "Cannot store" covers the server being away, a pool with no free connection, and a
# SQLite file whose folder cannot be written.
STORAGE_ERRORS = (DBAPIError, PoolTimeout, OSError)
MAX_STORE_BATCH = 500
MAX_APPLY_BATCH = 200
# Pauses between tries when the database fails while applying, about 15 s in all; after
# that the entries wait for the replay loop.
APPLY_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
IDLE_SECONDS = 10.0


_INSERT = insert(WebhookInbox.__table__).returning(WebhookInbox.id, sort_by_parameter_order=True)


@dataclass(frozen=True)
class _Body:
    body: bytes
    content_type: str | None
    stored: Future[int]


class _Lane:
    """A queue with one worker thread, started when work arrives, gone when idle."""

    def __init__(self, name: str, handle: Callable[[list], None], *, batch: int) -> None:
        self._name = name
        self._handle = handle
        self._batch = batch
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
            while len(items) < self._batch:
                try:
                    items.append(self._queue.get_nowait())
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
        self._apply = _Lane("webhook-apply", self._apply_batch, batch=MAX_APPLY_BATCH)

    def store(self, body: bytes, content_type: str | None) -> Future[int]:
        """The inbox id once the body is committed; the error if it could not be stored."""
        stored: Future[int] = Future()
        self._store.put(_Body(body, (content_type or "")[:255] or None, stored))
        return stored

    def settled(self) -> bool:
        """Nothing waiting to be stored or applied in this process."""
        return self._store.idle() and self._apply.idle()

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
                with transaction(self.engine) as session:
                    outcomes = process_entries(session, inbox_ids=ids, rules=rules)
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
    return isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError | InterfaceError)


@functools.cache
def intake_for(url: str) -> Intake:
    """The process's intake for the database at `url`."""
    from core.config import get_settings

    return Intake(engine_for(url), rules=lambda: WebhookRules.from_settings(get_settings()))
