"""Files damaged in the ways contact lists get damaged: a stray quote mark, names in GBK, one row
pasted from a file in another encoding. Every contact is kept once or reported with its line."""

from __future__ import annotations

import pytest

from core.csv_import import BadCsv, ImportReport, Outcome, RowResult, parse_csv


def contacts_text(rows: list[str], *, encoding: str = "utf-8") -> bytes:
    """A file as Excel on Windows writes it, one row a line."""
    return ("\r\n".join(rows) + "\r\n").encode(encoding)


def local(n: int) -> str:
    return f"01{2 + n % 3}-345 {1000 + n}"


def e164(n: int) -> str:
    return f"+601{2 + n % 3}345{1000 + n}"


def ten_contacts() -> list[str]:
    """The header on line 1, then contact Pn on line n + 1."""
    return ["Name,Phone"] + [f"P{n},{local(n)}" for n in range(1, 11)]


def by_line(report: ImportReport) -> dict[int, RowResult]:
    return {row.line: row for row in report.rows}


# --- a stray quote mark ------------------------------------------------------------------------


def test_a_stray_opening_quote_does_not_join_the_contacts_below_it() -> None:
    rows = ten_contacts()
    rows[4] = f'"Ali (VIP,{local(4)}'  # line 5: opens a cell that is not closed on its line
    rows[9] = f'Siti 5" tall,{local(9)}'  # line 10: the quote that closed it
    report = parse_csv(contacts_text(rows))
    got = by_line(report)
    assert sorted(got) == list(range(2, 12))  # each line of the file once
    assert [row.phone for row in report.recipients] == [e164(n) for n in range(1, 11)]
    assert (got[5].outcome, got[5].phone, got[5].name) == (Outcome.WARNING, e164(4), "Ali (VIP")
    assert "line 5" in (got[5].reason or "")
    assert (got[6].outcome, got[6].name) == (Outcome.VALID, "P5")
    assert (got[10].outcome, got[10].name) == (Outcome.VALID, 'Siti 5" tall')
    assert any("line 5" in note and "5–10" in note for note in report.notes)


@pytest.mark.parametrize(("opened", "closed"), [(2, 3), (2, 11), (6, 8), (10, 11)])
def test_every_contact_survives_a_stray_quote_wherever_it_is(opened: int, closed: int) -> None:
    rows = ten_contacts()
    rows[opened - 1] = '"' + rows[opened - 1]
    name, phone = rows[closed - 1].split(",")
    rows[closed - 1] = f'{name}",{phone}'
    report = parse_csv(contacts_text(rows))
    assert [row.line for row in report.rows] == list(range(2, 12))
    assert [row.phone for row in report.recipients] == [e164(n) for n in range(1, 11)]
    names = [f"P{n}" for n in range(1, 11)]
    names[closed - 2] += '"'
    assert [row.name for row in report.recipients] == names


def test_joined_lines_that_cannot_be_told_apart_are_invalid_with_their_lines() -> None:
    report = parse_csv(contacts_text([
        "Name,Phone,City",
        "Abu,0123451001,KL",
        '"Ali,0123451002,KL',  # line 3: the stray quote
        "Mei,0123451003",  # a short row: the joined lines do not read back alike
        'Siti",0123451004,Ipoh',  # line 5: closes the quote
        "Tan,0123451005,Ipoh",
    ]))
    got = by_line(report)
    assert sorted(got) == [2, 3, 4], "spreadsheet rows: Excel shows the joined lines as one row"
    assert got[3].outcome is Outcome.INVALID
    assert got[3].reason == ('a quote mark (") at the start of a cell joined lines 3–5 of the file '
                             "into one row; check the quote marks on line 3")
    assert [row.phone for row in report.recipients] == ["+60123451001", "+60123451005"]


def test_a_line_break_inside_a_name_or_address_is_kept() -> None:
    report = parse_csv(contacts_text([
        "Name,Phone,Address",
        '"Tan\r\nAh Kow",0123451001,"No 5, Jalan Ampang\r\nTaman U, 50450 KL"',  # lines 2-4
        "Mei,0123451002,",  # line 5
        'Abu,0123451003,"Tel office:\r\nask for Ali, after 5pm"',  # lines 6-7
        "Siti,0123451001,",  # line 8: the number of line 2 again
    ]))
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [
        (2, Outcome.VALID, "Tan\r\nAh Kow"), (3, Outcome.VALID, "Mei"),
        (4, Outcome.VALID, "Abu"), (5, Outcome.DUPLICATE, "Siti"),
    ]
    assert report.rows[3].reason == "same number as line 2"
    assert report.rows[0].variables["address"] == "No 5, Jalan Ampang\r\nTaman U, 50450 KL"


def test_rows_are_numbered_as_a_spreadsheet_shows_them() -> None:
    # Excel keeps a cell's line breaks on its row: the report's lines are its row numbers.
    data = b'Name,Phone,Note\na,0123451001,"x\n\ny"\nb,0123451002,"p\rq"\nc,0123451003,z\n'
    assert [row.line for row in parse_csv(data).rows] == [2, 3, 4]


def test_an_unclosed_quote_names_its_line_of_the_file() -> None:
    data = (b'Name,Phone,Note\nAli,0123456789,"a\nb\nc"\nSiti,0198765432,x\n'
            b'Abu,"0171234567,y\nMei,0131234567,z\n')
    with pytest.raises(BadCsv, match=r'A quote mark \("\) on line 6 of the file is never closed'):
        parse_csv(data)


