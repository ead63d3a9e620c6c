"""Plain helpers that make test data: blasts and recipients in a given state."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from core.models import Blast, BlastRecipient

_counter = iter(range(10_000_000))


def make_blast(session: Session, **fields: Any) -> Blast:
    fields.setdefault("blast_tag", "Promo")
    fields.setdefault("follow_up_stage", "Initial")
    fields.setdefault("message_template", "Hi {name}!")
    blast = Blast(**fields)
    session.add(blast)
    session.flush()
    return blast


def make_recipient(session: Session, blast: Blast, **fields: Any) -> BlastRecipient:
    n = next(_counter)
    fields.setdefault("phone_number", f"+6012{n:07d}")
    fields.setdefault("contact_name", f"Customer {n}")
    recipient = BlastRecipient(blast_id=blast.id, **fields)
    session.add(recipient)
    session.flush()
    blast.total_recipients = (blast.total_recipients or 0) + 1
    return recipient


def messaged_last_week(session: Session, phones: list[str]) -> Blast:
    """A finished blast made six days ago that messaged (and was read by) these numbers."""
    from core.models import utcnow

    blast = make_blast(session, name="Year end · 20 Nov", state="completed",
                       created_at=utcnow() - dt.timedelta(days=6))
    for phone in phones:
        make_recipient(session, blast, phone_number=phone, status="READ_ACK", sent_at=utcnow())
    return blast


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, 2, hour, minute, tzinfo=dt.UTC)
