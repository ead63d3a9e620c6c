"""Shared fixtures: every database test runs on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from core.db import make_engine, migrate
from core.models import Base
from tests.support.pg_server import PostgresServer, PostgresUnavailable, start_server

POSTGRES_REQUIRED = bool(os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres_only: needs PostgreSQL (row locks, processes)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "fault: reliability under injected faults (kills, restarts, floods)")
    config.addinivalue_line("markers", "e2e: drives the real server in a real browser")


# The files that take longest, longest first. `scripts/test.sh` hands whole files to its test
# processes in collection order (--no-loadscope-reorder), so these go first: handed out last,
# one of them would run alone on one core at the end (the order xdist picks by itself, most
# tests first, left the reliability files to the end and ran 17 minutes where 10 will do).
# Measured with `bash scripts/test.sh --durations=0`; a file not named keeps its place after them.
LONGEST_FILES = (
    "tests/e2e/test_layout_browser.py",
    "tests/e2e/test_deep_links_browser.py",
    "tests/reliability/test_gateway_flapping.py",
    "tests/reliability/test_worker_kills.py",
    "tests/sending/test_worker_processes.py",
    "tests/test_cli.py",
    "tests/test_cli_worker.py",
    "tests/reliability/test_database_restarts.py",
    "tests/e2e/test_replies_browser.py",
    "tests/reliability/test_answers_through_outages.py",
    "tests/test_secrets.py",
    "tests/e2e/test_browser.py",
    "tests/e2e/test_new_blast_browser.py",
    "tests/e2e/test_blast_page_browser.py",
    "tests/reliability/test_webhook_flood.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))  # stable


@pytest.fixture(autouse=True)
def _no_posts_turned_away() -> None:
    """Each test starts with no webhook posts turned away in this process (Settings & health
    counts them over the last hour)."""
    from core.webhook.route import turned_away

    turned_away.forget()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer | None]:
    """A PostgreSQL server of the test run's own, on loopback; None where none can run."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if url:
        yield None
        return
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        if POSTGRES_REQUIRED:
            pytest.exit(f"PostgreSQL is required here but could not start: {exc}", returncode=3)
        yield None
        return
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def pg_template_url(pg_server: PostgresServer | None) -> str | None:
    """A migrated PostgreSQL database; each test starts from it emptied."""
    if os.environ.get("TEST_POSTGRES_URL"):
        url = os.environ["TEST_POSTGRES_URL"]
    elif pg_server is None:
        return None
    else:
        url = pg_server.url()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection to close folds the WAL into the file
    return path


def _empty_postgres(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    """The URL of an empty, migrated database of each kind."""
    if request.param == "sqlite":
        if request.node.get_closest_marker("postgres_only"):
            pytest.skip("PostgreSQL-only behaviour")
        path = tmp_path / "blasts.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_template_url")
    if url is None:
        pytest.skip("no PostgreSQL server on this machine")
    _empty_postgres(url)
    # Another database at the same address: this process's remembered webhook secrets were the
    # one before's (a wrong secret reads them again only once a second).
    from core.webhook.secret import forget_remembered

    forget_remembered()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def in_malaysia(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """PHONE_REGION=MY, whatever the environment says."""
    from core.config import get_settings

    monkeypatch.setenv("PHONE_REGION", "MY")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: a gateway or a database that cannot be reached."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port  # closed when the block ended: nothing listens there
