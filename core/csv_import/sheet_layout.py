"""A worksheet as a person sees it in Excel, from what its XML says that pandas does not read.

Hidden rows stay in the report but are not used; hidden columns are left out unless they hold the
only numbers or names; a merged cell's value fills its range; cells that read as empty but show
something in Excel (formulas whose result was not saved, error cells) are named on their rows.
`workbook` chooses the sheet and reads its values; this module reads its XML alongside them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries

from core import phones
from core.csv_import.columns import HEADER_SEARCH_RECORDS, SAMPLE_RECORDS, Columns, find_columns
from core.csv_import.report import Records
from core.errors import BadCsv
from core.words import and_list

# A row's start tag in a sheet's XML, with or without a namespace prefix; not <rowBreaks>.
_ROW_TAG = re.compile(rb"<(?:[\w.-]+:)?row\b([^>]*)>")
_ROW_NUMBER = re.compile(rb"\sr\s*=\s*[\"'](\d+)")
_HIDDEN = re.compile(rb"\shidden\s*=\s*[\"'](?:1|true)[\"']")
_HIDDEN_ROW = re.compile(rb"<(?:[\w.-]+:)?row\b[^>]*\shidden\s*=\s*[\"'](?:1|true)[\"']")
_AUTO_FILTER = re.compile(rb"<(?:[\w.-]+:)?autoFilter\b")
_COL_TAG = re.compile(rb"<(?:[\w.-]+:)?col\b([^>]*)>")
_COL_MIN = re.compile(rb"\smin\s*=\s*[\"'](\d+)")
_COL_MAX = re.compile(rb"\smax\s*=\s*[\"'](\d+)")
_MERGE_REF = re.compile(rb"<(?:[\w.-]+:)?mergeCell\b[^>]*?\sref\s*=\s*[\"']([^\"']+)")
# A cell's formula comes first in it, before its saved result <v> (none, or empty, when the
# file was written by a program that does not calculate). A formula giving "" saves an empty
# <v> in a cell of type "str".
_FORMULA_CELL = re.compile(
    rb"<(?:[\w.-]+:)?c\b([^>]*)(?<!/)>\s*<(?:[\w.-]+:)?f\b[^>]*(?:/>|>[^<]*</(?:[\w.-]+:)?f>)\s*"
    rb"(<(?:[\w.-]+:)?v\b[^>]*?(?:/>|>([^<]*)</(?:[\w.-]+:)?v>))?"
)
_STRING_RESULT = re.compile(rb"\st\s*=\s*[\"']str[\"']")
_ERROR_CELL = re.compile(
    rb"<(?:[\w.-]+:)?c\b([^>]*\st\s*=\s*[\"']e[\"'][^>]*)(?<!/)>(?:(?!</(?:[\w.-]+:)?c>).)*?"
    rb"<(?:[\w.-]+:)?v\b[^>]*>([^<]*)<", re.S
)
_CELL_REF = re.compile(rb"\sr\s*=\s*[\"']([A-Za-z]{1,3})(\d+)")
_LINES_LISTED = 20  # lines named in a note; more are counted
# Rows `find_columns` is shown to judge which hidden columns to keep: as many as the sheets are
# surveyed over (its header search, the first contact and its sample), with room for blank rows.
_COLUMN_SEARCH_ROWS = 4 * (HEADER_SEARCH_RECORDS + 1 + SAMPLE_RECORDS)


class UnreadCellsNote(str):
    """A note that cells read as empty though Excel shows something in them (formulas whose
    result was not saved, errors). It also explains a phone column that is not found, as its
    numbers read as empty: `parse_csv` adds it to that message."""


@dataclass(frozen=True)
class Layout:
    """What a sheet's XML says besides its cells' values; rows and columns counted from 0."""

    last_row: int = 0  # the number of the sheet's last row
    hidden_rows: tuple[int, ...] = ()
    filtered: bool = False  # the sheet has a filter (which hid its hidden rows, most likely)
    hidden_columns: tuple[range, ...] = ()
    merged: tuple[tuple[int, int, int, int], ...] = ()  # first row, first column, last row, last column
    # Cells pandas reads as empty that are not: the error shown (#N/A), or None for a formula
    # whose result was not saved (a file written by a program rather than saved by Excel).
    unread: dict[tuple[int, int], str | None] = field(default_factory=dict)


# --- reading a sheet's XML --------------------------------------------------------------------


def read_layout(xml: bytes) -> Layout:
    """The layout of a sheet, from its XML part (xl/worksheets/sheetN.xml)."""
    hidden = b"hidden" in xml  # most sheets hide nothing: their rows are not looked at
    rows_hidden = hidden and _HIDDEN_ROW.search(xml) is not None
    return Layout(
        last_row=_last_row(xml),
        hidden_rows=tuple(n - 1 for n, tag in _rows(xml) if _HIDDEN.search(tag)) if rows_hidden else (),
        filtered=rows_hidden and _AUTO_FILTER.search(xml) is not None,
        hidden_columns=tuple(_hidden_columns(xml)) if hidden else (),
        merged=tuple(_merged_ranges(xml)) if b"mergeCell" in xml else (),
        unread=_unread_cells(xml),
    )


def _rows(xml: bytes) -> Iterator[tuple[int, bytes]]:
    """Each row's number and attributes. pandas reads hidden rows like any other."""
    number = 0
    for tag in _ROW_TAG.finditer(xml):
        given = _ROW_NUMBER.search(tag.group(1))
        number = int(given.group(1)) if given else number + 1  # a row may leave out its number
        yield number, tag.group(1)


