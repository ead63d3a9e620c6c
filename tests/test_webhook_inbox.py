"""The inbox on both databases: acks in any order, duplicates, waiting and replay, replies,
opt-outs, the health summary and the webhook secret."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from core.config import Settings
from core.db import transaction
from core.errors import ConfigError
from core.health import EventCounts
from core.models import BlastRecipient, OptOut, RecipientReply, StatusHistory, WebhookInbox, utcnow
from core.sending.queue import expire_leases
from core.status_engine import apply_status
from core.statuses import Status
from core.webhook.inbox import (
    FAILED_BY_GATEWAY,
    InboxState,
    Outcome,
    WebhookRules,
    apply_bodies,
    inbox_summary,
    process_entry,
    replay_after_send,
    replay_for_message_ids,
    replay_set_aside,
    replay_waiting,
    store_raw,
)
from core.webhook.parse import parse_webhook
from core.webhook.secret import (
    accepted_secrets,
    current_secret,
    matches_any,
    rotate_secret,
    secret_matches,
    webhook_url,
)
from tests.support.factories import at, make_blast, make_recipient

RULES = WebhookRules()
JSON = "application/json"
PHONE = "+60123456789"
SENT = at(9)
WRITTEN = at(10)


def _ts(when: dt.datetime) -> int:
    return int(when.timestamp())


def _recipient(
    engine: Engine, *, message_id: str | None = None, status: Status = Status.PENDING,
    phone: str = PHONE, sent_at: dt.datetime | None = SENT,
) -> int:
    """A recipient in a blast of its own (one phone may be in several blasts)."""
    with transaction(engine) as s:
        return make_recipient(s, make_blast(s), phone_number=phone, message_id=message_id,
                              status=status.value, sent_at=sent_at).id


def _post(
    engine: Engine, payload: object, *, content_type: str = JSON, rules: WebhookRules = RULES,
    received_at: dt.datetime | None = None, now: dt.datetime | None = None,
) -> tuple[int, Outcome | None]:
    """What the route does: store the raw body in one transaction, apply it in a second
    (by default at once, as the route does)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    now = now or received_at
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=body, content_type=content_type, now=received_at)
    with transaction(engine) as s:
        return inbox_id, process_entry(s, inbox_id=inbox_id, rules=rules, now=now)


def _row(engine: Engine, rid: int) -> BlastRecipient:
    with transaction(engine) as s:
        return s.get(BlastRecipient, rid)


def _entry(engine: Engine, inbox_id: int) -> WebhookInbox:
    with transaction(engine) as s:
        return s.get(WebhookInbox, inbox_id)


def _history(engine: Engine, rid: int | None = None) -> list[tuple[str | None, str, str | None]]:
    query = select(StatusHistory).order_by(StatusHistory.id)
    if rid is not None:
        query = query.where(StatusHistory.recipient_id == rid)
    with transaction(engine) as s:
        return [(h.old_status, h.new_status, h.source) for h in s.scalars(query)]


def _ack(message_id: str | list[str], status: str | int, when: dt.datetime | None = None) -> dict:
    key = "ids" if isinstance(message_id, list) else "id"
    payload: dict[str, Any] = {key: message_id, "status": status}
    if when is not None:
        payload["timestamp"] = _ts(when)
    return payload


def _incoming(text: str, *, jid: str = "60123456789@c.us", when: dt.datetime | None = WRITTEN,
              **extra: Any) -> dict:
    payload: dict[str, Any] = {"type": "text", "message": text, "from": jid, **extra}
    if when is not None:
        payload["timestamp"] = _ts(when)
    return payload


# --- acks --------------------------------------------------------------------------------


