"""The send queue in the database: claiming a recipient, and settling what became of it."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ScalarSelect, Update, bindparam, delete, exists, func, literal, select, true, update
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.followups import count_moved_on
from core.models import Blast, BlastRecipient, BlastState, OptOut, StatusHistory, UtcDateTime, utcnow
from core.opt_outs import has_a_past, withdraw_from_queues
from core.status_engine import apply_status
from core.statuses import Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    recipient_id: int
    blast_id: int
    phone_number: str
    message_text: str
    attempts: int
    worker: str  # who holds it: only its answer settles the row
    claimed_at: dt.datetime
    lease_until: dt.datetime  # after this the row is marked unknown, and may be sent again by a person


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


def call_out(session: Session, *, device: str) -> bool:
    """Whether a message from `device` is with the gateway, its answer not stored yet (another
    worker's call): the gap must run from that answer, so nothing else goes from it meanwhile."""
    # Cancelled too: a blast cancelled while its message was with the gateway still has it out.
    blasts_of_device = select(Blast.id).where(
        Blast.device == device,
        Blast.state.in_((BlastState.SENDING, BlastState.PAUSED, BlastState.CANCELLED)))
    return session.scalar(
        select(BlastRecipient.id)
        .where(BlastRecipient.blast_id.in_(blasts_of_device), BlastRecipient.status == Status.SENDING.value)
        .limit(1)
    ) is not None


def next_retry_at(session: Session, *, sent_here: ColumnElement[bool] | None = None) -> dt.datetime | None:
    """The earliest time a queued recipient of a sending blast waits for (a retry's backoff);
    with `sent_here` (`gateways.sent_here`), of the blasts the worker's gateway sends."""
    query = (
        select(func.min(BlastRecipient.next_attempt_at))
        .join(Blast)
        .where(Blast.state == BlastState.SENDING, BlastRecipient.status == Status.QUEUED.value)
    )
    return session.scalar(query if sent_here is None else query.where(sent_here))


# Written into the SQL, not sent as a parameter: a planner only uses a partial index for
# a condition it can see matches the index's own.
_QUEUED = literal(Status.QUEUED.value, literal_execute=True)


def _due(now: ColumnElement) -> ColumnElement[bool]:
    return (BlastRecipient.status == _QUEUED) & (
        BlastRecipient.next_attempt_at.is_(None) | (BlastRecipient.next_attempt_at <= now)
    )


def _opted_out() -> ColumnElement[bool]:
    return exists().where(OptOut.phone_number == BlastRecipient.phone_number)


def _first_due_postgresql(now: ColumnElement) -> ScalarSelect:
    """The oldest sending blast's first due row, each blast looked at through the queue index.

    LATERAL makes PostgreSQL read one index entry per sending blast; a plain join sorted
    every queued row of them (8 ms a claim with 9,000 queued, 0.2 ms this way).
    """
    first = (
        select(BlastRecipient.id)
        .where(BlastRecipient.blast_id == Blast.id, _due(now))
        .order_by(BlastRecipient.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .lateral("first_due")
    )
    return (
        select(first.c.id)
        .select_from(Blast)
        .join(first, true())
        .where(Blast.state == BlastState.SENDING, Blast.device == bindparam("device"))
        .order_by(Blast.id)
        .limit(1)
        .scalar_subquery()
    )


def _first_due_sqlite(now: ColumnElement) -> ScalarSelect:
    """The same for SQLite, which has no LATERAL: each sending blast's first due row as a
    correlated subquery. A plain join sorted the whole queue whenever SQLite had no
    statistics to go by (it never gathers them by itself)."""
    first = (
        select(BlastRecipient.id)
        .where(BlastRecipient.blast_id == Blast.id, _due(now))
        .order_by(BlastRecipient.id)
        .limit(1)
        .correlate(Blast)
        .scalar_subquery()
    )
    per_blast = (
        select(Blast.id.label("blast_id"), first.label("id"))
        .where(Blast.state == BlastState.SENDING, Blast.device == bindparam("device"))
        .subquery("per_blast")
    )
    return (
        select(per_blast.c.id)
        .where(per_blast.c.id.is_not(None))
        .order_by(per_blast.c.blast_id)
        .limit(1)
        .scalar_subquery()
    )


@functools.cache
def claim_statement(dialect: str) -> Update:
    """Pick and take the next due row in one statement, so a claim is one round trip.

    A row whose number is on the opt-out list is not taken: a STOP can land while its row is
    out of the webhook's reach (being sent, or being put back or sent again in a transaction
    that cannot see the STOP yet), so the list is read again here, the last moment before
    the message goes. Such a row blocks the claim until `withdraw_opted_out` takes it off.

    Built once per database with parameters: building it anew cost as much as running it.
    """
    now = bindparam("now", type_=UtcDateTime)
    first_due = _first_due_postgresql(now) if dialect == "postgresql" else _first_due_sqlite(now)
    return (
        update(BlastRecipient)
        .where(BlastRecipient.id == first_due, BlastRecipient.status == _QUEUED, ~_opted_out())
        .values(
            status=Status.SENDING.value,
            claimed_by=bindparam("worker"),
            lease_expires_at=bindparam("lease_until", type_=UtcDateTime),
            attempts=BlastRecipient.attempts + 1,
            updated_at=now,
        )
        .returning(
            BlastRecipient.id, BlastRecipient.blast_id, BlastRecipient.phone_number,
            BlastRecipient.message_text, BlastRecipient.attempts,
        )
        .execution_options(synchronize_session=False)
    )


def claim_params(*, device: str, worker: str, now: dt.datetime, lease: dt.timedelta) -> dict[str, Any]:
    return {"device": device, "worker": worker, "now": now, "lease_until": now + lease}


def claim_next(
    session: Session, *, device: str, worker: str, now: dt.datetime, lease: dt.timedelta
) -> Claim | None:
    """Take the next due recipient of a sending blast on `device`: QUEUED → SENDING with a lease.

    On PostgreSQL the row is locked with SKIP LOCKED so concurrent workers take different
    rows; on SQLite the transaction already holds the database's write lock. Both find it
    through the partial index of queued rows (migration 0002). A number that opted out is
    taken off the queue instead (`withdraw_opted_out`), and the next one claimed.
    """
    params = claim_params(device=device, worker=worker, now=now, lease=lease)
    statement = claim_statement(session.get_bind().dialect.name)
    while True:
        # On the session's connection: the ORM's handling of an UPDATE (which this one does not
        # need: nothing is loaded) took 0.7 ms a claim, more than the database did.
        row = session.connection().execute(statement, params).one_or_none()
        if row is not None:
            return claim_from(row, params)
        if not withdraw_opted_out(session, device=device):
            return None


def claim_from(row: Sequence[Any], params: dict[str, Any]) -> Claim:
    """The claim the claim statement's row and `claim_params` describe."""
    recipient_id, blast_id, phone_number, message_text, attempts = row
    return Claim(recipient_id, blast_id, phone_number, message_text or "", attempts,
                 worker=params["worker"], claimed_at=params["now"], lease_until=params["lease_until"])


def withdraw_opted_out(session: Session, *, device: str) -> int:
    """Take the numbers that opted out off the queues of the device's sending blasts, as
    `opt_outs.withdraw_from_queues` does when the STOP comes (one never tried counted as opted
    out, one with a past failed, its row kept): the claim refuses them (`claim_statement`), and
    every one leaves the queue, so the claim that asked ends. Asked only when a claim found
    nothing, so it costs nothing while messages go."""
    sending = select(Blast.id).where(Blast.state == BlastState.SENDING, Blast.device == device)
    phones = session.scalars(
        select(BlastRecipient.phone_number)
        .where(BlastRecipient.status == _QUEUED, BlastRecipient.blast_id.in_(sending), _opted_out())
        .distinct()
    ).all()
    return withdraw_from_queues(session, list(phones), source="send")


def release(
    session: Session, *, claim: Claim, worker: str, retry_at: dt.datetime | None, error: str | None,
    count_attempt: bool = True,
) -> bool:
    """Put a claimed recipient back in the queue: the gateway proved it did not take the message.

    A number that opted out while its message was with the gateway (too late to stop then) is
    taken off the queue instead of being tried again (`opt_outs.withdraw_from_queues`). In a
    blast cancelled meanwhile it is not tried again either: it keeps no time for a next try nor
    words that promise one, and reads as not sent, cancelled. The blast's row is held from the
    look until the commit (FOR NO KEY UPDATE on PostgreSQL, as its own change would take: a
    shared hold upgraded by a pause in the same transaction could deadlock with another worker's;
    SQLite's write lock holds everything): a cancel committed between the look and the write had
    left a promise of a retry."""
    state = session.scalar(select(Blast.state).where(Blast.id == claim.blast_id)
                           .with_for_update(key_share=True))
    if state == BlastState.CANCELLED:
        retry_at = error = None
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
    if result.rowcount != 1:
        return False
    if session.scalar(select(OptOut.phone_number).where(OptOut.phone_number == claim.phone_number)):
        withdraw_from_queues(session, [claim.phone_number], source="send")
    return True


# Why a follow-up's row that was sent before (found unknown, sent again by a person) is not sent
# again. It stays unknown: its first message may have reached them, and the row is its only record.
MOVED_ON = ("Not sent again: they no longer match the follow-up's choice (replied or bought since). "
            "The first send may have reached them.")


def withdraw_claim(session: Session, *, claim: Claim, worker: str) -> bool:
    """Take a claimed recipient off its follow-up before the message goes: they no longer match
    its choice (`followups.still_wanted`). Counted on the blast, as at its start. A row with a
    past (sent before, found unknown, sent again by a person) stays, UNKNOWN again with the
    reason: its first message may have reached them (FAILED would say it never went, and free
    them for another follow-up)."""
    if session.scalar(select(BlastRecipient.id).where(BlastRecipient.id == claim.recipient_id, has_a_past())):
        return settle(session, claim=claim, status=Status.UNKNOWN, at=utcnow(),
                      event={"reason": "no longer matches the follow-up's choice"},
                      updates={"error": MOVED_ON})
    removed = session.execute(
        delete(BlastRecipient)
        .where(BlastRecipient.id == claim.recipient_id, BlastRecipient.status == Status.SENDING.value,
               BlastRecipient.claimed_by == worker)
        .execution_options(synchronize_session=False)
    ).rowcount
    count_moved_on(session, blast_id=claim.blast_id, removed=removed)
    return bool(removed)


def settle(
    session: Session,
    *,
    claim: Claim,
    status: Status,
    at: dt.datetime,
    event: dict[str, object],
    updates: dict[str, object],
) -> bool:
    """Store the send's outcome through the status engine; the lease ends with it.

    A row that is no longer this claim's is left as it is: this claim's lease ran out (the row
    was marked unknown), a person sent it again, and that send is under way or has been
    answered. The answer, which may say a message went out, is kept in the row's history and
    the log instead (`_keep_late_answer`). A row marked unknown that no one sent again (no
    message id) still takes the answer: it says what became of the row's only send."""
    row = session.execute(
        select(BlastRecipient.status, BlastRecipient.claimed_by, BlastRecipient.message_id)
        .where(BlastRecipient.id == claim.recipient_id)
        .with_for_update()
    ).one_or_none()
    if row is not None and _sent_again(row, claim=claim, message_id=updates.get("message_id")):
        being_sent = row.status == Status.SENDING.value
        _keep_late_answer(session, claim=claim, status=status, at=at, event=event, updates=updates,
                          sent_again_as=None if being_sent else row.message_id)
        return False
    updates = {**updates, "claimed_by": None, "lease_expires_at": None, "next_attempt_at": None}
    change = apply_status(
        session, recipient_id=claim.recipient_id, status=status, source="send", at=at,
        event=event, updates=updates, known_old=Status.SENDING,
    )
    return change.changed


def _sent_again(row: Row[Any], *, claim: Claim, message_id: object) -> bool:
    """Whether the row now stands for another send than this claim's: being sent under another
    claim, or carrying another message id (the send again was answered first). Settling it
    would put this answer's details on the other send's row, or drop the answer unseen."""
    if row.status == Status.SENDING.value:
        return row.claimed_by != claim.worker
    return row.message_id is not None and row.message_id != message_id


def _keep_late_answer(
    session: Session, *, claim: Claim, status: Status, at: dt.datetime, event: dict[str, object],
    updates: dict[str, object], sent_again_as: str | None,
) -> None:
    """A history row with the answer to an earlier claim, the status left as it is: a person can
    see that two messages may have gone, and match the first by its id (`message_id`; none when
    the gateway gave none). It reads SENDING to SENDING, the claim's own view: its send."""
    message_id = updates.get("message_id")
    session.add(StatusHistory(
        recipient_id=claim.recipient_id, old_status=Status.SENDING.value, new_status=Status.SENDING.value,
        changed_at=at, source="send", event={**event, "late_answer": status.value, "message_id": message_id},
    ))
    again = f"was sent again (message id {sent_again_as})" if sent_again_as else "was being sent again"
    log.warning("recipient %d: an answer (%s, message id %s) came after its lease ran out and the "
                "message %s; kept in its history, the recipient left as it is", claim.recipient_id,
                status.value, message_id or "none given", again)


def expire_leases(session: Session, *, now: dt.datetime) -> list[int]:
    """Recipients whose worker vanished mid-send become UNKNOWN: the message may have gone.
    Each is dated by when its lease ran out, not by when this found it: with no worker running
    for a while, that can be long after. The receipts and replies that prove the message went
    are matched to it by that time (within a lease of the send), and had been turned away."""
    expired = session.execute(
        select(BlastRecipient.id, BlastRecipient.lease_expires_at)
        .where(BlastRecipient.status == Status.SENDING.value, BlastRecipient.lease_expires_at < now)
        .with_for_update(skip_locked=True)
    ).all()
    for recipient_id, lease_ended in expired:
        apply_status(
            session, recipient_id=recipient_id, status=Status.UNKNOWN, source="send",
            at=lease_ended,
            event={"reason": "lease expired without an answer from the gateway"},
            updates={
                "error": "The sender stopped before the gateway's answer was saved. The message "
                "may or may not have been delivered, so it was not sent again.",
                "claimed_by": None, "lease_expires_at": None,
            },
        )
    return [recipient_id for recipient_id, _ in expired]


def say_expired(expired: Sequence[int]) -> None:
    """In the log, once what `expire_leases` found is committed."""
    if expired:
        log.warning("%d sends lost their worker mid-way and were marked unknown", len(expired))