def _last_row(xml: bytes) -> int:
    end = len(xml)
    while (at := max(xml.rfind(b"<row", 0, end), xml.rfind(b":row", 0, end))) >= 0:
        tag = _ROW_TAG.match(xml, xml.rfind(b"<", 0, at + 1))
        if tag:
            given = _ROW_NUMBER.search(tag.group(1))
            return int(given.group(1)) if given else max((n for n, _ in _rows(xml)), default=0)
        end = at  # </row>, or <rowBreaks> after the rows
    return 0


def _hidden_columns(xml: bytes) -> Iterator[range]:
    for tag in _COL_TAG.finditer(xml):
        attributes = tag.group(1)
        low, high = _COL_MIN.search(attributes), _COL_MAX.search(attributes)
        if low and high and _HIDDEN.search(attributes):
            yield range(int(low.group(1)) - 1, int(high.group(1)))


def _merged_ranges(xml: bytes) -> Iterator[tuple[int, int, int, int]]:
    for ref in _MERGE_REF.finditer(xml):
        try:
            left, top, right, bottom = range_boundaries(ref.group(1).decode("ascii"))
        except (ValueError, TypeError, UnicodeDecodeError):
            continue  # a damaged range: its cells are read as they are
        if None not in (left, top, right, bottom):
            yield top - 1, left - 1, bottom - 1, right - 1


def _unread_cells(xml: bytes) -> dict[tuple[int, int], str | None]:
    unread: dict[tuple[int, int], str | None] = {}
    if b"<f" in xml or b":f" in xml:  # a quick look; most contact lists have no formula
        for cell in _FORMULA_CELL.finditer(xml):
            attributes, value, text = cell.groups()
            saved = value is not None and (text or _STRING_RESULT.search(attributes))
            if not saved and (where := _cell_position(attributes)):
                unread[where] = None
    if b'"e"' in xml or b"'e'" in xml:  # t="e": an error cell
        for cell in _ERROR_CELL.finditer(xml):
            if where := _cell_position(cell.group(1)):
                unread[where] = cell.group(2).decode("utf-8", "replace").strip() or "#VALUE!"
    return unread


def _cell_position(attributes: bytes) -> tuple[int, int] | None:
    # Excel and the libraries that write .xlsx give every cell its reference; a cell without one
    # is read as pandas reads it.
    given = _CELL_REF.search(attributes)
    if not given:
        return None
    return int(given.group(2)) - 1, column_index_from_string(given.group(1).decode().upper()) - 1


# --- the rows as Excel shows them ---------------------------------------------------------------


def as_shown(rows: list[Sequence[str]], layout: Layout) -> tuple[Records, list[str]]:
    """The rows as a person sees them in Excel, with what to tell them about it."""
    rows = fill_merged_cells(_with_rows_of_unread_cells(rows, layout.unread), layout.merged)
    left_out, notes = _hidden_columns_left_out(rows, layout.hidden_columns)
    if left_out:
        kept = _other(len(rows[0]), left_out)
        rows = [tuple(row[i] for i in kept) for row in rows]
    records = Records(rows, range(1, len(rows) + 1))
    notes += _name_unread(records, layout.unread, left_out)
    notes += _leave_out_rows(records, layout.hidden_rows, filtered=layout.filtered)
    return records, notes


