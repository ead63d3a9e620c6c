"""Engines, sessions and migrations, for SQLite and PostgreSQL alike."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from core.errors import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any fixed number: serialises migrations when several processes start at once.
_MIGRATION_LOCK_ID = 7_305_113
READ_ONLY = "blast_read_only"
# Seconds to wait for PostgreSQL to answer a new connection (libpq's connect_timeout).
CONNECT_TIMEOUT_SECONDS = 10
# The server's answers that waiting will not change. Any other failure may pass: refused, out
# of reach, starting up, full, or a managed server's proxy that cannot reach its compute yet
# (Neon: "ERROR: Couldn't connect to compute node").
_FINAL = ("password authentication failed", "authentication failed", "does not exist", "no pg_hba.conf entry",
          "permission denied", "invalid connection option", "invalid sslmode", "password is required")
# How often a start that waits for the database says so in the log.
_WAITING_SAID_EVERY_SECONDS = 10.0
NOT_A_URL = ("DATABASE_URL is not a valid URL (percent-encode special characters in the password, "
             "e.g. @ as %40)")


def parse_database_url(url: str) -> URL:
    """The URL's parts, or a ConfigError that repeats none of them. An unencoded @ or : in the
    password breaks the URL where the password is, so the parser's own words ("invalid literal
    for int(): 'Tail99@db…'") would print its end."""
    # A second @ is one in the password: the URL may still parse, with the password's end taken
    # for the host or the database, which the driver's "cannot reach the host" would print.
    if url.count("@") > 1 and not url.startswith("sqlite"):
        raise ConfigError(NOT_A_URL)
    try:
        return make_url(url)
    except (ValueError, ArgumentError):
        raise ConfigError(NOT_A_URL) from None


def make_engine(url: str) -> Engine:
    """An engine set up for this product's access pattern on either database. Its errors never
    carry the statement's values (`hide_parameters`): they hold webhook secrets, message texts
    and phone numbers, and an error ends up in a log."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # Neon and other managed servers drop idle connections, and a restarted server drops
    # them all: every checkout is checked first (one short round trip), so no page, webhook
    # or send ever meets a dead connection.
    # A host that lets connections hang (a firewall dropping them, a server stopped mid-way)
    # would otherwise hold a page, a webhook or the worker for the system's TCP timeout, minutes:
    # give up after a bounded wait instead. A connect_timeout in DATABASE_URL wins.
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    return create_engine(url, pool_pre_ping=True, pool_recycle=300, pool_size=5, max_overflow=10,
                         hide_parameters=True, connect_args=connect_args)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        # An OSError when it cannot be made: the webhook answers "try again later" (503), the
        # command line says which folder (`core.cli.database_engine`).
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Hand transaction control to SQLAlchemy so that BEGIN below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it returns, so a webhook answered "stored" and a send
        # marked as going out survive a power cut (NORMAL, in WAL mode, may lose the last
        # commits: an event the gateway will not post again, a send that would go out twice).
        # A fifth of a millisecond a commit here.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        # Writers take the write lock up front: a deferred transaction that reads, then
        # writes, fails at once when another writer committed in between, busy timeout or
        # not. Readers (see `reading`) stay deferred, so pages never hold up the worker.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@functools.cache
def engine_for(url: str) -> Engine:
    """One engine per URL per process, shared by every thread."""
    return make_engine(url)


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    """A unit of work that only reads. On SQLite a transaction that takes no write lock, so
    a slow report never delays a send or a webhook, and sees one snapshot throughout. On
    PostgreSQL each statement runs by itself (autocommit): under READ COMMITTED every
    statement takes a fresh snapshot inside a transaction too, so BEGIN and COMMIT would
    only add two round trips (0.35 ms of a 1 ms page query on loopback).

    The session begins by itself at its first statement and ends by letting go, never
    committing: there is nothing to commit, and a session that began and committed
    explicitly cost 11 µs more, more than a funnel answered from memory (`core.rollup_cache`)."""
    with Session(_reader(engine), expire_on_commit=False) as session:
        yield session


@functools.lru_cache(maxsize=64)
def _reader(engine: Engine) -> Engine:
    # Made once per engine: building the options engine costs as much as a round trip.
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT", **{READ_ONLY: True})
    return engine.execution_options(**{READ_ONLY: True})


def alembic_config(connection=None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


@contextlib.contextmanager
def changing_schema(engine: Engine, *, target: str | None = None) -> Iterator[Connection]:
    """One transaction for a schema change. On SQLite, foreign keys are off while it runs (a
    migration that rebuilds a table drops the old one, and with them on SQLite would first
    delete its rows and everything that cascades from them) and checked before it commits; on
    PostgreSQL one migrating process at a time. `target`: the revision it goes to, when known
    (a database there already is not checked)."""
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Before BEGIN: SQLite ignores the pragma inside a transaction.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
                before = _revision(connection)
                # Checked around a change only: the whole check reads every row (0.4 s at a
                # million recipients), and every start of the app migrates. Rows pointing at rows
                # gone already (deleted by hand with foreign keys off) are not the change's doing,
                # and must not stop every start of the app.
                checked = sqlite and before != target
                broken = _broken_links(connection) if checked and before is not None else set()
                yield connection
                after = _revision(connection)
                if (not sqlite and after != before
                        and connection.exec_driver_sql("SELECT to_regclass('blast_count_changes')").scalar()):
                    # Whatever the change wrote into the rollups, no funnel answer kept in memory
                    # survives it (`core.rollup_cache`, migration 0017).
                    connection.exec_driver_sql(
                        "INSERT INTO blast_count_changes (xid, blasts, at) "
                        "VALUES (pg_current_xact_id()::text::bigint, '*', clock_timestamp())")
                changed = checked and after != before
                if changed and (made := _broken_links(connection) - broken):
                    tables = ", ".join(sorted({table for table, _ in made}))
                    raise RuntimeError(f"The schema change would have left rows of {tables} pointing at rows "
                                       "that are gone; nothing was changed.")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


def _broken_links(connection: Connection) -> set[tuple[str, int]]:
    """SQLite's rows whose foreign key points at no row: (table, rowid)."""
    return {(table, rowid) for table, rowid, *_ in connection.exec_driver_sql("PRAGMA foreign_key_check")}


