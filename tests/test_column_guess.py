"""Guessing the header and the phone column: mobile and WhatsApp columns over office lines, a
contact never taken for a header, and a header far below a report's title."""

from __future__ import annotations

import pytest

from core.csv_import import ColumnNotFound, Outcome, parse_csv
from core.csv_import.columns import (
    HEADER_SEARCH_RECORDS,
    SAMPLE_RECORDS,
    find_columns,
    header_words,
    phone_rank,
)
from tests.test_excel_import import xlsx


def rows_of(data: bytes, **options: str) -> list[tuple[int, Outcome, str | None]]:
    return [(r.line, r.outcome, r.phone) for r in parse_csv(data, **options).rows]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "words"),
    [("No. H/P", "no hp"), ("Tel/HP", "tel hp"), ("H/Phone", "hp"), ("No.HP", "no hp"),
     ("Phone/WhatsApp", "phone whatsapp"), ("Tel. Pejabat", "tel pejabat"), ("H.P.", "hp")],
)
def test_a_slash_or_a_dot_parts_words(header: str, words: str) -> None:
    assert header_words(header) == words


@pytest.mark.parametrize(
    ("headers", "phone"),
    [
        ("Nama,Tel. Pejabat,Tel/HP", "Tel/HP"),
        ("Name,Office Tel,Mobile/WhatsApp No.", "Mobile/WhatsApp No."),
        ("Name,Phone Number,Mobile Phone Number", "Mobile Phone Number"),  # HubSpot
        ("Name,Telephone,Mobile (WhatsApp)", "Mobile (WhatsApp)"),
        ("Name,Phone,WhatsApp Phone", "WhatsApp Phone"),
        ("Nama,No. Telefon,No. Telefon Bimbit", "No. Telefon Bimbit"),
        ("Nama,Tel Rumah,Telefon", "Telefon"),
        ("Nama,Fax/Tel,Contact", "Contact"),
        ("Nama,Phone/WhatsApp", "Phone/WhatsApp"),
        ("Nama,No. Tel/HP", "No. Tel/HP"),
        ("Nama,HP/WhatsApp", "HP/WhatsApp"),
        ("Nama,No.HP", "No.HP"),
    ],
)
def test_the_header_words_choose_mobile_and_whatsapp_columns_first(headers: str, phone: str) -> None:
    # Every column holds a mobile, so only the header words can decide.
    width = headers.count(",")
    data = f"{headers}\nAli{',012-345 6789' * width}\n".encode()
    assert parse_csv(data).phone_column == phone


def test_office_landlines_are_not_messaged_when_a_mobile_column_is_there() -> None:
    data = (b"Nama,Tel. Pejabat,Tel/HP\nAli,03-2345 6789,012-345 6789\nSiti,03-2345 6790,019-876 5432\n"
            b"Abu,,017-123 4567\n")
    report = parse_csv(data)
    assert report.phone_column == "Tel/HP"
    assert [(r.line, r.outcome, r.phone, r.name) for r in report.rows] == [
        (2, Outcome.VALID, "+60123456789", "Ali"), (3, Outcome.VALID, "+60198765432", "Siti"),
        (4, Outcome.VALID, "+60171234567", "Abu"),
    ]
    assert report.notes == ["Numbers were taken from “Tel/HP” because it is named for mobile "
                            "numbers; “Tel. Pejabat” could also be the phone column. Choose "
                            "another if that is wrong."]
    assert parse_csv(data, phone_column="Tel. Pejabat").rows[0].outcome == Outcome.WARNING


def test_of_columns_alike_in_their_words_the_one_with_mobiles_wins() -> None:
    data = b"Name,Phone,Phone\r\nAli,03-2123 4567,012-345 6789\r\nSiti,,013-456 7890\r\n"
    report = parse_csv(data)
    assert report.phone_column == "Phone (column 3)"
    assert [r.outcome for r in report.rows] == [Outcome.VALID, Outcome.VALID]
    assert "because it has the most mobile numbers in the first rows" in report.notes[0]


def test_a_whatsapp_column_of_yes_and_no_is_not_the_phone_column() -> None:
    data = b"Name,WhatsApp,Phone\r\nAli,Yes,012-345 6789\r\nSiti,No,013-456 7890\r\n"
    report = parse_csv(data)
    assert report.phone_column == "Phone"
    assert report.notes == ["Numbers were taken from “Phone” because the others have no usable "
                            "phone number in the first rows; “WhatsApp” could also be the phone column. "
                            "Choose another if that is wrong."]