# --- encodings ---------------------------------------------------------------------------------

GBK_ONLY_NAMES = ["林燊", "王玥", "李喆", "陈堃", "黄昇"]  # none of these is in GB2312


def names_file(names: list[str], encoding: str) -> bytes:
    return contacts_text(["Name,Phone"] + [f"{name},{local(n)}" for n, name in enumerate(names, 1)],
                         encoding=encoding)


def test_chinese_names_outside_gb2312_are_read_as_gbk() -> None:
    report = parse_csv(names_file(["陈伟明", *GBK_ONLY_NAMES], "gbk"))
    assert report.encoding == "GBK (Chinese Windows)"
    assert [row.name for row in report.recipients] == ["陈伟明", *GBK_ONLY_NAMES]


def test_a_short_gbk_list_is_not_taken_for_utf8_with_a_stray_row() -> None:
    # In GBK, 郑伟 is D6 A3 CE B0: valid UTF-8 by chance (Hebrew and Greek marks).
    report = parse_csv(names_file(["郑伟", "陈昇英"], "gbk"))
    assert report.encoding == "GBK (Chinese Windows)"
    assert [row.name for row in report.rows] == ["郑伟", "陈昇英"]


@pytest.mark.parametrize("names", [["Müller", "Hélène Dubois", "Élise"], ["Ñúñez", "Jürgen", "Frédéric"]])
def test_western_names_that_also_read_as_gbk_stay_western(names: list[str]) -> None:
    # Each accented letter is followed by a letter: the bytes make GBK characters too.
    report = parse_csv(names_file(names, "cp1252"))
    assert report.encoding == "Windows-1252"
    assert [row.name for row in report.recipients] == names


def test_one_row_from_another_encoding_garbles_nothing_else() -> None:
    good = "Name,Phone\n陈伟明,0123456789\nSiti Nurhaliza 🌸,0198765432\nMüller,0171234567\n"
    data = good.encode("utf-8") + "José,0131234567\n".encode("cp1252")
    report = parse_csv(data)
    assert report.encoding == "UTF-8"
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [
        (2, Outcome.VALID, "陈伟明"), (3, Outcome.VALID, "Siti Nurhaliza 🌸"),
        (4, Outcome.VALID, "Müller"), (5, Outcome.WARNING, "José"),
    ]
    assert report.rows[3].reason == ("line 5 of the file was not saved as UTF-8 like the rest: "
                                     "check the letters in this row")
    assert any("Line 5 of the file" in note and "Windows-1252" in note for note in report.notes)


def test_a_chinese_list_with_one_foreign_row_is_not_refused() -> None:
    names = ["陈伟明", "李鑫", "黄丽华", "张志强", "林美玲", "王建国", "刘德华", "吴秀英"] * 5
    good = "Name,Phone\r\n" + "".join(f"{n},012-345 {1000 + i}\r\n" for i, n in enumerate(names))
    data = (good.encode("utf-8") + "José,0131234567\r\n".encode("cp1252")
            + "林燊,0131234568\r\n".encode("gbk") + "Tan 陈".encode()[:-1] + b",0171234567\r\n")
    report = parse_csv(data)
    assert report.encoding == "UTF-8"
    assert [row.name for row in report.rows[:40]] == names
    assert [(r.line, r.outcome, r.name) for r in report.rows[40:]] == [
        (42, Outcome.WARNING, "José"), (43, Outcome.WARNING, "林燊"), (44, Outcome.WARNING, "Tan é™"),
    ]


def test_a_utf8_file_with_a_bom_reads_a_foreign_row_on_its_own() -> None:
    data = "\ufeffName,Phone\n陈伟明,0123456789\n".encode() + "José,0131234567\n".encode("cp1252")
    report = parse_csv(data)
    assert [(r.name, r.outcome) for r in report.rows] == [
        ("陈伟明", Outcome.VALID), ("José", Outcome.WARNING),
    ]


# --- what a file is, and its delimiter -----------------------------------------------------------

_TABLE = "<table><tr><td>Name</td><td>Phone</td></tr><tr><td>Ali</td><td>0123456789</td></tr></table>"


@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbf" + _TABLE.encode(),
    ('<meta http-equiv="Content-Type" content="text/html; charset=utf-8">' + _TABLE).encode(),
    ("<style>td { mso-number-format: '@'; }</style>\r\n" + _TABLE).encode(),
    ("\ufeff<html><body>" + _TABLE + "</body></html>").encode("utf-16-le"),
])
def test_an_excel_export_that_is_a_web_page_is_named_as_one(data: bytes) -> None:
    with pytest.raises(BadCsv, match=r"This looks like a web page \(HTML\), not a CSV or Excel file"):
        parse_csv(data)


@pytest.mark.parametrize("titles", [10, 60])
@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_title_lines_full_of_commas_do_not_choose_the_delimiter(titles: int, delimiter: str) -> None:
    rows = [f"Filter {i}: a, b, c" for i in range(titles)]
    rows += [delimiter.join(cells) for cells in (["Nama", "Telefon"], ["Ali", local(1)], ["Siti", local(2)])]
    report = parse_csv(contacts_text(rows))
    assert report.delimiter == delimiter
    assert [(row.line, row.name, row.phone) for row in report.rows] == [
        (titles + 2, "Ali", e164(1)), (titles + 3, "Siti", e164(2))]
