"""Exports that a spreadsheet opens safely (CSV and Excel): no cell is ever run as a formula."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import openpyxl
import pandas as pd
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Blast, BlastRecipient, BlastState, OptOut, RecipientReply
from core.recipients import SELECTIONS, cell_of, select_recipients, status_words
from core.reply_inbox import InboxFilter, inbox_page, reply_words, sale_elsewhere
from core.statuses import status_in_words

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: object) -> object:
    """Text that a spreadsheet would evaluate gets a leading apostrophe; the rest is untouched."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


# Excel's standard column is about 8 digits wide: a longer number shows as 1.23E+08 until the
# column is widened, one of 12 digits or more shows so however wide (9.00101E+11 for an IC
# number), and past 15 digits the rest become zeros.
EXCEL_DIGITS_SHOWN = 8
_DIGITS = re.compile(r"[0-9]+")


def csv_cell(value: object) -> object:
    """A cell as a CSV holds it, for Excel to show the text as written. Besides what `safe_cell`
    guards, text that Excel would read as a number and show otherwise gets the same leading
    apostrophe: digits only, either starting with 0 (an office line 0312345678, a postcode 01000)
    or longer than Excel's standard column shows (an IC number 900101145678, 60387654321). Short
    digits ("42", a quantity) stay numbers, as do real numbers."""
    if isinstance(value, str):
        digits = value.strip()
        if _DIGITS.fullmatch(digits) and (
            (len(digits) > 1 and digits.startswith("0")) or len(digits) > EXCEL_DIGITS_SHOWN
        ):
            return "'" + value
    return safe_cell(value)


def as_written(text: str) -> str:
    """A cell of one of these CSVs uploaded again, as it was before `csv_cell` gave it its
    apostrophe ("'01000" → "01000"); any other text as it is."""
    if text.startswith("'") and csv_cell(text[1:]) == text:
        return text[1:]
    return text


