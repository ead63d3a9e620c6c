"""The webhook parser: every payload class in wsapme-api.md, and no crash on any input."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.statuses import Status
from core.webhook.parse import (
    MAX_EVENTS,
    AckEvent,
    IncomingMessage,
    OtherEvent,
    ParseError,
    parse_webhook,
)

T = 1617690369
AT = dt.datetime.fromtimestamp(T, dt.UTC)
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _multipart(fields: dict[str, str], boundary: str = "b0undary") -> tuple[bytes, str]:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


AckTuple = tuple[tuple[str, ...], Status, dt.datetime | None]


def _acks(body: bytes, content_type: str | None = JSON, **kw: Any) -> list[AckTuple]:
    events = parse_webhook(body, content_type, **kw)
    assert isinstance(events, list), events
    assert all(isinstance(e, AckEvent) for e in events), events
    return [(e.message_ids, e.status, e.at) for e in events]


BAILEYS_READ = {"key": {"remoteJid": "60123456789@s.whatsapp.net", "fromMe": True, "id": "3EB0A"},
                "update": {"status": 4}}

ACK_PAYLOADS = [
    pytest.param(_json({"id": "3EB0A", "status": "DELIVERY_ACK", "timestamp": T}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, AT)], id="flat-id-status-name"),
    pytest.param(_json({"messageId": "3EB0A", "ack": 3, "timestamp": T * 1000}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, AT)], id="flat-messageId-ack-number-ms"),
    pytest.param(_json({"messageId": "3EB0A", "ack": "3", "timestamp": str(T)}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, AT)], id="number-and-time-as-strings"),
    pytest.param(_json({"id": "3EB0A", "status": "read", "timestamp": str(T * 1000)}), JSON,
                 [(("3EB0A",), Status.READ_ACK, AT)], id="lower-case-READ-ms-string"),
    pytest.param(_json({"id": "3EB0A", "status": "PLAYED"}), JSON,
                 [(("3EB0A",), Status.READ_ACK, None)], id="PLAYED-is-read"),
    pytest.param(_json({"id": "3EB0A", "status": "ERROR"}), JSON,
                 [(("3EB0A",), Status.FAILED, None)], id="ERROR-is-failed"),
    pytest.param(_json({"id": "3EB0A", "ack": 0}), JSON,
                 [(("3EB0A",), Status.FAILED, None)], id="baileys-0-is-error"),
    pytest.param(_json({"id": "3EB0A", "status": "READ", "ack": 2}), JSON,
                 [(("3EB0A",), Status.READ_ACK, None)], id="name-wins-over-number"),
    pytest.param(_json({"id": "3EB0A", "status": 4, "messageStatus": "DELIVERY_ACK"}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, None)], id="name-wins-over-an-earlier-number"),
    pytest.param(_json({"id": "3EB0A", "status": "SOMETHING", "ack": 2}), JSON,
                 [(("3EB0A",), Status.SERVER_ACK, None)], id="unknown-name-falls-to-number"),
    pytest.param(_json({"id": "3EB0A", "status": "DELIVERY_ACK", "timestamp": T + 0.5}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, AT + dt.timedelta(seconds=0.5))],
                 id="float-seconds"),
    pytest.param(_json(BAILEYS_READ), JSON, [(("3EB0A",), Status.READ_ACK, None)],
                 id="baileys-key-update"),
    pytest.param(_json({**BAILEYS_READ, "update": {"status": 5}}), JSON,
                 [(("3EB0A",), Status.READ_ACK, None)], id="baileys-played"),
    pytest.param(_json([BAILEYS_READ, {"key": {"id": "3EB0B"}, "update": {"status": 3}}]), JSON,
                 [(("3EB0A",), Status.READ_ACK, None), (("3EB0B",), Status.DELIVERY_ACK, None)],
                 id="list-of-items"),
    pytest.param(_json({"event": "message-ack",
                        "data": {"id": "3EB0A", "status": "READ", "timestamp": T}}), JSON,
                 [(("3EB0A",), Status.READ_ACK, AT)], id="wrapper-with-dict"),
    pytest.param(_json({"event": "messages.update", "data": [BAILEYS_READ]}), JSON,
                 [(("3EB0A",), Status.READ_ACK, None)], id="wrapper-with-list"),
    pytest.param(_json({"event": "x", "data": {"payload": {"updates": [BAILEYS_READ]}}}), JSON,
                 [(("3EB0A",), Status.READ_ACK, None)], id="nested-wrappers"),
    pytest.param(_json({"ids": ["3EB0A", "3EB0B"], "status": "SERVER_ACK", "t": T}), JSON,
                 [(("3EB0A", "3EB0B"), Status.SERVER_ACK, AT)], id="several-ids"),
    pytest.param(_json({"id": ["3EB0A", "3EB0B", "3EB0A"], "ack": 3}), JSON,
                 [(("3EB0A", "3EB0B"), Status.DELIVERY_ACK, None)], id="id-list-deduplicated"),
    pytest.param(_json({"key": [{"id": "3EB0A"}, {"id": "3EB0B"}], "update": {"status": 2}}), JSON,
                 [(("3EB0A", "3EB0B"), Status.SERVER_ACK, None)], id="list-of-keys"),
    pytest.param(_json({"id": {"fromMe": True, "remote": "60123@c.us", "id": "3EB0A",
                               "_serialized": "true_60123@c.us_3EB0A"},
                        "ack": 3, "body": "our text", "fromMe": True, "from": "60111@c.us"}),
                 JSON, [(("3EB0A",), Status.DELIVERY_ACK, None)],
                 id="wwebjs-message-object-is-an-ack-not-a-message"),
    pytest.param(_json({"id": "3EB0A", "status": "DELIVERY_ACK", "remoteJid": "60123@s.whatsapp.net",
                        "message": "Hi Customer!"}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, None)], id="ack-repeating-our-text-and-chat"),
    pytest.param(_json({"key": {"remoteJid": "60123@s.whatsapp.net", "fromMe": True, "id": "3EB0A"},
                        "message": {"conversation": "Hi Customer!"}, "messageTimestamp": T - 3600,
                        "messageC2STimestamp": T - 3600, "status": "READ"}), JSON,
                 [(("3EB0A",), Status.READ_ACK, None)],
                 id="ack-as-the-whole-message-its-send-time-is-not-the-read-time"),
    pytest.param(_json({"key": {"id": "3EB0A"}, "messageTimestamp": T - 3600, "update": {"status": 4,
                        "timestamp": T}}), JSON,
                 [(("3EB0A",), Status.READ_ACK, AT)], id="ack-time-beside-the-send-time"),
    pytest.param(_json({"key": {"id": "3EB0A"}, "messageTimestamp": T - 3600, "messageC2STimestamp": T,
                        "status": "DELIVERY_ACK"}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, AT)], id="the-delivery-time-times-a-delivery"),
    pytest.param(_json({"key": {"id": "3EB0A"}, "receipt": {"readTimestamp": T}}), JSON,
                 [(("3EB0A",), Status.READ_ACK, AT)], id="baileys-receipt-read"),
    pytest.param(_json({"key": {"id": "3EB0A"}, "receipt": {"receiptTimestamp": str(T)}}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, AT)], id="baileys-receipt-delivered"),
    pytest.param(_json({"id": "3EB0A", "status": "DELIVERY_ACK",
                        "timestamp": {"low": T, "high": 0, "unsigned": False}}), JSON,
                 [(("3EB0A",), Status.DELIVERY_ACK, AT)], id="protobuf-long-time"),
    pytest.param(urlencode({"id": "3EB0A", "status": "DELIVERY_ACK", "timestamp": T}).encode(),
                 FORM, [(("3EB0A",), Status.DELIVERY_ACK, AT)], id="form"),
    pytest.param(urlencode({"event": "message-ack",
                            "data": json.dumps({"messageId": "3EB0A", "ack": 4})}).encode(),
                 FORM, [(("3EB0A",), Status.READ_ACK, None)], id="form-field-holding-json"),
    pytest.param(b"ids[]=3EB0A&ids[]=3EB0B&status=READ", FORM,
                 [(("3EB0A", "3EB0B"), Status.READ_ACK, None)], id="form-repeated-ids"),
    pytest.param(b"key[id]=3EB0A&key[fromMe]=true&update[status]=3", FORM,
                 [(("3EB0A",), Status.DELIVERY_ACK, None)], id="form-bracket-nesting"),
    pytest.param(_json({"id": "3EB0A", "status": "SERVER_ACK"}), "text/plain",
                 [(("3EB0A",), Status.SERVER_ACK, None)], id="json-labelled-text"),
    pytest.param(_json({"id": "3EB0A", "status": "SERVER_ACK"}), FORM,
                 [(("3EB0A",), Status.SERVER_ACK, None)], id="json-labelled-form"),
    pytest.param(_json({"id": "3EB0A", "status": "SERVER_ACK"}), None,
                 [(("3EB0A",), Status.SERVER_ACK, None)], id="no-content-type"),
    pytest.param(b"\xef\xbb\xbf" + _json({"id": "3EB0A", "status": 2}), JSON,
                 [(("3EB0A",), Status.SERVER_ACK, None)], id="json-with-bom"),
]


@pytest.mark.parametrize(("body", "content_type", "expected"), ACK_PAYLOADS)
def test_ack_payloads(body: bytes, content_type: str | None, expected: list) -> None:
    assert _acks(body, content_type) == expected


@pytest.mark.parametrize(
    ("payload", "phone"),
    [
        pytest.param({"key": {"remoteJid": "60123456789@s.whatsapp.net", "fromMe": True, "id": "3EB0A"},
                      "update": {"status": 2}}, "+60123456789", id="baileys-key"),
        pytest.param({"id": "3EB0A", "status": "SERVER_ACK", "to": "60123456789@c.us"}, "+60123456789",
                     id="flat-to"),
        pytest.param({"event": "message-ack", "data": {"id": "3EB0A", "status": "READ",
                                                       "remoteJid": "60123456789:12@s.whatsapp.net"}},
                     "+60123456789", id="event-with-device-suffix"),
        pytest.param({"key": {"remoteJid": "1234567@lid", "remoteJidAlt": "60123456789@s.whatsapp.net",
                              "id": "3EB0A"}, "update": {"status": 3}}, "+60123456789",
                     id="privacy-id-with-phone-beside"),
        pytest.param({"key": {"remoteJid": "1234567@lid", "id": "3EB0A"}, "update": {"status": 3}}, None,
                     id="privacy-id-alone"),
        pytest.param({"key": {"remoteJid": "120363025246125486@g.us", "id": "3EB0A"},
                      "update": {"status": 3}}, None, id="group"),
        pytest.param({"id": "3EB0A", "status": "SERVER_ACK", "timestamp": T}, None, id="no-chat"),
    ],
)
def test_an_ack_names_the_number_its_message_went_to(payload: dict, phone: str | None) -> None:
    [event] = parse_webhook(_json(payload), JSON)
    assert isinstance(event, AckEvent) and event.message_ids == ("3EB0A",)
    assert event.phone == phone


def test_multipart_form_post() -> None:
    body, content_type = _multipart({"id": "3EB0A", "status": "READ", "timestamp": str(T)})
    assert _acks(body, content_type) == [(("3EB0A",), Status.READ_ACK, AT)]


def test_multipart_field_holding_json() -> None:
    body, content_type = _multipart({"data": json.dumps([BAILEYS_READ])})
    assert _acks(body, content_type) == [(("3EB0A",), Status.READ_ACK, None)]


@pytest.mark.parametrize(
    ("number", "baileys", "wwebjs"),
    [
        (-1, None, Status.FAILED),
        (0, Status.FAILED, Status.PENDING),
        (1, Status.PENDING, Status.SERVER_ACK),
        (2, Status.SERVER_ACK, Status.DELIVERY_ACK),
        (3, Status.DELIVERY_ACK, Status.READ_ACK),
        (4, Status.READ_ACK, Status.READ_ACK),
        (5, Status.READ_ACK, None),
    ],
)
def test_numbers_follow_the_numbering_setting(
    number: int, baileys: Status | None, wwebjs: Status | None
) -> None:
    for numbering, expected in (("baileys", baileys), ("wwebjs", wwebjs)):
        for value in (number, str(number)):
            events = parse_webhook(_json({"id": "3EB0A", "ack": value}), JSON, numbering=numbering)
            if expected is None:
                assert events == [OtherEvent("an object with an unknown status " + repr(value),
                                             unread_message=True)]
            else:
                assert [e.status for e in events] == [expected], (numbering, value)


def test_names_ignore_the_numbering_setting() -> None:
    body = _json({"id": "3EB0A", "status": "DELIVERY_ACK"})
    assert _acks(body, numbering="wwebjs") == _acks(body, numbering="baileys")


DOCUMENTED_INCOMING = {
    "type": "text", "message": "Hellow World!", "file": "", "from": "601133428730@c.us",
    "timestamp": T, "is_forwarded": False, "is_broadcast": False, "dataSender": "",
    "dataReceiver": {"jid": "601140464720@s.whatsapp.net", "name": "Wsapme Demo",
                     "phone": {}, "imgUrl": ""},
}


def _message(body: bytes, content_type: str | None = JSON) -> IncomingMessage:
    events = parse_webhook(body, content_type)
    assert isinstance(events, list) and len(events) == 1, events
    assert isinstance(events[0], IncomingMessage), events
    return events[0]


def _baileys_message(jid: str, text_message: dict[str, Any], **key: Any) -> bytes:
    return _json({"key": {"remoteJid": jid, "fromMe": False, "id": "IN1", **key},
                  "message": text_message, "messageTimestamp": str(T)})


def test_a_deleted_message_or_chat_setting_is_not_a_reply() -> None:
    body = _baileys_message("601133428730@s.whatsapp.net",
                            {"protocolMessage": {"key": {"id": "IN0"}, "type": "REVOKE"}})
    [event] = parse_webhook(body, JSON)
    assert isinstance(event, OtherEvent) and "not a reply" in event.reason


@pytest.mark.parametrize(
    ("body", "content_type", "phone", "kind", "text", "from_me"),
    [
        pytest.param(_json(DOCUMENTED_INCOMING), JSON, "+601133428730", "person",
                     "Hellow World!", False, id="documented-example"),
        pytest.param(urlencode({**DOCUMENTED_INCOMING, "dataReceiver": "", "is_broadcast": "false",
                                "is_forwarded": "false"}).encode(),
                     FORM, "+601133428730", "person", "Hellow World!", False, id="documented-as-form"),
        pytest.param(_json({**DOCUMENTED_INCOMING, "from": "601133428730@s.whatsapp.net"}), JSON,
                     "+601133428730", "person", "Hellow World!", False, id="s.whatsapp.net"),
        pytest.param(_json({**DOCUMENTED_INCOMING, "from": "601133428730:12@s.whatsapp.net"}), JSON,
                     "+601133428730", "person", "Hellow World!", False, id="device-suffix"),
        pytest.param(_baileys_message("601133428730@s.whatsapp.net", {"conversation": "ok"}),
                     JSON, "+601133428730", "person", "ok", False, id="baileys-conversation"),
        pytest.param(_baileys_message("99887766@lid", {"extendedTextMessage": {"text": "yes"}},
                                      remoteJidAlt="601133428730@s.whatsapp.net"),
                     JSON, "+601133428730", "lid", "yes", False, id="lid-with-remoteJidAlt"),
        pytest.param(_json({"from": "99887766@lid", "participantAlt": "601133428730@c.us",
                            "text": "hi", "timestamp": T}),
                     JSON, "+601133428730", "lid", "hi", False, id="lid-with-participantAlt"),
        pytest.param(_json({"from": "99887766@lid", "body": "hi", "timestamp": T}), JSON,
                     None, "lid", "hi", False, id="lid-without-alt"),
        pytest.param(_json({**DOCUMENTED_INCOMING, "from": "1203630@g.us"}), JSON,
                     None, "group", "Hellow World!", False, id="group"),
        pytest.param(_json({**DOCUMENTED_INCOMING, "from": "status@broadcast"}), JSON,
                     None, "broadcast", "Hellow World!", False, id="status-post"),
        pytest.param(b"from=601133428730%40c.us&message=hello&fromMe=true&timestamp=1617690369",
                     FORM, "+601133428730", "person", "hello", True, id="echo-fromMe-text-true"),
        pytest.param(_baileys_message("601133428730@s.whatsapp.net", {"conversation": "ok"}
                                      )[:-1] + b', "status": "DELIVERY_ACK"}',
                     JSON, "+601133428730", "person", "ok", False,
                     id="someone-elses-message-with-a-status-of-its-own"),
        pytest.param(_json({"id": {"fromMe": False, "id": "IN1"}, "ack": 1, "fromMe": False,
                            "from": "601133428730@c.us", "body": "ok", "timestamp": T}),
                     JSON, "+601133428730", "person", "ok", False, id="wwebjs-incoming-with-ack"),
        pytest.param(_baileys_message("601133428730@s.whatsapp.net", {"stickerMessage": {}}),
                     JSON, "+601133428730", "person", "", False, id="no-text-still-a-message"),
        pytest.param(_baileys_message("601133428730@s.whatsapp.net",
                                      {"reactionMessage": {"key": {"id": "3EB0OURS"}, "text": "👍"}}),
                     JSON, "+601133428730", "person", "👍", False, id="a-reaction-says-its-emoji"),
    ],
)
def test_incoming_messages(
    body: bytes, content_type: str, phone: str | None, kind: str, text: str, from_me: bool
) -> None:
    message = _message(body, content_type)
    assert (message.phone, message.jid_kind, message.text, message.from_me) == (
        phone, kind, text, from_me)
    assert message.at == AT


def test_incoming_in_a_baileys_upsert_wrapper() -> None:
    body = _json({"event": "messages.upsert", "data": {"type": "notify", "messages": [
        json.loads(_baileys_message("601133428730@c.us", {"conversation": "Berapa harga?"}))]}})
    message = _message(body)
    assert (message.phone, message.text) == ("+601133428730", "Berapa harga?")


IN_A_DISAPPEARING_CHAT = {
    "key": {"remoteJid": "60123456789@s.whatsapp.net", "fromMe": False},
    "message": {"ephemeralMessage": {"message": {"extendedTextMessage": {"text": "STOP"}}}},
}


@pytest.mark.parametrize(
    ("message", "text"),
    [
        pytest.param({"ephemeralMessage": {"message": {"conversation": "Berapa?"}}}, "Berapa?",
                     id="disappearing"),
        pytest.param({"viewOnceMessage": {"message": {"imageMessage": {"caption": "this one"}}}},
                     "this one", id="view-once"),
        pytest.param({"viewOnceMessageV2": {"message": {"videoMessage": {"caption": "this one"}}}},
                     "this one", id="view-once-v2"),
        pytest.param({"viewOnceMessageV2Extension": {"message": {"audioMessage": {}}}}, "",
                     id="view-once-voice-note"),
        pytest.param({"documentWithCaptionMessage": {"message": {"documentMessage": {
            "caption": "my order form", "fileName": "order.pdf"}}}}, "my order form",
                     id="document-with-caption"),
        pytest.param({"editedMessage": {"message": {"protocolMessage": {
            "key": {"id": "IN0"}, "type": 14, "editedMessage": {"conversation": "2 boxes, not 3"}}}}},
                     "2 boxes, not 3", id="edited"),
        pytest.param({"ephemeralMessage": {"message": {"viewOnceMessageV2": {"message": {
            "imageMessage": {"caption": "both"}}}}}}, "both", id="view-once-in-a-disappearing-chat"),
    ],
)
def test_a_message_inside_a_baileys_wrapper_keeps_its_text(message: dict, text: str) -> None:
    assert _message(_baileys_message("601133428730@s.whatsapp.net", message)).text == text


def test_stop_in_a_disappearing_chat_is_read() -> None:
    message = _message(_json(IN_A_DISAPPEARING_CHAT))
    assert (message.phone, message.text, message.from_me) == ("+60123456789", "STOP", False)


def test_a_deletion_in_a_disappearing_chat_is_not_a_reply() -> None:
    body = _baileys_message("601133428730@s.whatsapp.net", {"ephemeralMessage": {"message": {
        "protocolMessage": {"key": {"id": "IN0"}, "type": "REVOKE"}}}})
    [event] = parse_webhook(body, JSON)
    assert isinstance(event, OtherEvent) and "not a reply" in event.reason


def test_wrappers_are_followed_only_so_deep() -> None:
    message: dict = {"conversation": "deep"}
    for _ in range(50):
        message = {"ephemeralMessage": {"message": message}}
    body = _baileys_message("601133428730@s.whatsapp.net", message)
    assert _message(body).text == ""


@pytest.mark.parametrize(
    ("message", "quoted_id"),
    [
        pytest.param({"extendedTextMessage": {"text": "ok", "contextInfo": {"stanzaId": "3EB0OURS"}}},
                     "3EB0OURS", id="quoted-text"),
        pytest.param({"imageMessage": {"caption": "this", "contextInfo": {"stanzaId": "3EB0OURS"}}},
                     "3EB0OURS", id="quoted-with-a-photo"),
        pytest.param({"ephemeralMessage": {"message": {"extendedTextMessage": {
            "text": "ok", "contextInfo": {"stanzaId": "3EB0OURS"}}}}}, "3EB0OURS",
                     id="quoted-in-a-disappearing-chat"),
        pytest.param({"reactionMessage": {"key": {"id": "3EB0OURS"}, "text": "👍"}}, "3EB0OURS",
                     id="reacted-to"),
        pytest.param({"extendedTextMessage": {"text": "ok", "contextInfo": {"stanzaId": ""}}}, None,
                     id="empty-id"),
        pytest.param({"conversation": "ok"}, None, id="not-quoting"),
    ],
)
def test_the_message_a_reply_quotes_is_read(message: dict, quoted_id: str | None) -> None:
    assert _message(_baileys_message("601133428730@s.whatsapp.net", message)).quoted_id == quoted_id


@pytest.mark.parametrize(
    ("payload", "message_type", "text"),
    [
        pytest.param(DOCUMENTED_INCOMING, "text", "Hellow World!", id="wsapme-text"),
        pytest.param({**DOCUMENTED_INCOMING, "type": "call_log", "message": None}, "call_log", "",
                     id="wsapme-call-without-text"),
        pytest.param({**DOCUMENTED_INCOMING, "type": "revoked", "message": ""}, "revoked", "",
                     id="wsapme-revoked"),
        pytest.param(json.loads(_baileys_message("601133428730@c.us", {
            "reactionMessage": {"key": {"id": "3EB0OURS"}, "text": ""}})), "reactionMessage", "",
                     id="reaction-removed"),
        pytest.param(json.loads(_baileys_message("601133428730@c.us", {
            "messageContextInfo": {}, "pollUpdateMessage": {"pollCreationMessageKey": {"id": "P1"}}})),
                     "pollUpdateMessage", "", id="poll-vote"),
    ],
)
def test_what_kind_of_message_it_is(payload: dict, message_type: str, text: str) -> None:
    message = _message(_json(payload))
    assert (message.message_type, message.text) == (message_type, text)


@pytest.mark.parametrize(
    ("jid", "phone"),
    [("0123456789", "+60123456789"), ("0123456789@c.us", "+60123456789"),
     ("+60 12-345 6789", "+60123456789"), ("0000000000@c.us", None)],
)
@pytest.mark.usefixtures("in_malaysia")
def test_a_sender_written_the_local_way_is_read_in_the_region(jid: str, phone: str | None) -> None:
    assert _message(_json({**DOCUMENTED_INCOMING, "from": jid})).phone == phone


def test_broadcast_flag_is_read_from_text_and_bools() -> None:
    assert _message(_json({**DOCUMENTED_INCOMING, "is_broadcast": True})).is_broadcast
    form = urlencode({"from": "601133428730@c.us", "message": "x", "is_broadcast": "false"})
    assert not _message(form.encode(), FORM).is_broadcast


@pytest.mark.parametrize(
    ("body", "content_type", "reason_part"),
    [
        (b"", JSON, "empty"),
        (b"   \n", JSON, "empty"),
        (b'{"id": "3EB0A", ', JSON, "not valid JSON"),
        (b"42", JSON, "neither an object nor a list"),
        (b'"id=3"', JSON, "neither an object nor a list"),
        (b"<xml a='1'/>", "application/xml", "not JSON or a form"),
        (b"hello there", "text/plain", "not JSON or a form"),
        (b"[" * 50_000, JSON, "nested too deeply"),
        (b"\xff\xfe\xfd{", JSON, "not valid JSON"),
        (b"--nothing", "multipart/form-data; boundary=zzz", "multipart form with no fields"),
    ],
)
def test_unreadable_bodies_give_a_reason(body: bytes, content_type: str, reason_part: str) -> None:
    result = parse_webhook(body, content_type)
    assert isinstance(result, ParseError)
    assert reason_part in result.reason


@pytest.mark.parametrize(
    ("payload", "reason_part"),
    [
        ({"event": "connection.update", "data": {"state": "open"}}, "connection.update"),
        ({"id": "3EB0A", "status": "DELETED"}, "unknown status 'DELETED'"),
        ({"id": "3EB0A"}, "no status"),
        ([1, 2], "not an object"),
    ],
)
def test_readable_but_not_an_event(payload: object, reason_part: str) -> None:
    events = parse_webhook(_json(payload), JSON)
    assert isinstance(events, list) and events
    assert all(isinstance(e, OtherEvent) for e in events)
    assert reason_part in events[0].reason


def test_an_empty_list_has_no_events() -> None:
    assert parse_webhook(b"[]", JSON) == []


def test_stored_events_are_safe_for_both_databases() -> None:
    """PostgreSQL refuses NUL in text and NaN in JSON: the parser takes them out."""
    body = b'{"from": "601133428730@c.us", "message": "hi\\u0000there", "n": NaN, "timestamp": 1}'
    message = _message(body)
    assert message.text == "hithere"
    json.dumps(message.raw, allow_nan=False)


# --- no input makes the parser raise ----------------------------------------------------

FIELD_NAMES = ["id", "messageId", "ids", "status", "ack", "timestamp", "t", "key", "update",
               "event", "data", "from", "message", "text", "body", "fromMe", "remoteJid",
               "remoteJidAlt", "participantAlt", "is_broadcast", "receipt", "messages", "low"]
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.text(max_size=30) | st.sampled_from(["READ", "3", "-1", "601133428730@c.us",
                                                     "x@lid", "status@broadcast", "1617690369000"]))
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), inner, max_size=6),
    max_leaves=40,
)
CONTENT_TYPES = st.sampled_from([None, JSON, FORM, "text/plain", "multipart/form-data",
                                 "multipart/form-data; boundary=x", "application/xml", "", "\x00"])


def _check_result(result: object) -> None:
    if isinstance(result, ParseError):
        assert isinstance(result.reason, str) and result.reason
        return
    assert isinstance(result, list)
    for event in result:
        assert isinstance(event, AckEvent | IncomingMessage | OtherEvent)
        if isinstance(event, AckEvent):
            assert event.message_ids and isinstance(event.status, Status)
        if isinstance(event, AckEvent | IncomingMessage):
            assert event.at is None or event.at.tzinfo is not None
            json.dumps(event.raw, allow_nan=False)


@settings(max_examples=400, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=2000), content_type=CONTENT_TYPES)
def test_arbitrary_bytes_never_raise(body: bytes, content_type: str | None) -> None:
    _check_result(parse_webhook(body, content_type))


@settings(max_examples=400, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(value=JSONISH, numbering=st.sampled_from(["baileys", "wwebjs"]))
def test_arbitrary_json_structures_never_raise(value: object, numbering: str) -> None:
    _check_result(parse_webhook(json.dumps(value).encode(), JSON, numbering=numbering))


@settings(max_examples=200, deadline=5000)
@given(fields=st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8),
                              st.text(max_size=40) | JSONISH.map(json.dumps), max_size=8))
def test_arbitrary_forms_never_raise(fields: dict[str, str]) -> None:
    _check_result(parse_webhook(urlencode(fields).encode(), FORM))
    body, content_type = _multipart({k.replace('"', ""): v for k, v in fields.items()} or {"a": "b"})
    _check_result(parse_webhook(body, content_type))


def test_a_large_body_stops_at_the_most_events_and_says_what_it_left_out() -> None:
    # No clock here: a busy machine's pauses are not the parser's (its pathological inputs are
    # the property tests' above, with a generous deadline).
    items = [{"key": {"id": f"3EB{i:06d}"}, "update": {"status": 3}} for i in range(12_000)]
    body = _json(items)
    assert len(body) < 1_000_000
    events = parse_webhook(body, JSON)
    assert isinstance(events, list) and len(events) == MAX_EVENTS + 1
    assert all(isinstance(e, AckEvent) for e in events[:-1])
    assert events[-1] == OtherEvent(f"more than {MAX_EVENTS} events in one body; the rest were not read")


def test_the_everyday_ack_read_the_short_way_is_read_as_the_long_way_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_plain_ack` takes a short cut for the commonest body: over thousands of bodies of
    that shape and its near misses, it must give exactly what the general reader gives."""
    import random

    from core.webhook import parse

    rng = random.Random(8)
    ids = ["3EB0A1", " 3EB0A1 ", "", "   ", 12345, 0, True, None, "x" * 255, "x" * 256, ["3EB0", "3EB1"],
           {"id": "3EB0"}]
    statuses = ["DELIVERY_ACK", "READ", "read", "played", "3", "2", 2, 3, 4, -1, 0, 1.0, 7, True, None,
                "SERVER_ACK", "ERROR", "nonsense", "x" * 41, 10**9]
    times = [1764111111, 1764111111000, "1764111111", "2026-11-25T10:00:00", 0, -5, None, "soon", 1.5e9,
             True, 10**25]
    events = ["message-ack", "messages.update", "ack", "", None, 3]
    bodies = []
    for _ in range(4000):
        data = {"id": rng.choice(ids), "status": rng.choice(statuses), "timestamp": rng.choice(times)}
        for key in list(data):
            if rng.random() < 0.15:
                del data[key]
        if rng.random() < 0.1:
            data[rng.choice(["ack", "text", "from", "fromMe", "receipt", "messageId"])] = rng.choice(
                ["x", 3, True, {"readTimestamp": 1764111111}])
        wrapper: dict = {"event": rng.choice(events), "data": data}
        if rng.random() < 0.05:
            wrapper["extra"] = 1
        if rng.random() < 0.05:
            del wrapper["event"]
        bodies.append(json.dumps(wrapper).encode())

    for numbering in ("baileys", "wwebjs"):
        short = [parse_webhook(b, "application/json", numbering=numbering) for b in bodies]
        with monkeypatch.context() as m:
            m.setattr(parse, "_plain_ack", lambda decoded, numbering: None)
            long = [parse_webhook(b, "application/json", numbering=numbering) for b in bodies]
        assert short == long
    taken = sum(parse._plain_ack(json.loads(b), numbering="baileys") is not None for b in bodies)
    assert 500 < taken < 3500  # both ways were exercised


