"""Replies: which sent message an incoming message answers, and opt-out words."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from core.models import BlastRecipient
from core.phones import JidKind
from core.statuses import Status
from core.webhook.parse import IncomingMessage

# Whole-message words that mean "stop messaging me" (English and Malay). More can be added
# with the opt-out words setting; matching ignores case and punctuation.
DEFAULT_OPT_OUT_WORDS = ("STOP", "UNSUBSCRIBE", "BERHENTI", "STOP ALL", "NO MORE", "TAK NAK")
# Phone clocks and ours differ a little: a reply stamped just before our send still counts.
CLOCK_SKEW = dt.timedelta(minutes=2)
_SPACES_RE = re.compile(r"\s+")


def not_a_reply(message: IncomingMessage) -> str | None:
    """Why an incoming message cannot be a person's reply; None when it can be."""
    if message.from_me:
        return "our own message echoed back"
    if message.jid_kind == JidKind.GROUP:
        return "a group message"
    if message.jid_kind == JidKind.BROADCAST or message.is_broadcast:
        return "a status post or broadcast"
    if message.phone is None:
        if message.jid_kind == JidKind.LID:
            return "a privacy id (@lid) without the phone number beside it"
        return "the sender is not a phone number"
    return None


def replied_recipient(
    session: Session, *, phone: str, at: dt.datetime, window: dt.timedelta,
    lease: dt.timedelta = dt.timedelta(0),
) -> int | None:
    """The recipient row of the most recent message sent to `phone` within `window` before `at`.

    A send whose outcome is unknown counts too (nothing touches such a row until a person
    decides): the message may have gone, and a reply after it is the best evidence there is
    that it did. It then counts as replied, and nobody is asked to decide about it any more.
    It was found unknown at its last change, up to `lease` after the send itself (a worker
    that stopped mid-send), so a reply from that long before still fits it.
    """
    unknown = and_(BlastRecipient.status == Status.UNKNOWN.value, BlastRecipient.sent_at.is_(None))
    sent = func.coalesce(BlastRecipient.sent_at, BlastRecipient.updated_at)
    return session.scalar(
        select(BlastRecipient.id)
        .where(
            BlastRecipient.phone_number == phone,
            or_(and_(BlastRecipient.sent_at.is_not(None), BlastRecipient.sent_at <= at + CLOCK_SKEW),
                and_(unknown, BlastRecipient.updated_at <= at + CLOCK_SKEW + lease)),
            sent >= at - window,
        )
        .order_by(sent.desc(), BlastRecipient.id.desc())
        .limit(1)
    )


def in_flight(now: dt.datetime) -> ColumnElement[bool]:
    """A message with the gateway whose answer is not stored yet. One whose lease has run out
    by `now` is not counted: no worker is left to mark it unknown, so waiting for it would
    wait out the webhook's whole wait."""
    return and_(BlastRecipient.status == Status.SENDING.value,
                or_(BlastRecipient.lease_expires_at.is_(None), BlastRecipient.lease_expires_at > now))


def is_being_sent(session: Session, *, phone: str, now: dt.datetime) -> bool:
    """Whether a message to `phone` is with the gateway but its answer not stored yet
    (`in_flight`).

    An auto-reply can come back before the send's own write, and a quick answer before a
    follow-up's: such a reply waits for it, as it may be the reply to this newest message
    rather than to an earlier one.
    """
    return session.scalar(
        select(BlastRecipient.id).where(BlastRecipient.phone_number == phone, in_flight(now)).limit(1)
    ) is not None


def normalise_words(text: str) -> str:
    """Lower case, punctuation and symbols as spaces, spaces collapsed: "Tak-nak!" → "tak nak"."""
    kept = "".join(
        ch if unicodedata.category(ch)[0] in "LN" else " " for ch in text.casefold()
    )
    return _SPACES_RE.sub(" ", kept).strip()


def opt_out_keyword(text: str, *, words: Iterable[str]) -> str | None:
    """The opt-out word the whole message is, upper-cased; None for any other message."""
    said = normalise_words(text)
    if not said:
        return None
    for word in words:
        if normalise_words(word) == said:
            return said.upper()
    return None
