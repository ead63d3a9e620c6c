"""Reading webhook bodies: JSON or form; flat, listed or wrapped; into typed events.

The gateway's ack format is not documented (wsapme-api.md), so the parser is tolerant
and never raises: every input gives a list of events or a `ParseError` with a reason.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from core.phones import from_jid, jid_kind
from core.statuses import Status
from core.wsapme.answers import AckNumbering, parse_time, status_from_value

# Limits that keep a hostile or broken body cheap to read.
MAX_DEPTH = 8  # how deep wrappers are followed to find events
MAX_EVENTS = 10_000
MAX_FORM_FIELDS = 10_000
MAX_RAW_DEPTH = 32  # deeper parts of a stored event are replaced by a marker
MAX_ID_LENGTH = 255  # blast_recipients.message_id holds no more
MAX_JID_LENGTH = 320

ID_FIELDS = ("id", "messageId", "message_id", "msgId", "ids", "messageIds", "message_ids")
STATUS_FIELDS = ("status", "ack", "messageStatus")
TIME_FIELDS = ("timestamp", "messageTimestamp", "t", "time")
ACK_TIME_FIELDS = ("timestamp", "t", "time")
SENDER_FIELDS = ("from", "key.remoteJid", "remoteJid", "chatId", "sender")
# The chat an ack is about: the number our message went to ("from" would be our own device).
CHAT_FIELDS = ("key.remoteJid", "remoteJid", "to", "chatId", "jid")
ALT_FIELDS = (
    "remoteJidAlt", "key.remoteJidAlt", "participantAlt", "key.participantAlt",
    "senderPn", "key.senderPn",
)
TEXT_FIELDS = ("message", "text", "body", "caption")
# The gateway's `type` for a person's event that carries no text: still read as a message, so
# the reply rules can say what it is (core.webhook.replies.not_a_reply).
TEXTLESS_TYPES = frozenset({"revoked", "call_log"})
FROM_ME_FIELDS = ("fromMe", "key.fromMe", "from_me", "id.fromMe")
BROADCAST_FIELDS = ("is_broadcast", "isBroadcast", "broadcast", "isStatus")
# Where a wrapper keeps its events: {"event": ..., "data": ...}, Baileys' {"messages": [...]}.
WRAPPER_FIELDS = ("data", "payload", "messages", "events", "updates", "receipts")
# Text inside a Baileys message object, by message type.
MESSAGE_TEXT_PLACES = (
    "conversation",
    "extendedTextMessage.text",
    "imageMessage.caption",
    "videoMessage.caption",
    "documentMessage.caption",
    "buttonsResponseMessage.selectedDisplayText",
    "templateButtonReplyMessage.selectedDisplayText",
    "listResponseMessage.title",
    "reactionMessage.text",  # a 👍 on our message: they answered with it
)
# Baileys wraps a message in another: disappearing and view-once messages, a document with a
# caption, an edit (its new text in protocolMessage.editedMessage). Followed up to
# MAX_WRAPPERS deep.
MESSAGE_WRAPPERS = (
    "ephemeralMessage.message",
    "viewOnceMessage.message",
    "viewOnceMessageV2.message",
    "viewOnceMessageV2Extension.message",
    "documentWithCaptionMessage.message",
    "editedMessage.message",
    "protocolMessage.editedMessage",
)
MAX_WRAPPERS = 4
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off", ""})
_INTEGER_RE = re.compile(r"-?\d+")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# A form body starts with a field name and "="; XML, HTML and plain words do not.
_FORM_START_RE = re.compile(rb'[^=&\s<>{}\[\]"]+(?:\[[^\]]*\])*=')


@dataclass(frozen=True)
class AckEvent:
    """The gateway reports a status for one or more of our messages."""

    message_ids: tuple[str, ...]
    status: Status
    at: dt.datetime | None
    raw: dict[str, Any]
    # The number the message went to, when the ack names a person's chat: what lets an ack
    # settle a send whose answer (and so its message id) was lost.
    phone: str | None = None


@dataclass(frozen=True)
class IncomingMessage:
    """A message that arrived on the device (or our own, echoed back when `from_me`)."""

    phone: str | None  # E.164, None for groups, status posts and privacy ids without a phone
    jid: str
    jid_kind: str  # a core.phones.JidKind value
    text: str
    at: dt.datetime | None
    from_me: bool
    is_broadcast: bool
    raw: dict[str, Any]
    # What kind of message: a Baileys message's own key ("extendedTextMessage",
    # "reactionMessage"), else the gateway's `type` ("text", "revoked", "call_log").
    message_type: str = ""
    # The id of our message it answers, when it says: the one quoted (swiped to reply) or
    # reacted to.
    quoted_id: str | None = None
    # Its own id, when the gateway sends it.
    message_id: str | None = None


@dataclass(frozen=True)
class OtherEvent:
    """Something readable that is neither an ack nor a message (a connection update, ...)."""

    reason: str
    # It names a message or a sender, so it is about a message, but could not be read as an
    # ack or as a message (a status this version does not know, a shape it cannot read).
    unread_message: bool = False


@dataclass(frozen=True)
class ParseError:
    reason: str


Event = AckEvent | IncomingMessage | OtherEvent


def parse_webhook(
    body: bytes, content_type: str | None = None, *, numbering: AckNumbering = "baileys"
) -> list[Event] | ParseError:
    """The events in one webhook body, or why it cannot be read."""
    decoded = decode_body(body, content_type)
    if isinstance(decoded, ParseError):
        return decoded
    if not isinstance(decoded, dict | list):
        return ParseError("the body is JSON but neither an object nor a list")
    plain = _plain_ack(decoded, numbering=numbering)
    if plain is not None:
        return [plain]
    events: list[Event] = []
    _walk(decoded, events, numbering=numbering, depth=0, event_name=None)
    return events


# --- bytes to a structure ------------------------------------------------------------------


def decode_body(body: bytes, content_type: str | None) -> object:
    """A JSON value or a form as a dict; a ParseError when the body is neither."""
    stripped = body.strip().removeprefix(b"\xef\xbb\xbf").strip()
    if not stripped:
        return ParseError("empty body")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    # The body's first character beats the header: gateways mislabel JSON as form or text.
    if stripped[:1] in (b"{", b"["):
        return _decode_json(stripped)
    if media == "multipart/form-data":
        return _decode_multipart(body, content_type or "")
    if _FORM_START_RE.match(stripped):
        return _decode_form(stripped.decode("utf-8", errors="replace"))
    if "json" in media:
        return _decode_json(stripped)
    return ParseError(f"not JSON or a form (content type {media or 'missing'})")


def _decode_json(body: bytes) -> object:
    try:
        # NaN and Infinity become text: they are not JSON and PostgreSQL refuses them.
        value = json.loads(body, parse_constant=str, parse_float=_finite_or_text)
    except RecursionError:
        return ParseError("the JSON is nested too deeply")
    except ValueError as exc:  # includes UnicodeDecodeError
        return ParseError(f"not valid JSON: {_first_line(str(exc))}")
    return value if _clean_as_decoded(body) else _scrub(value, depth=0)


def _finite_or_text(text: str) -> float | str:
    value = float(text)  # 1e999 reads as infinity
    return value if math.isfinite(value) else str(value)


def _clean_as_decoded(body: bytes) -> bool:
    """True when `_scrub` could change nothing in this JSON body: plain ASCII with no \\u
    escape holds no NUL or surrogate, and fewer brackets than MAX_RAW_DEPTH cannot nest
    deeper than it (non-finite numbers were made text while reading)."""
    return (body.isascii() and b"\\u" not in body
            and body.count(b"{") + body.count(b"[") < MAX_RAW_DEPTH)


def _decode_form(text: str) -> dict[str, Any] | ParseError:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # parse_qsl's way of saying "more fields than max_num_fields"
        return ParseError(f"a form with more than {MAX_FORM_FIELDS:,} fields")
    return _form_fields(pairs) if pairs else ParseError("a form with no fields")


def _decode_multipart(body: bytes, content_type: str) -> dict[str, Any] | ParseError:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("utf-8", "replace")
    try:
        message = email.message_from_bytes(head + body, policy=email.policy.HTTP)
        pairs = list(_multipart_pairs(message))
    except Exception as exc:  # the email package documents no error types of its own
        return ParseError(f"unreadable multipart form ({type(exc).__name__})")
    return _form_fields(pairs) if pairs else ParseError("a multipart form with no fields")


def _multipart_pairs(message: email.message.Message) -> Iterator[tuple[str, str]]:
    if not message.is_multipart():
        return
    for part in message.walk():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            yield name, payload.decode("utf-8", errors="replace")


def _form_fields(pairs: list[tuple[str, str]]) -> dict[str, Any] | ParseError:
    """Form pairs as the JSON object they stand for: JSON-valued fields decoded,
    repeated or `ids[]` fields as lists, `key[id]` fields nested."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        path = [p for p in re.split(r"[\[\]]+", name) if p][:MAX_DEPTH] or [name]
        _put(fields, path, _form_value(value), is_list=name.endswith("[]"))
    return _scrub(fields, depth=0)  # type: ignore[return-value]