def to_csv(rows: Iterable[Sequence[object]], *, columns: Sequence[str]) -> bytes:
    """UTF-8 with a BOM, so Excel shows Malay and Chinese names and emoji correctly. Headings are
    made safe as cells are: an uploaded list's own ones come back in its exports."""
    frame = pd.DataFrame([[csv_cell(v) for v in row] for row in rows],
                         columns=[csv_cell(c) for c in columns])
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# Headed in the team's words, as the blast's page shows them ("Number" and "Name" are what a new
# blast or a list of sales finds its columns by, should the file be uploaded again). "Status
# code" keeps the plan's status (READ_ACK), for filtering and for anyone matching it with the
# database. "Opted out" is "yes" for a number that asked not to be messaged (in any blast): not
# one to call. "First replied" is when their first reply was written (the Replies page's export
# has the latest, "Last replied").
EXPORT_COLUMNS = ("Number", "Name", "Status", "Status code", "Opted out", "Sent", "Received", "Read",
                  "First replied", "First reply", "Later replies", "Closed", "Problem")


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def _local(moment: dt.datetime | None, zone: dt.tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def export_columns(upload_columns: Sequence[Sequence[str]] | None,
                   ours: Sequence[str] = EXPORT_COLUMNS) -> list[str]:
    """The export's headings: ours, then the uploaded list's other columns under the file's own
    headings ("Branch", "Agent"), one that is also ours said as the file's ("Status (your file)")."""
    return [*ours, *(shown for _, shown in keyed_headings(upload_columns, ours))]


def keyed_headings(
    upload_columns: Sequence[Sequence[str]] | None, ours: Sequence[str]
) -> list[tuple[str, str]]:
    """Each of the list's own columns: its key in a recipient's cells, and how a table or an
    export beside `ours` heads it."""
    kept = list(upload_columns or ())
    shown = their_headings([heading for _, heading in kept], ours)
    return [(key, said) for (key, _), (_, said) in zip(kept, shown, strict=True)]


def their_headings(headings: Iterable[str], ours: Sequence[str]) -> list[tuple[str, str]]:
    """Each of a file's headings, and how a table or an export beside `ours` heads it."""
    taken = {name.casefold() for name in ours}
    said = []
    for heading in headings:
        shown = str(heading).strip() or "Column"
        while shown.casefold() in taken:
            shown = f"{shown} (your file)"
        taken.add(shown.casefold())
        said.append((heading, shown))
    return said


def _export(session: Session, *, blast_id: int, selection: str,
            when: Callable[[dt.datetime | None], object]) -> tuple[Iterator[tuple[object, ...]], list[str]]:
    kept = session.scalar(select(Blast.upload_columns).where(Blast.id == blast_id)) or []
    keys = [key for key, _ in kept]
    rows = _stage_rows(session, blast_id=blast_id, selection=selection, when=when, keys=keys)
    return rows, export_columns(kept)


# The blast export's headings before they were put in plain words: such a file may still be
# uploaded again.
EARLIER_EXPORT_COLUMNS = ("phone_number", "name", "status", "status_in_words", "opted_out", "sent_at",
                          "delivered_at", "read_at", "replied_at", "reply_text", "later_replies",
                          "closed_at", "error")
# Headings our exports had before they said which reply's time they hold: a blast's "Replied" was
# the first reply's, the Replies page's the latest's.
EARLIER_HEADINGS = ("Replied",)


def our_columns(headings: Sequence[str]) -> set[int]:
    """Which of a file's columns are our own, when the file is one of our exports uploaded again
    (a blast's, as now or as before, or the Replies page's): most of that export's headings are
    there, a column or two taken out or added in a spreadsheet since. Empty otherwise."""
    given = [str(h).strip().casefold() for h in headings]
    earlier = {h.casefold() for h in EARLIER_HEADINGS}
    for export in (EXPORT_COLUMNS, EARLIER_EXPORT_COLUMNS, REPLY_EXPORT_COLUMNS):
        ours = {h.casefold() for h in export}
        if len(ours & set(given)) * 3 >= len(ours) * 2:
            return {i for i, h in enumerate(given) if h in ours or h in earlier}
    return set()


def _stage_rows(
    session: Session, *, blast_id: int, selection: str, when: Callable[[dt.datetime | None], object],
    keys: Sequence[str] = (),
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
        yield (r.phone_number, r.contact_name or "", status_words(r.status, cancelled=cancelled) or r.status,
               r.status, _yes(r.phone_number in stopped), when(r.sent_at), when(r.delivered_at),
               when(r.read_timestamp), when(replied_at), "" if first is None else reply_words(first),
               "\n".join(reply_words(text) for _, text in said[1:]), when(r.closed_at), r.error or "",
               *(cell_of(r.variables, key) for key in keys))


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
    rows, columns = _export(session, blast_id=blast_id, selection=selection, when=lambda t: _local(t, zone))
    return to_csv(rows, columns=columns)


def stage_xlsx(session: Session, *, blast_id: int, selection: str, zone: dt.tzinfo) -> bytes:
    """The same as `stage_csv`, as an Excel workbook."""
    rows, columns = _export(session, blast_id=blast_id, selection=selection,
                            when=lambda t: _excel_time(t, zone))
    return to_xlsx(rows, columns=columns, sheet="Recipients")


# The Replies page's list, as a sales team works from it: who, what they said, where to find them.
# Headed in the team's words, as the page shows them ("Number" and "Name" are what a new blast or a
# list of sales finds its columns by; uploaded again, `our_columns` knows the rest for ours).
# "Last replied" is when their latest reply was written, the one under "Last reply".
REPLY_EXPORT_COLUMNS = ("Last replied", "Name", "Number", "Status", "Opted out", "Last reply",
                        "Earlier replies", "Replies", "Blast", "Tag", "Blast #")


def _reply_rows(
    session: Session, *, filters: InboxFilter, when: Callable[[dt.datetime | None], object]
) -> tuple[list[tuple[object, ...]], list[str]]:
    """The rows, and their headings: ours, then the uploaded lists' own columns (Branch,
    Agent…), each heading once however many blasts' lists have it."""
    found = inbox_page(session, filters=filters, page_size=None).rows
    headings = list(dict.fromkeys(heading for r in found for heading, _ in r.own))
    shown = their_headings(headings, REPLY_EXPORT_COLUMNS)
    rows = [
        (when(r.last_reply_at), r.contact_name or "", r.phone_number,
         sale_elsewhere(r) or status_in_words(r.status) or r.status,
         _yes(r.opted_out), reply_words(r.last_reply),
         "\n".join(reply_words(text) for text in r.earlier), r.replies,
         r.blast_name or "", r.blast_tag or "", r.blast_id,
         *(dict(r.own).get(heading, "") for heading in headings))
        for r in found
    ]
    return rows, [*REPLY_EXPORT_COLUMNS, *(said for _, said in shown)]


def replies_csv(session: Session, *, filters: InboxFilter, zone: dt.tzinfo) -> bytes:
    """Everyone the Replies page lists for these filters (every page of it), latest reply first."""
    rows, columns = _reply_rows(session, filters=filters, when=lambda t: _local(t, zone))
    return to_csv(rows, columns=columns)


def replies_xlsx(session: Session, *, filters: InboxFilter, zone: dt.tzinfo) -> bytes:
    rows, columns = _reply_rows(session, filters=filters, when=lambda t: _excel_time(t, zone))
    return to_xlsx(rows, columns=columns, sheet="Replies")


# Rows read to size the columns: enough to see the usual lengths, without holding a long list in memory.
WIDTH_SAMPLE_ROWS = 200
MIN_WIDTH, MAX_WIDTH = 8, 60  # in characters: a long reply is cut at its edge, not a sheet too wide to read
_DATETIME_WIDTH = len("2026-03-02 10:30:15")  # how Excel shows the times this writes
_FILTER_BUTTON = 3  # the header's filter arrow covers the end of a heading otherwise
# A row with text over several lines (earlier or later replies) is made tall enough for them, up
# to this many: more would leave a sheet of few rows to scroll (the rest is in the cell, seen
# when it is opened or its row made taller).
MAX_LINES_SHOWN = 5
LINE_HEIGHT = 15  # points: one line of Excel's standard font, the height of an ordinary row
_WRAPPED = Alignment(wrap_text=True)  # its lines shown one under another, not run together


def to_xlsx(rows: Iterable[Sequence[object]], *, columns: Sequence[str], sheet: str) -> bytes:
    """An Excel workbook: numbers and names are text cells (no apostrophe needed, and Excel
    neither runs "=..." nor turns +60... into a number). The bold header stays in view as the
    list scrolls and carries a filter; columns are wide enough to read (a date too narrow
    shows as #####). Text over several lines wraps, its row a few lines tall."""
    book = openpyxl.Workbook(write_only=True)
    page = book.create_sheet(sheet)
    rows = iter(rows)
    sample = [list(row) for row in itertools.islice(rows, WIDTH_SAMPLE_ROWS)]
    # A streamed sheet writes its column widths and frozen pane before the first row.
    widths = _column_widths(columns, sample)
    for index, width in enumerate(widths, start=1):
        page.column_dimensions[get_column_letter(index)].width = width
    page.freeze_panes = "A2"
    page.append([_header_cell(page, name) for name in columns])
    count = 0
    for row in itertools.chain(sample, rows):
        count += 1
        # A row's height is written with the row; dropped after it, not kept for a long list.
        lines = _lines_shown(row, widths)
        if lines > 1:
            page.row_dimensions[count + 1].height = LINE_HEIGHT * lines
        page.append([_cell(page, value) for value in row])
        page.row_dimensions.pop(count + 1, None)
    page.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _column_widths(columns: Sequence[str], sample: Sequence[Sequence[object]]) -> list[float]:
    widths = []
    for index, name in enumerate(columns):
        longest = max((_shown_width(row[index]) for row in sample if index < len(row)), default=0)
        widths.append(min(MAX_WIDTH, max(MIN_WIDTH, _shown_width(name) + _FILTER_BUTTON, longest + 2)))
    return widths


def _shown_width(value: object) -> int:
    """Roughly how many characters wide Excel shows a value: a Chinese character takes two, and
    text over several lines is as wide as its longest line."""
    if value is None:
        return 0
    if isinstance(value, dt.datetime):
        return _DATETIME_WIDTH
    return max(_line_width(line) for line in str(value).split("\n"))


def _line_width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def _lines_shown(row: Sequence[object], widths: Sequence[float]) -> int:
    """How many lines the row's tallest wrapped cell takes in its column, at most
    `MAX_LINES_SHOWN`: each of its lines, and a line wider than the column once more for each
    width it runs over. 1 when no cell holds a line break."""
    most = 1
    for value, width in zip(row, widths, strict=False):
        if isinstance(value, str) and "\n" in value:
            fits = max(1.0, width - 1)
            lines = sum(max(1, math.ceil(_line_width(line) / fits)) for line in value.split("\n"))
            most = max(most, lines)
    return min(most, MAX_LINES_SHOWN)


def _header_cell(sheet: Any, name: str) -> WriteOnlyCell:
    cell = _cell(sheet, name)
    cell.font = Font(bold=True)
    return cell


def _excel_time(moment: dt.datetime | None, zone: dt.tzinfo) -> dt.datetime | None:
    """An Excel date-time in the team's zone (Excel has no zones), to the second."""
    return moment.astimezone(zone).replace(tzinfo=None, microsecond=0) if moment else None


def _cell(sheet: Any, value: object) -> Any:
    if not isinstance(value, str):
        return value
    # A control character (a vertical tab pasted from Word into a name or a reply) cannot
    # stand in a workbook: openpyxl refuses the whole file for it. "�" stands in for it.
    cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
    cell.data_type = "s"  # text, even when it starts with "=": never a formula
    if "\n" in value:
        cell.alignment = _WRAPPED
    return cell