@pytest.mark.parametrize("word", ["WA", "HP", "Tel", "WhatsApp"])
def test_a_list_without_a_header_keeps_its_first_contact_whatever_its_cells_say(word: str) -> None:
    data = f"Ali,0123456789,{word}\nSiti,0198765432,SMS\nAbu,0171234567,{word}\nMei,0131234567,Email\n"
    report = parse_csv(data.encode())
    assert report.columns.header_index is None
    assert [(r.line, r.outcome, r.name) for r in parse_csv(data.encode(), name_column="column 1").rows] == [
        (1, Outcome.VALID, "Ali"), (2, Outcome.VALID, "Siti"), (3, Outcome.VALID, "Abu"),
        (4, Outcome.VALID, "Mei"),
    ]
    assert report.notes == ["The file has no header row; numbers were taken from column 2, names from "
                            "column 1 (Ali, Siti, Abu…)."]


def test_a_contact_is_never_chosen_as_the_header_by_hand() -> None:
    data = b"Ali,0123456789,WA\nSiti,0198765432,SMS\n"
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(data, phone_column="0123456789")
    assert caught.value.message == "The file has no header row, so there is no column called “0123456789”."
    assert caught.value.headers == ("column 1", "column 2", "column 3")


def test_a_note_naming_whatsapp_below_a_header_without_a_phone_word_stays_a_contact() -> None:
    data = b"Nama,No.,Catatan\nAli,0123456789,\nSiti,0198765432,WhatsApp sahaja\nAhmad,0171234567,\n"
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(data)
    assert caught.value.headers == ("Nama", "No.", "Catatan")
    assert rows_of(data, phone_column="No.") == [
        (2, Outcome.VALID, "+60123456789"), (3, Outcome.VALID, "+60198765432"),
        (4, Outcome.VALID, "+60171234567"),
    ]


def test_a_contact_without_a_number_whose_note_names_whatsapp_is_not_the_header() -> None:
    # Nothing has numbers below it: the widest record is the header only if it has a phone word.
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(b"Nama,Catatan\nAli,WhatsApp sahaja\nAbu,\n")
    assert caught.value.headers == ("Nama", "Catatan")
    report = parse_csv(b"Senarai HP\nNama,HP\nAli,12345\nAbu,tiada\n")
    assert report.columns.header_index == 1
    assert [(r.line, r.outcome) for r in report.rows] == [(3, Outcome.INVALID), (4, Outcome.INVALID)]


@pytest.mark.parametrize(
    "data",
    [
        b"Ali,0123456789,WA\nSiti,0198765432,SMS\nAbu,0171234567,WA\n",
        b"Nama,No,Catatan\nAli,0123456789,\nAbu,HP,\nSiti,0198765432,\n",
        b"Nama,Telefon\nAli,0123456789\nAbu,HP\nSiti,0198765432\n",
        b"Name,Phone,Notes\nAli,0123456789,\nAbu,,Phone\nSiti,,0198765432\n",
        b"Customer phone list\nAli,0123456789,Tel\nWhatsApp,Mobile,Phone\nSiti,0198765432,x\n",
    ],
    ids=["headerless", "phone-word-in-a-number-column", "below-a-header", "note-column",
         "header-like-row-among-contacts"],
)
def test_every_record_holding_a_number_is_a_row_of_the_report(data: bytes) -> None:
    try:
        report = parse_csv(data)
    except ColumnNotFound as exc:  # the person chooses: then every contact is a row
        report = parse_csv(data, phone_column=exc.headers[1])
    lines = {r.line for r in report.rows}
    records = data.decode().splitlines()
    holding = {n for n, record in enumerate(records, start=1)
               if any(c.isdigit() and len(c) == 10 for c in record.split(","))}
    assert holding <= lines, f"lines {sorted(holding - lines)} are not in the report"


