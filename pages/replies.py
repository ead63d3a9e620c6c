"""Replies: everyone who wrote back, across all blasts, for the day's follow-up calls and sales."""

import streamlit as st

from dashboard import reply_views as views
from dashboard.layout import in_words, page_header

page_header("Replies", "Who wrote back, newest first: read what they said, call them, record the sale.")

if not views.has_blasts():
    views.render_no_blasts()
    st.stop()

filters = views.render_filters()
listed = views.read_replies(filters)  # kept as it was while rows are ticked
# A small part that looks for new replies and says so, leaving the list, its ticks and the open
# conversations alone until the person asks for them.
st.fragment(in_words(views.render_new_arrivals), run_every=views.CHECK_EVERY)(filters, listed.mark)
views.render_inbox(filters, listed)
views.render_unmatched(listed.unmatched)
