"""How far a recent blast got with a list's numbers: only messages that went (or may have) count
as sent; a paused, scheduled or draft blast holds the rest unsent."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from core.db import transaction
from core.sending.progress import ListReach, list_reach
from tests.support.factories import make_blast, make_recipient

LIST = [f"+6012300{k:04d}" for k in range(4)]


def _blast(engine: Engine, *, state: str, statuses: list[str], device: str | None = "5850") -> int:
    with transaction(engine) as s:
        blast = make_blast(s, state=state, device=device)
        for phone, status in zip(LIST, statuses, strict=False):
            make_recipient(s, blast, phone_number=phone, status=status)
        return blast.id


def _reach(engine: Engine, blast_id: int, *, leave_out_practice: bool = False) -> ListReach | None:
    with transaction(engine) as s:
        return list_reach(s, blast_ids=[blast_id], numbers=LIST,
                          leave_out_practice=leave_out_practice).get(blast_id)


@pytest.mark.parametrize(
    ("state", "statuses", "expected"),
    [
        # Paused before any went: nobody got it yet.
        ("paused", ["QUEUED"] * 4, ListReach(0, 4, messaged_some=False, holds_most_unsent=True)),
        ("scheduled", ["QUEUED"] * 4, ListReach(0, 4, messaged_some=False, holds_most_unsent=True)),
        ("draft", ["QUEUED"] * 4, ListReach(0, 4, messaged_some=False, holds_most_unsent=True)),
        # A sending blast sends its queue in its turn; a finished one holding some is taken up again.
        ("sending", ["QUEUED"] * 4, ListReach(4, 0, messaged_some=True, holds_most_unsent=False)),
        ("completed", ["QUEUED", "PENDING"] * 2,
         ListReach(4, 0, messaged_some=True, holds_most_unsent=False)),
        # Refused by the gateway: it reached no one. Unknown, or mid-send: it may have.
        ("completed", ["FAILED"] * 4, ListReach(0, 0, messaged_some=False, holds_most_unsent=False)),
        ("completed", ["UNKNOWN", "SENDING", "FAILED", "FAILED"],
         ListReach(2, 0, messaged_some=True, holds_most_unsent=False)),
        # Paused halfway: half of them went already.
        ("paused", ["READ_ACK", "DELIVERY_ACK", "QUEUED", "QUEUED"],
         ListReach(2, 2, messaged_some=True, holds_most_unsent=False)),
        # One went, one waits, two refused: the one who got it would get it twice.
        ("paused", ["READ_ACK", "QUEUED", "FAILED", "FAILED"],
         ListReach(1, 1, messaged_some=True, holds_most_unsent=False)),
        ("paused", ["FAILED", "FAILED", "FAILED", "QUEUED"],
         ListReach(0, 1, messaged_some=False, holds_most_unsent=False)),
    ],
)
def test_only_what_went_counts_as_sent(
    engine: Engine, state: str, statuses: list[str], expected: ListReach
) -> None:
    assert _reach(engine, _blast(engine, state=state, statuses=statuses)) == expected


@pytest.mark.parametrize("device", ["sandbox", "demo"])
def test_practice_blasts_are_left_out_when_asked(engine: Engine, device: str) -> None:
    blast_id = _blast(engine, state="completed", statuses=["DELIVERY_ACK"] * 4, device=device)
    assert _reach(engine, blast_id, leave_out_practice=True) is None
    assert _reach(engine, blast_id) == ListReach(4, 0, messaged_some=True, holds_most_unsent=False)


def test_a_draft_not_given_a_device_yet_is_not_practice(engine: Engine) -> None:
    blast_id = _blast(engine, state="draft", statuses=["QUEUED"] * 4, device=None)
    assert _reach(engine, blast_id, leave_out_practice=True) == ListReach(
        0, 4, messaged_some=False, holds_most_unsent=True)
