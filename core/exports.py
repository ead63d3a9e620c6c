"""CSV exports that a spreadsheet opens safely: no cell is ever run as a formula."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable, Sequence

import pandas as pd
from sqlalchemy.orm import Session

from core.recipients import SELECTIONS, select_recipients
from core.statuses import STATUS_WORDS, Status

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_cell(value: object) -> object:
    """Text that a spreadsheet would evaluate gets a leading apostrophe; the rest is untouched."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(rows: Iterable[Sequence[object]], *, columns: Sequence[str]) -> bytes:
    """UTF-8 with a BOM, so Excel shows Malay and Chinese names and emoji correctly."""
    frame = pd.DataFrame([[safe_cell(v) for v in row] for row in rows], columns=list(columns))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


# `status` keeps the plan's name (what queries and re-imports match); `status_in_words` says it
# as the dashboard does.
EXPORT_COLUMNS = ("phone_number", "name", "status", "status_in_words", "sent_at", "delivered_at", "read_at",
                  "replied_at", "reply_text", "closed_at", "error")


def _local(moment: dt.datetime | None, zone: dt.tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def _status_words(status: str) -> str:
    try:
        return STATUS_WORDS[Status(status)]
    except ValueError:
        return status


def stage_csv(session: Session, *, blast_id: int, selection: str, zone: dt.tzinfo) -> bytes:
    """The recipients of one stage of a blast, with their times in the team's zone."""
    query = select_recipients(blast_ids=[blast_id], selector=SELECTIONS[selection])
    rows = (
        (r.phone_number, r.contact_name or "", r.status, _status_words(r.status), _local(r.sent_at, zone),
         _local(r.delivered_at, zone), _local(r.read_timestamp, zone), _local(r.replied_at, zone),
         r.reply_text or "", _local(r.closed_at, zone), r.error or "")
        for r in session.scalars(query.order_by("id"))
    )
    return to_csv(rows, columns=EXPORT_COLUMNS)
