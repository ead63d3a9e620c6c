"""Overview: the funnel for the blasts that match the filters."""

import streamlit as st

from core.funnel import filter_options, funnel, funnel_by_blast
from core.statuses import Stage
from dashboard.charts import funnel_figure
from dashboard.data import session, settings
from dashboard.filters import render_filters
from dashboard.layout import page_header
from dashboard.tables import blast_table

page_header("Overview", "What became of your messages: sent → received → read → replied → closed.")

with session() as s:
    tags, stages = filter_options(s)
    has_blasts = bool(funnel_by_blast(s))

if not has_blasts:
    st.subheader("No blasts yet")
    st.markdown(
        "1. Go to **New blast** and upload a CSV of phone numbers (and names).\n"
        "2. Write your message, send a test to your own number, then send the blast.\n"
        "3. Come back here to watch it move through the funnel.\n\n"
        "Want to look around first? Run `python -m core seed-demo` to fill the "
        "dashboard with example blasts."
    )
    st.stop()

filters = render_filters(tags=tags, stages=stages, timezone=settings().app_timezone)
with session() as s:
    totals = funnel(s, filters=filters)
    per_blast = funnel_by_blast(s, filters=filters)

if totals.total == 0:
    st.warning("No recipients match these filters. Widen the dates or clear a tag.")
    st.stop()

columns = st.columns(len(Stage) + 2)
for column, stage in zip(columns, Stage, strict=False):
    share = totals.pct_of_sent(stage)
    column.metric(
        stage.label,
        f"{totals.count(stage):,}",
        None if stage is Stage.SENT or share is None else f"{share:.1f}% of sent",
        delta_color="off",
    )
columns[-2].metric("Failed", f"{totals.failed:,}", help="The gateway refused these messages.")
columns[-1].metric(
    "Unknown",
    f"{totals.unknown:,}",
    help="The send's outcome was lost (for example a timeout). Never re-sent automatically: "
    "check them on the blast's page.",
)
if totals.waiting:
    st.caption(f"{totals.waiting:,} recipients are still waiting to be sent.")

st.plotly_chart(funnel_figure(totals), use_container_width=True)

st.subheader("Blasts")
st.dataframe(
    blast_table(per_blast, timezone=settings().app_timezone),
    hide_index=True,
    use_container_width=True,
    column_config={
        "Date": st.column_config.DatetimeColumn(format="D MMM YYYY, HH:mm"),
        **{c: st.column_config.NumberColumn(format="%.1f%%") for c in
           ("Received %", "Read %", "Replied %", "Closed %")},
    },
)