def test_a_header_below_many_lines_of_title_and_filters_is_found() -> None:
    filters = "".join(f"Filter {i}: Kuala Lumpur\n" for i in range(11))
    contacts = "".join(f"P{i},01{2 + i % 2}-{1000000 + i:07d}\n" for i in range(50))
    report = parse_csv(f"Customer report\n{filters}Name,Mobile\n{contacts}".encode())
    assert (report.columns.header_index, report.phone_column, report.name_column) == (12, "Mobile", "Name")
    assert [r.line for r in report.rows] == list(range(14, 64))
    assert {r.outcome for r in report.rows} == {Outcome.VALID}
    assert report.notes == ["The header is on line 13; the lines above it were skipped."]


def test_the_header_is_searched_for_down_to_the_first_contact() -> None:
    titles: list[list[str]] = [[f"Filter {i}: Kuala Lumpur", ""] for i in range(60)]
    rows = [*titles, ["Name", "Mobile"], ["Ali", "012-345 6789"]]
    assert find_columns(rows).header_index == 60
    with pytest.raises(ColumnNotFound) as caught:
        find_columns([*titles, ["Nama", "Nombor Pelanggan", "Produk"], ["Ali", "012-345 6789", "Kuih"]])
    assert caught.value.headers == ("Nama", "Nombor Pelanggan", "Produk"), "the widest record"


def test_without_a_phone_column_the_widest_record_is_offered() -> None:
    filters = "".join(f"Filter {i}: Kuala Lumpur\n" for i in range(11))
    contacts = "".join(f"P{i},012-{1000000 + i:07d},Kuih\n" for i in range(20))
    data = f"Customer report\n{filters}Nama,Nombor Pelanggan,Produk\n{contacts}".encode()
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(data)
    assert caught.value.headers == ("Nama", "Nombor Pelanggan", "Produk")
    chosen = rows_of(data, phone_column="Nombor Pelanggan")
    assert chosen[0] == (14, Outcome.VALID, "+60121000000")
    assert [line for line, _, _ in chosen] == list(range(14, 34))


def test_numbers_in_a_column_without_a_header_can_be_chosen() -> None:
    data = b"Nama,Alamat\r\nAli,KL,0123456789\r\nAbu,Ipoh,0134567890\r\n"
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(data)
    assert caught.value.headers == ("Nama", "Alamat", "column 3")
    report = parse_csv(data, phone_column="column 3")
    assert (report.columns.header_index, report.name_column) == (0, "Nama")
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [
        (2, Outcome.VALID, "Ali"), (3, Outcome.VALID, "Abu")]


def test_a_headerless_list_takes_the_column_with_mobiles() -> None:
    data = b"03-2345 6789,012-345 6789,Ali\n03-2345 6790,013-456 7890,Abu\n"
    report = parse_csv(data)
    assert (report.columns.header_index, report.phone_column) == (None, "column 2")
    assert {r.outcome for r in report.rows} == {Outcome.VALID}


LETTERHEAD = xlsx(("Sheet", [
    ["KEDAI ABC ENTERPRISE"], ["No. 5, Jalan Besar, 81000 Kulai, Johor"], ["Tel: 07-663 1234"], None,
    ["Bil", "Nama", "No. HP", "Jumlah (RM)"], [1, "Ali", "012-3456789", 150.5],
    [2, "Siti", "013-4567890", 80],
]))


@pytest.mark.parametrize(
    ("data", "header_line"),
    [
        (b"ABC Trading Sdn Bhd\r\nTel: 03-2345 6789\r\n\r\nName,Phone,Email\r\nAli,0123456789,a@x.com\r\n"
         b"Siti,0134567890,s@x.com\r\n", 4),
        (b"Prepared by,Aminah,012-9998888\r\n\r\nName,Mobile\r\nAli,0123456789\r\nSiti,0134567890\r\n", 3),
        (b"KEDAI ABC,KEDAI ABC,KEDAI ABC\r\nTel: 07-663 1234,Tel: 07-663 1234,Tel: 07-663 1234\r\n"
         b"Nama,No. HP,Jumlah\r\nAli,0123456789,10\r\nSiti,0134567890,20\r\n", 3),  # merged, filled
        (LETTERHEAD, 5),
    ],
    ids=["title-phone", "prepared-by", "merged-title", "letterhead-xlsx"],
)
def test_a_phone_number_in_the_title_lines_is_not_taken_for_the_first_contact(
    data: bytes, header_line: int
) -> None:
    report = parse_csv(data)
    assert report.columns.header_index == header_line - 1
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [
        (header_line + 1, Outcome.VALID, "Ali"), (header_line + 2, Outcome.VALID, "Siti")]
    assert report.notes == [f"The header is on line {header_line}; the lines above it were skipped."]


