"""Blast detail pieces: live progress, actions, recipients, exports and follow-ups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.followups import Audience, chain_funnels, create_follow_up, follow_up_audience, next_stage_name
from core.funnel import stuck_at_each_stage
from core.gateway import make_client
from core.models import Blast, utcnow
from core.polling import poll_round
from core.recipients import (
    SELECTIONS,
    StageSelector,
)
from core.sending import blasts
from core.sending.progress import blast_progress
from core.statuses import STATUS_WORDS, Status
from dashboard.charts import funnel_figure
from dashboard.data import get_engine, reading, session, settings
from dashboard.layout import friendly_errors

STATE_WORDS = {
    "draft": ("Draft", "gray"),
    "scheduled": ("Scheduled", "blue"),
    "sending": ("Sending", "green"),
    "paused": ("Paused", "orange"),
    "completed": ("Finished", "violet"),
    "cancelled": ("Cancelled", "red"),
}
LIVE_STATES = ("sending", "scheduled")


def local(moment: dt.datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    return moment.astimezone(settings().timezone).strftime(fmt) if moment else "—"


def state_badge(state: str) -> str:
    word, colour = STATE_WORDS.get(state, (state, "gray"))
    return f":{colour}-badge[{word}]"


def render_progress(blast_id: int, shown_state: str) -> None:
    """Sent / remaining / failed / unknown, the ETA and the funnel; refreshes itself while
    sending, and reloads the whole page when the blast's state changes (finished, paused)."""
    with reading() as s:
        state = s.scalar(select(Blast.state).where(Blast.id == blast_id))
        progress = blast_progress(s, blast_id=blast_id, settings=settings())
    if state != shown_state:
        st.rerun(scope="app")
    f = progress.funnel
    st.progress(progress.fraction, text=f"{progress.done:,} of {f.total:,} done")
    cols = st.columns(5)
    cols[0].metric("Sent", f"{f.sent:,}")
    cols[1].metric("Still to send", f"{progress.remaining:,}")
    cols[2].metric("Failed", f"{f.failed:,}")
    cols[3].metric("Unknown", f"{f.unknown:,}")
    finish = "—" if progress.eta is None else local(progress.eta, "%d %b, %H:%M")
    pace = ("this blast's pace so far, one message every "
            f"{progress.pace_seconds:.0f} s" if progress.pace_seconds else "the device's sending rules")
    cols[4].metric("Expected to finish", finish if state in LIVE_STATES or state == "draft" else "—",
                   help=f"At {pace}, with its pauses, daily cap and quiet hours.")
    if f.unknown:
        st.warning(
            f"{f.unknown:,} sends have an unknown outcome: the gateway's answer was lost, so they may "
            "or may not have arrived. They will not be sent again by themselves; a receipt from "
            "WhatsApp naming the number, or a reply from the person, settles one. Open "
            "**Recipients → Unknown** to send them again or mark them as failed.",
            icon=":material/help:",
        )
    st.plotly_chart(funnel_figure(f, height=300), width="stretch", key=f"live_funnel_{blast_id}")


def render_actions(blast: Blast) -> None:
    cols = st.columns(4)
    if blast.state in ("sending", "scheduled") and cols[0].button(
        "Pause", key="pause", icon=":material/pause:"
    ):
        _act("pause the blast", blasts.pause, blast.id)
    if blast.state == "paused" and cols[0].button(
        "Resume", key="resume", type="primary", icon=":material/play_arrow:"
    ):
        _act("resume the blast", blasts.resume, blast.id)
    if blast.state in ("draft", "scheduled", "sending", "paused"):
        with cols[1].popover("Cancel blast", icon=":material/cancel:"):
            st.write("Nobody who has not been sent the message yet will get it. This cannot be undone.")
            if st.button("Yes, cancel it", key="cancel_confirm", type="primary"):
                _act("cancel the blast", blasts.cancel, blast.id)


def render_refresh(blast_id: int) -> None:
    """Ask the gateway now about every message of this blast not yet read."""
    if not st.button(
        "Refresh statuses",
        key="refresh",
        icon=":material/refresh:",
        help="Asks WSAPME directly, for when receipts seem late.",
    ):
        return
    with friendly_errors("refresh the statuses") as done, st.spinner("Asking the gateway…"):
        result = poll_round(get_engine(), make_client(settings()), settings=settings(), blast_id=blast_id)
    if done.ok:
        words = f"Asked about {result.asked:,} messages: {result.changed:,} moved on"
        if result.unknown:
            words += f", {result.unknown:,} the gateway could not say"
        st.toast(words + ".")
        if result.stopped_by:
            st.warning(f"Stopped early: {result.stopped_by}")


