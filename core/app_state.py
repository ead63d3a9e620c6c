"""Small values the app keeps in the database: heartbeats and states that every process can read."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.models import AppState, utcnow


def put(session: Session, *, key: str, value: dict[str, Any]) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    text = json.dumps(value, default=str)
    now = utcnow()
    statement = dialect.insert(AppState).values(key=key, value=text, updated_at=now)
    session.execute(
        statement.on_conflict_do_update(index_elements=["key"], set_={"value": text, "updated_at": now})
    )


def forget(session: Session, *, key: str) -> None:
    session.execute(delete(AppState).where(AppState.key == key))


def get(session: Session, *, key: str) -> tuple[dict[str, Any], dt.datetime] | None:
    row = session.execute(
        select(AppState.value, AppState.updated_at).where(AppState.key == key)
    ).one_or_none()
    if row is None or not row.value:
        return None
    try:
        return json.loads(row.value), row.updated_at
    except ValueError:
        return None


def with_prefix(
    session: Session, *, prefix: str, since: dt.datetime
) -> list[tuple[str, dict[str, Any], dt.datetime]]:
    rows = session.execute(
        select(AppState.key, AppState.value, AppState.updated_at)
        .where(AppState.key.startswith(prefix, autoescape=True), AppState.updated_at >= since)
        .order_by(AppState.key)
    ).all()
    found = []
    for key, value, updated_at in rows:
        try:
            found.append((key, json.loads(value or "{}"), updated_at))
        except ValueError:
            continue
    return found