def test_contacts_are_not_taken_for_title_lines_above_a_header_like_row() -> None:
    data = b"0123456789\r\n0134567890\r\nPhone\r\n0145678901\r\n"  # one column, a word among numbers
    assert [r.line for r in parse_csv(data).rows] == [1, 2, 3, 4]
    data = b"Ali,0123456789,\r\nName,Phone,Note\r\nSiti,0134567890,\r\n"  # Ali's number under Phone
    assert [r.line for r in parse_csv(data).rows] == [1, 2, 3]


@pytest.mark.parametrize(
    "phone",
    ["WhatsApp number (with country code)", "Phone number (include country code)",
     "Mobile number - please type without dashes", "Mobile No. (Country Code + Number)",
     "HP No. (status: active)", "Mobile (verified)", "WhatsApp No. (with country code)", "Ph No", "Ph"],
)
def test_words_on_how_to_type_the_number_do_not_hide_the_mobile_column(phone: str) -> None:
    data = (f"Full Name,{phone},Company,Office Phone\r\nAli,0123456789,ABC,0323456789\r\n"
            f"Siti,0134567890,DEF,0323456780\r\n").encode()
    report = parse_csv(data)
    assert report.phone_column == phone
    assert {r.outcome for r in report.rows} == {Outcome.VALID}


@pytest.mark.parametrize("header", ["Phone 1 - Type", "Phone Status", "Phone Verified", "Country Code",
                                    "Nama & No. HP", "Email / Phone"])
def test_a_header_about_a_phone_is_not_the_phone_column(header: str) -> None:
    assert phone_rank(header) is None


@pytest.mark.parametrize(
    ("headers", "phone", "name"),
    [("姓名,手机号码,备注", "手机号码", "姓名"), ("名字,电话", "电话", "名字"),
     ("姓名,联系电话", "联系电话", "姓名"), ("姓名,办公电话,手机", "手机", "姓名"),
     ("Nama,No. H/P", "No. H/P", "Nama"), ("Nama,No. Tel", "No. Tel", "Nama"),
     ("姓名,联系人电话", "联系人电话", "姓名"), ("客户名称,联系人手机", "联系人手机", "客户名称")],
)
def test_chinese_and_malay_headers_name_the_phone_and_name_columns(
    headers: str, phone: str, name: str
) -> None:
    width = headers.count(",")
    data = f"{headers}\r\n陈大文{',012-345 6789' * width}\r\n".encode()
    report = parse_csv(data)
    assert (report.phone_column, report.name_column, report.rows[0].name) == (phone, name, "陈大文")


def test_each_google_contact_is_messaged_on_the_mobile_of_whichever_phone_column_holds_it() -> None:
    rows = [["First Name", "Last Name", "Phone 1 - Label", "Phone 1 - Value", "Phone 2 - Label",
             "Phone 2 - Value"],
            ["Ali", "Abu", "Mobile", "+60 12-345 6789", "", ""],
            ["Siti", "Aminah", "Work", "+60 3-2345 6789", "Mobile", "+60 13-456 7890"],
            ["Mei", "Ling", "Home", "+60 3-7956 1234", "Mobile", "+60 16-222 3333"],
            ["Raju", "", "", "03-2222 3333", "", "014-444 5555 x"],
            ["Chong", "", "", "03-2222 3334", "", "017-765 4321"]]
    data = "".join(",".join(row) + "\r\n" for row in rows).encode()
    report = parse_csv(data)
    assert [(r.name, r.outcome, r.phone) for r in report.rows] == [
        ("Ali Abu", Outcome.VALID, "+60123456789"), ("Siti Aminah", Outcome.VALID, "+60134567890"),
        ("Mei Ling", Outcome.VALID, "+60162223333"),
        ("Raju", Outcome.WARNING, "+60322223333"),  # no mobile: the first number, with its warning
        ("Chong", Outcome.VALID, "+60177654321"),  # no label: the first mobile
    ]
    assert report.notes == ["Each contact's number was taken from “Phone 1 - Value” or “Phone 2 - Value”: "
                            "the one that is a mobile (by its label), else the first. Choose one column "
                            "if that is wrong."]
    chosen = parse_csv(data, phone_column="Phone 1 - Value")
    assert chosen.rows[1].phone == "+60323456789", "a column chosen by hand is that column"


