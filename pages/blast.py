"""Blast detail: one blast's live progress, funnel, recipients, exports and follow-ups."""

import streamlit as st
from sqlalchemy import select

from core.models import Blast
from dashboard import blast_views as views
from dashboard import launch_views
from dashboard import recipient_views as people
from dashboard.data import reading
from dashboard.finish_note import not_going_out, render_not_going_out
from dashboard.layout import in_words, page_header
from dashboard.pacing_views import render_pacing

page_header("Blast detail")
if deleted := views.take_flash("deleted"):
    st.success(deleted, icon=":material/delete:")
if moved := views.take_flash(views.RESCHEDULED):
    st.toast(moved, icon=":material/event:")

with reading() as s:
    choices = s.execute(
        select(Blast.id, Blast.name, Blast.blast_tag, Blast.state, Blast.blast_date).order_by(Blast.id.desc())
    ).all()
if not choices:
    st.info("No blasts yet. Start one on the **New blast** page.")
    st.page_link("pages/new_blast.py", label="New blast", icon=":material/add:")
    st.stop()

labels = {c.id: views.picker_label(c.id, c.name, c.blast_tag, c.state, c.blast_date) for c in choices}
blast_id = views.render_blast_picker(labels)

with reading() as s:
    blast = s.get(Blast, blast_id)
    s.expunge(blast)

held_up = not_going_out(blast.state, device=blast.device)  # nothing is sending messages
# A follow-up scheduled ahead has no one yet: it takes its people as it starts.
ahead = views.chosen_at_start(blast) and blast.state == "scheduled"
who = "recipients chosen as it starts" if ahead else views.plural(blast.total_recipients, "recipient")
st.markdown(
    f"### {blast.name or 'Untitled blast'} {views.state_badge(blast.state, held_up=held_up)}\n"
    f"Tag **{blast.blast_tag or '—'}** · stage **{blast.follow_up_stage or '—'}** · "
    f"{who}"
    f"{views.left_out_words(blast.skipped_opted_out, views.OPTED_OUT)}"
    f"{views.left_out_words(blast.skipped_moved_on, views.MOVED_ON)} · "
    f"created {views.local(blast.created_at)}"
)
if blast.parent_blast_id:
    st.page_link(
        "pages/blast.py",
        label=f"Follow-up of blast #{blast.parent_blast_id}",
        query_params={"blast": blast.parent_blast_id},
        icon=":material/subdirectory_arrow_right:",
    )
elsewhere = views.sent_elsewhere(blast)
if elsewhere:
    views.render_sent_elsewhere(blast)
if blast.state == "paused" and blast.state_reason:
    st.warning(blast.state_reason, icon=":material/pause_circle:")
if blast.state == "scheduled" and blast.scheduled_at and not elsewhere:
    st.info(f"Scheduled for {views.local(blast.scheduled_at)}.", icon=":material/schedule:")
    views.render_quiet_hours_note(blast)
views.render_chosen_at_start(blast)
if held_up:
    render_not_going_out(blast.state)

if blast.state == "draft" and not elsewhere:
    launch_views.render_draft_launch(blast)
views.render_message(blast)

actions, refresh = st.columns([4, 1])
with actions:
    views.render_actions(blast)
with refresh:
    refreshed = views.render_refresh(blast)
views.say_refreshed(refreshed)
# Reads and replies mostly arrive after the last send: the live sections keep refreshing,
# more slowly, while they still can.
every = views.refresh_every(blast)
st.fragment(in_words(views.render_progress), run_every=every)(blast_id, blast.state, held_up)
if blast.state in ("sending", "paused", "scheduled") and blast.device and not elsewhere:
    # The pace (the day's cap included) that the finish above goes by, to change here too.
    render_pacing(blast.device)

cancelled = blast.state == "cancelled"
tab_funnel, tab_people, tab_export, tab_follow, tab_close = st.tabs(
    ["Funnel", "Recipients", "Export", "Follow up", "Close sales"]
)
with tab_funnel:
    st.subheader("Where recipients are now")
    st.fragment(in_words(views.render_stuck_table), run_every=every)(blast_id, cancelled=cancelled)
    st.subheader("Follow-up chain")
    st.fragment(in_words(views.render_chain), run_every=views.chain_refresh_every(blast_id))(blast_id)
with tab_people:
    st.fragment(in_words(people.render_recipients), run_every=every)(blast_id, cancelled=cancelled)
with tab_export:
    people.render_export(blast_id)
with tab_follow:
    views.render_follow_up(blast)
with tab_close:
    people.render_close_from_file(blast_id)
