"""The Overview and the Blast detail on a phone, a laptop and a desktop screen, with six weeks of
demo blasts: no chart's words cut at its edge or hidden under its tool bar, and the blast table
showing whole names, tags and stages on a laptop without scrolling; the Replies table showing
whole times, numbers, statuses and blast names on a laptop, and the number on a phone."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Row, select

from core.config import PROJECT_ROOT, Settings
from core.db import make_engine, migrate, transaction
from core.models import Blast, utcnow
from core.phones import normalise
from core.statuses import Status
from dashboard.blast_views import status_word
from dashboard.reply_views import INBOX_COLUMNS, OPTED_OUT, when_replied
from dashboard.tables import blast_table
from tests.support.browser import dashboard, wait_until_drawn
from tests.support.factories import make_blast, make_recipient

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
DESKTOP = {"width": 1920, "height": 1080}
# Each page, and words that show once it has drawn everything.
PAGES = (("/", "Day by day"), ("/blast", "Where recipients are now"))

# Every word a chart draws (not a hover label) that reaches past the chart's edge, as
# [words, left, right, top, bottom] from the chart's top left corner.
_CUT_WORDS = """chart => {
    const box = chart.getBoundingClientRect();
    return [...chart.querySelectorAll('svg.main-svg text')]
        .filter(t => !t.closest('.hoverlayer') && t.textContent.trim())
        .map(t => [t.textContent, t.getBoundingClientRect()])
        .filter(([, r]) => r.left < box.left - 1 || r.right > box.right + 1
                           || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        .map(([words, r]) => [words, ...[r.left - box.left, r.right - box.left, r.top - box.top,
                                         r.bottom - box.top].map(Math.round)]);
}"""
# Pairs of words a chart draws one over the other (not a hover label), as [words, words].
_OVERLAPPING_WORDS = """chart => {
    const boxes = [...chart.querySelectorAll('svg.main-svg text')]
        .filter(t => !t.closest('.hoverlayer') && t.textContent.trim())
        .map(t => [t.textContent, t.getBoundingClientRect()]);
    const over = (a, b) => a.left < b.right - 1 && b.left < a.right - 1
                           && a.top < b.bottom - 1 && b.top < a.bottom - 1;
    return boxes.flatMap(([w, r], i) => boxes.slice(i + 1).filter(([, q]) => over(r, q))
                                             .map(([v]) => [w, v]));
}"""
# What the tool bar, shown on hover, covers: the words and the plot area (bars, cells, lines) it
# lies over.
_UNDER_TOOL_BAR = """chart => {
    const bar = chart.querySelector('.modebar').getBoundingClientRect();
    const over = r => r.width > 0 && r.left < bar.right && r.right > bar.left
                      && r.top < bar.bottom && r.bottom > bar.top;
    const words = [...chart.querySelectorAll('svg.main-svg text')]
        .filter(t => !t.closest('.hoverlayer') && t.textContent.trim() && over(t.getBoundingClientRect()))
        .map(t => t.textContent);
    const plots = [...chart.querySelectorAll('.nsewdrag')].filter(p => over(p.getBoundingClientRect()));
    return [...words, ...plots.map(() => 'the plot area')];
}"""
# Where the blast table draws the lines between its columns, from its left edge: it is drawn on
# a canvas, so the lines are found as columns of pixels of one colour, not the background's, all
# the way down its header.
_COLUMN_LINES = """grid => {
    const canvas = grid.querySelector('canvas[data-testid="data-grid-canvas"]');
    const ratio = canvas.width / canvas.clientWidth;
    const top = Math.round(4 * ratio), height = Math.round(26 * ratio), width = canvas.width;
    const pixels = canvas.getContext('2d').getImageData(0, top, width, height).data;
    const at = (x, y) => pixels.slice((y * width + x) * 4, (y * width + x) * 4 + 3).join();
    const background = at(Math.round(2 * ratio), 0);
    const lines = [];
    for (let x = 0; x < width; x++) {
        const colour = at(x, 0);
        if (colour === background) continue;
        let y = 1;
        while (y < height && at(x, y) === colour) y++;
        if (y === height) lines.push(x / ratio);
    }
    return {lines, shown: canvas.clientWidth};
}"""
# How wide the table's words are, in its own font.
_TEXT_WIDTHS = """(grid, words) => {
    const style = getComputedStyle(grid.querySelector('.stDataFrameGlideDataEditor'));
    const css = name => style.getPropertyValue(name);
    const context = document.createElement('canvas').getContext('2d');
    context.font = `${css('--gdg-base-font-style')} ${css('--gdg-font-family')}`;
    return {padding: parseFloat(css('--gdg-cell-horizontal-padding')),
            widths: words.map(w => context.measureText(w).width)};
}"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Six weeks of demo blasts and the dashboard on them, both as the README starts them."""
    data_dir = tmp_path_factory.mktemp("layout-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSAPME_", "DATABASE_URL"))}
    subprocess.run([sys.executable, "-m", "core", "seed-demo"], cwd=PROJECT_ROOT, check=True,
                   env={**env, "DATA_DIR": str(data_dir)}, capture_output=True)
    with dashboard(data_dir, {"RUN_WORKER": "false"}) as base:
        yield base, data_dir


