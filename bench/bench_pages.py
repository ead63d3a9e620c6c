"""Benchmark: how long the dashboard's pages take to render on the big database.

Pages run as the app serves them (streamlit_app.py's router, `AppTest.switch_page`), with
DATABASE_URL pointing at the benchmark database and every cache cleared before each run,
so each figure is a first visit, not a cached one. Each first visit is followed by a rerun
of the same page: what a click on one of its widgets costs while cached results are fresh.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import time
from collections.abc import Iterator

import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from bench.bench_funnel import scenarios
from bench.common import median_seconds, table
from core import rollup_cache
from core.analytics import activity_by_hour, daily_trend, response_times, tag_comparison
from core.config import PROJECT_ROOT, get_settings
from core.db import engine_for, reading
from core.funnel import filter_options, funnel, funnel_by_blast

TIMEOUT_SECONDS = 300
# Environment that would change what the pages do: a login, a real gateway.
UNSET = ("DASHBOARD_PASSWORD_HASH", "WSAPME_TOKEN")


@contextlib.contextmanager
def pointed_at(db_url: str) -> Iterator[None]:
    """The dashboard's settings aimed at `db_url` for the duration; restored after."""
    saved = {key: os.environ.get(key) for key in ("DATABASE_URL", *UNSET)}
    os.environ["DATABASE_URL"] = db_url
    for key in UNSET:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _clear_caches()


def _clear_caches() -> None:
    # get_settings and engine_for are functools.cache'd, get_engine is st.cache_resource'd.
    get_settings.cache_clear()
    engine_for.cache_clear()
    rollup_cache.forget_everything()  # the funnel answers kept on PostgreSQL too
    with _quiet(*_NO_APP_WARNINGS):  # out here there is no running app, and Streamlit says so
        st.cache_resource.clear()
        st.cache_data.clear()


_NO_APP_WARNINGS = ("streamlit.runtime.caching.cache_data_api",
                    "streamlit.runtime.caching.cache_resource_api",
                    "streamlit.runtime.scriptrunner_utils.script_run_context")


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def page_cases(engine: Engine) -> list[tuple[str, str, dict[str, str]]]:
    """(label, page, query parameters): the overview under each filter, and a blast's page."""
    by_name = {s.name: s.filters for s in scenarios(engine)}
    recent, tag, blast = by_name["last 30 days"], by_name["one tag"], by_name["one blast"]
    return [
        ("overview, all time", "pages/overview.py", {}),
        ("overview, last 30 days", "pages/overview.py",
         {"from": recent.start.isoformat(), "to": recent.end.isoformat()}),  # type: ignore[union-attr]
        ("overview, one tag", "pages/overview.py", {"tag": tag.tags[0]}),
        ("blast detail", "pages/blast.py", {"blast": str(blast.blast_ids[0])}),
    ]


def render_once(page: str, query: dict[str, str]) -> tuple[float, float]:
    """Seconds for a first visit (every cache cleared) and for a rerun right after it."""
    _clear_caches()
    with _quiet(*_NO_APP_WARNINGS):  # AppTest sets its state before its app runs, and says so
        at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=TIMEOUT_SECONDS)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(page)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
        if at.exception:
            raise RuntimeError(f"{page} {query} failed: {at.exception}")
    return times[0], times[1]


def measure(engine: Engine, *, runs: int) -> list[dict]:
    url = engine.url.render_as_string(hide_password=False)
    results = []
    with pointed_at(url):
        cases = page_cases(engine)
        render_once(*cases[0][1:])  # the first run pays for imports (plotly, pandas)
        for label, page, query in cases:
            firsts, reruns = zip(*(render_once(page, query) for _ in range(runs)), strict=True)
            results.append({"page": label, "median_ms": 1000 * statistics.median(firsts),
                            "max_ms": 1000 * max(firsts),
                            "rerun_median_ms": 1000 * statistics.median(reruns)})
    return results


OVERVIEW_CALLS = (
    ("filter_options", lambda s, f: filter_options(s)),
    ("funnel_by_blast", lambda s, f: funnel_by_blast(s, filters=f)),
    ("funnel", lambda s, f: funnel(s, filters=f)),
    ("daily_trend", lambda s, f: daily_trend(s, filters=f)),
    ("activity_by_hour", lambda s, f: activity_by_hour(s, filters=f)),
    ("response_times", lambda s, f: response_times(s, filters=f)),
    ("tag_comparison", lambda s, f: tag_comparison(s, filters=f)),
)


def overview_calls(engine: Engine, *, runs: int) -> list[dict]:
    """Where an overview render's time goes: each data call it makes, all time and one tag."""
    by_name = {s.name: s.filters for s in scenarios(engine)}
    results = []
    for scenario in ("all time", "one tag"):
        for name, call in OVERVIEW_CALLS:
            def run(call=call, filters=by_name[scenario]) -> None:  # type: ignore[no-untyped-def]
                with reading(engine) as s:  # as the page reads
                    call(s, filters)
            results.append({"filter": scenario, "call": name,
                            "median_ms": 1000 * median_seconds(run, runs=runs)})
    return results


def calls_report(results: dict[str, list[dict]]) -> str:
    kinds = list(results)
    rows = [[r["filter"], r["call"]] + [f"{results[k][i]['median_ms']:,.1f} ms" for k in kinds]
            for i, r in enumerate(results[kinds[0]])]
    return table(rows, ["filter", "overview's call", *kinds])


def report(results: dict[str, list[dict]]) -> str:
    kinds = list(results)
    headers = (["page"] + [f"{kind} median" for kind in kinds] + [f"{kind} slowest" for kind in kinds]
               + [f"{kind} rerun" for kind in kinds])
    rows = []
    for i, first in enumerate(results[kinds[0]]):
        rows.append([first["page"]]
                    + [f"{results[k][i]['median_ms']:,.0f} ms" for k in kinds]
                    + [f"{results[k][i]['max_ms']:,.0f} ms" for k in kinds]
                    + [f"{results[k][i]['rerun_median_ms']:,.0f} ms" for k in kinds])
    return table(rows, headers)
