"""Excel uploads: the sheet with the contacts of an .xlsx workbook as rows of text cells, as a
person sees them in Excel (merged cells filled, rows and columns hidden in Excel kept out of the
blast and named, formulas without a saved result and error cells named), and plain words for
the workbooks (old .xls, password-protected, damaged) that cannot be read."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import math
import numbers
import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries

from core.csv_import.columns import HEADER_SEARCH_RECORDS, SAMPLE_RECORDS, Columns, find_columns
from core.csv_import.report import RECIPIENT_OUTCOMES, Records, classify
from core.errors import BadCsv
from core.words import and_list

ZIP_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old Office files, and encrypted .xlsx
# An .xlsx unpacks to about 8 times its size; far more is a zip bomb, not a contact list.
MAX_UNPACKED_RATIO = 20
RESAVE = "open it in Excel and save it as “Excel Workbook (.xlsx)” or as CSV, then upload the new file"
# Office keeps a password-protected workbook inside an OLE file, in a stream of this name.
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
# Records (rows with data) read from each sheet to tell a contact list from a summary: as many
# as `find_columns` searches for a header, the first contact, and the sample below the header
# it reads to choose the phone column. Blank rows aside, so a sheet is read in growing slices.
_HEAD_RECORDS = HEADER_SEARCH_RECORDS + 1 + SAMPLE_RECORDS
# Why a sheet was read, best first: it has phone numbers; a phone column but no number yet;
# only data (no sheet has a phone column).
_CONTACTS, _PHONE_COLUMN, _DATA = range(3)
_WHY = {
    _CONTACTS: "the first sheet with phone numbers",
    _PHONE_COLUMN: "the first sheet with a phone column",
    _DATA: "the first sheet with data, as no sheet has a phone column",
}
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
_LINES_LISTED = 20  # hidden lines named in a note; more are counted


@dataclass
class Sheet:
    """One worksheet's rows as text, row i being the sheet's row i + 1."""

    name: str
    rows: list[Sequence[str]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Contents:
    """The sheets a person can choose from, and the one read when nobody chooses."""

    sheets: tuple[str, ...]  # the sheets with data, in the workbook's order
    hidden: frozenset[str]  # those of them hidden in Excel
    first_choice: str | None  # the first with contacts; None when no sheet has data


@dataclass(frozen=True)
class _Found:
    name: str
    hidden: bool
    rank: int  # _CONTACTS, _PHONE_COLUMN or _DATA
    layout: _Layout


def looks_like_workbook(data: bytes) -> bool:
    """A zipped (.xlsx, .ods, .zip…) or OLE (.xls, encrypted .xlsx, .doc…) file."""
    return data.startswith((ZIP_SIGNATURE, OLE_SIGNATURE))


def read_sheet(data: bytes, *, max_unpacked_bytes: float, sheet: str | None = None) -> Sheet:
    """The sheet `sheet`, or (None) the first with contacts; or BadCsv saying in plain words
    why there is none. The rows are as Excel shows them (`_as_shown`): a row hidden in Excel is
    kept, with the reason it cannot be used; a hidden column is left out, and said so."""
    with _opened(data, max_unpacked_bytes=max_unpacked_bytes) as workbook:
        found = _survey(workbook, data)
        name = _first_choice(found) if sheet is None else _existing(workbook.sheet_names, sheet)
        if name is None:
            raise BadCsv(_empty_workbook(workbook.sheet_names))
        rows = _sheet_rows(workbook, name)
        if not _has_data(rows):
            raise BadCsv(f"The sheet “{name}” is empty.")
        notes = _sheet_notes(workbook.sheet_names, name, found, chosen=sheet is not None)
        layout = next((f.layout for f in found if f.name == name), _Layout())
    records, more_notes = _as_shown(rows, layout)
    return Sheet(name=name, rows=records, notes=notes + more_notes)


def contents(data: bytes, *, max_unpacked_bytes: float) -> Contents:
    """The sheets with data, for a person to choose from; BadCsv when the workbook cannot be read."""
    with _opened(data, max_unpacked_bytes=max_unpacked_bytes) as workbook:
        found = _survey(workbook, data)
    return Contents(sheets=tuple(f.name for f in found),
                    hidden=frozenset(f.name for f in found if f.hidden), first_choice=_first_choice(found))


@contextmanager
def _opened(data: bytes, *, max_unpacked_bytes: float) -> Iterator[pd.ExcelFile]:
    if data.startswith(OLE_SIGNATURE):
        raise BadCsv(_ole_problem(data))
    _check_zip(data, max_unpacked_bytes=max_unpacked_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions
            with pd.ExcelFile(io.BytesIO(data), engine="openpyxl") as workbook:
                yield workbook
    except BadCsv:
        raise
    except Exception:  # openpyxl and zipfile raise many kinds for a damaged part
        raise BadCsv(f"This looks like an Excel workbook (.xlsx), but it cannot be read: it may "
                     f"be damaged or saved in an unusual format. Try this: {RESAVE}.") from None


def _ole_problem(data: bytes) -> str:
    if _ENCRYPTED_STREAM in data:
        return ("This Excel workbook is protected with a password, so it cannot be read. Open it "
                "in Excel, remove the password (File → Info → Protect Workbook → Encrypt with "
                "Password, then clear it) or save a copy as CSV, and upload that.")
    return (f"This looks like an old Excel workbook (.xls) or another old Office file, which "
            f"cannot be read here: {RESAVE}.")


def _check_zip(data: bytes, *, max_unpacked_bytes: float) -> None:
    """Refuse a zip that is not an Excel workbook, or that unpacks to far too much."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            unpacked = sum(info.file_size for info in archive.infolist())
            mimetype = archive.read("mimetype")[:100] if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError):
        raise BadCsv("This looks like an Excel workbook (.xlsx) or another zipped file, but it is "
                     "damaged and cannot be opened (perhaps it did not finish downloading). "
                     f"Try this: {RESAVE}.") from None
    if "xl/workbook.bin" in names:
        raise BadCsv(f"This is an Excel binary workbook (.xlsb), which cannot be read here: {RESAVE}.")
    if mimetype.startswith(_ODS_MIMETYPE):
        raise BadCsv("This is an OpenDocument spreadsheet (.ods), which cannot be read here: open "
                     "it and save it as “Excel Workbook (.xlsx)” or as CSV, then upload the new file.")
    if "xl/workbook.xml" not in names:
        raise BadCsv("This looks like a zipped file (a .zip, or a Word or PowerPoint document), "
                     "not a contact list: upload the contacts as an Excel workbook (.xlsx) or CSV.")
    if unpacked > max_unpacked_bytes:
        raise BadCsv(f"This workbook holds {unpacked / 1024 / 1024:,.0f} MB once unpacked, more than "
                     f"the {max_unpacked_bytes / 1024 / 1024:,.0f} MB a contact list can be. Delete "
                     "the sheets and pictures you do not need, or save the contacts as CSV.")


