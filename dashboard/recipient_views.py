"""A blast's people: the searchable recipient table, decisions per row, exports, closing sales."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.closing import (
    CLOSE_BATCH_ROWS,
    CloseOutcome,
    CloseReport,
    ClosingStopped,
    PhoneColumnUnclear,
    SalesFile,
    close_in_batches,
    read_sales,
)
from core.csv_import import UPLOAD_TYPES, ColumnNotFound, opted_out_among
from core.exports import EXPORT_COLUMNS, export_columns, keyed_headings, stage_csv, stage_xlsx
from core.followups import chain_ids
from core.models import Blast
from core.opt_outs import add_opt_outs
from core.recipients import (
    RESENDABLE,
    SELECTIONS,
    Resent,
    Sales,
    cell_of,
    history,
    mark_closed,
    mark_failed,
    page_of_recipients,
    replies,
    resend,
    undo_sales,
)
from core.reply_inbox import FirstReply, first_replies, reply_words
from core.statuses import RANK, Status
from dashboard.blast_views import flash, local, status_word, take_flash
from dashboard.compose import bubble_html, plain
from dashboard.data import get_engine, on_download, reading, session, settings, upload_digest
from dashboard.format import and_list, one_of_many, plural
from dashboard.layout import friendly_errors
from dashboard.tables import height_for, no_toolbar_csv

# Where a status change came from, in words (the codes stay in the database).
SOURCE_WORDS = {
    "send": "while sending",
    "webhook": "update from WhatsApp",
    "polling": "checked with the gateway",
    "manual": "by hand",
    "import": "from an uploaded file",
}

# Fixed widths so that a long reply does not squeeze the other columns; the reply is shown whole
# in the row's history.
RECIPIENT_COLUMNS = {
    "Phone": st.column_config.TextColumn(width=120),
    "Name": st.column_config.TextColumn(width=150),
    # "Opted out · Read (blue ticks)" whole: at 150 px, "Read (blue ticks) · opted out" was cut
    # before the opt-out.
    "Status": st.column_config.TextColumn(width=205),
    "Sent": st.column_config.TextColumn(width=95),
    "Read": st.column_config.TextColumn(width=95),
    "Reply": st.column_config.TextColumn(
        width="large", help="What they wrote back. Tick the row to read a long reply in full."
    ),
    "Problem": st.column_config.TextColumn(width="medium", help="Why the message could not be sent."),
}
_HIDDEN = ["id", "code", "reply_text", "replied_at"]  # needed for actions and history, not for reading
PAGE_SIZE = 50
SHOWN_HISTORIES = 5  # ticking a whole page must not lay out fifty histories


def render_recipients(blast_id: int, *, cancelled: bool, key_prefix: str = "rcp") -> None:
    """A searchable, paginated table; pick rows to see their history or act on them. `cancelled`:
    the blast was, as the page was drawn (the page is drawn again when its state changes).

    The page runs it as a fragment that refreshes itself while messages go out and answers come
    in. While rows are ticked the table stays as it was ticked: a refresh that moved someone out
    of the view would clear the ticks under the person's hand."""
    render_done(key_prefix)
    top = st.columns([2, 3, 1])
    selection = top[0].selectbox("Show", list(SELECTIONS), key=f"{key_prefix}_sel")
    search = top[1].text_input("Search name, number or reply", key=f"{key_prefix}_q")
    with reading() as s:
        _, total = page_of_recipients(s, blast_id=blast_id, selection=selection, search=search, page_size=1)
    pages = max(1, -(-total // PAGE_SIZE))
    page = top[2].number_input("Page", 1, pages, 1, key=f"{key_prefix}_page")
    view = (blast_id, selection, search, int(page))
    held = held_while_ticked(key_prefix, view)
    if held is not None:
        frame, total = held
        st.caption("Kept as it was while rows are ticked: untick them to see the latest.")
    else:
        frame, total = _recipients_frame(blast_id, selection, search, int(page), cancelled=cancelled)
        hold(key_prefix, view, (frame, total))
    st.caption(f"{plural(total, 'recipient')} · page {int(page)} of {pages}")
    if frame.empty:
        st.info("No recipients match.")
        return
    with no_toolbar_csv(f"{key_prefix}_table_box"):  # replies and the list's own columns
        event = st.dataframe(
            frame.drop(columns=_HIDDEN),
            hide_index=True,
            width="stretch",
            height=height_for(len(frame)),
            column_config=RECIPIENT_COLUMNS,
            on_select="rerun",
            selection_mode="multi-row",
            key=live_table_key(key_prefix, view=view, shown=frame["id"]),
        )
    chosen = [int(frame.iloc[i]["id"]) for i in event.selection.rows if i < len(frame)]
    if not chosen:
        st.caption("Tick rows to see their history, mark sales closed, decide about unknown sends, "
                   "send failed ones again, or opt out someone who asked not to be messaged.")
        return
    _render_row_actions(chosen, frame, key_prefix, cancelled=cancelled)


def _generation(key_prefix: str) -> int:
    return st.session_state.get(f"{key_prefix}_table_generation", 0)


def hold(key_prefix: str, view: tuple[object, ...], shown: Any) -> None:
    """Keep what the table under `key_prefix` shows for `view`, for `held_while_ticked`."""
    st.session_state[f"{key_prefix}_held"] = (_generation(key_prefix), view, shown)


def held_while_ticked(key_prefix: str, view: tuple[object, ...]) -> Any | None:
    """What the table showed last (`hold`), when it is the same view and has rows ticked: a live
    list read again would move the ticks, which Streamlit keeps as row positions, onto other
    people, or clear them under the person's hand."""
    held, last = st.session_state.get(f"{key_prefix}_held"), st.session_state.get(f"{key_prefix}_table_last")
    shown = (_generation(key_prefix), view)
    if held is None or last is None or held[:2] != shown or last[:2] != shown or not _ticked(last[2]):
        return None
    return held[2]


def _recipients_frame(
    blast_id: int, selection: str, search: str, page: int, *, cancelled: bool
) -> tuple[pd.DataFrame, int]:
    """One page of the blast's recipients as the table shows them, and how many match."""
    with reading() as s:
        rows, total = page_of_recipients(
            s, blast_id=blast_id, selection=selection, search=search, page=page, page_size=PAGE_SIZE
        )
        first = first_replies(s, recipient_ids=[r.id for r in rows])
        stopped = opted_out_among(s, [r.phone_number for r in rows])
        # The list's own columns (Branch, Agent…) after ours, as its exports have them.
        theirs = keyed_headings(s.scalar(select(Blast.upload_columns).where(Blast.id == blast_id)),
                                list(RECIPIENT_COLUMNS))
        frame = pd.DataFrame(
            [
                {
                    "id": r.id,
                    "code": r.status,
                    "reply_text": r.reply_text,  # None: no reply; "": a photo, sticker or voice note
                    "replied_at": r.replied_at,
                    "Phone": r.phone_number,
                    "Name": r.contact_name or "",
                    # The opt-out first: a long status cut at the column's edge does not hide it.
                    "Status": ("Opted out · " if r.phone_number in stopped else "")
                    + status_word(r.status, cancelled=cancelled),
                    "Sent": local(r.sent_at, "%d %b %H:%M"),
                    "Read": local(r.read_timestamp, "%d %b %H:%M"),
                    "Reply": reply_cell(r.reply_text, first.get(r.id)),  # their first
                    "Problem": r.error or "",
                    **{shown: cell_of(r.variables, key) for key, shown in theirs},
                }
                for r in rows
            ]
        )
    return frame, total


def _render_row_actions(chosen: list[int], frame: pd.DataFrame, key_prefix: str, *, cancelled: bool) -> None:
    # Side by side, only those that apply: fixed columns had left gaps where one did not.
    row = st.container(horizontal=True)
    ticked = frame[frame["id"].isin(chosen)]
    # Those shown closed are offered the undo below, not a second sale.
    open_ = [int(rid) for rid in ticked[ticked["code"] != Status.CLOSED.value]["id"]]
    if open_ and row.button(f"Mark {len(open_)} as closed (sale)", key=f"{key_prefix}_close",
                                type="primary"):
        with friendly_errors("mark the sales") as done, session() as s:
            recorded = mark_closed(s, recipient_ids=open_)
        if done.ok:
            after_action(key_prefix, closed_words(recorded), did=recorded.closed > 0)
    codes = set(frame[frame["id"].isin(chosen)]["code"])
    # Nothing more goes from a cancelled blast: its unknown sends can only be decided.
    if codes and codes <= set(RESENDABLE) and not cancelled and row.button(
        "Send again",
        key=f"{key_prefix}_resend",
        help=("Only if you are sure they did not get it: they may receive it twice."
              if Status.UNKNOWN.value in codes else
              "WSAPME turned these down: send them again once the cause is mended. A number that is "
              "not on WhatsApp is turned down again."),
    ):
        with friendly_errors("queue them again") as done, session() as s:
            resent = resend(s, recipient_ids=chosen)
        if done.ok:
            after_action(key_prefix, resent_words(resent))
    if codes == {Status.UNKNOWN.value} and row.button("Mark as failed", key=f"{key_prefix}_failed"):
        with friendly_errors("mark them failed") as done, session() as s:
            failed = mark_failed(s, recipient_ids=chosen)
        if done.ok:
            settled = len(chosen) - failed  # a receipt or a reply came for them since the table was drawn
            after_action(key_prefix, f"{plural(failed, 'recipient')} marked as failed."
                         + (f" {settled:,} {'was' if settled == 1 else 'were'} settled by WhatsApp "
                            "meanwhile, and left as they are." if settled else ""))
    sales = [int(rid) for rid in ticked[ticked["code"] == Status.CLOSED.value]["id"]]  # as shown
    if sales and row.button(f"Not a sale: undo {len(sales):,}", key=f"{key_prefix}_unclose",
                                help="For a sale marked by mistake: back to where they were before it."):
        with friendly_errors("undo the sales") as done, session() as s:
            undone = undo_sales(s, recipient_ids=sales)
        if done.ok:
            after_action(key_prefix, undone_words(undone, len(sales)))
    render_opt_out(row, ticked["Phone"], key_prefix)
    if len(chosen) > SHOWN_HISTORIES:
        st.caption(f"The first {SHOWN_HISTORIES} histories are shown; the buttons act on all "
                   f"{len(chosen):,} ticked.")
    with reading() as s:
        for rid in chosen[:SHOWN_HISTORIES]:
            entries = history(s, recipient_id=rid)
            row = frame[frame["id"] == rid].iloc[0]
            with st.expander(f"History of {row['Phone']}", expanded=len(chosen) == 1):
                if not entries:
                    st.write("No changes yet.")
                for h in entries:
                    st.write(history_line(h.changed_at, h.old_status, h.new_status, h.source, event=h.event))
                said = [(r.replied_at, r.text) for r in replies(s, recipient_id=rid)]
                render_replies(said or _kept_reply(row["reply_text"], row["replied_at"]))


def undone_words(undone: int, ticked: int) -> str:
    """What "Not a sale: undo" did: "2 sales undone." and, for a sale changed meanwhile, that
    it was left as it is."""
    words = f"{plural(undone, 'sale')} undone: back to where they were before the sale."
    if left := ticked - undone:
        one = left == 1
        words += (f" {left:,} had changed meanwhile and {'was' if one else 'were'} left as "
                  f"{'it is' if one else 'they are'}.")
    return words


def closed_words(sales: Sales, *, one: str = "recipient", many: str | None = None) -> str:
    """What "Mark as closed" did: "1 recipient marked as closed (a sale). 2 were closed already."
    (closed meanwhile, in another tab or from a file), and who was left alone, and why."""
    words = (f"{plural(sales.closed, one, many)} marked as closed (a sale)." if sales.closed
             else "No sale recorded.")
    if sales.already:
        words += f" {sales.already:,} {'was' if sales.already == 1 else 'were'} closed already."
    if sales.unsent:
        words += (f" Left alone: {len(sales.unsent):,} whose message has not gone out (still waiting, "
                  "or failed).")
    if sales.elsewhere:
        n, on = len(sales.elsewhere), Counter(sales.elsewhere.values())
        where = (f"{next(iter(_named(on).values()))}, of the same campaign" if len(on) == 1
                 else f"other blasts of the same campaign: {_on_blasts(on)}")
        words += (f" {plural(n, 'number')} already {'has its' if n == 1 else 'have their'} sale recorded on "
                  f"{where}. A buyer counts once a campaign: undo the sale there to record it here.")
    return words


def reply_cell(stored: str | None, first: FirstReply | None) -> str:
    """The table's reply: their first as written (kept replies by time, whatever order they
    arrived in), with how many more; one kept on the recipient alone (before replies were kept
    one by one) otherwise. A photo, sticker or voice note in words; nothing if they never replied."""
    if first is not None:
        return one_of_many(reply_words(first.text), first.replies)
    return "" if stored is None else reply_words(stored)


def _kept_reply(text: object, at: object) -> list[tuple[dt.datetime | None, str]]:
    """A first reply stored on the recipient alone (before replies were kept one by one)."""
    return [(at if isinstance(at, dt.datetime) else None, text)] if isinstance(text, str) else []


def render_replies(said: list[tuple[dt.datetime | None, str]], *, theirs: bool = False) -> None:
    """What they replied, each with its time; `theirs` in the white bubbles of the other side of
    a conversation."""
    if not said:
        return
    st.write("**What they replied**" + (f" ({len(said):,} messages)" if len(said) > 1 else ""))
    for at, text in said:
        if at is not None:
            st.caption(local(at, "%d %b %H:%M"))
        # As WhatsApp shows it; nothing they typed is read as markup. A photo in words.
        st.html(bubble_html(reply_words(text), theirs=theirs))


def table_key(key_prefix: str, *, generation: int, view: tuple[object, ...], shown: Iterable[object]) -> str:
    """A table's key. Streamlit keeps a table's ticks, as row positions, under its key and lets no
    script clear them, so the key holds everything that would make a position someone else: the
    view (what is shown, the search, the page), who is listed in it (a live list changes between
    two clicks: a changed list is a new, unticked table, and a tick never moves to another person)
    and `generation`, which changes after an action, for a list that stayed the same."""
    listed = hashlib.sha1(",".join(map(str, shown)).encode()).hexdigest()[:16]
    return f"{key_prefix}_table_{generation}_{view!r}_{listed}"


def live_table_key(key_prefix: str, *, view: tuple[object, ...], shown: Iterable[object]) -> str:
    """The key for this run's table; says so above it when ticks were dropped because the list
    changed under them, as they would otherwise vanish unexplained."""
    generation = _generation(key_prefix)
    key = table_key(key_prefix, generation=generation, view=view, shown=shown)
    last = f"{key_prefix}_table_last"
    before = st.session_state.get(last)
    st.session_state[last] = (generation, view, key)
    if before and before[:2] == (generation, view) and before[2] != key and _ticked(before[2]):
        st.caption("The list changed since you ticked, so the ticks were cleared: tick again.")
    return key


def _ticked(key: str) -> bool:
    """Whether the last run's table under `key` had rows ticked (its state lasts until the end of
    the run that no longer shows it)."""
    state = st.session_state.get(key)
    return bool(state and state["selection"]["rows"])


def added_words(added: int, withdrawn: int, already: int) -> str:
    words = f"{plural(added, 'number')} added to the opt-out list."
    if withdrawn:
        words += (f" {plural(withdrawn, 'message')} waiting to go to them "
                  f"{'is' if withdrawn == 1 else 'are'} no longer sent.")
    if already:
        words += f" {plural(already, 'number')} {'was' if already == 1 else 'were'} already on it."
    return words


def render_opt_out(container: Any, phones: Iterable[str], key_prefix: str) -> None:
    """A button that puts the ticked people's numbers on the opt-out list: someone who asked in
    a reply, in words no keyword catches ("tolong jangan hantar lagi"), or by phone."""
    wanted = sorted(set(phones))
    with reading() as s:
        listed = opted_out_among(s, wanted)
    numbers = [p for p in wanted if p not in listed]
    if not numbers:
        return
    with container.popover(f"Opt out {len(numbers):,}", icon=":material/block:"):
        st.write("For people who asked not to be messaged again: no blast will send to them, and "
                 "messages waiting to go to them are dropped. A number put on the list by mistake can "
                 "be taken off on the Opt-outs page, but the dropped messages do not come back.")
        if st.button(f"Yes, opt out {len(numbers):,}", key=f"{key_prefix}_opt_out", type="primary"):
            with friendly_errors("add them to the opt-out list") as done, session() as s:
                added, withdrawn = add_opt_outs(s, numbers, source="manual")
            if done.ok:
                after_action(key_prefix, added_words(added, withdrawn, len(numbers) - added))


def after_action(key_prefix: str, message: str, *, did: bool = True) -> None:
    """After a change, rerun the whole page so the funnel and every count agree with it; the
    message waits for that run (`render_done`; in blue, not green, when nothing was `did`), and
    the rows just acted on are no longer ticked."""
    flash(f"{key_prefix}_done", (message, did))
    generation = f"{key_prefix}_table_generation"
    st.session_state[generation] = st.session_state.get(generation, 0) + 1
    st.rerun()


def render_done(key_prefix: str) -> None:
    """What the last action did (`after_action`), once."""
    if done := take_flash(f"{key_prefix}_done"):
        message, did = done
        if did:
            st.success(message)
        else:
            st.info(message, icon=":material/info:")


def resent_words(resent: Resent) -> str:
    """ "2 recipients queued to be sent again; 1 left out: they asked not to be messaged." """
    words = f"{plural(resent.queued, 'recipient')} queued to be sent again"
    if resent.opted_out:
        words += f"; {resent.opted_out:,} left out: they asked not to be messaged"
    if resent.cancelled:
        words += f"; {resent.cancelled:,} left as they were: nothing more is sent from a cancelled blast"
    return words + "."


def history_line(
    at: dt.datetime, old: str | None, new: str, source: str | None, *, event: dict | None = None
) -> str:
    if event and event.get("late_answer"):  # an earlier try's answer, after it was sent again
        answer = str(event["late_answer"])
        went = answer in Status.__members__ and RANK[Status(answer)] >= 1
        return (f"{local(at, '%d %b %H:%M:%S')} — an earlier try's answer came after it was sent again: "
                f"**{status_word(answer)}** (message id {event.get('message_id') or 'none'})."
                + (" Both messages may have reached them." if went else ""))
    where = SOURCE_WORDS.get(source or "", source or "")
    move = f"**{status_word(new)}**" if old is None else f"{status_word(old)} → **{status_word(new)}**"
    return f"{local(at, '%d %b %H:%M:%S')} — {move}" + (f" ({where})" if where else "")


# The list's own columns named under the export buttons; a contacts export's dozens are counted.
SHOWN_COLUMNS = 6


def render_export(blast_id: int) -> None:
    selection = st.selectbox("Which recipients", list(SELECTIONS), key="export_sel")
    zone = settings().timezone
    workbook = on_download(lambda s: stage_xlsx(s, blast_id=blast_id, selection=selection, zone=zone))
    data = on_download(lambda s: stage_csv(s, blast_id=blast_id, selection=selection, zone=zone))
    stem = f"blast-{blast_id}-{selection.lower().replace(', ', '-').replace(' ', '-')}"
    excel, csv = st.columns(2)
    excel.download_button(
        f"Download “{selection}” for Excel",
        workbook,
        file_name=f"{stem}.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key="export_xlsx",
        icon=":material/table_view:",
        on_click="ignore",
    )
    csv.download_button(
        f"Download “{selection}” as CSV",
        data,
        file_name=f"{stem}.csv",
        mime="text/csv",
        key="export_btn",
        icon=":material/download:",
        on_click="ignore",
    )
    with reading() as s:
        theirs = s.scalar(select(Blast.upload_columns).where(Blast.id == blast_id)) or []
    if theirs:
        headings = [plain(h) for h in export_columns(theirs)[len(EXPORT_COLUMNS):]]
        named = headings if len(headings) <= SHOWN_COLUMNS else [
            *headings[:SHOWN_COLUMNS - 1], f"{len(headings) - SHOWN_COLUMNS + 1} more"]
        st.caption(f"Each file holds every person's status, times and replies, and your list's own "
                   f"columns: {and_list(named)}.")


# (file, why, the columns to choose from, the one suggested) when the file's numbers were not
# found, or could be in more than one column.
_CLOSE_COLUMNS = "close_columns"


def render_close_from_file(blast_id: int) -> None:
    st.write(
        "Upload a list (Excel or CSV) of the phone numbers that bought. Each is matched to the "
        "latest message sent to that number and marked **closed**."
    )
    _render_close_report(take_flash("close_report"), stopped=take_flash("close_stopped"), blast_id=blast_id)
    only_chain = st.checkbox(
        "Only this blast's chain: its first blast and every follow-up", value=True, key="close_chain",
        help="Each number is closed on the latest of these blasts that messaged it. Untick to look "
        "through every blast.",
    )
    upload = st.file_uploader(
        "Numbers that bought (Excel or CSV)", type=list(UPLOAD_TYPES), key="close_upload"
    )
    if upload is None:
        return
    # The numbers' column not found, or more than one could hold them: the marketer points to it.
    file = upload_digest(upload)
    asked = st.session_state.get(_CLOSE_COLUMNS)
    asking = bool(asked) and asked[0] == file  # asked for this file, not one uploaded before
    chosen = None
    if asking:
        _, why, choices, suggested = asked
        if suggested is None:
            st.error(why, icon=":material/error:")
        else:
            st.warning(why, icon=":material/help:")
        chosen = st.selectbox("Which column has the phone numbers?", choices,
                              index=None if suggested is None else choices.index(suggested),
                              key="close_phone_column", placeholder="Choose the column")
    if not st.button("Mark them closed", key="close_apply", type="primary", disabled=asking and not chosen):
        return
    sales = None
    with friendly_errors("read the file") as done:
        try:
            sales = read_sales(upload.getvalue(), region=settings().phone_region, filename=upload.name,
                               max_upload_mb=settings().max_upload_mb, phone_column=chosen)
        except ColumnNotFound as exc:  # the next run asks which column, from these
            suggested = exc.suggested if isinstance(exc, PhoneColumnUnclear) else None
            st.session_state[_CLOSE_COLUMNS] = (file, exc.message, exc.headers, suggested)
    if not done.ok:
        return
    if sales is None:
        st.rerun()  # to ask which column
    st.session_state.pop(_CLOSE_COLUMNS, None)
    _close(sales, blast_id=blast_id, only_chain=only_chain)


def _close(sales: SalesFile, *, blast_id: int, only_chain: bool) -> None:
    """Close the file's sales a batch at a time (the webhook's writes go in between), with a
    progress bar for a long list; the report is shown after a rerun, which brings the funnel
    and the counts above up to date."""
    with friendly_errors("close the sales") as done, reading() as s:
        blast_ids = chain_ids(s, blast_id=blast_id) if only_chain else []
    if not done.ok:
        return
    total = len(sales.lines)
    bar = None
    if total > CLOSE_BATCH_ROWS:  # more than one batch: it takes a while
        bar = st.progress(0.0, text=f"Closing the sales: 0 of {total:,} lines")

    def moved(lines: int, of: int) -> None:
        if bar is not None:
            bar.progress(lines / of, text=f"Closing the sales: {lines:,} of {of:,} lines")

    try:
        # Looking through every blast once live, a practice blast is no candidate; a practice
        # blast's own chain, chosen on its page, is that chain.
        report = close_in_batches(get_engine(), sales, blast_ids=blast_ids, progress=moved,
                                  leave_out_practice=not settings().sandbox and not blast_ids)
    except ClosingStopped as exc:
        report = exc.report
        flash("close_stopped", exc.message)
    flash("close_report", report)
    st.rerun()


def _closed_elsewhere(report: CloseReport, *, blast_id: int) -> str | None:
    """Where the sales went when some are not on this blast: each is recorded on the last
    message its number was sent, which may be a follow-up's, so this blast's Closed may not
    move by as many."""
    on = Counter(r.blast_id for r in report.rows if r.outcome is CloseOutcome.CLOSED and r.blast_id)
    if set(on) <= {blast_id}:
        return None
    return "Each sale is recorded on the last message its number was sent: " + _on_blasts(on, blast_id) + "."


def _on_blasts(on: Counter[int], blast_id: int | None = None) -> str:
    """ "2 on this blast and 1 on blast #53 “Merdeka Deal”", this blast (if any) first."""
    named = _named(on, blast_id)
    return and_list([f"{on[b]:,} on {named[b]}" for b in sorted(on, key=lambda b: (b != blast_id, b))])


def _named(blast_ids: Iterable[int], blast_id: int | None = None) -> dict[int, str]:
    """ "blast #53 “Merdeka Deal”" for each; "this blast" for `blast_id`."""
    wanted = list(blast_ids)
    with reading() as s:
        names = dict(s.execute(select(Blast.id, Blast.name).where(Blast.id.in_(wanted))).all())
    return {b: "this blast" if b == blast_id else f"blast #{b} “{plain(names.get(b) or '')}”" for b in wanted}


def _closed_before(report: CloseReport, *, blast_id: int) -> str | None:
    """Where the buyers already closed were closed, when not on this blast: "3 were already closed
    on blast #53 “Merdeka Deal”." (the file uploaded again on another blast of the campaign)."""
    on = Counter(r.blast_id for r in report.rows
                 if r.outcome is CloseOutcome.ALREADY_CLOSED and r.blast_id and r.blast_id != blast_id)
    if not on:
        return None
    total = on.total()
    return (f"{plural(total, 'buyer')} in the file {'was' if total == 1 else 'were'} closed already, "
            f"as sales of the same campaign: {_on_blasts(on, blast_id)}. They are not counted again.")


CLOSE_LABELS = {
    CloseOutcome.CLOSED: "Closed",
    CloseOutcome.ALREADY_CLOSED: "Already closed",
    CloseOutcome.NOT_MESSAGED: "Never messaged",
    CloseOutcome.MESSAGED_ELSEWHERE: "Other blast",
    CloseOutcome.INVALID: "Not a number",
    CloseOutcome.DUPLICATE: "Listed twice",
}


# The rows of a sales file that closed nothing and may need a person: a number typed wrong, a
# buyer no blast messaged (a walk-in, or a number mistyped), a line twice.
TO_LOOK_AT = (CloseOutcome.NOT_MESSAGED, CloseOutcome.INVALID, CloseOutcome.MESSAGED_ELSEWHERE,
              CloseOutcome.DUPLICATE)
LOOK_AT_SHOWN = 500


def _render_rows_to_look_at(report: CloseReport) -> None:
    """Those rows on the page, by their line in the file: the counts alone had sent whoever
    chased a buyer "never messaged" to the downloaded report."""
    rows = sorted((r for r in report.rows if r.outcome in TO_LOOK_AT), key=lambda r: r.line)
    if not rows:
        return
    st.markdown(f"**Rows to look at** ({len(rows):,}): no sale was recorded for them.")
    shown = rows[:LOOK_AT_SHOWN]
    table = pd.DataFrame({
        "Line": [r.line for r in shown],
        "Number": [r.phone or "" for r in shown],
        "What happened": [CLOSE_LABELS[r.outcome] + (f": {r.detail}" if r.detail else "") for r in shown],
    })
    with no_toolbar_csv("close_look_at"):  # cells as typed in the file
        st.dataframe(table, hide_index=True, height=height_for(len(shown)), column_config={
            "Line": st.column_config.NumberColumn(width=60, help="The row's number in Excel."),
            "Number": st.column_config.TextColumn(width=140),
            "What happened": st.column_config.TextColumn(width="large"),
        })
    if len(rows) > len(shown):
        st.caption(f"The first {len(shown):,} are shown; the report below has them all.")


def _render_close_report(report: CloseReport | None, *, stopped: str | None = None, blast_id: int) -> None:
    if report is None:
        return
    if stopped:
        st.error(stopped, icon=":material/error:")
    else:
        st.success(f"Done: {plural(report.count(CloseOutcome.CLOSED), 'sale')} marked as closed.")
    if where := _closed_elsewhere(report, blast_id=blast_id):
        st.caption(where)
    if before := _closed_before(report, blast_id=blast_id):
        st.info(before, icon=":material/sell:")
    if report.phone_column:
        st.caption(f"Numbers from the column **{plain(report.phone_column)}**.")
    for note in report.notes:
        st.caption(note)
    # Short labels fit five across; "Other blast" only when closing for one chain found some.
    shown = [o for o in CloseOutcome if o is not CloseOutcome.MESSAGED_ELSEWHERE or report.count(o)]
    for col, outcome in zip(st.columns(len(shown)), shown, strict=True):
        # The outcome in full is the help.
        col.metric(CLOSE_LABELS[outcome], f"{report.count(outcome):,}", help=outcome.value.capitalize() + ".")
    _render_rows_to_look_at(report)
    if elsewhere := report.messaged_elsewhere():
        n = report.count(CloseOutcome.MESSAGED_ELSEWHERE)
        st.warning(
            f"{plural(n, 'number')} in the file {'was' if n == 1 else 'were'} messaged by another "
            f"blast ({', '.join(plain(name) for name in elsewhere)}), not this one or its follow-ups, so "
            f"{'it was' if n == 1 else 'they were'} left open. They may well be sales: open that blast "
            "and close them there with the same file.",
            icon=":material/info:",
        )
    st.download_button(
        "Download what matched (CSV)",
        report.to_csv(),
        file_name="closed-sales-report.csv",
        mime="text/csv",
        key="close_report",
        icon=":material/download:",
        on_click="ignore",  # downloading must not rerun the page and lose this one-time report
    )
