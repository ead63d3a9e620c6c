"""Closing sales from a file: a CSV of phone numbers that bought, matched to the messages sent."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from core import phones
from core.csv_import import ColumnNotFound, ImportReport, Outcome, parse_csv
from core.csv_import.columns import SAMPLE_RECORDS, header_words, phone_rank
from core.db import transaction
from core.errors import BlastError
from core.exports import to_csv
from core.funnel import not_practice
from core.models import Blast, BlastRecipient
from core.recipients import NOT_SENT, close_sale, closed_under_its_tag, sales_in_turn
from core.status_engine import found_lost_at
from core.statuses import Status
from core.words import and_list

log = logging.getLogger(__name__)

# Lines closed per transaction. Each holds the database's write lock while it runs (on SQLite,
# the webhook's writes wait for it): 20,000 lines in one would hold it for 15 seconds or more.
CLOSE_BATCH_ROWS = 250

# Words in a header that say whose number a column holds: the buyer's, or that of the staff
# member who made the sale ("No Tel Ejen" beside "No Tel Pelanggan").
BUYER_WORDS = frozenset({"pelanggan", "customer", "customers", "client", "klien", "pembeli", "buyer"})
STAFF_WORDS = frozenset({"ejen", "agent", "staff", "sales", "salesperson", "jurujual", "kakitangan",
                         "referrer", "rep"})


class CloseOutcome(enum.StrEnum):
    CLOSED = "closed"
    ALREADY_CLOSED = "already closed"
    NOT_MESSAGED = "no message sent to this number"
    # Closing for one blast and its follow-ups: a buyer another blast messaged is not a wrong number.
    MESSAGED_ELSEWHERE = "messaged by another blast, not this one or its follow-ups: not closed here"
    INVALID = "not a usable number"
    DUPLICATE = "listed twice"


@dataclass(frozen=True)
class CloseRow:
    line: int
    outcome: CloseOutcome
    phone: str | None
    blast_id: int | None = None
    detail: str | None = None
    blast_name: str | None = None  # the other blast, for MESSAGED_ELSEWHERE


@dataclass(frozen=True)
class CloseReport:
    rows: list[CloseRow]
    phone_column: str | None = None  # the column the numbers were read from
    notes: tuple[str, ...] = ()  # what reading the file noticed: a header further down, an encoding…

    def count(self, outcome: CloseOutcome) -> int:
        return sum(1 for row in self.rows if row.outcome is outcome)

    def messaged_elsewhere(self) -> list[str]:
        """The other blasts that messaged numbers left open, each once."""
        return list(dict.fromkeys(r.blast_name or "" for r in self.rows
                                  if r.outcome is CloseOutcome.MESSAGED_ELSEWHERE))

    def to_csv(self) -> bytes:
        return to_csv(
            ((r.line, r.outcome.value, r.phone or "", r.blast_id or "", r.detail or "") for r in self.rows),
            columns=("line", "outcome", "phone", "blast", "detail"),
        )


class PhoneColumnUnclear(ColumnNotFound):
    """More than one column could hold the buyers' numbers ("No Tel Ejen" and "No Tel
    Pelanggan"): a person chooses before anything is closed. `headers` are those columns,
    `suggested` the likeliest (a customer's column before a staff member's)."""

    def __init__(self, message: str, *, headers: tuple[str, ...], suggested: str) -> None:
        super().__init__(message, headers=headers)
        self.suggested = suggested


class ClosingStopped(BlastError):
    """Closing a file stopped part way; `report` has the lines done before (their batches
    were recorded)."""

    def __init__(self, message: str, *, report: CloseReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class SaleLine:
    """A line of a sales file: a number to match, or already judged from the file alone."""

    line: int
    phone: str | None = None  # E.164
    judged: CloseRow | None = None  # not a usable number, or listed twice


@dataclass(frozen=True)
class SalesFile:
    """A sales file read and checked, nothing closed yet."""

    lines: list[SaleLine]
    phone_column: str
    notes: tuple[str, ...] = ()
    filename: str | None = None

    def report(self, rows: list[CloseRow]) -> CloseReport:
        return CloseReport(rows, phone_column=self.phone_column, notes=self.notes)


def read_sales(
    data: bytes, *, region: str, filename: str | None = None, max_upload_mb: float = 10.0,
    phone_column: str | None = None,
) -> SalesFile:
    """Read a file of numbers that bought, found by their header or in `phone_column` (a
    header, or "column 2"). Every line but a blank one is kept, to get an outcome.

    Raises BadCsv for a file that cannot be read at all, ColumnNotFound (with the columns to
    choose from) when no column holds phone numbers, and PhoneColumnUnclear when several could
    and none was chosen: closing the agent's number instead of the customer's would record
    the sale on the wrong person, with nothing to show for it.
    """
    report = parse_csv(data, filename=filename, region=region, max_upload_mb=max_upload_mb,
                       phone_column=phone_column)
    if phone_column is None and report.columns.phone_note:
        choices = _columns_with_numbers(report, region)
        if len(choices) > 1:
            raise _unclear(choices, taken=report.phone_column)
    lines = []
    for row in report.rows:
        if row.outcome is Outcome.BLANK:
            continue
        if row.outcome in (Outcome.INVALID, Outcome.HIDDEN):
            typed = f"“{row.raw_phone}”: " if row.raw_phone.strip() else ""  # what to look for in the file
            judged = CloseRow(row.line, CloseOutcome.INVALID, None, detail=typed + (row.reason or ""))
            lines.append(SaleLine(row.line, judged=judged))
        elif row.outcome is Outcome.DUPLICATE:
            judged = CloseRow(row.line, CloseOutcome.DUPLICATE, row.phone,
                              detail=f"same number as line {row.duplicate_of}")
            lines.append(SaleLine(row.line, judged=judged))
        else:
            lines.append(SaleLine(row.line, phone=row.phone or ""))
    return SalesFile(lines, report.phone_column, tuple(report.notes), filename)


def _columns_with_numbers(report: ImportReport, region: str) -> tuple[str, ...]:
    """The columns that could be the phone column, as the import weighed them (one whose header
    names a phone; any column, in a file without a header), less those with no phone number
    in the first rows (a yes/no "WhatsApp" column)."""
    columns = report.columns
    sample = report.recipients[:SAMPLE_RECORDS]

    def numbers_in(i: int) -> bool:
        return any(phones.normalise(str(row.variables.get(columns.keys[i], "")), region).ok for row in sample)

    return tuple(header for i, header in enumerate(columns.headers) if i == columns.phone or (
        (columns.header_index is None or phone_rank(header) is not None) and numbers_in(i)))


def _whose(header: str) -> int:
    """0 for a customer's column, 2 for a staff member's, 1 for one that does not say."""
    words = set(header_words(header).split())
    return 0 if words & BUYER_WORDS else 2 if words & STAFF_WORDS else 1


def _unclear(choices: tuple[str, ...], *, taken: str) -> PhoneColumnUnclear:
    suggested = min(choices, key=lambda header: (_whose(header), header != taken))
    named = [f"“{header}”" for header in choices]
    return PhoneColumnUnclear(
        f"More than one column could hold the numbers of the people who bought: {and_list(named)}. "
        "Nothing has been closed yet: choose the column with the buyers' numbers.",
        headers=choices, suggested=suggested,
    )


def close_sales(
    session: Session, lines: Sequence[SaleLine], *, blast_ids: Sequence[int] = (),
    filename: str | None = None, leave_out_practice: bool = False,
) -> list[CloseRow]:
    """Mark CLOSED (source `import`) the message each line's number was last sent (in these
    blasts, if given; with `leave_out_practice`, one that went to WhatsApp): one outcome per
    line."""
    sales_in_turn(session, (line.phone for line in lines if line.judged is None and line.phone))
    return [line.judged or _close_one(session, line=line.line, phone=line.phone or "", blast_ids=blast_ids,
                                      filename=filename, leave_out_practice=leave_out_practice)
            for line in lines]


def close_in_batches(
    engine: Engine, sales: SalesFile, *, blast_ids: Sequence[int] = (), batch_rows: int = CLOSE_BATCH_ROWS,
    progress: Callable[[int, int], None] | None = None, leave_out_practice: bool = False,
) -> CloseReport:
    """`close_sales` for `batch_rows` lines at a time, each batch committed on its own, so that a
    long list never holds the write lock for long. `progress(done, of)` after each batch.

    Raises ClosingStopped, with the lines recorded before, when a batch fails: that batch is
    rolled back whole, and the ones before it stay recorded.
    """
    rows: list[CloseRow] = []
    total = len(sales.lines)
    for start in range(0, total, batch_rows):
        batch = sales.lines[start:start + batch_rows]
        try:
            with transaction(engine) as s:
                done = close_sales(s, batch, blast_ids=blast_ids, filename=sales.filename,
                                   leave_out_practice=leave_out_practice)
        except Exception as exc:
            if not isinstance(exc, BlastError):
                log.exception("closing sales from %s stopped at line %d", sales.filename, batch[0].line)
            raise ClosingStopped(_stopped_words(exc, line=batch[0].line, rows=rows),
                                 report=sales.report(rows)) from exc
        rows.extend(done)
        if progress is not None:
            progress(len(rows), total)
    return sales.report(rows)


def _stopped_words(exc: Exception, *, line: int, rows: list[CloseRow]) -> str:
    why = exc.message if isinstance(exc, BlastError) else "an unexpected problem (it has been logged)"
    closed = sum(1 for row in rows if row.outcome is CloseOutcome.CLOSED)
    sales = f"{closed:,} sale{'' if closed == 1 else 's'}"
    done = f"The lines before it were done: {sales} recorded. " if rows else ""
    return (f"Closing stopped at line {line}: {why.rstrip('.')}. {done}Nothing from line {line} on was "
            "closed: upload the same file again to finish (the sales already recorded will show as "
            "already closed).")


def latest_sent(
    session: Session, *, phone: str, blast_ids: Sequence[int] = (), leave_out_practice: bool = False
) -> BlastRecipient | None:
    """The most recent message that went out to this number (in these blasts, if given; with
    `leave_out_practice`, to WhatsApp: a practice blast reached no phone, and its sale would
    not count), an unknown send included: a sale is evidence that it arrived. Within given
    blasts (one campaign), one of them already closed comes first: the sale is recorded there,
    and closing another of its messages would count it twice."""
    query = select(BlastRecipient).where(BlastRecipient.phone_number == phone,
                                         BlastRecipient.status.not_in(NOT_SENT))
    if leave_out_practice:
        query = query.join(Blast, Blast.id == BlastRecipient.blast_id).where(not_practice())
    order = []
    if blast_ids:
        query = query.where(BlastRecipient.blast_id.in_(tuple(blast_ids)))
        order.append(case((BlastRecipient.status == Status.CLOSED.value, 0), else_=1))
    # An unknown send has no time it went: the time it was found unknown stands in.
    went = func.coalesce(BlastRecipient.sent_at, found_lost_at())
    return session.scalars(query.order_by(*order, went.desc(), BlastRecipient.id.desc()).limit(1)).first()


def _close_one(session: Session, *, line: int, phone: str, blast_ids: Sequence[int],
               filename: str | None, leave_out_practice: bool) -> CloseRow:
    recipient = latest_sent(session, phone=phone, blast_ids=blast_ids, leave_out_practice=leave_out_practice)
    if recipient is None:
        elsewhere = (latest_sent(session, phone=phone, leave_out_practice=leave_out_practice)
                     if blast_ids else None)
        if elsewhere is None:
            return CloseRow(line, CloseOutcome.NOT_MESSAGED, phone)
        blast = session.get(Blast, elsewhere.blast_id)
        name = (blast.name if blast else None) or f"Blast #{elsewhere.blast_id}"
        return CloseRow(line, CloseOutcome.MESSAGED_ELSEWHERE, phone, blast_id=elsewhere.blast_id,
                        detail=f"messaged by “{name}”: close it there, or look through every blast",
                        blast_name=name)
    if recipient.status != Status.CLOSED.value:
        before = closed_under_its_tag(session, recipient)
        if before is not None:  # one sale a person a campaign: a file uploaded on two of its blasts
            return CloseRow(line, CloseOutcome.ALREADY_CLOSED, phone, blast_id=before,
                            detail=f"already closed on blast #{before}, of the same campaign tag")
    change = close_sale(session, recipient_id=recipient.id, source="import",
                        event={"action": "closed from file", "file": filename, "line": line})
    outcome = CloseOutcome.CLOSED if change.changed else CloseOutcome.ALREADY_CLOSED
    return CloseRow(line, outcome, phone, blast_id=recipient.blast_id)