def _survey(workbook: pd.ExcelFile, data: bytes) -> list[_Found]:
    """Each sheet with data, in the workbook's order, judged by its first records."""
    found = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in workbook.sheet_names:
            layout = _layout(archive.read(workbook.book[name]._worksheet_path))
            head = _head(workbook, name, last_row=layout.last_row)
            if _has_data(head):
                rank = _rank(_merged(head, layout.merged), layout.unread)
                found.append(_Found(name, workbook.book[name].sheet_state != "visible", rank, layout))
    return found


def _head(workbook: pd.ExcelFile, name: str, *, last_row: int) -> list[Sequence[str]]:
    """The sheet's first _HEAD_RECORDS records, or all its rows when it has fewer."""
    nrows = 2 * _HEAD_RECORDS
    while True:
        rows = _sheet_rows(workbook, name, nrows=nrows)
        if nrows >= last_row or sum(1 for row in rows if any(c.strip() for c in row)) >= _HEAD_RECORDS:
            return rows
        nrows *= 4  # many blank rows: a longer slice, rather than the whole of a long sheet


def _has_data(rows: Sequence[Sequence[str]]) -> bool:
    return any(cell.strip() for row in rows for cell in row)


def _rank(rows: list[Sequence[str]], unread: dict[tuple[int, int], str | None]) -> int:
    try:
        columns = find_columns(rows)
    except BadCsv:
        return _DATA
    if any(row.outcome in RECIPIENT_OUTCOMES for row in classify(rows, columns)):
        return _CONTACTS
    # Numbers that are formulas without a saved result, or errors, are still the contacts:
    # read, this sheet says so on every row.
    below = range(0 if columns.header_index is None else columns.header_index + 1, len(rows))
    if any((index, columns.phone) in unread for index in below):
        return _CONTACTS
    return _PHONE_COLUMN


