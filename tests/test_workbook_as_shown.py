"""A workbook read as Excel shows it: hidden columns left out (unless they hold the only numbers
or names), merged cells filled, formulas without a saved result and error cells named on their
row, and the sheet with the contacts found however far down its header is."""

from __future__ import annotations

import io
from collections.abc import Callable

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from core.csv_import import ColumnNotFound, Outcome
from core.csv_import.columns import HEADER_SEARCH_RECORDS
from tests.test_excel_import import Cells, parse_xlsx, xlsx
from tests.test_workbook_sheets import rewritten

UNSAVED = "is a formula whose result was not saved in the file: open it in Excel and save it"


def workbook(rows: list[Cells], shape: Callable[[Worksheet], None]) -> bytes:
    """A one-sheet workbook of `rows`, then `shape`d: columns hidden, cells merged, typed."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Contacts"
    for row in rows:
        sheet.append(list(row or ()))
    shape(sheet)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def hide(*letters: str) -> Callable[[Worksheet], None]:
    def shape(sheet: Worksheet) -> None:
        for letter in letters:
            sheet.column_dimensions[letter].hidden = True
    return shape


def merge(*ranges: str) -> Callable[[Worksheet], None]:
    def shape(sheet: Worksheet) -> None:
        for cells in ranges:
            sheet.merge_cells(cells)
    return shape


def errors_in(*refs: str) -> Callable[[Worksheet], None]:
    def shape(sheet: Worksheet) -> None:
        for ref in refs:
            sheet[ref].data_type = "e"
    return shape


# --- hidden columns ------------------------------------------------------------------------------


def test_a_hidden_column_of_old_numbers_is_left_out_and_named() -> None:
    rows: list[Cells] = [["Name", "HP", "Phone"], ["Ali", "0111234567", "0123456789"],
                         ["Siti", "0198887777", "0134567890"]]
    report = parse_xlsx(workbook(rows, hide("B")))
    assert report.phone_column == "Phone"
    assert report.columns.headers == ("Name", "Phone")
    assert [row.phone for row in report.rows] == ["+60123456789", "+60134567890"]
    assert ("Column B (“HP”) is hidden in Excel, so it was left out. To use it, unhide it in Excel "
            "and upload the file again.") in report.notes


@pytest.mark.parametrize(("rows", "hidden", "what"), [
    ([["Name", "Phone"], ["Ali", "0123456789"]], "B", "phone numbers"),
    ([["Name", "Phone"], ["Ali", "0123456789"]], "A", "names"),
])
def test_a_hidden_column_with_the_only_numbers_or_names_is_read_all_the_same(
    rows: list[Cells], hidden: str, what: str
) -> None:
    report = parse_xlsx(workbook(rows, hide(hidden)))
    assert (report.rows[0].outcome, report.rows[0].name) == (Outcome.VALID, "Ali")
    assert any(note.startswith(f"Column {hidden} (“{rows[0][ord(hidden) - 65]}”) is hidden in Excel but "
                               f"was read all the same: no other column holds the {what}")
               for note in report.notes)


def test_a_hidden_mobile_column_is_read_rather_than_the_office_line_shown() -> None:
    """Hidden to make room on the screen: leaving it out would message the office lines."""
    rows: list[Cells] = [["Nama", "No. HP", "Tel. Pejabat", "Outlet"],
                         ["Ali", "012-3456789", "03-2345 6789", "KL"],
                         ["Siti", "013-4567890", "03-8765 4321", "PJ"]]
    report = parse_xlsx(workbook(rows, hide("B")))
    assert report.phone_column == "No. HP"
    assert [(row.outcome, row.phone) for row in report.rows] == [
        (Outcome.VALID, "+60123456789"), (Outcome.VALID, "+60134567890")]
    kept = ("Column B (“No. HP”) is hidden in Excel but was read all the same: it holds the mobile "
            "numbers, where the columns shown hold office or home lines WhatsApp does not reach.")
    assert kept in report.notes


def test_an_empty_hidden_column_is_not_mentioned() -> None:
    rows: list[Cells] = [["Name", "Phone"], ["Ali", "0123456789"]]
    report = parse_xlsx(workbook(rows, hide("C", "D")))
    assert report.notes == []


# --- merged cells ----------------------------------------------------------------------------


def test_a_two_level_header_keeps_its_name_column() -> None:
    rows: list[Cells] = [["Name", "Contact No.", None, "Email"], [None, "Mobile", "Office"],
                         ["Ali", "012-3456789", "03-23456789", "a@x.com"],
                         ["Siti", "013-4567890", "03-23456780", "s@x.com"]]
    report = parse_xlsx(workbook(rows, merge("A1:A2", "B1:C1", "D1:D2")))
    assert (report.phone_column, report.name_column) == ("Mobile", "Name")
    assert [(row.line, row.name) for row in report.rows] == [(3, "Ali"), (4, "Siti")]
    assert report.recipients[0].variables["email"] == "a@x.com"


def test_a_name_merged_over_two_rows_names_both() -> None:
    rows: list[Cells] = [["Senarai Pelanggan"], None, ["Name", "Phone", "Branch"],
                         ["Ali", "0123456789", "KL"], [None, "0134567890"], ["Siti", "0198765432", "PJ"]]
    report = parse_xlsx(workbook(rows, merge("A1:C1", "A4:A5", "C4:C5")))
    assert [(row.line, row.name, row.variables["branch"]) for row in report.rows] == [
        (4, "Ali", "KL"), (5, "Ali", "KL"), (6, "Siti", "PJ")]


def test_a_title_merged_across_the_sheet_stays_a_title() -> None:
    rows: list[Cells] = [["Senarai telefon pelanggan"], ["Name", "Phone", "Branch"], ["Ali", "12", "KL"]]
    report = parse_xlsx(workbook(rows, merge("A1:C1")))
    assert report.columns.header_index == 1
    assert [(row.line, row.outcome) for row in report.rows] == [(3, Outcome.INVALID)]


# --- formulas and errors -----------------------------------------------------------------------


def test_a_formula_without_a_saved_result_says_so_on_its_row() -> None:
    rows: list[Cells] = [["Name", "Phone"], ["Ali", "0123456789"], ["Siti", '=CONCATENATE("0","134567890")'],
                         ["Tan", '="0198765432"']]
    report = parse_xlsx(workbook(rows, lambda sheet: None))
    assert [(row.line, row.outcome) for row in report.rows] == [
        (2, Outcome.VALID), (3, Outcome.INVALID), (4, Outcome.INVALID)]
    assert report.rows[1].reason == f"no phone number; cell B3 {UNSAVED}"
    assert report.rows[2].reason == f"no phone number; cell B4 {UNSAVED}"
    assert any(note.startswith("Formulas on lines 3, 4 have no result saved") for note in report.notes)


@pytest.mark.parametrize("below", [[["Tan", "0198765432"]], []], ids=["mid-sheet", "last row"])
def test_a_row_of_only_formulas_without_saved_results_says_why_instead_of_blank(below: list[Cells]) -> None:
    rows: list[Cells] = [["Name", "Phone"], ["Ali", "0123456789"], ['="Siti"', '="0134567890"'], *below]
    report = parse_xlsx(workbook(rows, lambda sheet: None))
    assert [(row.line, row.outcome) for row in report.rows][:2] == [(2, Outcome.VALID), (3, Outcome.INVALID)]
    assert report.rows[1].reason == ("no phone number; cell A3 and B3 are formulas whose result was not "
                                     "saved in the file: open it in Excel and save it")


def test_a_hidden_row_of_only_formulas_is_left_out_and_says_why() -> None:
    def hide_row_3(sheet: Worksheet) -> None:
        sheet.row_dimensions[3].hidden = True
    rows: list[Cells] = [["Name", "Phone"], ["Ali", "0123456789"], ['="Siti"', '="0134567890"'],
                         ["Tan", "0198765432"]]
    report = parse_xlsx(workbook(rows, hide_row_3))
    assert (report.rows[1].outcome, report.rows[1].reason) == (
        Outcome.HIDDEN, "hidden in Excel, so left out; cell A3 and B3 are formulas whose result was not "
        "saved in the file: open it in Excel and save it")
    assert any(note.startswith("1 row hidden in Excel was left out: line 3.") for note in report.notes)


def test_a_formula_in_another_column_is_a_warning_on_a_usable_row() -> None:
    rows: list[Cells] = [["Name", "Phone", "Greeting"], ["Ali", "0123456789", '="Hi "&A2']]
    (row,) = parse_xlsx(workbook(rows, lambda sheet: None)).rows
    assert (row.outcome, row.phone, row.reason) == (Outcome.WARNING, "+60123456789", f"cell C2 {UNSAVED}")


def test_the_sheet_whose_numbers_are_unsaved_formulas_is_the_one_read() -> None:
    book = openpyxl.Workbook()
    contacts = book.active
    contacts.title = "Contacts"
    for row in (["Name", "Phone"], ["Ali", "=Data!A1"], ["Siti", "=Data!A2"]):
        contacts.append(row)
    data = book.create_sheet("Data")
    data.append(["0123456789"])
    data.append(["0134567890"])
    out = io.BytesIO()
    book.save(out)
    report = parse_xlsx(out.getvalue())
    assert report.sheet == "Contacts"
    assert [row.reason for row in report.rows] == [f"no phone number; cell B2 {UNSAVED}",
                                                   f"no phone number; cell B3 {UNSAVED}"]


def test_an_error_cell_says_which_error() -> None:
    rows: list[Cells] = [["Name", "Phone"], ["Ali", "0123456789"], ["Siti", "#N/A"], ["Tan", "#REF!"]]
    report = parse_xlsx(workbook(rows, errors_in("B3", "B4")))
    assert [row.reason for row in report.rows] == [
        None, "no phone number; cell B3 shows the Excel error #N/A",
        "no phone number; cell B4 shows the Excel error #REF!"]
    assert "Cells on lines 3, 4 show an Excel error (#N/A, #REF!) and read as empty." in report.notes


@pytest.mark.parametrize(("phones", "shape", "why"), [
    (['="0"&B2', '=CONCATENATE("0",B3)'], lambda sheet: None,
     "Formulas on lines 2, 3 have no result saved in the file (it was made by a program rather than "
     "saved by Excel), so they read as empty. Open the file in Excel, save it and upload it again."),
    (["#N/A", "#REF!"], errors_in("C2", "C3"),
     "Cells on lines 2, 3 show an Excel error (#N/A, #REF!) and read as empty."),
], ids=["unsaved formulas", "error cells"])
def test_no_phone_column_found_says_which_cells_read_as_empty(
    phones: list[str], shape: Callable[[Worksheet], None], why: str
) -> None:
    rows: list[Cells] = [["Name", "Raw", "Phone"], ["Ali", 123456789, phones[0]],
                         ["Siti", 134567890, phones[1]]]
    with pytest.raises(ColumnNotFound) as caught:
        parse_xlsx(workbook(rows, shape))
    assert caught.value.message.startswith("No phone number column found.")
    assert caught.value.message.endswith(f"or choose the column yourself. {why}")
    assert caught.value.headers == ("Name", "Raw", "Phone")


@pytest.mark.parametrize(("cell", "phone", "reason"), [
    ('<c r="B2" t="str"><f>"0"&amp;"123456789"</f><v>0123456789</v></c>', "+60123456789", None),
    ('<c r="B2"><f>123456789</f><v>123456789</v></c>', "+60123456789", None),
    ('<c r="B2" t="str"><f>IF(TRUE,"","x")</f><v></v></c>', None, "no phone number"),  # "" saved
])
def test_a_formula_whose_result_excel_saved_reads_as_that_result(
    cell: str, phone: str | None, reason: str | None
) -> None:
    data = xlsx(("Contacts", [["Name", "Phone"], ["Ali", "x"]]))
    typed = '<c r="B2" t="inlineStr"><is><t>x</t></is></c>'
    excel_saved = rewritten(data, lambda xml: xml.replace(typed, cell))
    assert excel_saved != data
    (row,) = parse_xlsx(excel_saved).rows
    assert (row.phone, row.reason) == (phone, reason)


# --- which sheet: as far down as the header is searched --------------------------------------


@pytest.mark.parametrize("blank_between", [False, True])
@pytest.mark.parametrize("titles", [55, HEADER_SEARCH_RECORDS - 1])
def test_a_sheet_with_its_header_far_down_is_found_after_a_summary(titles: int, blank_between: bool) -> None:
    top: list[Cells] = []
    for i in range(titles):
        top += [[f"Filter line {i}"]] + ([None] if blank_between else [])
    data = xlsx(("Summary", [["Month", "Sent"], ["Jan", 100]]),
                ("Contacts", [*top, ["Name", "Phone"], ["Ali", "0123456789"], ["Siti", "0134567890"]]))
    report = parse_xlsx(data)
    assert report.sheet == "Contacts"
    assert [row.phone for row in report.recipients] == ["+60123456789", "+60134567890"]
