"""Excel uploads: which sheet of an .xlsx workbook holds the contacts, its rows as text cells as
a person sees them in Excel (`sheet_layout`), and plain words for the workbooks (old .xls,
password-protected, damaged) that cannot be read."""

from __future__ import annotations

import datetime as dt
import io
import math
import numbers
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.csv_import.columns import HEADER_SEARCH_RECORDS, SAMPLE_RECORDS, find_columns
from core.csv_import.report import RECIPIENT_OUTCOMES, classify
from core.csv_import.sheet_layout import Layout, as_shown, fill_merged_cells, read_layout
from core.errors import BadCsv

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
    layout: Layout


def looks_like_workbook(data: bytes) -> bool:
    """A zipped (.xlsx, .ods, .zip…) or OLE (.xls, encrypted .xlsx, .doc…) file."""
    return data.startswith((ZIP_SIGNATURE, OLE_SIGNATURE))


def read_sheet(data: bytes, *, max_unpacked_bytes: float, sheet: str | None = None) -> Sheet:
    """The sheet `sheet`, or (None) the first with contacts; or BadCsv saying in plain words
    why there is none. The rows are as Excel shows them (`sheet_layout.as_shown`): a row hidden
    in Excel is kept, with the reason it cannot be used; a hidden column is left out, and said so."""
    with _opened(data, max_unpacked_bytes=max_unpacked_bytes) as workbook:
        found = _survey(workbook, data)
        name = _first_choice(found) if sheet is None else _existing(workbook.sheet_names, sheet)
        if name is None:
            raise BadCsv(_empty_workbook(workbook.sheet_names))
        rows = _sheet_rows(workbook, name)
        if not _has_data(rows):
            raise BadCsv(f"The sheet “{name}” is empty.")
        notes = _sheet_notes(workbook.sheet_names, name, found, chosen=sheet is not None)
        layout = next((f.layout for f in found if f.name == name), Layout())
    records, more_notes = as_shown(rows, layout)
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
            layout = read_layout(archive.read(workbook.book[name]._worksheet_path))
            head = _head(workbook, name, last_row=layout.last_row)
            if _has_data(head):
                rank = _rank(fill_merged_cells(head, layout.merged), layout.unread)
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