def test_a_header_beyond_the_rows_searched_is_named_in_the_message_and_can_be_chosen() -> None:
    notes = "".join(f"Note {i}\r\n" for i in range(HEADER_SEARCH_RECORDS + 19))
    data = f"{notes}Name,Phone\r\nAli,0123456789\r\n".encode()
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(data)
    assert f"No phone number column found in the first {HEADER_SEARCH_RECORDS} rows" in caught.value.message
    report = parse_csv(data, phone_column="Phone")
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [
        (HEADER_SEARCH_RECORDS + 21, Outcome.VALID, "Ali")]


@pytest.mark.parametrize("cell", ["tiada hp", "No HP", "HP", "no phone", "Tiada telefon", "WA", "Mobile",
                                  "whatsapp"])
def test_a_first_contact_with_a_phone_word_for_its_number_is_not_taken_for_the_header(cell: str) -> None:
    # "Name,Phone,Product" has more header words than "Ali,tiada hp,Kuih": it is the header, not
    # a title above it, and Ali's row is reported with its line.
    data = f"Name,Phone,Product\nAli,{cell},Kuih\nBala,0123456789,Kek\nChong,0198765432,Kuih\n"
    report = parse_csv(data.encode())
    assert (report.columns.header_index, report.phone_column, report.name_column) == (0, "Phone", "Name")
    assert [(r.line, r.outcome, r.name) for r in report.rows] == [
        (2, Outcome.INVALID, "Ali"), (3, Outcome.VALID, "Bala"), (4, Outcome.VALID, "Chong")]
    assert report.rows[0].reason in ("no phone number", "not a phone number")
    assert report.rows[1].variables["product"] == "Kek"
    assert "ali" not in report.variable_names and "kuih" not in report.variable_names


@pytest.mark.parametrize("title", ["Customer phone list", ",".join(["Customer phone list"] * 3),
                                   "No. Telefon,Nama,Produk"], ids=["title", "merged-title", "upper-header"])
def test_a_title_or_upper_header_with_no_more_header_words_is_still_skipped(title: str) -> None:
    report = parse_csv(f"{title}\nName,Phone,City\nAli,0123456789,KL\nAbu,013-456 7890,Ipoh\n".encode())
    assert (report.columns.header_index, report.name_column) == (1, "Name")
    assert [(r.line, r.outcome) for r in report.rows] == [(3, Outcome.VALID), (4, Outcome.VALID)]


def test_a_headerless_list_whose_first_contact_has_a_bad_number_keeps_that_contact() -> None:
    data = b"Ali,012-345 678\nBala,0123456789\nChong,0198765432\n"
    report = parse_csv(data)
    assert (report.columns.header_index, report.phone_column) == (None, "column 2")
    assert [(r.line, r.outcome) for r in report.rows] == [
        (1, Outcome.INVALID), (2, Outcome.VALID), (3, Outcome.VALID)]
    assert (report.rows[0].reason or "").startswith("not a valid number")
    # Two contacts to go by for names: too few to guess from.
    assert report.notes == ["The file has no header row; numbers were taken from column 2."]
    chosen = parse_csv(data, phone_column="column 2", name_column="column 1")
    assert [(r.line, r.outcome, r.name) for r in chosen.rows] == [
        (1, Outcome.INVALID, "Ali"), (2, Outcome.VALID, "Bala"), (3, Outcome.VALID, "Chong")]
    with pytest.raises(ColumnNotFound) as caught:  # a contact's cell is not a header to choose
        parse_csv(data, phone_column="012-345 678")
    assert caught.value.message == "The file has no header row, so there is no column called “012-345 678”."


