"""Benchmark: webhook ingestion through the real HTTP endpoint on PostgreSQL, against plain updates.

A uvicorn process serves the webhook route on the benchmark database; several senders post
delivery acks at once (each moves one recipient SERVER_ACK → DELIVERY_ACK: stored raw,
parsed, applied through the status engine, recorded in history). The endpoint answers once
a body is stored and applies it a moment later, so a round counts until every ack has been
applied: that is the rate it can sustain. The physical reference is
the same number of single-row UPDATEs by message id from pgbench with as many clients, on
the same server, with triggers off: what the table itself can take. Two more yardsticks
show where the rest goes: the same UPDATEs sent by Python threads, and posts to a route
that does nothing (the HTTP layer alone).

Each round runs every variant of the rollup triggers on a fresh blast of its own:
"no rollups" (triggers disabled: the schema before migrations 0002 and 0004), "delta
rows" (as shipped), "counts in place" (the design not chosen: the trigger updates the count rows
directly, so concurrent acks of one blast queue on the same rows).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

import psycopg
from sqlalchemy import Engine, text

from bench.common import empty_inbox, table
from bench.webhook_app import NOOP_PATH
from core.config import PROJECT_ROOT
from core.db import transaction
from core.funnel import fold_rollup_deltas

SECRET = "bench-webhook-secret-0123456789abcdef"
VARIANTS = ("no rollups", "delta rows", "counts in place")
REFERENCE = "single-row UPDATE (pgbench)"
PYTHON_LOOP = "single-row UPDATE (Python loop)"
HTTP_ONLY = "HTTP only, no database"
STORE_ONLY = "webhook, stored only (never applied)"
MIGRATION = PROJECT_ROOT / "core" / "migrations" / "versions" / "0019_update_deltas_by_statement.py"

# The statement's net moves added to the counts themselves, where the shipped trigger appends
# them as delta rows for the next fold.
COUNTS_IN_PLACE = """
CREATE OR REPLACE FUNCTION blast_status_journal_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO blast_status_counts (blast_id, status, recipients)
    {net_moves}
    ON CONFLICT (blast_id, status)
    DO UPDATE SET recipients = blast_status_counts.recipients + excluded.recipients;
    RETURN NULL;
END $$
"""

UPDATE_SQL = """UPDATE blast_recipients SET status = 'DELIVERY_ACK', delivered_at = now(),
  message_c2s_timestamp = extract(epoch from now())::bigint, updated_at = now()
WHERE message_id = {message_id}"""
PGBENCH_SCRIPT = "\\set i random(1, {pool})\n" + UPDATE_SQL + ";\n"


@dataclass(frozen=True)
class Load:
    events: int = 2000
    senders: int = 8
    rounds: int = 3


# --- the server and the senders --------------------------------------------------------------


@contextlib.contextmanager
def webhook_server(db_url: str, *, store_only: bool = False) -> Iterator[str]:
    """`uvicorn bench.webhook_app:app` in its own process; yields the webhook URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": db_url, "WEBHOOK_SECRET": SECRET, "RUN_WORKER": "false"}
    if store_only:
        env["BENCH_WEBHOOK_STORE_ONLY"] = "1"
    command = [sys.executable, "-m", "uvicorn", "bench.webhook_app:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/webhooks/wsapme/{SECRET}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_for_port(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the webhook server exited at start")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError("the webhook server did not start within 60 s")


def ack_bodies(prefix: str, n: int) -> list[bytes]:
    now = int(time.time())
    return [json.dumps({"event": "message-ack", "data": {
        "id": f"{prefix}{i:08d}", "status": "DELIVERY_ACK", "timestamp": now}}).encode()
        for i in range(1, n + 1)]


def post_all(url: str, bodies: list[bytes], *, senders: int) -> tuple[float, Counter[int]]:
    """Post every body, `senders` keep-alive connections at once; seconds taken and codes.

    Plain asyncio streams with the requests written out beforehand: the senders share the
    machine with the server and the database, so they should take as little of it as
    pgbench takes from its own clients.
    """
    return asyncio.run(_post_all(urlsplit(url), bodies, senders=senders))


async def _post_all(parts: SplitResult, bodies: list[bytes], *, senders: int) -> tuple[float, Counter[int]]:
    codes: Counter[int] = Counter()
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()

    async def send(share: list[bytes]) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for body in share:
                writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
                answer = await reader.readuntil(b"\r\n\r\n")
                length = _CONTENT_LENGTH_RE.search(answer)
                await reader.readexactly(int(length.group(1)) if length else 0)
                codes[int(answer[9:12])] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(send(bodies[k::senders]) for k in range(senders)))
    return time.perf_counter() - start, codes


_CONTENT_LENGTH_RE = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


