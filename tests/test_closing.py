"""Closing sales from a CSV of numbers: matched to the latest message sent, every line reported."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select

from core.closing import CloseOutcome, close_from_csv
from core.db import transaction
from core.errors import BadCsv
from core.models import BlastRecipient, StatusHistory
from tests.support.factories import make_blast, make_recipient

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _seed(engine: Engine) -> dict[str, int]:
    with transaction(engine) as s:
        old = make_blast(s, blast_tag="Old")
        new = make_blast(s, blast_tag="New")
        a_old = make_recipient(s, old, phone_number="+60123456789", status="READ_ACK", sent_at=T0)
        a_new = make_recipient(
            s, new, phone_number="+60123456789", status="REPLIED", sent_at=T0 + dt.timedelta(days=3)
        )
        make_recipient(s, new, phone_number="+601123456789", status="CLOSED", sent_at=T0)
        make_recipient(s, new, phone_number="+60199999999", status="QUEUED")
        return {"old": old.id, "new": new.id, "a_old": a_old.id, "a_new": a_new.id}


def test_each_line_is_matched_to_the_latest_message_sent(engine: Engine) -> None:
    ids = _seed(engine)
    data = b"Phone\n012-345 6789\n+60 11-2345 6789\n0199999999\n12\n0123456789\n"
    with transaction(engine) as s:
        report = close_from_csv(s, data, region="MY", filename="sales.csv")
    outcomes = [(r.line, r.outcome, r.blast_id) for r in report.rows]
    assert outcomes == [
        (2, CloseOutcome.CLOSED, ids["new"]),
        (3, CloseOutcome.ALREADY_CLOSED, ids["new"]),
        (4, CloseOutcome.NOT_MESSAGED, None),
        (5, CloseOutcome.INVALID, None),
        (6, CloseOutcome.DUPLICATE, None),
    ]
    with transaction(engine) as s:
        assert s.get(BlastRecipient, ids["a_new"]).status == "CLOSED"
        assert s.get(BlastRecipient, ids["a_old"]).status == "READ_ACK"
        history = s.scalars(select(StatusHistory).where(StatusHistory.recipient_id == ids["a_new"])).one()
        assert (history.source, history.event["line"]) == ("import", 2)
    assert b"already closed" in report.to_csv()
    assert report.rows[3].detail.startswith("“12”: "), "what was typed, to find it in the file"


def test_closing_can_be_limited_to_chosen_blasts(engine: Engine) -> None:
    ids = _seed(engine)
    with transaction(engine) as s:
        report = close_from_csv(s, b"phone\n0123456789\n", region="MY", blast_ids=[ids["old"]])
    assert [(r.outcome, r.blast_id) for r in report.rows] == [(CloseOutcome.CLOSED, ids["old"])]


def test_an_unreadable_file_is_refused(engine: Engine) -> None:
    with pytest.raises(BadCsv), transaction(engine) as s:
        close_from_csv(s, b"", region="MY")


def test_a_buyer_another_campaign_messaged_is_not_called_never_messaged(engine: Engine) -> None:
    """Closing for one campaign: a number only another campaign messaged is a real buyer, not a
    wrong number. It is left open, and the report says which campaign messaged it."""
    with transaction(engine) as s:
        raya = make_blast(s, name="Raya promo")
        cny = make_blast(s, name="CNY promo")
        make_recipient(s, raya, phone_number="+60123456789", status="READ_ACK", sent_at=T0)
        elsewhere = make_recipient(s, cny, phone_number="+601111111111", status="REPLIED", sent_at=T0)
        make_recipient(s, raya, phone_number="+60122222222", status="QUEUED")  # not gone yet, nowhere else
        raya_id, cny_id, elsewhere_id = raya.id, cny.id, elsewhere.id
    data = b"phone\n0123456789\n011-1111 1111\n0122222222\n0199999999\n"
    with transaction(engine) as s:
        report = close_from_csv(s, data, region="MY", blast_ids=[raya_id], filename="buyers.csv")
    assert [(r.outcome, r.blast_id) for r in report.rows] == [
        (CloseOutcome.CLOSED, raya_id), (CloseOutcome.MESSAGED_ELSEWHERE, cny_id),
        (CloseOutcome.NOT_MESSAGED, None), (CloseOutcome.NOT_MESSAGED, None),
    ]
    assert "another campaign" in CloseOutcome.MESSAGED_ELSEWHERE.value
    assert "not closed here" in CloseOutcome.MESSAGED_ELSEWHERE.value
    assert "CNY promo" in (report.rows[1].detail or "")
    assert b"CNY promo" in report.to_csv()
    with transaction(engine) as s:
        assert s.get(BlastRecipient, elsewhere_id).status == "REPLIED", "left open"
    assert report.messaged_elsewhere() == ["CNY promo"]
