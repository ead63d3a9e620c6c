"""Blast detail in a real browser: links between blasts open them, and each blast shows its own
inputs. AppTest cannot click a page link, nor keep widget values the way a browser does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError, expect

from core.db import make_engine, migrate, transaction
from core.models import utcnow
from tests.support.browser import dashboard, wait_until_drawn
from tests.support.factories import make_blast, make_recipient

pytestmark = pytest.mark.e2e


@pytest.fixture
def blasts(tmp_path: Path) -> tuple[Path, int, int]:
    """A finished blast and its follow-up draft, each with its own message."""
    engine = make_engine(f"sqlite:///{tmp_path / 'blasts.db'}")
    migrate(engine)
    with transaction(engine) as s:
        parent = make_blast(s, name="Raya promo", state="completed", message_template="Raya is here, {name}")
        for _ in range(3):
            make_recipient(s, parent, status="READ_ACK", sent_at=utcnow(), read_timestamp=utcnow())
        child = make_blast(s, name="Raya nudge", state="draft", parent_blast_id=parent.id,
                           follow_up_stage="Follow-up 1", message_template="Still keen, {name}?")
        make_recipient(s, child)
        ids = parent.id, child.id
    engine.dispose()
    return tmp_path, *ids


@pytest.fixture
def page(blasts: tuple[Path, int, int], browser) -> Iterator[object]:  # type: ignore[no-untyped-def]
    with dashboard(blasts[0], {"SEND_PACING": "off"}) as base:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.goto(base)  # through the router first, as a marketer arrives
        wait_until_drawn(tab)
        tab.base = base  # type: ignore[attr-defined]
        yield tab
        tab.close()


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    page.wait_for_timeout(800)
    wait_until_drawn(page)


def _pick(page, option: str) -> None:  # type: ignore[no-untyped-def]
    """Pick a blast in the page's picker. On a busy machine a rerun finishing just after the
    click redraws the picker and closes its list: open it again until the option shows."""
    for _ in range(5):
        page.get_by_test_id("stSelectbox").first.click()
        choice = page.get_by_role("option").filter(has_text=option)
        try:
            choice.wait_for(timeout=5_000)
        except TimeoutError:
            page.keyboard.press("Escape")
            wait_until_drawn(page)
            continue
        choice.click()
        return
    raise AssertionError(f"the blast picker never offered {option!r}")


def _shows(page, name: str, blast_id: int) -> None:  # type: ignore[no-untyped-def]
    """The page shows that blast, at its address: waited for, since a page can look drawn
    before its next run has started on a busy machine."""
    expect(page.locator("h3").first).to_contain_text(name, timeout=30_000)
    expect(page).to_have_url(re.compile(rf"\?blast={blast_id}$"), timeout=30_000)


def _messages(page, expected_count: int) -> list[str]:  # type: ignore[no-untyped-def]
    """The message boxes' text, once that many are on the page: a page can look drawn while
    its script is still running on a busy machine (Streamlit shows its running sign late)."""
    boxes = page.locator("textarea")
    boxes.nth(expected_count - 1).wait_for(state="attached", timeout=30_000)  # some sit in hidden tabs
    return [boxes.nth(i).input_value() for i in range(boxes.count())]


def test_links_between_blasts_open_them_with_their_own_inputs(page, blasts) -> None:  # type: ignore[no-untyped-def]
    _, parent_id, child_id = blasts
    page.goto(f"{page.base}/blast?blast={child_id}")
    _settle(page)
    _shows(page, "Raya nudge", child_id)
    assert _messages(page, 2) == ["Still keen, {name}?"] * 2, "the draft's message and the follow-up's"

    page.get_by_text(f"Follow-up of blast #{parent_id}").click()
    _settle(page)
    _shows(page, "Raya promo", parent_id)
    page.get_by_role("tab", name="Follow up").click()
    assert _messages(page, 1) == ["Raya is here, {name}"], "not the draft's message seen before"
    # The chain has a Follow-up 1 already (the draft): the next one is proposed past it.
    assert page.get_by_label("Follow-up stage").input_value() == "Follow-up 2"

    page.get_by_label("…who reached that stage at least this many hours ago").fill("0")
    page.keyboard.press("Enter")
    _settle(page)
    # Not the first blast's words again: the page would ask first.
    message = page.get_by_role("textbox", name="Message")
    message.fill("Last days of Raya, {name}")
    message.press("Control+Enter")
    _settle(page)
    page.get_by_role("button", name="Create follow-up draft").click()
    _settle(page)
    new_id = child_id + 1
    expect(page.get_by_text(f"Draft blast #{new_id} created for 3 recipients.")).to_be_visible(timeout=30_000)
    # Not twice by accident. Waited for: on a busy machine the new run draws the message above
    # before it reaches the button, which shows its previous state until then.
    expect(page.get_by_role("button", name="Create follow-up draft")).to_be_disabled(timeout=30_000)

    page.get_by_role("link", name=f"Open blast #{new_id}").first.click()
    _settle(page)
    _shows(page, "Raya promo — Follow-up 2", new_id)

    _pick(page, f"#{child_id} ·")
    _settle(page)
    _shows(page, "Raya nudge", child_id)  # picking a blast updates the address
