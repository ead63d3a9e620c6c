"""End to end in a real browser: the real server, the sandbox gateway, a marketer's whole path.

Screenshots of each page land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import PROJECT_ROOT
from core.db import make_engine, transaction
from core.funnel import funnel
from tests.support.browser import dashboard, wait_until_drawn

SHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
CONTACTS = (
    "Nama,No. Telefon\nAisyah,012-345 6789\nWei Ling,+60 11-2345 6789\n"
    "Ravi,019 876 5432\nNobody,12345\n"
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`streamlit run streamlit_app.py`, as the README starts it, on the embedded default."""
    data_dir = tmp_path_factory.mktemp("e2e-data")
    with dashboard(data_dir, {"SANDBOX_SPEED": "fast", "SEND_PACING": "off"}) as base:
        yield base, data_dir


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    wait_until_drawn(page)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _metric(page, label: str) -> str:  # type: ignore[no-untyped-def]
    metric = page.get_by_test_id("stMetric").filter(has=page.get_by_text(label, exact=True)).first
    return metric.get_by_test_id("stMetricValue").inner_text().strip()


def _wait_for_metric(page, label: str, expected: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while _metric(page, label) != expected:
        assert time.monotonic() < deadline, f"{label} stayed at {_metric(page, label)}, wanted {expected}"
        page.wait_for_timeout(500)


def _settled_funnel(engine, quiet_seconds: float = 3.0, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """The funnel once the sandbox's receipts and replies (real HTTP webhooks) stop arriving."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        with transaction(engine) as s:
            counts = funnel(s)
        if counts != last:
            last, since = counts, time.monotonic()
        elif counts.sent == 3 and time.monotonic() - since >= quiet_seconds:
            return counts
        assert time.monotonic() < deadline, counts
        time.sleep(0.3)


def test_upload_send_watch_the_funnel_fill_and_export(server, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, data_dir = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)

    page.goto(base)
    page.get_by_text("No blasts yet").wait_for(timeout=30_000)
    assert page.get_by_text("practice mode").first.is_visible()
    _shot(page, "1-overview-empty")

    page.get_by_role("link", name="New blast", exact=True).click()
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(CONTACTS, encoding="utf-8-sig")
    page.locator("input[type=file]").first.set_input_files(str(contacts))
    page.get_by_text("Ready to send", exact=True).wait_for(timeout=30_000)
    assert _metric(page, "Ready to send") == "3"
    assert _metric(page, "Not a usable number") == "1"
    page.get_by_role("textbox", name="Campaign tag").fill("Raya")
    page.get_by_role("textbox", name="Campaign tag").press("Tab")
    page.get_by_role("textbox", name="Message").fill("Hi {name}, *Raya* sale is on 🎉")
    page.get_by_role("textbox", name="Message").press("Control+Enter")
    page.get_by_text("Hi Aisyah, Raya sale is on 🎉").first.wait_for(timeout=30_000)
    _shot(page, "2-new-blast")
    page.get_by_role("button", name="Send to 3 people").click()
    page.get_by_text("is sending now").wait_for(timeout=30_000)

    page.get_by_role("link", name="Follow blast #1").click()
    page.get_by_text("Still to send").wait_for(timeout=30_000)
    _wait_for_metric(page, "Still to send", "0")
    _shot(page, "3-blast-detail")

    engine = make_engine(f"sqlite:///{data_dir / 'blasts.db'}")
    counts = _settled_funnel(engine)
    assert counts.sent == 3 and counts.received >= 1, counts

    page.get_by_role("link", name="Overview").click()
    page.get_by_text("Day by day").wait_for(timeout=30_000)
    for label, value in (
        ("Sent", counts.sent),
        ("Received", counts.received),
        ("Read", counts.read),
        ("Replied", counts.replied),
    ):
        assert _metric(page, label) == f"{value:,}", label
    _shot(page, "4-overview")

    page.get_by_role("link", name="Blast detail").click()
    page.get_by_role("tab", name="Export").click()
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download “Everyone” as CSV").click()
    exported = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert sorted(r["Name"] for r in rows) == ["Aisyah", "Ravi", "Wei Ling"]
    assert all(r["Number"].startswith("'+60") for r in rows), "formula-safe phone numbers"

    page.get_by_role("link", name="Settings & health").click()
    page.get_by_text("Last event received").wait_for(timeout=30_000)
    _shot(page, "5-health")
    page.close()


def test_another_file_starts_with_empty_boxes_and_no_tick(server, browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A tick given for one list ("send anyway, leaving the gaps empty"), its tag and its message
    must not send another list. Reset by the uploader's callback: reset by the script instead,
    the browser could still show, or send back, the first file's values. Choosing another file
    first takes the old one off (a run with no file, which draws no boxes), and the browser
    then sent the old values with the new file; on a busy machine this test caught it."""
    base, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("Name,Phone,Product\n" + "".join(
        f"Amin {i},013-40{i:05d},{'Kuih' if i % 2 else ''}\n" for i in range(120)), encoding="utf-8")
    second.write_text("Name,Phone,Product\n" + "".join(
        f"Chen {i},013-41{i:05d},Kuih\n" for i in range(40)), encoding="utf-8")
    page.goto(f"{base}/new_blast")
    page.locator("input[type=file]").first.set_input_files(str(first))
    page.get_by_text("Ready to send", exact=True).wait_for(timeout=30_000)
    page.get_by_role("textbox", name="Campaign tag").fill("First list")
    page.keyboard.press("Enter")
    wait_until_drawn(page)
    page.get_by_role("textbox", name="Message").fill("Hi {name}, {product} is in")
    page.get_by_role("textbox", name="Message").press("Control+Enter")
    tick = page.get_by_role("checkbox", name="Send anyway, leaving the gaps empty")
    page.get_by_text("Send anyway, leaving the gaps empty").click()
    wait_until_drawn(page)
    assert tick.is_checked()

    page.locator("input[type=file]").first.set_input_files(str(second))
    page.get_by_text("second.csv").first.wait_for(timeout=30_000)
    wait_until_drawn(page)
    page.wait_for_timeout(1_000)
    wait_until_drawn(page)
    assert page.get_by_role("textbox", name="Message").input_value() == ""
    # What the server holds, not only what the box shows: the browser had sent the last
    # file's message back with the next file once the first was taken off.
    assert page.get_by_text("Write the message to see how it will look.").is_visible()
    assert page.get_by_role("textbox", name="Campaign tag").input_value() == ""
    assert not tick.count() or not tick.is_checked()
