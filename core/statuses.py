"""The status model: recipient statuses, their ranks, and the funnel stages they reach."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    QUEUED = "QUEUED"
    SENDING = "SENDING"
    PENDING = "PENDING"
    SERVER_ACK = "SERVER_ACK"
    DELIVERY_ACK = "DELIVERY_ACK"
    READ_ACK = "READ_ACK"
    REPLIED = "REPLIED"
    CLOSED = "CLOSED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"


# Rank = how far along the funnel a status proves the message got. FAILED and UNKNOWN
# sit beside the funnel: any real evidence of progress (rank >= 1) lifts them.
RANK: dict[Status, int] = {
    Status.QUEUED: 0,
    Status.SENDING: 0,
    Status.FAILED: 0,
    Status.UNKNOWN: 0,
    Status.PENDING: 1,
    Status.SERVER_ACK: 2,
    Status.DELIVERY_ACK: 3,
    Status.READ_ACK: 4,
    Status.REPLIED: 5,
    Status.CLOSED: 6,
}

# Each status in a marketer's words.
STATUS_WORDS: dict[Status, str] = {
    Status.QUEUED: "Waiting to be sent",
    Status.SENDING: "Being sent now",
    Status.PENDING: "Sent, on its way",
    Status.SERVER_ACK: "Sent (one tick)",
    Status.DELIVERY_ACK: "Received (two ticks)",
    Status.READ_ACK: "Read (blue ticks)",
    Status.REPLIED: "Replied",
    Status.CLOSED: "Closed: a sale",
    Status.FAILED: "Failed: did not reach them",
    Status.UNKNOWN: "Unknown: may or may not have gone",
}

# Gateway names that mean the same as one of ours.
ALIASES: dict[str, Status] = {
    "READ": Status.READ_ACK,
    "PLAYED": Status.READ_ACK,
    "DELIVERED": Status.DELIVERY_ACK,
    "SENT": Status.SERVER_ACK,
    "ERROR": Status.FAILED,
}


class Stage(enum.StrEnum):
    """Funnel stages, in order. Each is reached when a status of at least `min_rank` is."""

    SENT = "sent"
    RECEIVED = "received"
    READ = "read"
    REPLIED = "replied"
    CLOSED = "closed"

    @property
    def min_rank(self) -> int:
        return STAGE_MIN_RANK[self]

    @property
    def label(self) -> str:
        return self.value.capitalize()


STAGE_MIN_RANK: dict[Stage, int] = {
    Stage.SENT: 1,
    Stage.RECEIVED: 3,
    Stage.READ: 4,
    Stage.REPLIED: 5,
    Stage.CLOSED: 6,
}

# The recipient column holding the time each stage was first reached.
STAGE_TIMESTAMP_COLUMN: dict[Stage, str] = {
    Stage.SENT: "sent_at",
    Stage.RECEIVED: "delivered_at",
    Stage.READ: "read_timestamp",
    Stage.REPLIED: "replied_at",
    Stage.CLOSED: "closed_at",
}


def parse_status(value: str) -> Status | None:
    """A gateway's status name in our terms, or None for a name we do not know."""
    name = value.strip().upper()
    if name in Status.__members__:
        return Status(name)
    return ALIASES.get(name)


def status_in_words(value: str) -> str | None:
    """A stored status in a marketer's words, or None for a code this version does not know;
    each caller picks its own fallback."""
    try:
        return STATUS_WORDS[Status(value)]
    except ValueError:
        return None


def rank(status: str) -> int:
    return RANK[Status(status)]


def stages_between(old_rank: int, new_rank: int) -> list[Stage]:
    """The stages a move from old_rank to new_rank reaches for the first time."""
    return [s for s in Stage if old_rank < s.min_rank <= new_rank]
