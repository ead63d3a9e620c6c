"""The worker's claim and settle on PostgreSQL, straight on the driver: same rows as the ORM path."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DataError, DBAPIError

from core.db import transaction
from core.models import BlastRecipient, StatusHistory
from core.sending.direct import DirectStatements
from core.statuses import Status
from tests.sending.support import launched_blast, now, phone

pytestmark = pytest.mark.postgres_only

LEASE = dt.timedelta(seconds=30)


def _settle(direct: DirectStatements, claim, **updates: object) -> bool:  # type: ignore[no-untyped-def]
    return direct.settle(claim=claim, status=Status.PENDING, at=now(), event={"answer": {"ok": True}},
                         updates={"message_id": "m-1", "wsapme_message_data": {"id": "m-1"}, **updates})


def test_a_claim_then_settle_store_the_answer_and_one_history_row(engine: Engine) -> None:
    launched_blast(engine, 2)
    direct = DirectStatements(engine)
    claim = direct.claim(device="5850", worker="w1", now=now(), lease=LEASE)
    assert claim is not None and claim.phone_number == phone(0) and claim.attempts == 1
    assert _settle(direct, claim)
    with transaction(engine) as s:
        row = s.get(BlastRecipient, claim.recipient_id)
        assert (row.status, row.message_id, row.claimed_by) == ("PENDING", "m-1", None)
        assert row.lease_expires_at is None
        assert row.wsapme_message_data == {"id": "m-1"} and row.sent_at is not None
        history = s.scalars(select(StatusHistory)).all()
        assert [(h.old_status, h.new_status, h.source, h.event) for h in history] == [
            ("SENDING", "PENDING", "send", {"answer": {"ok": True}})]


def test_a_row_that_moved_on_is_not_settled_and_gets_no_history(engine: Engine) -> None:
    launched_blast(engine, 1)
    direct = DirectStatements(engine)
    claim = direct.claim(device="5850", worker="w1", now=now(), lease=LEASE)
    assert claim is not None
    with transaction(engine) as s:  # as an expired lease leaves it
        s.execute(update(BlastRecipient).values(status=Status.UNKNOWN.value))
    assert not _settle(direct, claim)
    with transaction(engine) as s:
        assert s.get(BlastRecipient, claim.recipient_id).status == "UNKNOWN"
        assert s.scalars(select(StatusHistory)).all() == []
    assert direct.claim(device="5850", worker="w1", now=now(), lease=LEASE) is None


def test_connections_go_back_to_the_pool_in_transactions_and_errors_are_sqlalchemys(engine: Engine) -> None:
    launched_blast(engine, 2)
    direct = DirectStatements(engine)
    claim = direct.claim(device="5850", worker="w1", now=now(), lease=LEASE)
    assert engine.pool.checkedout() == 0
    with pytest.raises(RuntimeError), transaction(engine) as s:  # the claim's connection, reused
        s.execute(update(BlastRecipient).values(error="rolled back"))
        raise RuntimeError
    with pytest.raises(DBAPIError) as refused:
        _settle(direct, claim, gateway_status="x" * 100)  # longer than the column
    # Refused for what it holds, with the database there: not to be waited out as an outage.
    assert isinstance(refused.value, DataError) and not refused.value.connection_invalidated
    assert engine.pool.checkedout() == 0
    assert _settle(direct, claim)
    with transaction(engine) as s:
        assert s.scalars(select(BlastRecipient.error)).all() == [None, None]


def test_a_row_another_worker_claimed_since_is_not_settled(engine: Engine) -> None:
    """Worker w1's lease ran out, a person sent the row again and w2 claimed it: w1's late
    answer must not settle w2's claim, which is SENDING just as w1's was."""
    launched_blast(engine, 1)
    direct = DirectStatements(engine)
    first = direct.claim(device="5850", worker="w1", now=now(), lease=LEASE)
    assert first is not None
    with transaction(engine) as s:  # as an expired lease, "send again" and w2's claim leave it
        s.execute(update(BlastRecipient).values(status=Status.QUEUED.value, claimed_by=None))
    second = direct.claim(device="5850", worker="w2", now=now(), lease=LEASE)
    assert second is not None and second.recipient_id == first.recipient_id
    assert not _settle(direct, first)
    assert _settle(direct, second, message_id="m-2", wsapme_message_data={"id": "m-2"})
    with transaction(engine) as s:
        row = s.get(BlastRecipient, first.recipient_id)
        assert (row.status, row.message_id, row.claimed_by) == ("PENDING", "m-2", None)
        assert len(s.scalars(select(StatusHistory)).all()) == 1
