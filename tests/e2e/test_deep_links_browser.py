"""Deep links (a page other than the Overview, with its query) opened by a visitor who has not
logged in yet, in a real browser: they ask for the password, then open what was asked for.

On a freshly started server Streamlit can run a page file by itself for the first request,
before the router has run once (its older multipage mode): without the router's login, and
with every file of pages/ in the sidebar. The pages send such a visitor through the router,
which keeps the address. On a server that has run, the router itself gets the request.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.db import make_engine, migrate, transaction
from core.passwords import hash_password
from tests.support.browser import dashboard, serving, wait_until_drawn
from tests.support.factories import make_blast, make_recipient

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
    # Its own lines say when, how bad and from where: `streamlit run` sets up no logging itself.
    started = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO core\.server: server started "
                         r"\(sandbox gateway\)$")
    assert any(started.match(line.strip()) for line in served.said), "".join(served.said)


def _two_blasts(data_dir: Path) -> int:
    """Two blasts in the dashboard's default database; the older one's id, which Blast detail
    shows only when the link asks for it (it opens on the newest)."""
    engine = make_engine(f"sqlite:///{data_dir / 'blasts.db'}")
    migrate(engine)
    with transaction(engine) as s:
        older = make_blast(s, name="Raya promo", state="completed")
        make_recipient(s, older)
        make_recipient(s, make_blast(s, name="Merdeka sale", state="draft"))
        older_id = older.id
    engine.dispose()
    return older_id


# What Streamlit says when the router does not know the page in the address.
NOT_FOUND = ("Page not found", "does not seem to exist")


@pytest.mark.parametrize(
    ("path", "heading", "content"),
    [
        ("/", "Overview", "What became of your messages"),
        ("/blast?blast={older}", "Blast detail", "Raya promo"),
        ("/replies", "Replies", "Who wrote back"),
        ("/opt_outs?from=chat", "Opt-outs", "People who asked not to be messaged"),
    ],
)
def test_a_deep_link_on_a_server_that_has_run_asks_for_the_password_then_opens_the_page(  # type: ignore[no-untyped-def]
    browser, tmp_path: Path, path: str, heading: str, content: str
) -> None:
    path = path.format(older=_two_blasts(tmp_path))
    env = {"RUN_WORKER": "false", "DASHBOARD_PASSWORD_HASH": hash_password(PASSWORD)}
    with dashboard(tmp_path, env) as base:
        earlier = _first_visit(browser, base, "/")  # someone else opened the dashboard first
        earlier.get_by_label("Password", exact=True).wait_for(timeout=30_000)
        earlier.context.close()

        tab = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()  # a new browser
        tab.goto(base + path)
        tab.get_by_label("Password", exact=True).wait_for(timeout=30_000)
        wait_until_drawn(tab)
        body = tab.inner_text("body")
        assert not any(words in body for words in NOT_FOUND), body
        for shown in (heading, content, "practice mode"):
            assert shown not in body, f"{shown!r} shown without logging in"

        tab.get_by_label("Password", exact=True).fill(PASSWORD)
        tab.get_by_role("button", name="Log in").click()
        tab.get_by_role("heading", name=heading).wait_for(timeout=30_000)
        tab.get_by_text(content, exact=False).first.wait_for(timeout=30_000)
        wait_until_drawn(tab)
        assert tab.url == base + path
        assert not any(words in tab.inner_text("body") for words in NOT_FOUND)
        assert not tab.get_by_label("Password", exact=True).count()
