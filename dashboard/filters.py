"""The blast filters (date range, tags, follow-up stages), kept in the URL so a view can be shared."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from core.funnel import FunnelFilter


def _parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def render_filters(
    *, tags: list[str], stages: list[str], timezone: str, key_prefix: str = "flt"
) -> FunnelFilter:
    """Filter widgets seeded from the URL's query parameters, which they keep up to date."""
    params = st.query_params
    start = _parse_date(params.get("from"))
    end = _parse_date(params.get("to"))
    chosen_tags = [t for t in params.get_all("tag") if t in tags]
    chosen_stages = [s for s in params.get_all("stage") if s in stages]

    col_dates, col_tags, col_stages = st.columns([3, 3, 3])  # room for both dates at 1366 px
    with col_dates:
        picked = st.date_input(
            "Blast dates",
            format="DD/MM/YYYY",
            value=(start, end) if start and end else (),
            key=f"{key_prefix}_dates",
            help="Leave empty for all time.",
        )
    with col_tags:
        chosen_tags = st.multiselect(
            "Campaign tags",
            tags,
            default=chosen_tags,
            key=f"{key_prefix}_tags",
            placeholder="All tags",
        )
    with col_stages:
        chosen_stages = st.multiselect(
            "Follow-up stages",
            stages,
            default=chosen_stages,
            key=f"{key_prefix}_stages",
            placeholder="All stages",
        )
    # One day picked (or the first click of a range): that day, not all time.
    start, end = (picked[0], picked[-1]) if picked else (None, None)
    _write_params(start, end, chosen_tags, chosen_stages)
    return FunnelFilter(
        start=start,
        end=end,
        tags=tuple(chosen_tags),
        follow_up_stages=tuple(chosen_stages),
        timezone=timezone,
    )


def _write_params(start: dt.date | None, end: dt.date | None, tags: list[str], stages: list[str]) -> None:
    wanted: dict[str, str | list[str]] = {}
    if start and end:
        wanted.update({"from": start.isoformat(), "to": end.isoformat()})
    if tags:
        wanted["tag"] = tags
    if stages:
        wanted["stage"] = stages
    current = {
        k: (st.query_params.get_all(k) if k in ("tag", "stage") else st.query_params.get(k))
        for k in st.query_params
    }
    if current != wanted:
        st.query_params.from_dict(wanted)
