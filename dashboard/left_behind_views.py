"""The earlier database this dashboard no longer uses, on Settings & health: its opt-outs carried
over in one click, its blasts named as left where they are."""

from __future__ import annotations

import streamlit as st

from core.left_behind import LeftBehind, carry_over_opt_outs
from dashboard.data import session
from dashboard.format import plural
from dashboard.layout import friendly_errors

# The webhook's secret is kept in the database: a new one has a new address.
_NEW_ADDRESS = ("This database has a webhook address of its own (under Webhook): paste it into WSAPME "
                "again, or receipts and replies keep going to the earlier one.")
_ADDED = "left_behind_added"  # what the last click added, said once the page shows the list as it is


def render_left_behind(earlier: LeftBehind | None) -> None:
    """Nothing when there is no earlier database, or it holds nothing this one lacks."""
    if (added := st.session_state.pop(_ADDED, None)) is not None:
        st.success(f"{plural(added, 'number')} added to the opt-out list from the earlier database.",
                   icon=":material/check_circle:")
    if earlier is None:
        return
    where = f"the file {earlier.path.name} in the data folder on this computer"
    if earlier.unreadable:
        st.warning(f"The database this dashboard used before ({where}) could not be read, so whether it "
                   "lists people who opted out that this dashboard's list lacks is not known. Ask whoever "
                   "runs the server to check that file; meanwhile, add anyone you know opted out on the "
                   "Opt-outs page.", icon=":material/block:")
        return
    blasts = f"{plural(earlier.blasts, 'blast')}" if earlier.blasts else ""
    if not earlier.opt_outs:
        st.caption(f"The database this dashboard used before ({where}) still holds {blasts}, with "
                   "their receipts and replies: they are not shown here. Its opt-outs are on this "
                   f"dashboard's list. {_NEW_ADDRESS}")
        return
    numbers = plural(len(earlier.opt_outs), "opted-out number")
    held = f"{blasts} and {numbers}" if blasts else numbers
    st.warning(f"The database this dashboard used before ({where}) holds {held} that this one does "
               "not have. Nobody who opted out may be messaged again: add them to the list here, or "
               f"a new list could send to them. {_NEW_ADDRESS}", icon=":material/block:")
    if st.button(f"Add those {numbers} to the opt-out list", key="carry_over_opt_outs",
                 icon=":material/playlist_add:"):
        with friendly_errors("add the earlier opt-outs") as outcome, session() as s:
            added = carry_over_opt_outs(s, earlier)
        if outcome.ok:
            st.session_state[_ADDED] = added
            st.rerun()
