"""The simulator's requests and answers as plain values, and the answers that refuse a call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from core.simulator import shapes
from core.simulator.faults import Fault, FaultKind
from core.simulator.state import recipient_key

MALFORMED_BODY = b'{"success": true, "message": "Sent successfully", "data": {"key": {"id": "3EB0'
NOT_FOUND = {"success": False, "message": "Message not found", "data": {}}
PROXY_ERROR_PAGE = b"<html><body><h1>A timeout occurred</h1><p>The origin server timed out.</p></body></html>"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # wait this long before answering
    drop: bool = False  # close the connection instead of answering
    cut_after: int | None = None  # close the connection after this many bytes of the body


def json_answer(value: object, *, status: int = 200, **kwargs: Any) -> Answer:
    return Answer(status=status, body=json.dumps(value).encode(), **kwargs)


def refusal(fault: Fault) -> Answer:
    """The answer for a fault that means the gateway did not take the call."""
    options = fault.options
    kind = fault.kind
    if kind == FaultKind.BAD_TOKEN:
        status = int(options.get("http_status", 200))
        return json_answer(shapes.failure("Unauthorised Token"), status=status)
    if kind == FaultKind.DEVICE_OFFLINE:
        return json_answer(shapes.failure("Device is not connected, please scan the QR code"))
    if kind == FaultKind.UNKNOWN_DEVICE:
        status = int(options.get("http_status", 200))
        return json_answer(shapes.failure("Device not found"), status=status)
    if kind == FaultKind.INVALID_NUMBER:
        status = int(options.get("http_status", 200))
        return json_answer(shapes.failure("Invalid number, not registered on WhatsApp"), status=status)
    if kind == FaultKind.REFUSED:
        words = str(options.get("message", "Message failed to send"))
        return json_answer(shapes.failure(words), status=int(options.get("http_status", 200)))
    if kind == FaultKind.RATE_LIMITED:
        retry_after = str(options.get("retry_after", "2"))
        return json_answer(
            shapes.failure("Too many requests"), status=429, headers=(("Retry-After", retry_after),)
        )
    if kind == FaultKind.SERVER_ERROR:
        page = b"<html><body><h1>Internal Server Error</h1></body></html>"
        status = int(options.get("http_status", 500))
        return Answer(status=status, body=page, content_type="text/html")
    if kind == FaultKind.EMPTY_LOOKUP:
        return json_answer(shapes.EMPTY_LOOKUP)
    raise ValueError(f"{kind} is not a refusal")


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def send_problem(body: dict[str, Any]) -> str | None:
    """Why a send body is unusable, in the gateway's words; None when it is fine."""
    to = str(body.get("to") or "").strip()
    if not to:
        return "to is required"
    if not str(body.get("message") or "").strip():
        return "message is required"
    digits = recipient_key(to)
    if not to.endswith("@g.us") and not (digits.isdigit() and 8 <= len(digits) <= 15):
        return "Invalid number"
    return None
