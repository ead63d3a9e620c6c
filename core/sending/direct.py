"""The send worker's two statements a message on PostgreSQL, run straight on the driver's connection."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, Insert, Update, bindparam
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, visitors

from core.db import transaction
from core.models import BlastRecipient
from core.sending.queue import Claim, claim_from, claim_params, claim_statement, withdraw_opted_out
from core.status_engine import compare_and_set_params, compare_and_set_statement, is_allowed
from core.statuses import Status


class Compiled:
    """A statement compiled once for the engine's driver, with its fixed parameters and the
    conversions SQLAlchemy would apply to the others (time zones, JSON)."""

    def __init__(self, statement: ClauseElement, engine: Engine) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        # Renders what is written into the SQL (the queued status, see queue._QUEUED).
        state = compiled.construct_expanded_state(
            {name: None for bind, name in compiled.bind_names.items() if bind.required}
        )
        self.sql = state.statement
        self.fixed = {name: value for name, value in state.parameters.items() if value is not None}
        self.convert: dict[str, Callable[[Any], Any]] = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.convert[name] = processor

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        params = {**self.fixed, **values}
        for name, convert in self.convert.items():
            if name in params:
                params[name] = convert(params[name])
        return params


class DirectStatements:
    """Claim and settle on PostgreSQL as one statement each, outside a transaction.

    Each is atomic as any statement is, so BEGIN and COMMIT (two round trips) buy nothing;
    and SQLAlchemy's handling of a statement cost more than the database's (about half a
    millisecond each time). The connection still comes from the pool, checked on every
    checkout (pool_pre_ping), so a restarted database costs no failed send.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._claim = Compiled(claim_statement("postgresql"), engine)
        self._settles: dict[tuple[Status, tuple[str, ...]], Compiled] = {}  # one per status reached
        self._dbapi_error = engine.dialect.loaded_dbapi.Error

    def claim(self, *, device: str, worker: str, now: dt.datetime, lease: dt.timedelta) -> Claim | None:
        """`queue.claim_next`, the same statement; a number that opted out is taken off the queue
        in a transaction, and the next one claimed."""
        values = claim_params(device=device, worker=worker, now=now, lease=lease)
        params = self._claim.params(values)
        while True:
            with self._connection() as connection:
                row = connection.execute(self._claim.sql, params).fetchone()
            if row is not None:
                return claim_from(row, values)
            with transaction(self.engine) as s:
                if not withdraw_opted_out(s, device=device):
                    return None

    def settle(
        self, *, claim: Claim, status: Status, at: dt.datetime, event: dict[str, object],
        updates: dict[str, object],
    ) -> bool:
        """`queue.settle` while the row is still SENDING under this claim: its compare-and-set
        and history row. False, with nothing written, when the row has moved on (a lease
        expired, and maybe another worker claimed it since): then `queue.settle` decides, in a
        transaction."""
        if not is_allowed(Status.SENDING, status):
            return False
        updates = {**updates, "claimed_by": None, "lease_expires_at": None, "next_attempt_at": None}
        statement = self._settle(status, tuple(updates))
        params = statement.params({**compare_and_set_params(
            recipient_id=claim.recipient_id, source="send", at=at, event=event, updates=updates),
            "claimed_by_now": claim.worker})
        with self._connection() as connection:
            return connection.execute(statement.sql, params).rowcount == 1

    def _settle(self, status: Status, columns: tuple[str, ...]) -> Compiled:
        key = (status, columns)
        if key not in self._settles:
            statement = own_claim_only(compare_and_set_statement(Status.SENDING, status, columns))
            self._settles[key] = Compiled(statement, self.engine)
        return self._settles[key]

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """The pool's connection with each statement committing by itself; after any error it
        is discarded (the pool opens a fresh one), and the error is SQLAlchemy's, as elsewhere:
        marked `connection_invalidated` only when the database is away, as SQLAlchemy marks it.
        The worker waits out an outage, but not an error in what was asked (a value too long
        for its column), which would only be refused again."""
        try:
            pooled = self.engine.raw_connection()
        except self._dbapi_error as exc:  # the pool could not connect: the database is away
            raise self._wrapped(exc, away=True) from exc
        driver = pooled.driver_connection
        try:
            driver.autocommit = True
            yield driver
            driver.autocommit = False
        except BaseException as exc:
            # Asked before the connection is discarded: the driver tells a lost one by its state.
            away = isinstance(exc, self._dbapi_error) and self.engine.dialect.is_disconnect(exc, driver, None)
            pooled.invalidate(exc if isinstance(exc, Exception) else None)
            if isinstance(exc, self._dbapi_error):
                raise self._wrapped(exc, away=away) from exc
            raise
        finally:
            pooled.close()

    def _wrapped(self, exc: Exception, *, away: bool) -> DBAPIError:
        return DBAPIError.instance(None, None, exc, self._dbapi_error, connection_invalidated=away,
                                   dialect=self.engine.dialect)


def own_claim_only(statement: Insert) -> Insert:
    """The status engine's compare-and-set, matching the row only while the worker named by the
    `claimed_by_now` parameter holds it: SENDING alone is true of another worker's claim too,
    once this one's lease ran out and a person sent the row again."""
    def narrowed(element: Any) -> Any:
        if isinstance(element, Update):
            return element.where(BlastRecipient.__table__.c.claimed_by == bindparam("claimed_by_now"))
        return None

    return visitors.replacement_traverse(statement, {}, narrowed)
