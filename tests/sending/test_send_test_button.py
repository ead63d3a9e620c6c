"""The New blast page's "Send test" button when the gateway cannot be called as set up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st

from core.config import get_settings
from tests.support.simulator import TEST_TOKEN
from tests.test_pages import new_blast_with


@pytest.fixture
def wrong_address(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The dashboard on the test database, with a WSAPME address typed without https://."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("WSAPME_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    monkeypatch.setenv("WSAPME_API_URL", "api.wsapme.com")
    monkeypatch.setenv("SEND_QUIET_HOURS", "off")
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


def test_a_wrong_gateway_address_is_told_in_words_not_a_crash(wrong_address: None) -> None:
    at = new_blast_with()
    at.text_area(key="tpl").set_value("Hi {name}!").run()
    at.text_input(key="test_to").set_value("017-222 3333")
    at.button(key="test_send").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "The test was not sent: The WSAPME address in the settings is not a valid web address."
    ]
    assert not at.success
