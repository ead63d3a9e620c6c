"""Blast detail pieces: live progress, actions, recipients, exports and follow-ups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.closing import CloseOutcome, close_from_csv
from core.exports import stage_csv
from core.followups import chain_funnels, chain_ids, create_follow_up, next_stage_name
from core.funnel import stuck_at_each_stage
from core.gateway import make_client
from core.models import Blast, utcnow
from core.polling import poll_round
from core.recipients import (
    SELECTIONS,
    StageSelector,
    history,
    mark_closed,
    mark_failed,
    page_of_recipients,
    resend_unknown,
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
    cols[4].metric("Expected to finish", finish if state in LIVE_STATES or state == "draft" else "—")
    if f.unknown:
        st.warning(
            f"{f.unknown:,} sends have an unknown outcome: the gateway's answer was lost, so they may "
            "or may not have arrived. They will not be sent again by themselves. Open **Recipients → "
            "Unknown** to send them again or mark them as failed.",
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


def render_close_from_file(blast_id: int) -> None:
    st.write(
        "Upload a CSV of the phone numbers that bought. Each is matched to the latest message "
        "sent to that number and marked **closed**."
    )
    only_chain = st.checkbox("Only this blast and its follow-ups", value=True, key="close_chain")
    upload = st.file_uploader("Numbers that bought (CSV)", type=["csv", "txt"], key="close_upload")
    if upload is None or not st.button("Mark them closed", key="close_apply", type="primary"):
        return
    with friendly_errors("read the file") as done, session() as s:
        blast_ids = chain_ids(s, blast_id=blast_id) if only_chain else []
        report = close_from_csv(
            s,
            upload.getvalue(),
            region=settings().phone_region,
            blast_ids=blast_ids,
            filename=upload.name,
            max_upload_mb=settings().max_upload_mb,
        )
    if not done.ok:
        return
    cols = st.columns(len(CloseOutcome))
    for col, outcome in zip(cols, CloseOutcome, strict=True):
        col.metric(outcome.value.capitalize(), f"{report.count(outcome):,}")
    st.download_button(
        "Download what matched (CSV)",
        report.to_csv(),
        file_name="closed-sales-report.csv",
        mime="text/csv",
        key="close_report",
        icon=":material/download:",
    )


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


def render_recipients(blast_id: int, *, key_prefix: str = "rcp") -> None:
    """A searchable, paginated table; pick rows to see their history or act on them."""
    top = st.columns([2, 3, 1])
    selection = top[0].selectbox("Show", list(SELECTIONS), key=f"{key_prefix}_sel")
    search = top[1].text_input("Search name, number or reply", key=f"{key_prefix}_q")
    page_size = 50
    with reading() as s:
        _, total = page_of_recipients(s, blast_id=blast_id, selection=selection, search=search, page_size=1)
    pages = max(1, -(-total // page_size))
    page = top[2].number_input("Page", 1, pages, 1, key=f"{key_prefix}_page")
    with reading() as s:
        rows, total = page_of_recipients(
            s, blast_id=blast_id, selection=selection, search=search, page=int(page), page_size=page_size
        )
        frame = pd.DataFrame(
            [
                {
                    "id": r.id,
                    "Phone": r.phone_number,
                    "Name": r.contact_name or "",
                    "Status": r.status,
                    "Meaning": STATUS_WORDS.get(Status(r.status), r.status),
                    "Sent": local(r.sent_at, "%d %b %H:%M"),
                    "Read": local(r.read_timestamp, "%d %b %H:%M"),
                    "Reply": r.reply_text or "",
                    "Problem": r.error or "",
                }
                for r in rows
            ]
        )
    st.caption(f"{total:,} recipients · page {int(page)} of {pages}")
    if frame.empty:
        st.info("No recipients match.")
        return
    event = st.dataframe(
        frame.drop(columns=["id"]),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        key=f"{key_prefix}_table",
    )
    chosen = [int(frame.iloc[i]["id"]) for i in event.selection.rows]
    if not chosen:
        st.caption("Tick rows to see their history, mark sales closed, or decide about unknown sends.")
        return
    _render_row_actions(chosen, frame, key_prefix)


def _render_row_actions(chosen: list[int], frame: pd.DataFrame, key_prefix: str) -> None:
    cols = st.columns(3)
    if cols[0].button(f"Mark {len(chosen)} as closed (sale)", key=f"{key_prefix}_close", type="primary"):
        with friendly_errors("mark the sales"), session() as s:
            changes = mark_closed(s, recipient_ids=chosen)
        st.toast(f"{sum(c.changed for c in changes)} marked as closed.")
        st.rerun()
    statuses = set(frame[frame["id"].isin(chosen)]["Status"])
    if statuses == {"UNKNOWN"}:
        if cols[1].button(
            "Send again",
            key=f"{key_prefix}_resend",
            help="Only if you are sure they did not get it: they may receive it twice.",
        ):
            with friendly_errors("queue them again"), session() as s:
                n = resend_unknown(s, recipient_ids=chosen)
            st.toast(f"{n} queued to send again.")
            st.rerun()
        if cols[2].button("Mark as failed", key=f"{key_prefix}_failed"):
            with friendly_errors("mark them failed"), session() as s:
                mark_failed(s, recipient_ids=chosen)
            st.rerun()
    with reading() as s:
        for rid in chosen[:5]:
            entries = history(s, recipient_id=rid)
            phone = frame[frame["id"] == rid]["Phone"].iloc[0]
            with st.expander(f"History of {phone}", expanded=len(chosen) == 1):
                if not entries:
                    st.write("No changes yet.")
                for h in entries:
                    st.write(
                        f"{local(h.changed_at, '%d %b %H:%M:%S')} — {h.old_status or '·'} → "
                        f"**{h.new_status}** ({h.source})"
                    )


def render_export(blast_id: int) -> None:
    selection = st.selectbox("Which recipients", list(SELECTIONS), key="export_sel")
    with reading() as s:
        data = stage_csv(s, blast_id=blast_id, selection=selection, zone=settings().timezone)
    st.download_button(
        f"Download “{selection}” as CSV",
        data,
        file_name=f"blast-{blast_id}-{selection.lower().replace(', ', '-').replace(' ', '-')}.csv",
        mime="text/csv",
        key="export_btn",
        icon=":material/download:",
    )


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
    if st.button("Create follow-up draft", key="fu_create", type="primary"):
        chosen = SELECTIONS[selection]
        selector = StageSelector(
            stage=chosen.stage,
            not_stage=chosen.not_stage,
            older_than=dt.timedelta(hours=int(hours)) if hours else None,
        )
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
