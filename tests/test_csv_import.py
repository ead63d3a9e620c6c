"""CSV import: real files in every encoding and delimiter, the row-by-row report, storage."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from core.csv_import import (
    BadCsv,
    ImportReport,
    Outcome,
    add_recipients,
    create_draft_blast_from_import,
    import_report,
    opted_out_among,
    parse_csv,
)
from core.csv_import.reading import _tokenise_pandas, _tokenise_stdlib
from core.db import transaction
from core.errors import BadInput
from core.models import Blast, BlastRecipient, BlastState, OptOut
from core.phones import NOT_MOBILE
from core.templates import TemplateError
from tests.support.factories import make_blast

HEADER = ["Nama", "No. Telefon", "Bandar", "Alamat"]


def contact_rows(special_name: str) -> list[list[str] | None]:
    """A contact list as marketers send it: line numbers as a spreadsheet shows them.
    None is a truly empty line."""
    return [
        HEADER,  # line 1
        ["Ahmad bin Ali", "012-345 6789", "Kuala Lumpur", "No 5, Jalan Ampang; Taman U"],
        [special_name, "+60 13-456 7890", "Shah Alam", "Lot 7\nKampung Baru"],  # 2 lines inside
        ["Tan Ah Kow", "60198765432", "Ipoh", ""],
        ["Mei Ling", "011-2345 6789", "Pulau Pinang", ""],
        ["Raj Kumar", "0123456789", "Johor Bahru", ""],  # line 6: same as line 2
        ["Pejabat", "03-2345 6789", "Kuala Lumpur", ""],  # landline
        ["Ravi", "+65 9123 4567", "Singapore", ""],  # foreign
        ["Salah", "12345", "Melaka", "\t=tab"],  # too short
        ["", "", "", ""],  # line 10: Excel's empty row
        ["Excel", "6.0145678901E+10", "Seremban", ""],
        ["Sifar", "123456789", "", ""],  # leading zero lost: line 2 again
        None,  # line 13: an empty line
        ["Hilang", "", "Kuching", ""],
    ]


EXPECTED = [  # (line, outcome, phone, reason, duplicate_of)
    (2, Outcome.VALID, "+60123456789", None, None),
    (3, Outcome.VALID, "+60134567890", None, None),
    (4, Outcome.VALID, "+60198765432", None, None),
    (5, Outcome.VALID, "+601123456789", None, None),
    (6, Outcome.DUPLICATE, "+60123456789", "same number as line 2", 2),
    (7, Outcome.WARNING, "+60323456789", NOT_MOBILE, None),
    (8, Outcome.WARNING, "+6591234567", "foreign number (Singapore, +65)", None),
    (9, Outcome.INVALID, None, "too short", None),
    (10, Outcome.BLANK, None, None, None),
    (11, Outcome.VALID, "+60145678901", None, None),
    (12, Outcome.DUPLICATE, "+60123456789", "same number as line 2", 2),
    (13, Outcome.BLANK, None, None, None),
    (14, Outcome.INVALID, None, "no phone number", None),
]
EXPECTED_COUNTS = {"valid": 5, "warning": 2, "duplicate": 2, "invalid": 2, "hidden": 0, "suppressed": 0,
                   "blank": 2}


def csv_text(rows: Sequence[Sequence[str] | None], *, delimiter: str = ",",
             newline: str = "\r\n") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    for row in rows:
        if row is None:
            out.write(newline)
        else:
            writer.writerow(row)
    return out.getvalue()


def write_file(path: Path, rows: Sequence[Sequence[str] | None], *, delimiter: str = ",",
               encoding: str = "utf-8", bom: bytes = b"", newline: str = "\r\n") -> Path:
    path.write_bytes(bom + csv_text(rows, delimiter=delimiter, newline=newline).encode(encoding))
    return path


def parse(path: Path, **options: object) -> ImportReport:
    return parse_csv(path.read_bytes(), filename=path.name, **options)  # type: ignore[arg-type]


def outcomes(report: ImportReport) -> list[tuple[int, Outcome, str | None, str | None, int | None]]:
    return [(r.line, r.outcome, r.phone, r.reason, r.duplicate_of) for r in report.rows]


# (how the file was saved, codec, byte-order mark, the label the report gives, a name)
ENCODINGS = [
    ("utf-8", "utf-8", b"", "UTF-8", "陈伟明 🌸"),
    ("utf-8 with BOM (Excel CSV UTF-8)", "utf-8", b"\xef\xbb\xbf", "UTF-8", "Nurul Ain 🌙"),
    ("utf-16 LE with BOM (Excel Unicode text)", "utf-16-le", b"\xff\xfe", "UTF-16 LE",
     "陈伟明"),
    ("utf-16 BE with BOM", "utf-16-be", b"\xfe\xff", "UTF-16 BE", "Siti Nurhaliza 🌸"),
    ("utf-16 LE without BOM", "utf-16-le", b"", "UTF-16 LE", "Zoë Tan"),
    ("utf-16 BE without BOM", "utf-16-be", b"", "UTF-16 BE", "Zoë Tan"),
    ("cp1252 (Excel CSV on Windows)", "cp1252", b"", "Windows-1252", "José Müller – €5"),
    ("latin-1", "latin-1", b"", "Windows-1252", "Zoë Ñúñez"),
    ("gbk (Excel CSV on Chinese Windows)", "gbk", b"", "GB2312 (Chinese Windows)", "陈伟明"),
]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
@pytest.mark.parametrize(("label", "codec", "bom", "reported", "name"), ENCODINGS,
                         ids=[e[0] for e in ENCODINGS])
def test_every_encoding_and_delimiter_gives_the_same_report(
    tmp_path: Path, delimiter: str, label: str, codec: str, bom: bytes, reported: str, name: str,
) -> None:
    path = write_file(tmp_path / "contacts.csv", contact_rows(name), delimiter=delimiter,
                      encoding=codec, bom=bom)
    report = parse(path)
    assert report.encoding == reported
    assert report.delimiter == delimiter
    assert report.phone_column == "No. Telefon"
    assert report.name_column == "Nama"
    assert report.counts == EXPECTED_COUNTS
    assert outcomes(report) == EXPECTED
    by_line = {r.line: r for r in report.rows}
    assert by_line[3].name == name
    assert by_line[3].variables["alamat"] == "Lot 7\nKampung Baru"
    assert by_line[2].variables["alamat"] == "No 5, Jalan Ampang; Taman U"
    assert by_line[11].raw_phone == "6.0145678901E+10"
    assert report.filename == "contacts.csv"


def test_recipients_carry_their_variables(tmp_path: Path) -> None:
    report = parse(write_file(tmp_path / "c.csv", contact_rows("Siti")))
    first = report.recipients[0]
    assert first.variables == {
        "nama": "Ahmad bin Ali", "no_telefon": "012-345 6789", "bandar": "Kuala Lumpur",
        "alamat": "No 5, Jalan Ampang; Taman U", "name": "Ahmad bin Ali",
        "phone": "+60123456789",
    }
    assert [r.line for r in report.recipients] == [2, 3, 4, 5, 7, 8, 11]
    assert report.variable_names == ["alamat", "bandar", "nama", "name", "no_telefon", "phone"]
    assert [r.line for r in report.problems] == [6, 7, 8, 9, 10, 12, 13, 14]


def test_old_mac_line_endings(tmp_path: Path) -> None:
    # Classic Mac Excel ends lines with CR alone, in cells too.
    rows = [r and [c.replace("\n", "\r") for c in r] for r in contact_rows("Siti")]
    report = parse(write_file(tmp_path / "c.csv", rows, newline="\r"))
    assert outcomes(report) == EXPECTED
    assert report.rows[1].variables["alamat"] == "Lot 7\rKampung Baru"


def test_unix_line_endings_and_no_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Name,Phone\nAli,012-345 6789\nAbu,013-456 7890", encoding="utf-8")
    report = parse(path)
    assert [(r.line, r.phone) for r in report.rows] == [(2, "+60123456789"), (3, "+60134567890")]


def test_bytes_cp1252_cannot_hold_fall_back_to_latin1(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(b"Name,Phone\nA\x81b,0123456789\n")
    report = parse(path)
    assert report.encoding == "Latin-1"
    assert report.rows[0].name == "A\x81b"
    assert any("not UTF-8" in note for note in report.notes)


def test_damaged_utf16_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    text = "Name\tPhone\r\nAli\t0123456789\r\nAbu\t0134567890\r\n".encode("utf-16-le")
    damaged = b"\xff\xfe" + text[:30] + b"\x00\xd8" + text[30:]  # a lone surrogate
    path = tmp_path / "c.txt"
    path.write_bytes(damaged)
    report = parse(path)
    assert report.encoding == "UTF-16 LE"
    assert report.counts["valid"] == 2
    assert any("could not be read" in note for note in report.notes)


def test_quoted_cells_with_delimiters_quotes_and_line_breaks(tmp_path: Path) -> None:
    rows = [
        ["Name", "Phone", "Note"],
        ['Tan "Ah Kow", Jr.', "012-345 6789", "line one\nline two\r\nline three"],
        ["Siti", "013-456 7890", 'She said "ok"; then left'],
        ["Abu", "014-567 8901", ""],
    ]
    report = parse(write_file(tmp_path / "c.csv", rows))
    assert [(r.line, r.name) for r in report.rows] == [
        (2, 'Tan "Ah Kow", Jr.'), (3, "Siti"), (4, "Abu"),
    ]
    assert report.rows[0].variables["note"] == "line one\nline two\r\nline three"
    assert report.rows[1].variables["note"] == 'She said "ok"; then left'


def test_a_row_with_an_unquoted_comma_is_reported_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Name,Phone\nAli,0123456789\nTan, Ah Kow,0134567890\nSiti,0145678901,\n"
                    "Abu,0167890123\n", encoding="utf-8")
    report = parse(path)
    assert [(r.line, r.outcome) for r in report.rows] == [
        (2, Outcome.VALID), (3, Outcome.INVALID), (4, Outcome.VALID), (5, Outcome.VALID),
    ]
    bad = report.rows[1]
    assert bad.reason == ("this row has 3 cells but the header has 2; a comma or semicolon "
                          "inside a name or address needs quotes around that cell")
    assert bad.name == "Tan"


def test_title_rows_above_the_header_are_skipped_and_lines_still_match(tmp_path: Path) -> None:
    rows = [
        ["Senarai Pelanggan Mac 2025", "", ""],
        ["", "", ""],
        ["Nama", "No HP", "Catatan"],
        ["Ali", "012-345 6789", "VIP"],
        ["Abu", "013-456 7890", ""],
    ]
    report = parse(write_file(tmp_path / "c.csv", rows))
    assert report.columns.header_index == 2
    assert [(r.line, r.phone) for r in report.rows] == [(4, "+60123456789"), (5, "+60134567890")]
    assert report.notes == ["The header is on line 3; the lines above it were skipped."]


def test_a_title_row_without_trailing_commas(tmp_path: Path) -> None:
    # The first line has one cell, later ones three: pandas refuses, the csv module reads.
    path = tmp_path / "c.csv"
    path.write_text("Customer list\n\nName,Phone,City\nAli,0123456789,KL\n", encoding="utf-8")
    report = parse(path)
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [(4, Outcome.VALID, "Ali")]


@pytest.mark.parametrize("title", ["Customer phone list (March)", "WhatsApp blast list,,",
                                   "Senarai no HP pelanggan"])
def test_a_title_that_names_a_phone_word_is_not_taken_for_the_header(tmp_path: Path, title: str) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"{title}\nName,Phone,City\nAli,0123456789,KL\nAbu,013-456 7890,Ipoh\n", encoding="utf-8")
    report = parse(path)
    assert report.columns.header_index == 1
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [(3, Outcome.VALID, "Ali"),
                                                                  (4, Outcome.VALID, "Abu")]


@pytest.mark.parametrize("title", ["Customer phone list", "Customer phone list,,",
                                   "Senarai Telefon Pelanggan Raya 2025,,"])
def test_a_phone_title_above_a_header_that_starts_with_the_phone_column(tmp_path: Path, title: str) -> None:
    # The title names a phone word in the phone column's place: the header is the row nearest
    # the contacts, not the title with numbers five rows below it.
    path = tmp_path / "c.csv"
    path.write_text(f"{title}\nPhone,Name,Product\n012-3456789,Ali,Kuih\n013-4567890,Siti,Bak kwa\n",
                    encoding="utf-8")
    report = parse(path)
    assert report.columns.header_index == 1
    assert (report.phone_column, report.name_column) == ("Phone", "Name")
    assert [(r.line, r.outcome, r.phone, r.name) for r in report.rows] == [
        (3, Outcome.VALID, "+60123456789", "Ali"), (4, Outcome.VALID, "+60134567890", "Siti"),
    ]
    assert report.rows[0].variables["product"] == "Kuih"


def test_two_header_rows_the_one_nearest_the_contacts_wins(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("No. Telefon,Nama,Produk\n\nPhone,Name,Product\n012-3456789,Ali,Kuih\n",
                    encoding="utf-8")
    report = parse(path)
    assert (report.columns.header_index, report.name_column) == (2, "Name")
    assert [(r.line, r.outcome) for r in report.rows] == [(4, Outcome.VALID)]


def test_a_note_naming_a_phone_word_in_the_first_contact_is_not_a_header(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Phone,Name,Note\n012-3456789,Ali,call his mobile\n013-4567890,Siti,\n",
                    encoding="utf-8")
    report = parse(path)
    assert report.columns.header_index == 0
    assert [(r.line, r.outcome) for r in report.rows] == [(2, Outcome.VALID), (3, Outcome.VALID)]


def test_a_first_contact_without_a_number_and_a_note_naming_whatsapp_is_not_a_header(
    tmp_path: Path,
) -> None:
    """The header above it is not a title either: nothing below the note holds a number."""
    path = tmp_path / "c.csv"
    path.write_text("Name,Phone,Notes\nAli,,Prefers WhatsApp\nAbu,012-9876543,\nSiti,013-1234567,\n",
                    encoding="utf-8")
    report = parse(path)
    assert report.columns.header_index == 0
    assert [(r.line, r.outcome) for r in report.rows] == [
        (2, Outcome.INVALID), (3, Outcome.VALID), (4, Outcome.VALID)]


def test_a_list_of_bare_numbers_without_a_header(tmp_path: Path) -> None:
    path = tmp_path / "numbers.txt"
    path.write_text("012-345 6789\n013-456 7890\n12345\n", encoding="utf-8")
    report = parse(path)
    assert report.columns.header_index is None
    assert [(r.line, r.outcome) for r in report.rows] == [
        (1, Outcome.VALID), (2, Outcome.VALID), (3, Outcome.INVALID),
    ]
    assert report.notes == ["The file has no header row; numbers were taken from column 1."]
    assert report.name_column is None
    assert "name" not in report.variable_names


@pytest.mark.parametrize(
    "phone_header",
    ["Phone", "phone number", "PHONE NO.", "Mobile", "Mobile Number", "Handphone", "HP",
     "No. HP", "No HP", "H/P", "No. Telefon", "No Telefon", "Nombor Telefon", "Nombor",
     "No. Tel", "Tel", "Telephone", "WhatsApp", "WhatsApp No.", "No. WhatsApp", "Contact",
     "Contact No.", "Telefon Bimbit", "Mobile Phone", "Cell", "Phone 1 - Value",
     "  phone  "],
)
def test_phone_column_found_by_common_names(tmp_path: Path, phone_header: str) -> None:
    rows = [["Remark", phone_header, "Email"], ["hi", "012-345 6789", "a@b.my"]]
    report = parse(write_file(tmp_path / "c.csv", rows))
    assert report.phone_column == phone_header.strip()
    assert report.rows[0].phone == "+60123456789"


@pytest.mark.parametrize(
    ("headers", "cells", "name_column", "name"),
    [
        (["Name", "Phone"], ["Ali Baba", "0123456789"], "Name", "Ali Baba"),
        (["Full Name", "Phone"], ["Ali Baba", "0123456789"], "Full Name", "Ali Baba"),
        (["Nama", "Phone"], ["Ali Baba", "0123456789"], "Nama", "Ali Baba"),
        (["NAMA PENUH", "Phone"], ["Ali Baba", "0123456789"], "NAMA PENUH", "Ali Baba"),
        (["Customer", "Phone"], ["Ali Baba", "0123456789"], "Customer", "Ali Baba"),
        (["Nama Pelanggan", "HP"], ["Ali Baba", "0123456789"], "Nama Pelanggan", "Ali Baba"),
        (["First Name", "Last Name", "Phone"], ["Ali", "Baba", "0123456789"],
         "First Name + Last Name", "Ali Baba"),
        (["Phone", "Last Name", "First Name"], ["0123456789", "Baba", "Ali"],
         "First Name + Last Name", "Ali Baba"),
        (["Given Name", "Family Name", "Phone"], ["Ali", "", "0123456789"],
         "Given Name + Family Name", "Ali"),
    ],
)
def test_name_column_found_by_common_names(
    tmp_path: Path, headers: list[str], cells: list[str], name_column: str, name: str
) -> None:
    report = parse(write_file(tmp_path / "c.csv", [headers, cells]))
    assert report.name_column == name_column
    assert report.rows[0].name == name
    assert report.rows[0].variables["name"] == name


def test_no_name_column_means_no_name_placeholder(tmp_path: Path) -> None:
    report = parse(write_file(tmp_path / "c.csv", [["Phone", "City"], ["0123456789", "KL"]]))
    assert report.name_column is None
    assert report.rows[0].name is None
    assert "name" not in report.rows[0].variables
    assert report.variable_names == ["city", "phone"]


def test_google_contacts_export(tmp_path: Path) -> None:
    rows = [
        ["First Name", "Middle Name", "Last Name", "Nickname", "Phone 1 - Label",
         "Phone 1 - Value", "Phone 2 - Label", "Phone 2 - Value"],
        ["Siti", "", "Aminah", "", "Mobile", "+60 12-345 6789", "Work", "+60 3-2345 6789"],
        ["Wong", "Ah", "Beng", "", "Mobile", "+60 13-456 7890 ::: +60 14-567 8901", "", ""],
    ]
    report = parse(write_file(tmp_path / "contacts.csv", rows))
    assert report.phone_column == "Phone 1 - Value"
    assert report.name_column == "First Name + Middle Name + Last Name"
    assert [(r.name, r.outcome, r.phone) for r in report.rows] == [
        ("Siti Aminah", Outcome.VALID, "+60123456789"),
        ("Wong Ah Beng", Outcome.INVALID, None),
    ]
    assert report.rows[1].reason == "more than one number in this cell; keep one number per row"
    assert report.rows[0].variables["phone_2_value"] == "+60 3-2345 6789"


def test_a_mobile_column_wins_over_an_office_phone(tmp_path: Path) -> None:
    rows = [["Name", "Office Phone", "Mobile"], ["Ali", "03-2345 6789", "012-345 6789"]]
    report = parse(write_file(tmp_path / "c.csv", rows))
    assert report.phone_column == "Mobile"
    assert report.rows[0].variables["office_phone"] == "03-2345 6789"


def test_columns_chosen_by_the_caller(tmp_path: Path) -> None:
    rows = [["Nama", "HP", "HP Suami", "Panggilan"], ["Siti", "0123456789", "0134567890", "Kak Siti"]]
    path = write_file(tmp_path / "c.csv", rows)
    assert parse(path).phone_column == "HP"
    report = parse(path, phone_column="hp suami", name_column="Panggilan")
    assert report.phone_column == "HP Suami"
    assert report.name_column == "Panggilan"
    assert (report.rows[0].phone, report.rows[0].name) == ("+60134567890", "Kak Siti")
    # {phone} is the chosen number; the other HP column keeps its own key.
    assert report.rows[0].variables["phone"] == "+60134567890"
    assert report.rows[0].variables["hp"] == "0123456789"
    assert report.rows[0].variables["name"] == "Kak Siti"
    assert report.rows[0].variables["nama"] == "Siti"


@pytest.mark.parametrize(("option", "value"), [("phone_column", "Phone"), ("name_column", "Nom")])
def test_a_chosen_column_that_does_not_exist(tmp_path: Path, option: str, value: str) -> None:
    path = write_file(tmp_path / "c.csv", [["Nama", "HP"], ["Siti", "0123456789"]])
    with pytest.raises(BadCsv) as caught:
        parse(path, **{option: value})
    assert caught.value.message == (
        f"There is no column called “{value}”. The columns are: “Nama”, “HP”."
    )


def test_variable_keys_are_unique_and_never_hide_name_or_phone(tmp_path: Path) -> None:
    rows = [["Full Name", "Name", "Phone", "phone", "Promo Code", "promo-code", ""],
            ["Ali Baba", "Ali", "0123456789", "x", "A", "B", "extra"]]
    report = parse(write_file(tmp_path / "c.csv", rows))
    variables = report.rows[0].variables
    assert report.name_column == "Name"
    assert variables == {
        "full_name": "Ali Baba", "name": "Ali", "phone": "+60123456789", "phone_2": "x",
        "promo_code": "A", "promo_code_2": "B", "column_7": "extra",
    }


def test_every_record_is_listed_even_blank_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("Name,Phone\n\nAli,0123456789\n,\n   ,  \n\nAbu,0134567890\n,\n,\n",
                    encoding="utf-8")
    report = parse(path)
    assert [(r.line, r.outcome) for r in report.rows] == [
        (2, Outcome.BLANK), (3, Outcome.VALID), (4, Outcome.BLANK), (5, Outcome.BLANK),
        (6, Outcome.BLANK), (7, Outcome.VALID), (8, Outcome.BLANK), (9, Outcome.BLANK),
    ]


def test_duplicates_name_the_first_line_whatever_its_form(tmp_path: Path) -> None:
    rows = [["Name", "Phone"], ["A", "+60 12-345 6789"], ["B", "60123456789.0"],
            ["C", "0123456789"], ["D", "6.0123456789E+10"], ["E", "013-456 7890"],
            ["F", "+60134567890"]]
    report = parse(write_file(tmp_path / "c.csv", rows))
    assert [(r.line, r.outcome, r.duplicate_of) for r in report.rows] == [
        (2, Outcome.VALID, None), (3, Outcome.DUPLICATE, 2), (4, Outcome.DUPLICATE, 2),
        (5, Outcome.DUPLICATE, 2), (6, Outcome.VALID, None), (7, Outcome.DUPLICATE, 6),
    ]


def test_long_names_are_cut_to_fit_and_the_row_says_so(tmp_path: Path) -> None:
    """{name} in the message takes the cut name: the row had said nothing of it."""
    rows = [["Name", "Phone"], ["N" * 400, "0123456789"], ["Ali", "0123456788"],
            ["M" * 255, "0123456787"]]
    report = parse(write_file(tmp_path / "c.csv", rows))
    long, short, just = report.rows
    assert long.name == "N" * 255 and long.variables["name"] == "N" * 255
    assert (long.outcome, long.reason) == (
        Outcome.WARNING, "the name is over 255 characters long: only its first 255 are kept")
    assert (short.outcome, short.reason) == (Outcome.VALID, None)
    assert (just.outcome, just.name) == (Outcome.VALID, "M" * 255)


# --- files that cannot be read -------------------------------------------------------------


def xlsx_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    return out.getvalue()


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (b"   \r\n\r\n  ", "The file is empty."),
        (b"\xef\xbb\xbf", "The file is empty."),
        (b",,,\r\n,,,\r\n", "The file is empty."),
        (b"Name,Phone\r\n", "The file has a header row but no contacts below it."),
        (b"Name,Phone\r\n,\r\n\r\n", "The file has a header row but no contacts below it."),
        # A damaged workbook; real ones are read (tests/test_excel_import.py).
        (xlsx_bytes(), "This looks like an Excel workbook (.xlsx), but it cannot be read: it may "
                       "be damaged"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "an old Excel workbook (.xls)"),
        (PNG, "This looks like a PNG image, not a CSV or Excel file"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image"),
        (b"%PDF-1.7\n%\xe2\xe3", "a PDF document"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "a web page (HTML)"),
        (bytes(range(256)) * 4, "This file is not text, so it cannot be a CSV file"),
        (b"Nama,Alamat,Emel\r\nAli,KL,a@b.my\r\n",
         "No phone number column found. The columns are: “Nama”, “Alamat”, “Emel”. Name the "
         "column with the numbers “Phone”, or choose the column yourself."),
        (b'Name,Phone\r\nAli,"012345\r\nAbu,0134567890\r\n',
         "A quote mark (\") on line 2 of the file is never closed, so the rest of it cannot be "
         "read. Fix that cell and save the file again."),
        (b'Name,Phone\r\nTan, Ah,0123\r\n\r\nAli,"012345\r\nAbu,0134567890\r\n',
         "A quote mark (\") on line 4 of the file is never closed"),
        (b'Name,Phone,Note\r\nA,0123456789,"x\r\ny"\r\nB,"0134\r\nC,0145678901,\r\n',
         "A quote mark (\") on line 4 of the file is never closed"),  # as a text editor shows it
        (b"Name,Phone\r\nA,0123456789," + b"x" * 200_000 + b"\r\n",
         "One cell is longer than 131,072 characters"),
    ],
    ids=["empty", "whitespace", "bom-only", "only-commas", "header-only", "header-and-blanks",
         "xlsx", "xls", "png", "jpeg", "pdf", "html", "binary", "no-phone-column",
         "unclosed-quote", "unclosed-quote-after-a-ragged-row",
         "unclosed-quote-after-a-multiline-cell", "giant-cell"],
)
def test_unreadable_files_say_why(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    with pytest.raises(BadCsv) as caught:
        parse(path)
    assert message in caught.value.message


@pytest.mark.parametrize("name", ["Contacts.xlsx", "LIST.XLS", "list.xlsm"])
def test_a_file_named_as_a_workbook_that_is_not_one_says_so(name: str) -> None:
    """Cut short or damaged before its first bytes (a real workbook's damage is said by the
    workbook reader): it had been told to save itself as CSV, as if it were a text file."""
    with pytest.raises(BadCsv) as caught:
        parse_csv(bytes(range(256)) * 4, filename=name)
    assert caught.value.message.startswith("This file is named as an Excel workbook, but it cannot be "
                                           "opened as one: it may be damaged, or not fully downloaded.")
    assert "CSV" not in caught.value.message


def test_a_file_over_the_size_cap(tmp_path: Path) -> None:
    rows = [["Name", "Phone"]] + [["Ali", f"012{n:07d}"] for n in range(40_000)]
    path = write_file(tmp_path / "big.csv", rows)
    assert path.stat().st_size > 0.5 * 1024 * 1024
    with pytest.raises(BadCsv, match=r"^The file is \d{3} KB; the limit is 0\.5 MB\. Split it"):
        parse(path, max_upload_mb=0.5)
    assert parse(path, max_upload_mb=2).counts["valid"] == 40_000


def test_a_big_file_is_measured_in_megabytes() -> None:
    with pytest.raises(BadCsv, match=r"^The file is 12\.5 MB; the limit is 10 MB\."):
        parse_csv(b"x" * int(12.5 * 1024 * 1024))


# --- the report as CSV ---------------------------------------------------------------------


def test_report_csv_lists_every_row_formula_safe(tmp_path: Path) -> None:
    rows = contact_rows("=cmd|' /C calc'!A0")
    report = parse(write_file(tmp_path / "c.csv", rows))
    exported = list(csv.reader(io.StringIO(report.to_csv(), newline="")))
    assert exported[0] == ["line", "outcome", "phone", "phone as typed", "name", "reason",
                           "duplicate of line"]
    assert [int(r[0]) for r in exported[1:]] == [line for line, *_ in EXPECTED]
    by_line = {r[0]: r for r in exported[1:]}
    assert by_line["3"][2] == "'+60134567890"
    assert by_line["3"][3] == "'+60 13-456 7890"
    assert by_line["3"][4] == "'=cmd|' /C calc'!A0"
    assert by_line["6"][1:] == ["duplicate", "'+60123456789", "0123456789", "Raj Kumar",
                                "same number as line 2", "2"]
    assert by_line["9"][5] == "too short"
    for row in exported[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


# --- opt-outs without a database -----------------------------------------------------------


def test_opted_out_numbers_are_suppressed(tmp_path: Path) -> None:
    path = write_file(tmp_path / "c.csv", contact_rows("Siti"))
    report = parse(path, opted_out={"+60123456789", "+6591234567", "+60999"})
    got = {r.line: (r.outcome, r.reason, r.duplicate_of) for r in report.rows}
    suppressed = "opted out: this number asked not to be messaged"
    assert got[2] == (Outcome.SUPPRESSED, suppressed, None)
    assert got[8] == (Outcome.SUPPRESSED, suppressed, None)
    assert got[6] == (Outcome.DUPLICATE, "same number as line 2", 2)  # still a repeat
    assert report.counts == {**EXPECTED_COUNTS, "valid": 4, "warning": 1, "suppressed": 2}
    assert "+60123456789" not in {r.phone for r in report.recipients}


# --- property tests ------------------------------------------------------------------------


@given(st.binary(max_size=2000))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(b"\xff\xfe")
@example(b"\xfe\xff\x00")
@example(b'"')
@example(b"phone\n\x00")
@example(b"phone\n0123456789\n\"")
@example(b"a,b\n" + b"," * 5000)
def test_any_bytes_give_a_report_or_bad_csv(data: bytes) -> None:
    try:
        report = parse_csv(data)
    except BadCsv as exc:
        assert exc.message
        assert "Traceback" not in exc.message
        return
    assert report.rows
    assert sum(report.counts.values()) == len(report.rows)


_cell = st.text(alphabet=st.sampled_from(list("0123456789+-() ,;\t\"\n\rabcAli'=é")), max_size=12)


@given(st.lists(st.lists(_cell, min_size=0, max_size=4), min_size=1, max_size=25),
       st.sampled_from([",", ";", "\t"]))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_csv_rows_are_each_listed_once(rows: list[list[str]], delimiter: str) -> None:
    text = csv_text([["Name", "Phone"], *rows], delimiter=delimiter)
    try:
        report = parse_csv(text.encode("utf-8"))
    except BadCsv:
        return
    lines = [r.line for r in report.rows]
    assert len(lines) == lines[-1] - lines[0] + 1  # in order, none skipped in between
    if report.delimiter == delimiter:  # read as written: every record below the header
        assert lines == list(range(2, len(rows) + 2))


@given(st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=1, max_size=20),
       st.sampled_from([",", ";", "\t", "|"]))
@settings(max_examples=300, deadline=None)
def test_pandas_and_the_csv_module_read_files_alike(rows: list[list[str]], delimiter: str) -> None:
    # The csv module steps in for rows pandas refuses: both must cut cells the same way.
    text = csv_text([["a", "b", "c"], *rows], delimiter=delimiter)
    assert [list(r) for r in _tokenise_pandas(text, delimiter)] == [
        list(r) for r in _tokenise_stdlib(text, delimiter)
    ]


# --- storage -------------------------------------------------------------------------------


def stored(engine: Engine, blast_id: int) -> list[BlastRecipient]:
    with transaction(engine) as s:
        query = select(BlastRecipient).where(BlastRecipient.blast_id == blast_id)
        return list(s.scalars(query.order_by(BlastRecipient.id)))


def add_opt_outs(engine: Engine, *numbers: str) -> None:
    with transaction(engine) as s:
        s.add_all(OptOut(phone_number=n, source="manual") for n in numbers)


def test_import_report_marks_numbers_on_the_opt_out_list(engine: Engine, tmp_path: Path) -> None:
    add_opt_outs(engine, "+60134567890", "+60111111111")
    data = write_file(tmp_path / "c.csv", contact_rows("Siti")).read_bytes()
    with transaction(engine) as s:
        report = import_report(s, data, filename="c.csv")
        assert opted_out_among(s, ["+60134567890", "+60123456789"]) == {"+60134567890"}
        assert opted_out_among(s, []) == set()
    assert {r.line: r.outcome for r in report.rows}[3] == Outcome.SUPPRESSED
    assert report.counts["suppressed"] == 1


def test_a_draft_blast_holds_one_queued_recipient_per_usable_number(
    engine: Engine, tmp_path: Path
) -> None:
    add_opt_outs(engine, "+60198765432")
    data = write_file(tmp_path / "march.csv", contact_rows("陈伟明")).read_bytes()
    with transaction(engine) as s:
        report = import_report(s, data, filename="march.csv")
        blast = create_draft_blast_from_import(
            s, report=report, tag="raya-2025", follow_up_stage="FU1",
            message_template="Salam {name} dari {Bandar} 🌙", name="Raya promo",
        )
        blast_id = blast.id
    with transaction(engine) as s:
        saved = s.get(Blast, blast_id)
        assert saved is not None
        assert (saved.state, saved.blast_tag, saved.follow_up_stage, saved.name) == (
            BlastState.DRAFT, "raya-2025", "FU1", "Raya promo",
        )
        assert saved.source_filename == "march.csv"
        assert saved.message_template == "Salam {name} dari {Bandar} 🌙"
        assert saved.total_recipients == 6
        assert saved.skipped_opted_out == 1
    recipients = stored(engine, blast_id)
    assert [(r.csv_line, r.phone_number, r.status) for r in recipients] == [
        (2, "+60123456789", "QUEUED"), (3, "+60134567890", "QUEUED"),
        (5, "+601123456789", "QUEUED"), (7, "+60323456789", "QUEUED"),
        (8, "+6591234567", "QUEUED"), (11, "+60145678901", "QUEUED"),
    ]
    second = recipients[1]
    assert second.contact_name == "陈伟明"
    assert second.variables == {
        "nama": "陈伟明", "no_telefon": "+60 13-456 7890", "bandar": "Shah Alam",
        "alamat": "Lot 7\nKampung Baru", "name": "陈伟明", "phone": "+60134567890",
    }
    assert all(r.message_id is None and r.attempts == 0 for r in recipients)
    assert all(r.created_at.tzinfo is not None for r in recipients)


def test_importing_again_adds_nothing_twice(engine: Engine, tmp_path: Path) -> None:
    first = parse(write_file(tmp_path / "a.csv", contact_rows("Siti")))
    more = parse(write_file(tmp_path / "b.csv", [
        ["Name", "Phone"], ["Ali", "012-345 6789"], ["New", "017-222 3333"],
        ["New again", "+60 17-222 3333"],
    ]))
    with transaction(engine) as s:
        blast = create_draft_blast_from_import(s, report=first, tag="t")
        blast_id = blast.id
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        assert blast is not None
        assert add_recipients(s, blast=blast, report=first) == 0
        assert blast.total_recipients == 7
        assert add_recipients(s, blast=blast, report=more) == 1
        assert blast.total_recipients == 8
    recipients = stored(engine, blast_id)
    assert len(recipients) == 8
    assert len({r.phone_number for r in recipients}) == 8
    assert recipients[-1].phone_number == "+60172223333"
    assert recipients[-1].contact_name == "New"


def test_numbers_opted_out_after_the_preview_are_still_skipped(
    engine: Engine, tmp_path: Path
) -> None:
    report = parse(write_file(tmp_path / "c.csv", contact_rows("Siti")))  # no database
    add_opt_outs(engine, "+60123456789", "+60145678901")
    with transaction(engine) as s:
        blast = create_draft_blast_from_import(s, report=report, tag="t")
        assert (blast.total_recipients, blast.skipped_opted_out) == (5, 2)
        blast_id = blast.id
    phones_stored = {r.phone_number for r in stored(engine, blast_id)}
    assert "+60123456789" not in phones_stored
    assert "+60145678901" not in phones_stored


def test_an_unknown_placeholder_stops_the_draft(engine: Engine, tmp_path: Path) -> None:
    report = parse(write_file(tmp_path / "c.csv", contact_rows("Siti")))
    with pytest.raises(TemplateError, match=r"\{nmae\} is not a column in the file"), \
            transaction(engine) as s:
        create_draft_blast_from_import(s, report=report, tag="t", message_template="Hi {nmae}")
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(Blast)) == 0


def test_data_functions_leave_the_commit_to_the_caller(engine: Engine, tmp_path: Path) -> None:
    report = parse(write_file(tmp_path / "c.csv", contact_rows("Siti")))
    with Session(engine) as s:
        create_draft_blast_from_import(s, report=report, tag="t")
        s.rollback()
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(Blast)) == 0
        assert s.scalar(select(func.count()).select_from(BlastRecipient)) == 0


def test_a_long_list_is_stored_in_chunks(engine: Engine, tmp_path: Path) -> None:
    rows: list[list[str] | None] = [["Name", "Phone", "Bandar"]]
    rows += [[f"Customer {n}", f"+60 12-{n:07d}", "KL"] for n in range(1, 12_001)]
    rows += [["Again", "+60 12-0000001", "KL"], ["Name " + "x" * 300, "012-000 0002", ""]]
    report = parse(write_file(tmp_path / "big.csv", rows))
    assert report.counts["valid"] == 12_000
    assert report.counts["duplicate"] == 2
    with transaction(engine) as s:
        blast = create_draft_blast_from_import(s, report=report, tag="big")
        assert blast.total_recipients == 12_000
        blast_id = blast.id
    with transaction(engine) as s:
        count = select(func.count()).select_from(BlastRecipient).where(
            BlastRecipient.blast_id == blast_id)
        assert s.scalar(count) == 12_000
        last = s.scalars(select(BlastRecipient).where(
            BlastRecipient.blast_id == blast_id, BlastRecipient.csv_line == 12_001)).one()
        assert (last.phone_number, last.contact_name) == ("+60120012000", "Customer 12000")


@pytest.mark.parametrize(("field", "said"), [
    ("tag", "The campaign tag is 256 characters long; it can be at most 255."),
    ("follow_up_stage", "The follow-up stage is 101 characters long; it can be at most 100."),
    ("name", "The blast name is 256 characters long; it can be at most 255."),
])
def test_a_name_tag_or_stage_too_long_to_keep_is_refused_in_words(
    engine: Engine, field: str, said: str
) -> None:
    """PostgreSQL refused the row (said as the database not answering); SQLite kept it whole."""
    report = parse_csv(b"Name,Phone\r\nAli,0123456789\r\n", filename="x" * 300 + ".csv")
    fits = {"tag": "t" * 255, "follow_up_stage": "s" * 100, "name": "n" * 255}
    with transaction(engine) as s:
        blast = create_draft_blast_from_import(s, report=report, **fits)
        assert (blast.blast_tag, blast.follow_up_stage, blast.name) == ("t" * 255, "s" * 100, "n" * 255)
        unnamed = create_draft_blast_from_import(s, report=report, tag="t")
    assert unnamed.source_filename == ("x" * 300)[:255] and unnamed.name == unnamed.source_filename
    too_long = {**fits, field: fits[field] + "!"}
    with pytest.raises(BadInput) as refused, transaction(engine) as s:
        create_draft_blast_from_import(s, report=report, **too_long)
    assert refused.value.message == said


def test_a_note_in_an_unheaded_cell_is_kept_with_a_warning() -> None:
    report = parse_csv(b"Name,Phone\r\nAli,0123456789,called 1/3\r\nSiti,0134567890\r\n")
    assert [(r.line, r.outcome, r.phone, r.reason) for r in report.rows] == [
        (2, Outcome.WARNING, "+60123456789",
         "this row has 3 cells but the header has 2; “called 1/3”, beyond the last column, was left out"),
        (3, Outcome.VALID, "+60134567890", None),
    ]


def test_a_row_split_by_a_comma_inside_a_cell_is_not_taken_for_a_note() -> None:
    """"Tan, Ah Kow" and "12 Jalan Bunga, Taman Melati" typed without quotes: the text after the
    comma starts with a space, which a spreadsheet's own commas never leave. Used, the row would
    put " Ah Kow" into {outlet}."""
    report = parse_csv(b"Phone,Name,Outlet\r\n0123456789,Tan, Ah Kow,Penang\r\n"
                       b"0134567890,Siti,12 Jalan Bunga, Taman Melati\r\n0145678901,Ali,KL\r\n")
    split = ("this row has 4 cells but the header has 3; a comma or semicolon inside a name or address "
             "needs quotes around that cell")
    assert [(r.line, r.outcome, r.reason) for r in report.rows] == [
        (2, Outcome.INVALID, split), (3, Outcome.INVALID, split), (4, Outcome.VALID, None)]


def test_a_row_whose_cells_a_comma_moved_says_so() -> None:
    report = parse_csv(b"Name,Phone,Email\r\nLim, Mr,0171234567\r\nAli,0123456789,a@x.com,0134567890\r\n")
    assert [(r.line, r.outcome, r.reason) for r in report.rows] == [
        (2, Outcome.INVALID, "the cells of this row have moved: a comma or semicolon inside a name or "
                             "address split it, so “Mr” is under “Phone” and the number under “Email”; "
                             "put quotes around that cell"),
        (3, Outcome.INVALID, "this row has 4 cells but the header has 3; a comma or semicolon inside a name "
                             "or address needs quotes around that cell"),  # a number beyond the header
    ]
    office = parse_csv(b"Name,HP,Office Tel\r\nAli,none,0323456789\r\nSiti,0134567890,\r\n").rows[0]
    assert office.reason == "not a phone number", "a number in another phone column is not a moved cell"


def test_a_tag_typed_joins_the_campaign_spelled_so_or_is_told_of_one_it_looks_like(engine: Engine) -> None:
    """ "Year-End Sale" beside "Year End Sale" had started a campaign of its own, unsaid."""
    from core.csv_import.storage import TagInUse, tag_in_use

    with transaction(engine) as s:
        for tag in ("Year End Sale", "Year End Sale", "year end  sale", "CNY 2026", "Raya", "Nov Week 1"):
            make_blast(s, blast_tag=tag)
        assert tag_in_use(s, "  year END sale ") == TagInUse(same="Year End Sale", blasts=3)
        assert tag_in_use(s, "Year-End Sale") == TagInUse(like="Year End Sale")
        assert tag_in_use(s, "CNY2026") == TagInUse(like="CNY 2026")
        # Another year, another week: another campaign, told by its number, not a variant.
        assert tag_in_use(s, "CNY 2027") == TagInUse()
        assert tag_in_use(s, "Nov Week 2") == TagInUse()
        assert tag_in_use(s, "Merdeka") == TagInUse()
        assert tag_in_use(s, "   ") == TagInUse()


def test_a_few_stray_nul_characters_are_taken_out_and_their_lines_named() -> None:
    """One NUL in a cell (a program that padded it) had refused the whole list as "not text"."""
    report = parse_csv(b"name,phone\r\nA\x00li,0123456789\r\nBala,01345\x0067890\r\nChong,0198765432\r\n")
    assert [(r.line, r.outcome, r.name, r.phone) for r in report.rows] == [
        (2, Outcome.VALID, "Ali", "+60123456789"), (3, Outcome.VALID, "Bala", "+60134567890"),
        (4, Outcome.VALID, "Chong", "+60198765432")]
    assert "An invisible character (NUL) on lines 2 and 3 of the file was taken out; check those rows." in (
        report.notes)
    with pytest.raises(BadCsv, match="This file is not text"):  # many of them: not a list
        parse_csv(b"name,phone\r\n" + b"A\x00l\x00i\x00,0123456789\r\n" * 50)
