"""Test messages sent to the team's own phone, remembered by their message id: their receipts
are then known as a test's, rather than waited for an hour as a blast's message whose send
was not saved yet, and then set aside as if something had gone wrong."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import app_state, bulk
from core.models import AppState

_PREFIX = "test_send:"


def remember(session: Session, *, message_id: str, to: str, at: dt.datetime) -> None:
    app_state.put(session, key=_PREFIX + message_id, value={"to": to, "at": at.isoformat()})


def among(session: Session, message_ids: Collection[str]) -> set[str]:
    """Those of `message_ids` that are test messages."""
    if not message_ids:
        return set()
    keys = [_PREFIX + message_id for message_id in message_ids]
    dialect = session.get_bind().dialect
    found = session.scalars(select(AppState.key).where(bulk.one_of(AppState.key, keys, dialect)))
    return {key.removeprefix(_PREFIX) for key in found}


# How long after a test message the number it went to is taken to be answering it. Short: the
# test may go to a colleague who is also a lead, whose own messages must not be hidden for long.
ANSWER_WINDOW = dt.timedelta(hours=2)


def answered_by(session: Session, *, phone: str, at: dt.datetime) -> bool:
    """Whether a message from `phone` at `at` answers a test sent to that number shortly
    before (ANSWER_WINDOW, give or take a clock's skew): the team writing back to their own
    test without quoting it. No blast explains it, and no customer wrote it."""
    window, skew = ANSWER_WINDOW, dt.timedelta(minutes=2)
    for _, value, _ in app_state.with_prefix(session, prefix=_PREFIX, since=at - window - skew):
        try:
            sent = dt.datetime.fromisoformat(value["at"])
        except (KeyError, TypeError, ValueError):
            continue
        if value.get("to") == phone and at - window - skew <= sent <= at + skew:
            return True
    return False
