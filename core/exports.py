"""Exports that a spreadsheet opens safely (CSV and Excel): no cell is ever run as a formula."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import openpyxl
import pandas as pd
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Blast, BlastRecipient, BlastState, OptOut, RecipientReply
from core.recipients import SELECTIONS, select_recipients, status_words
from core.reply_inbox import InboxFilter, inbox_page, reply_words
from core.statuses import status_in_words

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: object) -> object:
    """Text that a spreadsheet would evaluate gets a leading apostrophe; the rest is untouched."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: Iterable[Sequence[object]], *, columns: Sequence[str]) -> bytes:
    """UTF-8 with a BOM, so Excel shows Malay and Chinese names and emoji correctly."""
    frame = pd.DataFrame([[safe_cell(v) for v in row] for row in rows], columns=list(columns))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# `status` keeps the plan's name (what queries and re-imports match); `status_in_words` says it
# as the dashboard does.
# `opted_out` is "yes" for a number that asked not to be messaged (in any blast): not one to call.
EXPORT_COLUMNS = ("phone_number", "name", "status", "status_in_words", "opted_out", "sent_at", "delivered_at",
                  "read_at", "replied_at", "reply_text", "later_replies", "closed_at", "error")


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def _local(moment: dt.datetime | None, zone: dt.tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def _stage_rows(
    session: Session, *, blast_id: int, selection: str, when: Callable[[dt.datetime | None], object]
) -> Iterator[tuple[object, ...]]:
    query = select_recipients(blast_ids=[blast_id], selector=SELECTIONS[selection])
    cancelled = session.scalar(select(Blast.state).where(Blast.id == blast_id)) == BlastState.CANCELLED
    kept = _kept_replies(session, blast_id=blast_id)
    stopped = set(session.scalars(
        select(OptOut.phone_number).join(BlastRecipient, BlastRecipient.phone_number == OptOut.phone_number)
        .where(BlastRecipient.blast_id == blast_id)
    ))
    for r in session.scalars(query.order_by("id")):
        # Their replies as written, by time, each once: the first, then the later ones. A reply
        # from before replies were kept one by one is on the recipient alone.
        said = kept.get(r.id) or ([(r.replied_at, r.reply_text)] if r.reply_text is not None else [])
        replied_at, first = said[0] if said else (r.replied_at, None)
        yield (r.phone_number, r.contact_name or "", r.status,
               status_words(r.status, cancelled=cancelled) or r.status,
               _yes(r.phone_number in stopped), when(r.sent_at), when(r.delivered_at),
               when(r.read_timestamp), when(replied_at), "" if first is None else reply_words(first),
               "\n".join(reply_words(text) for _, text in said[1:]), when(r.closed_at), r.error or "")


def _kept_replies(session: Session, *, blast_id: int) -> dict[int, list[tuple[dt.datetime, str]]]:
    """Each recipient's kept replies in the order written (not the order they arrived in)."""
    rows = session.execute(
        select(RecipientReply.recipient_id, RecipientReply.replied_at, RecipientReply.text)
        .join(BlastRecipient, BlastRecipient.id == RecipientReply.recipient_id)
        .where(BlastRecipient.blast_id == blast_id)
        .order_by(RecipientReply.recipient_id, RecipientReply.replied_at, RecipientReply.id)
    )
    replies: dict[int, list[tuple[dt.datetime, str]]] = {}
    for recipient_id, at, text in rows:
        replies.setdefault(recipient_id, []).append((at, text))
    return replies


def stage_csv(session: Session, *, blast_id: int, selection: str, zone: dt.tzinfo) -> bytes:
    """The recipients of one stage of a blast, with their times in the team's zone."""
    rows = _stage_rows(session, blast_id=blast_id, selection=selection, when=lambda t: _local(t, zone))
    return to_csv(rows, columns=EXPORT_COLUMNS)


def stage_xlsx(session: Session, *, blast_id: int, selection: str, zone: dt.tzinfo) -> bytes:
    """The same as `stage_csv`, as an Excel workbook."""
    rows = _stage_rows(session, blast_id=blast_id, selection=selection, when=lambda t: _excel_time(t, zone))
    return to_xlsx(rows, columns=EXPORT_COLUMNS, sheet="Recipients")


# The Replies page's list, as a sales team works from it: who, what they said, where to find them.
REPLY_EXPORT_COLUMNS = ("replied_at", "name", "phone_number", "status_in_words", "opted_out", "latest_reply",
                        "replies", "blast", "blast_id")


def _reply_rows(
    session: Session, *, filters: InboxFilter, when: Callable[[dt.datetime | None], object]
) -> Iterator[tuple[object, ...]]:
    found = inbox_page(session, filters=filters, page_size=None)
    for r in found.rows:
        yield (when(r.last_reply_at), r.contact_name or "", r.phone_number,
               status_in_words(r.status) or r.status, _yes(r.opted_out), reply_words(r.last_reply), r.replies,
               r.blast_name or "", r.blast_id)


def replies_csv(session: Session, *, filters: InboxFilter, zone: dt.tzinfo) -> bytes:
    """Everyone the Replies page lists for these filters (every page of it), latest reply first."""
    return to_csv(_reply_rows(session, filters=filters, when=lambda t: _local(t, zone)),
                  columns=REPLY_EXPORT_COLUMNS)


def replies_xlsx(session: Session, *, filters: InboxFilter, zone: dt.tzinfo) -> bytes:
    rows = _reply_rows(session, filters=filters, when=lambda t: _excel_time(t, zone))
    return to_xlsx(rows, columns=REPLY_EXPORT_COLUMNS, sheet="Replies")


def to_xlsx(rows: Iterable[Sequence[object]], *, columns: Sequence[str], sheet: str) -> bytes:
    """An Excel workbook: numbers and names are text cells (no apostrophe needed, and Excel
    neither runs "=..." nor turns +60... into a number)."""
    book = openpyxl.Workbook(write_only=True)
    page = book.create_sheet(sheet)
    page.append(list(columns))
    for row in rows:
        page.append([_cell(page, value) for value in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _excel_time(moment: dt.datetime | None, zone: dt.tzinfo) -> dt.datetime | None:
    """An Excel date-time in the team's zone (Excel has no zones), to the second."""
    return moment.astimezone(zone).replace(tzinfo=None, microsecond=0) if moment else None


def _cell(sheet: Any, value: object) -> object:
    if not isinstance(value, str):
        return value
    # A control character (a vertical tab pasted from Word into a name or a reply) cannot
    # stand in a workbook: openpyxl refuses the whole file for it. "�" stands in for it.
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
    cell.data_type = "s"  # text, even when it starts with "=": never a formula
    return cell