def _resolved(revision: str) -> str | None:
    """The revision id "head" or "base" stands for (base: none)."""
    from alembic.script import ScriptDirectory

    if revision == "base":
        return None
    if revision == "head":
        return ScriptDirectory.from_config(alembic_config()).get_current_head()
    return revision


def _revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision`; safe when several processes start together."""
    from alembic import command

    with changing_schema(engine, target=_resolved(revision)) as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    with changing_schema(engine, target=_resolved(revision)) as connection:
        command.downgrade(alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision(connection)


class WaitStopped(Exception):
    """The process was asked to end while it waited for the database (`connect_when_up`)."""


@contextlib.contextmanager
def ended_by_signals() -> Iterator[threading.Event]:
    """An event set when the process is asked to end (Ctrl-C, SIGTERM) while the start waits:
    the server's own handlers (Streamlit's, uvicorn's) only mark it to stop once started. They
    still run. In a thread other than the main one (a server a test starts), nothing is caught."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    ending = (signal.SIGINT, signal.SIGTERM)
    before = {number: signal.getsignal(number) for number in ending}

    def caught(number: int, frame: Any) -> None:
        stop.set()
        handler = before[number]
        if callable(handler):
            handler(number, frame)

    for number in ending:
        signal.signal(number, caught)
    try:
        yield stop
    finally:
        for number in ending:
            if signal.getsignal(number) is caught:
                signal.signal(number, before[number])


def connect_when_up(engine: Engine, *, patience: float, stop: threading.Event | None = None) -> None:
    """Open a first connection, waiting up to `patience` seconds for a PostgreSQL server that
    does not take connections yet: out of reach, refusing them, starting up or full (a server
    started beside this one, a managed server waking). Says so in the log every ten seconds.
    A refusal that waiting will not change (a wrong password, no such database) and a SQLite
    file that cannot be opened are raised at once, as is the last failure when time is up;
    WaitStopped when `stop` is set (the process is asked to end)."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    stop = stop or threading.Event()
    deadline = time.monotonic() + patience
    said_at: float | None = None
    while True:
        try:
            with engine.connect():
                return
        except (OperationalError, InterfaceError) as exc:
            left = deadline - time.monotonic()
            if stop.is_set():
                raise WaitStopped from None
            if engine.dialect.name != "postgresql" or left <= 0 or not _may_come_up(exc):
                raise
            if said_at is None or time.monotonic() - said_at >= _WAITING_SAID_EVERY_SECONDS:
                log.warning("the database does not answer yet; waiting up to %.0f s more (%s)",
                            left, driver_says(exc) or type(exc).__name__)
                said_at = time.monotonic()
            stop.wait(min(1.0, left))


def _may_come_up(exc: SQLAlchemyError) -> bool:
    """Whether a failed connection may succeed later: anything but a refusal of who asks for
    what (a wrong password or user, no such database, a setting the server does not take)."""
    words = str(getattr(exc, "orig", None) or exc).lower()
    return not any(phrase in words for phrase in _FINAL)


def driver_says(exc: SQLAlchemyError) -> str | None:
    """The first line of the database driver's own words on a failed connection ("password
    authentication failed for user "app"", "connection to server at "db.example.com", port
    5432 failed: Connection refused"), when it does not hold the password. libpq names the
    host, port, user and database, SQLite the file; neither repeats the password, and a line
    that holds it all the same (a password that is also the user's name) is left out. Only
    connection errors: the words of others may quote the values being written."""
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError) or exc.orig is None:
        return None
    line = next(iter(str(exc.orig).strip().splitlines()), "").strip()
    passwords = database_passwords()
    if not line or passwords is None or any(p in line for p in passwords):
        return None
    return line


def database_passwords() -> list[str] | None:
    """The database password(s) DATABASE_URL holds, to keep out of words shown or logged; None
    when the URL cannot be read (then nothing that might quote it is safe to show)."""
    from core.config import get_settings

    try:
        url = parse_database_url(get_settings().sqlalchemy_url)
    except ConfigError:
        return None
    given = url.query.get("password", ())  # libpq takes it in the query string too
    return [str(p) for p in (url.password, *([given] if isinstance(given, str) else given)) if p]
