"""The opt-out list: once a number asks to stop, no blast sends to it, whatever its state."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.models import Blast, BlastRecipient, OptOut, utcnow
from core.opt_outs import add_opt_outs, listed, remove_opt_out, withdraw_from_queues
from core.webhook.inbox import WebhookRules, process_entry, store_raw
from tests.support.factories import make_blast, make_recipient

PHONE = "+60123456789"


def _blast_with(engine: Engine, state: str, *, status: str = "QUEUED") -> int:
    """A blast in `state` holding PHONE (with `status`) and one other number, still queued."""
    with transaction(engine) as s:
        blast = make_blast(s, state=state)
        make_recipient(s, blast, phone_number=PHONE, status=status)
        make_recipient(s, blast, status="QUEUED")
        return blast.id


def _holds_phone(engine: Engine, blast_id: int) -> tuple[bool, int, int]:
    """Whether the blast still holds PHONE, its recipient total and its opted-out count."""
    with transaction(engine) as s:
        query = select(BlastRecipient.phone_number).where(BlastRecipient.blast_id == blast_id)
        phones = set(s.scalars(query))
        blast = s.get(Blast, blast_id)
        return PHONE in phones, blast.total_recipients, blast.skipped_opted_out


@pytest.mark.parametrize("state", ["draft", "scheduled", "sending", "paused"])
def test_an_opt_out_takes_the_number_out_of_every_blast_that_could_still_send(
    engine: Engine, state: str
) -> None:
    blast_id = _blast_with(engine, state)
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE], source="manual") == (1, 1)
    assert _holds_phone(engine, blast_id) == (False, 1, 1)


@pytest.mark.parametrize(("state", "status"), [
    ("completed", "QUEUED"),  # what a finished blast did not send is its record
    ("cancelled", "QUEUED"),
    ("sending", "SENDING"),  # already with the gateway: past stopping
    ("sending", "DELIVERY_ACK"),  # sent: its funnel keeps it
])
def test_what_was_sent_or_is_over_stays_as_it_was(engine: Engine, state: str, status: str) -> None:
    blast_id = _blast_with(engine, state, status=status)
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE], source="manual") == (1, 0)
    assert _holds_phone(engine, blast_id) == (True, 2, 0)


def test_a_number_listed_twice_keeps_its_first_entry(engine: Engine) -> None:
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE, PHONE], source="webhook", keyword="STOP") == (1, 0)
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE, "+60111111111"], source="manual") == (1, 0)
    with transaction(engine) as s:
        entries, total = listed(s)
    assert total == 2
    assert {(e.phone_number, e.source, e.keyword) for e in entries} == {
        (PHONE, "webhook", "STOP"), ("+60111111111", "manual", None)}


def test_a_stop_reply_clears_the_queues_too(engine: Engine) -> None:
    """The webhook path: STOP to an earlier blast, while another waits to go tomorrow."""
    with transaction(engine) as s:
        earlier = make_blast(s, state="completed")
        make_recipient(s, earlier, phone_number=PHONE, status="READ_ACK", message_id="3EB0A",
                       sent_at=utcnow())
    tomorrow = _blast_with(engine, "scheduled")
    body = json.dumps({"type": "text", "message": "STOP", "from": PHONE.lstrip("+") + "@c.us"}).encode()
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=body, content_type="application/json")
    with transaction(engine) as s:
        outcome = process_entry(s, inbox_id=inbox_id, rules=WebhookRules())
    assert outcome is not None and outcome.state == "applied"
    assert _holds_phone(engine, tomorrow) == (False, 1, 1)


def test_taking_a_number_off_the_list_puts_nobody_back(engine: Engine) -> None:
    blast_id = _blast_with(engine, "scheduled")
    with transaction(engine) as s:
        add_opt_outs(s, [PHONE], source="manual")
    with transaction(engine) as s:
        assert remove_opt_out(s, phone=PHONE)
        assert not remove_opt_out(s, phone=PHONE), "no longer listed"
        assert s.scalar(select(OptOut.phone_number)) is None
    assert _holds_phone(engine, blast_id) == (False, 1, 1)


def test_the_list_is_searched_by_any_part_of_the_number(engine: Engine) -> None:
    with transaction(engine) as s:
        add_opt_outs(s, [PHONE, "+60198765432", "+6581234567"], source="manual")
    with transaction(engine) as s:
        assert [e.phone_number for e in listed(s, search="012-345")[0]] == [PHONE]
        assert {e.phone_number for e in listed(s, search="+60")[0]} == {PHONE, "+60198765432"}
        assert listed(s, search="999")[1] == 0


def test_nothing_to_withdraw(engine: Engine) -> None:
    with transaction(engine) as s:
        assert withdraw_from_queues(s, []) == 0
        assert add_opt_outs(s, [], source="manual") == (0, 0)