# --- the blasts the events are for -----------------------------------------------------------


def bench_blast(engine: Engine, *, prefix: str, n: int) -> int:
    """A completed blast of `n` recipients at SERVER_ACK with message ids prefix00000001…"""
    with transaction(engine) as s:
        blast_id = s.scalar(text(
            "INSERT INTO blasts (blast_tag, follow_up_stage, name, state, total_recipients) "
            "VALUES ('bench-webhook', 'Initial', :name, 'completed', :n) RETURNING id"
        ), {"name": prefix, "n": n})
        s.execute(text(
            "INSERT INTO blast_recipients (blast_id, phone_number, message_id, status, sent_at) "
            "SELECT :blast, '+6019' || lpad(i::text, 8, '0'), :prefix || lpad(i::text, 8, '0'), "
            "'SERVER_ACK', now() FROM generate_series(1, :n) AS i"
        ), {"blast": blast_id, "prefix": prefix, "n": n})
    return blast_id


def moved(engine: Engine, blast_id: int) -> int:
    with transaction(engine) as s:
        return s.scalar(text("SELECT count(*) FROM blast_recipients WHERE blast_id = :b "
                             "AND status = 'DELIVERY_ACK'"), {"b": blast_id})


def remove_bench_rows(engine: Engine) -> None:
    """Delete the benchmark's blasts (their rollups go with them) and inbox entries."""
    with transaction(engine) as s:
        s.execute(text("DELETE FROM blasts WHERE blast_tag = 'bench-webhook'"))
        empty_inbox(s)
        fold_rollup_deltas(s)


# --- trigger variants ------------------------------------------------------------------------


def _update_function(variant: str) -> str:
    """The status trigger's function for `variant`: the shipped one, or counts in place."""
    spec = importlib.util.spec_from_file_location("rollup_migration", MIGRATION)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    if variant == "counts in place":
        return COUNTS_IN_PLACE.format(net_moves=module.NET_MOVES)
    return module.STATUS_FUNCTION


def use_variant(engine: Engine, variant: str) -> None:
    """Switch the rollup triggers to `variant` (folding first, so counts start exact)."""
    with transaction(engine) as s:
        fold_rollup_deltas(s)
        enable = "DISABLE" if variant == "no rollups" else "ENABLE"
        s.execute(text(f"ALTER TABLE blast_recipients {enable} TRIGGER USER"))
        s.execute(text(_update_function(variant)))


# --- the physical reference ------------------------------------------------------------------


