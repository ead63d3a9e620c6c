"""The fault suite's own PostgreSQL server (it is stopped and restarted on purpose, so no
other test shares it), a fresh database per test, and the figures the suite reports."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text

from core.config import PROJECT_ROOT, get_settings
from core.db import engine_for, make_engine, migrate
from tests.conftest import POSTGRES_REQUIRED
from tests.support.pg_server import PostgresServer, PostgresUnavailable, start_server

TEMPLATE = "fault_template"
FIGURES_FILE = PROJECT_ROOT / "test-artifacts" / "reliability-figures.json"
_FIGURES = pytest.StashKey[dict[str, dict[str, object]]]()
_names = itertools.count(1)


def server_answers(server: PostgresServer) -> bool:
    try:
        with psycopg.connect(f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres",
                             connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def ensure_running(server: PostgresServer) -> None:
    """Start the server again if a test left it stopped (a failed restart test)."""
    if not server_answers(server):
        server.start()


@pytest.fixture(scope="package")
def fault_server() -> Iterator[PostgresServer]:
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        if POSTGRES_REQUIRED:
            pytest.fail(f"the fault suite needs a PostgreSQL server of its own: {exc}")
        pytest.skip(f"no PostgreSQL server binaries here: {exc}")
    try:
        _admin(server, f"CREATE DATABASE {TEMPLATE}")
        template = make_engine(server.url(TEMPLATE))
        migrate(template)
        template.dispose()
        yield server
    finally:
        server.destroy()


def _admin(server: PostgresServer, statement: str) -> None:
    admin = make_engine(server.url()).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


@pytest.fixture
def fault_db_url(fault_server: PostgresServer) -> Iterator[str]:
    """A migrated, empty database of the test's own on the fault server."""
    ensure_running(fault_server)
    name = f"fault_{next(_names)}"
    _admin(fault_server, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    # The shared test server runs with synchronous_commit=off: an immediate stop would then
    # forget the last commits, which no production server does. Restarts here must be honest.
    _admin(fault_server, f"ALTER DATABASE {name} SET synchronous_commit = on")
    url = fault_server.url(name)
    try:
        yield url
    finally:
        engine_for.cache_clear()
        get_settings.cache_clear()
        ensure_running(fault_server)
        _admin(fault_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def fault_engine(fault_db_url: str) -> Iterator[Engine]:
    engine = make_engine(fault_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, object]:
    """What a test survived (events, kills, restarts): printed at the end and kept in
    test-artifacts/ for docs/reliability.md."""
    store = request.config.stash.setdefault(_FIGURES, {})
    return store.setdefault(request.node.name, {})


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    store = config.stash.get(_FIGURES, {})
    if not any(store.values()):
        return
    terminalreporter.section("reliability figures")
    for test, values in store.items():
        if values:
            terminalreporter.write_line(f"{test}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    _write_figures(FIGURES_FILE, store)


def _write_figures(path: Path, store: dict[str, dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous.update({test: values for test, values in store.items() if values})
    path.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