def _first_choice(found: Sequence[_Found]) -> str | None:
    # A hidden sheet (a lookup list, say) is read only when no visible sheet has data.
    candidates = [f for f in found if not f.hidden] or found
    best = min(candidates, key=lambda f: f.rank, default=None)  # the first of the best
    return best.name if best else None


def _existing(names: Sequence[str], wanted: str) -> str:
    if wanted in names:
        return wanted
    raise BadCsv(f"The workbook has no sheet called “{wanted}”. Its sheets are: "
                 + ", ".join(f"“{n}”" for n in names) + ".")


def _empty_workbook(names: Sequence[str]) -> str:
    if not names:
        return "This workbook has no sheet with cells in it (only charts, perhaps)."
    if len(names) == 1:
        return f"The workbook's only sheet, “{names[0]}”, is empty."
    return f"All {len(names)} sheets of this workbook are empty."


def _sheet_rows(workbook: pd.ExcelFile, name: str, *, nrows: int | None = None) -> list[Sequence[str]]:
    # header=None and no NA parsing keep every row, blank ones too, so that row numbers stay
    # the sheet's; object cells let numbers and dates be written as a person would type them.
    frame = pd.read_excel(workbook, sheet_name=name, header=None, dtype=object,
                          keep_default_na=False, na_filter=False, nrows=nrows)
    return [tuple(cell_text(value) for value in row) for row in frame.itertuples(index=False)]


def _sheet_notes(names: Sequence[str], used: str, found: Sequence[_Found], *, chosen: bool) -> list[str]:
    if len(names) == 1:
        return []
    hidden = {f.name for f in found if f.hidden}
    if chosen:
        which = f"“{used}”" + (", a hidden sheet" if used in hidden else "") + ", as chosen"
    elif used in hidden:
        which = f"the hidden sheet “{used}”, as no visible sheet has data"
    else:
        which = f"“{used}”, " + _WHY[next(f.rank for f in found if f.name == used)]
    others = [f"“{f.name}”" + (" (hidden)" if f.hidden else "") for f in found if f.name != used]
    return [f"The workbook has {len(names)} sheets; the contacts were read from {which}."
            + (f" Sheets not read: {', '.join(others)}." if others else "")]


# --- what Excel shows that pandas does not read --------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """What a sheet's XML says besides its cells' values; rows and columns counted from 0."""

    last_row: int = 0  # the number of the sheet's last row
    hidden_rows: tuple[int, ...] = ()
    filtered: bool = False  # the sheet has a filter (which hid its hidden rows, most likely)
    hidden_columns: tuple[range, ...] = ()
    merged: tuple[tuple[int, int, int, int], ...] = ()  # first row, first column, last row, last column
    # Cells pandas reads as empty that are not: the error shown (#N/A), or None for a formula
    # whose result was not saved (a file written by a program rather than saved by Excel).
    unread: dict[tuple[int, int], str | None] = field(default_factory=dict)


