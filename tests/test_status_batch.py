"""The batched status engine does exactly what `apply_status` does, event after event."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.models import BlastRecipient, StatusHistory
from core.status_batch import StatusEvent, apply_statuses
from core.status_engine import StatusChange, apply_status
from core.statuses import Status
from tests.support.factories import make_blast, make_recipient

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
STARTING = [Status.QUEUED, Status.SENDING, Status.PENDING, Status.SERVER_ACK, Status.DELIVERY_ACK,
            Status.READ_ACK, Status.REPLIED, Status.FAILED, Status.UNKNOWN]
EVENTS = [Status.SERVER_ACK, Status.DELIVERY_ACK, Status.READ_ACK, Status.REPLIED, Status.CLOSED,
          Status.FAILED, Status.PENDING]
COMPARED = ("status", "sent_at", "delivered_at", "read_timestamp", "replied_at", "closed_at",
            "message_c2s_timestamp", "reply_text", "error")


def _twin_recipients(engine: Engine, rng: random.Random, n: int) -> list[tuple[int, int]]:
    """Pairs of recipients in two blasts, each pair starting alike."""
    pairs = []
    with transaction(engine) as s:
        left, right = make_blast(s), make_blast(s)
        for _ in range(n):
            status = rng.choice(STARTING)
            fields = {"status": status.value}
            if status not in (Status.QUEUED, Status.SENDING):
                fields["sent_at"] = START
            if rng.random() < 0.3:
                fields["error"] = "earlier error"
            if rng.random() < 0.2 and status is not Status.QUEUED:
                fields["delivered_at"] = START + dt.timedelta(minutes=1)
            pairs.append((make_recipient(s, left, **fields).id, make_recipient(s, right, **fields).id))
    return pairs


def _random_events(rng: random.Random, pairs: list[tuple[int, int]], n: int) -> list[tuple[int, StatusEvent]]:
    """(pair index, event for the left recipient), with repeats and out-of-order arrivals."""
    events = []
    for k in range(n):
        index = rng.randrange(len(pairs))
        status = rng.choice(EVENTS)
        at = START + dt.timedelta(minutes=rng.randint(2, 600))
        updates = {}
        if status is Status.DELIVERY_ACK and rng.random() < 0.5:
            updates["message_c2s_timestamp"] = int(at.timestamp()) - 5
        if status is Status.REPLIED:
            updates["reply_text"] = f"reply {k}"
        defaults = {"error": "the gateway reported an error"} if status is Status.FAILED else {}
        event = StatusEvent(pairs[index][0], status, at, "webhook", {"n": k}, updates, defaults)
        events.append((index, event))
    return events


def _one_by_one(engine: Engine, event: StatusEvent) -> StatusChange:
    """What the webhook did before batches: apply_status, then the error if still empty."""
    with transaction(engine) as s:
        change = apply_status(s, recipient_id=event.recipient_id, status=event.status, source=event.source,
                              at=event.at, event=event.event, updates=event.updates)
        if change.changed and event.defaults:
            row = s.get(BlastRecipient, event.recipient_id)
            for column, value in event.defaults.items():
                if getattr(row, column) is None:
                    setattr(row, column, value)
    return change


def _state(engine: Engine, ids: list[int]) -> list[tuple]:
    with transaction(engine) as s:
        rows = {r.id: r for r in s.scalars(select(BlastRecipient).where(BlastRecipient.id.in_(ids)))}
        history = s.execute(
            select(StatusHistory.recipient_id, StatusHistory.old_status, StatusHistory.new_status,
                   StatusHistory.changed_at, StatusHistory.source, StatusHistory.event)
            .where(StatusHistory.recipient_id.in_(ids)).order_by(StatusHistory.id)
        ).all()
    position = {rid: k for k, rid in enumerate(ids)}
    state = [tuple(getattr(rows[rid], c) for c in COMPARED) for rid in ids]
    recorded = [(position[h[0]], *h[1:]) for h in history]
    return [state, recorded]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_batch_ends_where_the_same_events_one_by_one_end(engine: Engine, seed: int) -> None:
    rng = random.Random(seed)
    pairs = _twin_recipients(engine, rng, 40)
    events = _random_events(rng, pairs, 160)

    singles = [_one_by_one(engine, event) for _, event in events]
    batched = [
        StatusEvent(pairs[index][1], e.status, e.at, e.source, e.event, e.updates, e.defaults)
        for index, e in events
    ]
    with transaction(engine) as s:
        results = apply_statuses(s, batched)

    assert [(r.old_status, r.new_status, r.changed) for r in results] == [
        (r.old_status, r.new_status, r.changed) for r in singles
    ]
    assert _state(engine, [right for _, right in pairs]) == _state(engine, [left for left, _ in pairs])
    assert any(r.changed for r in results) and not all(r.changed for r in results)


def test_a_missing_recipient_is_reported_not_raised(engine: Engine) -> None:
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), status="SERVER_ACK", sent_at=START).id
    with transaction(engine) as s:
        results = apply_statuses(s, [
            StatusEvent(rid + 1000, Status.READ_ACK, START, "webhook"),
            StatusEvent(rid, Status.READ_ACK, START, "webhook"),
        ])
    assert results[0] is None
    assert (results[1].old_status, results[1].new_status) == ("SERVER_ACK", "READ_ACK")


def test_an_unknown_source_is_refused_before_anything_is_written(engine: Engine) -> None:
    with pytest.raises(ValueError, match="unknown status source"), transaction(engine) as s:
        apply_statuses(s, [StatusEvent(1, Status.READ_ACK, START, "carrier pigeon")])
