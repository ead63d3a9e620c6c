"""What the simulator has sent and emitted, so tests can compare a database with it."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from core.statuses import RANK, Status


@dataclass(frozen=True)
class SentMessage:
    """One message the simulated gateway took (and so, as far as WhatsApp goes, sent)."""

    message_id: str
    to: str
    jid: str
    message: str
    device: str
    priority: str | None
    sent_at: float
    # "answered", or the fault that hid the answer ("slow_answer", "drop_connection", ...).
    answer: str
    webhook_url: str | None = None  # the older send call's per-message redirect_url


@dataclass(frozen=True)
class EmittedEvent:
    """One webhook the simulator fired: an ack (status set) or a reply (text set)."""

    seq: int
    message_id: str
    status: str | None
    text: str | None
    from_jid: str | None
    shape: str
    at: float
    url: str | None
    content_type: str | None
    body: str | None
    attempts: int = 0
    delivered: bool = False
    http_status: int | None = None


@dataclass(frozen=True)
class ReplyRecord:
    message_id: str
    to: str
    from_jid: str
    text: str
    opt_out: bool
    at: float


@dataclass(frozen=True)
class Emitted:
    """Everything emitted so far. `statuses` is each sent message's highest ack (PENDING
    before any; FAILED once WhatsApp reported an error for one the phone never received),
    which is what the gateway's own look-ups report."""

    statuses: dict[str, str]
    replies: tuple[ReplyRecord, ...]
    events: tuple[EmittedEvent, ...]

    def funnel_status(self, message_id: str) -> str:
        """Where a correct tracker puts the message: REPLIED beats any ack."""
        if any(r.message_id == message_id for r in self.replies):
            return str(Status.REPLIED)
        return self.statuses[message_id]


def recipient_key(to: str) -> str:
    """The digits a send was addressed to: no leading +, no JID domain or device suffix."""
    return to.strip().removeprefix("+").split("@")[0].split(":")[0]


class SimState:
    """Thread-safe record of sends and emitted events; every read returns a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, SentMessage] = {}
        self._per_recipient: Counter[str] = Counter()
        self._status: dict[str, Status] = {}
        self._delivered_at: dict[str, float] = {}
        self._events: dict[int, EmittedEvent] = {}
        self._replies: list[ReplyRecord] = []

    def record_send(self, message: SentMessage) -> None:
        with self._lock:
            self._messages[message.message_id] = message
            self._per_recipient[recipient_key(message.to)] += 1
            self._status[message.message_id] = Status.PENDING

    def has_message_id(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._messages

    def message(self, message_id: str) -> SentMessage | None:
        with self._lock:
            return self._messages.get(message_id)

    def record_event(self, event: EmittedEvent, *, opt_out: bool = False) -> EmittedEvent:
        """Store a fired event under the next sequence number; the gateway's view moves up."""
        with self._lock:
            event = dataclasses.replace(event, seq=len(self._events) + 1)
            self._events[event.seq] = event
            if event.status is not None:
                self._apply_ack(event.message_id, Status(event.status), event.at)
            elif event.text is not None and event.from_jid is not None:
                self._replies.append(self._reply(event, opt_out=opt_out))
            return event

    def record_attempt(self, seq: int, *, delivered: bool, http_status: int | None) -> None:
        with self._lock:
            event = self._events[seq]
            self._events[seq] = dataclasses.replace(
                event, attempts=event.attempts + 1, delivered=delivered, http_status=http_status
            )

    def gateway_view(self, message_id: str) -> tuple[Status, int | None] | None:
        """The status a look-up reports now, and when the message reached the phone."""
        with self._lock:
            status = self._status.get(message_id)
            if status is None:
                return None
            delivered = self._delivered_at.get(message_id)
            return status, int(delivered) if delivered is not None else None

    def sent_count(self, to: str) -> int:
        with self._lock:
            return self._per_recipient[recipient_key(to)]

    def sent_messages(self) -> list[SentMessage]:
        with self._lock:
            return list(self._messages.values())

    def emitted(self) -> Emitted:
        with self._lock:
            return Emitted(
                statuses={k: str(v) for k, v in self._status.items()},
                replies=tuple(self._replies),
                events=tuple(self._events.values()),
            )

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sent_total": len(self._messages),
                "per_recipient": dict(self._per_recipient),
                "sent_more_than_once": sorted(k for k, n in self._per_recipient.items() if n > 1),
                "events_emitted": len(self._events),
                "replies": len(self._replies),
            }

    def _apply_ack(self, message_id: str, status: Status, at: float) -> None:
        current = self._status[message_id]
        if status is Status.FAILED:  # WhatsApp could not deliver it, unless the phone had it
            if RANK[current] < RANK[Status.DELIVERY_ACK]:
                self._status[message_id] = status
            return
        if current is Status.FAILED and RANK[status] < RANK[Status.DELIVERY_ACK]:
            return  # a tick sent before the error, arriving after it
        # Like a real gateway, a late or duplicate ack never lowers what it knows.
        if RANK[status] > RANK[current]:
            self._status[message_id] = status
        if RANK[status] >= RANK[Status.DELIVERY_ACK]:
            self._delivered_at.setdefault(message_id, at)

    def _reply(self, event: EmittedEvent, *, opt_out: bool) -> ReplyRecord:
        to = self._messages[event.message_id].to
        return ReplyRecord(
            message_id=event.message_id,
            to=recipient_key(to),
            from_jid=event.from_jid or "",
            text=event.text or "",
            opt_out=opt_out,
            at=event.at,
        )
