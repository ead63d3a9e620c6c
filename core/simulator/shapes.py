"""The simulator's wire shapes: message ids, send and look-up answers, webhook payloads."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from core.statuses import Status
from core.wsapme.answers import ACK_NUMBERS, AckNumbering

IdPlace = Literal["data.key.id", "messageId", "data.id", "data.messageId"]
TimestampForm = Literal["string", "number", "string_ms", "number_ms", "none"]
StatusForm = Literal["name", "number"]
StatusPlace = Literal["status", "data.status", "data.messages.status"]
MIXED = "mixed"

ID_PLACES: tuple[IdPlace, ...] = ("data.key.id", "messageId", "data.id", "data.messageId")
TIMESTAMP_FORMS: tuple[TimestampForm, ...] = ("string", "number", "string_ms", "number_ms", "none")
STATUS_FORMS: tuple[StatusForm, ...] = ("name", "number")
STATUS_PLACES: tuple[StatusPlace, ...] = ("status", "data.status", "data.messages.status")

# Webhook shapes (wsapme-api.md): acks come in all six; replies as JSON, or form for "form".
ACK_SHAPES = ("flat", "flat_ack", "baileys", "list", "event", "form")
# JSON mostly, some form posts.
SHAPE_WEIGHTS = {"flat": 20, "flat_ack": 15, "baileys": 25, "list": 10, "event": 15, "form": 15}

HEX = "0123456789ABCDEF"


@dataclass(frozen=True)
class AnswerStyle:
    """How send answers and look-ups are written; each field a fixed form or "mixed"."""

    id_place: str = "data.key.id"
    timestamp: str = "string"
    status: str = MIXED
    # None: getMessageStatus answers in data.status, messageInfo in data.messages.status.
    lookup_status_place: str | None = None

    def __post_init__(self) -> None:
        _check("id_place", self.id_place, ID_PLACES)
        _check("timestamp", self.timestamp, TIMESTAMP_FORMS)
        _check("status", self.status, STATUS_FORMS)
        if self.lookup_status_place is not None:
            _check("lookup_status_place", self.lookup_status_place, STATUS_PLACES, mixed=False)


def _check(name: str, value: str, allowed: tuple[str, ...], *, mixed: bool = True) -> None:
    if value not in allowed and not (mixed and value == MIXED):
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


def pick(rng: random.Random, value: str, choices: tuple[str, ...]) -> str:
    return rng.choice(choices) if value == MIXED else value


def new_message_id(rng: random.Random) -> str:
    """Like WhatsApp Web's own ids: 3EB0 and 18 upper-case hex characters."""
    return "3EB0" + "".join(rng.choice(HEX) for _ in range(18))


# Where the gateway's name for a status is not ours.
WIRE_NAMES = {Status.FAILED: "ERROR"}


def status_value(status: Status, *, form: str, numbering: AckNumbering) -> str | int:
    if form == "name":
        return WIRE_NAMES.get(status, str(status))
    numbers = {s: n for n, s in sorted(ACK_NUMBERS[numbering].items(), reverse=True)}
    return numbers[status]  # the lowest number for a status (READ_ACK is 4, not PLAYED's 5)


def timestamp_value(seconds: float, form: str) -> str | int | None:
    if form == "none":
        return None
    value = int(seconds * 1000) if form.endswith("_ms") else int(seconds)
    return str(value) if form.startswith("string") else value


def send_answer(
    *,
    message_id: str,
    jid: str,
    text: str,
    sent_at: float,
    id_place: str,
    timestamp_form: str,
    status: str | int,
) -> dict[str, Any]:
    """A successful send answer, the message id only where `id_place` says."""
    data: dict[str, Any] = {
        "message": {"extendedTextMessage": {"text": text}},
        "status": status,
    }
    stamp = timestamp_value(sent_at, timestamp_form)
    if stamp is not None:
        data["messageTimestamp"] = stamp
    body: dict[str, Any] = {"success": True, "message": "Sent successfully", "data": data}
    if id_place == "data.key.id":
        data["key"] = {"remoteJid": jid, "fromMe": True, "id": message_id}
    elif id_place == "messageId":
        body["messageId"] = message_id
    else:
        data[id_place.removeprefix("data.")] = message_id
    return body


def failure(message: str) -> dict[str, Any]:
    return {"success": False, "message": message}


EMPTY_LOOKUP = {"success": False, "message": "messageInfo ", "data": {}}


def lookup_answer(
    *, message_id: str, status: str | int, delivered_at: int | None, place: str
) -> dict[str, Any]:
    """A look-up answer with the status (and delivery time) at `place`."""
    fields: dict[str, Any] = {"id": message_id, "status": status}
    if delivered_at is not None:
        fields["messageC2STimestamp"] = str(delivered_at)
    if place == "status":
        return {"success": True, "message": "Message status", **fields}
    if place == "data.status":
        return {"success": True, "message": "Message status", "data": fields}
    return {"success": True, "message": "messageInfo", "data": {"messages": fields}}


@dataclass(frozen=True)
class Payload:
    content_type: str
    body: bytes


def as_json(value: object) -> Payload:
    return Payload("application/json", json.dumps(value).encode())


def as_form(fields: dict[str, str | int]) -> Payload:
    return Payload("application/x-www-form-urlencoded", urlencode(fields).encode())


def ack_payload(
    shape: str,
    *,
    message_id: str,
    jid: str,
    status: Status,
    at: float,
    numbering: AckNumbering,
) -> Payload:
    """An ack webhook for one message in one of ACK_SHAPES."""
    number = status_value(status, form="number", numbering=numbering)
    name = status_value(status, form="name", numbering=numbering)
    baileys = {"key": {"remoteJid": jid, "fromMe": True, "id": message_id}, "update": {"status": number}}
    if shape == "flat":
        return as_json({"id": message_id, "status": name, "timestamp": int(at), "to": jid})
    if shape == "flat_ack":
        return as_json({"messageId": message_id, "ack": number, "timestamp": int(at * 1000)})
    if shape == "baileys":
        return as_json(baileys)
    if shape == "list":
        return as_json([baileys])
    if shape == "event":
        # Baileys' own name for a read, which parsers must take as READ_ACK.
        word = "READ" if status == Status.READ_ACK else name
        data = {"id": message_id, "status": word, "remoteJid": jid, "timestamp": int(at)}
        return as_json({"event": "message-ack", "data": data})
    if shape == "form":
        return as_form({"id": message_id, "status": name, "timestamp": int(at)})
    raise ValueError(f"unknown webhook shape {shape!r}")


def reply_payload(shape: str, *, text: str, from_jid: str, at: float, device_jid: str) -> Payload:
    """An incoming message in the documented shape; form-encoded for the "form" shape."""
    fields: dict[str, Any] = {
        "type": "text",
        "message": text,
        "file": "",
        "from": from_jid,
        "timestamp": int(at),
        "is_forwarded": False,
        "is_broadcast": False,
        "dataSender": "",
    }
    if shape == "form":
        return as_form({k: str(v).lower() if isinstance(v, bool) else v for k, v in fields.items()})
    receiver = {"jid": device_jid, "name": "WSAPME Simulator", "phone": {}, "imgUrl": ""}
    return as_json({**fields, "dataReceiver": receiver})
