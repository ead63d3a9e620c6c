"""Benchmark: our funnel queries (per-blast rollups) against the plan's queries on the same blasts.

For each filter (all time, last 30 days, one tag, one blast) and each question (the funnel's
totals, per-blast metrics, recipients stuck at each stage), both sides answer over the same
filtered set, alternately, on the same database. Before timing, ours is checked against a
recount of the raw rows and against the plan's per-status counts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event, func, select

from bench.common import interleaved, table
from bench.plan_queries import plan_blast_metrics, plan_stuck, recount
from core import rollup_cache
from core.db import reading, transaction
from core.funnel import FunnelFilter, funnel, funnel_by_blast, status_counts, stuck_at_each_stage
from core.models import Blast
from core.statuses import Stage

KL = "Asia/Kuala_Lumpur"
WARMUP = 1  # untimed rounds before the timed ones (`interleaved`)
Query = Callable[..., object]


@dataclass(frozen=True)
class Scenario:
    name: str
    filters: FunnelFilter
    detail: str


def scenarios(engine: Engine) -> list[Scenario]:
    """The four filters, chosen from the data so every scale has them: the last 30 days of
    blasts, a typical tag (median number of blasts), a typical blast (median size)."""
    with transaction(engine) as s:
        last = s.scalar(select(func.max(Blast.blast_date)))
        tags = s.execute(select(Blast.blast_tag, func.count()).group_by(Blast.blast_tag)
                         .order_by(func.count(), Blast.blast_tag)).all()
        sizes = s.execute(select(Blast.id, Blast.total_recipients).where(Blast.state == "completed")
                          .order_by(Blast.total_recipients, Blast.id)).all()
    end = last.astimezone(ZoneInfo(KL)).date()
    start = end - dt.timedelta(days=29)
    tag, tag_blasts = tags[len(tags) // 2]
    blast_id, blast_size = sizes[len(sizes) // 2]
    return [
        Scenario("all time", FunnelFilter(timezone=KL), "every blast"),
        Scenario("last 30 days", FunnelFilter(start=start, end=end, timezone=KL), f"{start} to {end}"),
        Scenario("one tag", FunnelFilter(tags=(tag,), timezone=KL), f"{tag!r}, {tag_blasts} blasts"),
        Scenario("one blast", FunnelFilter(blast_ids=(blast_id,), timezone=KL),
                 f"#{blast_id}, {blast_size} recipients"),
    ]


def _stuck(session, filters: FunnelFilter):  # type: ignore[no-untyped-def]
    # The blast page asks for one blast's breakdown; a wider selection uses the counts.
    if len(filters.blast_ids) == 1:
        return stuck_at_each_stage(session, blast_id=filters.blast_ids[0])
    return status_counts(session, filters=filters)


# (what is asked, ours, the plan's)
QUESTIONS: tuple[tuple[str, Query, Query], ...] = (
    ("funnel", lambda s, f: funnel(s, filters=f), lambda s, f: plan_blast_metrics(s, f, per_blast=False)),
    ("per blast", lambda s, f: funnel_by_blast(s, filters=f), lambda s, f: plan_blast_metrics(s, f)),
    ("stuck", _stuck, plan_stuck),
)


def check(engine: Engine, scenario: Scenario) -> int:
    """Ours equals the recount and the plan's per-status counts; returns the recipients counted."""
    filters = scenario.filters
    with transaction(engine) as s:
        ours, expected = funnel(s, filters=filters), recount(s, filters)
        assert ours == expected, f"{scenario.name}: rollup funnel {ours} != recount {expected}"
        by_status = status_counts(s, filters=filters)
        plan = {row.status: row.count for row in plan_stuck(s, filters)}
        assert by_status == plan, f"{scenario.name}: status counts {by_status} != plan's {plan}"
        per_blast = funnel_by_blast(s, filters=filters)
        assert sum(b.funnel.total for b in per_blast) == ours.total
        assert sum(b.funnel.count(Stage.READ) for b in per_blast) == ours.read
    return ours.total


def _timed(engine: Engine, query: Query, filters: FunnelFilter) -> Callable[[], object]:
    def run() -> object:
        with reading(engine) as s:  # a page's unit of work: session, query, end
            return query(s, filters)
    return run


def _read_afresh(engine: Engine, query: Query, filters: FunnelFilter) -> Callable[[], object]:
    """Ours as the first question after the counts moved: nothing kept, the rollups read."""
    timed, watch = _timed(engine, query, filters), rollup_cache.watch(engine)

    def run() -> object:
        if watch is not None:
            watch.forget_all()
        return timed()
    return run


@contextlib.contextmanager
def _watched(engine: Engine) -> Iterator[rollup_cache.Watch | None]:
    """The dashboard's way on PostgreSQL: answers kept until a change is read from the log
    (`core.rollup_cache`), looking at the change log before the first timed call."""
    watch = rollup_cache.watch(engine)
    try:
        if watch is not None:
            with reading(engine) as s:
                funnel(s)  # starts the watch
            deadline = time.monotonic() + 30
            while not watch.trusted():
                if time.monotonic() > deadline:
                    raise RuntimeError("the funnel's change log could not be read within 30 s")
                time.sleep(0.01)
        yield watch
    finally:
        rollup_cache.unwatch(engine)


