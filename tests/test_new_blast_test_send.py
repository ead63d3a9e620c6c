"""The test to your own number on the New blast page: its result belongs to the list it was sent
for, while the number typed for it stays for the next blast and a draft's test."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from streamlit.testing.v1 import AppTest

from core.db import transaction
from tests.support.factories import make_blast, make_recipient
from tests.test_import_page import away_and_back, new_blast, upload
from tests.test_pages import CONTACTS, app_db  # noqa: F401  (app_db: the fixture used below)

pytestmark = pytest.mark.usefixtures("app_db")
OWN = "012-999 8888"
CNY_LIST = b"Nama,No. Telefon\nTan Mei Ling,013-456 7890\nLim Wei,016-234 5678\n"


def said_of_test(at: AppTest) -> list[str]:
    """What the Test section says of a test sent: its confirmation and any word that it is old."""
    said = [m.value for m in at.success if "Test sent to" in m.value]
    return said + [w.value for w in at.warning if "changed since that test" in w.value]


def with_a_test_sent(at: AppTest) -> AppTest:
    """contacts.csv with a message written and a test of it sent to OWN."""
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Salam {name}! Jualan Raya di outlet Shah Alam").run()
    at.text_input(key="test_to").set_value(OWN)
    at.button(key="test_send").click().run()
    assert not at.exception, at.exception
    assert any("Test sent to +60129998888" in said for said in said_of_test(at))
    return at


def cny_message(at: AppTest) -> AppTest:
    at.text_area(key="tpl").set_value("Gong Xi Fa Cai {name}! CNY sale this weekend").run()
    assert not at.exception, at.exception
    return at


def test_a_list_uploaded_after_a_blast_is_sent_shows_no_test_and_keeps_the_number() -> None:
    """Seen in a browser: after blast #1, the next list's Test section said "Test sent to …"
    with the last blast's message, under an empty number box."""
    at = with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS))
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    assert any("is sending now" in s.value for s in at.success)
    assert any(c.value.startswith("For another blast, take this file off") for c in at.caption)
    at.file_uploader(key="upload").set_value(None).run()  # the old file taken off first, as it says
    at = cny_message(upload(at, "cny_list.csv", CNY_LIST))
    assert said_of_test(at) == [], "the last blast's test says nothing about this one"
    assert at.text_input(key="test_to").value == OWN, "their own phone, kept for the next test"


def test_a_list_dropped_on_the_page_of_a_blast_just_made_shows_no_test() -> None:
    at = with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS))
    at.button(key="send_blast").click().run()
    at = cny_message(upload(at, "cny_list.csv", CNY_LIST))
    assert said_of_test(at) == []
    assert at.text_input(key="test_to").value == OWN


def test_a_list_uploaded_on_coming_back_after_a_blast_shows_no_test() -> None:
    at = with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS))
    at.button(key="send_blast").click().run()
    at = cny_message(upload(away_and_back(at), "cny_list.csv", CNY_LIST))
    assert not [b for b in at.button if b.key == "continue_upload"]
    assert said_of_test(at) == []
    assert at.text_input(key="test_to").value == OWN


def test_another_file_dropped_on_the_page_shows_no_test_of_the_first() -> None:
    at = with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS))
    at = cny_message(upload(at, "cny_list.csv", CNY_LIST))
    assert said_of_test(at) == []
    assert at.text_input(key="test_to").value == OWN


def test_starting_over_forgets_the_test_but_not_the_number() -> None:
    at = away_and_back(with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS)))
    at.button(key="start_over").click().run()
    at = cny_message(upload(at, "contacts.csv", CONTACTS))
    assert said_of_test(at) == [], "starting over is a new blast, even from the same file"
    assert at.text_input(key="test_to").value == OWN


def test_the_files_test_is_still_shown_on_coming_back_to_it() -> None:
    at = away_and_back(with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS)))
    at.button(key="continue_upload").click().run()
    assert not at.exception, at.exception
    assert [said for said in said_of_test(at) if "Test sent to +60129998888" in said]
    assert not [said for said in said_of_test(at) if "changed since" in said]
    assert at.text_input(key="test_to").value == OWN


