"""Tables as marketers read them: one row per blast with its rates."""

from __future__ import annotations

import pandas as pd

from core.funnel import BlastFunnel
from dashboard.format import state_word


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def blast_table(rows: list[BlastFunnel], *, timezone: str) -> pd.DataFrame:
    """Newest first as given; dates in the team's time zone, rates as percent of sent.

    Built column by column: converting each row's date on its own took a tenth of a second
    for 2,000 blasts, on every rerun of the overview."""
    funnels = [row.funnel for row in rows]
    dates = pd.to_datetime([row.blast_date for row in rows], utc=True)
    # What a marketer compares first comes first: the rates, before the bookkeeping.
    return pd.DataFrame({
        "Open": [f"/blast?blast={row.blast_id}" for row in rows],
        "Date": dates.tz_convert(timezone).tz_localize(None),
        "Name": [row.name or "" for row in rows],
        "Tag": [row.blast_tag or "" for row in rows],
        "Follow-up stage": [row.follow_up_stage or "" for row in rows],
        "Sent": [f.sent for f in funnels],
        "Received %": [_rate(f.received, f.sent) for f in funnels],
        "Read %": [_rate(f.read, f.sent) for f in funnels],
        "Replied %": [_rate(f.replied, f.sent) for f in funnels],
        "Closed %": [_rate(f.closed, f.sent) for f in funnels],
        "Failed": [f.failed for f in funnels],
        "Unknown": [f.unknown for f in funnels],
        "Recipients": [f.total for f in funnels],
        "State": [state_word(row.state) for row in rows],
        "Blast": [row.blast_id for row in rows],
    })
