"""The dashboard's access to core: one engine per process, cached query results."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import streamlit as st
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.config import Settings, get_settings
from core.db import engine_for, migrate, transaction
from core.db import reading as read_transaction


@st.cache_resource(show_spinner=False)
def get_engine() -> Engine:
    """The process's engine, on a migrated database (pages can run before the server's startup)."""
    engine = engine_for(get_settings().sqlalchemy_url)
    migrate(engine)
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
