"""Whether anything is sending messages, as the marketer's pages ask it: the health page's rule,
from the send workers' heartbeats, quiet in the first moments after the server starts."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from core import app_state, uptime
from core.config import Settings
from core.db import transaction
from core.models import utcnow
from core.sending import progress
from core.sending.progress import nothing_sends
from core.sending.worker import HEARTBEAT_PREFIX, alive_within

UP_FOR_AN_HOUR = dt.timedelta(hours=1)
ALIVE_WITHIN = alive_within(Settings(_env_file=None))


def _settings(*, run_worker: bool) -> Settings:
    return Settings(_env_file=None, run_worker=run_worker)


def _asked(engine: Engine, *, run_worker: bool = False, now: dt.datetime | None = None) -> bool:
    with transaction(engine) as s:
        return nothing_sends(s, settings=_settings(run_worker=run_worker), now=now)


@pytest.fixture
def server_up_for_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uptime, "STARTED_AT", utcnow() - UP_FOR_AN_HOUR)


@pytest.mark.usefixtures("server_up_for_an_hour")
def test_no_worker_checked_in_means_nothing_sends(engine: Engine) -> None:
    assert _asked(engine)


@pytest.mark.usefixtures("server_up_for_an_hour")
def test_a_worker_that_checked_in_lately_sends(engine: Engine) -> None:
    with transaction(engine) as s:
        app_state.put(s, key=HEARTBEAT_PREFIX + "host:1:abc", value={"sent": 3})
    assert not _asked(engine)
    # A send waiting out WSAPME's timeouts holds the next heartbeat back: not a stopped worker.
    assert not _asked(engine, now=utcnow() + dt.timedelta(seconds=10 + 35))
    assert _asked(engine, now=utcnow() + ALIVE_WITHIN + dt.timedelta(seconds=1)), "it stopped checking in"


@pytest.mark.usefixtures("server_up_for_an_hour")
def test_other_values_the_app_keeps_are_no_worker(engine: Engine) -> None:
    with transaction(engine) as s:
        app_state.put(s, key="polling", value={"active": True})
    assert _asked(engine)


def test_not_in_the_first_moments_after_the_server_starts(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started with the server checks in within seconds: none yet is no news. After
    that, none is: a blast sent a minute after a restart had been said to be sending."""
    started = utcnow()
    monkeypatch.setattr(uptime, "STARTED_AT", started)
    assert not _asked(engine, now=started + dt.timedelta(seconds=5))
    assert _asked(engine, now=started + progress.STARTUP_GRACE + dt.timedelta(seconds=1))
    assert _asked(engine, now=started + ALIVE_WITHIN + dt.timedelta(seconds=1))


@pytest.mark.usefixtures("server_up_for_an_hour")
def test_a_dashboard_that_runs_its_own_worker_is_not_doubted(engine: Engine) -> None:
    assert not _asked(engine, run_worker=True)
