"""Settings & health: is everything working, in plain words."""

import streamlit as st

from core.db import current_revision
from dashboard.data import get_engine, settings
from dashboard.layout import page_header

page_header("Settings & health")

cfg = settings()
engine = get_engine()
st.subheader("Database")
kind = "PostgreSQL" if engine.dialect.name == "postgresql" else "SQLite file on this machine"
st.write(f"**{kind}**, schema revision `{current_revision(engine)}`.")

st.subheader("Gateway")
if cfg.sandbox:
    st.write("Sandbox: the built-in practice gateway. Nothing reaches real phones.")
else:
    st.write(f"WSAPME at `{cfg.wsapme_api_url}`, device `{cfg.wsapme_device}`.")

st.subheader("Time")
st.write(
    f"Team time zone: **{cfg.app_timezone}**. Phone numbers without a country code are "
    f"read as **{cfg.phone_region}** numbers."
)