def _with_rows_of_unread_cells(rows: list[Sequence[str]], unread: dict[tuple[int, int], str | None]
                               ) -> list[Sequence[str]]:
    """pandas leaves out the sheet's last rows when all their cells read as empty; formulas
    without a saved result among them still show in Excel, and are named on their rows."""
    last = max((row for row, _ in unread), default=-1)
    if last < len(rows) or not rows:
        return rows
    return [*rows, *[("",) * len(rows[0])] * (last + 1 - len(rows))]


def fill_merged_cells(rows: list[Sequence[str]], merged: Sequence[tuple[int, int, int, int]]
                      ) -> list[Sequence[str]]:
    """Each merged cell's value in every cell of its range, as Excel shows it: a name merged over
    a family's two rows names both, a header over two header rows heads the column in both. A
    title merged across the whole sheet stays one cell: it is a title, not a column's header."""
    if not merged or not rows:
        return rows
    rows, width = list(rows), len(rows[0])  # pandas gives every row the same number of cells
    for top, left, bottom, right in merged:
        if top >= len(rows) or left >= width or not rows[top][left].strip():
            continue
        if top == bottom and left == 0 and right >= width - 1:
            continue
        right = min(right, width - 1)
        for index in range(top, min(bottom, len(rows) - 1) + 1):
            cells = list(rows[index])
            cells[left : right + 1] = [rows[top][left]] * (right + 1 - left)
            rows[index] = tuple(cells)
    return rows


def _hidden_columns_left_out(rows: list[Sequence[str]], hidden: Sequence[range]
                             ) -> tuple[set[int], list[str]]:
    """The hidden columns with data to leave out, as hidden rows are, and a note naming them.
    A hidden column stays when it holds the only phone numbers or the only names, or the phone
    numbers WhatsApp can reach where the columns shown hold fewer mobiles (an office line): hidden
    to make room on the screen, say, not to keep it out of the blast."""
    width = len(rows[0]) if rows else 0
    with_data = [i for i in range(width) if any(i in span for span in hidden)
                 and any(row[i].strip() for row in rows)]
    if not with_data:
        return set(), []
    every = _columns(rows, range(width))
    if every is None:  # no phone column either way: nothing to keep them for
        return set(with_data), [_columns_note(rows, None, with_data, left_out=True)]
    kept_back = set()
    shown = _columns(rows, _other(width, with_data))
    if every.phone in with_data and (shown is None or _mobiles(rows, shown) < _mobiles(rows, every)):
        kept_back.add(every.phone)
    trial = _columns(rows, _other(width, set(with_data) - kept_back)) if kept_back else shown
    if trial is not None and not trial.names:
        kept_back.update(i for i in every.names if i in with_data)
    left_out = [i for i in with_data if i not in kept_back]
    notes = [_columns_note(rows, every, left_out, left_out=True)] if left_out else []
    if kept_back:
        notes.append(_columns_note(rows, every, sorted(kept_back), left_out=False,
                                   more_mobiles=shown is not None and every.phone in kept_back))
    return set(left_out), notes


def _mobiles(rows: list[Sequence[str]], columns: Columns) -> int:
    """Mobile numbers in the phone column of the first records below the header."""
    start = 0 if columns.header_index is None else columns.header_index + 1
    cells = (row[columns.phone] for row in rows[start:start + SAMPLE_RECORDS] if columns.phone < len(row))
    return sum(phones.normalise(cell).is_mobile for cell in cells)


def _other(width: int, leave_out: Sequence[int] | set[int]) -> list[int]:
    return [i for i in range(width) if i not in leave_out]


def _columns(rows: list[Sequence[str]], kept: Sequence[int]) -> Columns | None:
    """The columns `find_columns` takes among those `kept` (indexes into each row), or None."""
    try:
        columns = find_columns([tuple(row[i] for i in kept) for row in rows[:_COLUMN_SEARCH_ROWS]])
    except BadCsv:
        return None
    return dataclasses.replace(columns, phone=kept[columns.phone],
                               names=tuple(kept[i] for i in columns.names))


