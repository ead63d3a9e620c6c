"""The dashboard's access to core: one engine per process, cached query results."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import pandas as pd
import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core import analytics, rollup_cache
from core.config import Settings, get_settings
from core.db import engine_for, migrate, transaction
from core.db import reading as read_transaction
from core.funnel import FunnelFilter

# How stale the Overview's trend, response times, answer hours and opt-outs by reply may be.
# They read every recipient row (or reply) of the selection (seconds at a million rows), while
# the page reruns on every click of its radios; the funnel, the blast table and the tag
# comparison's other counts read the rollups and stay live.
ANALYTICS_TTL_SECONDS = 60

T = TypeVar("T")


@st.cache_resource(show_spinner=False)
def get_engine() -> Engine:
    """The process's engine, on a migrated database (pages can run before the server's startup).
    On PostgreSQL its funnel answers are kept in memory until the counts move (`core.rollup_cache`)."""
    engine = engine_for(get_settings().sqlalchemy_url)
    migrate(engine)
    rollup_cache.watch(engine)
    return engine


def settings() -> Settings:
    return get_settings()


@contextlib.contextmanager
def session() -> Iterator[Session]:
    with transaction(get_engine()) as s:
        yield s


@contextlib.contextmanager
def reading() -> Iterator[Session]:
    """For page sections that only read: they never hold up sending or webhooks."""
    with read_transaction(get_engine()) as s:
        yield s


def upload_digest(upload) -> str:  # type: ignore[no-untyped-def]
    """What tells one uploaded file from another: a choice kept for a file (its columns) is
    kept under this, so it is never applied to the next file."""
    return hashlib.sha256(upload.getvalue()).hexdigest()


def on_download(export: Callable[[Session], bytes]) -> Callable[[], bytes]:
    """A download's contents, read only when it is clicked (a download button runs it on a
    thread of its own): a page rerun never builds a file that nobody asked for, and the file
    holds what the database holds at the click."""
    engine = get_engine()  # here: the download's thread has no Streamlit context

    def build() -> bytes:
        with read_transaction(engine) as s:
            return export(s)

    return build


@st.cache_data(ttl=ANALYTICS_TTL_SECONDS, max_entries=64, show_spinner=False)
def opted_out_by_reply(filters: FunnelFilter) -> dict[str | None, int]:
    """`analytics.opted_out_by_reply`, kept a minute: it reads the replies (a few tenths of a
    second at a million recipients), not a rollup."""
    with read_transaction(get_engine()) as s:
        return analytics.opted_out_by_reply(s, filters=filters)


@dataclass(frozen=True)
class RecipientAnalytics:
    """The Overview's analytics that read recipient rows rather than rollups."""

    trend: pd.DataFrame
    response_times: analytics.ResponseTimes
    activity: pd.DataFrame


@st.cache_data(
    ttl=ANALYTICS_TTL_SECONDS,
    max_entries=64,
    show_spinner="Working out the daily trend, response times and when people answer…",
)
def recipient_analytics(filters: FunnelFilter) -> RecipientAnalytics:
    """Each in its own read transaction and thread, so the database runs them side by side:
    1.6 times as fast as one after the other on two cores at a million recipients."""
    engine = get_engine()  # here: worker threads have no Streamlit context

    def compute(query: Callable[..., T]) -> T:
        with read_transaction(engine) as s:
            return query(s, filters=filters)

    with ThreadPoolExecutor(max_workers=3) as pool:
        trend = pool.submit(compute, analytics.daily_trend)
        times = pool.submit(compute, analytics.response_times)
        activity = pool.submit(compute, analytics.activity_by_hour)
        return RecipientAnalytics(trend.result(), times.result(), activity.result())
