"""A claim is judged by the clock when it is made, however long the worker waited for the database."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from sqlalchemy import Engine, select

from core import app_state
from core.db import transaction
from core.models import AppState, BlastRecipient
from core.sending.worker import HEARTBEAT_PREFIX, SendWorker
from tests.sending.support import AroundSends, launched_blast, now, phone, worker_for
from tests.support.simulator import running_simulator

HELD_UP = 1.5  # seconds the worker's housekeeping waits for a lock another writer holds


def hold_up_housekeeping(engine: Engine, worker: SendWorker) -> tuple[threading.Thread, list[dt.datetime]]:
    """Another writer holding what the worker's housekeeping writes (its heartbeat; on SQLite
    the whole database) for HELD_UP seconds, from when this returns; and, once it is done, the
    time it let go (read just before its commit: nothing the worker does after the wait can
    have read the clock earlier)."""
    key = HEARTBEAT_PREFIX + worker.name
    with transaction(engine) as s:
        app_state.put(s, key=key, value={})
    locked = threading.Event()
    released: list[dt.datetime] = []

    def hold() -> None:
        with transaction(engine) as s:
            s.get(AppState, key, with_for_update=True)
            locked.set()
            time.sleep(HELD_UP)
            released.append(now())

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    return holder, released


@pytest.mark.parametrize("pacing", ["off", "on"])
def test_a_lease_runs_from_the_claim_not_from_before_a_wait_on_the_database(
    engine: Engine, pacing: str
) -> None:
    """The clock had been read before housekeeping, which can wait on a lock: a claim made after
    that wait got a lease already partly spent (and quiet hours and the day's cap were judged
    by the same stale time)."""
    launched_blast(engine, 1)
    at_send: list[tuple[dt.datetime, dt.datetime]] = []

    def lease_as_the_message_goes(to: str) -> None:
        with transaction(engine) as s:
            until = s.scalar(select(BlastRecipient.lease_expires_at)
                             .where(BlastRecipient.phone_number == phone(0)))
        at_send.append((now(), until))

    with running_simulator() as sim:
        worker = worker_for(engine, sim, send_pacing=pacing, send_min_gap_seconds=0.0,
                            send_jitter_seconds=0.0)
        worker.client = AroundSends(worker.client, before=lease_as_the_message_goes)
        holder, released = hold_up_housekeeping(engine, worker)
        try:
            assert worker.step() is True
        finally:
            holder.join()
    [(sent, until)] = at_send
    lease = dt.timedelta(seconds=worker.settings.send_lease_seconds)
    # The lease ran from the claim, made once the wait was over: not from before it (the clock
    # read before housekeeping gave a lease HELD_UP seconds short).
    assert until >= released[0] + lease
    assert until - sent <= lease
