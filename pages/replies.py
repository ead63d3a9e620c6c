"""Replies: everyone who wrote back, across all blasts, for the day's follow-up calls and sales."""

import streamlit as st

from dashboard import reply_views as views
from dashboard.layout import page_header

page_header("Replies", "Who wrote back, newest first: read what they said, call them, record the sale.")

if not views.has_blasts():
    views.render_no_blasts()
    st.stop()

filters = views.render_filters()
views.render_inbox(filters)
views.render_unmatched(filters)
