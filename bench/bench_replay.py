"""Benchmark: the periodic replay of waiting webhook entries, a batch to a transaction
against one entry to a transaction, on the history's databases.

Acks of messages sent from the phone name ids no blast knows: each waits an hour (the
default wait) and is looked at again by the replay every half minute of webhook traffic.
A team that writes to a few hundred customers by hand keeps that many waiting. Each run
stores `entries` such acks, lets them be read once (they wait), then times one replay of
them each way, taking turns.
"""

from __future__ import annotations

import json
import statistics
import time

from sqlalchemy import Engine

from bench.common import empty_inbox, table
from core.db import transaction
from core.models import utcnow
from core.webhook.inbox import REPLAY_BATCH, WebhookRules, process_entries, replay_waiting, store_raw

WAYS = {"one to a transaction": 1, f"{REPLAY_BATCH} to a transaction (as shipped)": REPLAY_BATCH}
PREFIX = "BENCHREPLAY"


def waiting_entries(engine: Engine, n: int, *, tag: str) -> None:
    now = utcnow()
    with transaction(engine) as session:
        ids = [store_raw(session, content_type="application/json", now=now, body=json.dumps(
            {"event": "message-ack", "data": {"id": f"{PREFIX}{tag}X{i:05d}", "status": "READ"}}).encode())
            for i in range(n)]
    with transaction(engine) as session:
        process_entries(session, inbox_ids=ids, rules=WebhookRules())


def clear(engine: Engine) -> None:
    with transaction(engine) as session:
        empty_inbox(session)


def measure(engine: Engine, *, entries: int = 500, runs: int = 3) -> dict:
    clear(engine)
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    try:
        for run in range(runs):
            ways = list(WAYS.items())
            for way, batch in ways if run % 2 == 0 else reversed(ways):
                waiting_entries(engine, entries, tag=f"{run}{batch}")
                start = time.perf_counter()
                report = replay_waiting(engine, rules=WebhookRules(), limit=entries, batch=batch)
                seconds[way].append(time.perf_counter() - start)
                assert report.states == {"waiting": entries}, report
                clear(engine)
    finally:
        clear(engine)
    medians = {way: statistics.median(values) for way, values in seconds.items()}
    one = medians[next(iter(WAYS))]
    return {"entries": entries, "runs": runs, "seconds": medians, "samples": seconds,
            "ratio": {way: one / value for way, value in medians.items()}}


def report(results: dict[str, dict]) -> str:
    first = next(iter(results.values()))
    rows = [[kind, way, f"{r['seconds'][way] * 1000:,.0f} ms", f"{r['ratio'][way]:.1f}x"]
            for kind, r in results.items() for way in WAYS]
    return (f"One replay of {first['entries']} waiting entries, median of {first['runs']} runs:\n"
            + table(rows, ["database", "way", "replay", "faster"]))