def _columns_note(rows: list[Sequence[str]], columns: Columns | None, indexes: Sequence[int], *,
                  left_out: bool, more_mobiles: bool = False) -> str:
    header = rows[columns.header_index] if columns and columns.header_index is not None else None
    named = [get_column_letter(i + 1) + (f" (“{header[i].strip()}”)" if header and header[i].strip() else "")
             for i in indexes]
    one = len(named) == 1
    which = f"Column{'' if one else 's'} {and_list(named)} {'is' if one else 'are'} hidden in Excel"
    if left_out:
        them = "it" if one else "them"
        return (f"{which}, so {'it was' if one else 'they were'} left out. To use {them}, unhide {them} "
                "in Excel and upload the file again.")
    assert columns is not None  # a column is kept back for what `columns` found in it
    held = [what for what, found in (("phone numbers", {columns.phone}), ("names", set(columns.names)))
            if found & set(indexes)]
    was = "was" if one else "were"
    if more_mobiles:  # the columns shown have numbers too, fewer of them mobiles
        return (f"{which} but {was} read all the same: it holds the mobile numbers, where the columns "
                "shown hold office or home lines WhatsApp does not reach.")
    return f"{which} but {was} read all the same: no other column holds the {and_list(held)}."


def _name_unread(records: Records, unread: dict[tuple[int, int], str | None], left_out: set[int]
                 ) -> list[str]:
    """Warn on each row with a cell pandas read as empty that shows something else in Excel."""
    by_row: dict[int, list[tuple[str, str | None]]] = {}
    for (row, column), error in sorted(unread.items()):
        if row < len(records) and column not in left_out:
            by_row.setdefault(row, []).append((f"{get_column_letter(column + 1)}{row + 1}", error))
    for row, cells in by_row.items():
        formulas = [ref for ref, error in cells if error is None]
        errors = [f"{ref} shows the Excel error {error}" for ref, error in cells if error is not None]
        why = []
        if formulas:
            are = "is a formula" if len(formulas) == 1 else "are formulas"
            why.append(f"cell {and_list(formulas)} {are} whose result was not saved in the file: open it "
                       "in Excel and save it")
        if errors:
            why.append(f"cell {and_list(errors)}")
        records.warnings[row] = "; ".join(why)
    formula_lines = sorted({r + 1 for r, cells in by_row.items() if any(e is None for _, e in cells)})
    error_lines = sorted({r + 1 for r, cells in by_row.items() if any(e is not None for _, e in cells)})
    notes: list[str] = []
    if formula_lines:
        notes.append(UnreadCellsNote(
            f"Formulas on {_lines(formula_lines)} have no result saved in the file (it was made by a "
            "program rather than saved by Excel), so they read as empty. Open the file in Excel, save "
            "it and upload it again."))
    if error_lines:
        shown = sorted({e for cells in by_row.values() for _, e in cells if e is not None})
        notes.append(UnreadCellsNote(f"Cells on {_lines(error_lines)} show an Excel error "
                                     f"({', '.join(shown)}) and read as empty."))
    return notes


def _leave_out_rows(records: Records, hidden: Sequence[int], *, filtered: bool) -> list[str]:
    """Mark each hidden row that holds data (or cells that only read as empty) as not to be
    used, and say which they are. They stay in the report: a person hid them on purpose, but
    may not remember doing so."""
    indexes = [i for i in hidden if i < len(records)
               and (i in records.warnings or any(cell.strip() for cell in records[i]))]
    if not indexes:
        return []
    why = "hidden in Excel by a filter, so left out" if filtered else "hidden in Excel, so left out"
    records.problems.update(dict.fromkeys(indexes, why))
    records.hidden.update(indexes)
    return [_hidden_note([i + 1 for i in indexes], filtered=filtered)]


def _hidden_note(lines: Sequence[int], *, filtered: bool) -> str:
    rows = f"{len(lines):,} rows" if len(lines) > 1 else "1 row"
    was = "were" if len(lines) > 1 else "was"
    how = "clear the filter" if filtered else "unhide them"
    return (f"{rows} hidden in Excel{' (by a filter)' if filtered else ''} {was} left out: "
            f"{_lines(lines)}. To send to them too, {how} in Excel and upload the file again.")


def _lines(lines: Sequence[int]) -> str:
    shown = ", ".join(map(str, lines[:_LINES_LISTED]))
    if len(lines) > _LINES_LISTED:
        shown += f" and {len(lines) - _LINES_LISTED:,} more"
    return f"line{'s' if len(lines) > 1 else ''} {shown}"
