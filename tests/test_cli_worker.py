"""`python -m core worker` as a process: practice-mode receipts reach the dashboard's webhook
route, and its last line counts what the gateway took, not what was tried."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from core.cli.worker import _summary
from core.config import PROJECT_ROOT
from core.db import make_engine, migrate, transaction
from core.models import Blast, BlastRecipient, WebhookInbox
from core.statuses import RANK, Status
from core.webhook.inbox import replay_waiting
from core.wsapme.failures import TOKEN_REFUSED
from tests.reliability.support import served_route
from tests.support.simulator import TEST_TOKEN, running_simulator

CONTACTS = "name,phone\nAisyah,0123456789\nRavi,0198765432\nSiti,0171234567\n"
QUICK = {"SEND_PACING": "off", "SEND_QUIET_HOURS": "off", "PYTHONUNBUFFERED": "1"}


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT, env={"PATH": "", **env})


def queue_a_blast(env: dict[str, str], tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CONTACTS)
    made = cli(env, "import-csv", str(contacts), "--tag", "T", "--message", "Hi {name}")
    assert made.returncode == 0, made.stderr
    queued = cli(env, "send", "1")
    assert queued.returncode == 0 and "3 recipients queued" in queued.stdout, queued.stderr


def statuses(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            return list(s.scalars(select(BlastRecipient.status).order_by(BlastRecipient.id)))
    finally:
        engine.dispose()


def blast_name(url: str) -> str:
    engine = make_engine(url)
    try:
        with transaction(engine) as s:
            return s.get(Blast, 1).name
    finally:
        engine.dispose()


def test_a_practice_worker_gets_receipts_through_the_dashboards_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'practice.db'}"
    monkeypatch.delenv("WSAPME_TOKEN", raising=False)
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    with served_route(monkeypatch, url) as dashboard:  # the dashboard's own webhook route
        env = {"DATABASE_URL": url, "PUBLIC_URL": dashboard.base, "SANDBOX_SPEED": "fast", **QUICK}
        queue_a_blast(env, tmp_path)
        worker = cli(env, "worker", "--once")
        assert worker.returncode == 0, worker.stderr
        assert worker.stdout.strip().endswith(": 3 messages sent"), worker.stdout
        dashboard.settle()
        replay_waiting(dashboard.engine)  # as the dashboard does every half minute
        with transaction(dashboard.engine) as s:
            received = s.scalars(select(WebhookInbox)).all()
    assert len(received) >= 3, "the sandbox posted its receipts to the dashboard"
    moved = statuses(url)
    assert len(moved) == 3 and all(RANK[Status(status)] > RANK[Status.PENDING] for status in moved), moved
    assert "does not answer" not in worker.stderr


def test_a_practice_worker_says_when_the_dashboard_does_not_answer(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'alone.db'}", "PUBLIC_URL": "http://127.0.0.1:9",
           "SANDBOX_SPEED": "fast", **QUICK}
    queue_a_blast(env, tmp_path)
    worker = cli(env, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    assert "the dashboard at http://127.0.0.1:9, which does not answer" in worker.stderr


def test_refused_sends_are_not_counted_as_sent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'refused.db'}"
    with running_simulator() as sim:
        env = {"DATABASE_URL": url, "WSAPME_TOKEN": TEST_TOKEN, "WSAPME_API_URL": sim.url,
               "WSAPME_MASTER_URL": sim.url, "WSAPME_DEVICE": "5850", **QUICK}
        queue_a_blast(env, tmp_path)
        sim.set_fault("invalid_number", times=1)
        worker = cli(env, "worker", "--once")
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.strip().endswith(": 2 messages sent, 1 refused by the gateway"), worker.stdout
    assert sorted(statuses(url))[0] == "FAILED"


def test_a_blast_paused_during_the_run_is_named_and_the_exit_code_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'paused.db'}"
    with running_simulator(token="the-token-the-gateway-knows") as sim:
        env = {"DATABASE_URL": url, "WSAPME_TOKEN": "an-old-token-Zq81", "WSAPME_API_URL": sim.url,
               "WSAPME_MASTER_URL": sim.url, "WSAPME_DEVICE": "5850", **QUICK}
        queue_a_blast(env, tmp_path)
        worker = cli(env, "worker", "--once")
        assert sim.sent_messages() == []
    assert worker.returncode == 1, worker.stdout + worker.stderr
    assert worker.stdout.strip().endswith(": 0 messages sent, 1 not sent because the blast was paused")
    assert f"blast 1 ({blast_name(url)}) is paused. {TOKEN_REFUSED}" in worker.stderr
    assert "Zq81" not in worker.stdout + worker.stderr and "Traceback" not in worker.stderr
    engine = make_engine(url)
    with transaction(engine) as s:
        assert s.get(Blast, 1).state == "paused"
    engine.dispose()
    again = cli(env, "worker", "--once")  # paused before this run: not news, and nothing to send
    assert again.returncode == 0 and again.stdout.strip().endswith(": 0 messages sent"), again.stderr


def test_a_gateway_that_cannot_be_reached_refused_nothing(tmp_path: Path) -> None:
    """WSAPME out of reach: three tries, none of which reached it, and the blast paused. The last
    line had said "2 refused by the gateway"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{s.getsockname()[1]}"  # closed when the block ends
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'unreached.db'}", "WSAPME_TOKEN": TEST_TOKEN,
           "WSAPME_API_URL": nowhere, "WSAPME_MASTER_URL": nowhere, "WSAPME_DEVICE": "5850", **QUICK}
    queue_a_blast(env, tmp_path)
    worker = cli(env, "worker", "--once")  # waits out two backoffs: about 15 s
    assert worker.returncode == 1, worker.stdout + worker.stderr
    assert worker.stdout.strip().endswith(
        ": 0 messages sent, 2 not sent because the gateway could not be reached (to be tried again), "
        "1 not sent because the blast was paused"), worker.stdout
    assert "refused" not in worker.stdout
    [paused] = [line for line in worker.stderr.splitlines() if line.startswith("blast 1 ")]
    assert "is paused" in paused and "Could not reach WSAPME" in paused
    assert paused.count("paused") == 1 and paused.lower().count("resume") == 1, "said once each"


@pytest.mark.parametrize(("outcomes", "unreached", "said"), [
    ({"accepted": 3}, {}, "3 messages sent"),
    ({"accepted": 1, "failed": 1, "retrying": 2}, {},
     "1 messages sent, 3 refused by the gateway, 2 to be tried again"),
    ({"retrying": 3, "held": 1}, {"retrying": 2, "held": 1},
     "0 messages sent, 1 refused by the gateway, 1 to be tried again, 2 not sent because the gateway could "
     "not be reached (to be tried again), 1 not sent because the blast was paused"),
    ({"failed": 1, "retrying": 1}, {"retrying": 1},
     "0 messages sent, 1 refused by the gateway, 1 not sent because the gateway could not be reached (to be "
     "tried again)"),
])
def test_the_last_line_says_refused_only_of_what_the_gateway_answered(
    outcomes: dict[str, int], unreached: dict[str, int], said: str
) -> None:
    assert _summary(Counter(outcomes), unreached=Counter(unreached)) == said
