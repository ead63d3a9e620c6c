"""A start waits for a PostgreSQL server that is not up yet, and only for one that may come up."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from sqlalchemy.exc import OperationalError

from core.db import WaitStopped, connect_when_up, make_engine
from tests.support.pg_server import PostgresServer, PostgresUnavailable


class Naps(threading.Event):
    """A stop event that keeps each wait asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.asked.append(timeout or 0.0)
        return super().wait(timeout)


def test_a_server_that_comes_up_late_is_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    try:
        server = PostgresServer().init()  # made, not started: its port refuses connections
    except PostgresUnavailable:
        pytest.skip("no PostgreSQL server can run on this machine")
    engine = make_engine(server.url())
    starting = threading.Timer(2.0, server.start)
    try:
        caplog.set_level(logging.WARNING, logger="core.db")
        starting.start()
        connect_when_up(engine, patience=60)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        starting.join()
        engine.dispose()
        server.destroy()
    said = next(r.getMessage() for r in caplog.records if "does not answer yet" in r.getMessage())
    assert said.startswith("the database does not answer yet; waiting up to 60 s more (")
    assert "Connection refused" in said


def test_a_server_that_stays_down_is_given_up_on_when_time_is_up(
    caplog: pytest.LogCaptureFixture, closed_port: int
) -> None:
    engine = make_engine(f"postgresql+psycopg://u:pw-Zq81-secret@127.0.0.1:{closed_port}/db")
    naps = Naps()
    caplog.set_level(logging.WARNING, logger="core.db")
    started = time.monotonic()
    with pytest.raises(OperationalError, match="Connection refused"):
        connect_when_up(engine, patience=2.5, stop=naps)
    assert time.monotonic() - started >= 2.4
    assert len(naps.asked) >= 3 and all(0 < nap <= 1.0 for nap in naps.asked)
    assert caplog.text.count("does not answer yet") == 1, "said every ten seconds, not every try"
    assert "pw-Zq81" not in caplog.text


@pytest.mark.postgres_only
def test_a_refusal_that_waiting_cannot_change_stops_at_once(db_url: str) -> None:
    """The server answered, and no: a database that does not exist (likewise a wrong password)."""
    engine = make_engine(db_url.rpartition("/")[0] + "/no_such_database")
    naps = Naps()
    with pytest.raises(OperationalError, match="does not exist"):
        connect_when_up(engine, patience=60, stop=naps)
    engine.dispose()
    assert naps.asked == []


@pytest.mark.parametrize(("said", "waited"), [
    ('connection to server at "10.0.0.5", port 5432 failed: Connection refused', True),
    ("failed to resolve host 'db': [Errno -3] Temporary failure in name resolution", True),
    ("FATAL:  the database system is starting up", True),
    ("ERROR:  Couldn't connect to compute node", True),  # Neon's proxy while the database wakes
    ("SSL SYSCALL error: EOF detected", True),
    ('FATAL:  sorry, too many clients already', True),
    ('FATAL:  password authentication failed for user "app"', False),
    ('ERROR:  password authentication failed for user "app"', False),  # Neon's proxy
    ('FATAL:  database "blasts" does not exist', False),
    ('FATAL:  role "app" does not exist', False),
    ("FATAL:  no pg_hba.conf entry for host \"10.0.0.9\"", False),
    ('invalid sslmode value: "requir"', False),
])
def test_what_is_waited_for(said: str, waited: bool) -> None:
    from core.db import _may_come_up

    assert _may_come_up(OperationalError("connect", {}, Exception(said))) is waited


def test_a_process_asked_to_end_stops_waiting(closed_port: int) -> None:
    engine = make_engine(f"postgresql+psycopg://u@127.0.0.1:{closed_port}/db")
    naps = Naps()
    threading.Timer(1.0, naps.set).start()
    with pytest.raises(WaitStopped):
        connect_when_up(engine, patience=600, stop=naps)
    assert naps.is_set() and len(naps.asked) <= 10
