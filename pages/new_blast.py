"""New blast: upload → check the list → write the message → pace → test → send or schedule."""


import streamlit as st

from core.csv_import import UPLOAD_TYPES, create_draft_blast_from_import
from core.models import BlastState, longest
from core.sending import blasts, gateways
from core.sending.pacing import ensure_device
from dashboard import kept_upload, sent_before
from dashboard import new_blast_views as views
from dashboard.blast_naming import render_blast_name
from dashboard.compose import render_when, send_problems
from dashboard.data import session, settings, upload_digest
from dashboard.finish_note import made_words, not_going_out, render_finish, render_not_going_out
from dashboard.format import plural
from dashboard.layout import friendly_errors, page_header
from dashboard.pacing_views import render_pacing

page_header("New blast", "Upload your contact list, write the message, test it, send it.")
cfg = settings()
device = gateways.launch_device(cfg)
pressed = sent_before.send_pressed()  # taken on every run: a press is for the run it starts

st.subheader("1 · Who to send to")
upload = st.file_uploader(
    "Contact list (Excel workbook or CSV, from Excel, Google Sheets or Google Contacts)",
    type=list(UPLOAD_TYPES),
    key="upload",
    on_change=kept_upload.upload_changed,
    help="One row per person, with a phone number column. Names and other columns can be used "
    "in the message. From an Excel workbook, the first sheet with contacts is read; when it has "
    "several, you can choose another.",
)
# Streamlit forgets an upload when another page is shown: the file is kept to go on with.
contacts = kept_upload.contacts_file(upload)
if contacts is None:
    if not kept_upload.render_continue_offer():
        st.info(
            "Upload your contact list (Excel or CSV) to begin. A header row with **Phone** (or Mobile, "
            "No. Telefon…) and **Name** (or Nama) works best.",
            icon=":material/upload_file:",
        )
        st.download_button(
            "Download a sample list",
            views.SAMPLE_CONTACTS,
            file_name="contacts-sample.csv",
            mime="text/csv",
            icon=":material/download:",
            key="sample_csv",
            help="Three example rows to fill in with Excel or Google Sheets; the Product column "
            "shows how any column can be used in the message, as {product}.",
        )
    st.stop()

digest = upload_digest(contacts)
kept_upload.keep_typing(digest)  # before the boxes are drawn: puts back what was typed on a last visit
# Reading says why a file cannot be used; with no phone column found, it offers the choice.
report = views.read_upload(contacts)
if report is None:
    st.stop()
views.render_report(report)
views.render_column_choice(report.columns.headers, phone=report.columns.phone, names=report.columns.names)
if not report.recipients:
    st.error("There is no usable number in this file, so there is no one to send to.")
    st.stop()

st.subheader("2 · About this blast")
c1, c2, c3 = st.columns(3)
name = render_blast_name(c1, filename=contacts.name, file_id=digest)
tag = c2.text_input(
    "Campaign tag",
    key="blast_tag",
    placeholder="e.g. Raya Promo",
    help="Used to filter and compare campaigns on the Overview.",
    max_chars=longest("blast_tag"),
)
views.render_tag_in_use(c2, tag)
st.session_state.setdefault("blast_stage", "Initial")  # not the box's own value: it may be put back
stage = c3.text_input("Follow-up stage", key="blast_stage", max_chars=longest("follow_up_stage"))

st.subheader("3 · Message")
message = views.render_message(report)
kept_upload.keep_gaps_tick(message)

st.subheader("4 · Pace")
pace_saved = render_pacing(device)

st.subheader("5 · Test")
if message.usable:  # an empty value in some rows need not stop a test to your own number
    views.render_test_send(message.text, report, file=digest)
else:
    st.caption(f"To send a test, first {message.blocker}.")

st.subheader("6 · Send")
# One upload, one blast: a second click must not message the same people twice. Said first:
# the blast just made holds this list, and is not one "sent before" to warn about.
made = st.session_state.setdefault(kept_upload.BLASTS_MADE, {})
if digest in made:
    kept_upload.forget_file()  # done with: the next visit to the page starts afresh
    blast_id, state = made[digest]
    if not_going_out(state, device=device):  # nothing is sending messages: "sending now" would not be true
        render_not_going_out(state, blast_id=blast_id)
    else:
        st.success(made_words(blast_id, state), icon=":material/check_circle:")
    draft = state == BlastState.DRAFT  # nothing to follow yet: it is sent from its page
    st.page_link(
        "pages/blast.py",
        label=f"Open the draft (blast #{blast_id}) to send it" if draft else f"Follow blast #{blast_id}",
        query_params={"blast": blast_id},
        icon=":material/edit_note:" if draft else ":material/monitoring:",
    )
    st.caption("For another blast, take this file off (✕ beside its name, at the top) and upload the "
               "next list." + ("" if draft else " To send this same list again, reload the page first."))
    st.stop()

send_at = render_when(device=device)
problems = send_problems(tag_ok=bool(tag.strip()), message=message, send_at=send_at, pace_saved=pace_saved)
seen = sent_before.render_list_sent_before(report, file=digest)
going = sum(row.phone not in seen.leave_out for row in report.recipients)  # those left out are not
if not_going_out(BlastState.SENDING, device=device):  # a finish time "if sent now" would not be true
    render_not_going_out(BlastState.SENDING, before_send=True)
else:
    render_finish(device=device, recipients=going, start=send_at)
shown = problems if seen.ok else [*problems, f"tick “{seen.tick}” or change the list"]
if shown:
    st.caption("Before sending: " + "; ".join(shown) + ".")

b1, b2 = st.columns(2)
people = plural(going, "person", "people")
label = f"Send to {people}" if send_at is None else "Schedule the blast"
send_clicked = b1.button(
    label, type="primary", disabled=bool(shown), key="send_blast", icon=":material/send:",
    on_click=sent_before.press_send,
)
draft_clicked = b2.button("Save as draft", key="save_draft", disabled=not tag.strip())
if pressed and not send_clicked:
    # Streamlit drops a click on a button that the page, drawn again, shows disabled: what
    # changed as Send was pressed (a blast made from this list in another tab, say) is said.
    st.error(sent_before.why_not_sent(seen, problems=shown),
             icon=":material/block:")
if send_clicked or draft_clicked:
    stopped = None
    with friendly_errors("create the blast") as done, session() as s:
        if send_clicked:
            # The list is looked for again as the blast is made, the device locked (as sending
            # from it does), so that two tabs pressing Send cannot both pass.
            ensure_device(s, device=device, settings=cfg, lock=True)
            stopped = sent_before.made_meanwhile(s, report, agreed=seen.agreed, leave_out=seen.leave_out)
        if stopped is None:
            blast = create_draft_blast_from_import(
                s,
                report=report,
                tag=tag.strip(),
                follow_up_stage=stage.strip() or None,
                # A draft keeps the message as typed, mistakes and all, to be finished on its page.
                message_template=message.text if send_clicked or message.text.strip() else None,
                name=name.strip() or None,
                check_message=send_clicked,
                leave_out=seen.leave_out,
            )
            if send_clicked:
                blasts.launch(
                    s,
                    blast_id=blast.id,
                    at=send_at,
                    device=device,
                    timezone=cfg.timezone,
                    allow_blanks=st.session_state.get(kept_upload.GAPS_TICK, False),
                )
            created = (blast.id, blast.state)
    if stopped:
        st.error(stopped, icon=":material/block:")
    elif done.ok:  # committed: a blast that failed to save must not be shown as made
        made[digest] = created
        st.rerun()
