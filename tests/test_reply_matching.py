"""Which message a reply answers and whether it asks to stop: opt-out words as people write
them, quoted replies, disappearing chats and senders written the local way, on both databases."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.models import BlastRecipient, OptOut, WebhookInbox
from core.statuses import Status
from core.webhook.inbox import TEST_REPLY, Outcome, WebhookRules, process_entry, store_raw
from core.webhook.replies import DEFAULT_OPT_OUT_WORDS, normalise_words, opt_out_keyword
from tests.support.factories import at, make_blast, make_recipient

RULES = WebhookRules()
PHONE = "+60123456789"
JID = "60123456789@s.whatsapp.net"

# --- opt-out words -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "keyword"),
    [
        ("STOP pls", "STOP PLS"),
        ("stop please", "STOP PLEASE"),
        ("Stop la", "STOP LA"),
        ("stop lah", "STOP LAH"),
        ("Please stop", "PLEASE STOP"),
        ("pls stop", "PLS STOP"),
        ("unsubscribe please", "UNSUBSCRIBE PLEASE"),
        ("Unsubscribe me", "UNSUBSCRIBE ME"),
        ("Stop, thank you!", "STOP THANK YOU"),
        ("ok stop tq", "OK STOP TQ"),
        ("Sorry, unsubscribe", "SORRY UNSUBSCRIBE"),
        ("STOP STOP", "STOP STOP"),
        ("stop!!! stop!!!", "STOP STOP"),
        ("ＳＴＯＰ", "STOP"),  # full-width, as some Chinese keyboards type it
        ("Berhenti langgan", "BERHENTI LANGGAN"),
        ("Tolong berhenti", "TOLONG BERHENTI"),
        ("退订", "退订"),
        ("取消订阅", "取消订阅"),
        ("请退订", "请退订"),  # Chinese has no spaces between its words
        ("退订，谢谢", "退订 谢谢"),
        ("麻烦退订", "麻烦退订"),
        ("我要退订", "我要退订"),
        ("STOP", "STOP"),
        ("Stop all!", "STOP ALL"),
    ],
)
def test_an_opt_out_word_with_politeness_around_it_or_said_twice_is_an_opt_out(
    text: str, keyword: str
) -> None:
    assert opt_out_keyword(text, words=DEFAULT_OPT_OUT_WORDS) == keyword


@pytest.mark.parametrize(
    "text",
    [
        "don't stop sending me deals",
        "stop sending me ads please",
        "Stop it",
        "please",
        "ok thanks",
        "STOPP",
        "",
        "🙏",
        "请不要退订",  # "please do not unsubscribe"
        "请问退订怎么做",  # "how do I unsubscribe"
        "谢谢",
    ],
)
def test_a_sentence_or_filler_alone_is_not_an_opt_out(text: str) -> None:
    assert opt_out_keyword(text, words=DEFAULT_OPT_OUT_WORDS) is None


@pytest.mark.parametrize("text", ["Stop?", "No more?", "Tak nak?", "Berhenti?", "stop ？", "STOP? 🙏"])
def test_a_question_is_not_an_opt_out(text: str) -> None:
    assert opt_out_keyword(text, words=DEFAULT_OPT_OUT_WORDS) is None


@pytest.mark.parametrize(("text", "keyword"), [("🛑", "🛑"), ("🛑🛑", "🛑 🛑"), (" 🛑 ", "🛑")])
def test_an_emoji_configured_as_an_opt_out_word_matches_that_emoji(text: str, keyword: str) -> None:
    words = (*DEFAULT_OPT_OUT_WORDS, "🛑")
    assert opt_out_keyword(text, words=words) == keyword
    assert opt_out_keyword("👍", words=words) is None


def test_the_keyword_is_the_reply_as_the_opt_out_count_reads_it() -> None:
    """core.analytics finds the reply that opted a person out as the one whose words normalise
    to the stored keyword: every keyword given must be that."""
    for text in ("STOP pls", "ＳＴＯＰ", "🛑🛑", "stop!!! stop!!!", "退订"):
        keyword = opt_out_keyword(text, words=(*DEFAULT_OPT_OUT_WORDS, "🛑"))
        assert keyword == normalise_words(text).upper()


# --- through the webhook -------------------------------------------------------------------


def _recipient(engine: Engine, *, message_id: str, sent_at: dt.datetime, phone: str = PHONE) -> int:
    with transaction(engine) as s:
        return make_recipient(s, make_blast(s), phone_number=phone, message_id=message_id,
                              status=Status.DELIVERY_ACK.value, sent_at=sent_at).id


def _post(engine: Engine, payload: dict[str, Any], *, rules: WebhookRules = RULES) -> tuple[int, Outcome]:
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(payload).encode(), content_type="application/json")
    with transaction(engine) as s:
        outcome = process_entry(s, inbox_id=inbox_id, rules=rules, now=at(12))
    assert outcome is not None
    return inbox_id, outcome


def _status(engine: Engine, rid: int) -> tuple[str, str | None]:
    with transaction(engine) as s:
        row = s.get(BlastRecipient, rid)
        return row.status, row.reply_text


def _opt_outs(engine: Engine) -> list[tuple[str, str | None]]:
    with transaction(engine) as s:
        return [(o.phone_number, o.keyword) for o in s.scalars(select(OptOut))]


def _baileys(message: dict[str, Any]) -> dict[str, Any]:
    return {"key": {"remoteJid": JID, "fromMe": False, "id": "IN1"}, "message": message,
            "messageTimestamp": int(at(10).timestamp())}


def _quoting(text: str, quoted_id: str) -> dict[str, Any]:
    return {"extendedTextMessage": {"text": text, "contextInfo": {
        "stanzaId": quoted_id, "participant": "60111111111@s.whatsapp.net",
        "quotedMessage": {"conversation": "Raya promo!"}}}}


def test_a_quoted_reply_goes_to_the_message_quoted_not_the_newest(engine: Engine) -> None:
    raya = _recipient(engine, message_id="3EB0RAYA", sent_at=at(9) - dt.timedelta(days=1))
    newest = _recipient(engine, message_id="3EB0CNY", sent_at=at(9))
    _, outcome = _post(engine, _baileys(_quoting("Still got stock?", "3EB0RAYA")))
    assert outcome.state == "applied"
    assert _status(engine, raya) == ("REPLIED", "Still got stock?")
    assert _status(engine, newest) == ("DELIVERY_ACK", None)


def test_a_reaction_goes_to_the_message_reacted_to(engine: Engine) -> None:
    raya = _recipient(engine, message_id="3EB0RAYA", sent_at=at(9) - dt.timedelta(days=1))
    newest = _recipient(engine, message_id="3EB0CNY", sent_at=at(9))
    _post(engine, _baileys({"reactionMessage": {"key": {"id": "3EB0RAYA", "fromMe": True}, "text": "👍"}}))
    assert _status(engine, raya) == ("REPLIED", "👍")
    assert _status(engine, newest)[0] == "DELIVERY_ACK"


def test_a_quote_of_a_message_older_than_the_reply_window_still_goes_to_it(engine: Engine) -> None:
    """The person said which message they answer: the newest one, sent since, is not it."""
    quoted = _recipient(engine, message_id="3EB0OLD", sent_at=at(10) - dt.timedelta(hours=73))
    newest = _recipient(engine, message_id="3EB0CNY", sent_at=at(9))
    _post(engine, _baileys(_quoting("Berapa?", "3EB0OLD")))
    assert _status(engine, quoted) == ("REPLIED", "Berapa?")
    assert _status(engine, newest) == ("DELIVERY_ACK", None)


def test_an_error_for_a_message_on_its_way_fails_it_and_a_reply_goes_to_the_one_that_arrived(
    engine: Engine
) -> None:
    """WhatsApp reported an error for the newest message after the gateway took it: it did
    not reach the person, so it is failed (keeping its send time), and what they write next
    answers the message that did arrive."""
    earlier = _recipient(engine, message_id="3EB0RAYA", sent_at=at(9) - dt.timedelta(hours=3))
    with transaction(engine) as s:
        newest = make_recipient(s, make_blast(s), phone_number=PHONE, message_id="3EB0CNY",
                                status=Status.SERVER_ACK.value, sent_at=at(9)).id
    _, outcome = _post(engine, {"event": "message-ack", "data": {"id": "3EB0CNY", "status": "ERROR"}})
    assert outcome.state == "applied", outcome
    with transaction(engine) as s:
        row = s.get(BlastRecipient, newest)
        assert (row.status, row.sent_at) == ("FAILED", at(9))
        assert row.error and "did not reach" in row.error
    _post(engine, _baileys({"conversation": "Got promo code?"}))
    assert _status(engine, earlier) == ("REPLIED", "Got promo code?")
    assert _status(engine, newest) == ("FAILED", None)


def test_a_quote_of_a_message_to_someone_else_falls_back_to_the_newest_message(engine: Engine) -> None:
    quoted = _recipient(engine, message_id="3EB0OLD", sent_at=at(9) - dt.timedelta(days=1),
                        phone="+60198765432")
    newest = _recipient(engine, message_id="3EB0CNY", sent_at=at(9))
    _post(engine, _baileys(_quoting("Berapa?", "3EB0OLD")))
    assert _status(engine, quoted) == ("DELIVERY_ACK", None)
    assert _status(engine, newest) == ("REPLIED", "Berapa?")


def test_a_reply_to_a_test_message_is_not_a_customers_reply_to_a_blast(engine: Engine) -> None:
    """The marketer answers their own test, and their number is also in a blast: that
    blast's recipient is not moved to replied."""
    from core import test_sends

    newest = _recipient(engine, message_id="3EB0CNY", sent_at=at(9))
    with transaction(engine) as s:
        test_sends.remember(s, message_id="3EB0TEST", to=PHONE, at=at(9, 30))
    _, outcome = _post(engine, _baileys(_quoting("Looks good", "3EB0TEST")))
    assert (outcome.state, outcome.detail) == ("ignored", TEST_REPLY)
    assert _status(engine, newest) == ("DELIVERY_ACK", None)


