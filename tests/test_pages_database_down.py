"""Pages while the database is not answering: said in words, with a way to try again, and
logged in one line that never holds the database's password."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from dashboard import layout
from dashboard.layout import (
    ACTION_DATABASE_AWAY,
    DATABASE_AWAY,
    PAGE_FAILED,
    PART_DATABASE_AWAY,
    database_away,
)
from tests.support.browser import free_port
from tests.support.pg_server import PostgresUnavailable, start_server
from tests.test_pages import page

PASSWORD = f"Kopi-{secrets.token_hex(6)}"  # would be in whatever showed or logged the URL


def _point_at(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def database_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DATABASE_URL aimed at a PostgreSQL port where nothing listens: every connection refused."""
    monkeypatch.delenv("WSAPME_TOKEN", raising=False)
    _point_at(f"postgresql://blasts:{PASSWORD}@127.0.0.1:{free_port()}/blasts", monkeypatch)
    yield PASSWORD
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


def _shown(at: AppTest) -> str:
    """Everything the run put on the page, as Streamlit sends it to the browser."""
    def walk(node):  # type: ignore[no-untyped-def]
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return "\n".join(str(getattr(n, "proto", "")) for block in (at.main, at.sidebar) for n in walk(block))


def _our_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("dashboard") and r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "path",
    ["pages/overview.py", "pages/replies.py", "pages/blast.py", "pages/opt_outs.py", "pages/health.py"],
)
def test_a_page_says_the_database_is_not_answering_and_logs_one_line(
    database_down: str, caplog: pytest.LogCaptureFixture, path: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO)
    at = page(path, blast="3")
    at.run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [DATABASE_AWAY]
    assert PAGE_FAILED not in _shown(at)
    assert at.button(key="database_away_try_again").label == "Try again"
    assert database_down not in _shown(at)
    lines = _our_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "the database is not answering" in lines[0].getMessage()
    assert "Connection refused" in lines[0].getMessage(), "the driver's words tell the server's keeper why"
    assert not any(r.exc_info for r in caplog.records), "no traceback"
    assert database_down not in caplog.text

    # The database is back (here: another one): trying again shows the page.
    _point_at(f"sqlite:///{tmp_path / 'blasts.db'}", monkeypatch)
    at.button(key="database_away_try_again").click().run()
    assert not at.exception, at.exception
    assert not at.error and at.title


def test_settings_and_health_names_the_database_that_does_not_answer(database_down: str) -> None:
    """The page whoever runs the server opens had said only what every page says."""
    at = page("pages/health.py")
    at.run()
    assert not at.exception, at.exception
    [details] = at.expander
    [said] = [m.value for m in details.markdown]
    assert said.startswith("**Database**: PostgreSQL (127.0.0.1/blasts) does not answer: connection "), said
    assert "Connection refused" in said and "`DATABASE_URL`" in said
    assert database_down not in _shown(at)