def test_the_number_typed_on_new_blast_is_there_for_a_drafts_test(engine: Engine) -> None:
    at = with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS))
    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Still keen, {name}?", device="sandbox")
        make_recipient(s, draft, contact_name="Aisyah")
        draft_id = draft.id
    at.switch_page("pages/blast.py")
    at.query_params["blast"] = str(draft_id)
    at.run()
    assert not at.exception, at.exception
    assert at.text_input(key=f"draft_test_{draft_id}_to").value == OWN
    assert said_of_test(at) == [], "nothing was tested for this draft yet"


def test_a_test_that_went_is_said_to_have_gone_even_when_its_id_cannot_be_kept(engine: Engine) -> None:
    """Its id is kept so that its receipts are known as a test's; a database that fails just
    then must not turn "sent" into an error, or the marketer would send it again."""
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_area(key="tpl").set_value("Salam {name}!").run()
    at.text_input(key="test_to").set_value(OWN)
    with transaction(engine) as s:  # where the ids are kept, away for the click
        s.execute(text("ALTER TABLE app_state RENAME TO app_state_away"))
    try:
        at.button(key="test_send").click().run()
    finally:  # the database is the next test's too
        with transaction(engine) as s:
            s.execute(text("ALTER TABLE app_state_away RENAME TO app_state"))
    assert not at.exception, at.exception
    assert any("Test sent to +60129998888" in said for said in said_of_test(at))
    assert not at.error, [e.value for e in at.error]


def test_a_test_the_gateway_never_got_does_not_promise_to_try_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A blast's message not taken is tried again by the worker, and its words say so; a test is
    sent once, by hand, and nothing tries it again."""
    import socket

    from core.config import get_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("WSAPME_TOKEN", "a-token-8821")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    monkeypatch.setenv("WSAPME_API_URL", f"http://127.0.0.1:{closed}")
    get_settings.cache_clear()
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_area(key="tpl").set_value("Salam {name}!").run()
    at.text_input(key="test_to").set_value(OWN)
    at.button(key="test_send").click().run()
    assert not at.exception, at.exception
    [said] = [e.value for e in at.error if "The test was not sent" in e.value]
    assert "Could not reach WSAPME" in said and said.endswith("Try again in a moment.")
    assert "will be tried again" not in said


def test_no_test_goes_to_a_number_on_the_opt_out_list(app_db: str) -> None:  # noqa: F811
    """Nobody on the list is messaged: the test had gone to any number typed."""
    from core.db import make_engine
    from core.opt_outs import add_opt_outs

    engine = make_engine(app_db)
    with transaction(engine) as s:
        add_opt_outs(s, ["+60129998888"], source="manual")
    engine.dispose()
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Salam {name}! Jualan Raya di outlet Shah Alam").run()
    at.text_input(key="test_to").set_value(OWN)
    at.button(key="test_send").click().run()
    assert not at.exception, at.exception
    assert said_of_test(at) == []
    assert [e.value for e in at.error] == [
        "No test was sent: +60129998888 is on the opt-out list, so nothing is sent to it. If it is your "
        "own number, take it off the list on the Opt-outs page first."]


def test_the_number_a_test_went_to_is_there_after_the_page_is_reloaded() -> None:
    """A reload starts a new session: the box had been empty again, on every draft too."""
    with_a_test_sent(upload(new_blast(), "contacts.csv", CONTACTS))
    reloaded = cny_message(upload(new_blast(), "cny_list.csv", CNY_LIST))
    assert reloaded.text_input(key="test_to").value == OWN


def test_a_shared_password_keeps_no_test_number_for_the_next_person(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everyone with the one password would have been offered the last sender's phone."""
    from core.config import get_settings
    from core.passwords import hash_password
    from dashboard.new_blast_views import LAST_TEST_NUMBER, _test_number_key

    assert _test_number_key() == LAST_TEST_NUMBER, "no login: the dashboard of one computer"
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", hash_password("a long team password"))
    get_settings.cache_clear()
    assert _test_number_key() is None