def _statements(engine: Engine, query: Query, filters: FunnelFilter) -> list[tuple[str, object]]:
    """The SQL a query sends, with its parameters, caught on the way out."""
    caught: list[tuple[str, object]] = []

    def catch(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            caught.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", catch)
    try:
        _read_afresh(engine, query, filters)()
    finally:
        event.remove(engine, "before_cursor_execute", catch)
    return caught


def _server_timed(engine: Engine, query: Query, filters: FunnelFilter) -> Callable[[], float]:
    """PostgreSQL's own execution time of the query's statements (EXPLAIN ANALYZE, timing of
    each node off): the work, without the round trips and Python every call pays for."""
    statements = _statements(engine, query, filters)

    def run() -> float:
        total = 0.0
        with engine.connect() as conn:
            for statement, parameters in statements:
                plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {statement}",
                                            parameters).scalar()
                total += plan[0]["Execution Time"] / 1000
        return total
    return run


def _server_medians(engine: Engine, pair: dict[str, Callable[[], float]], *, runs: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in pair}
    for _ in range(runs + 1):
        for name, run in pair.items():
            samples[name].append(run())
    return {name: statistics.median(values[1:]) for name, values in samples.items()}


def measure(engine: Engine, *, runs: int) -> list[dict]:
    """Each question ours and the plan's, taking turns. On PostgreSQL ours twice: read afresh
    (the first question after a change, as on SQLite) and kept (the same question again while
    nothing moved: the dashboard's reruns)."""
    with _watched(engine) as watch:
        return [row for scenario in scenarios(engine) for row in _measure(engine, scenario, watch, runs=runs)]


def _measure(engine: Engine, scenario: Scenario, watch: rollup_cache.Watch | None, *,
             runs: int) -> list[dict]:
    results = []
    recipients = check(engine, scenario)
    for question, ours, plans in QUESTIONS:
        contenders = {"ours": _read_afresh(engine, ours, scenario.filters),
                      "plan": _timed(engine, plans, scenario.filters)}
        if watch is not None:
            contenders["kept"] = _timed(engine, ours, scenario.filters)
        hits = watch.hits if watch is not None else 0
        medians = interleaved(contenders, runs=runs, warmup=WARMUP)
        row = {
            "scenario": scenario.name, "detail": scenario.detail, "question": question,
            "recipients": recipients, "ours_ms": 1000 * medians["ours"],
            "plan_ms": 1000 * medians["plan"], "ratio": medians["plan"] / medians["ours"],
        }
        if watch is not None:
            # Every timed "kept" call answered from memory (a change read would have sent one to
            # the database, which the median would hide).
            row.update(kept_ms=1000 * medians["kept"], kept_ratio=medians["plan"] / medians["kept"],
                       kept_hits=watch.hits - hits, kept_calls=runs + WARMUP)
        if engine.dialect.name == "postgresql":
            server = _server_medians(engine, {"ours": _server_timed(engine, ours, scenario.filters),
                                              "plan": _server_timed(engine, plans, scenario.filters)},
                                     runs=runs)
            row.update(server_ours_ms=1000 * server["ours"], server_plan_ms=1000 * server["plan"],
                       server_ratio=server["plan"] / server["ours"])
        results.append(row)
    return results


def server_report(results: list[dict]) -> str:
    """PostgreSQL's execution time alone, ours against the plan's."""
    rows = [[r["scenario"], r["question"], f"{r['server_ours_ms']:.3f} ms", f"{r['server_plan_ms']:.1f} ms",
             f"{r['server_ratio']:.0f}x"] for r in results]
    return table(rows, ["filter", "question", "ours", "plan", "plan/ours"])


def report(results: dict[str, list[dict]]) -> str:
    """One row per filter and question; each database's ours, plan's and ratio side by side."""
    kinds = list(results)
    kept = {kind for kind in kinds if "kept_ms" in results[kind][0]}
    headers = ["filter", "question", "recipients"]
    for kind in kinds:
        headers += [f"{kind} ours", "plan", "plan/ours"]
        if kind in kept:
            headers += ["ours kept", "plan/kept"]
    rows = []
    for i, first in enumerate(results[kinds[0]]):
        row = [first["scenario"], first["question"], f"{first['recipients']:,}"]
        for kind in kinds:
            r = results[kind][i]
            row += [f"{r['ours_ms']:.2f} ms", f"{r['plan_ms']:.1f} ms", f"{r['ratio']:.0f}x"]
            if kind in kept:
                hits, calls = r["kept_hits"], r["kept_calls"]
                missed = "" if hits == calls else f" ({hits}/{calls} kept)"
                row += [f"{r['kept_ms']:.3f} ms{missed}", f"{r['kept_ratio']:.0f}x"]
        rows.append(row)
    details = {r["scenario"]: r["detail"] for r in results[kinds[0]]}
    notes = "; ".join(f"{name}: {detail}" for name, detail in details.items())
    legend = ("\nours: read afresh from the rollups, as after any change; kept: the same question "
              "again while nothing moved, answered from memory (core.rollup_cache)" if kept else "")
    return table(rows, headers) + f"\n({notes})" + legend