@pytest.mark.parametrize(("tested", "listed"), [
    (at(9, 30), False),  # the test went half an hour before: theirs
    # Hours before: someone writing in, as any other (a colleague tested with may be a lead).
    (at(10) - dt.timedelta(hours=3), True),
])
def test_a_reply_to_a_test_message_without_quoting_it_is_not_a_stranger_writing_in(
    engine: Engine, tested: dt.datetime, listed: bool
) -> None:
    """No blast messaged the marketer's number; they answer their test without swiping to
    quote it. It had been listed on Replies among messages from people no blast messaged."""
    from core import test_sends
    from core.reply_inbox import InboxFilter, unmatched_messages

    with transaction(engine) as s:
        test_sends.remember(s, message_id="3EB0TEST", to=PHONE, at=tested)
    _, outcome = _post(engine, _baileys({"conversation": "Looks good"}))
    assert outcome.state == "ignored"
    assert (outcome.detail == TEST_REPLY) is not listed
    with transaction(engine) as s:
        found = unmatched_messages(s, filters=InboxFilter(since=dt.date(2000, 1, 1), timezone="UTC"))
    assert [m.text for m in found] == (["Looks good"] if listed else [])


def test_a_quoted_reply_does_not_wait_for_a_message_being_sent(engine: Engine) -> None:
    """Another message to them is with the gateway: an unquoted reply would wait for it, but
    this one says which message it answers."""
    raya = _recipient(engine, message_id="3EB0RAYA", sent_at=at(9))
    with transaction(engine) as s:
        make_recipient(s, make_blast(s), phone_number=PHONE, status=Status.SENDING.value)
    _, outcome = _post(engine, _baileys(_quoting("Nak satu", "3EB0RAYA")))
    assert outcome.state == "applied"
    assert _status(engine, raya) == ("REPLIED", "Nak satu")