def _put(target: dict[str, Any], path: list[str], value: object, *, is_list: bool) -> None:
    for part in path[:-1]:
        inner = target.get(part)
        if not isinstance(inner, dict):
            inner = target[part] = {}
        target = inner
    last = path[-1]
    if last in target:
        old = target[last]
        target[last] = [*old, value] if isinstance(old, list) else [old, value]
    else:
        target[last] = [value] if is_list else value


def _form_value(value: str) -> object:
    stripped = value.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        decoded = _decode_json(stripped.encode())
        if not isinstance(decoded, ParseError):
            return decoded
    return value


def _scrub(value: object, *, depth: int) -> object:
    """A copy safe to store as JSON and text on both databases (PostgreSQL refuses NUL)."""
    if isinstance(value, str):
        return _storable(value)
    if depth >= MAX_RAW_DEPTH and isinstance(value, dict | list):
        return "(nested too deeply)"
    if isinstance(value, dict):
        return {_storable(str(k)): _scrub(v, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, depth=depth + 1) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _storable(text: str) -> str:
    # JSON may spell out a lone surrogate (\ud800), which no database driver can encode:
    # the entry would then fail on every replay instead of being judged.
    text = text.replace("\x00", "")
    return text if text.isascii() else _SURROGATE_RE.sub("\ufffd", text)


# --- a structure to events -----------------------------------------------------------------


_PLAIN_WRAPPER = frozenset({"event", "data"})
_PLAIN_ACK_FIELDS = frozenset({"id", "status", "timestamp"})


def _plain_ack(decoded: object, *, numbering: AckNumbering) -> AckEvent | None:
    """The gateway's everyday ack, {"event": …, "data": {"id", "status", "timestamp"}}, read
    the short way; None for anything else. The answer is the one `_walk` gives: the wrapper
    has nothing of an event of its own, and an object with only these fields has no text,
    sender or flags, so only the same readers of ids, status and time are left to ask."""
    if not isinstance(decoded, dict) or decoded.keys() != _PLAIN_WRAPPER:
        return None
    data = decoded["data"]
    if not isinstance(data, dict) or not data.keys() <= _PLAIN_ACK_FIELDS:
        return None
    # What message_ids, item_status and _ack_time read, from these three fields alone.
    ids = tuple(dict.fromkeys(_ids_in(data.get("id"), nested=True)))
    raw_status = data.get("status")
    status = None if raw_status is None else _safe_status(raw_status, numbering=numbering)
    if not ids or status is None:
        return None
    return AckEvent(ids, status, parse_time(data.get("timestamp")), data)


def _walk(
    node: object, out: list[Event], *, numbering: AckNumbering, depth: int, event_name: str | None
) -> None:
    if len(out) > MAX_EVENTS:
        return
    if len(out) == MAX_EVENTS:
        out.append(OtherEvent(f"more than {MAX_EVENTS} events in one body; the rest were not read"))
    elif depth > MAX_DEPTH:
        out.append(OtherEvent("nested too deeply to read"))
    elif isinstance(node, list):
        for item in node:
            if len(out) > MAX_EVENTS:
                break
            _walk(item, out, numbering=numbering, depth=depth + 1, event_name=event_name)
    elif isinstance(node, dict):
        _walk_object(node, out, numbering=numbering, depth=depth, event_name=event_name)
    else:
        out.append(OtherEvent(f"a list entry that is not an object ({_preview(node)})"))


def _walk_object(
    node: dict[str, Any], out: list[Event], *, numbering: AckNumbering, depth: int,
    event_name: str | None,
) -> None:
    event = read_item(node, numbering=numbering)
    if event is not None:
        out.append(event)
        return
    name = _text_at(node, "event") or event_name
    inner = next((node[f] for f in WRAPPER_FIELDS if isinstance(node.get(f), dict | list)), None)
    if inner is not None:
        _walk(inner, out, numbering=numbering, depth=depth + 1, event_name=name)
    else:
        about_a_message = bool(message_ids(node) or _sender(node))
        out.append(OtherEvent(_unrecognised_reason(node, name, numbering=numbering),
                              unread_message=about_a_message))


def read_item(item: dict[str, Any], *, numbering: AckNumbering) -> Event | None:
    """One object as an ack or a message; None when it is neither (maybe a wrapper)."""
    content = message_object(item)
    if content is not None and "protocolMessage" in content:
        # Baileys' way of saying a message was deleted or a chat setting changed.
        return OtherEvent("a message deleted, or a chat setting changed: not a reply")
    ids = message_ids(item)
    status = item_status(item, numbering=numbering)
    text = message_text(item)
    if text is None and (_text_at(item, "type") or "").casefold() in TEXTLESS_TYPES:
        text = ""  # a person's event all the same: the reply rules say what it is
    sender = _sender(item)
    from_me = _flag(item, FROM_ME_FIELDS)
    # Someone else's message can carry ids and a status of its own (Baileys, whatsapp-web.js):
    # an explicit fromMe false makes it a message. Otherwise a status means an ack, even
    # one that repeats our message's text and chat.
    if text is not None and sender is not None and from_me is False:
        return _incoming(item, text=text, from_me=False)
    if ids and status is not None:
        return AckEvent(ids, status, _ack_time(item, status), item, _chat_phone(item))
    if text is not None and sender is not None:
        return _incoming(item, text=text, from_me=bool(from_me))
    return _receipt(item, ids)


def message_ids(item: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for field in ID_FIELDS:
        found.extend(_ids_in(item.get(field), nested=True))
    key = item.get("key")
    for entry in key if isinstance(key, list) else [key]:
        if isinstance(entry, dict):
            found.extend(_ids_in(entry.get("id"), nested=False))
    return tuple(dict.fromkeys(found))  # unique, in order


def _ids_in(value: object, *, nested: bool) -> list[str]:
    if isinstance(value, str):
        text = value.strip()
        return [text] if text and len(text) <= MAX_ID_LENGTH else []
    if isinstance(value, int) and not isinstance(value, bool):
        return _ids_in(str(value), nested=False) if abs(value) < 10**30 else []
    if not nested:
        return []
    if isinstance(value, dict):  # whatsapp-web.js: {"fromMe": true, "id": "3EB0...", ...}
        return _ids_in(value.get("id"), nested=False)
    if isinstance(value, list):
        return [i for v in value[:MAX_EVENTS] for i in _ids_in(v, nested=False) + _id_object(v)]
    return []


def _id_object(value: object) -> list[str]:
    return _ids_in(value.get("id"), nested=False) if isinstance(value, dict) else []


def item_status(item: dict[str, Any], *, numbering: AckNumbering) -> Status | None:
    """Names win over numbers: a name is unambiguous, a number depends on the numbering."""
    update = item.get("update")
    values = [item.get(f) for f in STATUS_FIELDS]
    if isinstance(update, dict):
        values += [update.get("status"), update.get("ack")]
    names = [v for v in values if isinstance(v, str) and not _INTEGER_RE.fullmatch(v.strip())]
    numbers = [v for v in values if v is not None and v not in names]
    for value in names + numbers:
        status = _safe_status(value, numbering=numbering)
        if status is not None:
            return status
    return None


def _safe_status(value: object, *, numbering: AckNumbering) -> Status | None:
    # Guard what the shared reader would choke on: huge numbers, walls of text.
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and not (math.isfinite(value) and abs(value) <= 100):
        return None
    if isinstance(value, str) and len(value) > 40:
        return None
    if not isinstance(value, str | int | float):
        return None
    return status_from_value(value, numbering=numbering)


def _receipt(item: dict[str, Any], ids: tuple[str, ...]) -> AckEvent | None:
    """Baileys' message-receipt.update: a read or delivery time instead of a status."""
    receipt = item.get("receipt")
    if not ids or not isinstance(receipt, dict):
        return None
    read_at = parse_time(receipt.get("readTimestamp") or receipt.get("playedTimestamp"))
    if read_at is not None:
        return AckEvent(ids, Status.READ_ACK, read_at, item, _chat_phone(item))
    delivered_at = parse_time(receipt.get("receiptTimestamp"))
    if delivered_at is not None:
        return AckEvent(ids, Status.DELIVERY_ACK, delivered_at, item, _chat_phone(item))
    return None


def _ack_time(item: dict[str, Any], status: Status) -> dt.datetime | None:
    """When the ack happened, when the item says. `messageTimestamp` is left out: it is the
    message's own time (when it was sent), which an ack posted as the whole message carries
    beside its status. `messageC2STimestamp` is the delivery time (wsapme-api.md), so it only
    times a delivery. Without an ack time the arrival time counts.
    """
    update = item.get("update") if isinstance(item.get("update"), dict) else {}
    delivered = item.get("messageC2STimestamp") if status is Status.DELIVERY_ACK else None
    for value in (*(item.get(f) for f in ACK_TIME_FIELDS), update.get("timestamp"), delivered):
        at = parse_time(value)
        if at is not None:
            return at
    return None


def _incoming(item: dict[str, Any], *, text: str, from_me: bool) -> IncomingMessage:
    jid = _sender(item) or ""
    alt = next((a for a in (_text_at(item, f) for f in ALT_FIELDS) if a), None)
    return IncomingMessage(
        phone=from_jid(jid, alt),
        jid=jid,
        jid_kind=str(jid_kind(jid)),
        text=text,
        at=next((t for t in (parse_time(_dig(item, f)) for f in TIME_FIELDS) if t), None),
        from_me=from_me,
        is_broadcast=_any_true(item, BROADCAST_FIELDS),
        raw=item,
        message_type=_message_type(item),
        quoted_id=quoted_message_id(item),
        message_id=next(iter(message_ids(item)), None),
    )


def _chat_phone(item: dict[str, Any]) -> str | None:
    """The person an ack's message went to, from its chat JID; None for a group, a status
    post, a privacy id without its phone beside it, or no chat at all."""
    for field in CHAT_FIELDS:
        jid = _text_at(item, field)
        if jid and len(jid) <= MAX_JID_LENGTH:
            alt = next((a for a in (_text_at(item, f) for f in ALT_FIELDS) if a), None)
            return from_jid(jid, alt)
    return None


def _sender(item: dict[str, Any]) -> str | None:
    for field in SENDER_FIELDS:
        value = _dig(item, field)
        if isinstance(value, int) and not isinstance(value, bool):  # "from": 60123456789
            value = str(value)
        jid = value.strip() if isinstance(value, str) else None
        if jid and len(jid) <= MAX_JID_LENGTH:
            return jid
    return None


def message_text(item: dict[str, Any]) -> str | None:
    """The text of an incoming message: "" for one without text (a sticker still replies);
    None when the object carries no message at all."""
    for field in TEXT_FIELDS:
        value = item.get(field)
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            return _text_in_message_object(unwrapped(value))
    return None


def message_object(item: dict[str, Any]) -> dict[str, Any] | None:
    """The Baileys message object in an item, out of its wrappers; None when the message is
    plain text or missing."""
    for field in TEXT_FIELDS:
        value = item.get(field)
        if isinstance(value, str):
            return None
        if isinstance(value, dict):
            return unwrapped(value)
    return None


def unwrapped(message: dict[str, Any]) -> dict[str, Any]:
    """The message inside its wrappers (MESSAGE_WRAPPERS), at most MAX_WRAPPERS deep."""
    for _ in range(MAX_WRAPPERS):
        inner = next((m for m in (_dig(message, p) for p in MESSAGE_WRAPPERS) if isinstance(m, dict)), None)
        if inner is None:
            break
        message = inner
    return message


def _message_type(item: dict[str, Any]) -> str:
    """IncomingMessage.message_type: the first key naming a kind of Baileys message, else
    the gateway's `type`."""
    message = message_object(item)
    key = next((k for k in message or () if k == "conversation" or k.endswith("Message")), None)
    return key or _text_at(item, "type") or ""


def quoted_message_id(item: dict[str, Any]) -> str | None:
    """The id of the message an incoming one answers: the one quoted (Baileys'
    `contextInfo.stanzaId`, in whichever kind of message) or the one reacted to."""
    message = message_object(item)
    if message is None:
        return None
    contexts = [c.get("contextInfo") for c in message.values() if isinstance(c, dict)]
    places = [c.get("stanzaId") for c in contexts if isinstance(c, dict)]
    places.append(_dig(message, "reactionMessage.key.id"))
    return next((i for place in places for i in _ids_in(place, nested=False)), None)


def _text_in_message_object(message: dict[str, Any]) -> str:
    if isinstance(message.get("body"), str):  # {"text": {"body": "..."}}
        return message["body"]
    for place in MESSAGE_TEXT_PLACES:
        value = _dig(message, place)
        if isinstance(value, str):
            return value
    return ""


# --- small readers -------------------------------------------------------------------------


def _dig(item: dict[str, Any], path: str) -> object:
    value: object = item
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text_at(item: dict[str, Any], path: str) -> str | None:
    value = _dig(item, path)
    return value.strip() or None if isinstance(value, str) else None


def _any_true(item: dict[str, Any], paths: tuple[str, ...]) -> bool:
    return any(_as_flag(_dig(item, p)) is True for p in paths)


def _flag(item: dict[str, Any], paths: tuple[str, ...]) -> bool | None:
    """The first yes/no among `paths`; None when none of them says."""
    for path in paths:
        flag = _as_flag(_dig(item, path))
        if flag is not None:
            return flag
    return None


def _as_flag(value: object) -> bool | None:
    # Form posts carry booleans as text: "true", "false", "1", "0".
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
    if isinstance(value, int | float) and value in (0, 1):
        return value == 1
    return None


def _unrecognised_reason(node: dict[str, Any], name: str | None, *, numbering: AckNumbering) -> str:
    where = f"event {name!r}" if name else "an object"
    if message_ids(node):
        shown = next((node.get(f) for f in STATUS_FIELDS if node.get(f) is not None), None)
        if shown is not None:
            return f"{where} with an unknown status {_preview(shown)}"
        return f"{where} with a message id but no status"
    return f"{where} with no message status or incoming message in it"


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else "unknown error"
