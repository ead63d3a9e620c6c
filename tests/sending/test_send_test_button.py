"""The New blast page's "Send test" button: in practice mode, through WSAPME, and when the
gateway cannot be called as set up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st

from core.config import get_settings
from tests import test_pages
from tests.support.simulator import TEST_TOKEN, running_simulator
from tests.test_pages import new_blast_with

app_db = test_pages.app_db  # the dashboard on the test database, in practice mode


@pytest.fixture
def wsapme_at(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The dashboard on the test database, with a WSAPME token and its address set by the
    test (`set_address`)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("WSAPME_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    monkeypatch.setenv("SEND_QUIET_HOURS", "off")
    yield None
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


def set_address(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("WSAPME_API_URL", url)
    monkeypatch.setenv("WSAPME_MASTER_URL", url)
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


def send_a_test(message: str = "Hi {name}!") -> st.testing.v1.AppTest:
    at = new_blast_with()
    at.text_area(key="tpl").set_value(message).run()
    at.text_input(key="test_to").set_value("017-222 3333")
    at.button(key="test_send").click().run()
    assert not at.exception, at.exception
    return at


def test_in_practice_mode_the_test_is_shown_not_said_to_reach_a_phone(app_db: str) -> None:
    """It had said "Check your phone" with a WSAPME reference, and nothing reached a phone."""
    at = send_a_test("Hi {name}, *{produk}* is back")
    [said] = [m.value for m in at.success]
    assert "Check your phone" not in said
    assert said.startswith("Test sent to +60172223333 at ")
    assert said.endswith(", in practice mode: it went to the built-in test gateway, not to a phone, so "
                         "nothing arrives. On WhatsApp it would look like this:")
    assert not [c.value for c in at.caption if "WSAPME" in c.value]
    shown = [h.value for h in at.get("html") if not h.value.startswith("<style>")]  # not a table's style
    assert "Hi Aisyah, <strong>Kuih</strong> is back" in shown[-1]
    assert "In practice mode it goes to the built-in test gateway, not to a phone." in "\n".join(
        c.value for c in at.caption)


def test_through_wsapme_the_test_is_said_sent_with_its_reference(
    wsapme_at: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_simulator() as gateway:
        set_address(monkeypatch, gateway.url)
        at = send_a_test()
    [sent] = [s.value for s in at.success]
    assert sent.startswith("Test sent to +60172223333 at ") and sent.endswith("Check your phone before "
                                                                              "sending the blast.")
    assert [c.value for c in at.caption if c.value.startswith("WSAPME's reference for this message")]
    assert "test gateway" not in sent
