"""A new blast's suggested name: the file's name and the day, told apart from blasts already named so."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from core.db import transaction
from core.models import Blast
from dashboard.blast_naming import names_like, suggested_name
from tests import test_pages
from tests.support.factories import make_blast

app_db = test_pages.app_db  # the dashboard pointed at the test database (SQLite and PostgreSQL)
page = test_pages.page
CONTACTS = test_pages.CONTACTS

KL = ZoneInfo("Asia/Kuala_Lumpur")
DAY = dt.date(2026, 11, 26)


@pytest.mark.parametrize(
    ("filename", "taken", "name"),
    [
        ("contacts.csv", (), "contacts · 26 Nov"),
        ("Senarai Raya.xlsx", (), "Senarai Raya · 26 Nov"),
        ("leads.2026.csv", (), "leads.2026 · 26 Nov"),
        ("no extension", (), "no extension · 26 Nov"),
        ("  Raya   list .csv", (), "Raya list · 26 Nov"),
        (".csv", (), "Blast · 26 Nov"),
        ("contacts.csv", ("contacts · 26 Nov",), "contacts · 26 Nov (2)"),
        ("contacts.csv", ("contacts · 26 Nov", "contacts · 26 Nov (2)"), "contacts · 26 Nov (3)"),
        ("contacts.csv", ("Contacts · 26 Nov", "contacts · 25 Nov"), "contacts · 26 Nov"),
    ],
)
def test_suggested_name(filename: str, taken: tuple[str, ...], name: str) -> None:
    assert suggested_name(filename, today=DAY, taken=taken) == name


def test_a_single_digit_day_and_a_long_file_name_still_fit() -> None:
    assert suggested_name("x.csv", today=dt.date(2027, 1, 5)) == "x · 5 Jan"
    long = suggested_name("a" * 300 + ".csv", today=DAY, taken=())
    assert long.endswith(" · 26 Nov") and len(long) + len(" (99)") <= 255


def test_names_like_finds_only_names_beginning_so(engine: Engine) -> None:
    with transaction(engine) as s:
        for name in ("50% off · 26 Nov", "50% off · 26 Nov (2)", "500 off · 26 Nov", None, "Other"):
            make_blast(s, name=name)
    with transaction(engine) as s:
        assert names_like(s, "50% off · 26 Nov") == {"50% off · 26 Nov", "50% off · 26 Nov (2)"}


# -- on the New blast page ---------------------------------------------------------------------


def _today() -> str:
    today = dt.datetime.now(KL).date()
    return f"{today.day} {today:%b}"


def _upload(at: AppTest, name: str, data: bytes = CONTACTS) -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_name_tells_two_uploads_of_one_file_apart(app_db: str, engine: Engine) -> None:
    at = page("pages/new_blast.py")
    at.run()
    at = _upload(at, "contacts.csv")
    assert at.text_input(key="blast_name").value == f"contacts · {_today()}"
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}").run()
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception

    again = page("pages/new_blast.py")  # the same file, uploaded again later
    again.run()
    again = _upload(again, "contacts.csv")
    assert again.text_input(key="blast_name").value == f"contacts · {_today()} (2)"
    with transaction(engine) as s:
        assert list(s.scalars(select(Blast.name))) == [f"contacts · {_today()}"]


def test_a_typed_name_is_kept_until_another_file_is_uploaded(app_db: str) -> None:
    at = page("pages/new_blast.py")
    at.run()
    at = _upload(at, "contacts.csv")
    at.text_input(key="blast_name").set_value("Raya promo, KL shops").run()
    at.text_input(key="blast_tag").set_value("Raya").run()
    assert at.text_input(key="blast_name").value == "Raya promo, KL shops"
    at = _upload(at, "leads.csv", CONTACTS + b"Ravi,019 876 5432,Murukku\n")
    assert at.text_input(key="blast_name").value == f"leads · {_today()}"
    at.file_uploader(key="upload").set_value(None).run()
    at = _upload(at, "leads.csv", CONTACTS + b"Ravi,019 876 5432,Murukku\n")
    assert at.text_input(key="blast_name").value == f"leads · {_today()}", "filled again after a removal"
