"""Tables as marketers read them: one row per blast with its rates."""

from __future__ import annotations

import pandas as pd

from core.funnel import BlastFunnel


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def blast_table(rows: list[BlastFunnel], *, timezone: str) -> pd.DataFrame:
    records = []
    for row in rows:
        f = row.funnel
        records.append(
            {
                "Blast": row.blast_id,
                "Open": f"/blast?blast={row.blast_id}",
                "Date": pd.Timestamp(row.blast_date).tz_convert(timezone).tz_localize(None),
                "Name": row.name or "",
                "Tag": row.blast_tag or "",
                "Follow-up stage": row.follow_up_stage or "",
                "State": row.state,
                "Recipients": f.total,
                "Sent": f.sent,
                "Received %": _rate(f.received, f.sent),
                "Read %": _rate(f.read, f.sent),
                "Replied %": _rate(f.replied, f.sent),
                "Closed %": _rate(f.closed, f.sent),
                "Failed": f.failed,
                "Unknown": f.unknown,
            }
        )
    return pd.DataFrame.from_records(records)