def _open(browser, base: str, path: str, drawn: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport=viewport)
    page.goto(base + path)
    page.get_by_text(drawn, exact=True).wait_for(timeout=60_000)
    wait_until_drawn(page)
    return page


@pytest.mark.parametrize("viewport", [PHONE, LAPTOP, DESKTOP], ids=["phone", "laptop", "desktop"])
def test_no_chart_cuts_its_words_or_hides_them_under_its_tool_bar(demo, browser, viewport) -> None:  # type: ignore[no-untyped-def]
    base, _ = demo
    for path, drawn in PAGES:
        page = _open(browser, base, path, drawn, viewport)
        charts = page.get_by_test_id("stPlotlyChart")
        assert charts.count(), path
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.scroll_into_view_if_needed()
            assert chart.evaluate(_CUT_WORDS) == [], f"{path}, chart {i + 1}: words past its edge"
            chart.hover(position={"x": 5, "y": 5})  # the tool bar shows, no hover label in the way
            page.wait_for_timeout(400)
            assert chart.evaluate(_UNDER_TOOL_BAR) == [], f"{path}, chart {i + 1}: under the tool bar"
        page.close()


# Blasts with a bar about a third as wide as the widest (41 %, 41 %, 35 % of sent), by the stage
# whose bar it is. Beside such a bar, a stage's three lines of words had room neither inside nor
# beside it on a phone: they were drawn past the chart's edge (the demo data of one hour had one).
THIRD_WIDE = {"read": {"DELIVERY_ACK": 43, "REPLIED": 30},
              "replied": {"READ_ACK": 59, "REPLIED": 28, "CLOSED": 13},
              "closed": {"READ_ACK": 50, "REPLIED": 15, "CLOSED": 35}}
NARROW_PHONE = {"width": 360, "height": 780}


@pytest.fixture(scope="module")
def third_wide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    data_dir = tmp_path_factory.mktemp("third-wide")
    engine = make_engine(f"sqlite:///{data_dir / 'blasts.db'}")
    migrate(engine)
    with transaction(engine) as s:
        ids = []
        for stage, statuses in THIRD_WIDE.items():
            blast = make_blast(s, name=f"A third wide at {stage}", state="completed")
            for status, count in statuses.items():
                for _ in range(count):
                    make_recipient(s, blast, status=status, sent_at=utcnow())
            ids.append(blast.id)
    engine.dispose()
    with dashboard(data_dir, {"RUN_WORKER": "false"}) as base:
        yield base, ids


def test_the_funnel_keeps_its_words_on_a_phone_by_a_bar_a_third_wide(third_wide, browser) -> None:  # type: ignore[no-untyped-def]
    """On a 360 px phone, the narrowest common one (390 px is drawn with the demo data above)."""
    base, ids = third_wide
    for blast_id in ids:
        page = _open(browser, base, f"/blast?blast={blast_id}", "Where recipients are now", NARROW_PHONE)
        chart = page.get_by_test_id("stPlotlyChart").first
        chart.scroll_into_view_if_needed()
        assert chart.evaluate(_CUT_WORDS) == [], f"blast {blast_id}: words past the funnel's edge"
        assert chart.evaluate(_OVERLAPPING_WORDS) == [], f"blast {blast_id}: words over one another"
        page.close()


def _demo_blasts(data_dir: Path) -> Sequence[Row[tuple[str | None, str | None, str | None]]]:
    """Each demo blast's name, tag and follow-up stage."""
    engine = make_engine(f"sqlite:///{data_dir / 'blasts.db'}")
    with transaction(engine) as s:
        blasts = s.execute(select(Blast.name, Blast.blast_tag, Blast.follow_up_stage)).all()
    engine.dispose()
    return blasts


def _needed(grid, words: list[str]) -> float:  # type: ignore[no-untyped-def]
    """The width a column needs for the longest of these words in the table's font."""
    measured = grid.evaluate(_TEXT_WIDTHS, words)
    return max(measured["widths"]) + 2 * measured["padding"]


