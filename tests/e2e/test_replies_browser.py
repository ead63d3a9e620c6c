"""The Replies list in a real browser: one way to download it. AppTest cannot see the table's
own toolbar, which only the browser draws."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.db import make_engine, migrate, transaction
from core.models import utcnow
from tests.support.browser import dashboard, wait_until_drawn
from tests.support.factories import make_blast
from tests.test_replies_page import _replied

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
