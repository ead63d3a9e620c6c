"""Helpers for the fault suite: the webhook route served by uvicorn, worker processes,
bounded waits, and comparing the database with what the simulator did."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.middleware import Middleware

from core.config import PROJECT_ROOT, get_settings
from core.db import engine_for, transaction
from core.models import Blast, BlastRecipient, OptOut, StatusHistory, WebhookInbox
from core.simulator import Emitted, Simulator
from core.statuses import RANK, Status
from tests.support.http import free_socket, serving
from tests.support.simulator import TEST_TOKEN

WEBHOOK_SECRET = "fault-suite-webhook-secret-2f9c41d7e0"
SENT = frozenset(s.value for s in Status if RANK[s] >= 1)
FINAL = SENT | {Status.FAILED.value, Status.UNKNOWN.value}


# --- waiting, bounded ------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, every: float = 0.02) -> None:
    """Poll `condition` until true; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting {timeout:g}s for {what}")
        time.sleep(every)


def fired_events(sim: Simulator) -> int:
    """How many events the gateway emitted once no more are coming (fast mode fires each
    message's events within milliseconds of its send)."""
    seen = [-1]

    def settled() -> bool:
        seen.append(len(sim.emitted().events))
        return seen[-1] == seen[-2]

    wait_until(settled, timeout=30, every=0.3, what="the gateway's events to fire")
    return seen[-1]


# --- the webhook route over real HTTP ------------------------------------------------------


def point_settings_at(monkeypatch: pytest.MonkeyPatch, db_url: str, **env: str) -> None:
    """Make this process's settings (the route reads them per request) use `db_url`."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STATUS_POLLING", "off")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    engine_for.cache_clear()


@contextlib.contextmanager
def webhook_route(sock: socket.socket | None = None) -> Iterator[str]:
    """The product's own routes (core.server.routes) served on loopback; yields the
    webhook URL with the secret."""
    from core.server import middleware, routes

    with serving(Starlette(routes=routes(), middleware=middleware()), sock) as base:
        yield f"{base}/webhooks/wsapme/{WEBHOOK_SECRET}"


@dataclass
class ServerProcess:
    """`uvicorn streamlit_app:app`: the dashboard's own server object, pages, webhook route,
    lifespan and all, in a process of its own."""

    popen: subprocess.Popen
    base: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def app_server(env: dict[str, str], log_dir: Path) -> Iterator[ServerProcess]:
    """Serve streamlit_app:app on a free loopback port until the block ends."""
    with contextlib.closing(free_socket()) as probe:
        port = probe.getsockname()[1]
    env = {**env, "STREAMLIT_SERVER_PORT": str(port)}  # where the app says it listens
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("w") as log:
        popen = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "streamlit_app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "info"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    server = ServerProcess(popen, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until(lambda: _answers(server), timeout=60, every=0.1, what="the app server to start")
        yield server
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(10)


def _answers(server: ServerProcess) -> bool:
    if server.popen.poll() is not None:
        pytest.fail(f"the app server exited: {server.output()[-3000:]}")
    try:
        return requests.get(f"{server.base}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def app_env(db_url: str, **extra: str) -> dict[str, str]:
    """The server's environment: the given database, no worker, no polling, no sandbox."""
    env = {
        "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
        "DATABASE_URL": db_url, "WEBHOOK_SECRET": WEBHOOK_SECRET, "RUN_WORKER": "false",
        "STATUS_POLLING": "off", "WSAPME_TOKEN": TEST_TOKEN, "WSAPME_DEVICE": "5850",
        "WSAPME_API_URL": "http://127.0.0.1:9", "WSAPME_MASTER_URL": "http://127.0.0.1:9",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


@dataclass
class Served:
    """The webhook route on loopback: its base URL, current secret and database."""

    base: str
    secret: str
    engine: Engine

    def url(self, secret: str | None = None) -> str:
        return f"{self.base}/webhooks/wsapme/{self.secret if secret is None else secret}"

    def inbox(self) -> list[WebhookInbox]:
        return inbox(self.engine)

    def settle(self) -> None:
        """Wait until the route has applied what it stored (it answers first)."""
        from core.webhook.intake import intake_for

        assert intake_for(self.engine.url.render_as_string(hide_password=False)).wait_settled()


@contextlib.contextmanager
def served_route(
    monkeypatch: pytest.MonkeyPatch, db_url: str, *, secret: str | None = None,
    inner: Sequence[Middleware] = (),
) -> Iterator[Served]:
    """core.server.routes() behind core.server.middleware() over real HTTP on `db_url`, with
    `secret` configured or, when None, the generated one; `inner` is middleware of the app,
    behind those (as the dashboard's pages have theirs)."""
    from core.server import middleware, routes
    from core.webhook.secret import current_secret

    monkeypatch.setenv("DATABASE_URL", db_url)
    if secret is None:
        monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    else:
        monkeypatch.setenv("WEBHOOK_SECRET", secret)
    get_settings.cache_clear()
    engine_for.cache_clear()
    engine = engine_for(get_settings().sqlalchemy_url)
    try:
        with transaction(engine) as s:
            current = current_secret(s, settings=get_settings())
        with serving(Starlette(routes=routes(), middleware=[*middleware(), *inner])) as base:
            yield Served(base, current, engine)
    finally:
        engine.dispose()
        get_settings.cache_clear()
        engine_for.cache_clear()


# --- worker processes ----------------------------------------------------------------------


def worker_env(db_url: str, sim_url: str, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""), "DATABASE_URL": db_url, "WSAPME_TOKEN": TEST_TOKEN,
        "WSAPME_API_URL": sim_url, "WSAPME_MASTER_URL": sim_url, "WSAPME_DEVICE": "5850",
        "WSAPME_READ_TIMEOUT": "5", "WSAPME_CONNECT_TIMEOUT": "2", "SEND_PACING": "on",
        "SEND_QUIET_HOURS": "off", "SEND_DAILY_CAP": "0", "SEND_PAUSE_EVERY": "0",
        # The lease well past the read timeout: a send slowed by a busy machine is not taken for
        # a dead worker's by the other worker (which had marked it unknown, then seen it settle).
        "SEND_JITTER_SECONDS": "0", "SEND_MIN_GAP_SECONDS": "0.02", "SEND_LEASE_SECONDS": "12",
        "STATUS_POLLING": "off", "PYTHONUNBUFFERED": "1",
    }
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    """A `python -m core worker` process; its output goes to a file, read at the end."""

    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_worker(env: dict[str, str], log_dir: Path, *args: str) -> WorkerProcess:
    log_path = log_dir / f"worker-{time.monotonic_ns()}.log"
    with log_path.open("w") as log:
        popen = subprocess.Popen([sys.executable, "-m", "core", "worker", *args], cwd=PROJECT_ROOT,
                                 env=env, stdout=log, stderr=subprocess.STDOUT)
    return WorkerProcess(popen, log_path)


