"""PostgreSQL stopped and started again in the middle of a blast and of a webhook flood.

The worker processes and the webhook route recover by themselves. While the database is
away the route answers 503, the simulated gateway retries (as WSAPME does), and in the
end every event it emitted is in the inbox and applied, with no change recorded twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import Engine

from core.models import utcnow
from core.sending.worker import SendWorker
from core.simulator import Proportions, Simulator
from core.webhook.inbox import NEW_GRACE, replay_waiting
from tests.reliability.support import (
    FINAL,
    WEBHOOK_SECRET,
    assert_every_event_kept,
    assert_history_moves_only_up,
    assert_statuses_match,
    blast_row,
    fired_events,
    free_socket,
    history,
    inbox,
    opt_out_phones,
    opted_out,
    point_settings_at,
    recipients,
    start_worker,
    stop,
    wait_until,
    webhook_route,
    worker_env,
)
from tests.sending.support import launched_blast, settings_for
from tests.support.pg_server import PostgresServer
from tests.support.simulator import client_for, running_simulator

pytestmark = [pytest.mark.fault, pytest.mark.slow]

# The gateway keeps retrying a webhook this many times (0.2 s apart at most in fast mode):
# far longer than any outage here, as WSAPME retries for hours.
GATEWAY_RETRIES = 2_000
NOT_STORED = "webhook not stored, the database is unavailable"
REPLIES = Proportions(replied=0.3, opt_out=0.3, reply_without_read=0.3)


def outage(server: PostgresServer, seconds: float, *, test_engine: Engine, probe: str | None = None) -> None:
    """Stop PostgreSQL as a crash would (no checkpoint, connections cut), keep it away for
    `seconds` while traffic goes on, and start it again. With `probe` (the webhook URL), one
    post is sure to arrive while it is away, whatever the gateway happens to send then."""
    server.stop(mode="immediate")
    try:
        started = time.monotonic()
        if probe is not None:
            assert_told_to_come_back(probe)
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))
    finally:
        server.start()
        # Only the test's own reads start afresh; the product's engines find out for themselves.
        test_engine.dispose()


def assert_told_to_come_back(hook_url: str) -> None:
    body = json.dumps({"event": "message-ack", "data": {"id": "PROBE-DURING-OUTAGE", "status": 2}})
    request = urllib.request.Request(hook_url, data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == 503
    assert answer.value.headers["Retry-After"]


def delivered(sim: Simulator) -> int:
    return sum(e.delivered for e in sim.emitted().events)


def replay_as_the_server_does(engine: Engine, *, within: float = 15.0) -> None:
    """An outage between storing a body and applying it leaves the entry `new`; the server's
    replay loop picks such entries up once they are a minute old, and again every 30 s. The
    route's applier may still hold the last bodies stored (a replay skips locked entries and
    leaves them to it), so the replay is repeated, as the server's loop is, until none is left."""
    deadline = time.monotonic() + within
    while True:
        replay_waiting(engine, now=utcnow() + NEW_GRACE + dt.timedelta(seconds=1))
        if all(e.state != "new" for e in inbox(engine)) or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def not_stored_answers(caplog: pytest.LogCaptureFixture) -> int:
    return sum(NOT_STORED in r.getMessage() for r in caplog.records)


def assert_no_server_error(caplog: pytest.LogCaptureFixture) -> None:
    """The route never failed with a 500: an outage is a 503, nothing else."""
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.ERROR and r.name.startswith(("uvicorn", "core"))]
    assert not errors, errors[:5]