def _act(action: str, fn: Callable[..., None], blast_id: int) -> None:
    with friendly_errors(action) as done, session() as s:
        fn(s, blast_id=blast_id)
    if done.ok:
        st.rerun()


def render_stuck_table(blast_id: int) -> None:
    with reading() as s:
        rows = stuck_at_each_stage(s, blast_id=blast_id)
    frame = pd.DataFrame(
        [(status, STATUS_WORDS.get(Status(status), status), n, share) for status, n, share in rows],
        columns=["Status", "Meaning", "Recipients", "Share %"],
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "Share %": st.column_config.ProgressColumn(format="%.1f%%", min_value=0, max_value=100)
        },
    )


def audience_words(audience: Audience, *, selection: str, hours: int) -> str:
    """Who the follow-up would go to, in a sentence, before the draft is made."""
    since = f" (reached at least {hours:,} hour{'s' if hours != 1 else ''} ago)" if hours else ""
    if audience.matching == 0:
        return f"No one matches “{selection}”{since} yet, so there is no one to follow up."
    if audience.reached == 0:
        return f"Everyone who matches “{selection}”{since} has opted out, so there is no one to follow up."
    people = "person matches" if audience.reached == 1 else "people match"
    left_out = ""
    if audience.opted_out:
        verb = "is" if audience.opted_out == 1 else "are"
        left_out = f" {audience.opted_out:,} more opted out and {verb} left out."
    return f"**{audience.reached:,}** {people} “{selection}”{since} and will get this follow-up.{left_out}"


def render_follow_up(blast: Blast) -> None:
    options = [
        "Read, no reply",
        "Received, not read",
        "Sent, no reply",
        "Replied, not closed",
        "Sent, not received",
    ]
    cols = st.columns(3)
    selection = cols[0].selectbox("Follow up with", options, key="fu_sel")
    hours = cols[1].number_input(
        "…who reached that stage at least this many hours ago", 0, 24 * 30, 24, key="fu_hours"
    )
    stage_name = cols[2].text_input("Follow-up stage", next_stage_name(blast.follow_up_stage), key="fu_stage")
    template = st.text_area(
        "Message",
        blast.message_template or "",
        key="fu_text",
        help="Use {name} and the columns of the original file.",
    )
    chosen = SELECTIONS[selection]
    selector = StageSelector(
        stage=chosen.stage,
        not_stage=chosen.not_stage,
        older_than=dt.timedelta(hours=int(hours)) if hours else None,
    )
    with reading() as s:
        audience = follow_up_audience(s, parent_id=blast.id, selector=selector, now=utcnow())
    st.markdown(audience_words(audience, selection=selection, hours=int(hours)))
    if st.button("Create follow-up draft", key="fu_create", type="primary", disabled=audience.reached == 0):
        with friendly_errors("create the follow-up") as done, session() as s:
            child = create_follow_up(
                s,
                parent_id=blast.id,
                selector=selector,
                message_template=template,
                follow_up_stage=stage_name,
                now=utcnow(),
            )
            child_id, count = child.id, child.total_recipients
        if done.ok:
            st.success(f"Draft blast #{child_id} created for {count:,} recipients.")
            st.page_link("pages/blast.py", label=f"Open blast #{child_id}", query_params={"blast": child_id})


def render_chain(blast_id: int) -> None:
    with reading() as s:
        chain = chain_funnels(s, blast_id=blast_id)
        records = [
            {
                "Blast": b.id,
                "Stage": b.follow_up_stage or "",
                "State": b.state,
                "Sent": f.sent,
                "Received": f.received,
                "Read": f.read,
                "Replied": f.replied,
                "Closed": f.closed,
            }
            for b, f in chain
        ]
    if len(records) < 2:
        st.caption("No follow-ups yet.")
        return
    frame = pd.DataFrame(records)
    st.dataframe(frame, hide_index=True, width="stretch")
    total = frame[["Sent", "Replied", "Closed"]].sum()
    st.write(
        f"Across the chain: **{total['Sent']:,}** sent, **{total['Replied']:,}** replied, "
        f"**{total['Closed']:,}** closed."
    )
