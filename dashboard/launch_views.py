"""Sending a draft blast (a saved draft or a follow-up) from its own page."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import select

from core import followups, templates
from core.config import PRACTICE_DEVICES
from core.models import Blast, BlastRecipient
from core.sending import blasts, gateways
from core.sending.pacing import ensure_device
from core.statuses import Status
from dashboard import sent_before
from dashboard.blast_views import redraw_picker
from dashboard.compose import Message, Sample, render_template, render_when, send_problems
from dashboard.data import reading, session, settings
from dashboard.finish_note import render_finish
from dashboard.format import plural
from dashboard.layout import friendly_errors
from dashboard.new_blast_views import render_test


def _samples(blast: Blast) -> tuple[list[str], list[Sample], list[str], int]:
    """The placeholders, a sample per person still to send to, their numbers, and how many on
    a follow-up's list no longer match its choice (say, replied or bought since it was made, or
    another follow-up reached them): sending leaves those out (`followups.drop_moved_on`), so
    its count, its preview and its button do too."""
    with reading() as s:
        rows = s.execute(
            select(BlastRecipient.contact_name, BlastRecipient.phone_number, BlastRecipient.variables,
                   BlastRecipient.csv_line)
            .where(BlastRecipient.blast_id == blast.id, BlastRecipient.status == Status.QUEUED.value)
            .order_by(BlastRecipient.id)
        ).all()
        moved_on = followups.moved_on_since(s, blast_id=blast.id) if blast.parent_blast_id else set()
    kept = [row for row in rows if row.phone_number not in moved_on]
    samples = [
        Sample(name or phone, blasts.recipient_variables(name, variables), line=line)
        for name, phone, variables, line in kept
    ]
    names = sorted({key for sample in samples for key in sample.variables})
    return names, samples, [phone for _, phone, _, _ in kept], len(rows) - len(kept)


def render_draft_launch(blast: Blast) -> None:
    """Write or check the message, see when it would finish, and send or schedule. Not for a
    draft of the other gateway (`gateways.sends`): the page says why it is not sent from here."""
    names, samples, numbers, moved_on = _samples(blast)
    if not samples:
        # Everyone has opted out, or moved on since it was made: its message's placeholders
        # would be said to be missing from a list that is simply empty.
        st.warning("This draft has no one left to send to: everyone on its list has asked not to be "
                   "messaged, or was taken off it, or no longer matches whom the follow-up is for. "
                   "Delete it, or make a new blast.",
                   icon=":material/group_off:")
        return
    people = plural(len(samples), "person", "people")
    cfg = settings()
    device = blast.device or gateways.launch_device(cfg)
    # A draft saved in practice mode belongs to no gateway: once live, it goes to real phones.
    where = ("in practice mode: no real phone gets it. Once WhatsApp is connected, sending this draft "
             "reaches real phones" if device in PRACTICE_DEVICES
             else f"on WhatsApp, from device {device}: real phones get it")
    st.info(f"This blast is a draft: nothing has been sent. It will go to {people} {where}.",
            icon=":material/edit_note:")
    if moved_on:
        st.caption(f"{plural(moved_on, 'person', 'people')} on this list no longer "
                   f"{'matches' if moved_on == 1 else 'match'} whom the follow-up is for (since it was "
                   "made they replied or bought, say, or another follow-up reached them), so they will "
                   "be left out.")
    # The list is already in the blast, so an empty value is mended in the message, not the file.
    message = render_template(
        names=names,
        samples=samples,
        key=f"draft_tpl_{blast.id}",  # another draft shows its own message
        value=blast.message_template or "",
        fix="take that placeholder out of the message",
    )
    _render_save_message(blast, message)
    if message.usable:
        first = samples[0].variables if samples else {}
        render_test(templates.render(message.text, first).text, key=f"draft_test_{blast.id}")
    send_at = render_when(key=f"draft_when_{blast.id}", device=device)
    render_finish(device=device, recipients=len(samples), blast_id=blast.id, start=send_at)
    problems = send_problems(tag_ok=True, message=message, send_at=send_at)
    seen = (sent_before.render_draft_sent_before(blast.id, numbers) if blast.parent_blast_id is None
            else sent_before.SentBefore(ok=True, agreed=frozenset()))
    if not seen.ok:
        problems = [*problems, f"tick “{seen.tick}” or cancel this draft"]
    if problems:
        st.caption("Before sending: " + "; ".join(problems) + ".")
    label = f"Send to {people}" if send_at is None else "Schedule the blast"
    if not st.button(
        label, type="primary", disabled=bool(problems), key="draft_send", icon=":material/send:"
    ):
        return
    with friendly_errors("send the blast") as done, session() as s:
        # Asked again as it goes: a blast made meanwhile (in another tab) may hold these people.
        # The device is locked first, as New blast locks it, so two tabs cannot both pass.
        ensure_device(s, device=device, settings=cfg, lock=True)
        meanwhile = (sent_before.draft_made_meanwhile(s, blast.id, numbers, agreed=seen.agreed)
                     if blast.parent_blast_id is None else None)
        if meanwhile:
            st.error(meanwhile, icon=":material/block:")
            return
        s.get(Blast, blast.id).message_template = message.text
        s.flush()
        blasts.launch(
            s,
            blast_id=blast.id,
            at=send_at,
            device=device,
            timezone=cfg.timezone,
            allow_blanks=st.session_state.get(f"draft_tpl_{blast.id}_blanks", False),
            settings=cfg,
        )
    if done.ok:
        redraw_picker()  # its label was "draft of …"
        st.rerun()


def _render_save_message(blast: Blast, message: Message) -> None:
    """Keep an edited draft message without sending it: leaving the page would lose it."""
    if message.text == (blast.message_template or ""):
        return
    st.caption("The message has changes that are not saved yet.")
    if st.button("Save the message", key="draft_save", icon=":material/save:"):
        with friendly_errors("save the message") as done, session() as s:
            s.get(Blast, blast.id).message_template = message.text
        if done.ok:
            st.toast("Message saved.")
            st.rerun()
