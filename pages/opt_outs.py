"""Opt-outs: who asked not to be messaged, adding numbers by hand, and mending a mistake."""

import streamlit as st

from dashboard import opt_out_views as views
from dashboard.layout import page_header

page_header(
    "Opt-outs",
    "People who asked not to be messaged. No blast sends to them: not a draft, not one "
    "scheduled, not one halfway through.",
)
st.caption(
    "A reply that is only an opt-out word (STOP, BERHENTI, UNSUBSCRIBE…) puts the number here by "
    "itself. Lists you upload skip these numbers and say so."
)
views.render_add()
views.render_list()