def test_an_ack_moves_the_status_and_records_it(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    inbox_id, outcome = _post(engine, _ack("3EB0A", "DELIVERY_ACK", at(9, 30)))
    assert outcome is not None and (outcome.state, outcome.kind) == ("applied", "ack")
    row = _row(engine, rid)
    assert (row.status, row.delivered_at, row.message_c2s_timestamp) == (
        "DELIVERY_ACK", at(9, 30), _ts(at(9, 30)))
    assert _history(engine, rid) == [("PENDING", "DELIVERY_ACK", "webhook")]
    with transaction(engine) as s:
        assert s.scalars(select(StatusHistory.event)).one() == _ack("3EB0A", "DELIVERY_ACK", at(9, 30))
    entry = _entry(engine, inbox_id)
    assert (entry.state, entry.attempts) == ("applied", 1) and entry.processed_at is not None
    assert "PENDING → DELIVERY_ACK" in entry.detail


def test_read_before_delivery_keeps_read_and_writes_one_change(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, {"key": {"id": "3EB0A"}, "update": {"status": 4}, "timestamp": _ts(at(10))})
    first, late = _post(engine, _ack("3EB0A", 3, at(9, 30)))
    row = _row(engine, rid)
    assert row.status == "READ_ACK"
    assert (row.delivered_at, row.read_timestamp) == (at(10), at(10))  # skipped stage: later time
    assert _history(engine, rid) == [("PENDING", "READ_ACK", "webhook")]
    assert late is not None and late.state == "applied" and "no change (already READ_ACK)" in late.detail


def test_the_same_body_twice_writes_history_once(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    payload = _ack("3EB0A", "READ", at(10))
    ids = [_post(engine, payload)[0] for _ in range(2)]
    assert [_entry(engine, i).state for i in ids] == ["applied", "applied"]
    assert _history(engine, rid) == [("PENDING", "READ_ACK", "webhook")]


def test_acks_for_several_recipients_in_one_body(engine: Engine) -> None:
    a = _recipient(engine, message_id="3EB0A", phone="+60120000001")
    b = _recipient(engine, message_id="3EB0B", phone="+60120000002")
    _post(engine, [{"key": {"id": "3EB0B"}, "update": {"status": 3}}, _ack(["3EB0A"], "READ")])
    assert (_row(engine, a).status, _row(engine, b).status) == ("READ_ACK", "DELIVERY_ACK")


@pytest.mark.parametrize(
    ("start", "final", "history"),
    [
        (Status.SENDING, "FAILED", [("SENDING", "FAILED", "webhook")]),
        # The gateway took it, WhatsApp could not deliver it.
        (Status.PENDING, "FAILED", [("PENDING", "FAILED", "webhook")]),
        (Status.SERVER_ACK, "FAILED", [("SERVER_ACK", "FAILED", "webhook")]),
        (Status.DELIVERY_ACK, "DELIVERY_ACK", []),  # the phone had it: an error report cannot undo that
        (Status.READ_ACK, "READ_ACK", []),
    ],
)
def test_an_error_ack_fails_only_a_message_the_phone_has_not_received(
    engine: Engine, start: Status, final: str, history: list
) -> None:
    rid = _recipient(engine, message_id="3EB0A", status=start)
    _post(engine, _ack("3EB0A", "ERROR"))
    row = _row(engine, rid)
    assert row.status == final
    assert _history(engine, rid) == history
    assert (row.error is not None) == (final == "FAILED")


# --- waiting and replay -------------------------------------------------------------------


def _store_message_id(engine: Engine, rid: int, message_id: str) -> None:
    """What the send worker does once the gateway accepted the message."""
    with transaction(engine) as s:
        apply_status(s, recipient_id=rid, status=Status.PENDING, source="send", at=at(9),
                     updates={"message_id": message_id})


def test_an_ack_that_beats_the_send_waits_and_is_replayed(engine: Engine) -> None:
    rid = _recipient(engine, status=Status.SENDING, sent_at=None)
    inbox_id, outcome = _post(engine, _ack("3EB0LATE", "DELIVERY_ACK", at(9, 1)))
    assert outcome is not None and outcome.state == "waiting"
    assert outcome.waiting_for == ("3EB0LATE",) and "3EB0LATE" in outcome.detail
    assert _row(engine, rid).status == "SENDING"

    _store_message_id(engine, rid, "3EB0LATE")
    with transaction(engine) as s:
        assert replay_for_message_ids(s, message_ids=["3EB0OTHER"], rules=RULES) == []
        replayed = replay_for_message_ids(s, message_ids=["3EB0LATE"], rules=RULES)
    assert [o.state for o in replayed] == ["applied"]
    assert _entry(engine, inbox_id).state == "applied"
    assert _row(engine, rid).status == "DELIVERY_ACK"
    assert _history(engine, rid) == [("SENDING", "PENDING", "send"),
                                     ("PENDING", "DELIVERY_ACK", "webhook")]


def test_an_error_that_beats_the_send_waits_and_fails_the_message_once_it_is_stored(engine: Engine) -> None:
    """WhatsApp's error can come before the gateway's answer to the send is stored: it waits for
    the message's id, so the answer cannot lift it again, and then fails the message that went."""
    rid = _recipient(engine, status=Status.SENDING, sent_at=None)
    inbox_id, outcome = _post(engine, _ack("3EB0LATE", "ERROR", at(9, 1)))
    assert outcome is not None and outcome.state == "waiting"
    assert _row(engine, rid).status == "SENDING"

    _store_message_id(engine, rid, "3EB0LATE")
    assert replay_after_send(engine, message_ids=["3EB0LATE"], rules=RULES) == 1
    row = _row(engine, rid)
    assert (row.status, row.sent_at is not None, row.error) == ("FAILED", True, FAILED_BY_GATEWAY)
    assert _history(engine, rid) == [("SENDING", "PENDING", "send"), ("PENDING", "FAILED", "webhook")]
    assert _entry(engine, inbox_id).state == "applied"


def test_replay_after_send_owns_its_transaction(engine: Engine) -> None:
    rid = _recipient(engine, status=Status.SENDING, sent_at=None)
    _post(engine, _ack("3EB0LATE", "READ", at(9, 5)))
    _store_message_id(engine, rid, "3EB0LATE")
    assert replay_after_send(engine, message_ids=["3EB0LATE"], rules=RULES) == 1
    assert replay_after_send(engine, message_ids=["3EB0LATE"], rules=RULES) == 0
    assert _row(engine, rid).status == "READ_ACK"


def test_several_ids_one_known_waits_for_the_other_without_repeating_the_first(
    engine: Engine,
) -> None:
    known = _recipient(engine, message_id="3EB0A", phone="+60120000001")
    later = _recipient(engine, status=Status.SENDING, sent_at=None, phone="+60120000002")
    inbox_id, outcome = _post(engine, _ack(["3EB0A", "3EB0B"], "SERVER_ACK", at(9, 2)))
    assert outcome is not None and outcome.state == "waiting" and outcome.waiting_for == ("3EB0B",)
    assert _row(engine, known).status == "SERVER_ACK"
    _store_message_id(engine, later, "3EB0B")
    report = replay_waiting(engine, rules=RULES)
    assert report.states == {"applied": 1}
    assert _entry(engine, inbox_id).state == "applied"
    assert _history(engine, known) == [("PENDING", "SERVER_ACK", "webhook")]
    assert _row(engine, later).status == "SERVER_ACK"


def test_replay_gives_up_on_old_waiting_entries_and_keeps_them(engine: Engine) -> None:
    now = at(12)
    old_id, _ = _post(engine, _ack("3EB0GONE", "READ"), received_at=now - dt.timedelta(hours=2))
    young_id, _ = _post(engine, _ack("3EB0SOON", "READ"), received_at=now - dt.timedelta(minutes=5))
    report = replay_waiting(engine, rules=RULES, now=now)
    assert report.states == {"unmatched": 1, "waiting": 1}
    old, young = _entry(engine, old_id), _entry(engine, young_id)
    assert old.state == "unmatched" and old.detail.startswith("gave up after 60 min")
    assert json.loads(old.body) == _ack("3EB0GONE", "READ")  # kept as it came
    assert young.state == "waiting" and young.attempts == 2
    assert replay_waiting(engine, rules=RULES, now=now).seen == 1  # unmatched is not retried


def test_set_aside_events_are_applied_again_when_asked_and_kept_when_still_unusable(engine: Engine) -> None:
    """An ack whose message never turned up, then did (its id stored late, by hand or after a
    corrected setting); and a body nothing can read. Asked to, the first is applied, the
    second set aside again, and neither is ever deleted."""
    now = at(12)
    lost_id, _ = _post(engine, _ack("3EB0LATE", "READ", at(9)), received_at=now - dt.timedelta(hours=2))
    junk_id, _ = _post(engine, b"\x00not an event", content_type="text/plain", received_at=at(10))
    replay_waiting(engine, rules=RULES, now=now)
    assert (_entry(engine, lost_id).state, _entry(engine, junk_id).state) == ("unmatched", "unparseable")
    rid = _recipient(engine, message_id="3EB0LATE")

    report = replay_set_aside(engine, rules=RULES, now=now)
    assert (report.seen, report.states, report.failed) == (2, {"applied": 1, "unparseable": 1}, 0)
    assert report.set_aside_words() == "2 set-aside events tried again: 1 applied, 1 still could not be used."
    assert _row(engine, rid).status == "READ_ACK"
    assert (_entry(engine, lost_id).state, _entry(engine, junk_id).state) == ("applied", "unparseable")
    assert _entry(engine, junk_id).body == b"\x00not an event"
    assert replay_set_aside(engine, rules=RULES, now=now).states == {"unparseable": 1}
    assert replay_waiting(engine, rules=RULES, now=now).seen == 0, "set aside again, not retried by itself"


def test_applying_a_set_aside_stop_again_leaves_a_persons_removal_alone(engine: Engine) -> None:
    """Its opt-out was recorded when it first came; someone took the number off the list
    since (a mistake). Applying the entry again must not put it back."""
    from core.opt_outs import listed, remove_opt_out

    _recipient(engine, status=Status.SENDING, sent_at=None)  # its answer never stored
    inbox_id, outcome = _post(engine, _incoming("STOP", when=at(9, 0)), received_at=at(9, 0))
    assert outcome is not None and outcome.state == "waiting"
    replay_waiting(engine, rules=RULES, now=at(10, 1))
    assert _entry(engine, inbox_id).state == "unmatched"
    with transaction(engine) as s:
        assert [e.phone_number for e in listed(s)[0]] == [PHONE], "recorded when it came"
        remove_opt_out(s, phone=PHONE)
    replay_set_aside(engine, rules=RULES, now=at(10, 2))
    with transaction(engine) as s:
        assert listed(s)[0] == []


def test_replay_picks_up_entries_a_failed_request_left_new(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(_ack("3EB0A", 3)).encode(), content_type=JSON,
                             now=at(10))
    assert replay_waiting(engine, rules=RULES, now=at(10, 0) + dt.timedelta(seconds=30)).seen == 0
    assert replay_waiting(engine, rules=RULES, now=at(10, 2)).states == {"applied": 1}
    assert _entry(engine, inbox_id).state == "applied"
    assert _row(engine, rid).status == "DELIVERY_ACK"


def _waiting_scenario(engine: Engine, prefix: str, *, now: dt.datetime) -> tuple[list[int], list[int]]:
    """Acks of 60 messages, two or three each in an order of their own. Forty are a blast's
    sends, which store their ids only after their acks came; twenty were sent from the phone
    and are never known. The acks of every fifth message came two hours ago, past the wait.
    Inbox ids and recipient ids."""
    statuses = ("SERVER_ACK", "DELIVERY_ACK", "READ", "ERROR")
    recipients, entries = [], []
    for i in range(60):
        message_id = f"{prefix}{i:03d}"
        if i % 3:
            # Seven people, each in several blasts; the two scenarios' people are not the same.
            recipients.append(_recipient(engine, status=Status.SENDING, sent_at=None,
                                         phone=f"+6012{ord(prefix[-1]):03d}{i % 7:04d}"))
        for k in range(2 + i % 2):
            status = statuses[(i + k * (1 + i % 3)) % len(statuses)]
            received = now - (dt.timedelta(hours=2) if i % 5 == 0 else dt.timedelta(minutes=10 - k))
            entries.append(_post(engine, _ack(message_id, status, at(9, k + 1)), received_at=received,
                                 now=received)[0])
    for n, rid in enumerate(recipients):
        _store_message_id(engine, rid, f"{prefix}{(n // 2) * 3 + 1 + n % 2:03d}")
    return entries, recipients


def test_replay_applies_waiting_entries_many_to_a_transaction_as_one_at_a_time_would(
    engine: Engine,
) -> None:
    """A few hundred acks of messages sent from the phone wait an hour each; the replay every
    half minute must not cost a transaction apiece. What it does is what it did one by one."""
    from sqlalchemy import event

    from core.webhook.inbox import _process_each

    now = at(12)
    together, together_rids = _waiting_scenario(engine, "3EB0T", now=now)
    alone, alone_rids = _waiting_scenario(engine, "3EB0A", now=now)
    assert len(together) > 100  # more than one batch
    commits = []

    def count(connection: object) -> None:
        commits.append(connection)

    event.listen(engine, "commit", count)
    try:
        report = _process_each(engine, together, rules=RULES, now=now)
    finally:
        event.remove(engine, "commit", count)
    assert len(commits) <= -(-len(together) // 100)
    one_by_one = _process_each(engine, alone, rules=RULES, now=now, batch=1)
    assert report == one_by_one
    assert set(report.states) == {"applied", "waiting", "unmatched"}

    def seen(inbox_ids: list[int], rids: list[int], prefix: str) -> list[tuple]:
        with transaction(engine) as s:
            entries = [s.get(WebhookInbox, i) for i in inbox_ids]
            rows = [s.get(BlastRecipient, r) for r in rids]
            found = ([(e.state, e.kind, e.attempts, e.detail.replace(prefix, "#")) for e in entries]
                     + [(r.status, r.sent_at, r.delivered_at, r.message_c2s_timestamp, r.read_timestamp,
                         r.error) for r in rows])
        return found + [_history(engine, r) for r in rids]

    assert seen(together, together_rids, "3EB0T") == seen(alone, alone_rids, "3EB0A")


def test_an_entry_that_fails_in_a_replay_batch_costs_only_itself(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.webhook import inbox

    rids = [_recipient(engine, status=Status.SENDING, sent_at=None, phone=f"+6012000000{i}")
            for i in range(5)]
    ids = [_post(engine, _ack(f"3EB0B{i}", "READ", at(9, 1)), received_at=at(11, 50))[0] for i in range(5)]
    for i, rid in enumerate(rids):
        _store_message_id(engine, rid, f"3EB0B{i}")
    parse = inbox.parse_webhook

    def fussy(body: bytes, *args: Any, **kwargs: Any) -> Any:
        if b"3EB0B2" in body:
            raise RuntimeError("a bug in reading this one")
        return parse(body, *args, **kwargs)

    monkeypatch.setattr(inbox, "parse_webhook", fussy)
    report = replay_waiting(engine, rules=RULES, now=at(12))
    assert (report.seen, report.states, report.failed) == (5, {"applied": 4}, 1)
    assert [_row(engine, rid).status for rid in rids] == ["READ_ACK"] * 2 + ["PENDING"] + ["READ_ACK"] * 2
    bad = _entry(engine, ids[2])
    assert (bad.state, bad.attempts) == ("waiting", 2)
    assert bad.detail == "could not be applied: RuntimeError: a bug in reading this one"


@pytest.mark.parametrize(
    ("body", "content_type", "reason_part"),
    [(b'{"id": "3EB0A", ', JSON, "not valid JSON"), (b"<a/>", "application/xml", "not JSON or a form")],
)
def test_an_unparseable_body_is_kept_with_its_reason(
    engine: Engine, body: bytes, content_type: str, reason_part: str
) -> None:
    inbox_id, _ = _post(engine, body, content_type=content_type)
    entry = _entry(engine, inbox_id)
    assert (entry.state, entry.body) == ("unparseable", body)
    assert reason_part in entry.detail
    assert replay_waiting(engine, rules=RULES, now=at(23)).seen == 0


def test_something_that_is_not_an_event_is_ignored(engine: Engine) -> None:
    inbox_id, _ = _post(engine, {"event": "connection.update", "data": {"state": "open"}})
    entry = _entry(engine, inbox_id)
    assert (entry.state, entry.kind) == ("ignored", "other")
    assert "connection.update" in entry.detail


@pytest.mark.parametrize("payload", [
    pytest.param({"id": "3EB0U", "status": 5}, id="a status number this numbering lacks"),
    pytest.param({"key": {"id": "3EB0U", "fromMe": True}, "update": {"pinned": True}}, id="id, no status"),
    pytest.param({"event": "message", "data": {"from": "60123456789@c.us", "body2": "Berapa?"}},
                 id="a sender, no text it can read"),
])
def test_an_event_about_a_message_it_cannot_read_is_set_aside_to_apply_again(
    engine: Engine, payload: dict
) -> None:
    """Not "not needed": a corrected ack numbering, or a version that reads the shape, may
    use it, so it is counted with what could not be used and applied again when asked."""
    rid = _recipient(engine, message_id="3EB0U", status=Status.DELIVERY_ACK)
    wwebjs = WebhookRules(numbering="wwebjs")
    inbox_id, outcome = _post(engine, payload, rules=wwebjs)
    assert outcome is not None and (outcome.state, outcome.kind) == ("unrecognised", "other")
    with transaction(engine) as s:
        assert EventCounts.from_states(inbox_summary(s)["counts"]).set_aside == 1
    report = replay_set_aside(engine, rules=RULES)  # the numbering put right: Baileys' 5 is played
    assert report.seen == 1
    if payload.get("status") == 5:
        assert _entry(engine, inbox_id).state == "applied"
        assert _row(engine, rid).status == "READ_ACK"
    else:
        assert _entry(engine, inbox_id).state == "unrecognised", "still kept in sight"


def test_a_test_messages_receipts_are_known_as_a_tests_not_waited_for(engine: Engine) -> None:
    """A test to your own phone matches no blast: its receipts had waited an hour, then been
    set aside as if something had gone wrong."""
    from core import test_sends

    with transaction(engine) as s:
        test_sends.remember(s, message_id="3EB0TEST", to=PHONE, at=at(9))
    for status in (3, "READ"):
        inbox_id, outcome = _post(engine, _ack("3EB0TEST", status, at(9, 1)))
        assert outcome is not None and outcome.state == "ignored", outcome
        assert "a test message" in outcome.detail
    _, other = _post(engine, _ack("3EB0NOTATEST", 3, at(9, 1)))
    assert other is not None and other.state == "waiting", "a blast's message not saved yet still waits"


# --- replies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(_incoming("Berapa harga?"), id="c.us"),
        pytest.param(_incoming("Berapa harga?", jid="60123456789@s.whatsapp.net"), id="s.whatsapp.net"),
        pytest.param(_incoming("Berapa harga?", jid="60123456789:7@s.whatsapp.net"), id="device-suffix"),
        pytest.param({"key": {"remoteJid": "5544332211@lid", "fromMe": False, "id": "IN1",
                              "remoteJidAlt": "60123456789@s.whatsapp.net"},
                      "message": {"conversation": "Berapa harga?"}, "messageTimestamp": _ts(at(10))},
                     id="lid-with-alt"),
        pytest.param(_incoming("Berapa harga?", jid="5544332211@lid",
                               participantAlt="60123456789@c.us"), id="lid-with-participantAlt"),
    ],
)
def test_a_reply_from_a_person_marks_the_recipient_replied(engine: Engine, payload: dict) -> None:
    rid = _recipient(engine, message_id="3EB0A")  # sent, no receipts yet
    inbox_id, outcome = _post(engine, payload)
    assert outcome is not None and (outcome.state, outcome.kind) == ("applied", "message")
    row = _row(engine, rid)
    assert (row.status, row.reply_text) == ("REPLIED", "Berapa harga?")
    # Read receipts may be off: the reply proves delivery and reading at its own time.
    assert row.replied_at == row.read_timestamp == row.delivered_at == at(10)
    assert _history(engine, rid) == [("PENDING", "REPLIED", "webhook")]


def _replies(engine: Engine, rid: int) -> list[tuple[dt.datetime, str]]:
    with transaction(engine) as s:
        return [(r.replied_at, r.text) for r in s.scalars(
            select(RecipientReply).where(RecipientReply.recipient_id == rid).order_by(RecipientReply.id))]


def test_every_reply_is_kept_and_the_first_stays_on_the_recipient(engine: Engine) -> None:
    """The second message changes no status; it is what they want, so it is kept too."""
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, _incoming("Ok", when=at(10)))
    _, outcome = _post(engine, [_incoming("2 boxes please, to Shah Alam", when=at(11)),
                                _incoming("Thanks!", when=at(12))])
    assert outcome is not None and "no change (already REPLIED)" in outcome.detail
    assert _row(engine, rid).reply_text == "Ok"
    assert _replies(engine, rid) == [(at(10), "Ok"), (at(11), "2 boxes please, to Shah Alam"),
                                     (at(12), "Thanks!")]
    assert _history(engine, rid) == [("PENDING", "REPLIED", "webhook")], "one change, three replies"


@pytest.mark.parametrize("one_body", [False, True], ids=["two-posts", "one-body"])
def test_a_first_reply_delivered_after_a_later_one_becomes_the_first(engine: Engine, one_body: bool) -> None:
    """The gateway retries or replays: the person's second message comes in before their first.
    The recipient keeps the first they wrote, as the status engine would have had it in order."""
    rid = _recipient(engine, message_id="3EB0A")
    later = _incoming("2 boxes please, to Shah Alam", when=at(11))
    first = _incoming("Berapa harga?", when=at(10))
    if one_body:
        _post(engine, [later, first])
    else:
        _post(engine, later)
        _post(engine, first)
    row = _row(engine, rid)
    assert (row.status, row.reply_text, row.replied_at) == ("REPLIED", "Berapa harga?", at(10))
    # Received and read by then too: stamped at 11:00 by the later reply, reads had counted as
    # slower than replies, and in the wrong hour.
    assert (row.delivered_at, row.read_timestamp, row.message_c2s_timestamp) == (
        at(10), at(10), int(at(10).timestamp()))
    assert sorted(_replies(engine, rid)) == [(at(10), "Berapa harga?"),
                                             (at(11), "2 boxes please, to Shah Alam")]
    assert _history(engine, rid) == [("PENDING", "REPLIED", "webhook")], "no status change of its own"

    _post(engine, _incoming("Thanks!", when=at(12)))  # a later one leaves the first alone
    assert (_row(engine, rid).reply_text, _row(engine, rid).replied_at) == ("Berapa harga?", at(10))


def test_an_earlier_reply_coming_late_keeps_a_read_reported_before_it(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, {"id": "3EB0A", "status": "READ_ACK", "timestamp": int(at(9).timestamp())})
    _post(engine, _incoming("2 boxes please", when=at(11)))
    _post(engine, _incoming("Berapa harga?", when=at(10)))
    row = _row(engine, rid)
    assert (row.replied_at, row.read_timestamp) == (at(10), at(9))


def test_an_earlier_reply_coming_late_corrects_a_closed_sale_but_not_its_status(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, _incoming("2 boxes please", when=at(11)))
    with transaction(engine) as s:
        apply_status(s, recipient_id=rid, status=Status.CLOSED, source="manual", at=at(12))
    _post(engine, _incoming("Berapa harga?", when=at(10)))
    row = _row(engine, rid)
    assert (row.status, row.reply_text, row.replied_at, row.closed_at) == (
        "CLOSED", "Berapa harga?", at(10), at(12))


def test_a_body_applied_again_keeps_its_replies_once(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    body = [_incoming("Ok", when=at(10)), _incoming("Ok", when=at(11))]
    inbox_id, _ = _post(engine, body)
    with transaction(engine) as s:
        apply_bodies(s, bodies={inbox_id: parse_webhook(json.dumps(body).encode(), JSON)}, rules=RULES,
                     received={inbox_id: at(10)})
    assert _replies(engine, rid) == [(at(10), "Ok"), (at(11), "Ok")], "the same words later: two replies"


def test_the_same_reply_delivered_twice_is_kept_once(engine: Engine) -> None:
    """The gateway retries a post it got no answer to: two inbox entries, one message."""
    rid = _recipient(engine, message_id="3EB0A")
    for _ in range(2):
        _post(engine, _incoming("2 boxes please", when=at(11)))
    _post(engine, [_incoming("2 boxes please", when=at(11)), _incoming("Ok", when=at(12))])
    assert _replies(engine, rid) == [(at(11), "2 boxes please"), (at(12), "Ok")]


def test_two_alike_in_one_second_with_ids_of_their_own_are_both_kept(engine: Engine) -> None:
    """WhatsApp dates messages by the second: "ok", "ok" typed quickly had been kept as one."""
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, [_incoming("ok", when=at(11), id="IN1"), _incoming("ok", when=at(11), id="IN2")])
    _post(engine, _incoming("ok", when=at(11), id="IN2"))  # the gateway retrying the second
    assert _replies(engine, rid) == [(at(11), "ok"), (at(11), "ok")]


def test_a_reply_without_a_time_posted_twice_is_kept_once_by_its_id(engine: Engine) -> None:
    """Dated by when each copy came, it had been kept once for every time it was posted."""
    rid = _recipient(engine, message_id="3EB0A")
    for minute in (0, 1):
        _post(engine, _incoming("Berapa harga?", when=None, id="IN1"), received_at=at(11, minute))
    assert [text for _, text in _replies(engine, rid)] == ["Berapa harga?"]


def test_a_reply_kept_before_ids_were_is_not_kept_again_when_posted_with_one(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, _incoming("2 boxes please", when=at(11)))
    _post(engine, _incoming("2 boxes please", when=at(11), id="IN1"))
    assert _replies(engine, rid) == [(at(11), "2 boxes please")]


def test_a_reply_from_a_number_not_messaged_is_kept_in_the_inbox_only(engine: Engine) -> None:
    _recipient(engine, message_id="3EB0A")
    _, outcome = _post(engine, _incoming("Siapa ni?", jid="60199999999@c.us"))
    assert outcome is not None and outcome.state == "ignored"
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(RecipientReply)) == 0


