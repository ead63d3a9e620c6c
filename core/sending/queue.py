"""The send queue in the database: claiming a recipient, and settling what became of it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.models import Blast, BlastRecipient, BlastState, utcnow
from core.status_engine import apply_status
from core.statuses import Status


@dataclass(frozen=True)
class Claim:
    recipient_id: int
    blast_id: int
    phone_number: str
    message_text: str
    attempts: int


def devices_with_work(session: Session, *, now: dt.datetime) -> list[str]:
    """Devices that have a sending blast with a recipient due now."""
    rows = session.scalars(
        select(Blast.device)
        .join(BlastRecipient)
        .where(
            Blast.state == BlastState.SENDING,
            BlastRecipient.status == Status.QUEUED.value,
            (BlastRecipient.next_attempt_at.is_(None)) | (BlastRecipient.next_attempt_at <= now),
        )
        .distinct()
    ).all()
    return [d for d in rows if d]


def next_retry_at(session: Session) -> dt.datetime | None:
    """The earliest time a queued recipient of a sending blast waits for (a retry's backoff)."""
    return session.scalar(
        select(func.min(BlastRecipient.next_attempt_at))
        .join(Blast)
        .where(Blast.state == BlastState.SENDING, BlastRecipient.status == Status.QUEUED.value)
    )


def claim_next(
    session: Session, *, device: str, worker: str, now: dt.datetime, lease: dt.timedelta
) -> Claim | None:
    """Take the next due recipient of a sending blast on `device`: QUEUED → SENDING with a lease.

    On PostgreSQL the row is locked with SKIP LOCKED so concurrent workers take different
    rows; on SQLite the transaction already holds the database's write lock.
    """
    candidate = (
        select(BlastRecipient.id)
        .join(Blast)
        .where(
            Blast.state == BlastState.SENDING,
            Blast.device == device,
            BlastRecipient.status == Status.QUEUED.value,
            (BlastRecipient.next_attempt_at.is_(None)) | (BlastRecipient.next_attempt_at <= now),
        )
        .order_by(Blast.id, BlastRecipient.id)
        .limit(1)
        .with_for_update(of=BlastRecipient, skip_locked=True)
        .scalar_subquery()
    )
    # One statement: pick and take the row, so a claim costs a single round trip.
    row = session.execute(
        update(BlastRecipient)
        .where(BlastRecipient.id == candidate, BlastRecipient.status == Status.QUEUED.value)
        .values(
            status=Status.SENDING.value,
            claimed_by=worker,
            lease_expires_at=now + lease,
            attempts=BlastRecipient.attempts + 1,
            updated_at=now,
        )
        .returning(
            BlastRecipient.id, BlastRecipient.blast_id, BlastRecipient.phone_number,
            BlastRecipient.message_text, BlastRecipient.attempts,
        )
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if row is None:
        return None
    return Claim(row.id, row.blast_id, row.phone_number, row.message_text or "", row.attempts)


def release(
    session: Session, *, claim: Claim, worker: str, retry_at: dt.datetime | None, error: str | None,
    count_attempt: bool = True,
) -> bool:
    """Put a claimed recipient back in the queue: the gateway proved it did not take the message."""
    values: dict[str, object] = {
        "status": Status.QUEUED.value, "claimed_by": None, "lease_expires_at": None,
        "next_attempt_at": retry_at, "error": error, "updated_at": utcnow(),
    }
    if not count_attempt:
        values["attempts"] = BlastRecipient.attempts - 1
    result = session.execute(
        update(BlastRecipient)
        .where(
            BlastRecipient.id == claim.recipient_id,
            BlastRecipient.status == Status.SENDING.value,
            BlastRecipient.claimed_by == worker,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def settle(
    session: Session,
    *,
    claim: Claim,
    status: Status,
    at: dt.datetime,
    event: dict[str, object],
    updates: dict[str, object],
) -> bool:
    """Store the send's outcome through the status engine; the lease ends with it."""
    updates = {**updates, "claimed_by": None, "lease_expires_at": None, "next_attempt_at": None}
    change = apply_status(
        session, recipient_id=claim.recipient_id, status=status, source="send", at=at,
        event=event, updates=updates, known_old=Status.SENDING,
    )
    return change.changed


def expire_leases(session: Session, *, now: dt.datetime) -> list[int]:
    """Recipients whose worker vanished mid-send become UNKNOWN: the message may have gone."""
    expired = session.scalars(
        select(BlastRecipient.id)
        .where(BlastRecipient.status == Status.SENDING.value, BlastRecipient.lease_expires_at < now)
        .with_for_update(skip_locked=True)
    ).all()
    for recipient_id in expired:
        apply_status(
            session, recipient_id=recipient_id, status=Status.UNKNOWN, source="send", at=now,
            event={"reason": "lease expired without an answer from the gateway"},
            updates={
                "error": "The sender stopped before the gateway's answer was saved. The message "
                "may or may not have been delivered, so it was not sent again.",
                "claimed_by": None, "lease_expires_at": None,
            },
        )
    return list(expired)
