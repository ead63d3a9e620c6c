"""New blast's test to your own number in a real browser: the next list starts with no test
result, and with the number typed for the last one, as the server holds it too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError, expect

from tests.support.browser import dashboard, wait_until_drawn
from tests.test_excel_import import xlsx

pytestmark = pytest.mark.e2e
RAYA_LIST = "Nama,No. Telefon\nAhmad bin Ismail,012-345 6789\nSiti,013-456 7890\n"
CNY_LIST = xlsx(("Contacts", [["Name", "Phone"], ["Tan Mei Ling", "016-234 5678"],
                              ["Lim Wei", "017-345 6789"]]))


@pytest.fixture
def page(tmp_path: Path, browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    with dashboard(tmp_path, {"SANDBOX_SPEED": "fast", "SEND_PACING": "off"}) as base:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.goto(f"{base}/new_blast")
        wait_until_drawn(tab)
        yield tab
        tab.close()


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(800)
    wait_until_drawn(page)


def _write(page, message: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_role("textbox", name="Message")
    box.fill(message)
    box.press("Control+Enter")
    _settle(page)


def _send_test(page) -> None:  # type: ignore[no-untyped-def]
    """Press Send test once the page has drawn (on a busy machine a rerun still drawing could
    take the press), then wait for its confirmation; what the page says instead, if it never
    comes."""
    wait_until_drawn(page)
    page.get_by_role("button", name="Send test").click()
    try:
        page.get_by_text("Test sent to +60129998888").wait_for(timeout=30_000)
    except TimeoutError:
        said = [alert.inner_text() for alert in page.get_by_test_id("stAlert").all()]
        raise AssertionError(f"no test was confirmed; the page said {said}") from None


def test_the_next_list_shows_no_test_of_the_last_and_keeps_the_number(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raya, cny = tmp_path / "raya_list.csv", tmp_path / "cny_list.xlsx"
    raya.write_text(RAYA_LIST, encoding="utf-8")
    cny.write_bytes(CNY_LIST)
    page.locator("input[type=file]").first.set_input_files(str(raya))
    page.get_by_text("Ready to send", exact=True).wait_for(timeout=30_000)
    page.get_by_role("textbox", name="Campaign tag").fill("Raya")
    page.keyboard.press("Enter")
    _settle(page)
    _write(page, "Salam {name}! Jualan Raya di outlet Shah Alam")
    page.get_by_role("textbox", name="Your WhatsApp number").fill("012-999 8888")
    page.keyboard.press("Enter")
    _settle(page)
    _send_test(page)
    page.get_by_role("button", name="Send to 2 people").click()
    page.get_by_text("is sending now").wait_for(timeout=30_000)

    page.locator("input[type=file]").first.set_input_files(str(cny))
    page.get_by_text("cny_list.xlsx").first.wait_for(timeout=30_000)
    _settle(page)
    _write(page, "Gong Xi Fa Cai {name}! CNY sale this weekend")
    page.get_by_text("Gong Xi Fa Cai Tan Mei Ling! CNY sale this weekend").first.wait_for(timeout=30_000)
    assert not page.get_by_text("Test sent to").count(), "the last blast's test says nothing of this one"
    assert not page.get_by_text("changed since that test").count()
    assert page.get_by_role("textbox", name="Your WhatsApp number").input_value() == "012-999 8888"
    _send_test(page)  # the server holds the number the box shows
    # The test shown is this list's: the preview and the test sent, each drawn in its turn.
    expect(page.get_by_text("Gong Xi Fa Cai Tan Mei Ling! CNY sale this weekend").nth(1)).to_be_attached(
        timeout=30_000)