def test_stop_in_a_disappearing_chat_opts_out_and_counts_as_a_reply(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A", sent_at=at(9))
    _post(engine, {"key": {"remoteJid": JID, "fromMe": False},
                   "message": {"ephemeralMessage": {"message": {"extendedTextMessage": {"text": "STOP"}}}},
                   "messageTimestamp": int(at(10).timestamp())})
    assert _opt_outs(engine) == [(PHONE, "STOP")]
    assert _status(engine, rid) == ("REPLIED", "STOP")


@pytest.mark.parametrize("sender", ["0123456789", "0123456789@c.us", "+60 12-345 6789"])
@pytest.mark.usefixtures("in_malaysia")
def test_a_sender_written_the_local_way_is_matched_and_opted_out(engine: Engine, sender: str) -> None:
    rid = _recipient(engine, message_id="3EB0A", sent_at=at(9))
    _post(engine, {"type": "text", "message": "Stop pls", "from": sender,
                   "timestamp": int(at(10).timestamp())})
    assert _opt_outs(engine) == [(PHONE, "STOP PLS")]
    assert _status(engine, rid) == ("REPLIED", "Stop pls")


def test_a_question_with_an_opt_out_word_is_a_reply_only(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A", sent_at=at(9))
    _post(engine, {"type": "text", "message": "No more?", "from": "60123456789@c.us",
                   "timestamp": int(at(10).timestamp())})
    assert _opt_outs(engine) == []
    assert _status(engine, rid) == ("REPLIED", "No more?")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(_baileys({"reactionMessage": {"key": {"id": "3EB0A"}, "text": ""}}),
                     "a reaction taken back", id="reaction-removed"),
        pytest.param(_baileys({"pollUpdateMessage": {"pollCreationMessageKey": {"id": "P1"},
                                                     "vote": {"encPayload": "x", "encIv": "y"}}}),
                     "a vote in a poll", id="poll-vote"),
        pytest.param({"type": "revoked", "message": "", "from": "60123456789@c.us",
                      "timestamp": int(at(10).timestamp())}, "a message deleted", id="wsapme-revoked"),
        pytest.param({"type": "call_log", "from": "60123456789@c.us",
                      "timestamp": int(at(10).timestamp())}, "a call", id="wsapme-call-log-no-text"),
    ],
)
def test_a_person_s_event_that_answers_nothing_is_ignored_with_its_reason(
    engine: Engine, payload: dict[str, Any], reason: str
) -> None:
    rid = _recipient(engine, message_id="3EB0A", sent_at=at(9))
    inbox_id, outcome = _post(engine, payload)
    assert (outcome.state, outcome.kind) == ("ignored", "message")
    assert f"not a reply: {reason}" in outcome.detail
    assert _status(engine, rid) == ("DELIVERY_ACK", None)
    with transaction(engine) as s:
        assert s.get(WebhookInbox, inbox_id).state == "ignored"


