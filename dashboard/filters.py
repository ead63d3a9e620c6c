"""The blast filters (date range, tags, follow-up stages), kept in the URL so a view can be shared."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from core.funnel import FunnelFilter
from dashboard.compose import plain

# The query parameters the filters own.
_PARAMS = ("from", "to", "tag", "stage")


def _parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _kept_key(key_prefix: str) -> str:
    return f"{key_prefix}_kept"


def _wanted_params(key_prefix: str) -> dict[str, list[str]]:
    """The filters to start from: the URL's when it names any (a shared link, a bookmark),
    else the ones last chosen in this session. Streamlit clears both the URL and the widgets'
    state when another page is opened from the sidebar; a plain key of session state is kept."""
    params = st.query_params
    if any(name in params for name in _PARAMS):
        return {name: params.get_all(name) for name in _PARAMS}
    return st.session_state.get(_kept_key(key_prefix), {})


def render_filters(
    *, tags: list[str], stages: list[str], timezone: str, key_prefix: str = "flt",
    leave_out_practice: bool = False,
) -> FunnelFilter:
    """Filter widgets seeded from the URL's query parameters (or, without any, from the last
    choice of the session), which they keep up to date. `leave_out_practice` goes into the
    filter as it is: no widget sets it."""
    wanted = _wanted_params(key_prefix)
    start = _parse_date(next(iter(wanted.get("from", [])), None))
    end = _parse_date(next(iter(wanted.get("to", [])), None))
    asked_tags, asked_stages = (list(dict.fromkeys(wanted.get(name, []))) for name in ("tag", "stage"))
    chosen_tags = [t for t in asked_tags if t in tags]
    chosen_stages = [s for s in asked_stages if s in stages]

    col_dates, col_tags, col_stages = st.columns([3, 3, 3])  # room for both dates at 1366 px
    with col_dates:
        picked = st.date_input(
            "Blast dates",
            format="DD/MM/YYYY",
            value=tuple(day for day in (start, end) if day) if start else (),
            key=f"{key_prefix}_dates",
            help="The blasts sent on these days, with everything that came of them since (a reply "
            "today to last week's blast counts for last week). A start alone: from that day on. "
            "Leave empty for all time.",
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
    for missing in (_missing_words(asked_tags, tags, what="campaign tag", every="all tags"),
                    _missing_words(asked_stages, stages, what="follow-up stage", every="all stages")):
        if missing:
            st.warning(missing, icon=":material/filter_alt_off:")
    # A start alone (the first click of a range, or the end left empty): from that day on, as
    # the box reads ("20/11/2026 – dd/mm/yyyy"). A single day is that day picked twice.
    start, end = (picked[0], picked[1] if len(picked) > 1 else None) if picked else (None, None)
    if start and not end:
        col_dates.caption(f"From {start:%d/%m/%Y} on.")
    _keep(key_prefix, start, end, chosen_tags, chosen_stages)
    return FunnelFilter(
        start=start,
        end=end,
        tags=tuple(chosen_tags),
        follow_up_stages=tuple(chosen_stages),
        timezone=timezone,
        leave_out_practice=leave_out_practice,
    )


def _missing_words(asked: list[str], known: list[str], *, what: str, every: str) -> str | None:
    """ "No campaign tag called “Raya”: showing all tags.", for names a link asks for that no
    blast has (mistyped, or their blasts deleted); None when every one is known."""
    missing = [name for name in asked if name not in known]
    if not missing:
        return None
    names = " or ".join(f"“{plain(name)}”" for name in missing)
    rest = f"showing {every}" if len(missing) == len(asked) else "the others are shown"
    return f"No {what} called {names}: {rest}."


def _keep(key_prefix: str, start: dt.date | None, end: dt.date | None, tags: list[str],
          stages: list[str]) -> None:
    """Write the choice to the URL and to the session's own copy."""
    wanted: dict[str, list[str]] = {}
    if start:
        wanted["from"] = [start.isoformat()]
    if start and end:
        wanted["to"] = [end.isoformat()]
    if tags:
        wanted["tag"] = list(tags)
    if stages:
        wanted["stage"] = list(stages)
    st.session_state[_kept_key(key_prefix)] = wanted
    current = {k: st.query_params.get_all(k) for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


def _filter_words(filters: FunnelFilter) -> str:
    """The filters in use, in words ("dates 01/11/2026 to 15/11/2026; tag Raya"); empty with none."""
    parts = []
    if filters.start and filters.end:
        first, last = (day.strftime("%d/%m/%Y") for day in (filters.start, filters.end))
        parts.append(f"date {first}" if first == last else f"dates {first} to {last}")
    elif filters.start:
        parts.append(f"dates from {filters.start:%d/%m/%Y} on")
    if filters.tags:
        parts.append(("tag " if len(filters.tags) == 1 else "tags ") + ", ".join(filters.tags))
    if filters.follow_up_stages:
        stages = filters.follow_up_stages
        parts.append(("follow-up stage " if len(stages) == 1 else "follow-up stages ") + ", ".join(stages))
    return "; ".join(parts)


def nothing_matches(filters: FunnelFilter) -> str | None:
    """What to say when no recipient is in the blasts the filters choose, naming the filters
    set and what to loosen; None when none is set (then they are not the reason)."""
    chosen = _filter_words(filters)
    if not chosen:
        return None
    loosen = [words for words, set_ in (("widen the dates", filters.start),
                                        ("clear a tag", filters.tags),
                                        ("clear a stage", filters.follow_up_stages)) if set_]
    advice = loosen[0] if len(loosen) == 1 else ", ".join(loosen[:-1]) + " or " + loosen[-1]
    return f"No recipients match these filters ({chosen}). {advice.capitalize()}."
