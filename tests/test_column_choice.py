"""Choosing the phone and name columns by hand: every name the column chooser shows works."""

from __future__ import annotations

import pytest

from core.csv_import import ColumnNotFound, parse_csv


def test_a_file_without_a_header_takes_columns_by_position() -> None:
    data = b"0123456789,0134567890,Ali\r\n0145678901,0167890123,Abu\r\n"
    assert parse_csv(data).columns.headers == ("column 1", "column 2", "column 3")
    report = parse_csv(data, phone_column="column 2", name_column="column 3")
    assert report.columns.header_index is None
    assert [(r.line, r.phone, r.name) for r in report.rows] == [
        (1, "+60134567890", "Ali"), (2, "+60167890123", "Abu"),
    ]
    assert parse_csv(data, name_column="column 3").rows[0].name == "Ali"


def test_a_column_with_a_blank_header_is_chosen_by_its_position() -> None:
    data = b"Senarai Mac,,\r\nNama,,HP\r\nAli,0134567890,0123456789\r\n"
    report = parse_csv(data)
    assert report.columns.headers == ("Nama", "column 2", "HP")
    chosen = parse_csv(data, phone_column="column 2")
    assert chosen.columns.header_index == 1, "the header row, not the title row above it"
    assert [(r.line, r.phone, r.name) for r in chosen.rows] == [(3, "+60134567890", "Ali")]
    assert parse_csv(data, name_column="column 2").rows[0].name == "0134567890"


def test_of_two_columns_with_one_name_the_second_can_be_chosen() -> None:
    data = b"Name,Phone,Phone,Name\r\nAli,03-2123 4567,012-345 6789,Ali bin Abu\r\n"
    report = parse_csv(data)
    assert report.columns.headers == ("Name (column 1)", "Phone (column 2)", "Phone (column 3)",
                                      "Name (column 4)")
    chosen = parse_csv(data, phone_column="Phone (column 3)", name_column="Name (column 4)")
    assert (chosen.columns.phone, chosen.columns.names) == (2, (3,))
    assert (chosen.phone_column, chosen.name_column) == ("Phone (column 3)", "Name (column 4)")
    assert [(r.phone, r.name) for r in chosen.rows] == [("+60123456789", "Ali bin Abu")]
    first = parse_csv(data, phone_column="Phone (column 2)", name_column="Name (column 1)")
    assert (first.columns.phone, first.columns.names) == (1, (0,))
    assert parse_csv(data, phone_column="Phone").columns.phone == 1, "the header as typed: the first"
    assert chosen.rows[0].variables["phone_2"] == "03-2123 4567", "keys as before: by the header"


def test_an_empty_name_column_means_no_names() -> None:
    data = b"Nama,HP\r\nAli,0123456789\r\n"
    report = parse_csv(data, name_column="")
    assert (report.name_column, report.rows[0].name) == (None, None)
    assert "name" not in report.variable_names


@pytest.mark.parametrize(
    ("data", "options", "message", "headers"),
    [
        (b"Nama,HP\r\nAli,0123456789\r\n", {"phone_column": "column 5"},
         "There is no column called “column 5”. The columns are: “Nama”, “HP”.", ("Nama", "HP")),
        (b"Nama,HP\r\nAli,0123456789\r\n", {"phone_column": "column 2"},
         "There is no column called “column 2”", ("Nama", "HP")),  # it has a header: HP
        (b"Nama,HP\r\nAli,0123456789\r\n", {"name_column": "Nom"},
         "There is no column called “Nom”. The columns are: “Nama”, “HP”.", ("Nama", "HP")),
        (b"0123456789,Ali\r\n", {"name_column": "Nama"},
         "The file has no header row, so there is no column called “Nama”.", ("column 1", "column 2")),
        (b"Title\r\nNama,Alamat\r\nAli,KL\r\n", {},
         "No phone number column found. The columns are: “Nama”, “Alamat”.", ("Nama", "Alamat")),
    ],
    ids=["beyond-the-last-column", "position-of-a-named-column", "name", "headerless-name",
         "no-phone-column-below-a-title"],
)
def test_a_column_that_is_not_there_lists_the_ones_that_are(
    data: bytes, options: dict[str, str], message: str, headers: tuple[str, ...]
) -> None:
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(data, **options)  # type: ignore[arg-type]
    assert message in caught.value.message
    assert caught.value.headers == headers


@pytest.mark.parametrize(
    ("data", "offered", "phone"),
    [
        (b"Prepared by,Aminah,012-9998888\r\n\r\nName,Mobile\r\nAli,0123456789\r\nSiti,0134567890\r\n",
         None, "Mobile"),
        (b"ABC Trading Sdn Bhd\r\nTel: 03-2345 6789\r\n\r\nName,Nombor Pelanggan,Email\r\n"
         b"Ali,0123456789,a@x.com\r\nSiti,0134567890,s@x.com\r\n",
         ("Name", "Nombor Pelanggan", "Email"), "Nombor Pelanggan"),
    ],
    ids=["found-anyway", "no-phone-word"],
)
def test_a_column_below_title_lines_with_a_phone_number_can_be_chosen(
    data: bytes, offered: tuple[str, ...] | None, phone: str
) -> None:
    if offered is not None:
        with pytest.raises(ColumnNotFound) as caught:
            parse_csv(data)
        assert caught.value.headers == offered
    report = parse_csv(data, phone_column=phone)
    assert (report.phone_column, report.name_column) == (phone, "Name")
    assert [(r.phone, r.name) for r in report.rows] == [("+60123456789", "Ali"), ("+60134567890", "Siti")]


def test_a_file_of_long_or_many_cells_is_named_in_a_message_one_can_read() -> None:
    """Random bytes read as text, or a report of a hundred columns: the message had listed
    every "column", thousands of characters."""
    header = ",".join(["Nota " + "x" * 200, *(f"Kolum {i}" for i in range(30))])
    with pytest.raises(ColumnNotFound) as caught:
        parse_csv(f"{header}\nAli,KL\n".encode())
    message = caught.value.message
    assert message.startswith("No phone number column found. The columns are: “Nota xxx")
    assert "x" * 60 not in message and "“Kolum 18”, and 11 more." in message
    assert len(message) < 500
    assert len(caught.value.headers) == 31, "all of them can still be chosen"
