"""`python -m core worker`: a send worker process; run as many as you like on one PostgreSQL.

In practice mode (no WSAPME_TOKEN) the worker starts its own sandbox gateway, which posts its
receipts and replies to the dashboard's webhook address (PUBLIC_URL), as the dashboard's own
worker does: this process serves no web route, so the dashboard must be running to store them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from collections import Counter
from urllib.parse import urlsplit

from sqlalchemy import Engine, select

from core.cli import SUMMARIES, database_engine
from core.config import Settings, get_settings
from core.db import WaitStopped, connect_when_up, ended_by_signals, migrate, transaction
from core.gateway import make_client, sandbox_simulator, stop_sandbox
from core.health import paused_why
from core.models import Blast, utcnow
from core.sending.blasts import S
from core.sending.worker import SendWorker

log = logging.getLogger(__name__)

# In practice mode, how long the worker waits at the end for the sandbox's fast receipts and
# replies to reach the dashboard (realistic ones come over hours: those are not waited for).
SANDBOX_DRAIN_SECONDS = 30.0


def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = database_engine(settings.sqlalchemy_url)
    try:
        with ended_by_signals() as asked_to_end:
            connect_when_up(engine, patience=settings.database_wait_seconds, stop=asked_to_end)
    except WaitStopped:
        print("worker: stopped while waiting for the database to answer", file=sys.stderr)
        return 1
    migrate(engine)
    paused_before = _paused(engine)
    started = utcnow()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    webhook_url = _sandbox_webhook_url(engine, settings) if settings.sandbox else None
    worker = SendWorker(
        engine=engine,
        client=make_client(settings, webhook_url=webhook_url),
        settings=settings,
        after_send=lambda message_id: _replay_after_send(engine, message_id),
    )
    log.info("worker %s started%s", worker.name, " (until nothing is due)" if args.once else "")
    try:
        worker.run(stop, once=args.once)
    finally:
        if settings.sandbox:
            _finish_sandbox(settings)
    # Paused now and not at the start: paused while this worker ran (by it or by a person). A
    # blast already paused is left out, whatever else changed on it meanwhile (an opt-out).
    paused = [row for row in _paused(engine, since=started).values() if row.id not in paused_before]
    for row in paused:
        name = f" ({row.name})" if row.name else ""
        print(f"blast {row.id}{name} is paused. {paused_why(row.state_reason)}", file=sys.stderr, flush=True)
    print(f"worker {worker.name}: {_summary(worker.outcomes, unreached=worker.unreached)}", flush=True)
    return 1 if paused else 0


def _summary(outcomes: Counter[str], *, unreached: Counter[str]) -> str:
    """What the gateway made of this worker's tries, in words (with no colon: a script reads
    the number after the last one). `unreached`: the tries, by outcome, that never reached the
    gateway (`SendWorker.unreached`): it refused none of those."""
    accepted = outcomes["accepted"]
    parts = [f"{accepted} messages sent"]  # always "messages": scripts look for these words
    if outcomes["unknown"]:
        parts.append(f"{outcomes['unknown']} with no clear answer from the gateway "
                     "(marked unknown, never sent again)")
    answered_again = outcomes["retrying"] - unreached["retrying"]
    refused = outcomes["failed"] + answered_again
    if refused:
        again = f", {answered_again} to be tried again" if answered_again else ""
        parts.append(f"{refused} refused by the gateway{again}")
    if unreached["retrying"]:
        parts.append(f"{unreached['retrying']} not sent because the gateway could not be reached "
                     "(to be tried again)")
    if outcomes["held"]:
        parts.append(f"{outcomes['held']} not sent because the blast was paused")
    return ", ".join(parts)


def _paused(engine: Engine, *, since: dt.datetime | None = None) -> dict[int, Blast]:
    query = select(Blast).where(Blast.state == S.PAUSED)
    if since is not None:
        query = query.where(Blast.updated_at >= since)
    with transaction(engine) as s:
        return {blast.id: blast for blast in s.scalars(query.order_by(Blast.id))}


def _replay_after_send(engine: Engine, message_id: str) -> None:
    # As the dashboard's worker: events that came before the send was stored apply now.
    from core.webhook.inbox import replay_after_send

    replay_after_send(engine, message_ids=[message_id])


def _sandbox_webhook_url(engine: Engine, settings: Settings) -> str:
    """The dashboard's webhook address (at PUBLIC_URL), where this sandbox posts its events;
    warns when nothing answers there."""
    import requests

    from core.services import local_webhook_url

    where = _without_credentials(settings.public_url)
    try:
        requests.get(f"{settings.public_url.rstrip('/')}/healthz", timeout=3).raise_for_status()
    except requests.RequestException:
        log.warning(
            "practice mode: the sandbox gateway posts receipts and replies to the dashboard at %s, "
            "which does not answer. Start the dashboard (streamlit run streamlit_app.py) on the "
            "same database, or set PUBLIC_URL to where it runs; until then messages stay at sent.",
            where,
        )
    else:
        log.info("practice mode: receipts and replies go to the dashboard at %s", where)
    return local_webhook_url(engine, settings=settings, local_url=settings.public_url)


def _finish_sandbox(settings: Settings) -> None:
    """Let the sandbox's receipts and replies that are due soon reach the dashboard, then
    stop it; say how many it had not sent yet (they are lost with this process)."""
    sandbox = sandbox_simulator(settings)
    if settings.sandbox_speed == "fast":
        sandbox.wait_idle(SANDBOX_DRAIN_SECONDS)
    left = sandbox.gateway.poster.pending()
    stop_sandbox()
    if left:
        log.warning(
            "practice mode: %d receipts and replies the sandbox had not sent yet are lost as this "
            "worker stops; a worker left running posts them (SANDBOX_SPEED=fast brings them at once)",
            left,
        )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help=SUMMARIES["worker"],
        description="Send queued messages of sending blasts, under each device's pacing. In "
        "practice mode (no WSAPME_TOKEN) receipts and replies reach the tracker through the "
        "dashboard's webhook at PUBLIC_URL: keep the dashboard running on the same database. "
        "Exits with 1 when a blast was paused during the run (the reason is printed).",
    )
    parser.add_argument("--once", action="store_true",
                        help="send everything due now, store the answers, then exit")
    parser.set_defaults(func=run)
