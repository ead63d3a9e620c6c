"""Tables as marketers read them: one row per blast with its rates."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pandas as pd
import streamlit as st

from core.config import Settings
from core.funnel import BlastFunnel
from core.models import BlastState
from core.sending import gateways
from core.words import shown_percent
from dashboard.format import state_word

# Pixels per column, each its longest usual words and 8 px either side: a name such as
# "Year-End Clearance — Follow-up 2", a tag such as "Year-End Clearance", a stage such as
# "Follow-up 2". Everything up to the stage adds up to 888 px, inside the 904 px the table shows
# on a 1366 px laptop with the sidebar open, with room to spare for a scroll bar; what is only
# looked up now and then comes after.
BLAST_COLUMN_WIDTHS = {
    "Open": 58, "Name": 214, "State": 84, "Sent": 60, "Received %": 70, "Read %": 60, "Replied %": 62,
    "Closed %": 60, "Tag": 130, "Follow-up stage": 90, "Date": 130, "Failed": 60, "Unknown": 72,
    "Recipients": 84, "Blast": 56,
}


# Streamlit's rows and header are 35 px high; a table left to itself shows ten rows, in a box
# with half a laptop screen empty below it.
ROW_PX, ROWS_SHOWN = 35, 20


@contextlib.contextmanager
def no_toolbar_csv(key: str) -> Iterator[None]:
    """A box for a table that shows what others typed (a reply, a list's cells): its toolbar
    offers no "Download as CSV". That file holds cells as typed, and one starting with "=" runs
    as a formula in Excel; the pages' own downloads neutralise such cells. Streamlit can turn
    the toolbar's download off only for every table of the app, cell copying with it."""
    st.html(f"<style>.st-key-{key} [data-testid='stElementToolbarButton']"
            ":has(button[aria-label^='Download as CSV']) {display: none}</style>")
    with st.container(key=key):
        yield


def height_for(rows: int) -> int | str:
    """A table's height for a page of `rows`: up to ROWS_SHOWN of them in view, then it scrolls,
    with half of the next row showing. Cut at a row's edge, a page of 25 had looked like 20: the
    grid's scroll bar shows only once the pointer is over it."""
    if rows <= 10:
        return "auto"
    more = ROW_PX // 2 if rows > ROWS_SHOWN else 0
    return ROW_PX * (min(rows, ROWS_SHOWN) + 1) + more + 3


def _rate(part: int, whole: int) -> float | None:
    return shown_percent(100.0 * part / whole) if whole else None


def held_elsewhere(row: BlastFunnel, settings: Settings) -> bool:
    """An unfinished blast that the gateway in use will not send: made in practice mode while
    the dashboard now sends to WhatsApp, or the other way round."""
    return row.state in BlastState.ONGOING and not gateways.sends(row.device, settings=settings)


def _state(row: BlastFunnel, settings: Settings) -> str:
    return gateways.held_words(row.device) if held_elsewhere(row, settings) else state_word(row.state)


def blast_table(rows: list[BlastFunnel], *, timezone: str, settings: Settings) -> pd.DataFrame:
    """Newest first as given; dates in the team's time zone, rates as percent of sent.

    Built column by column: converting each row's date on its own took a tenth of a second
    for 2,000 blasts, on every rerun of the overview."""
    funnels = [row.funnel for row in rows]
    dates = pd.to_datetime([row.blast_date for row in rows], utc=True)
    # Name, state, rates, tag and stage first: on a 1366 px laptop they are what shows without
    # scrolling.
    return pd.DataFrame({
        "Open": [f"/blast?blast={row.blast_id}" for row in rows],
        "Name": [row.name or "" for row in rows],
        "State": [_state(row, settings) for row in rows],
        "Sent": [f.sent for f in funnels],
        "Received %": [_rate(f.received, f.sent) for f in funnels],
        "Read %": [_rate(f.read, f.sent) for f in funnels],
        "Replied %": [_rate(f.replied, f.sent) for f in funnels],
        "Closed %": [_rate(f.closed, f.sent) for f in funnels],
        "Tag": [row.blast_tag or "" for row in rows],
        "Follow-up stage": [row.follow_up_stage or "" for row in rows],
        "Date": dates.tz_convert(timezone).tz_localize(None),
        "Failed": [f.failed for f in funnels],
        "Unknown": [f.unknown for f in funnels],
        "Recipients": [f.total for f in funnels],
        "Blast": [row.blast_id for row in rows],
    })


def blast_table_columns() -> dict[str, Any]:
    """How `st.dataframe` shows the blast table: each column's header, format and width."""
    widths = BLAST_COLUMN_WIDTHS
    rates = ("Received %", "Read %", "Replied %", "Closed %")
    counts = ("Sent", "Failed", "Unknown", "Recipients", "Blast")
    return {
        "Open": st.column_config.LinkColumn("Open", display_text="Details", width=widths["Open"]),
        "Name": st.column_config.TextColumn(width=widths["Name"]),
        "State": st.column_config.TextColumn(
            width=widths["State"],
            help="Draft, scheduled, sending, paused, finished or cancelled. Practice only: made in "
            "practice mode, so not sent to WhatsApp. Waits for WhatsApp: made for WhatsApp, which "
            "practice mode does not send.",
        ),
        "Date": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm", width=widths["Date"]),
        "Tag": st.column_config.TextColumn(width=widths["Tag"]),
        "Follow-up stage": st.column_config.TextColumn("Stage", width=widths["Follow-up stage"]),
        # Headed "Received", not "Received %": the values say "%" already, and the shorter
        # headers leave a laptop the room for the whole name, the tag and the stage.
        **{c: st.column_config.NumberColumn(c.removesuffix(" %"), format="%.1f%%", width=widths[c],
                                            help=f"{c.removesuffix(' %')}, as a share of the messages sent.")
           for c in rates},
        **{c: st.column_config.NumberColumn(width=widths[c]) for c in counts},
    }