def test_the_blast_table_shows_whole_names_tags_and_stages_on_a_laptop(demo, browser) -> None:  # type: ignore[no-untyped-def]
    base, data_dir = demo
    blasts = _demo_blasts(data_dir)
    practice = Settings(_env_file=None, wsapme_token=None)
    headers = list(blast_table([], timezone="UTC", settings=practice).columns)
    page = _open(browser, base, "/", "Day by day", LAPTOP)
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    drawn = grid.evaluate(_COLUMN_LINES)
    edges = [0, *drawn["lines"]]
    assert len(edges) > headers.index("Follow-up stage") + 1, (
        f"the stage column runs past the table's {drawn['shown']} px: column edges at {edges}")
    for column, words in (("Name", [b.name for b in blasts]), ("Tag", [b.blast_tag for b in blasts]),
                          ("Follow-up stage", [b.follow_up_stage for b in blasts])):
        index = headers.index(column)
        width = edges[index + 1] - edges[index]
        needed = _needed(grid, [w for w in words if w])
        assert width >= needed, f"{column} is {width} px wide, its longest words need {needed:.0f}"
    page.close()


# Whether the table scrolls sideways: its columns run past what it shows.
_SCROLLS_SIDEWAYS = """grid => {
    const scroller = grid.querySelector('.dvn-scroller');
    return scroller.scrollWidth > scroller.clientWidth;
}"""
# A Malaysian mobile number at its longest (011 numbers have a digit more), as the table shows it.
LONG_NUMBER = normalise("011-1234 5678").e164 or ""


def _usual_times() -> list[str]:
    """What the When column says of a reply of this year: minutes and hours ago, yesterday, and
    a day of each month (a reply of an earlier year adds its year)."""
    zone = ZoneInfo("Asia/Kuala_Lumpur")
    now = dt.datetime(2026, 12, 31, 23, 59, 30, tzinfo=zone)
    moments = [now, now - dt.timedelta(minutes=59), now - dt.timedelta(hours=23), now - dt.timedelta(days=1),
               *(dt.datetime(2026, month, 28, 23, 59, tzinfo=zone) for month in range(1, 13))]
    return [when_replied(moment, zone=zone, now=now) for moment in moments]


def _replies_table(browser, base: str, viewport: dict[str, int]):  # type: ignore[no-untyped-def]
    """The Replies page on the demo's default dates, and its table's column edges from its left:
    the ticks' column first, then the page's columns, the last one ending where the table does."""
    page = _open(browser, base, "/replies", "Download for Excel", viewport)
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    drawn = grid.evaluate(_COLUMN_LINES)
    return page, grid, [0, *drawn["lines"], drawn["shown"]]


def test_the_replies_table_shows_whole_times_statuses_and_blast_names_on_a_laptop(demo, browser) -> None:  # type: ignore[no-untyped-def]
    """Its columns ran 27 px past the table: a long blast name was cut, and "yesterday 16:14"
    filled its column to the last pixel. The demo's replies on screen may not include the longest
    words, so these are measured in the table's font."""
    base, data_dir = demo
    page, grid, edges = _replies_table(browser, base, LAPTOP)
    assert not grid.evaluate(_SCROLLS_SIDEWAYS), f"the columns run past the table's {edges[-1]} px"
    headers = ["", *INBOX_COLUMNS]
    assert len(edges) == len(headers) + 1, f"column edges at {edges}"
    for column, words in (
        ("When", _usual_times()),
        ("Number", [LONG_NUMBER]),
        ("Status", [OPTED_OUT, status_word(Status.REPLIED), status_word(Status.CLOSED)]),
        ("Blast", [b.name for b in _demo_blasts(data_dir) if b.name]),
    ):
        index = headers.index(column)
        width = edges[index + 1] - edges[index]
        needed = _needed(grid, words)
        assert width >= needed, f"{column} is {width} px wide, its longest words need {needed:.0f}"
    page.close()


def test_the_replies_table_shows_the_whole_number_on_a_phone(demo, browser) -> None:  # type: ignore[no-untyped-def]
    """Only the first columns fit a phone: the number, who to call, must be among them."""
    base, _ = demo
    page, grid, edges = _replies_table(browser, base, PHONE)
    start = edges[["", *INBOX_COLUMNS].index("Number")]
    needed = _needed(grid, [LONG_NUMBER])
    assert start + needed <= edges[-1], f"the number starts {start} px in, the table shows {edges[-1]}"
    page.close()
