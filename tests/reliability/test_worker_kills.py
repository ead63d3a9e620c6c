"""Send workers killed with SIGKILL at random points of a blast: nobody is sent twice, and
everyone ends sent, failed or unknown.

Two `python -m core worker` processes share the blast on PostgreSQL. Half the kills land
while the victim's request is at the gateway (the simulator holds that one answer back),
the other half wherever the victim happens to be. A replacement starts after each kill.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.models import BlastRecipient
from core.simulator import Simulator
from tests.reliability.support import (
    FINAL,
    SENT,
    WorkerProcess,
    blast_row,
    history,
    kill,
    recipients,
    start_worker,
    stop,
    wait_until,
    worker_env,
)
from tests.sending.support import launched_blast
from tests.support.simulator import running_simulator

pytestmark = [pytest.mark.fault, pytest.mark.slow]

BLAST_SIZE = 250
KILLS = 6
SEED = 20261125  # fixed: a failure replays with the same kill points


def test_killed_workers_never_send_twice_and_leave_no_one_in_between(
    fault_db_url: str, fault_engine: Engine, tmp_path: Path, figures: dict[str, object]
) -> None:
    rng = random.Random(SEED)
    with running_simulator(seed=SEED) as sim:
        blast_id = launched_blast(fault_engine, BLAST_SIZE)
        env = worker_env(fault_db_url, sim.url)
        workers = [start_worker(env, tmp_path) for _ in range(2)]
        held: list[str] = []  # numbers whose request was at the gateway when its worker died
        everyone: list[WorkerProcess] = list(workers)
        for k in range(KILLS):
            target = min(len(sim.sent_messages()) + rng.randint(8, 30), BLAST_SIZE - 60)
            wait_until(lambda t=target: len(sim.sent_messages()) >= t, timeout=60,
                       what=f"{target} sends before kill {k + 1}")
            victim = _kill_mid_request(fault_engine, sim, workers, held) if k % 2 == 0 else None
            if victim is None:
                victim = rng.choice(workers)
                kill(victim)
            workers.remove(victim)
            replacement = start_worker(env, tmp_path)
            workers.append(replacement)
            everyone.append(replacement)
        wait_until(lambda: blast_row(fault_engine, blast_id).state == "completed", timeout=90,
                   what="the survivors to finish the blast")
        codes = [stop(w) for w in workers]
        rows = recipients(fault_engine, blast_id)
        sent_by_gateway = {m.to: m for m in sim.sent_messages()}

    assert codes == [0] * len(workers), [w.output()[-2000:] for w in workers]
    by_phone = {r.phone_number: r for r in rows}
    assert len(by_phone) == BLAST_SIZE
    assert {r.status for r in rows} <= FINAL, "no one is left queued or half-sent"
    for row in rows:
        count = sim.sent_count(row.phone_number)
        assert count <= 1, f"{row.phone_number} was sent {count} times"
        assert row.attempts == 1, "a claimed recipient is never claimed again"
        if row.status in SENT:
            assert count == 1
            assert sent_by_gateway[row.phone_number.lstrip("+")].message_id == row.message_id
    unknown = [r for r in rows if r.status == "UNKNOWN"]
    assert len(unknown) <= KILLS, "a worker has one message in flight at most"
    for phone in held:
        # The gateway took it, the answer died with the worker: unknown, never re-sent.
        assert by_phone[phone].status == "UNKNOWN" and sim.sent_count(phone) == 1
        assert "not sent again" in by_phone[phone].error
    changes = history(fault_engine)
    assert all(len([c for c in changes[r.id] if c[2] == "send"]) == 1 for r in rows)
    logs = "\n".join(w.output() for w in everyone)
    assert "marked unknown" in logs and "Traceback" not in logs
    figures.update(recipients=BLAST_SIZE, kills=KILLS, killed_mid_request=len(held),
                   unknown=len(unknown), sent_once=sum(r.status in SENT for r in rows),
                   gateway_sends=len(sent_by_gateway))


def _kill_mid_request(
    engine: Engine, sim: Simulator, workers: list[WorkerProcess], held: list[str]
) -> WorkerProcess | None:
    """Hold the gateway's next answer, and kill the worker waiting for it.

    None when the held message's worker could not be found still waiting (its answer
    got stored first): the caller then kills a worker at random instead.
    """
    seen = {m.message_id for m in sim.sent_messages() if m.answer == "slow_answer"}
    sim.set_fault("slow_answer", times=1, delay=3.0)
    wait_until(lambda: any(m.answer == "slow_answer" and m.message_id not in seen
                           for m in sim.sent_messages()), timeout=30, what="a held answer")
    message = next(m for m in sim.sent_messages() if m.answer == "slow_answer" and m.message_id not in seen)
    phone = "+" + message.to
    with transaction(engine) as s:
        claimed_by, status = s.execute(select(BlastRecipient.claimed_by, BlastRecipient.status)
                                       .where(BlastRecipient.phone_number == phone)).one()
    pid = int(claimed_by.split(":")[1]) if claimed_by else None
    victim = next((w for w in workers if w.pid == pid), None)
    if victim is None or status != "SENDING":
        return None
    kill(victim)
    held.append(phone)
    return victim
