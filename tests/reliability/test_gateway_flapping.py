"""The gateway flapping during a blast: 500s, 503s, 429s, timeouts, a dropped connection,
an offline device, a refused token and an invalid number, one after another.

As design.md says: a refusal that proves the message was not taken is retried with
backoff; a timeout after the request left is UNKNOWN and never re-sent; an offline device
or a refused token pauses the blast with the reason, shown on the blast page, until a
person resumes it there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.db import engine_for, transaction
from core.models import BlastRecipient
from core.simulator import Simulator
from core.wsapme.failures import TOKEN_REFUSED
from tests.reliability.support import (
    SENT,
    blast_row,
    recipients,
    start_worker,
    stop,
    wait_until,
    worker_env,
)
from tests.sending.support import launched_blast
from tests.support.simulator import TEST_TOKEN, running_simulator
from tests.test_pages import page

pytestmark = [pytest.mark.fault, pytest.mark.slow]

SIZE = 200
OFFLINE = "The WhatsApp device is offline: open WSAPME and reconnect it."
# (sent so far, fault, how many requests it hits, options, what the worker must do: for a
# retry, the reason the waiting recipient shows)
FLAPS = [
    (20, "server_error", 2, {"http_status": 408}, "HTTP 408"),
    (40, "rate_limited", 2, {"retry_after": "2"}, "asked to slow down"),
    (60, "slow_answer", 1, {"delay": 9.0}, "unknown"),  # far past the 3 s read timeout
    (80, "server_error", 2, {"http_status": 503}, "HTTP 503"),
    (100, "device_offline", None, {}, "pause"),
    (130, "drop_connection", 1, {}, "unknown"),
    (135, "drop_connection", 2, {}, "pause"),  # a second unknown in a row: WSAPME stopped answering
    (140, "invalid_number", 1, {}, "fail"),
    (150, "bad_token", None, {}, "pause"),
]
NOT_RETRIES = ("unknown", "pause", "fail")
# A slow-down is a wait, not a try: it costs a message none of its tries.
RETRIED = sum(times for _at, kind, times, _o, effect in FLAPS
              if effect not in NOT_RETRIES and kind != "rate_limited")


@pytest.fixture
def dashboard(fault_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pages rendered in this process read the fault suite's database."""
    monkeypatch.setenv("DATABASE_URL", fault_db_url)
    # The worker's gateway and device: the page offers Resume for the blasts that worker sends.
    for name, value in (("WSAPME_TOKEN", TEST_TOKEN), ("WSAPME_DEVICE", "5850"),
                        ("WSAPME_API_URL", "http://127.0.0.1:9"), ("WSAPME_MASTER_URL", "http://127.0.0.1:9")):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    engine_for.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


def test_a_flapping_gateway_retries_pauses_and_never_sends_twice(
    fault_db_url: str, fault_engine: Engine, dashboard: None, tmp_path: Path,
    figures: dict[str, object],
) -> None:
    with running_simulator(seed=5) as sim:
        blast_id = launched_blast(fault_engine, SIZE)
        worker = start_worker(worker_env(fault_db_url, sim.url, WSAPME_READ_TIMEOUT="3"), tmp_path)
        pauses: list[str] = []
        try:
            for at_sent, kind, times, options, effect in FLAPS:
                wait_until(lambda n=at_sent: len(sim.sent_messages()) >= n, timeout=60,
                           what=f"{at_sent} sends before {kind}")
                sim.set_fault(kind, times=times, **options)
                if effect == "pause":
                    pauses.append(_paused_then_resumed_by_a_person(fault_engine, sim, blast_id))
                elif effect not in NOT_RETRIES:
                    _wait_for_retry_reason(fault_engine, reason=effect)
            wait_until(lambda: blast_row(fault_engine, blast_id).state == "completed", timeout=90,
                       what="the blast to finish once the gateway settled")
        finally:
            code = stop(worker)
        sent_by_gateway = {m.to: m for m in sim.sent_messages()}

    assert code == 0 and "Traceback" not in worker.output(), worker.output()[-3000:]
    assert pauses[0] == OFFLINE and pauses[2] == TOKEN_REFUSED
    assert pauses[1].startswith("Sending is paused: WSAPME stopped answering.")
    rows = recipients(fault_engine, blast_id)
    hidden = {to for to, m in sent_by_gateway.items() if m.answer in ("slow_answer", "drop_connection")}
    for row in rows:
        gateway = sent_by_gateway.get(row.phone_number.lstrip("+"))
        assert sim.sent_count(row.phone_number) <= 1, f"{row.phone_number} was sent twice"
        if row.phone_number.lstrip("+") in hidden:
            assert row.status == "UNKNOWN" and "not be sent again" in row.error
        elif row.status == "FAILED":
            assert gateway is None and "not a valid WhatsApp number" in row.error
        else:
            assert row.status in SENT and gateway.message_id == row.message_id
            assert row.error is None, "a retried message that went out keeps no stale reason"
    statuses = [r.status for r in rows]
    assert statuses.count("UNKNOWN") == len(hidden) == 4
    assert statuses.count("FAILED") == 1
    assert sum(r.attempts - 1 for r in rows) == RETRIED, "each proven refusal cost one retry"
    figures.update(recipients=SIZE, faults=len(FLAPS), retried=RETRIED, unknown=len(hidden),
                   failed=1, pauses=len(pauses), sent=len(sent_by_gateway))


def _wait_for_retry_reason(engine: Engine, *, reason: str) -> None:
    """A refused message waits for its retry with the gateway's reason on its row, which
    the recipients table shows."""

    def waiting_with_reason() -> bool:
        with transaction(engine) as s:
            return s.scalar(select(BlastRecipient.id).where(
                BlastRecipient.status == "QUEUED", BlastRecipient.next_attempt_at.is_not(None),
                BlastRecipient.error.contains(reason)).limit(1)) is not None

    wait_until(waiting_with_reason, timeout=30, what=f"a message waiting with “{reason}”")


def _paused_then_resumed_by_a_person(engine: Engine, sim: Simulator, blast_id: int) -> str:
    """Wait for the pause, read its reason on the blast page, clear the fault, click Resume."""
    wait_until(lambda: blast_row(engine, blast_id).state == "paused", timeout=30,
               what="the blast to pause")
    reason = blast_row(engine, blast_id).state_reason
    at = _blast_page(blast_id)
    assert reason in [w.value for w in at.warning], "the page shows why the blast paused"
    with transaction(engine) as s:
        queued = s.scalar(select(BlastRecipient.id).where(BlastRecipient.status == "QUEUED").limit(1))
    assert queued is not None, "pausing failed no one: the rest still wait in the queue"
    sim.clear_faults()  # the device is reconnected, the token fixed
    at.button(key="resume").click().run()
    assert not at.exception, at.exception
    assert blast_row(engine, blast_id).state == "sending"
    return reason


def _blast_page(blast_id: int) -> AppTest:
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    assert not at.exception, at.exception
    return at
