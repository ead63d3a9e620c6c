"""Replies: which sent message an incoming message answers, and opt-out words."""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from core.funnel import not_practice
from core.models import Blast, BlastRecipient
from core.phones import JidKind
from core.status_engine import found_lost_at
from core.statuses import Status
from core.webhook.parse import IncomingMessage

# Words that, as a whole message, mean "stop messaging me" (English, Malay, Chinese). More
# can be added with the opt-out words setting; matching ignores case and punctuation.
DEFAULT_OPT_OUT_WORDS = (
    "STOP", "UNSUBSCRIBE", "BERHENTI", "BERHENTI LANGGAN", "STOP ALL", "NO MORE", "TAK NAK",
    "退订", "取消订阅",
)
# Politeness around an opt-out word that leaves it an opt-out: "Stop pls", "Unsubscribe me".
# Kept short on purpose: any other word makes the message a sentence, and a sentence is a
# reply ("don't stop sending me deals").
FILLER_WORDS = (
    "pls", "please", "plz", "la", "lah", "thanks", "thank you", "thankyou", "thx", "tq", "me",
    "sorry", "ok", "okay", "tolong", "terima kasih",
)
# Chinese writes no spaces between words: "请退订", "退订谢谢", "麻烦退订". These, around a
# Chinese opt-out word, leave it an opt-out; any other (不要, 吗) makes it a sentence.
CJK_FILLER_WORDS = ("请", "谢谢", "谢", "麻烦", "帮我", "我要", "吧", "了", "啦")
# Phone clocks and ours differ a little: a reply stamped just before our send still counts.
CLOCK_SKEW = dt.timedelta(minutes=2)
_SPACES_RE = re.compile(r"\s+")
_FILLER = tuple(tuple(w.split()) for w in FILLER_WORDS + CJK_FILLER_WORDS)
_ZWJ = "\u200d"  # joins emoji into one ("👨‍👩‍👧")
_PRESENTATION = frozenset("\ufe0e\ufe0f")  # text or emoji style of the one before: same word
# Messages from a person that answer nothing, by message type (IncomingMessage.message_type).
_NOT_REPLY_TYPES = {
    "revoked": "a message deleted",
    "call_log": "a call",
    "pollupdatemessage": "a vote in a poll",
}


def not_a_reply(message: IncomingMessage) -> str | None:
    """Why an incoming message cannot be a person's reply; None when it can be."""
    if message.from_me:
        return "our own message echoed back"
    if message.jid_kind == JidKind.GROUP:
        return "a group message"
    if message.jid_kind == JidKind.BROADCAST or message.is_broadcast:
        return "a status post or broadcast"
    kind = message.message_type.casefold()
    if kind in _NOT_REPLY_TYPES:
        return _NOT_REPLY_TYPES[kind]
    if kind == "reactionmessage" and not message.text:
        return "a reaction taken back"
    if message.jid_kind == JidKind.UNKNOWN and "@" in message.jid:
        # A channel's post ("…@newsletter"), a bot: an address, but not a person's number.
        return f"not from a person's number ({message.jid.partition('@')[2] or 'no domain'})"
    return None


def unread_sender(message: IncomingMessage) -> str | None:
    """Why a person's message cannot be tied to a phone number; None when it can. Such a
    message may be a reply, or a request to stop: it is set aside, never ignored."""
    if message.phone is not None:
        return None
    if message.jid_kind == JidKind.LID:
        return "a privacy id (@lid) without the phone number beside it"
    return "the sender is not a phone number"


def replied_recipient(
    session: Session, *, phone: str, at: dt.datetime, window: dt.timedelta,
    lease: dt.timedelta = dt.timedelta(0), leave_out_practice: bool = False,
) -> int | None:
    """The recipient row of the most recent message sent to `phone` within `window` before `at`
    (with `leave_out_practice`, one that went to WhatsApp: a practice blast reached no phone).

    A send whose outcome is unknown counts too: the message may have gone, and a reply after it
    is the best evidence there is that it did. It then counts as replied, and nobody is asked to
    decide about it any more. It was found unknown (`found_lost_at`) up to `lease` after the
    send itself (a worker that stopped mid-send), so a reply from that long before still fits it.
    """
    query = select(BlastRecipient.id).where(BlastRecipient.phone_number == phone,
                                            _sent_within(at=at, window=window, lease=lease))
    if leave_out_practice:
        query = query.join(Blast, Blast.id == BlastRecipient.blast_id).where(not_practice())
    return session.scalar(query.order_by(_sent().desc(), BlastRecipient.id.desc()).limit(1))


def quoted_recipient(session: Session, *, phone: str, quoted_id: str) -> int | None:
    """The recipient row of our message `quoted_id`, when the reply quotes it (or reacts to it):
    the person said which message they answer, so it gets the reply even when a later one was
    sent to them since, and however long ago it went. Only a message to the same `phone`."""
    return session.scalar(
        select(BlastRecipient.id)
        .where(BlastRecipient.message_id == quoted_id, BlastRecipient.phone_number == phone)
        .order_by(BlastRecipient.id.desc())
        .limit(1)
    )


def _sent() -> ColumnElement[dt.datetime]:
    """When a message went: its send time, or for a send whose outcome is unknown, when it
    was found so (`found_lost_at`)."""
    return func.coalesce(BlastRecipient.sent_at, found_lost_at())


