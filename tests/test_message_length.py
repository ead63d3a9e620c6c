"""The message's length under its box: as the recipients get it, with no limit made up."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.message_length import LONG_MESSAGE, length_note, message_lengths
from tests import test_pages

app_db = test_pages.app_db  # the dashboard pointed at the test database (SQLite and PostgreSQL)
page = test_pages.page
new_blast_with = test_pages.new_blast_with

ROWS = [{"name": "Ali", "produk": "Kuih"}, {"name": "Wei Ling", "produk": "Bak kwa"}]


@pytest.mark.parametrize(
    ("text", "rows", "lengths"),
    [
        ("Hi {name}!", ROWS, (7, 12)),
        ("Hi {Name}, {produk} 🎉", ROWS, (14, 22)),
        ("Jom {{promo}}", ROWS, (11, 11)),  # braces written twice show once
        ("Hi {name}", [], (9, 9)),  # nothing to fill it with yet: as written
        ("Hi {name}", [{"name": None}], (3, 3)),
        ("Salam\nJom", ROWS, (9, 9)),
    ],
)
def test_message_lengths(text: str, rows: list[dict[str, object]], lengths: tuple[int, int]) -> None:
    assert message_lengths(text, rows) == lengths


@pytest.mark.parametrize(
    ("shortest", "longest", "filled", "note"),
    [
        (312, 312, False, "312 characters."),
        (312, 312, True, "312 characters with each person's values filled in."),
        (298, 340, True, "298 to 340 characters, depending on each person's values."),
        (1_000, 1_000, False, "1,000 characters."),
        (1_001, 1_001, False,
         "1,001 characters. Long messages are read less: put the offer in the first lines."),
        (990, 1_200, True, "990 to 1,200 characters, depending on each person's values. Long messages are "
                           "read less: put the offer in the first lines."),
    ],
)
def test_length_note(shortest: int, longest: int, filled: bool, note: str) -> None:
    assert length_note(shortest, longest, filled=filled) == note


def test_no_limit_is_made_up() -> None:
    note = length_note(50_000, 50_000, filled=False)
    assert "limit" not in note.casefold() and "too long" not in note.casefold()


# -- on the New blast page ---------------------------------------------------------------------

# The longest name is past the previews' first rows: the count goes by every recipient.
LIST = (
    b"Nama,No. Telefon\n"
    b"Ali,012-345 6789\n"
    b"Abu,011-2345 6789\n"
    b"Siti,013-456 7890\n"
    b"Nurul Aisyah binti Abdullah,019-876 5432\n"
)


def _captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def test_the_count_goes_by_the_longest_filled_message(app_db: str) -> None:
    at = new_blast_with(LIST)
    assert not [c for c in _captions(at) if "characters" in c], "nothing counted while the box is empty"
    at.text_area(key="tpl").set_value("Hi {name}, jom!").run()
    assert not at.exception, at.exception
    assert "12 to 36 characters, depending on each person's values." in _captions(at)
    at.text_area(key="tpl").set_value("Hi {nmae}, jom!").run()
    assert "15 characters." in _captions(at), "a message with a mistake is counted as written"


def test_a_long_message_gets_a_gentle_word_and_can_still_be_sent(app_db: str) -> None:
    at = new_blast_with(LIST)
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Jom! " + "x" * LONG_MESSAGE).run()
    assert not at.exception, at.exception
    assert ("1,005 characters. Long messages are read less: put the offer in the first lines."
            in _captions(at))
    assert not at.error and not at.warning
    assert not at.button(key="send_blast").disabled
