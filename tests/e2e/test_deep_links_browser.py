"""A visitor's first request for a deep link on a freshly started server, in a real browser.

Streamlit can run a page file by itself for that first request, before the router has run
once (its older multipage mode): without the router's login, and with every file of pages/
in the sidebar. The pages send such a visitor through the router, which keeps the address.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.passwords import hash_password
from tests.support.browser import dashboard, serving, wait_until_drawn

pytestmark = pytest.mark.e2e
PASSWORD = "raya-2026-tracker"


def _first_visit(browser, base: str, path: str):  # type: ignore[no-untyped-def]
    tab = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()  # tabs of one browser
    tab.goto(base + path)  # nobody has opened this server before
    tab.wait_for_timeout(1500)
    wait_until_drawn(tab)
    return tab


def test_a_first_deep_link_asks_for_the_password_then_opens_the_page(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {"RUN_WORKER": "false", "DASHBOARD_PASSWORD_HASH": hash_password(PASSWORD)}
    with dashboard(tmp_path, env) as base:
        tab = _first_visit(browser, base, "/health?from=bookmark")
        body = tab.inner_text("body")
        assert "Settings & health" not in body and "Webhook" not in body, "a page shown without logging in"
        # The file list of Streamlit's own page mode may flash by; once the login is up, it is gone.
        tab.get_by_label("Password", exact=True).wait_for(timeout=30_000)
        assert not any("health" in t for t in tab.locator('[data-testid="stSidebar"]').all_inner_texts())
        tab.get_by_label("Password", exact=True).fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        tab.get_by_text("Everything the tracker depends on", exact=False).wait_for(timeout=30_000)
        assert tab.url.endswith("/health?from=bookmark")

        # A link opened in a new tab (the blast tables' "Details") needs no second login.
        second = tab.context.new_page()
        second.goto(base + "/opt_outs")
        second.get_by_role("heading", name="Opt-outs").wait_for(timeout=30_000)
        assert not second.get_by_label("Password", exact=True).count()

        second.get_by_role("button", name="Log out").click()
        second.get_by_label("Password", exact=True).wait_for(timeout=30_000)
        third = tab.context.new_page()
        third.goto(base + "/opt_outs")
        third.get_by_label("Password", exact=True).wait_for(timeout=30_000)
        assert "People who asked not to be messaged" not in third.inner_text("body")


def test_a_first_deep_link_without_a_password_opens_the_page_through_the_router(  # type: ignore[no-untyped-def]
    browser, tmp_path: Path
) -> None:
    with serving(tmp_path, {"RUN_WORKER": "false"}) as served:
        tab = _first_visit(browser, served.url, "/health")
        tab.get_by_text("Everything the tracker depends on", exact=False).wait_for(timeout=30_000)
        sidebar = tab.locator('[data-testid="stSidebar"]').inner_text()
        assert "Settings & health" in sidebar and "new blast" not in sidebar, "the router's titles, not files"
    # Whoever starts the server reads its first lines: nothing there should look like trouble.
    # Streamlit had warned of "No runtime found" as modules with cached functions were imported,
    # and of a "missing ScriptRunContext" as the server, not a page, imported the app.
    trouble = ("No runtime found", "missing ScriptRunContext", "WARNING", "Traceback", "ERROR")
    alarming = [line for line in served.said if any(w in line for w in trouble)]
    assert not alarming, "".join(served.said)