def test_a_page_says_so_when_postgresql_stops_under_a_running_dashboard(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The pool's connections were good; the server stops, and each of them fails its check."""
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server on this machine: {exc}")
    try:
        monkeypatch.delenv("WSAPME_TOKEN", raising=False)
        _point_at(server.url().replace("postgres@", f"postgres:{PASSWORD}@"), monkeypatch)
        assert not page("pages/overview.py").run().error
        server.stop()
        caplog.set_level(logging.INFO)
        at = page("pages/overview.py").run()  # a new visitor, as a refresh of the browser is
        assert not at.exception, at.exception
        assert [e.value for e in at.error] == [DATABASE_AWAY]
        assert len(_our_lines(caplog)) == 1 and not any(r.exc_info for r in caplog.records)
        assert PASSWORD not in caplog.text + _shown(at)
        server.start()
        at.button(key="database_away_try_again").click().run()
        assert not at.exception and not at.error
        assert any(t.value == "Overview" for t in at.title)
    finally:
        server.destroy()
        get_settings.cache_clear()
        st.cache_resource.clear()


def _a_part_and_an_action() -> None:
    import streamlit as st
    from sqlalchemy import text

    from dashboard.data import reading
    from dashboard.layout import friendly_errors, in_words

    def render_counts() -> None:
        with reading() as s:
            st.write(s.scalar(text("SELECT 1")))

    st.fragment(in_words(render_counts))()
    with friendly_errors("count the blasts"), reading() as s:
        s.execute(text("SELECT 1"))


def test_a_part_of_a_page_and_an_action_say_the_database_is_not_answering(
    database_down: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    at = AppTest.from_function(_a_part_and_an_action, default_timeout=30).run()
    assert not at.exception, at.exception
    action = f"Could not count the blasts: {ACTION_DATABASE_AWAY}"
    assert [e.value for e in at.error] == [PART_DATABASE_AWAY, action]
    assert len(_our_lines(caplog)) == 2 and not any(r.exc_info for r in caplog.records)
    assert database_down not in caplog.text + _shown(at)


def test_a_part_refreshing_itself_logs_the_database_away_once_a_minute(
    database_down: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It runs every few seconds in every open tab: one line each time buried the log."""
    monkeypatch.setattr(layout, "_part_lines", layout._Quieted(layout.PART_LOG_EVERY_SECONDS))
    caplog.set_level(logging.INFO)
    at = AppTest.from_function(_a_part_and_an_action, default_timeout=30)
    for _ in range(4):
        at.run()
        assert not at.exception, at.exception
        assert at.error[0].value == PART_DATABASE_AWAY  # said on the page every time
    parts = [r.getMessage() for r in _our_lines(caplog) if "the part" in r.getMessage()]
    assert len(parts) == 1, parts
    assert "render_counts" in parts[0] and "Connection refused" in parts[0]
    assert len(_our_lines(caplog)) == 1 + 4, "the action's line, a person's click, is logged every time"


def test_held_back_lines_are_counted_in_the_next_one() -> None:
    now = [100.0]
    quieted = layout._Quieted(60, clock=lambda: now[0])
    assert quieted.due("a") == 0
    assert [quieted.due("a") for _ in range(3)] == [None, None, None]
    assert quieted.due("b") == 0, "each part on its own"
    now[0] += 59.9
    assert quieted.due("a") is None
    now[0] += 0.1
    assert quieted.due("a") == 4
    assert quieted.due("a") is None
    now[0] += 600
    assert quieted.due("a") == 1


def test_only_a_connection_that_fails_is_the_database_away(tmp_path: Path) -> None:
    """A statement the database refuses is a defect to look into, with its traceback: SQLite's
    "no such table" and a locked file are OperationalErrors too, as is PostgreSQL's deadlock."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError, OperationalError

    from dashboard.layout import database_away

    refused = create_engine(f"postgresql+psycopg://blasts:{PASSWORD}@127.0.0.1:{free_port()}/blasts")
    with pytest.raises(OperationalError) as away, refused.connect():
        pass
    assert database_away(away.value)
    sqlite = create_engine(f"sqlite:///{tmp_path / 'blasts.db'}")
    with pytest.raises(OperationalError) as defect, sqlite.begin() as c:
        c.execute(text("SELECT * FROM no_such_table"))
    assert not database_away(defect.value)
    with pytest.raises(IntegrityError) as refused_row, create_engine("sqlite://").begin() as c:
        c.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        c.execute(text("INSERT INTO t VALUES (1), (1)"))
    assert not database_away(refused_row.value)
    assert not database_away(ValueError("not the database"))


def test_a_database_host_that_never_answers_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that takes the connection and says nothing (a firewall, a stopped server's port
    left open) had held a page, a webhook or the worker for the system's TCP timeout."""
    import socket
    import time

    from sqlalchemy.exc import OperationalError

    from core import db

    monkeypatch.setattr(db, "CONNECT_TIMEOUT_SECONDS", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody ever answers
        url = f"postgresql://app:{secrets.token_hex(8)}@127.0.0.1:{silent.getsockname()[1]}/tracker"
        engine = db.make_engine(url)
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught:
            engine.connect().close()
        waited = time.monotonic() - started
        engine.dispose()
    assert waited < 30, f"waited {waited:.0f} s for a host that never answers"
    assert database_away(caught.value)


def test_a_connect_timeout_in_the_url_is_kept() -> None:
    from core import db

    engine = db.make_engine("postgresql://app@127.0.0.1:1/tracker?connect_timeout=3")
    _, params = engine.dialect.create_connect_args(engine.url)
    assert str(params["connect_timeout"]) == "3"
    engine.dispose()
