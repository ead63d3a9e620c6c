"""The benchmark's code paths at a tiny scale, so they cannot rot: results checked, never timings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from bench import __main__ as runner
from bench import bench_funnel, bench_import, bench_pages, bench_webhook, bench_worker, history, store
from bench import bench_replay as replay
from core.db import make_engine, transaction
from core.models import Blast, BlastRecipient, BlastStatusCount
from tests.support.pg_server import PostgresServer

SCALE = 2_000
END = dt.date(2026, 11, 25)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sqlite_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('bench') / 'history.db'}")
    store.build(engine, SCALE, end=END)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_history(pg_server: PostgresServer | None) -> Iterator[tuple[Engine, PostgresServer]]:
    if pg_server is None:
        pytest.skip("no PostgreSQL server of the test run's own")
    admin = create_engine(pg_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS bench_smoke"))
        conn.execute(text("CREATE DATABASE bench_smoke"))
    engine = make_engine(pg_server.url("bench_smoke"))
    store.build(engine, SCALE, end=END)
    yield engine, pg_server
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE bench_smoke WITH (FORCE)"))
    admin.dispose()


def by_status(engine: Engine) -> list[tuple[str, int]]:
    with transaction(engine) as s:
        rows = s.execute(select(BlastRecipient.status, func.count()).group_by(BlastRecipient.status))
        return sorted((status, n) for status, n in rows)


def test_the_history_is_deterministic_and_exactly_the_scale() -> None:
    one, two = history.make_blasts(SCALE, end=END), history.make_blasts(SCALE, end=END)
    assert int(one.sizes.sum()) == SCALE and list(one.sizes) == list(two.sizes)
    assert one.tags == two.tags and one.stages == two.stages
    rows = [r for batch in history.batches(one) for r in batch.recipients]
    assert len(rows) == SCALE and len({r[0] for r in rows}) == SCALE
    message_ids = [r[3] for r in rows if r[3] is not None]
    assert len(set(message_ids)) == len(message_ids)


def test_both_databases_hold_the_same_history_with_rollups(
    sqlite_history: Engine, postgres_history: tuple[Engine, PostgresServer]
) -> None:
    def summary(engine: Engine) -> tuple[object, ...]:
        with transaction(engine) as s:
            blasts = s.scalar(select(func.count()).select_from(Blast))
            counted = s.execute(select(BlastStatusCount.status, func.sum(BlastStatusCount.recipients))
                                .group_by(BlastStatusCount.status))
            rollups = sorted((status, int(n)) for status, n in counted)
        return blasts, by_status(engine), rollups

    sqlite, postgres = summary(sqlite_history), summary(postgres_history[0])
    assert sqlite == postgres
    assert sqlite[1] == [(status, n) for status, n in sqlite[2] if n]  # the backfill counted every row


def test_our_funnel_equals_the_recount_and_the_plans_counts(sqlite_history: Engine) -> None:
    results = bench_funnel.measure(sqlite_history, runs=1)  # checks before it times
    assert [r["scenario"] for r in results[::3]] == ["all time", "last 30 days", "one tag", "one blast"]
    assert results[0]["recipients"] == SCALE
    assert all(r["ours_ms"] > 0 and r["plan_ms"] > 0 for r in results)
    assert "plan/ours" in bench_funnel.report({"sqlite": results})


def test_the_funnel_benchmark_on_postgresql(postgres_history: tuple[Engine, PostgresServer]) -> None:
    results = bench_funnel.measure(postgres_history[0], runs=1)
    assert len(results) == 12 and results[0]["recipients"] == SCALE
    # Ours twice: read afresh, and kept (answered from memory; a heartbeat heard late on a busy
    # machine may send one to the database, which the report then says).
    assert all(r["kept_calls"] == 2 for r in results) and sum(r["kept_hits"] for r in results) > 0
    assert all(r["server_ours_ms"] > 0 for r in results)  # afresh: the SQL reached the server
    assert "plan/kept" in bench_funnel.report({"postgresql": results})
    targets = runner.targets({"funnel": {"postgresql": results}})
    assert any("kept" in t["value"] and "afresh" in t["value"] for t in targets)


def enabled_rollup_triggers(engine: Engine) -> int:
    """The status (0002) and hour (0004) rollups' triggers and the change notices' (0017) that
    are switched on."""
    with transaction(engine) as s:
        return s.scalar(text("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'trg_blast%' "
                             "AND tgenabled = 'O'"))


def test_webhook_ingestion_applies_every_ack_and_leaves_the_database_as_it_was(
    postgres_history: tuple[Engine, PostgresServer],
) -> None:
    engine, server = postgres_history
    before = by_status(engine)
    enabled_before = enabled_rollup_triggers(engine)
    result = bench_webhook.measure(engine, server, "bench_smoke", load=bench_webhook.Load(30, 3, 1))
    assert set(result["rates"]) == {*bench_webhook.VARIANTS, bench_webhook.STORE_ONLY,
                                    bench_webhook.REFERENCE, bench_webhook.PYTHON_LOOP,
                                    bench_webhook.HTTP_ONLY}
    assert all(rate > 0 for rate in result["rates"].values())
    low, high = result["ratio_spread"]["delta rows"]
    assert 0 < low <= result["ratio_to_reference"]["delta rows"] * 1.000001 and low <= high
    assert "by round" in bench_webhook.report(result)
    with transaction(engine) as s:
        left = s.scalar(select(func.count()).select_from(Blast).where(Blast.blast_tag == "bench-webhook"))
    assert by_status(engine) == before and left == 0
    assert enabled_before == 18 and enabled_rollup_triggers(engine) == 18, \
        "the run left a rollup trigger disabled"
    assert bench_funnel.check(engine, bench_funnel.scenarios(engine)[0]) == SCALE


def test_the_replay_benchmark_leaves_no_inbox_entry(sqlite_history: Engine) -> None:
    """Each way replays every entry it made (each still waiting), and the inbox is left empty."""
    result = replay.measure(sqlite_history, entries=30, runs=2)
    assert set(result["seconds"]) == set(replay.WAYS) and result["entries"] == 30
    assert all(len(times) == 2 for times in result["samples"].values())
    assert "30 waiting entries" in replay.report({"sqlite": result})
    with transaction(sqlite_history) as s:
        assert s.scalar(text("SELECT count(*) FROM webhook_inbox")) == 0


def test_page_renders(sqlite_history: Engine) -> None:
    renders = bench_pages.measure(sqlite_history, runs=1)
    assert [r["page"] for r in renders][0] == "overview, all time" and len(renders) == 4
    calls = bench_pages.overview_calls(sqlite_history, runs=1)
    assert {c["call"] for c in calls} >= {"funnel", "funnel_by_blast", "tag_comparison"}


def test_worker_and_import_benchmarks(tmp_path: Path) -> None:
    worker = bench_worker.run(messages=15, rounds=1, paced=4, gap=0.05)
    assert {r["database"] for r in worker} >= {"sqlite"}
    assert all(0 < r["overhead_ms"] < r["per_message_ms"] for r in worker)
    imported = bench_import.run(rows=300, runs=1, out_dir=tmp_path)
    assert sum(imported["outcomes"].values()) == 300
    report = {"worker": worker, "webhook": {"ratio_to_reference": {"delta rows": 0.1}}}
    assert [t["met"] for t in runner.targets(report)][0] is False  # the webhook's 0.1 < 0.5


def test_the_sqlite_cache_is_reused_until_a_rebuild(tmp_path: Path) -> None:
    url, first = store.cached_sqlite(300, out_dir=tmp_path)
    stamp = (tmp_path / f"{store.cache_key(300)}.db").stat().st_mtime_ns
    assert store.cached_sqlite(300, out_dir=tmp_path) == (url, first)
    assert (tmp_path / f"{store.cache_key(300)}.db").stat().st_mtime_ns == stamp
    store.cached_sqlite(300, out_dir=tmp_path, rebuild=True)
    assert (tmp_path / f"{store.cache_key(300)}.db").stat().st_mtime_ns != stamp