def test_undoing_a_sale_on_a_lost_send_does_not_make_it_the_newest_message(engine: Engine) -> None:
    """A send whose answer was lost three days ago, and a message that arrived yesterday: a sale
    recorded on the lost one by mistake and undone had dated it by the undo, and the next reply
    and the next buyers' file went to it instead of to yesterday's message."""
    from core.closing import latest_sent
    from core.models import utcnow
    from core.recipients import close_sale, undo_sales
    from core.status_engine import apply_status

    now = utcnow()
    with transaction(engine) as s:
        lost = make_recipient(s, make_blast(s), phone_number=PHONE, status="SENDING").id
    with transaction(engine) as s:
        apply_status(s, recipient_id=lost, status=Status.UNKNOWN, source="send",
                     at=now - dt.timedelta(days=3), updates={"error": "The gateway's answer was lost."})
        s.execute(BlastRecipient.__table__.update().where(BlastRecipient.id == lost)
                  .values(updated_at=now - dt.timedelta(days=3)))
    arrived = _recipient(engine, message_id="3EB0B", sent_at=now - dt.timedelta(days=1))
    with transaction(engine) as s:
        close_sale(s, recipient_id=lost, source="manual")
    with transaction(engine) as s:
        assert undo_sales(s, recipient_ids=[lost]) == 1
        assert s.get(BlastRecipient, lost).status == "UNKNOWN"
    with transaction(engine) as s:
        assert latest_sent(s, phone=PHONE).id == arrived, "a buyers' file closes yesterday's message"
    reply = {"key": {"remoteJid": JID, "fromMe": False, "id": "IN1"},
             "message": {"conversation": "Berapa harga?"}, "messageTimestamp": int(now.timestamp())}
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(reply).encode(), content_type="application/json")
    with transaction(engine) as s:
        process_entry(s, inbox_id=inbox_id, rules=RULES, now=now)
    assert _status(engine, arrived) == ("REPLIED", "Berapa harga?")
    assert _status(engine, lost) == ("UNKNOWN", None)
