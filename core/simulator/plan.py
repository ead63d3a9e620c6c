"""What happens to each simulated message after it is sent: its acks, a reply, and when."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Literal

from core.statuses import Status

Mode = Literal["fast", "realistic"]

REPLY_TEXTS = (
    "Berapa harga?",
    "Interested, can share more details?",
    "Boleh hantar katalog?",
    "Ok noted",
    "Nak order 2 unit",
    "Still available ah?",
    "Thanks!",
    "Can deliver to Penang?",
    "Terima kasih, nanti saya tengok dulu",
    "How to pay?",
)
OPT_OUT_TEXTS = ("STOP", "Stop", "BERHENTI", "unsubscribe")


@dataclass(frozen=True)
class Proportions:
    """How recipients behave; each a fraction between 0 and 1."""

    delivered: float = 0.92  # of sent: reach the phone
    read: float = 0.65  # of delivered: open it (readers include those who reply)
    replied: float = 0.15  # of sent: answer back (only delivered messages can be)
    reply_without_read: float = 0.25  # of replies: read receipts off, so no READ ack
    opt_out: float = 0.1  # of replies: an opt-out word
    c_us: float = 0.3  # of replies: sent from an @c.us JID rather than @s.whatsapp.net
    # Of those never delivered: WhatsApp reports an error after the tick (a number not on
    # WhatsApp). None by default, so that a seed plans what it always planned.
    errored: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field.name} must be between 0 and 1, not {value}")


@dataclass(frozen=True)
class Delay:
    """A waiting time: at least `low`, about `mean` on average, never above `high` (seconds)."""

    low: float
    mean: float
    high: float

    def sample(self, rng: random.Random) -> float:
        if self.mean <= self.low:
            return self.low
        return min(self.high, self.low + rng.expovariate(1.0 / (self.mean - self.low)))


@dataclass(frozen=True)
class Timing:
    answer: Delay  # before the send call answers
    server_ack: Delay  # after the send
    delivery: Delay  # after the server ack
    read: Delay  # after delivery
    reply: Delay  # after the read (or the delivery, for receipts off)
    duplicate_gap: float  # between an ack and its duplicate
    retry_base: float  # first webhook retry wait; doubles each attempt
    retry_cap: float


REALISTIC = Timing(
    answer=Delay(0.05, 0.12, 0.25),  # answered before the server's tick
    server_ack=Delay(0.3, 0.8, 3.0),
    delivery=Delay(1.0, 8.0, 600.0),
    read=Delay(5.0, 300.0, 7200.0),
    reply=Delay(10.0, 180.0, 3600.0),
    duplicate_gap=1.5,
    retry_base=2.0,
    retry_cap=120.0,
)
# Near-zero delays that still keep each message's events in order.
FAST = Timing(
    answer=Delay(0.0, 0.0, 0.0),
    server_ack=Delay(0.001, 0.002, 0.005),
    delivery=Delay(0.001, 0.002, 0.005),
    read=Delay(0.001, 0.002, 0.005),
    reply=Delay(0.001, 0.002, 0.005),
    duplicate_gap=0.005,
    retry_base=0.02,
    retry_cap=0.2,
)
TIMINGS: dict[Mode, Timing] = {"fast": FAST, "realistic": REALISTIC}


@dataclass(frozen=True)
class PlannedEvent:
    """One webhook to emit `after` seconds past the send: an ack (status) or a reply (text)."""

    after: float
    status: Status | None = None
    text: str | None = None
    from_jid: str | None = None
    opt_out: bool = False


def plan_message(
    *, rng: random.Random, to: str, proportions: Proportions, timing: Timing
) -> list[PlannedEvent]:
    """The events one message will cause, in the order they happen."""
    at = timing.server_ack.sample(rng)
    events = [PlannedEvent(after=at, status=Status.SERVER_ACK)]
    if rng.random() >= proportions.delivered:
        if proportions.errored and rng.random() < proportions.errored:
            events.append(PlannedEvent(after=at + timing.delivery.sample(rng), status=Status.FAILED))
        return events  # phone off or not on WhatsApp: one tick forever, or an error after it
    at += timing.delivery.sample(rng)
    events.append(PlannedEvent(after=at, status=Status.DELIVERY_ACK))
    # One draw decides reading and replying, so repliers are a subset of readers.
    reply_share = min(proportions.read, proportions.replied / max(proportions.delivered, 1e-9))
    opened = rng.random()
    if opened >= proportions.read:
        return events
    replies = opened < reply_share
    receipts_off = replies and rng.random() < proportions.reply_without_read
    at += timing.read.sample(rng)
    if not receipts_off:
        events.append(PlannedEvent(after=at, status=Status.READ_ACK))
    if replies:
        at += timing.reply.sample(rng)
        events.append(_reply(rng=rng, to=to, after=at, proportions=proportions))
    return events


def _reply(*, rng: random.Random, to: str, after: float, proportions: Proportions) -> PlannedEvent:
    opt_out = rng.random() < proportions.opt_out
    text = rng.choice(OPT_OUT_TEXTS if opt_out else REPLY_TEXTS)
    domain = "c.us" if rng.random() < proportions.c_us else "s.whatsapp.net"
    return PlannedEvent(after=after, text=text, from_jid=f"{to}@{domain}", opt_out=opt_out)


def duplicate_acks(events: list[PlannedEvent], *, gap: float) -> list[PlannedEvent]:
    """Every ack twice, the copy a moment later, as gateways do when they retry."""
    copies = [dataclasses.replace(e, after=e.after + gap) for e in events if e.status is not None]
    return sorted(events + copies, key=lambda e: e.after)


def reverse_acks(events: list[PlannedEvent]) -> list[PlannedEvent]:
    """The acks in reverse order (READ before DELIVERY before SERVER_ACK), replies untouched."""
    acks = [e for e in events if e.status is not None]
    times = [e.after for e in acks]
    swapped = [dataclasses.replace(ack, after=when) for ack, when in zip(reversed(acks), times, strict=True)]
    replies = [e for e in events if e.status is None]
    return sorted(swapped + replies, key=lambda e: e.after)
