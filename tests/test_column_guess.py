"""Guessing the header and the phone column: mobile and WhatsApp columns over office lines, a
contact never taken for a header, and a header far below a report's title."""

from __future__ import annotations

import pytest

from core.csv_import import ColumnNotFound, Outcome, parse_csv
from core.csv_import.columns import find_columns, header_words


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
    assert report.notes == ["Numbers were taken from “Phone” because the others have no phone "
                            "numbers in the first rows; “WhatsApp” could also be the phone column. "
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
    assert report.notes == ["The file has no header row; numbers were taken from column 2."]


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