@pytest.mark.parametrize(("data", "names"), [
    ("Ali,0123456789\nSiti Nurhaliza,0198765432\nAbu,0171234567\n", ["Ali", "Siti Nurhaliza", "Abu"]),
    ("0123456789,陈大文\n0198765432,Raj a/l Kumar\n0171234567,Dr. Tan\n",
     ["陈大文", "Raj a/l Kumar", "Dr. Tan"]),
    ("C001,Ali,0123456789\nC002,Abu,0198765432\nC003,Mei,0171234567\n", ["Ali", "Abu", "Mei"]),
    ("Ali,0123456789,Male\nSiti,0198765432,Female\nAbu,0171234567,Male\n", ["Ali", "Siti", "Abu"]),
    # A company's name beside the person's: the person's.
    ("Maju Sdn. Bhd.,Ali,0123456789\nKedai Abu,Abu,0198765432\nMei Trading,Mei,0171234567\n",
     ["Ali", "Abu", "Mei"]),
    # Not names: the same few words again (a channel, a city), codes with digits, none given.
    ("0123456789,WA\n0198765432,SMS\n0171234567,WA\n0131234567,WA\n", [None] * 3),
    ("0123456789,KL\n0198765432,KL\n0171234567,Ipoh\n", [None] * 3),
    ("A12,0123456789\nB7,0198765432\nC3,0171234567\n", [None] * 3),
    ("N/A,0123456789\nNA,0198765432\nnil,0171234567\n", [None] * 3),
    # Two columns that could be names (people and cities all different): not guessed.
    ("Ali,0123456789,Kuala Lumpur\nSiti,0198765432,Ipoh\nAbu,0171234567,Penang\n", [None] * 3),
])
def test_a_headerless_list_takes_the_column_of_names(data: str, names: list[str | None]) -> None:
    """Its names had been left out, and {name} in the message refused, until a person chose
    "column 1" among the columns by hand."""
    report = parse_csv(data.encode())
    assert report.columns.header_index is None
    assert [r.name for r in report.rows][:3] == names
    assert ("name" in report.variable_names) == (names[0] is not None)
    assert ("names from column" in report.notes[0]) == (names[0] is not None)


def test_many_headerless_contacts_with_bad_numbers_before_the_first_good_one() -> None:
    bad = "".join(f"P{i},012-345 678\n" for i in range(SAMPLE_RECORDS + 5))
    report = parse_csv(f"{bad}Ali,0123456789\nAbu,0134567890\n".encode())
    assert report.columns.header_index is None
    assert [(r.line, r.outcome) for r in report.rows] == [
        *((line, Outcome.INVALID) for line in range(1, SAMPLE_RECORDS + 6)),
        (SAMPLE_RECORDS + 6, Outcome.VALID), (SAMPLE_RECORDS + 7, Outcome.VALID)]


@pytest.mark.parametrize(("data", "first"), [
    (b"Customer ID,Contact Person\nC1,0123456789\n", "Customer ID"),
    (b"Report 2025\nAli,0123456789\n", "Report 2025"),
    # A date has the digits of a short number, not its look.
    (b"Senarai pelanggan 01/2025\n0123456789\n0134567890\n", "Senarai pelanggan 01/2025"),
    (b",Updated 12/03/2025\nAli,0123456789\n", "column 1"),
], ids=["unknown-header", "title", "title-with-a-date", "date-where-the-numbers-are"])
def test_a_record_without_a_number_typed_where_the_numbers_are_is_not_read_as_a_contact(
    data: bytes, first: str
) -> None:
    # None has a header word, but none has a phone number typed where the numbers are: the
    # person chooses the column, as before.
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(data)
    assert caught.value.headers[0] == first


@pytest.mark.parametrize("count", [SAMPLE_RECORDS, SAMPLE_RECORDS + 10])
@pytest.mark.parametrize("bad", ["", "6.01E+10"], ids=["empty", "excel-shortened"])
def test_the_phone_header_is_taken_above_many_contacts_without_a_usable_number(count: int, bad: str) -> None:
    rows = "".join(f"P{i},{bad}\n" for i in range(count))
    report = parse_csv(f"Name,Phone\n{rows}Ali,0123456789\nAbu,0134567890\n".encode())
    assert (report.columns.header_index, report.phone_column, report.name_column) == (0, "Phone", "Name")
    assert [(r.line, r.outcome) for r in report.rows] == [
        *((line, Outcome.INVALID) for line in range(2, count + 2)),
        (count + 2, Outcome.VALID), (count + 3, Outcome.VALID)]
    assert all(r.reason for r in report.rows[:count])
