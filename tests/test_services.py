"""The dashboard's background threads (`core.services`) through a database outage."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from core import services
from core.db import make_engine


def test_a_database_away_is_said_once_in_a_line_not_a_traceback_every_few_seconds(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(services, "FOLD_SECONDS", 0.02)
    monkeypatch.setattr(services, "REPLAY_SECONDS", 0.0)  # the replay asks on every turn too
    engine = make_engine(f"postgresql+psycopg://tracker:Sekr3t-pw@127.0.0.1:{closed_port}/blasts")
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, logger="core"):
        thread = threading.Thread(target=services._replay_loop, args=(engine, stop))
        thread.start()
        try:
            threading.Event().wait(1.0)  # a few dozen turns of the loop
        finally:
            stop.set()
            thread.join(10)
    said = [r for r in caplog.records if r.name == "core.services"]
    assert [r.getMessage().split(" (")[0] for r in said] == ["the database is unavailable"], caplog.text
    assert "OperationalError" in said[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records), "no traceback"
    assert "Sekr3t-pw" not in caplog.text


def test_the_database_coming_back_is_said_once_with_how_long_it_was_away(
    caplog: pytest.LogCaptureFixture
) -> None:
    clock = [100.0]
    outage = services.Outage(clock=lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="core.services"):
        outage.back()  # never away: nothing to say
        for _ in range(3):
            outage.away(ConnectionRefusedError("connection refused"))
            clock[0] += 20
        outage.back()
        outage.back()
    assert [r.getMessage() for r in caplog.records] == [
        "the database is unavailable (ConnectionRefusedError: connection refused): counts and waiting "
        "webhooks are brought up to date once it is back",
        "the database is back after 60 s"]


@pytest.mark.postgres_only  # SQLite calls a missing column an OperationalError, as a lost file
def test_a_statement_refused_is_not_taken_for_the_database_away_and_keeps_its_traceback(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database answering "no" to a statement is no outage: said in full, each time."""
    from sqlalchemy import text

    def refused(session: Any) -> int:
        session.execute(text("SELECT no_such_column FROM blasts"))
        return 0

    monkeypatch.setattr(services, "FOLD_SECONDS", 0.02)
    monkeypatch.setattr(services, "fold_rollup_deltas", refused)
    engine = make_engine(db_url)
    stop = threading.Event()
    with caplog.at_level(logging.WARNING, logger="core"):
        thread = threading.Thread(target=services._replay_loop, args=(engine, stop))
        thread.start()
        try:
            threading.Event().wait(0.5)
        finally:
            stop.set()
            thread.join(10)
    engine.dispose()
    said = [r for r in caplog.records if r.name == "core.services"]
    assert len(said) > 1 and all(
        r.getMessage().startswith("folding status counts failed") and r.exc_info for r in said), caplog.text