def test_a_reply_as_a_form_post(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    body = b"type=text&message=OK+boleh&from=60123456789%40c.us&fromMe=false&timestamp=" + str(
        _ts(at(10))).encode()
    _post(engine, body, content_type="application/x-www-form-urlencoded")
    assert (_row(engine, rid).status, _row(engine, rid).reply_text) == ("REPLIED", "OK boleh")


@pytest.mark.parametrize(
    ("sent_before", "replied"),
    [
        (dt.timedelta(hours=71, minutes=59), True),
        (dt.timedelta(hours=72), True),
        (dt.timedelta(hours=72, minutes=1), False),
        (-dt.timedelta(minutes=30), False),  # sent after the message was written
    ],
)
def test_the_reply_window_edge(engine: Engine, sent_before: dt.timedelta, replied: bool) -> None:
    written = at(10)
    rid = _recipient(engine, message_id="3EB0A", sent_at=written - sent_before)
    inbox_id, _ = _post(engine, _incoming("hi", when=written))
    assert (_row(engine, rid).status == "REPLIED") is replied
    assert _entry(engine, inbox_id).state == ("applied" if replied else "ignored")
    if not replied:
        assert "no message sent to +60123456789 in the 72 h before it" in _entry(engine, inbox_id).detail


def test_the_window_is_a_setting(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A", sent_at=at(10) - dt.timedelta(hours=5))
    _post(engine, _incoming("hi"), rules=WebhookRules(reply_window=dt.timedelta(hours=4)))
    assert _row(engine, rid).status == "PENDING"


def test_the_most_recent_sent_blast_gets_the_reply(engine: Engine) -> None:
    earlier = _recipient(engine, message_id="3EB0A", sent_at=at(9) - dt.timedelta(days=1))
    latest = _recipient(engine, message_id="3EB0B", sent_at=at(9))
    unsent = _recipient(engine, status=Status.QUEUED, sent_at=None)  # a newer blast, not sent yet
    _post(engine, _incoming("yes please"))
    assert [_row(engine, r).status for r in (earlier, latest, unsent)] == ["PENDING", "REPLIED", "QUEUED"]


def _unknown_send(engine: Engine, *, found_unknown: dt.datetime) -> int:
    """A send whose answer was lost: no message id, no send time, marked at `found_unknown`."""
    with transaction(engine) as s:
        return make_recipient(s, make_blast(s), phone_number=PHONE, status=Status.UNKNOWN.value,
                              error="timed out after the request left", updated_at=found_unknown).id


def test_a_reply_settles_a_send_whose_outcome_was_unknown(engine: Engine) -> None:
    earlier = _recipient(engine, message_id="3EB0A", sent_at=at(9) - dt.timedelta(days=1))
    unknown = _unknown_send(engine, found_unknown=at(9))
    inbox_id, _ = _post(engine, _incoming("Yes, I want it"))
    row = _row(engine, unknown)
    assert (row.status, row.reply_text, row.replied_at) == ("REPLIED", "Yes, I want it", at(10))
    assert _row(engine, earlier).status == "PENDING"
    assert _history(engine, unknown) == [("UNKNOWN", "REPLIED", "webhook")]
    assert _entry(engine, inbox_id).state == "applied"


@pytest.mark.parametrize(
    ("status", "found"),
    [
        pytest.param(Status.UNKNOWN, at(10) - dt.timedelta(hours=73), id="before-the-window"),
        pytest.param(Status.UNKNOWN, at(10) + dt.timedelta(minutes=5), id="after-the-reply"),
        pytest.param(Status.FAILED, at(9), id="refused-so-never-sent"),
        pytest.param(Status.QUEUED, at(9), id="not-sent-yet"),
    ],
)
def test_only_a_recent_unknown_send_takes_a_reply(engine: Engine, status: Status, found: dt.datetime) -> None:
    rid = _unknown_send(engine, found_unknown=found)
    with transaction(engine) as s:
        s.execute(BlastRecipient.__table__.update().where(BlastRecipient.id == rid)
                  .values(status=status.value, updated_at=found))
    inbox_id, _ = _post(engine, _incoming("hello"))
    assert _row(engine, rid).status == status.value
    assert _entry(engine, inbox_id).state == "ignored"


def _chat_ack(message_id: str, status: int, *, jid: str = "60123456789@s.whatsapp.net") -> dict:
    """Baileys' messages.update: the chat it names, and no time of its own."""
    return {"key": {"remoteJid": jid, "fromMe": True, "id": message_id}, "update": {"status": status}}


def test_an_ack_naming_the_number_settles_the_unknown_send_it_proves(engine: Engine) -> None:
    """The answer was lost, so no message id was stored; the gateway's acks still name the
    number. The first settles the send and stores its id; the rest then match by that id."""
    rid = _unknown_send(engine, found_unknown=at(9))
    first = at(9) - dt.timedelta(seconds=25)  # the send left before it timed out
    inbox_id, outcome = _post(engine, _chat_ack("3EB0LOST", 2), received_at=first)
    assert outcome is not None and outcome.state == "applied"
    assert "the unknown send to +60123456789" in outcome.detail
    row = _row(engine, rid)
    assert (row.status, row.message_id, row.sent_at) == ("SERVER_ACK", "3EB0LOST", first)
    _post(engine, _ack("3EB0LOST", "DELIVERY_ACK", at(9, 1)), received_at=at(9, 1))  # no chat: by id
    _post(engine, _ack("3EB0LOST", "READ", at(9, 2)), received_at=at(9, 2))
    row = _row(engine, rid)
    assert (row.status, row.delivered_at, row.read_timestamp) == ("READ_ACK", at(9, 1), at(9, 2))
    assert _history(engine, rid) == [("UNKNOWN", "SERVER_ACK", "webhook"),
                                     ("SERVER_ACK", "DELIVERY_ACK", "webhook"),
                                     ("DELIVERY_ACK", "READ_ACK", "webhook")]
    assert _entry(engine, inbox_id).state == "applied"


@pytest.mark.parametrize(
    ("ack", "when"),
    [
        pytest.param(_ack("3EB0LOST", "SERVER_ACK"), at(9), id="no-chat-named"),
        pytest.param(_chat_ack("3EB0LOST", 2, jid="120363025246125486@g.us"), at(9), id="a-group"),
        pytest.param(_chat_ack("3EB0LOST", 2, jid="60199999999@s.whatsapp.net"), at(9),
                     id="another-number"),
        pytest.param(_chat_ack("3EB0LOST", 0), at(9), id="an-error-proves-nothing-went"),
        pytest.param(_chat_ack("3EB0LOST", 2), at(9) - dt.timedelta(minutes=5), id="before-the-send"),
        pytest.param(_chat_ack("3EB0LOST", 2), at(9, 2) + dt.timedelta(seconds=1), id="after-the-send"),
        # A message typed on the phone to them a quarter of an hour later: its acks name them too.
        pytest.param(_chat_ack("3EB0HAND", 1), at(9, 15), id="typed-by-hand-later"),
    ],
)
def test_an_ack_that_does_not_prove_the_unknown_send_leaves_it_to_a_person(
    engine: Engine, ack: dict, when: dt.datetime
) -> None:
    """Lease 2 min, clock skew 2 min: the send left between 8:56 and 9:00, and the gateway's
    first ack of it came by 9:02."""
    rid = _unknown_send(engine, found_unknown=at(9))
    _, outcome = _post(engine, ack, received_at=when)
    assert outcome is not None and outcome.state in {"waiting", "ignored"}
    row = _row(engine, rid)
    assert (row.status, row.message_id) == ("UNKNOWN", None)
    assert _history(engine, rid) == []


def test_an_unknown_send_whose_sale_was_undone_is_not_proved_by_todays_message(engine: Engine) -> None:
    """Undoing a sale recorded on it by mistake changed the row, and its last change had stood
    for when it was found lost: a message typed on the phone to the person that minute settled
    it as gone, with that message's id."""
    from core.recipients import close_sale, undo_sales

    rid = _unknown_send(engine, found_unknown=at(9))
    with transaction(engine) as s:
        s.add(StatusHistory(recipient_id=rid, old_status="SENDING", new_status="UNKNOWN", changed_at=at(9),
                            source="send"))
    with transaction(engine) as s:
        close_sale(s, recipient_id=rid, source="manual")
    with transaction(engine) as s:
        assert undo_sales(s, recipient_ids=[rid]) == 1
    _, outcome = _post(engine, _chat_ack("3EB0HAND", 2), received_at=utcnow())
    assert outcome is not None and outcome.state == "waiting"
    assert (_row(engine, rid).status, _row(engine, rid).message_id) == ("UNKNOWN", None)


def test_an_ack_that_fits_two_unknown_sends_to_one_number_settles_neither(engine: Engine) -> None:
    both = [_unknown_send(engine, found_unknown=at(9)), _unknown_send(engine, found_unknown=at(9, 1))]
    _, outcome = _post(engine, _chat_ack("3EB0LOST", 3), received_at=at(9))
    assert outcome is not None and outcome.state == "waiting"
    assert [_row(engine, r).status for r in both] == ["UNKNOWN", "UNKNOWN"]


def test_two_ids_for_one_unknown_send_settle_it_with_neither(engine: Engine) -> None:
    """A message typed on the phone to the same person has acks too: which was ours?"""
    rid = _unknown_send(engine, found_unknown=at(9))
    _, outcome = _post(engine, [_chat_ack("3EB0LOST", 2), _chat_ack("3EB0HAND", 2)], received_at=at(9))
    assert outcome is not None and outcome.state == "waiting"
    assert _row(engine, rid).status == "UNKNOWN"


def test_once_settled_an_ack_for_another_id_to_that_number_waits(engine: Engine) -> None:
    rid = _unknown_send(engine, found_unknown=at(9))
    _post(engine, _chat_ack("3EB0LOST", 2), received_at=at(9))
    _, outcome = _post(engine, _chat_ack("3EB0HAND", 4), received_at=at(9, 1))
    assert outcome is not None and outcome.state == "waiting"
    row = _row(engine, rid)
    assert (row.status, row.message_id) == ("SERVER_ACK", "3EB0LOST")


def test_an_ack_that_beat_the_unknown_mark_is_settled_by_the_replay(engine: Engine) -> None:
    """The gateway took the message and acked it while our request was still timing out."""
    rid = _recipient(engine, status=Status.SENDING, sent_at=None)
    acked = utcnow() - dt.timedelta(seconds=20)
    inbox_id, outcome = _post(engine, _chat_ack("3EB0LOST", 2), received_at=acked)
    assert outcome is not None and outcome.state == "waiting"
    with transaction(engine) as s:  # what the send worker does on a read timeout
        apply_status(s, recipient_id=rid, status=Status.UNKNOWN, source="send", known_old=Status.SENDING,
                     updates={"error": "no answer"})
    assert replay_waiting(engine, rules=RULES).states == {"applied": 1}
    row = _row(engine, rid)
    assert (row.status, row.message_id, row.sent_at) == ("SERVER_ACK", "3EB0LOST", acked)
    assert _entry(engine, inbox_id).state == "applied"


def test_a_send_whose_worker_vanished_is_dated_by_its_lease_and_settled_by_the_ack_that_came_meanwhile(
    engine: Engine,
) -> None:
    """The worker died mid-send, and no worker ran for 40 minutes. The ack that proves the
    message went came a moment before its lease ran out; the next worker then found it unknown.
    It had been dated by that finding, 40 minutes on, which no ack could fit: the ack waited its
    hour and was set aside, and the message stayed unknown."""
    rid = _recipient(engine, status=Status.SENDING, sent_at=None)
    lease_ended = utcnow() - dt.timedelta(minutes=40)
    with transaction(engine) as s:
        s.get(BlastRecipient, rid).lease_expires_at = lease_ended
    acked = lease_ended - dt.timedelta(seconds=30)
    inbox_id, outcome = _post(engine, _chat_ack("3EB0LOST", 3), received_at=acked, now=utcnow())
    assert outcome is not None and outcome.state == "waiting"
    with transaction(engine) as s:
        assert expire_leases(s, now=utcnow()) == [rid]
    assert _history(engine, rid)[-1][1] == "UNKNOWN"
    with transaction(engine) as s:
        [found] = s.scalars(select(StatusHistory.changed_at).where(StatusHistory.recipient_id == rid))
    assert found == lease_ended
    assert replay_waiting(engine, rules=RULES).states == {"applied": 1}
    row = _row(engine, rid)
    assert (row.status, row.message_id, row.sent_at) == ("DELIVERY_ACK", "3EB0LOST", acked)
    assert _entry(engine, inbox_id).state == "applied"


def test_an_ack_for_a_message_being_sent_does_not_settle_an_earlier_unknown_send(engine: Engine) -> None:
    """Blast A's send to them was lost (unknown); blast B's message to them is with the gateway,
    and its ack comes before its answer is stored. The ack is B's: it waits for B's id instead
    of settling A's send with it (and B's own answer then failing to store an id taken)."""
    lost = _unknown_send(engine, found_unknown=at(9))
    being_sent = _recipient(engine, status=Status.SENDING, sent_at=None)
    inbox_id, outcome = _post(engine, _chat_ack("3EB0NEW", 2), received_at=at(9))
    assert outcome is not None and outcome.state == "waiting"
    assert (_row(engine, lost).status, _row(engine, lost).message_id) == ("UNKNOWN", None)
    _store_message_id(engine, being_sent, "3EB0NEW")
    assert replay_after_send(engine, message_ids=["3EB0NEW"], rules=RULES) == 1
    assert _entry(engine, inbox_id).state == "applied"
    assert (_row(engine, being_sent).status, _row(engine, lost).status) == ("SERVER_ACK", "UNKNOWN")


def test_a_message_without_a_time_is_judged_by_when_it_arrived(engine: Engine) -> None:
    rid = _recipient(engine, message_id="3EB0A", sent_at=at(9))
    # Applied days later (a replay): the window still counts from arrival, not from now.
    _post(engine, _incoming("hi", when=None), received_at=at(11), now=at(11) + dt.timedelta(days=5))
    row = _row(engine, rid)
    assert (row.status, row.replied_at) == ("REPLIED", at(11))


def test_an_auto_reply_that_beats_the_send_waits_for_it(engine: Engine) -> None:
    rid = _recipient(engine, status=Status.SENDING, sent_at=None)
    inbox_id, outcome = _post(engine, _incoming("Auto-reply: we are closed", when=at(9, 0)))
    assert outcome is not None and outcome.state == "waiting" and outcome.waiting_for == (PHONE,)
    _store_message_id(engine, rid, "3EB0A")  # stamps sent_at 09:00, a moment after the reply
    assert replay_after_send(engine, message_ids=["3EB0A"], rules=RULES) == 1
    assert _entry(engine, inbox_id).state == "applied"
    assert (_row(engine, rid).status, _row(engine, rid).reply_text) == (
        "REPLIED", "Auto-reply: we are closed")


def test_a_quick_reply_waits_for_the_follow_up_being_sent_instead_of_taking_the_earlier_message(
    engine: Engine,
) -> None:
    """Blast A reached them yesterday; follow-up B is with the gateway when they answer: the
    answer is B's (the most recent message), not A's, though A fits too."""
    earlier = _recipient(engine, message_id="3EB0A", sent_at=at(9) - dt.timedelta(hours=20))
    follow_up = _recipient(engine, status=Status.SENDING, sent_at=None)
    inbox_id, outcome = _post(engine, _incoming("Ok send me the price", when=at(9, 0)))
    assert outcome is not None and outcome.state == "waiting"
    _store_message_id(engine, follow_up, "3EB0B")
    assert replay_after_send(engine, message_ids=["3EB0B"], rules=RULES) == 1
    assert _row(engine, follow_up).status == "REPLIED"
    assert (_row(engine, earlier).status, _row(engine, earlier).reply_text) == ("PENDING", None)


def test_a_send_stuck_past_its_lease_is_not_waited_for(engine: Engine) -> None:
    """No worker is left to mark it unknown (they all stopped): the reply goes to the earlier
    message at once instead of waiting out the webhook's hour."""
    earlier = _recipient(engine, message_id="3EB0A", sent_at=at(9) - dt.timedelta(hours=20))
    stuck = _recipient(engine, status=Status.SENDING, sent_at=None)
    with transaction(engine) as s:
        s.get(BlastRecipient, stuck).lease_expires_at = utcnow() - dt.timedelta(minutes=1)
    _, outcome = _post(engine, _incoming("Ok", when=at(9, 0)))
    assert outcome is not None and outcome.state == "applied"
    assert (_row(engine, earlier).status, _row(engine, stuck).status) == ("REPLIED", "SENDING")


def test_a_reply_that_waited_for_a_send_later_found_unknown_settles_it(engine: Engine) -> None:
    """The worker stopped mid-send; the lease (2 min) ran out at 09:02 and housekeeping marked
    the send unknown at 09:03, three minutes after the reply that proves it went."""
    rid = _recipient(engine, status=Status.SENDING, sent_at=None)
    inbox_id, outcome = _post(engine, _incoming("Berapa harga?", when=at(9, 0)), received_at=at(9, 0))
    assert outcome is not None and outcome.state == "waiting"
    with transaction(engine) as s:
        row = s.get(BlastRecipient, rid)
        row.status, row.updated_at = Status.UNKNOWN.value, at(9, 3)
    assert replay_waiting(engine, rules=RULES, now=at(9, 4)).states == {"applied": 1}
    row = _row(engine, rid)
    assert (row.status, row.reply_text) == ("REPLIED", "Berapa harga?")
    assert _entry(engine, inbox_id).state == "applied"


@pytest.mark.parametrize(
    ("payload", "reason_part"),
    [
        pytest.param(_incoming("hello all", jid="120363025246125486@g.us",
                               participant="60123456789@s.whatsapp.net"), "group", id="group"),
        pytest.param(_incoming("my status", jid="status@broadcast"), "status post", id="status"),
        pytest.param(_incoming("promo", is_broadcast=True), "broadcast", id="broadcast-flag"),
        pytest.param({"key": {"remoteJid": "60123456789@s.whatsapp.net", "fromMe": True, "id": "X"},
                      "message": {"conversation": "Hi Customer!"}}, "echo", id="our-own-echo"),
        pytest.param(_incoming("hi", fromMe="true"), "echo", id="echo-form-style"),
        pytest.param(_incoming("hi", jid="60199999999@c.us"), "no message sent to +60199999999",
                     id="never-messaged"),
        # A channel's post: an address, not a person's number; no more to learn by keeping it.
        pytest.param(_incoming("Weekly deals", jid="120363144038483540@newsletter"),
                     "not from a person's number (newsletter)", id="a-channel"),
    ],
)
def test_messages_that_are_not_replies_are_ignored(engine: Engine, payload: dict, reason_part: str) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    inbox_id, _ = _post(engine, payload)
    entry = _entry(engine, inbox_id)
    assert (entry.state, entry.kind) == ("ignored", "message")
    assert reason_part in entry.detail
    assert _row(engine, rid).status == "PENDING"
    assert _history(engine) == []


@pytest.mark.parametrize(
    ("payload", "reason_part"),
    [
        pytest.param(_incoming("STOP", jid="5544332211@lid"), "privacy id", id="lid-without-phone"),
        pytest.param({"event": "message", "data": {"from": "ABCDEF@s.whatsapp.net", "body": "STOP",
                                                   "id": "3EB0FF"}}, "not a phone number", id="not-a-number"),
    ],
)
def test_a_message_whose_sender_cannot_be_read_is_set_aside_not_ignored(
    engine: Engine, payload: dict, reason_part: str
) -> None:
    """A STOP among them had been filed as "not needed", and its number kept being messaged."""
    rid = _recipient(engine, message_id="3EB0A")
    inbox_id, _ = _post(engine, payload)
    entry = _entry(engine, inbox_id)
    assert (entry.state, entry.kind) == ("unrecognised", "message")
    assert "a message whose sender cannot be read" in entry.detail and reason_part in entry.detail
    assert _row(engine, rid).status == "PENDING"


@pytest.mark.parametrize("sender", [60123456789, "60123456789@s.whatsapp.net/phone"])
def test_a_stop_from_a_number_written_as_json_digits_or_with_a_resource_is_honoured(
    engine: Engine, sender: object
) -> None:
    body = {"event": "message", "data": {"from": sender, "body": "STOP", "id": "3EB0FE"}}
    inbox_id, _ = _post(engine, body)
    assert _entry(engine, inbox_id).state != "unrecognised"
    assert [phone for phone, _, _ in _opt_outs(engine)] == ["+60123456789"]


# --- opt-outs ------------------------------------------------------------------------------


def _opt_outs(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    with transaction(engine) as s:
        return [(o.phone_number, o.source, o.keyword) for o in s.scalars(select(OptOut))]


@pytest.mark.parametrize(
    ("text", "keyword"),
    [("STOP", "STOP"), ("stop!", "STOP"), (" Berhenti. ", "BERHENTI"), ("Stop all", "STOP ALL"),
     ("NO MORE 🙏", "NO MORE"), ("tak-nak", "TAK NAK"), ("Unsubscribe", "UNSUBSCRIBE")],
)
def test_an_opt_out_word_suppresses_the_number_and_still_counts_as_a_reply(
    engine: Engine, text: str, keyword: str
) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, _incoming(text))
    _post(engine, _incoming(text, when=at(10, 5)))  # said twice: one entry
    assert _opt_outs(engine) == [(PHONE, "webhook", keyword)]
    assert (_row(engine, rid).status, _row(engine, rid).reply_text) == ("REPLIED", text)


@pytest.mark.parametrize("text", ["stop sending me ads please", "don't stop", "STOPP"])
def test_a_sentence_with_an_opt_out_word_is_only_a_reply(engine: Engine, text: str) -> None:
    rid = _recipient(engine, message_id="3EB0A")
    _post(engine, _incoming(text))
    assert _opt_outs(engine) == []
    assert _row(engine, rid).status == "REPLIED"


def test_more_opt_out_words_can_be_configured(engine: Engine) -> None:
    _recipient(engine, message_id="3EB0A")
    rules = WebhookRules(opt_out_words=(*RULES.opt_out_words, "Jangan hantar lagi"))
    _post(engine, _incoming("jangan hantar lagi!!"), rules=rules)
    assert _opt_outs(engine) == [(PHONE, "webhook", "JANGAN HANTAR LAGI")]


def test_an_opt_out_from_a_number_never_messaged_is_still_honoured(engine: Engine) -> None:
    inbox_id, outcome = _post(engine, _incoming("STOP", jid="60199999999@c.us"))
    assert _opt_outs(engine) == [("+60199999999", "webhook", "STOP")]
    assert outcome is not None and outcome.state == "applied"
    assert _history(engine) == []


def test_an_opt_out_word_in_a_group_is_not_an_opt_out(engine: Engine) -> None:
    _post(engine, _incoming("STOP", jid="120363025246125486@g.us"))
    _post(engine, _incoming("STOP", fromMe=True))
    assert _opt_outs(engine) == []


# --- health --------------------------------------------------------------------------------


def test_inbox_summary_counts_by_state(engine: Engine) -> None:
    with transaction(engine) as s:
        assert inbox_summary(s) == {"counts": dict.fromkeys(InboxState.ALL, 0), "total": 0,
                                    "last_received_at": None, "oldest_waiting_at": None}
    _recipient(engine, message_id="3EB0A")
    _post(engine, _ack("3EB0A", 3), received_at=at(10))
    _post(engine, _ack("3EB0NOPE", 3), received_at=at(10, 5))
    _post(engine, b"garbage", received_at=at(10, 10))
    _post(engine, _incoming("hi", jid="status@broadcast"), received_at=at(10, 20))
    with transaction(engine) as s:
        summary = inbox_summary(s)
    assert summary["counts"] == {"new": 0, "applied": 1, "ignored": 1, "waiting": 1,
                                 "unmatched": 0, "unparseable": 1, "unrecognised": 0, "failed": 0}
    assert summary["total"] == 4
    assert summary["last_received_at"] == at(10, 20)
    assert summary["oldest_waiting_at"] == at(10, 5)


# --- the secret ----------------------------------------------------------------------------


def _settings(**values: Any) -> Settings:
    values.setdefault("webhook_secret", None)
    return Settings(_env_file=None, public_url="https://blasts.example.com/", **values)


def test_a_generated_secret_is_made_once_and_kept(engine: Engine) -> None:
    settings = _settings()
    with transaction(engine) as s:
        first = current_secret(s, settings=settings)
    with transaction(engine) as s:
        assert current_secret(s, settings=settings) == first
        assert secret_matches(s, settings=settings, candidate=first)
        assert not secret_matches(s, settings=settings, candidate=first[:-1])
    assert len(first) >= 40


def test_the_setting_wins_over_a_stored_secret(engine: Engine) -> None:
    with transaction(engine) as s:
        generated = current_secret(s, settings=_settings())
        configured = _settings(webhook_secret="from-the-environment-0123456789")
        assert accepted_secrets(s, settings=configured) == ["from-the-environment-0123456789"]
        assert not secret_matches(s, settings=configured, candidate=generated)
        with pytest.raises(ConfigError):
            rotate_secret(s, settings=configured)


def test_rotation_keeps_the_old_secret_for_the_grace_period(engine: Engine) -> None:
    settings = _settings()
    with transaction(engine) as s:
        old = current_secret(s, settings=settings)
        new = rotate_secret(s, settings=settings, grace=dt.timedelta(hours=2), now=at(10))
    assert new != old
    with transaction(engine) as s:
        assert current_secret(s, settings=settings) == new
        assert secret_matches(s, settings=settings, candidate=old, now=at(11, 59))
        assert secret_matches(s, settings=settings, candidate=new, now=at(11, 59))
        assert not secret_matches(s, settings=settings, candidate=old, now=at(12, 1))
        assert secret_matches(s, settings=settings, candidate=new, now=at(12, 1))


@pytest.mark.parametrize("candidate", ["", "é-not-ascii", "x" * 5000, "\x00"])
def test_odd_candidates_are_refused_without_error(candidate: str) -> None:
    assert not matches_any(candidate, ["the-real-secret"])
    assert matches_any("the-real-secret", ["other", "the-real-secret"])


def test_webhook_url_is_masked_unless_revealed() -> None:
    settings = _settings()
    secret = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
    assert webhook_url(settings, secret, reveal=True) == (
        "https://blasts.example.com/webhooks/wsapme/" + secret)
    masked = webhook_url(settings, secret, reveal=False)
    assert masked.startswith("https://blasts.example.com/webhooks/wsapme/AbCd")
    assert secret[4:10] not in masked


def test_the_opt_out_table_count_is_unchanged_by_a_duplicate_number(engine: Engine) -> None:
    # Listing a number is an idempotent insert on both dialects, even in one transaction.
    from core.opt_outs import add_opt_outs

    with transaction(engine) as s:
        add_opt_outs(s, [PHONE], source="webhook", keyword="STOP")
        add_opt_outs(s, [PHONE], source="webhook", keyword="BERHENTI")
        assert s.scalar(select(func.count()).select_from(OptOut)) == 1


def test_an_entry_waiting_for_many_ids_is_applied_when_any_of_them_is_sent(engine: Engine) -> None:
    """A body of a thousand receipts names more ids than its words can hold: what it waits for
    is kept as values, so the send of the last one finds it at once."""
    from core.models import WebhookWaiting

    ids = [f"3EB0{n:018d}" for n in range(1000)]
    with transaction(engine) as s:
        entry = store_raw(s, body=json.dumps([{"id": m, "status": "DELIVERY_ACK"} for m in ids]).encode(),
                          content_type="application/json")
        assert process_entry(s, inbox_id=entry, rules=RULES).state == "waiting"
        assert ids[-1] not in s.get(WebhookInbox, entry).detail, "the words are cut"
    with transaction(engine) as s:
        blast = make_blast(s, state="sending")
        rid = make_recipient(s, blast, status="SERVER_ACK", message_id=ids[-1], sent_at=utcnow()).id
    with transaction(engine) as s:
        assert len(replay_for_message_ids(s, message_ids=[ids[-1]], rules=RULES)) == 1
    with transaction(engine) as s:
        assert s.get(BlastRecipient, rid).status == "DELIVERY_ACK"
        assert s.scalar(select(func.count()).select_from(WebhookWaiting)) == 999, "still waiting for the rest"
