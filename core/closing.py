"""Closing sales from a file: a CSV of phone numbers that bought, matched to the messages sent."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.csv_import import Outcome, parse_csv
from core.exports import to_csv
from core.models import Blast, BlastRecipient
from core.status_engine import apply_status
from core.statuses import Status


class CloseOutcome(enum.StrEnum):
    CLOSED = "closed"
    ALREADY_CLOSED = "already closed"
    NOT_MESSAGED = "no message sent to this number"
    # Closing for one campaign: a buyer another campaign messaged is not a wrong number.
    MESSAGED_ELSEWHERE = "messaged by another campaign: not closed here"
    INVALID = "not a usable number"
    DUPLICATE = "listed twice"


@dataclass(frozen=True)
class CloseRow:
    line: int
    outcome: CloseOutcome
    phone: str | None
    blast_id: int | None = None
    detail: str | None = None
    blast_name: str | None = None  # the other campaign's blast, for MESSAGED_ELSEWHERE


@dataclass(frozen=True)
class CloseReport:
    rows: list[CloseRow]

    def count(self, outcome: CloseOutcome) -> int:
        return sum(1 for row in self.rows if row.outcome is outcome)

    def messaged_elsewhere(self) -> list[str]:
        """The other campaigns' blasts that messaged numbers left open, each once."""
        return list(dict.fromkeys(r.blast_name or "" for r in self.rows
                                  if r.outcome is CloseOutcome.MESSAGED_ELSEWHERE))

    def to_csv(self) -> bytes:
        return to_csv(
            ((r.line, r.outcome.value, r.phone or "", r.blast_id or "", r.detail or "") for r in self.rows),
            columns=("line", "outcome", "phone", "blast", "detail"),
        )


def latest_sent(session: Session, *, phone: str, blast_ids: Sequence[int] = ()) -> BlastRecipient | None:
    """The most recent message that went out to this number (in these blasts, if given)."""
    query = (
        select(BlastRecipient)
        .where(BlastRecipient.phone_number == phone, BlastRecipient.sent_at.is_not(None))
        .order_by(BlastRecipient.sent_at.desc(), BlastRecipient.id.desc())
        .limit(1)
    )
    if blast_ids:
        query = query.where(BlastRecipient.blast_id.in_(tuple(blast_ids)))
    return session.scalars(query).first()


def close_from_csv(
    session: Session, data: bytes, *, region: str, blast_ids: Sequence[int] = (),
    filename: str | None = None, max_upload_mb: float = 10.0, phone_column: str | None = None,
) -> CloseReport:
    """Mark CLOSED (source `import`) the latest message sent to each number in the file, its
    numbers found by their header or in `phone_column` (a header, or "column 2").

    Every line gets an outcome; nothing is skipped silently. Raises BadCsv for a file that
    cannot be read at all, ColumnNotFound (with the columns to choose from) when no column
    holds phone numbers.
    """
    report = parse_csv(data, filename=filename, region=region, max_upload_mb=max_upload_mb,
                       phone_column=phone_column)
    rows: list[CloseRow] = []
    for row in report.rows:
        if row.outcome is Outcome.BLANK:
            continue
        if row.outcome is Outcome.INVALID:
            typed = f"“{row.raw_phone}”: " if row.raw_phone.strip() else ""  # what to look for in the file
            rows.append(CloseRow(row.line, CloseOutcome.INVALID, None, detail=typed + (row.reason or "")))
        elif row.outcome is Outcome.DUPLICATE:
            rows.append(CloseRow(row.line, CloseOutcome.DUPLICATE, row.phone,
                                 detail=f"same number as line {row.duplicate_of}"))
        else:
            rows.append(_close_one(session, line=row.line, phone=row.phone or "", blast_ids=blast_ids,
                                   filename=filename))
    return CloseReport(rows)


def _close_one(session: Session, *, line: int, phone: str, blast_ids: Sequence[int],
               filename: str | None) -> CloseRow:
    recipient = latest_sent(session, phone=phone, blast_ids=blast_ids)
    if recipient is None:
        elsewhere = latest_sent(session, phone=phone) if blast_ids else None
        if elsewhere is None:
            return CloseRow(line, CloseOutcome.NOT_MESSAGED, phone)
        blast = session.get(Blast, elsewhere.blast_id)
        name = (blast.name if blast else None) or f"Blast #{elsewhere.blast_id}"
        return CloseRow(line, CloseOutcome.MESSAGED_ELSEWHERE, phone, blast_id=elsewhere.blast_id,
                        detail=f"messaged by “{name}”: close it there, or look through every blast",
                        blast_name=name)
    change = apply_status(
        session, recipient_id=recipient.id, status=Status.CLOSED, source="import",
        event={"action": "closed from file", "file": filename, "line": line},
    )
    outcome = CloseOutcome.CLOSED if change.changed else CloseOutcome.ALREADY_CLOSED
    return CloseRow(line, outcome, phone, blast_id=recipient.blast_id)
