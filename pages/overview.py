"""Overview: the funnel for the blasts that match the filters."""

import streamlit as st
from sqlalchemy import exists, func, select

from core.analytics import OPTED_OUT, RESPONSE_SAMPLE, tag_comparison
from core.config import PRACTICE_DEVICES
from core.demo import seed_demo
from core.funnel import closed_without_reply, filter_options, funnel, funnel_by_blast, not_practice
from core.models import Blast, BlastState, utcnow
from core.statuses import Stage
from core.words import percent_words
from dashboard import data
from dashboard.charts import FEW_SENT, funnel_figure, hours_figure, tag_figure, tag_rate_words, trend_figure
from dashboard.data import reading, session, settings
from dashboard.filters import nothing_matches, render_filters
from dashboard.format import duration_words, plural, practice_left_out
from dashboard.layout import friendly_errors, page_header
from dashboard.reply_views import render_waiting_replies
from dashboard.tables import blast_table, blast_table_columns, held_elsewhere

page_header("Overview", "What became of your messages: sent → received → read → replied → closed.")

# Once sending to WhatsApp, the practice blasts' made-up reads and replies are left out.
live = not settings().sandbox
with reading() as s:
    tags, stages = filter_options(s, leave_out_practice=live)
    # Once live, practice blasts are left out of everything here: they do not make a start.
    has_blasts = s.scalar(select(exists().where(not_practice() if live else Blast.id.is_not(None))))
    practice_blasts = s.scalar(select(func.count()).where(Blast.device.in_(PRACTICE_DEVICES))) if live else 0


if not has_blasts:
    # Once live, a dashboard holding only practice blasts starts afresh, and says why they are not here.
    st.subheader("No blasts yet on WhatsApp" if practice_blasts else "No blasts yet")
    if practice_blasts:
        st.info(practice_left_out(practice_blasts, "here now that messages go out on WhatsApp"),
                icon=":material/science:")
    st.markdown(
        "1. Go to **New blast** and upload your contact list (Excel or CSV) of phone numbers and names.\n"
        "2. Write your message, send a test to your own number, then send the blast.\n"
        "3. Come back here to watch it move through the funnel."
    )
    st.page_link("pages/new_blast.py", label="Start a new blast", icon=":material/add_circle:")
    # Only in practice mode: demo blasts beside real ones would mix up real results.
    if settings().sandbox:
        st.write("Want to look around first? Fill the dashboard with six weeks of example blasts; "
                 "none of them is sent to anyone.")
        if st.button("Fill with demo data", key="fill_demo", icon=":material/auto_awesome:"):
            with (
                friendly_errors("fill the dashboard with demo data") as outcome,
                st.spinner("Making six weeks of example blasts…"),
                session() as s,
            ):
                # Asked again inside the transaction: another tab may have filled it meanwhile.
                if not s.scalar(select(exists().where(Blast.id.is_not(None)))):
                    seed_demo(s, timezone=settings().app_timezone)
            if outcome.ok:
                st.rerun()
    st.stop()

render_waiting_replies()
filters = render_filters(tags=tags, stages=stages, timezone=settings().app_timezone, leave_out_practice=live)
if practice_blasts:
    st.caption(practice_left_out(practice_blasts, "of everything below"))
opted_out_by_tag = data.opted_out_by_reply(filters)
with reading() as s:
    totals = funnel(s, filters=filters)
    per_blast = funnel_by_blast(s, filters=filters)
    tags_frame = tag_comparison(s, filters=filters, opted_out=opted_out_by_tag)
    unreplied = closed_without_reply(s, filters=filters) if totals.closed else 0


def render_blast_table() -> None:
    st.subheader("Blasts")
    st.dataframe(
        blast_table(per_blast, timezone=settings().app_timezone, settings=settings()),
        hide_index=True,
        width="stretch",
        placeholder="—",  # a rate of nothing sent yet
        column_config=blast_table_columns(),
    )


if totals.total == 0:
    if no_match := nothing_matches(filters):
        st.warning(no_match)
    else:
        # A draft whose people all opted out, say: its page is reached from the table below.
        blasts = "Your blast has" if len(per_blast) == 1 else "Your blasts have"
        st.info(f"{blasts} no recipients yet. Open **New blast** to upload a contact list.")
        st.page_link("pages/new_blast.py", label="Start a new blast", icon=":material/add_circle:")
    if per_blast:
        render_blast_table()
    st.stop()

# Each stage counts everyone who got at least that far, so a sale counts at every stage before it.
STAGE_HELP = {
    Stage.READ: "Everyone who opened it, including those who replied or bought without a read receipt.",
    Stage.REPLIED: "Everyone who answered, opt-outs such as STOP included, and sales closed by hand for "
    "people who never replied on WhatsApp.",
}
opted_out = int(tags_frame[OPTED_OUT].sum()) if not tags_frame.empty else 0
columns = st.columns(len(Stage) + 2)
for column, stage in zip(columns, Stage, strict=False):
    share = totals.pct_of_sent(stage)
    column.metric(
        stage.label,
        f"{totals.count(stage):,}",
        None if stage is Stage.SENT or share is None else f"{percent_words(share)} of sent",
        delta_color="off",
        delta_arrow="off",
        help=STAGE_HELP.get(stage),
    )
    if stage is Stage.REPLIED and opted_out:
        column.caption(f"{opted_out:,} of them opted out",
                       help="They replied STOP, BERHENTI or another opt-out word: no blast messages "
                       "them again. The **Opt-outs** page lists every number.")
    if stage is Stage.REPLIED and unreplied:
        column.caption(f"{unreplied:,} of them bought without replying",
                       help="Sales recorded by hand or from a file for people who never wrote back on "
                       "WhatsApp: each stage counts everyone who got at least that far.")
