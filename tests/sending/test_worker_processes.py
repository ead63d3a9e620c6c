"""Worker processes: killed mid-blast (SIGKILL) and four at once on one PostgreSQL database."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time

import pytest
from sqlalchemy import Engine

from core.config import PROJECT_ROOT
from tests.reliability.support import worker_env
from tests.sending.support import blast_state, launched_blast, phone, statuses
from tests.support.simulator import running_simulator

pytestmark = pytest.mark.slow


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "worker", *args], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_sends(sim, count: int, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while len(sim.sent_messages()) < count:
        assert time.monotonic() < deadline, "the worker did not send in time"
        time.sleep(0.01)


def test_a_killed_worker_never_causes_a_double_send(engine: Engine, db_url: str) -> None:
    with running_simulator() as sim:
        blast_id = launched_blast(engine, 120)
        # One worker at a time: a short lease cannot be taken for another's.
        env = worker_env(db_url, sim.url, WSAPME_READ_TIMEOUT="2", SEND_MIN_GAP_SECONDS="0.05",
                         SEND_LEASE_SECONDS="2")
        for kill_after in (15, 50):  # two kills at different points of the blast
            victim = start_worker(env)
            wait_for_sends(sim, kill_after)
            victim.send_signal(signal.SIGKILL)
            victim.wait(10)
        time.sleep(2.5)  # let a lease the victim held run out
        survivor = start_worker(env, "--once")
        output, _ = survivor.communicate(timeout=120)
        assert survivor.returncode == 0, output
        result = statuses(engine, blast_id)
        assert set(result.values()) <= {"PENDING", "SERVER_ACK", "UNKNOWN"}, result
        assert list(result.values()).count("UNKNOWN") <= 2
        for number, status in result.items():
            count = sim.sent_count(number.lstrip("+"))
            assert count <= 1, f"{number} was sent {count} times"
            if status != "UNKNOWN":
                assert count == 1
        assert blast_state(engine, blast_id)[0] == "completed"


@pytest.mark.postgres_only
def test_four_workers_share_a_blast_and_its_pacing(engine: Engine, db_url: str) -> None:
    gap = 0.05
    with running_simulator() as sim:
        blast_id = launched_blast(engine, 160)
        env = worker_env(db_url, sim.url, SEND_MIN_GAP_SECONDS=str(gap))
        workers = [start_worker(env, "--once") for _ in range(4)]
        outputs = [w.communicate(timeout=180)[0] for w in workers]
        assert all(w.returncode == 0 for w in workers), outputs
        sent_by = [int(o.rsplit(":", 1)[-1].split()[0]) for o in outputs if "messages sent" in o]
        assert sum(sent_by) == 160 and sum(1 for n in sent_by if n > 0) >= 2, sent_by
        assert all(sim.sent_count(phone(i).lstrip("+")) == 1 for i in range(160))
        assert set(statuses(engine, blast_id).values()) <= {"PENDING", "SERVER_ACK"}
        times = sorted(m.sent_at for m in sim.sent_messages())
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert statistics.median(gaps) >= gap * 0.9
        assert times[-1] - times[0] >= 159 * gap * 0.9, "pacing is per device, across all workers"
