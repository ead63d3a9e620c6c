"""Polling, the fallback when webhooks are silent: ask the gateway about messages not yet read."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import threading
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from core import app_state
from core.config import Settings
from core.db import transaction
from core.errors import ConfigError, GatewayError
from core.funnel import status_rank
from core.models import Blast, BlastRecipient, WebhookInbox, utcnow
from core.phones import to_gateway
from core.sending import gateways
from core.status_engine import apply_status
from core.statuses import RANK, Stage, Status, parse_status
from core.wsapme.answers import StatusResult
from core.wsapme.failures import RETRY_AFTER_MAX, wait_words

log = logging.getLogger(__name__)
POLLING_STATE_KEY = "polling"
# When the gateway said status checks may resume, one key per gateway (WSAPME's wait says
# nothing about the practice gateway's): kept in the database so that the background rounds
# and every "Refresh statuses", in whichever process, keep to it.
GATEWAY_WAIT_KEY = "polling_wait:"


class StatusLookup(Protocol):
    def message_status(
        self, *, message_id: str, data: dict | None = None, to: str | None = None
    ) -> StatusResult | None: ...


@dataclass(frozen=True)
class PollRound:
    asked: int = 0
    changed: int = 0
    unknown: int = 0
    errors: int = 0
    stopped_by: str | None = None
    retry_after: float | None = None  # seconds the gateway asked to wait before the next round


# Inbox entries that carry a delivery or read receipt: "mixed" bodies hold several kinds of
# event, in practice receipts with a reply.
RECEIPT_KINDS = ("ack", "mixed")


def receipt_silence(settings: Settings) -> dt.timedelta:
    return dt.timedelta(minutes=settings.poll_webhook_silence_minutes)


def last_receipt_at(session: Session) -> dt.datetime | None:
    """When the last delivery or read receipt reached the webhook; None if none ever has."""
    return session.scalar(
        select(WebhookInbox.received_at)
        .where(WebhookInbox.kind.in_(RECEIPT_KINDS))
        .order_by(WebhookInbox.id.desc())
        .limit(1)
    )


def webhooks_silent(session: Session, *, settings: Settings, now: dt.datetime) -> bool:
    """True when no receipt has arrived recently, so statuses must be fetched instead.

    Only receipts count: with "Enable status" off in WSAPME, replies still arrive but receipts
    never do, and messages would stay "sent" for ever if replies kept polling off."""
    last = last_receipt_at(session)
    return last is None or now - last > receipt_silence(settings)


def polling_wanted(session: Session, *, settings: Settings, now: dt.datetime) -> bool:
    if settings.status_polling == "off":
        return False
    return settings.status_polling == "on" or webhooks_silent(session, settings=settings, now=now)


def due_for_polling(
    session: Session,
    *,
    now: dt.datetime,
    settings: Settings,
    blast_id: int | None = None,
    limit: int | None = None,
) -> list[BlastRecipient]:
    """Sent but not yet read, young enough to still change, and past their backoff. Only
    messages sent through the gateway these settings talk to: WSAPME knows nothing of the
    sandbox's message ids, nor the sandbox of WSAPME's."""
    rank = status_rank()
    query = (
        select(BlastRecipient)
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(
            gateways.sent_here(settings),
            BlastRecipient.message_id.is_not(None),
            rank >= Stage.SENT.min_rank,
            rank < Stage.READ.min_rank,
            BlastRecipient.sent_at >= now - dt.timedelta(hours=settings.poll_max_age_hours),
        )
        .order_by(BlastRecipient.last_polled_at.asc().nulls_first(), BlastRecipient.id)
    )
    if blast_id is not None:
        query = query.where(BlastRecipient.blast_id == blast_id)
    rows = session.scalars(query).all()
    if blast_id is None:
        rows = [r for r in rows if _backoff_over(r, now=now, settings=settings)]
    return list(rows[:limit] if limit else rows)


def _backoff_over(row: BlastRecipient, *, now: dt.datetime, settings: Settings) -> bool:
    if row.last_polled_at is None:
        return True
    wait = settings.poll_interval_seconds * 2 ** min(row.poll_failures, 6)
    return now - row.last_polled_at >= dt.timedelta(seconds=wait)


def poll_round(
    engine: Engine,
    client: StatusLookup,
    *,
    settings: Settings,
    blast_id: int | None = None,
) -> PollRound:
    """Ask about one batch (or, for a blast's "refresh statuses", all of its unread messages)."""
    now = utcnow()
    with transaction(engine) as s:
        waiting = gateway_wait(s, settings=settings, now=now)
        if waiting is not None:  # asking within the gateway's wait would only be turned away again
            return PollRound(stopped_by=_waiting_words(waiting, settings=settings), retry_after=waiting)
        limit = None if blast_id is not None else settings.poll_batch_size
        targets = [
            (r.id, r.message_id, r.wsapme_message_data, r.phone_number)
            for r in due_for_polling(s, now=now, settings=settings, blast_id=blast_id, limit=limit)
        ]
    asked = changed = unknown = errors = 0
    for recipient_id, message_id, data, phone in targets:
        try:
            answer = client.message_status(message_id=message_id, data=data, to=to_gateway(phone))
        except GatewayError as exc:
            errors += 1
            if _gateway_unwell(exc):  # every further look-up would fail the same way: stop asking
                _note_asked(engine, recipient_id, at=utcnow())
                wait = _note_wait(engine, settings=settings, seconds=exc.retry_after)
                return PollRound(asked, changed, unknown, errors, stopped_by=exc.message, retry_after=wait)
            _note_poll(engine, recipient_id, now=utcnow(), failed=True)
            continue
        except ConfigError as exc:  # a setting is wrong (the address, the token): nothing was asked
            return PollRound(asked, changed, unknown, errors + 1, stopped_by=exc.message)
        looked_at = utcnow()
        asked += 1
        if answer is None:
            unknown += 1
            _note_poll(engine, recipient_id, now=looked_at, failed=True)
            continue
        changed += _apply_answer(engine, recipient_id, answer, now=looked_at)
    return PollRound(asked, changed, unknown, errors)


def _gateway_unwell(exc: GatewayError) -> bool:
    """Whether a failed look-up is the gateway's trouble rather than this message's: it did not
    answer (a hang or a dropped connection), asked us to wait, or refused the token or device.
    Asking about the next message would cost the same wait or get the same no."""
    return exc.pauses_blast or exc.retryable or exc.accepted is None


def gateway_wait(session: Session, *, settings: Settings, now: dt.datetime) -> float | None:
    """Seconds left of the wait the gateway asked for before its next status check; None when
    it asked for none, or the wait is over."""
    kept = app_state.get(session, key=_wait_key(settings))
    try:
        until = dt.datetime.fromisoformat(kept[0]["until"]) if kept else None
    except (KeyError, TypeError, ValueError):
        return None
    if until is None or until.tzinfo is None:
        return None
    return _bounded_wait((until - now).total_seconds())


def _note_wait(engine: Engine, *, settings: Settings, seconds: float | None) -> float | None:
    """Keep the wait the gateway asked for (its Retry-After, as core/wsapme parsed it), bounded."""
    wait = _bounded_wait(seconds)
    if wait is not None:
        until = utcnow() + dt.timedelta(seconds=wait)
        with transaction(engine) as s:
            app_state.put(s, key=_wait_key(settings), value={"until": until.isoformat()})
    return wait


def _bounded_wait(seconds: float | None) -> float | None:
    """A wait worth keeping: none for a missing, zero or NaN one, and never past the longest a
    Retry-After is taken to ask (`RETRY_AFTER_MAX`; an infinite one included): a mistyped or
    absurd one must not stop statuses for ever."""
    if seconds is None or math.isnan(seconds) or seconds <= 0:
        return None
    return min(seconds, RETRY_AFTER_MAX)


def _wait_key(settings: Settings) -> str:
    return GATEWAY_WAIT_KEY + ("sandbox" if settings.sandbox else "wsapme")


def _waiting_words(seconds: float, *, settings: Settings) -> str:
    gateway = "The practice gateway" if settings.sandbox else "WSAPME"
    return f"{gateway} asked for a pause in status checks: try again {wait_words(seconds)}."


def _apply_answer(engine: Engine, recipient_id: int, answer: StatusResult, *, now: dt.datetime) -> int:
    """Apply what the gateway said, `now` being when it said it. When the answer carries the
    delivery time, "received" gets that time even if the message has been read since: the
    delivery first, at the gateway's time, then the higher status at the look-up's."""
    status = parse_status(answer.status or "")
    with transaction(engine) as s:
        _mark_polled(s, recipient_id, now=now, failed=False)
        if status is None or RANK[status] < Stage.SENT.min_rank:
            return 0  # a status look-up never proves a failure: unknown changes nothing
        changes = [
            apply_status(
                s,
                recipient_id=recipient_id,
                status=step,
                source="polling",
                at=at,
                event={"lookup": answer.lookup, "answer": answer.raw},
                updates={"message_c2s_timestamp": answer.delivered_at} if answer.delivered_at else None,
            )
            for step, at in _steps(status, _delivered_at(answer, now=now), now=now)
        ]
        return int(any(change.changed for change in changes))


def _steps(
    status: Status, delivered: dt.datetime | None, *, now: dt.datetime
) -> list[tuple[Status, dt.datetime]]:
    """The statuses to apply and when each happened."""
    if delivered is None or RANK[status] < RANK[Status.DELIVERY_ACK]:
        return [(status, now)]
    if status is Status.DELIVERY_ACK:
        return [(status, delivered)]
    return [(Status.DELIVERY_ACK, delivered), (status, now)]


def _delivered_at(answer: StatusResult, *, now: dt.datetime) -> dt.datetime | None:
    """The gateway's delivery time; never after the look-up, so a gateway clock running ahead
    cannot put "received" after "read"."""
    if not answer.delivered_at:
        return None
    return min(dt.datetime.fromtimestamp(answer.delivered_at, dt.UTC), now)


def _note_poll(engine: Engine, recipient_id: int, *, now: dt.datetime, failed: bool) -> None:
    with transaction(engine) as s:
        _mark_polled(s, recipient_id, now=now, failed=failed)


def _note_asked(engine: Engine, recipient_id: int, *, at: dt.datetime) -> None:
    """The message was asked about but the gateway was unwell: it goes to the back of the
    queue (so one message the gateway chokes on cannot hold up the rest), and its backoff
    stays as it was, since the trouble says nothing about the message."""
    with transaction(engine) as s:
        s.execute(
            update(BlastRecipient)
            .where(BlastRecipient.id == recipient_id)
            .values(last_polled_at=at)
            .execution_options(synchronize_session=False)
        )


def _mark_polled(session: Session, recipient_id: int, *, now: dt.datetime, failed: bool) -> None:
    failures = BlastRecipient.poll_failures + 1 if failed else 0
    session.execute(
        update(BlastRecipient)
        .where(BlastRecipient.id == recipient_id)
        .values(last_polled_at=now, poll_failures=failures)
        .execution_options(synchronize_session=False)
    )


class Poller:
    """The background poller: a round every interval while polling is wanted, or less often
    when the gateway asks to wait longer."""

    def __init__(self, *, engine: Engine, client: StatusLookup, settings: Settings) -> None:
        self.engine, self.client, self.settings = engine, client, settings
        self.last_round: PollRound | None = None
        self.last_run: dt.datetime | None = None
        self.active = False
        self.next_wait = settings.poll_interval_seconds  # seconds before the next round

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self.next_wait):
            self.next_wait = self.settings.poll_interval_seconds
            try:
                with transaction(self.engine) as s:
                    self.active = polling_wanted(s, settings=self.settings, now=utcnow())
                if self.active:
                    self.last_round = poll_round(self.engine, self.client, settings=self.settings)
                    self.last_run = utcnow()
                    self.next_wait = max(self.next_wait, self.last_round.retry_after or 0.0)
                with transaction(self.engine) as s:
                    app_state.put(
                        s,
                        key=POLLING_STATE_KEY,
                        value={
                            "active": self.active,
                            "mode": self.settings.status_polling,
                            "last_round": dataclasses.asdict(self.last_round) if self.last_round else None,
                        },
                    )
            except Exception:  # keep polling alive through a database or gateway outage
                log.exception("status polling round failed; trying again next interval")