columns[-2].metric("Failed", f"{totals.failed:,}",
                   help="The gateway refused these messages, or WhatsApp reported an error for them "
                   "before they reached the phone. They can be sent again from the blast's page.")
columns[-1].metric(
    "Unknown",
    f"{totals.unknown:,}",
    help="The send's outcome was lost (for example a timeout). Never re-sent automatically: "
    "check them on the blast's page.",
)
# Waiting rows of drafts and cancelled blasts will not go out by themselves: not "waiting", nor
# those of a blast the gateway in use does not send (a WhatsApp blast in practice mode; once
# live, the practice blasts are not in the selection at all).
ongoing = [b for b in per_blast if b.state in BlastState.ONGOING]
held = sum(b.funnel.waiting for b in ongoing if held_elsewhere(b, settings()))
waiting = sum(b.funnel.waiting for b in ongoing) - held
in_drafts = sum(b.funnel.waiting for b in per_blast if b.state == "draft")
parts = [
    f"{plural(n, 'recipient')} {where}"
    for n, where in (
        (waiting, "still to be sent"),
        (in_drafts, "in drafts"),
        (held, "on WhatsApp blasts, not sent in practice mode"),
    )
    if n
]
if parts:
    st.caption(" · ".join(parts) + ".")
# The page reads the counts once, when it is drawn: it says when, rather than look live.
as_of = f"{utcnow().astimezone(settings().timezone):%H:%M}"
note, again = st.columns([4, 1], vertical_alignment="center")
note.caption(f"Counts as of {as_of}. This page does not refresh by itself.")
again.button("Refresh", key="overview_refresh", icon=":material/refresh:", help="Read the counts again.")

if totals.sent or totals.failed or totals.unknown:
    st.plotly_chart(funnel_figure(totals), width="stretch")
else:
    st.caption("Nothing sent yet: the funnel fills in as the messages go out.")

render_blast_table()

st.subheader("Day by day")
_ttl = "a minute" if data.ANALYTICS_TTL_SECONDS == 60 else f"{data.ANALYTICS_TTL_SECONDS} seconds"
st.caption(
    f"Updated at most {_ttl} ago, as are the response times and answer hours below. The counts "
    f"above and the tags compared are as of {as_of}."
)
slow = data.recipient_analytics(filters)
trend = slow.trend
if trend.empty:
    st.caption("Nothing has been sent yet in this selection.")
else:
    st.plotly_chart(trend_figure(trend, start=filters.start, end=filters.end), width="stretch", key="trend")

left, right = st.columns(2)
with left:
    st.subheader("Tags compared")
    tags_frame = tags_frame[tags_frame["sent"] > 0] if not tags_frame.empty else tags_frame  # drafts
    if tags_frame.empty:
        st.caption("No tags to compare yet.")
    else:
        # "Replied" here leaves out the opt-outs, unlike the funnel's: said in the choice itself.
        stage = st.radio("Rate", ["replied", "read", "closed", OPTED_OUT], horizontal=True, key="tag_stage",
                         format_func=tag_rate_words)
        st.plotly_chart(tag_figure(tags_frame, stage=stage), width="stretch", key="tags")
        st.caption(
            "The thin lines show where each rate probably really lies (95%). When two tags' "
            f"lines overlap, neither has proven better yet. Pale bars: fewer than {FEW_SENT} sent, "
            "too few to judge. A reply that opted out (STOP, BERHENTI) counts as opted out here, "
            "not as replied"
            + (f"; {plural(unreplied, 'sale')} recorded for people who never replied "
               f"{'counts' if unreplied == 1 else 'count'} as replied, as in the funnel."
               if unreplied else ".")
        )
with right:
    st.subheader("How fast people respond")
    times = slow.response_times
    r1, r2 = st.columns(2)
    r1.metric(
        "Typical time to read",
        duration_words(times.read_median),
        help="Median: half of readers opened the message sooner than this. People whose read "
        "receipts are off are left out: WhatsApp only says they read it when they reply.",
    )
    r1.metric("9 in 10 read within", duration_words(times.read_p90))
    r2.metric("Typical time to reply", duration_words(times.reply_median))
    r2.metric("9 in 10 replied within", duration_words(times.reply_p90))
    if times.sampled:
        st.caption(f"Based on the most recent {RESPONSE_SAMPLE:,} messages that were read or replied to.")

st.subheader("When people answer")
activity = slow.activity
ANSWERS = {"replied": "replies", "read": "reads"}
if activity.empty:
    st.caption("No reads or replies yet.")
else:
    answered = set(activity["what"])
    which = st.radio(
        "Show",
        list(ANSWERS),
        # Replies first, when there are some: a grid of nothing but zeros says nothing.
        index=0 if "replied" in answered else 1,
        horizontal=True,
        key="hours_what",
        format_func=lambda what: ANSWERS[what].capitalize(),
    )
    if which in answered:
        st.plotly_chart(hours_figure(activity, what=which), width="stretch", key="hours")
        st.caption("In your time zone. Sales closed by hand are not counted as reads or replies here.")
    else:
        st.caption(f"No {ANSWERS[which]} yet in these blasts.")
