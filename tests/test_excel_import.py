"""Excel uploads: real .xlsx files built with openpyxl, read into the same row report as a CSV."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest

from core.csv_import import BadCsv, ColumnNotFound, ImportReport, Outcome, parse_csv
from core.csv_import.workbook import OLE_SIGNATURE, cell_text
from tests.test_cli_import import run_cli
from tests.test_csv_import import EXPECTED, contact_rows, outcomes, write_file

Cells = Sequence[object] | None  # None: an empty row


def xlsx(*sheets: tuple[str, Sequence[Cells]], hidden: Sequence[str] = ()) -> bytes:
    """A workbook as Excel saves it: one worksheet per (title, rows), cells typed as given."""
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets:
        sheet = book.create_sheet(title)
        for number, row in enumerate(rows, start=1):
            for column, value in enumerate(row or (), start=1):
                if value is not None:
                    sheet.cell(row=number, column=column, value=value)
        if title in hidden:
            sheet.sheet_state = "hidden"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def parse_xlsx(data: bytes, **options: object) -> ImportReport:
    return parse_csv(data, filename="contacts.xlsx", **options)  # type: ignore[arg-type]


def cant_read(data: bytes, **options: object) -> str:
    with pytest.raises(BadCsv) as caught:
        parse_xlsx(data, **options)
    return caught.value.message


# --- the same report as a CSV --------------------------------------------------------------


def test_a_workbook_gives_the_same_report_as_the_same_list_saved_as_csv(tmp_path: Path) -> None:
    rows = contact_rows("Nurul Ain 🌙")
    report = parse_xlsx(xlsx(("Sheet1", rows)))
    assert outcomes(report) == EXPECTED, "lines are the sheet's row numbers"
    as_csv = parse_csv(write_file(tmp_path / "c.csv", rows).read_bytes())
    # Lines differ: a line break inside a cell is a line of the CSV file, not a row of the sheet.
    assert [(r.outcome, r.phone, r.name, r.variables) for r in report.rows] == [
        (r.outcome, r.phone, r.name, r.variables) for r in as_csv.rows
    ]
    assert (report.sheet, report.encoding, report.notes) == ("Sheet1", "Excel workbook", [])


@pytest.mark.parametrize(
    ("cell", "typed", "phone"),
    [
        (60123456789, "60123456789", "+60123456789"),  # a whole number
        (60123456789.0, "60123456789", "+60123456789"),  # stored as a float
        (6.0123456789e10, "60123456789", "+60123456789"),  # shown as 6.01235E+10 in Excel
        (123456789, "123456789", "+60123456789"),  # 012-345 6789 with its 0 eaten
        (1123456789, "1123456789", "+601123456789"),  # 011-2345 6789 with its 0 eaten
        ("0123456789", "0123456789", "+60123456789"),  # a number stored as text
        ("012-345 6789", "012-345 6789", "+60123456789"),
        (12345, "12345", None),
    ],
    ids=["int", "float", "e-notation", "lost-zero", "lost-zero-011", "text", "typed", "too-short"],
)
def test_numbers_stored_as_numbers_read_like_the_same_digits_in_a_csv(
    tmp_path: Path, cell: object, typed: str, phone: str | None
) -> None:
    report = parse_xlsx(xlsx(("Sheet1", [["Name", "Phone"], ["Ali", cell]])))
    row = report.rows[0]
    assert (row.raw_phone, row.phone) == (typed, phone)
    csv_row = parse_csv(write_file(tmp_path / "c.csv", [["Name", "Phone"], ["Ali", typed]])
                        .read_bytes()).rows[0]
    assert (row.outcome, row.phone, row.reason) == (csv_row.outcome, csv_row.phone, csv_row.reason)


def test_a_lost_zero_is_still_a_duplicate_of_the_same_number_typed_in_full() -> None:
    report = parse_xlsx(xlsx(("Sheet1", [["Nama", "HP"], ["Ali", "012-345 6789"], ["Abu", 123456789]])))
    assert [(r.line, r.outcome, r.duplicate_of) for r in report.rows] == [
        (2, Outcome.VALID, None), (3, Outcome.DUPLICATE, 2),
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""), ("", ""), (" Ali ", " Ali "), (42, "42"), (12.5, "12.5"), (3.0, "3"),
        (True, "TRUE"), (False, "FALSE"), (float("nan"), ""),
        (dt.datetime(2025, 3, 1), "2025-03-01"), (dt.datetime(2025, 3, 1, 9, 30), "2025-03-01 09:30"),
        (dt.datetime(2025, 3, 1, 9, 30, 15), "2025-03-01 09:30:15"), (dt.date(2025, 3, 1), "2025-03-01"),
        (dt.time(21, 0), "21:00"),
    ],
)
def test_cells_become_the_text_excel_shows(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_other_columns_reach_the_message_as_text() -> None:
    rows = [["Nama", "Telefon", "Tarikh", "Harga", "Ahli"],
            ["Siti", 60123456789, dt.datetime(2025, 3, 1), 12.5, True]]
    variables = parse_xlsx(xlsx(("Sheet1", rows))).rows[0].variables
    assert variables == {"nama": "Siti", "telefon": "60123456789", "tarikh": "2025-03-01",
                         "harga": "12.5", "ahli": "TRUE", "phone": "+60123456789", "name": "Siti"}


def test_empty_rows_and_a_header_below_a_title_keep_the_sheets_row_numbers() -> None:
    rows: list[Cells] = [
        None,  # row 1 left empty
        ["Senarai Pelanggan Mac 2025"],
        None,
        ["Nama", "No. Telefon", "Catatan"],  # row 4
        ["Ali", 123456789, "VIP"],
        None,  # row 6: an empty row between contacts
        ["Abu", "013-456 7890"],
        ["", "", ""],
        ["Lim", 60145678901],  # row 9
    ]
    report = parse_xlsx(xlsx(("Sheet1", rows)))
    assert report.columns.header_index == 3
    assert [(r.line, r.outcome, r.phone) for r in report.rows] == [
        (5, Outcome.VALID, "+60123456789"), (6, Outcome.BLANK, None),
        (7, Outcome.VALID, "+60134567890"), (8, Outcome.BLANK, None),
        (9, Outcome.VALID, "+60145678901"),
    ]
    assert report.notes == ["The header is on line 4; the lines above it were skipped."]


def test_a_bare_column_of_numbers_without_a_header() -> None:
    report = parse_xlsx(xlsx(("Sheet1", [[123456789], [60134567890], ["12345"]])))
    assert report.columns.header_index is None
    assert [(r.line, r.outcome) for r in report.rows] == [
        (1, Outcome.VALID), (2, Outcome.VALID), (3, Outcome.INVALID),
    ]


# --- which sheet ---------------------------------------------------------------------------


def test_the_first_sheet_with_contacts_is_read_and_named() -> None:
    data = xlsx(("Cover", []), ("Contacts", [["Name", "Phone"], ["Ali", 123456789]]),
                ("Old list", [["Name", "Phone"], ["Abu", 134567890]]))
    report = parse_xlsx(data)
    assert report.sheet == "Contacts"
    assert [r.name for r in report.rows] == ["Ali"]
    assert report.notes == [
        "The workbook has 3 sheets; the contacts were read from “Contacts”, the first sheet with "
        "phone numbers. Sheets not read: “Old list”."
    ]


def test_a_hidden_sheet_is_read_only_when_no_visible_sheet_has_data() -> None:
    lookup = ("Lookup", [["Code", "Phone"], ["X", 60199999999]])
    visible = parse_xlsx(xlsx(lookup, ("Contacts", [["Name", "Phone"], ["Ali", 123456789]]),
                              hidden=["Lookup"]))
    assert (visible.sheet, visible.rows[0].name) == ("Contacts", "Ali")
    only_hidden = parse_xlsx(xlsx(lookup, ("Blank", []), hidden=["Lookup"]))
    assert only_hidden.sheet == "Lookup"
    assert "the hidden sheet “Lookup”, as no visible sheet has data" in only_hidden.notes[0]


def test_columns_are_chosen_in_a_workbook_as_in_a_csv() -> None:
    data = xlsx(("Sheet1", [["Nama", "HP", "HP Suami"], ["Siti", 123456789, 134567890]]))
    report = parse_xlsx(data, phone_column="HP Suami")
    assert (report.phone_column, report.rows[0].phone) == ("HP Suami", "+60134567890")


# --- workbooks that cannot be read ---------------------------------------------------------


def zip_file(files: dict[str, bytes | str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def ole_file(*stream_names: str) -> bytes:
    """The start of an OLE compound file with these stream names in its directory, as an old
    .xls or a password-protected .xlsx has them."""
    directory = b"".join(name.encode("utf-16-le").ljust(128, b"\x00") for name in stream_names)
    return OLE_SIGNATURE + bytes(504) + directory + bytes(512)


GOOD = xlsx(("Sheet1", [["Name", "Phone"], ["Ali", 123456789]]))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (xlsx(("Sheet1", [])), "The workbook's only sheet, “Sheet1”, is empty."),
        (xlsx(("A", []), ("B", [None, None])), "All 2 sheets of this workbook are empty."),
        (xlsx(("Sheet1", [["Name", "Phone"], None])),
         "The file has a header row but no contacts below it."),
        (xlsx(("Sheet1", [["Nama", "Alamat"], ["Ali", "KL"]])),
         "No phone number column found. The columns are: “Nama”, “Alamat”."),
        (GOOD[: len(GOOD) // 2], "This looks like an Excel workbook (.xlsx) or another zipped file, "
                                 "but it is damaged and cannot be opened"),
        (zip_file({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>"}),
         "This looks like an Excel workbook (.xlsx), but it cannot be read: it may be damaged"),
        (zip_file({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "not xml <<<"}),
         "This looks like an Excel workbook (.xlsx), but it cannot be read"),
        (ole_file("Root Entry", "Workbook", "\x05SummaryInformation"),
         "This looks like an old Excel workbook (.xls) or another old Office file, which cannot be "
         "read here: open it in Excel and save it as “Excel Workbook (.xlsx)” or as CSV"),
        (ole_file("Root Entry", "EncryptionInfo", "EncryptedPackage"),
         "This Excel workbook is protected with a password, so it cannot be read."),
        (zip_file({"[Content_Types].xml": "<Types/>", "xl/workbook.bin": b"\x83\x01"}),
         "This is an Excel binary workbook (.xlsb), which cannot be read here"),
        (zip_file({"mimetype": "application/vnd.oasis.opendocument.spreadsheet", "content.xml": "<x/>"}),
         "This is an OpenDocument spreadsheet (.ods)"),
        (zip_file({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}),
         "This looks like a zipped file (a .zip, or a Word or PowerPoint document), not a contact list"),
    ],
    ids=["empty-sheet", "empty-sheets", "header-only", "no-phone-column", "truncated",
         "no-sheets-inside", "broken-xml", "xls", "password", "xlsb", "ods", "docx"],
)
def test_a_workbook_that_cannot_be_read_says_why(data: bytes, message: str) -> None:
    assert message in cant_read(data)


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    bomb = zip_file({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<workbook/>",
                 "xl/worksheets/sheet1.xml": " " * (30 * 1024 * 1024)})
    assert len(bomb) < 100 * 1024
    message = cant_read(bomb, max_upload_mb=1)
    assert message.startswith("This workbook holds 30 MB once unpacked, more than the 20 MB")


def test_the_upload_size_limit_applies_to_workbooks() -> None:
    rows: list[Cells] = [["Name", "Phone"], *[[f"Name {n}", 60120000000 + n] for n in range(3000)]]
    data = xlsx(("Sheet1", rows))
    assert 40 * 1024 < len(data) < 100 * 1024
    assert cant_read(data, max_upload_mb=0.03).startswith("The file is ")
    assert "the limit is 0.03 MB. Split it into smaller files." in cant_read(data, max_upload_mb=0.03)
    assert parse_xlsx(data, max_upload_mb=1).counts["valid"] == 3000


def test_the_no_phone_column_error_lists_the_columns_to_choose_from() -> None:
    rows: list[Cells] = [["Senarai Mac"], ["Nama", None, "Nombor Pelanggan"], ["Ali", "KL", 123456789]]
    with pytest.raises(ColumnNotFound) as caught:
        parse_xlsx(xlsx(("Sheet1", rows)))
    assert caught.value.headers == ("Nama", "column 2", "Nombor Pelanggan")
    report = parse_xlsx(xlsx(("Sheet1", rows)), phone_column="Nombor Pelanggan")
    assert (report.rows[0].line, report.rows[0].phone) == (3, "+60123456789")


# --- the command line ----------------------------------------------------------------------


def test_the_command_line_imports_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "raya.xlsx"
    path.write_bytes(xlsx(("Notes", []), ("Contacts", [["Nama", "HP"], ["Siti", 123456789]])))
    result = run_cli(tmp_path, str(path), "--tag", "raya")
    assert result.returncode == 0, result.stderr
    assert "Numbers from column “HP”, names from “Nama”; read from the sheet “Contacts” of an Excel " \
           "workbook." in result.stdout
    assert "1 recipient." in result.stdout
