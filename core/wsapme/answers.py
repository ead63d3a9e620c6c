"""Reading WSAPME answers: message ids, timestamps, status names or numbers, success flags."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from core.statuses import Status, parse_status

AckNumbering = Literal["baileys", "wwebjs"]

# Numeric ack codes differ between the libraries a gateway may be built on (wsapme-api.md).
ACK_NUMBERS: dict[AckNumbering, dict[int, Status]] = {
    "baileys": {
        0: Status.FAILED,
        1: Status.PENDING,
        2: Status.SERVER_ACK,
        3: Status.DELIVERY_ACK,
        4: Status.READ_ACK,
        5: Status.READ_ACK,
    },
    "wwebjs": {
        -1: Status.FAILED,
        0: Status.PENDING,
        1: Status.SERVER_ACK,
        2: Status.DELIVERY_ACK,
        3: Status.READ_ACK,
        4: Status.READ_ACK,
    },
}

# Statuses a gateway can report about a message; ours like QUEUED or CLOSED never come from it.
GATEWAY_STATUSES = frozenset(
    {Status.FAILED, Status.PENDING, Status.SERVER_ACK, Status.DELIVERY_ACK, Status.READ_ACK}
)

MAX_SECONDS = 95_617_584_000  # the year 5000: larger numbers are not times

MESSAGE_ID_PLACES = ("messageId", "data.key.id", "data.id", "data.messageId")
STATUS_PLACES = ("status", "data.status", "data.messages.status")
DELIVERED_AT_PLACES = (
    "messageC2STimestamp",
    "data.messageC2STimestamp",
    "data.messages.messageC2STimestamp",
)


@dataclass(frozen=True)
class SendResult:
    """What the gateway said when it accepted a message."""

    message_id: str
    gateway_status: str
    message_timestamp: int | None
    data: dict[str, Any]
    raw: dict[str, Any]


@dataclass(frozen=True)
class StatusResult:
    """What a status look-up said about one message; `lookup` names the call that answered."""

    status: str
    delivered_at: int | None
    lookup: str
    raw: dict[str, Any]


@dataclass(frozen=True)
class DeviceStatus:
    """Whether the linked WhatsApp device is connected, with the gateway's own word for it."""

    connected: bool
    state: str | None
    raw: dict[str, Any]


def dig(body: object, path: str) -> object:
    """The value at a dotted path, or None; a list on the way is read as its first item."""
    value = body
    for part in path.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def first_present(body: object, places: Iterable[str]) -> object:
    for place in places:
        value = dig(body, place)
        if value is not None and value != "":
            return value
    return None


def is_success(body: Mapping[str, Any]) -> bool | None:
    """The `success` flag read leniently ("false", 0 and False all mean no); None if absent."""
    value = body.get("success")
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "ok")
    return bool(value)


def find_message_id(body: Mapping[str, Any]) -> str | None:
    value = first_present(body, MESSAGE_ID_PLACES)
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value).strip() or None
    return None


def parse_timestamp(value: object) -> int | None:
    """Unix seconds from a number or numeric string; 13-digit milliseconds become seconds.
    None for anything else, including times no gateway would send (before 1970, after 5000)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    if number >= 1e12:  # milliseconds: seconds stay 10 digits until the year 2286
        number /= 1000
    return int(number) if number < MAX_SECONDS else None


def status_from_value(value: object, *, numbering: AckNumbering) -> Status | None:
    """Our status for a gateway status name or ack number; None when it means nothing to us."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if _is_integer(text):
            return ACK_NUMBERS[numbering].get(int(text))
        status = parse_status(text) if text else None
        return status if status in GATEWAY_STATUSES else None
    if isinstance(value, int | float) and float(value).is_integer():
        return ACK_NUMBERS[numbering].get(int(value))
    return None


def status_from_fields(name: object, number: object, *, numbering: AckNumbering) -> Status | None:
    """Names win over numbers: a name is unambiguous, a number depends on the numbering."""
    return status_from_value(name, numbering=numbering) or status_from_value(number, numbering=numbering)


def parse_send_answer(body: dict[str, Any], *, numbering: AckNumbering) -> SendResult | None:
    """A SendResult when the answer carries a message id, else None (the caller decides why)."""
    message_id = find_message_id(body)
    if message_id is None:
        return None
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    status = status_from_value(first_present(body, ("data.status", "status")), numbering=numbering)
    timestamp = first_present(body, ("data.messageTimestamp", "messageTimestamp", "timestamp"))
    return SendResult(
        message_id=message_id,
        # An accepted message is at least queued, whatever unknown word came with it.
        gateway_status=str(status or Status.PENDING),
        message_timestamp=parse_timestamp(timestamp),
        data=data,
        raw=body,
    )


def parse_status_answer(body: object, *, lookup: str, numbering: AckNumbering) -> StatusResult | None:
    """The status a look-up reports; None for an empty, refused or unrecognised answer."""
    if not isinstance(body, dict) or is_success(body) is False:
        return None
    status = status_from_value(first_present(body, STATUS_PLACES), numbering=numbering)
    if status is None:
        return None
    delivered_at = parse_timestamp(first_present(body, DELIVERED_AT_PLACES))
    return StatusResult(status=str(status), delivered_at=delivered_at, lookup=lookup, raw=body)


CONNECTED_WORDS = frozenset({"connected", "online", "open", "authenticated", "ready", "true"})


def parse_device_answer(body: dict[str, Any]) -> DeviceStatus:
    """Connected only on a positive word or flag; anything else reads as not connected."""
    flag = first_present(body, ("data.connected", "connected"))
    state = first_present(body, ("data.status", "data.state", "status", "state"))
    state_text = str(state).strip() if state is not None else None
    if isinstance(flag, bool):
        connected = flag
    else:
        connected = state_text is not None and state_text.lower() in CONNECTED_WORDS
    if is_success(body) is False:
        connected = False
    return DeviceStatus(connected=connected, state=state_text, raw=body)


def _is_integer(text: str) -> bool:
    return re.fullmatch(r"-?\d+", text) is not None