def kill(worker: WorkerProcess) -> None:
    worker.popen.send_signal(signal.SIGKILL)
    worker.popen.wait(10)


def stop(worker: WorkerProcess) -> int:
    """Ask the worker to finish (SIGTERM, as a deploy would) and return its exit code."""
    worker.popen.send_signal(signal.SIGTERM)
    try:
        return worker.popen.wait(30)
    except subprocess.TimeoutExpired:
        kill(worker)
        return -9


# --- reading the outcome -------------------------------------------------------------------


def recipients(engine: Engine, blast_id: int | None = None) -> list[BlastRecipient]:
    with transaction(engine) as s:
        query = select(BlastRecipient).order_by(BlastRecipient.id)
        if blast_id is not None:
            query = query.where(BlastRecipient.blast_id == blast_id)
        return list(s.scalars(query))


def blast_row(engine: Engine, blast_id: int) -> Blast:
    with transaction(engine) as s:
        return s.get(Blast, blast_id, populate_existing=True)


def history(engine: Engine) -> dict[int, list[tuple[str, str, str]]]:
    """Each recipient's status changes in order: (old, new, source)."""
    with transaction(engine) as s:
        rows = s.execute(select(StatusHistory.recipient_id, StatusHistory.old_status,
                                StatusHistory.new_status, StatusHistory.source)
                         .order_by(StatusHistory.id)).all()
    changes: dict[int, list[tuple[str, str, str]]] = {}
    for rid, old, new, source in rows:
        changes.setdefault(rid, []).append((old, new, source))
    return changes


def assert_history_moves_only_up(changes: list[tuple[str, str, str]], final: str) -> None:
    """One row per real change: ranks strictly rise after the send, and end at `final`. The
    one move down, WhatsApp's error for a message the phone never received, comes last."""
    sends = [c for c in changes if c[2] == "send"]
    assert len(sends) == 1, changes
    later = [RANK[Status(new)] for _old, new, source in changes if source != "send"]
    if final == Status.FAILED and changes[-1][2] != "send":
        assert all(rank < RANK[Status.DELIVERY_ACK] for rank in later[:-1]), changes
        later = later[:-1]
    assert later == sorted(set(later)), f"a change recorded twice or downwards: {changes}"
    assert changes[-1][1] == final, changes


def inbox(engine: Engine) -> list[WebhookInbox]:
    with transaction(engine) as s:
        return list(s.scalars(select(WebhookInbox).order_by(WebhookInbox.id)))


def opted_out(engine: Engine) -> set[str]:
    with transaction(engine) as s:
        return set(s.scalars(select(OptOut.phone_number)))


def assert_every_event_kept(emitted: Emitted, stored: list[WebhookInbox]) -> None:
    """Each event the gateway emitted is in the inbox at least once, byte for byte."""
    kept = Counter(bytes(e.body) for e in stored)
    missing = [e.seq for e in emitted.events if kept[e.body.encode()] == 0]
    assert not missing, f"{len(missing)} emitted events never reached the inbox: {missing[:10]}"


def assert_statuses_match(emitted: Emitted, rows: list[BlastRecipient]) -> int:
    """Every sent recipient is where the gateway's own events put it; returns how many."""
    checked = 0
    for row in rows:
        if row.message_id is None:
            continue
        assert row.status == emitted.funnel_status(row.message_id), (row.phone_number, row.status)
        checked += 1
    return checked


def opt_out_phones(emitted: Emitted) -> set[str]:
    return {"+" + r.to for r in emitted.replies if r.opt_out}
