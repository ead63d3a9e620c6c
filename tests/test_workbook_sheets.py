"""Which sheet of a workbook is read, and rows hidden in Excel: left out, each named, never sent."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import openpyxl
import pytest
from streamlit.testing.v1 import AppTest

from core.cli import main
from core.config import get_settings
from core.csv_import import BadCsv, ColumnNotFound, Outcome, parse_csv, workbook
from tests.test_cli_import import blasts
from tests.test_excel_import import Cells, parse_xlsx, xlsx
from tests.test_pages import app_db, page  # noqa: F401  (app_db: the fixture used below)

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILTERED_OUT = "hidden in Excel by a filter, so left out"

SUMMARY = ("Summary", [["Raya blast"], ["Total", 3]])
CONTACTS = ("Contacts", [["Nama", "HP"], ["Aisyah", 123456789], ["Wei Ling", 1123456789]])
OLD_LIST = ("Old list", [["Nama", "HP", "HP 2"], ["Ali", "0134567890", "0145678901"]])


def filtered(rows: Sequence[Cells], hidden: Sequence[int], *, with_filter: bool = True) -> bytes:
    """A one-sheet workbook with the rows numbered `hidden` hidden, by a filter or by hand."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    for row in rows:
        sheet.append(list(row or ()))
    if with_filter:
        sheet.auto_filter.ref = sheet.dimensions
    for number in hidden:
        sheet.row_dimensions[number].hidden = True
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rewritten(data: bytes, change: Callable[[str], str]) -> bytes:
    """The workbook with its first sheet's XML changed, as another program might write it."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = change(content.decode()).encode()
            target.writestr(item, content)
    return out.getvalue()


def by_state(state: str) -> list[Cells]:
    return [["Name", "Phone", "State"], ["Ali", "0123456789", "Selangor"],
            ["Siti", "0198765432", "Johor"], ["Abu", "0171234567", "Selangor"],
            ["Mei", "0131234567", "Johor"]]


# --- rows hidden in Excel ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        lambda xml: xml,
        lambda xml: re.sub(r'(<row[^>]*?) r="\d+"', r"\1", xml),  # rows without their numbers
        lambda xml: xml.replace('hidden="1"', 'hidden="true"'),
    ],
    ids=["as-excel-writes-it", "rows-without-numbers", "hidden-true"],
)
def test_rows_hidden_by_a_filter_are_left_out_and_named(change: Callable[[str], str]) -> None:
    report = parse_xlsx(rewritten(filtered(by_state("Selangor"), hidden=[3, 5]), change))
    assert [(r.line, r.outcome, r.name, r.reason) for r in report.rows] == [
        (2, Outcome.VALID, "Ali", None),
        (3, Outcome.HIDDEN, "Siti", FILTERED_OUT),
        (4, Outcome.VALID, "Abu", None),
        (5, Outcome.HIDDEN, "Mei", FILTERED_OUT),
    ]
    assert [r.name for r in report.recipients] == ["Ali", "Abu"]
    assert report.notes == [
        "2 rows hidden in Excel (by a filter) were left out: lines 3, 5. To send to them too, "
        "clear the filter in Excel and upload the file again."
    ]


def test_a_row_hidden_by_hand_is_left_out_and_its_number_is_no_ones_duplicate() -> None:
    rows: list[Cells] = [["Name", "Phone"], ["Ali", "0123456789"], ["Abu", "0123456789"], None]
    report = parse_xlsx(filtered(rows, hidden=[2, 4], with_filter=False))  # row 4: empty
    assert [(r.line, r.outcome, r.reason) for r in report.rows] == [
        (2, Outcome.HIDDEN, "hidden in Excel, so left out"),
        (3, Outcome.VALID, None),
    ]
    assert report.notes == ["1 row hidden in Excel was left out: line 2. To send to them too, "
                            "unhide them in Excel and upload the file again."]


def test_many_hidden_rows_are_counted_after_the_first_twenty() -> None:
    rows: list[Cells] = [["Name", "Phone"], *[[f"Name {n}", 60120000000 + n] for n in range(30)]]
    report = parse_xlsx(filtered(rows, hidden=range(2, 32)))
    assert report.notes[-1].startswith(
        "30 rows hidden in Excel (by a filter) were left out: lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, "
        "12, 13, 14, 15, 16, 17, 18, 19, 20, 21 and 10 more. "
    )
    assert report.recipients == [], "with everyone hidden, no one is sent to"
    assert report.counts["hidden"] == 30


# --- which sheet ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sheets", "read", "why"),
    [
        ([SUMMARY, CONTACTS], "Contacts", "the first sheet with phone numbers"),
        ([("Calls", [["Phone calls", "Day"], [12, "Monday"]]), CONTACTS], "Contacts",
         "the first sheet with phone numbers"),
        ([SUMMARY, ("Numbers", [[123456789], [1123456789]])], "Numbers",
         "the first sheet with phone numbers"),  # a bare column of numbers, no header
        ([SUMMARY, ("New", [["Nama", "Telefon"], ["Ali", "soon"]]), CONTACTS], "Contacts",
         "the first sheet with phone numbers"),
        ([SUMMARY, ("New", [["Nama", "Telefon"], ["Ali", "soon"]])], "New",
         "the first sheet with a phone column"),
        ([CONTACTS, OLD_LIST], "Contacts", "the first sheet with phone numbers"),
        ([SUMMARY, ("Late", [*[None] * 60, ["Nama", "HP"], ["Ali", 123456789]])], "Late",
         "the first sheet with phone numbers"),
    ],
    ids=["summary-first", "phone-word-in-a-summary", "no-header", "no-number-yet-then-contacts",
         "a-phone-column-only", "first-of-two-lists", "contacts-far-down"],
)
def test_the_first_sheet_with_contacts_is_read_and_named(
    sheets: list[tuple[str, list[Cells]]], read: str, why: str
) -> None:
    report = parse_xlsx(xlsx(*sheets))
    assert report.sheet == read
    others = ", ".join(f"“{name}”" for name, _ in sheets if name != read)
    assert report.notes[0] == (f"The workbook has {len(sheets)} sheets; the contacts were read from "
                               f"“{read}”, {why}. Sheets not read: {others}.")


def test_with_no_phone_column_anywhere_the_first_sheet_with_data_is_read() -> None:
    data = xlsx(("Blank", []), SUMMARY, ("Notes", [["Remember"]]))
    with pytest.raises(ColumnNotFound) as caught:
        parse_xlsx(data)
    assert caught.value.headers == ("Total", "3")
    assert workbook.contents(data, max_unpacked_bytes=10**8) == workbook.Contents(
        sheets=("Summary", "Notes"), hidden=frozenset(), first_choice="Summary")


def test_a_chosen_sheet_is_read_and_said_to_be_chosen() -> None:
    data = xlsx(SUMMARY, CONTACTS, OLD_LIST, ("Lookup", [["Phone"], [60199999999]]), hidden=["Lookup"])
    assert workbook.contents(data, max_unpacked_bytes=10**8) == workbook.Contents(
        sheets=("Summary", "Contacts", "Old list", "Lookup"), hidden=frozenset({"Lookup"}),
        first_choice="Contacts")
    report = parse_xlsx(data, phone_column="HP 2", sheet="Old list")
    assert (report.sheet, [r.phone for r in report.recipients]) == ("Old list", ["+60145678901"])
    assert report.notes[0] == ("The workbook has 4 sheets; the contacts were read from “Old list”, "
                               "as chosen. Sheets not read: “Summary”, “Contacts”, “Lookup” (hidden).")
    assert parse_xlsx(data).sheet == "Contacts", "unchosen: the first with contacts"
    with pytest.raises(BadCsv) as caught:
        parse_xlsx(data, sheet="Old List ")
    assert caught.value.message == ("The workbook has no sheet called “Old List ”. Its sheets are: "
                                    "“Summary”, “Contacts”, “Old list”, “Lookup”.")


def test_a_csv_has_no_sheets_to_choose_from() -> None:
    data = b"Name,Phone\r\nAli,0123456789\r\n"
    assert parse_csv(data, sheet="Contacts").sheet is None


# --- the command line -----------------------------------------------------------------------


def test_a_sheet_chosen_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In this process: one subprocess per test is slow, and the command is the same function.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    path = tmp_path / "raya.xlsx"
    path.write_bytes(xlsx(("Contacts", [["Nama", "HP"], ["Siti", 123456789]]),
                          ("Old list", [["Nama", "HP"], ["Ali", 134567890], ["Abu", 145678901]])))
    try:
        assert main(["import-csv", str(path), "--tag", "t", "--sheet", "Old list", "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["sheet"], out["recipients"]) == ("Old list", 2)
        assert main(["import-csv", str(path), "--tag", "t", "--sheet", "Old List"]) == 2
        assert capsys.readouterr().err.startswith("error: The workbook has no sheet called “Old List”.")
        assert len(blasts(tmp_path)) == 1
    finally:
        get_settings.cache_clear()


# --- the New blast page --------------------------------------------------------------------


def upload(name: str, data: bytes) -> AppTest:
    at = page("pages/new_blast.py")
    at.run()
    at.file_uploader(key="upload").set_value((name, data, XLSX_MIME))
    at.run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


@pytest.mark.usefixtures("app_db")
def test_the_page_reads_the_sheet_with_contacts_and_another_can_be_chosen() -> None:
    at = upload("raya.xlsx", xlsx(SUMMARY, CONTACTS, OLD_LIST))
    assert not at.error, [e.value for e in at.error]
    assert {m.label: m.value for m in at.metric} == {"Ready to send": "2"}
    assert "read from the sheet **Contacts** of the Excel workbook" in captions(at)
    assert "Sheets not read: “Summary”, “Old list”." in captions(at)
    picker = at.selectbox(key="sheet_pick")
    assert (picker.options, picker.value) == (["Summary", "Contacts", "Old list"], "Contacts")

    picker.set_value("Old list").run()
    assert "read from the sheet **Old list**" in captions(at)
    at.selectbox(key="col_phone").set_value("HP 2")
    at.button(key="col_apply").click().run()
    assert not at.exception, at.exception
    assert "Numbers from column **HP 2**" in captions(at), "a column chosen on the chosen sheet"
    assert "read from the sheet **Old list**" in captions(at), "the sheet stays chosen"

    at.selectbox(key="sheet_pick").set_value("Summary").run()
    assert at.error and "No phone number column found" in at.error[0].value
    assert at.selectbox(key="col_phone").options == ["Total", "3"]
    at.selectbox(key="sheet_pick").set_value("Contacts").run()
    assert not at.error, [e.value for e in at.error]
    assert "Numbers from column **HP**" in captions(at)


@pytest.mark.usefixtures("app_db")
def test_the_page_names_the_rows_hidden_in_excel() -> None:
    at = upload("filtered.xlsx", filtered(by_state("Selangor"), hidden=[3, 5]))
    assert {m.label: m.value for m in at.metric} == {"Ready to send": "2", "Hidden in Excel": "2"}
    assert "2 rows hidden in Excel (by a filter) were left out: lines 3, 5." in captions(at)
    table = at.dataframe[0].value
    assert table[["Line", "Name", "Why"]].values.tolist() == [[3, "Siti", FILTERED_OUT],
                                                           [5, "Mei", FILTERED_OUT]]
    assert not [s for s in at.selectbox if s.key == "sheet_pick"], "one sheet: nothing to choose"
