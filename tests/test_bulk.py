"""Many rows in one statement (`core.bulk`) store what row-by-row ORM writes would, on both
databases: aware timestamps, JSON, NULLs and text with quotes come back as they went in."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select

from core import bulk
from core.db import transaction
from core.models import BlastRecipient, StatusHistory
from tests.support.factories import make_blast, make_recipient

KL = dt.timezone(dt.timedelta(hours=8))
_RECIPIENTS = BlastRecipient.__table__
_HISTORY = StatusHistory.__table__


def _recipients(engine: Engine, n: int) -> list[int]:
    with transaction(engine) as s:
        blast = make_blast(s)
        return [make_recipient(s, blast).id for _ in range(n)]


def test_update_rows_sets_each_rows_own_values_and_the_shared_ones(engine: Engine) -> None:
    ids = _recipients(engine, 4)
    sent = dt.datetime(2026, 3, 2, 9, 30, tzinfo=KL)
    rows = [
        {"id": ids[0], "status": "SERVER_ACK", "error": None, "sent_at": sent},
        {"id": ids[1], "status": "FAILED", "error": "it's \"blocked\"; -- really", "sent_at": None},
        {"id": ids[2], "status": "READ_ACK", "error": "", "sent_at": sent + dt.timedelta(seconds=1)},
    ]
    now = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    with transaction(engine) as s:
        bulk.update_rows(s.connection(), _RECIPIENTS, key="id", columns=("status", "error", "sent_at"),
                         rows=rows, same={"updated_at": now})
        bulk.update_rows(s.connection(), _RECIPIENTS, key="id", columns=("status",), rows=[])

    with transaction(engine) as s:
        found = {r.id: r for r in s.scalars(select(BlastRecipient))}
    for row in rows:
        got = found[row["id"]]
        assert (got.status, got.error, got.sent_at) == (row["status"], row["error"], row["sent_at"])
        assert got.updated_at == now
    untouched = found[ids[3]]
    assert untouched.status == "QUEUED" and untouched.updated_at != now


def test_insert_rows_stores_json_and_nulls(engine: Engine) -> None:
    ids = _recipients(engine, 2)
    at = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    rows = [
        {"recipient_id": ids[0], "old_status": "QUEUED", "new_status": "SERVER_ACK", "changed_at": at,
         "source": "webhook", "metadata": {"event": "message.ack", "data": {"id": "ABC", "n": [1, 2]}}},
        {"recipient_id": ids[1], "old_status": None, "new_status": "FAILED", "changed_at": at,
         "source": "worker", "metadata": None},
    ]
    columns = ("recipient_id", "old_status", "new_status", "changed_at", "source", "metadata")
    with transaction(engine) as s:
        bulk.insert_rows(s.connection(), _HISTORY, columns=columns, rows=rows)
        bulk.insert_rows(s.connection(), _HISTORY, columns=columns, rows=[])

    with transaction(engine) as s:
        stored = s.execute(select(*(_HISTORY.c[c] for c in columns)).order_by(_HISTORY.c.recipient_id))
        assert [dict(r) for r in stored.mappings()] == rows


def test_one_of_matches_the_listed_values_only(engine: Engine) -> None:
    ids = _recipients(engine, 5)
    chosen = [ids[1], ids[3], 10**9]
    with transaction(engine) as s:
        connection = s.connection()
        found = connection.execute(
            select(_RECIPIENTS.c.id).where(bulk.one_of(_RECIPIENTS.c.id, chosen, connection.dialect))
        ).scalars().all()
    assert sorted(found) == [ids[1], ids[3]]
