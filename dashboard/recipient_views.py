"""A blast's people: the searchable recipient table, decisions per row, exports, closing sales."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.closing import CloseOutcome, close_from_csv
from core.exports import stage_csv
from core.followups import chain_ids
from core.recipients import SELECTIONS, history, mark_closed, mark_failed, page_of_recipients, resend_unknown
from core.statuses import STATUS_WORDS, Status
from dashboard.blast_views import local
from dashboard.data import reading, session, settings
from dashboard.layout import friendly_errors


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
