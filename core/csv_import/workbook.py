"""Excel uploads: the sheet with the contacts of an .xlsx workbook as rows of text cells (rows
hidden in Excel kept out of the blast, each with its reason), and plain words for the workbooks
(old .xls, password-protected, damaged) that cannot be read."""

from __future__ import annotations

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

from core.csv_import.columns import find_columns
from core.csv_import.report import RECIPIENT_OUTCOMES, Records, classify
from core.errors import BadCsv

ZIP_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old Office files, and encrypted .xlsx
# An .xlsx unpacks to about 8 times its size; far more is a zip bomb, not a contact list.
MAX_UNPACKED_RATIO = 20
RESAVE = "open it in Excel and save it as “Excel Workbook (.xlsx)” or as CSV, then upload the new file"
# Office keeps a password-protected workbook inside an OLE file, in a stream of this name.
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
# Rows read from each sheet to tell a contact list from a summary. Fewer than `find_columns`
# searches for a header (HEADER_SEARCH_RECORDS): a sheet whose header lies lower is ranked as
# data without a phone column, though it is read whole, header and all, once chosen.
_HEAD_ROWS = 50
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
_ROW_HIDDEN = re.compile(rb"\shidden\s*=\s*[\"'](?:1|true)[\"']")
_AUTO_FILTER = re.compile(rb"<(?:[\w.-]+:)?autoFilter\b")
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


def looks_like_workbook(data: bytes) -> bool:
    """A zipped (.xlsx, .ods, .zip…) or OLE (.xls, encrypted .xlsx, .doc…) file."""
    return data.startswith((ZIP_SIGNATURE, OLE_SIGNATURE))


def read_sheet(data: bytes, *, max_unpacked_bytes: float, sheet: str | None = None) -> Sheet:
    """The sheet `sheet`, or (None) the first with contacts; or BadCsv saying in plain words
    why there is none. A row hidden in Excel is kept, with the reason it cannot be used."""
    with _opened(data, max_unpacked_bytes=max_unpacked_bytes) as workbook:
        found = _survey(workbook)
        name = _first_choice(found) if sheet is None else _existing(workbook.sheet_names, sheet)
        if name is None:
            raise BadCsv(_empty_workbook(workbook.sheet_names))
        rows = _sheet_rows(workbook, name)
        if not _has_data(rows):
            raise BadCsv(f"The sheet “{name}” is empty.")
        notes = _sheet_notes(workbook.sheet_names, name, found, chosen=sheet is not None)
        hidden, filtered = _hidden_rows(data, workbook.book[name]._worksheet_path)
    records, lines = _left_out(rows, hidden, filtered=filtered)
    if lines:
        notes.append(_hidden_note(lines, filtered=filtered))
    return Sheet(name=name, rows=records, notes=notes)


def contents(data: bytes, *, max_unpacked_bytes: float) -> Contents:
    """The sheets with data, for a person to choose from; BadCsv when the workbook cannot be read."""
    with _opened(data, max_unpacked_bytes=max_unpacked_bytes) as workbook:
        found = _survey(workbook)
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


def _survey(workbook: pd.ExcelFile) -> list[_Found]:
    """Each sheet with data, in the workbook's order, judged by its first rows."""
    found = []
    for name in workbook.sheet_names:
        head = _sheet_rows(workbook, name, nrows=_HEAD_ROWS)
        if not _has_data(head):  # empty, or its data starts further down
            head = _sheet_rows(workbook, name)
        if _has_data(head):
            found.append(_Found(name, workbook.book[name].sheet_state != "visible", _rank(head)))
    return found


def _has_data(rows: Sequence[Sequence[str]]) -> bool:
    return any(cell.strip() for row in rows for cell in row)


def _rank(rows: list[Sequence[str]]) -> int:
    try:
        columns = find_columns(rows)
    except BadCsv:
        return _DATA
    if any(row.outcome in RECIPIENT_OUTCOMES for row in classify(rows, columns)):
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


# --- rows hidden in Excel --------------------------------------------------------------------


def _hidden_rows(data: bytes, part: str) -> tuple[list[int], bool]:
    """The indexes of the rows hidden in the sheet stored in `part` (openpyxl's path of the sheet
    pandas read), and whether the sheet has a filter. pandas reads hidden rows like any other."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        xml = archive.read(part)
    if b"hidden" not in xml:  # most sheets: no row to look at
        return [], False
    hidden, number = [], 0
    for tag in _ROW_TAG.finditer(xml):
        attributes = tag.group(1)
        given = _ROW_NUMBER.search(attributes)
        number = int(given.group(1)) if given else number + 1  # a row may leave out its number
        if _ROW_HIDDEN.search(attributes):
            hidden.append(number - 1)
    return hidden, _AUTO_FILTER.search(xml) is not None


def _left_out(rows: list[Sequence[str]], hidden: Sequence[int], *, filtered: bool
              ) -> tuple[list[Sequence[str]], list[int]]:
    """The rows, each hidden one that holds data marked as not to be used, and their lines.
    They stay in the report: a person hid them on purpose, but may not remember doing so."""
    indexes = [i for i in hidden if i < len(rows) and any(cell.strip() for cell in rows[i])]
    if not indexes:
        return rows, []
    records = Records(rows, range(1, len(rows) + 1))
    why = "hidden in Excel by a filter, so left out" if filtered else "hidden in Excel, so left out"
    records.problems = dict.fromkeys(indexes, why)
    return records, [i + 1 for i in indexes]


def _hidden_note(lines: Sequence[int], *, filtered: bool) -> str:
    shown = ", ".join(map(str, lines[:_LINES_LISTED]))
    if len(lines) > _LINES_LISTED:
        shown += f" and {len(lines) - _LINES_LISTED:,} more"
    rows = f"{len(lines):,} rows" if len(lines) > 1 else "1 row"
    was = "were" if len(lines) > 1 else "was"
    how = "clear the filter" if filtered else "unhide them"
    return (f"{rows} hidden in Excel{' (by a filter)' if filtered else ''} {was} left out: "
            f"line{'s' if len(lines) > 1 else ''} {shown}. To send to them too, {how} in Excel "
            "and upload the file again.")


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
