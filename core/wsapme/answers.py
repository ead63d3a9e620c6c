"""Reading WSAPME answers: message ids, times (webhooks' too), status names or numbers, success flags."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

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

# A gateway's times are about now. A number is read as seconds, milliseconds or microseconds
# since 1970, whichever puts it between 2000 and 2100: the three ranges do not overlap, so no
# number reads two ways, and one that fits none (cut short, or not a time) is no time at all.
EARLIEST = 946_684_800  # 2000-01-01 in unix seconds
LATEST = 4_102_444_800  # 2100-01-01
TIME_UNITS = (1, 1_000, 1_000_000)  # per second: seconds, milliseconds, microseconds
EARLIEST_AT = dt.datetime.fromtimestamp(EARLIEST, dt.UTC)
LATEST_AT = dt.datetime.fromtimestamp(LATEST, dt.UTC)
MAX_TIME_TEXT = 40  # longer text is neither a number nor an ISO time

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

    # The recipient's columns an answer fills, and the attribute each takes: what the worker
    # stores, and what a resend clears of the first try.
    STORED_AS: ClassVar[dict[str, str]] = {
        "message_id": "message_id", "wsapme_message_data": "data",
        "message_timestamp": "message_timestamp", "gateway_status": "gateway_status",
    }

    def columns(self) -> dict[str, Any]:
        return {column: getattr(self, attribute) for column, attribute in self.STORED_AS.items()}


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


def parse_time(value: object) -> dt.datetime | None:
    """Aware UTC time from unix seconds, milliseconds or microseconds (a number, a numeric
    string or a protobuf Long {"low", "high"}) or from an ISO 8601 string (UTC unless it
    says). None for anything else and for times outside 2000-2100. The one reader of times
    for webhooks and send and status answers alike."""
    if type(value) is int and EARLIEST <= value < LATEST:  # the everyday ack, read first
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if value is None:  # an absent field, asked about often
        return None
    if isinstance(value, dict):
        value = _long_value(value)
    elif isinstance(value, str):
        value = _number_or_iso(value.strip())
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC) if EARLIEST_AT <= value < LATEST_AT else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    for per_second in TIME_UNITS:  # NaN and infinities fit no range
        if EARLIEST * per_second <= value < LATEST * per_second:
            return dt.datetime.fromtimestamp(value / per_second, dt.UTC)
    return None


def epoch_seconds(value: object) -> int | None:
    """`parse_time` in whole unix seconds, as the send and status answers keep it."""
    at = parse_time(value)
    return None if at is None else int(at.timestamp())


def _long_value(value: Mapping[str, Any]) -> int | None:
    # protobufjs' Long: two 32-bit halves, read unsigned (a negative time is no time anyway).
    low, high = value.get("low"), value.get("high", 0)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)):
        return None
    return low % 2**32 + (high % 2**32) * 2**32  # type: ignore[operator]


def _number_or_iso(text: str) -> float | dt.datetime | None:
    if not text or len(text) > MAX_TIME_TEXT:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


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
        message_timestamp=epoch_seconds(timestamp),
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
    delivered_at = epoch_seconds(first_present(body, DELIVERED_AT_PLACES))
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
