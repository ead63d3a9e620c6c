"""Faults on demand: what the simulated gateway does wrong, for the next N requests or until cleared."""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from typing import Any


class FaultKind(enum.StrEnum):
    # Before the message is taken: the gateway certainly did not send it.
    BAD_TOKEN = "bad_token"  # options: http_status (200 or 401; default 200)
    DEVICE_OFFLINE = "device_offline"
    UNKNOWN_DEVICE = "unknown_device"  # options: http_status (default 200)
    INVALID_NUMBER = "invalid_number"  # options: http_status (default 200)
    # Turned down in the gateway's own words, whatever they are.
    REFUSED = "refused"  # options: message (default "Message failed to send"), http_status (200)
    RATE_LIMITED = "rate_limited"  # options: retry_after (seconds or an HTTP date; default "2")
    SERVER_ERROR = "server_error"  # options: http_status (default 500)
    # After the message is taken (it counts as sent): the client cannot tell.
    SLOW_ANSWER = "slow_answer"  # options: delay (seconds; default 3.0)
    DROP_CONNECTION = "drop_connection"  # options: partial (cut the answer halfway instead)
    MALFORMED_JSON = "malformed_json"
    NO_MESSAGE_ID = "no_message_id"
    # A server in front of the gateway (a CDN) gave up on the answer and sent its own error page.
    PROXY_ERROR = "proxy_error"  # options: http_status (default 524)
    # Status look-ups.
    EMPTY_LOOKUP = "empty_lookup"
    # Webhooks, counted per sent message.
    DUPLICATE_ACKS = "duplicate_acks"
    OUT_OF_ORDER_ACKS = "out_of_order_acks"


ENDPOINTS = ("send", "status", "device", "webhook")
DEFAULT_ENDPOINTS: dict[FaultKind, frozenset[str]] = {
    FaultKind.BAD_TOKEN: frozenset({"send", "status", "device"}),
    # An offline device can neither send nor say what became of a message: look-ups refuse too.
    FaultKind.DEVICE_OFFLINE: frozenset({"send", "status", "device"}),
    FaultKind.EMPTY_LOOKUP: frozenset({"status"}),
    FaultKind.DUPLICATE_ACKS: frozenset({"webhook"}),
    FaultKind.OUT_OF_ORDER_ACKS: frozenset({"webhook"}),
}
WEBHOOK_KINDS = frozenset({FaultKind.DUPLICATE_ACKS, FaultKind.OUT_OF_ORDER_ACKS})
AFTER_ACCEPTANCE = frozenset(
    {
        FaultKind.SLOW_ANSWER,
        FaultKind.DROP_CONNECTION,
        FaultKind.MALFORMED_JSON,
        FaultKind.NO_MESSAGE_ID,
        FaultKind.PROXY_ERROR,
    }
)


@dataclass
class Fault:
    kind: FaultKind
    remaining: int | None  # None: until cleared
    endpoints: frozenset[str]
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "remaining": self.remaining,
            "endpoints": sorted(self.endpoints),
            "options": dict(self.options),
        }


def make_fault(
    kind: FaultKind | str,
    *,
    times: int | None = None,
    endpoint: str | None = None,
    **options: Any,
) -> Fault:
    """A fault for the next `times` matching requests (None: until cleared).

    `endpoint` ("send", "status", "device" or "any") overrides where it applies.
    """
    kind = FaultKind(kind)
    if times is not None and times < 1:
        raise ValueError("times must be at least 1, or None for until cleared")
    if kind in WEBHOOK_KINDS:
        endpoints = DEFAULT_ENDPOINTS[kind]  # webhook faults act on sends' webhooks only
    elif endpoint == "any":
        endpoints = frozenset({"send", "status", "device"})
    elif endpoint is not None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(ENDPOINTS)} or any")
        endpoints = frozenset({endpoint})
    else:
        endpoints = DEFAULT_ENDPOINTS.get(kind, frozenset({"send"}))
    return Fault(kind=kind, remaining=times, endpoints=endpoints, options=options)


class FaultBook:
    """Active faults in the order they were set; the first that matches a request applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, endpoint: str, kinds: frozenset[FaultKind] | None = None) -> Fault | None:
        """The fault to apply to this request, using up one of its times."""
        with self._lock:
            fault = self._match(endpoint, kinds)
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
            return fault

    def peek(self, endpoint: str, kinds: frozenset[FaultKind]) -> Fault | None:
        """The fault that would apply, without using it up (for state shown, not acted on)."""
        with self._lock:
            return self._match(endpoint, kinds)

    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def _match(self, endpoint: str, kinds: frozenset[FaultKind] | None) -> Fault | None:
        for fault in self._faults:
            if endpoint in fault.endpoints and (kinds is None or fault.kind in kinds):
                return fault
        return None
