"""Telling a gateway's bad moment from a gateway that is down, per device.

A send can end without the gateway taking the message in three ways: proven not taken (busy,
unreachable), asked to slow down, or no usable answer. One of them is a bad moment: the send
is retried, or left unknown. Several of a kind in a row, with nothing taken between, mean
WSAPME is down for the device: the blast is paused, with what happened in words, before it
fails its people one by one or leaves the whole blast unknown.

Each worker counts its own sends; before it pauses it asks the database whether another worker
got a message through meanwhile, which breaks the row.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import GatewayError, GatewayUnreachable, RateLimited
from core.models import Blast, BlastRecipient, BlastState, utcnow
from core.wsapme.failures import UnexplainedRefusal

NOT_TAKEN = "not taken"  # proven not taken (busy, unreachable): each waits a growing backoff
SLOW_DOWN = "slow down"  # asked to slow down: never counted against the message's tries
UNKNOWN = "unknown"  # no usable answer: the first may be a one-off
REFUSED = "refused"  # turned down in words we do not know: each fails its own message
IN_A_ROW_TO_PAUSE = {NOT_TAKEN: 3, SLOW_DOWN: 10, UNKNOWN: 2, REFUSED: 5}
# A device's run of trouble is forgotten once nothing more went wrong for this long after it.
FORGOTTEN_AFTER = dt.timedelta(minutes=30)

# Why a blast was paused, as the marketer reads it on its page (and the health page lists it).
PAUSED_PREFIX = "Sending is paused:"  # how each begins
# A pause for messages not getting through ends by itself this long after it was made: their
# gateway was proven not to have them, and a bad spell on WSAPME's side or of this server's
# connection is often over by then. Still down, the next try pauses the blast again at once.
TRIES_AGAIN_AFTER = dt.timedelta(minutes=5)
NOT_TAKEN_HEAD = "Sending is paused: messages are not getting through to WSAPME."
PAUSE_WORDS = {
    NOT_TAKEN: (NOT_TAKEN_HEAD + " {cause} Nothing was lost: the messages wait in the queue. {then}"),
    SLOW_DOWN: ("Sending is paused: WSAPME asked to slow down {count} times in a row. Nothing was "
                "lost: the messages wait in the queue. Resume the blast in a while; if it happens "
                "again, allow more seconds between messages."),
    UNKNOWN: ("Sending is paused: WSAPME stopped answering. {cause} The last messages may or may "
              "not have arrived: check the recipients marked unknown before resuming. The rest "
              "wait in the queue."),
    REFUSED: ("Sending is paused: WSAPME turned down the last {count} messages in a row. {cause} If "
              "that is about the account or the settings rather than those numbers, whoever set up "
              "the dashboard should fix it; then send those again from Recipients → Failed, and "
              "resume. The rest wait in the queue."),
}


def kind_of(exc: GatewayError) -> str | None:
    """How a send that raised `exc` counts towards pausing its blast; None for a refusal, which
    pauses at once (the token, the device, the setup) or fails its own number alone."""
    if exc.accepted is None:
        return UNKNOWN
    if isinstance(exc, RateLimited):
        return SLOW_DOWN
    if isinstance(exc, UnexplainedRefusal):
        return REFUSED
    return NOT_TAKEN if exc.retryable else None


# What to do once messages stopped getting through: a gateway that answers "busy" is WSAPME's
# side; one that cannot be reached at all is as often this server's connection or its settings.
WHEN_BUSY = "Resume the blast once WSAPME is back."
_CHECK_THE_CONNECTION = ("if WSAPME works elsewhere (on the phone, on its website), whoever runs the "
                         "dashboard should check this server's internet connection and the WSAPME "
                         "address in its settings.")
WHEN_UNREACHED = "Resume the blast once this server can reach WSAPME again: " + _CHECK_THE_CONNECTION
# A pause that ends by itself says so, and only such a pause has these words: the worker's
# housekeeping finds it by them (`blasts.try_again_by_itself`), and an older pause, a person's,
# or one for a message out of tries never has them.
BY_ITSELF = (f"Sending tries again by itself every {TRIES_AGAIN_AFTER.seconds // 60} minutes until "
             "WSAPME takes them; resume the blast to try at once.")


def pause_words(kind: str, exc: GatewayError, *, in_a_row: int, by_itself: bool = False) -> str:
    """Why the blast is paused after `in_a_row` sends that ended `kind`, the last with `exc`;
    with `by_itself` (WSAPME down for the device, messages not taken), that the pause ends by
    itself."""
    head, stop, _ = exc.message.partition(". ")
    unreached = isinstance(exc, GatewayUnreachable)
    if by_itself and kind == NOT_TAKEN:
        then = BY_ITSELF + (" If this goes on, " + _CHECK_THE_CONNECTION if unreached else "")
    else:
        then = WHEN_UNREACHED if unreached else WHEN_BUSY
    return PAUSE_WORDS[kind].format(cause=head + "." if stop else exc.message, count=in_a_row, then=then)


@dataclass
class _Run:
    """A device's latest sends that the gateway did not take, counted by how they ended."""

    since: dt.datetime  # the first of them
    until: dt.datetime  # the last of them, or the end of the wait it brought
    counts: Counter[str] = field(default_factory=Counter)


class Tracker:
    """One worker's runs of trouble, by device."""

    def __init__(self) -> None:
        self._runs: dict[str, _Run] = {}

    def clear(self, device: str) -> None:
        """The gateway took a message from the device, or refused one for its number: it answers."""
        if self._runs:
            self._runs.pop(device, None)

    def count(self, device: str, kind: str) -> int:
        """Count one more send from `device` that ended `kind`; returns how many did in a row."""
        now = utcnow()
        run = self._runs.get(device)
        if run is None or now - run.until > FORGOTTEN_AFTER:
            run = self._runs[device] = _Run(since=now, until=now)
        run.counts[kind] += 1
        run.until = max(run.until, now)
        return run.counts[kind]

    def lasts_until(self, device: str, until: dt.datetime) -> None:
        """The device is held until then: its run is not forgotten while it waits."""
        run = self._runs.get(device)
        if run is not None:
            run.until = max(run.until, until)

    def down(self, s: Session, device: str, kind: str, in_a_row: int) -> bool:
        """Whether `in_a_row` sends of `kind` mean the gateway is down for the device. One
        another worker got through meanwhile breaks the row, and the count starts again from
        this one."""
        if in_a_row < IN_A_ROW_TO_PAUSE[kind]:
            return False
        run = self._runs.get(device)
        if run is None or not _taken_since(s, device=device, since=run.since):
            return True
        now = utcnow()
        self._runs[device] = _Run(since=now, until=now, counts=Counter({kind: 1}))
        return False


def _taken_since(s: Session, *, device: str, since: dt.datetime) -> bool:
    """Whether the gateway took a message of the device's current blasts since `since`."""
    return s.scalar(
        select(BlastRecipient.id).join(Blast)
        .where(Blast.device == device, Blast.state.in_((BlastState.SENDING, BlastState.PAUSED)),
               BlastRecipient.sent_at >= since)
        .limit(1)
    ) is not None
