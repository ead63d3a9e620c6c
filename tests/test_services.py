"""The dashboard's background threads (`core.services`) through a database outage."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, select

from core import services
from core.db import make_engine, transaction
from core.models import Blast, BlastRecipient, StatusHistory, utcnow
from tests.support.factories import make_blast, make_recipient


def test_a_database_away_is_said_once_in_a_line_not_a_traceback_every_few_seconds(
    closed_port: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(services, "FOLD_SECONDS", 0.02)
    monkeypatch.setattr(services, "REPLAY_SECONDS", 0.0)  # the replay asks on every turn too
    engine = make_engine(f"postgresql+psycopg://tracker:Sekr3t-pw@127.0.0.1:{closed_port}/blasts")
    with caplog.at_level(logging.WARNING, logger="core"):
        _run_loop(engine, at_most=1.0)  # a few dozen turns of the loop
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
    with caplog.at_level(logging.WARNING, logger="core"):
        _run_loop(engine, at_most=0.5)
    engine.dispose()
    said = [r for r in caplog.records if r.name == "core.services"]
    assert len(said) > 1 and all(
        r.getMessage().startswith("folding status counts failed") and r.exc_info for r in said), caplog.text


def test_a_send_whose_worker_vanished_is_found_with_no_worker_running(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """RUN_WORKER off here and every worker stopped: only a worker had found such a send, so
    it stayed "being sent" and no reply or receipt could settle it. The dashboard's own loop
    marks it unknown, as of its lease's end."""
    lease_ended = utcnow() - dt.timedelta(minutes=5)
    with transaction(engine) as s:
        blast = make_blast(s, state="sending")
        blast_id = blast.id
        rid = make_recipient(s, blast, status="SENDING", claimed_by="gone", lease_expires_at=lease_ended).id
        held = make_recipient(s, blast, status="SENDING", claimed_by="alive",
                              lease_expires_at=utcnow() + dt.timedelta(minutes=1)).id
    monkeypatch.setattr(services, "FOLD_SECONDS", 0.02)
    monkeypatch.setattr(services, "REPLAY_SECONDS", 0.0)
    caplog.set_level(logging.WARNING, logger="core")
    _run_loop(engine, until=lambda: _status(engine, rid) != "SENDING")
    assert (_status(engine, rid), _status(engine, held)) == ("UNKNOWN", "SENDING")
    with transaction(engine) as s:
        assert s.get(Blast, blast_id).state == "sending", "one of its messages is still out"
        s.get(BlastRecipient, held).lease_expires_at = utcnow() - dt.timedelta(seconds=1)
    _run_loop(engine, until=lambda: _status(engine, held) != "SENDING")
    with transaction(engine) as s:
        assert s.get(Blast, blast_id).state == "completed", "its last message was the one found lost"
    with transaction(engine) as s:
        found = s.scalar(select(StatusHistory.changed_at).where(StatusHistory.recipient_id == rid))
    assert found == lease_ended
    assert "1 sends lost their worker mid-way and were marked unknown" in caplog.text


def _run_loop(engine: Engine, *, until: Callable[[], bool] = lambda: False, at_most: float = 30.0) -> None:
    """The dashboard's replay loop, in a thread of its own, until `until` holds or `at_most`
    seconds have passed."""
    stop = threading.Event()
    thread = threading.Thread(target=services._replay_loop, args=(engine, stop))
    thread.start()
    try:
        deadline = time.monotonic() + at_most
        while not until() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)


def _status(engine: Engine, recipient_id: int) -> str:
    with transaction(engine) as s:
        return s.get(BlastRecipient, recipient_id).status