BODY_TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "é", "\ud83d"]),
                    max_size=12)
RAW_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | BODY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(BODY_TEXT, inner, max_size=4),
    max_leaves=60,
)


@settings(max_examples=500, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(value=RAW_JSONISH, ascii_only=st.booleans(), nest=st.integers(0, 40))
def test_a_body_read_without_scrubbing_is_what_scrubbing_would_give(
    value: object, ascii_only: bool, nest: int
) -> None:
    """`_decode_json` skips `_scrub` for bodies that cannot hold what it removes: whatever
    the body (NUL, surrogates, infinities, deep nesting, UTF-8 or escaped), the result is
    the scrubbed one."""
    from core.webhook import parse

    for _ in range(nest):
        value = [value]
    try:
        text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
        body = text.encode("utf-8", errors="surrogatepass")
    except (ValueError, RecursionError):
        return
    assert parse._decode_json(body) == parse._scrub(json.loads(body, parse_constant=str), depth=0)


def test_numbers_too_large_for_a_float_are_kept_as_text() -> None:
    from core.webhook import parse

    assert parse._decode_json(b'[1e999, {"a": -1e999, "b": 1.5}]') == ["inf", {"a": "-inf", "b": 1.5}]


def test_a_message_carries_its_own_id_apart_from_the_one_it_quotes() -> None:
    quoting = {"extendedTextMessage": {"text": "Still got?", "contextInfo": {"stanzaId": "3EB0RAYA"}}}
    message = _message(_baileys_message("601133428730@s.whatsapp.net", quoting))
    assert (message.message_id, message.quoted_id) == ("IN1", "3EB0RAYA")