def _layout(xml: bytes) -> _Layout:
    hidden = b"hidden" in xml  # most sheets hide nothing: their rows are not looked at
    rows_hidden = hidden and _HIDDEN_ROW.search(xml) is not None
    return _Layout(
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


def _as_shown(rows: list[Sequence[str]], layout: _Layout) -> tuple[Records, list[str]]:
    """The rows as a person sees them in Excel, with what to tell them about it."""
    rows = _merged(rows, layout.merged)
    left_out, notes = _hidden_columns_left_out(rows, layout.hidden_columns)
    if left_out:
        kept = [i for i in range(len(rows[0])) if i not in left_out]
        rows = [tuple(row[i] for i in kept) for row in rows]
    records = Records(rows, range(1, len(rows) + 1))
    notes += _name_unread(records, layout.unread, left_out)
    notes += _leave_out_rows(records, layout.hidden_rows, filtered=layout.filtered)
    return records, notes


def _merged(rows: list[Sequence[str]], merged: Sequence[tuple[int, int, int, int]]) -> list[Sequence[str]]:
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
    A hidden column stays when it holds the only phone numbers or the only names: hidden to
    make room on the screen, say, not to keep it out of the blast."""
    width = len(rows[0]) if rows else 0
    with_data = [i for i in range(width) if any(i in span for span in hidden)
                 and any(row[i].strip() for row in rows)]
    if not with_data:
        return set(), []
    every = _columns(rows, range(width))
    if every is None:  # no phone column either way: nothing to keep them for
        return set(with_data), [_columns_note(rows, None, with_data, left_out=True)]
    kept_back = set()
    if every.phone in with_data and _columns(rows, _other(width, with_data)) is None:
        kept_back.add(every.phone)
    trial = _columns(rows, _other(width, set(with_data) - kept_back))
    if trial is not None and not trial.names:
        kept_back.update(i for i in every.names if i in with_data)
    left_out = [i for i in with_data if i not in kept_back]
    notes = [_columns_note(rows, every, left_out, left_out=True)] if left_out else []
    if kept_back:
        notes.append(_columns_note(rows, every, sorted(kept_back), left_out=False))
    return set(left_out), notes


def _other(width: int, leave_out: Sequence[int] | set[int]) -> list[int]:
    return [i for i in range(width) if i not in leave_out]


def _columns(rows: list[Sequence[str]], kept: Sequence[int]) -> Columns | None:
    """The columns `find_columns` takes among those `kept` (indexes into each row), or None."""
    try:
        columns = find_columns([tuple(row[i] for i in kept) for row in rows[:4 * _HEAD_RECORDS]])
    except BadCsv:
        return None
    return dataclasses.replace(columns, phone=kept[columns.phone],
                               names=tuple(kept[i] for i in columns.names))


def _columns_note(rows: list[Sequence[str]], columns: Columns | None, indexes: Sequence[int], *,
                  left_out: bool) -> str:
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
    notes = []
    if formula_lines:
        notes.append(f"Formulas on {_lines(formula_lines)} have no result saved in the file (it was "
                     "made by a program rather than saved by Excel), so they read as empty. Open the "
                     "file in Excel, save it and upload it again.")
    if error_lines:
        shown = sorted({e for cells in by_row.values() for _, e in cells if e is not None})
        notes.append(f"Cells on {_lines(error_lines)} show an Excel error ({', '.join(shown)}) and read "
                     "as empty.")
    return notes


def _leave_out_rows(records: Records, hidden: Sequence[int], *, filtered: bool) -> list[str]:
    """Mark each hidden row that holds data as not to be used, and say which they are. They
    stay in the report: a person hid them on purpose, but may not remember doing so."""
    indexes = [i for i in hidden if i < len(records) and any(cell.strip() for cell in records[i])]
    if not indexes:
        return []
    why = "hidden in Excel by a filter, so left out" if filtered else "hidden in Excel, so left out"
    records.problems.update(dict.fromkeys(indexes, why))
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


def cell_text(value: object) -> str:
    """A cell as the text Excel shows for it in General format.

    pandas hands over whole numbers as int (60123456789.0 arrives as 60123456789), so a
    phone number stored as a number reads as its digits, like the same digits in a CSV.
    """
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""  # an empty cell, or an error cell such as #N/A
    if isinstance(value, bool | np.bool_):
        return "TRUE" if value else "FALSE"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()  # a date alone: 2025-03-01
        return value.isoformat(sep=" ", timespec=_timespec(value))
    if isinstance(value, dt.time):
        return value.isoformat(timespec=_timespec(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _timespec(value: dt.datetime | dt.time) -> str:
    return "seconds" if value.second or value.microsecond else "minutes"