def _sent_within(*, at: dt.datetime, window: dt.timedelta, lease: dt.timedelta) -> ColumnElement[bool]:
    unknown = and_(BlastRecipient.status == Status.UNKNOWN.value, BlastRecipient.sent_at.is_(None))
    # A message the gateway reported an error for after taking it keeps its send time, but
    # never reached the person: what they say answers an earlier one.
    went = and_(BlastRecipient.sent_at.is_not(None), BlastRecipient.status != Status.FAILED.value)
    return and_(
        or_(and_(went, BlastRecipient.sent_at <= at + CLOCK_SKEW),
            and_(unknown, found_lost_at() <= at + CLOCK_SKEW + lease)),
        _sent() >= at - window,
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
    """Compatibility forms folded ("ＳＴＯＰ" → "stop"), lower case, punctuation and symbols as
    spaces, spaces collapsed: "Tak-nak!" → "tak nak". A text without a letter or digit keeps
    its emoji instead, one word each: "🛑🛑" → "🛑 🛑"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch if unicodedata.category(ch)[0] in "LN" else " " for ch in folded)
    words = _SPACES_RE.sub(" ", kept).strip()
    return words or _emoji_words(folded)


def _emoji_words(text: str) -> str:
    """The symbols in `text`, each with what joins or modifies it (a skin tone, a ZWJ)."""
    words: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in _PRESENTATION or not (category[0] == "S" or ch == _ZWJ):
            continue
        if words and (ch == _ZWJ or category == "Sk" or words[-1].endswith(_ZWJ)):
            words[-1] += ch
        else:
            words.append(ch)
    return " ".join(words)


def opt_out_keyword(text: str, *, words: Iterable[str]) -> str | None:
    """The message as `normalise_words` leaves it, upper-cased, when it asks to stop: opt-out
    `words`, said once or more, with nothing but FILLER_WORDS around them ("Stop pls",
    "STOP STOP", "Unsubscribe me"). None for any other message, and for a question ("Stop?")."""
    if _is_question(text):
        return None
    said = normalise_words(text)
    unspaced, parts = _phrases(tuple(words))
    return said.upper() if said and _only_opt_outs(tuple(_spaced(said, unspaced).split()), parts) else None


# (words, is an opt-out): what a message asking to stop is made of.
_Parts = tuple[tuple[tuple[str, ...], bool], ...]


@functools.lru_cache(maxsize=16)
def _phrases(words: tuple[str, ...]) -> tuple[tuple[str, ...], _Parts]:
    """The opt-out words as `normalise_words` reads them, with the filler around them, and the
    words written without spaces (Chinese) to part a message at: worked out once per list of
    words, not for every message."""
    opt_outs = {tuple(normalise_words(word).split()) for word in words} - {()}
    unspaced = (*(w for part in opt_outs for w in part if _has_cjk(w)), *CJK_FILLER_WORDS)
    parts = (*((word, True) for word in opt_outs), *((filler, False) for filler in _FILLER))
    return unspaced, parts


def _has_cjk(word: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in word)


def _spaced(said: str, words: Iterable[str]) -> str:
    """`said` with spaces around each of these unspaced words, the longest first."""
    for word in sorted(set(words), key=len, reverse=True):
        said = said.replace(word, f" {word} ")
    return " ".join(said.split())


def _is_question(text: str) -> bool:
    """A message whose last mark, after any emoji or spaces, is a question mark asks, it does
    not tell: "Stop?", "No more?" (sold out?). Full-width "？" is "?" once NFKC-folded."""
    for ch in reversed(unicodedata.normalize("NFKC", text)):
        if ch == "?":
            return True
        if ch.isalnum():
            return False
    return False


def _only_opt_outs(said: tuple[str, ...], parts: _Parts) -> bool:
    """Whether `said` is opt-out words and filler (`_phrases`) from end to end, with at least
    one opt-out word."""
    # read[i]: None when the first i words cannot be read so; else whether an opt-out is among them.
    read: list[bool | None] = [False] + [None] * len(said)
    for start in range(len(said)):
        so_far = read[start]
        if so_far is None:
            continue
        for part, is_opt_out in parts:
            end = start + len(part)
            if said[start:end] == part:
                read[end] = bool(read[end]) or so_far or is_opt_out
    return read[-1] is True


# --- messages no blast explains ------------------------------------------------------------

# The inbox's note on a person's message that answers no message sent within the reply window
# (a new lead, or a late answer): the Replies page finds such entries by it, and reads from it
# which numbers wrote, so it is written and read only here.
NO_BLAST = "no message sent to "
_NO_BLAST_RE = re.compile(r"(?:^|; |: )(opt-out [^;]+; )?" + re.escape(NO_BLAST) + r"(\S+) in the ")


def no_blast_note(phone: str, *, window: dt.timedelta, opt_out: str | None = None) -> str:
    """ "no message sent to +60123456789 in the 72 h before it", after "opt-out STOP; " when
    the message asked to stop."""
    text = f"{NO_BLAST}{phone} in the {window.total_seconds() / 3600:g} h before it"
    return f"opt-out {opt_out}; {text}" if opt_out else text


def no_blast_numbers(detail: str | None) -> set[str]:
    """The numbers an inbox entry's detail says wrote a message no blast explains, leaving out
    those that asked to stop (they are not a lead)."""
    found = _NO_BLAST_RE.findall(detail or "")
    stopped = {phone for opt_out, phone in found if opt_out}
    return {phone for _, phone in found} - stopped