def pgbench_rate(  # type: ignore[no-untyped-def]
    server, database: str, *, prefix: str, pool: int, updates: int, clients: int
) -> float:
    """Single-row UPDATEs per second from pgbench, triggers off (session_replication_role)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPT.format(pool=pool, message_id=f"'{prefix}' || lpad(:i::text, 8, '0')"))
    env = {**os.environ, "PGOPTIONS": "-c session_replication_role=replica"}
    command = [str(server.bin / "pgbench"), "-n", "-h", "127.0.0.1", "-p", str(server.port),
               "-U", "postgres", "-c", str(clients), "-j", "2", "-t", str(max(1, updates // clients)),
               "-f", script.name, database]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=True)
    finally:
        Path(script.name).unlink(missing_ok=True)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    if match is None:
        raise RuntimeError(f"pgbench printed no rate:\n{result.stdout}\n{result.stderr}")
    return float(match.group(1))


def python_update_rate(url: str, *, prefix: str, pool: int, updates: int, clients: int) -> float:
    """The same UPDATEs from as many Python threads (psycopg, autocommit, triggers off): what
    a Python process can send, before any web framework or ORM."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    statement = UPDATE_SQL.format(message_id="%s")
    share = max(1, updates // clients)

    def run(seed: int) -> None:
        with psycopg.connect(dsn, autocommit=True, options="-c session_replication_role=replica") as conn:
            for k in range(share):
                conn.execute(statement, (f"{prefix}{(seed * share + k) % pool + 1:08d}",))

    threads = [threading.Thread(target=run, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return share * clients / (time.perf_counter() - start)


# --- the run ---------------------------------------------------------------------------------


def measure(engine: Engine, server, database: str, *, load: Load) -> dict:  # type: ignore[no-untyped-def]
    """Rates (events per second) of each variant and of the reference, medians over rounds."""
    use_variant(engine, "delta rows")  # as shipped, whatever a killed run left behind
    remove_bench_rows(engine)
    rates: dict[str, list[float]] = {
        name: [] for name in (*VARIANTS, STORE_ONLY, REFERENCE, PYTHON_LOOP, HTTP_ONLY)
    }
    answered: dict[str, list[float]] = {name: [] for name in VARIANTS}
    url = engine.url.render_as_string(hide_password=False)
    try:
        with webhook_server(url) as endpoint:
            post_all(endpoint, ack_bodies("BENCHWARM", 50), senders=load.senders)  # warm the pool
            for round_ in range(load.rounds):
                for variant in VARIANTS:
                    answered_rate, applied_rate = _one_round(engine, endpoint, variant, round_, load)
                    rates[variant].append(applied_rate)
                    answered[variant].append(answered_rate)
                for name, rate in _references(engine, server, database, endpoint, round_, load).items():
                    rates[name].append(rate)
        with webhook_server(url, store_only=True) as endpoint:  # what storing alone costs
            post_all(endpoint, ack_bodies("BENCHWARM", 50), senders=load.senders)
            for round_ in range(load.rounds):
                bodies = ack_bodies(f"BENCHSTORE{round_}X", load.events)
                seconds, codes = post_all(endpoint, bodies, senders=load.senders)
                assert codes == {200: load.events}, f"stored only: answers {dict(codes)}"
                rates[STORE_ONLY].append(load.events / seconds)
    finally:
        use_variant(engine, "delta rows")
        remove_bench_rows(engine)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    # Each round's rate against that round's pgbench: how far the machine's drift moves a ratio.
    per_round = {name: [rate / reference for rate, reference in zip(values, rates[REFERENCE], strict=True)]
                 for name, values in rates.items()}
    return {"events": load.events, "senders": load.senders, "rounds": load.rounds,
            "rates": medians, "samples": rates,
            "ratio_spread": {name: (min(r), max(r)) for name, r in per_round.items()},
            "answered": {name: statistics.median(values) for name, values in answered.items()},
            "ratio_to_reference": {name: rate / medians[REFERENCE] for name, rate in medians.items()}}


def _references(  # type: ignore[no-untyped-def]
    engine: Engine, server, database: str, endpoint: str, round_: int, load: Load
) -> dict[str, float]:
    """The same number of plain UPDATEs from pgbench and from Python threads, and of posts
    to an endpoint that does nothing, all with as many clients as there are senders."""
    prefix = f"BENCHREF{round_}X"
    pool = load.events * 10  # random ids seldom hit the same row twice
    bench_blast(engine, prefix=prefix, n=pool)
    url = engine.url.render_as_string(hide_password=False)
    noop = urlsplit(endpoint)._replace(path=NOOP_PATH).geturl()
    seconds, codes = post_all(noop, ack_bodies(prefix, load.events), senders=load.senders)
    assert codes == {200: load.events}, f"the empty endpoint answered {dict(codes)}"
    return {
        REFERENCE: pgbench_rate(server, database, prefix=prefix, pool=pool, updates=load.events,
                                clients=load.senders),
        PYTHON_LOOP: python_update_rate(url, prefix=prefix, pool=pool, updates=load.events,
                                        clients=load.senders),
        HTTP_ONLY: load.events / seconds,
    }


def _one_round(engine: Engine, endpoint: str, variant: str, round_: int, load: Load) -> tuple[float, float]:
    """Events per second: answered (stored), and applied (the sustained rate)."""
    prefix = f"BENCH{VARIANTS.index(variant)}R{round_}X"
    use_variant(engine, variant)
    blast_id = bench_blast(engine, prefix=prefix, n=load.events)
    start = time.perf_counter()
    seconds, codes = post_all(endpoint, ack_bodies(prefix, load.events), senders=load.senders)
    assert codes == {200: load.events}, f"{variant}: answers {dict(codes)}"
    deadline = time.monotonic() + 120
    while moved(engine, blast_id) < load.events:
        assert time.monotonic() < deadline, f"{variant}: not every ack was applied within 2 min"
        time.sleep(0.01)
    return load.events / seconds, load.events / (time.perf_counter() - start)


def report(result: dict) -> str:
    reference = result["rates"][REFERENCE]
    answered = result.get("answered", {})
    spread = result.get("ratio_spread", {})
    rows = [[name, f"{rate:,.0f}/s", f"{rate / reference:.3f}",
             f"{spread[name][0]:.2f}–{spread[name][1]:.2f}" if name in spread and name != REFERENCE else "",
             f"{answered[name]:,.0f}/s" if name in answered else ""]
            for name, rate in result["rates"].items()]
    head = (f"{result['events']:,} acks per round, {result['senders']} concurrent senders, "
            f"median of {result['rounds']} rounds; a webhook's rate counts until every ack is "
            "applied, \"answered\" until the last 200; \"by round\": the lowest and highest of "
            "each round's rate against the same round's pgbench (stored only: its rounds come "
            "after the others, beside theirs by number)")
    return head + "\n" + table(rows, ["ingestion", "rate", "of reference", "by round", "answered"])
