"""PostgreSQL stops just after the gateway took a message, before its answer is stored.

The worker keeps trying to store the answer for as long as the message's lease lasts: an
outage of twenty seconds loses nothing. One that outlasts the lease leaves the message
unknown, and the log names the recipient and the gateway's message id, to be matched by hand.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.models import BlastRecipient
from core.sending.worker import STORE_MARGIN_SECONDS
from tests.sending.support import AroundSends, launched_blast, worker_for
from tests.support.pg_server import PostgresServer
from tests.support.simulator import TEST_TOKEN, running_simulator

pytestmark = [pytest.mark.fault, pytest.mark.slow]


@contextmanager
def outage_after_each_send(server: PostgresServer, seconds: float) -> Iterator[Callable[[str], None]]:
    """A hook for a worker's client that stops the database as a crash would, right after the
    gateway answered, and starts it again `seconds` later; waited for when the block ends."""
    restarts: list[threading.Thread] = []

    def database_goes_away(to: str) -> None:
        server.stop(mode="immediate")
        restart = threading.Timer(seconds, server.start)
        restart.start()
        restarts.append(restart)

    try:
        yield database_goes_away
    finally:
        for restart in restarts:
            restart.join()


def the_row(engine: Engine) -> BlastRecipient:
    engine.dispose()  # the test's own connections did not live through the outage
    with transaction(engine) as s:
        return s.scalars(select(BlastRecipient)).one()


def test_an_answer_is_stored_after_an_outage_longer_than_a_few_retries(
    fault_server: PostgresServer, fault_engine: Engine
) -> None:
    """Twenty seconds away, well inside the lease: the answer had been given up after 15 s."""
    launched_blast(fault_engine, 1)
    with running_simulator() as sim, outage_after_each_send(fault_server, 20.0) as outage:
        worker = worker_for(fault_engine, sim, send_lease_seconds=90.0)
        worker.client = AroundSends(worker.client, after=outage)
        worker.run(once=True)
        [sent] = sim.sent_messages()
    row = the_row(fault_engine)
    assert (row.status, row.message_id, row.claimed_by) == ("PENDING", sent.message_id, None)


def test_an_answer_the_lease_outlasts_is_logged_with_its_ids_and_the_message_is_unknown(
    fault_server: PostgresServer, fault_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    lease = STORE_MARGIN_SECONDS + 2.0
    launched_blast(fault_engine, 1)
    caplog.set_level(logging.WARNING)
    with running_simulator() as sim, outage_after_each_send(fault_server, lease + 2.0) as outage:
        worker = worker_for(fault_engine, sim, send_lease_seconds=lease)
        worker.client = AroundSends(worker.client, after=outage)
        started = time.monotonic()
        assert worker.step() is True
        gave_up_after = time.monotonic() - started
        [sent] = sim.sent_messages()
    assert gave_up_after < lease, "given up while the lease still held, not after it"
    worker.housekeeping(force=True)  # the lease has ended: marked unknown, as any worker would
    row = the_row(fault_engine)
    assert (row.status, row.message_id) == ("UNKNOWN", None)
    given_up = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(sent.message_id in m and f"recipient {row.id}" in m for m in given_up), given_up
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert TEST_TOKEN not in logged and sent.message not in logged
