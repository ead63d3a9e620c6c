"""Benchmark: the send worker's own cost per message, and pacing's achieved rate.

Run: `python -m bench.bench_worker [--messages 1000] [--rounds 3]`. Pacing off, the simulator
answering at once over loopback HTTP: the time not spent waiting for the gateway is the
worker's overhead (claiming, pacing, storing the answer and its history).
"""

from __future__ import annotations

import argparse
import statistics
import time

from sqlalchemy import Engine

from bench.common import databases, table
from core.config import Settings
from core.sending.worker import SendWorker
from tests.sending.support import launched_blast
from tests.support.simulator import TEST_TOKEN, client_for, running_simulator


class TimedClient:
    """Counts the time spent inside gateway calls, to subtract it from the worker's time."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self.client, self.seconds = client, 0.0

    def send_text(self, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return self.client.send_text(**kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def overhead(engine: Engine, sim, messages: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    launched_blast(engine, messages)
    client = TimedClient(client_for(sim))
    settings = Settings(_env_file=None, send_pacing="off", wsapme_device="5850", wsapme_token=TEST_TOKEN)
    worker = SendWorker(engine=engine, client=client, settings=settings)
    start = time.perf_counter()
    sent = worker.run(once=True)
    total = time.perf_counter() - start
    assert sent == messages, f"sent {sent} of {messages}"
    return total / messages, (total - client.seconds) / messages


def paced_rate(engine: Engine, sim, messages: int, gap: float) -> float:  # type: ignore[no-untyped-def]
    launched_blast(engine, messages, device="paced")
    settings = Settings(_env_file=None, send_pacing="on", wsapme_device="paced", wsapme_token=TEST_TOKEN,
                        send_min_gap_seconds=gap,
                        send_jitter_seconds=0, send_pause_every=0, send_daily_cap=0, send_quiet_hours="off")
    before = len(sim.sent_messages())
    SendWorker(engine=engine, client=client_for(sim), settings=settings).run(once=True)
    times = sorted(m.sent_at for m in sim.sent_messages()[before:])
    return (len(times) - 1) / (times[-1] - times[0])


def run(*, messages: int = 1000, rounds: int = 3, paced: int = 40, gap: float = 0.1) -> list[dict]:
    """Each database's overhead per message (median of `rounds`, the databases taking turns)
    and achieved paced rate."""
    samples: dict[str, list[tuple[float, float]]] = {}
    with databases(name="bench_worker") as engines, running_simulator(mode="fast") as sim:
        for _ in range(rounds):
            for kind, engine in engines.items():
                samples.setdefault(kind, []).append(overhead(engine, sim, messages))
        rates = {kind: paced_rate(engine, sim, paced, gap) for kind, engine in engines.items()}
    return [
        {"database": kind, "messages": messages, "rounds": rounds,
         "per_message_ms": 1000 * statistics.median(total for total, _ in runs),
         "overhead_ms": 1000 * statistics.median(own for _, own in runs),
         "overhead_samples_ms": [1000 * own for _, own in runs],
         "paced_rate": rates[kind], "configured_rate": 1 / gap}
        for kind, runs in samples.items()
    ]


def report(results: list[dict]) -> str:
    rows = [[r["database"], f"{r['per_message_ms']:.2f} ms", f"{r['overhead_ms']:.2f} ms",
             f"{r['paced_rate']:.2f}/s", f"{r['configured_rate']:.2f}/s",
             f"{r['paced_rate'] / r['configured_rate']:.3f}"] for r in results]
    first = results[0]
    head = (f"Send worker, {first['messages']} messages, pacing off, simulator on loopback, "
            f"median of {first['rounds']} rounds:")
    return head + "\n" + table(rows, ["database", "per message", "worker's own", "paced rate", "configured",
                                      "ratio"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paced", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0.1)
    args = parser.parse_args()
    print(report(run(messages=args.messages, rounds=args.rounds, paced=args.paced, gap=args.gap)))


if __name__ == "__main__":
    main()
