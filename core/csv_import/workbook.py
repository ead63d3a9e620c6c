"""Excel uploads: the first sheet with data of an .xlsx workbook as rows of text cells, and
plain words for the workbooks (old .xls, password-protected, damaged) that cannot be read."""

from __future__ import annotations

import datetime as dt
import io
import math
import numbers
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import BadCsv

ZIP_SIGNATURE = b"PK\x03\x04"
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old Office files, and encrypted .xlsx
# An .xlsx unpacks to about 8 times its size; far more is a zip bomb, not a contact list.
MAX_UNPACKED_RATIO = 20
RESAVE = "open it in Excel and save it as “Excel Workbook (.xlsx)” or as CSV, then upload the new file"
# Office keeps a password-protected workbook inside an OLE file, in a stream of this name.
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"


@dataclass
class Sheet:
    """One worksheet's rows as text, row i being the sheet's row i + 1."""

    name: str
    rows: list[Sequence[str]]
    notes: list[str] = field(default_factory=list)


def looks_like_workbook(data: bytes) -> bool:
    """A zipped (.xlsx, .ods, .zip…) or OLE (.xls, encrypted .xlsx, .doc…) file."""
    return data.startswith((ZIP_SIGNATURE, OLE_SIGNATURE))


def read_sheet(data: bytes, *, max_unpacked_bytes: float) -> Sheet:
    """The first sheet with data, or BadCsv saying in plain words why there is none."""
    if data.startswith(OLE_SIGNATURE):
        raise BadCsv(_ole_problem(data))
    _check_zip(data, max_unpacked_bytes=max_unpacked_bytes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions
            return _first_sheet_with_data(data)
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


def _first_sheet_with_data(data: bytes) -> Sheet:
    with pd.ExcelFile(io.BytesIO(data), engine="openpyxl") as workbook:
        names = workbook.sheet_names
        hidden = {name for name in names if workbook.book[name].sheet_state != "visible"}
        # A hidden sheet (a lookup list, say) is read only when no visible sheet has data.
        for name in [n for n in names if n not in hidden] + [n for n in names if n in hidden]:
            rows = _sheet_rows(workbook, name)
            if any(cell.strip() for row in rows for cell in row):
                return Sheet(name=name, rows=rows, notes=_sheet_notes(names, name, hidden))
    if not names:
        raise BadCsv("This workbook has no sheet with cells in it (only charts, perhaps).")
    if len(names) == 1:
        raise BadCsv(f"The workbook's only sheet, “{names[0]}”, is empty.")
    raise BadCsv(f"All {len(names)} sheets of this workbook are empty.")


def _sheet_rows(workbook: pd.ExcelFile, name: str) -> list[Sequence[str]]:
    # header=None and no NA parsing keep every row, blank ones too, so that row numbers stay
    # the sheet's; object cells let numbers and dates be written as a person would type them.
    frame = pd.read_excel(workbook, sheet_name=name, header=None, dtype=object,
                          keep_default_na=False, na_filter=False)
    return [tuple(cell_text(value) for value in row) for row in frame.itertuples(index=False)]


def _sheet_notes(names: Sequence[str], used: str, hidden: set[str]) -> list[str]:
    if len(names) == 1:
        return []
    which = (f"the hidden sheet “{used}”, as no visible sheet has data" if used in hidden
             else f"“{used}”, the first sheet with data")
    return [f"The workbook has {len(names)} sheets; the contacts were read from {which}. To use "
            "another sheet, move it to the front in Excel and upload the file again."]


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