def test_a_restart_mid_blast_is_ridden_out_by_workers_and_webhooks(
    fault_server: PostgresServer, fault_db_url: str, fault_engine: Engine, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, figures: dict[str, object],
) -> None:
    caplog.set_level(logging.WARNING)
    point_settings_at(monkeypatch, fault_db_url)
    size = 250
    with webhook_route() as hook_url, running_simulator(
        seed=31, webhook_url=hook_url, max_webhook_attempts=GATEWAY_RETRIES, proportions=REPLIES
    ) as sim:
        blast_id = launched_blast(fault_engine, size)
        workers = [start_worker(worker_env(fault_db_url, sim.url), tmp_path) for _ in range(2)]
        try:
            for at_sent, seconds_down in ((60, 2.0), (150, 0.5)):
                wait_until(lambda n=at_sent: len(sim.sent_messages()) >= n, timeout=60,
                           what=f"{at_sent} sends")
                outage(fault_server, seconds_down, test_engine=fault_engine, probe=hook_url)
            wait_until(lambda: blast_row(fault_engine, blast_id).state == "completed", timeout=120,
                       what="the workers to finish the blast after the restarts")
            assert sim.wait_idle(60), "the gateway still had webhooks to deliver"
        finally:
            codes = [stop(w) for w in workers]
        emitted = sim.emitted()
        sends = {m.to: m.message_id for m in sim.sent_messages()}
    replay_as_the_server_does(fault_engine)

    outputs = "\n".join(w.output() for w in workers)
    assert codes == [0, 0], outputs[-3000:]
    assert "database unavailable" in outputs or "could not store" in outputs
    rows = recipients(fault_engine, blast_id)
    assert {r.status for r in rows} <= FINAL
    for row in rows:
        assert sim.sent_count(row.phone_number) <= 1, f"{row.phone_number} was sent twice"
        if row.message_id is not None:
            assert sends[row.phone_number.lstrip("+")] == row.message_id
    assert all(e.delivered for e in emitted.events), "the gateway gave up on an event"
    assert_every_event_kept(emitted, inbox(fault_engine))
    checked = assert_statuses_match(emitted, rows)
    changes = history(fault_engine)
    for row in rows:
        if row.message_id is not None:
            assert_history_moves_only_up(changes[row.id], row.status)
    assert opted_out(fault_engine) == opt_out_phones(emitted)
    assert_no_server_error(caplog)
    figures.update(recipients=size, restarts=2, sent=len(sends), matched=checked,
                   unknown=sum(r.status == "UNKNOWN" for r in rows), events=len(emitted.events),
                   answered_503=not_stored_answers(caplog),
                   gateway_retries=sum(e.attempts - 1 for e in emitted.events))


def test_a_restart_mid_webhook_flood_loses_no_event(
    fault_server: PostgresServer, fault_db_url: str, fault_engine: Engine,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, figures: dict[str, object],
) -> None:
    caplog.set_level(logging.WARNING)
    point_settings_at(monkeypatch, fault_db_url)
    size = 240
    sock = free_socket()  # the dashboard is down at first: the gateway's events pile up
    hook_url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/wsapme/{WEBHOOK_SECRET}"
    with running_simulator(seed=47, webhook_url=hook_url, max_webhook_attempts=GATEWAY_RETRIES,
                           proportions=REPLIES) as sim:
        sim.set_fault("duplicate_acks", times=size // 3)
        sim.set_fault("out_of_order_acks", times=size // 3)
        blast_id = launched_blast(fault_engine, size)
        SendWorker(engine=fault_engine, client=client_for(sim), settings=settings_for()).run(once=True)
        total = fired_events(sim)
        with webhook_route(sock):
            for share in (0.3, 0.6):
                wait_until(lambda s=share: delivered(sim) >= s * total, timeout=60,
                           what=f"{share:.0%} of the flood delivered")
                outage(fault_server, 1.0, test_engine=fault_engine)
            assert sim.wait_idle(90), "the gateway still had webhooks to deliver"
        emitted = sim.emitted()
    replay_as_the_server_does(fault_engine)

    rows = recipients(fault_engine, blast_id)
    stored = inbox(fault_engine)
    assert len(emitted.events) == total
    assert all(e.delivered for e in emitted.events), "the gateway gave up on an event"
    assert_every_event_kept(emitted, stored)
    assert {e.state for e in stored} == {"applied"}, "every stored event is applied in the end"
    assert assert_statuses_match(emitted, rows) == size
    changes = history(fault_engine)
    for row in rows:
        assert_history_moves_only_up(changes[row.id], row.status)
    assert opted_out(fault_engine) == opt_out_phones(emitted)
    assert not_stored_answers(caplog) > 0, "the outage never reached the webhook route"
    assert_no_server_error(caplog)
    figures.update(events=total, stored=len(stored), restarts=2,
                   answered_503=not_stored_answers(caplog),
                   gateway_retries=sum(e.attempts - 1 for e in emitted.events))
