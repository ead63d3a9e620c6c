"""The opt-out page's pieces: adding numbers by hand, the list, and taking one off it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session

from core.exports import to_csv
from core.opt_outs import Listed, add_opt_outs, listed, remove_opt_out
from core.phones import normalise
from dashboard.blast_views import flash, local, take_flash
from dashboard.compose import plain
from dashboard.data import on_download, reading, session, settings
from dashboard.format import plural
from dashboard.layout import friendly_errors
from dashboard.recipient_views import added_words, after_action, live_table_key, render_done
from dashboard.tables import no_toolbar_csv

SHOWN = 200  # newest entries listed; search finds the rest
LIST_COLUMNS = {
    "Number": st.column_config.TextColumn(width=130),
    "Name": st.column_config.TextColumn(width=150, help="The name a blast knew them by, when one did."),
    "Since": st.column_config.TextColumn(width=140),
    "How": st.column_config.TextColumn(
        width="large", help="What they wrote to stop, when it came as a reply, or that it was added by hand."
    ),
}
KEY = "opt_out"
_SEPARATORS = re.compile(r"[\n,;]+")
_KEPT = "opt_out_numbers_kept"  # what the box holds after an add: the numbers refused
# How a number came onto the list, in words.
SOURCE_WORDS = {"webhook": "replied", "manual": "added by hand"}


@dataclass(frozen=True)
class Typed:
    """Numbers typed into the box: the usable ones (E.164), and the others with the reason."""

    numbers: list[str]
    unusable: list[tuple[str, str]]


def read_numbers(text: str, *, region: str) -> Typed:
    """One number per line, or separated by commas or semicolons, in any of the usual ways of
    writing them."""
    numbers, unusable = [], []
    for raw in (part.strip() for part in _SEPARATORS.split(text)):
        if not raw:
            continue
        phone = normalise(raw, region)
        if phone.ok:
            numbers.append(phone.e164)
        else:
            unusable.append((raw, phone.reason or "not a phone number"))
    return Typed(list(dict.fromkeys(numbers)), unusable)


def how_words(entry: Listed) -> str:
    """ 'Replied “Berhenti lah, terima kasih!”', "Added by hand". When their reply was not kept
    (a number no blast had messaged), the words as matched, in lower case rather than shouted."""
    if entry.source == "webhook":
        if entry.said:
            return f"Replied “{' '.join(entry.said.split())}”"
        return "Replied asking to stop" + (f" ({entry.keyword.lower()})" if entry.keyword else "")
    return SOURCE_WORDS.get(entry.source or "", entry.source or "").capitalize() or "—"


def render_add() -> None:
    """Numbers someone asked, by phone or email, not to be messaged. After adding, the box keeps
    only the numbers that could not be added, to be mended rather than typed again."""
    if (kept := st.session_state.pop(_KEPT, None)) is not None:
        st.session_state["opt_out_numbers"] = kept  # before the box is drawn: the one time it may change
    with st.form("opt_out_add", clear_on_submit=False, border=True):
        st.markdown("**Add numbers by hand**: someone asked by phone, email or in person.")
        text = st.text_area("Phone numbers, one per line", key="opt_out_numbers", height=100,
                            placeholder="012-345 6789\n+65 8123 4567")
        submitted = st.form_submit_button("Add to the opt-out list", type="primary",
                                          icon=":material/block:")
    if not submitted:
        return
    typed = read_numbers(text, region=settings().phone_region)
    if not typed.numbers:
        _render_unusable(typed.unusable)
        if not typed.unusable:
            st.warning("Type at least one phone number.")
        return
    with friendly_errors("add the numbers") as done, session() as s:
        added, withdrawn = add_opt_outs(s, typed.numbers, source="manual")
    if done.ok:
        flash("opt_out_unusable", typed.unusable)  # the list reruns to show the new numbers
        st.session_state[_KEPT] = "\n".join(raw for raw, _ in typed.unusable)
        after_action(KEY, added_words(added, withdrawn, len(typed.numbers) - added))
    _render_unusable(typed.unusable)


def _render_unusable(unusable: list[tuple[str, str]]) -> None:
    for raw, reason in unusable:
        st.error(f"“{plain(raw)}” was not added: {reason}.", icon=":material/error:")


def render_list() -> None:
    """The list, newest first, searchable; tick a number to take it off."""
    render_done(KEY)
    if refused := take_flash("opt_out_unusable"):
        _render_unusable(refused)
        st.caption("They are still in the box above: correct them and add them again.")
    search = st.text_input("Search a number", key="opt_out_q", placeholder="0123")
    with reading() as s:
        entries, total = listed(s, search=search, limit=SHOWN)
    if total == 0:
        st.info("No one matches." if search.strip() else "No one has opted out yet.")
        return
    shown = f"the newest {len(entries):,} of " if total > len(entries) else ""
    st.caption(f"Showing {shown}{plural(total, 'number')}.")
    frame = pd.DataFrame({
        "Number": [e.phone_number for e in entries],
        "Name": [e.name or "" for e in entries],
        "Since": [local(e.created_at, "%d %b %Y, %H:%M") for e in entries],
        "How": [how_words(e) for e in entries],
    })
    # Newest first: a STOP arriving between the tick and the click moves every row down one, so
    # the numbers shown are in the key.
    key = live_table_key(KEY, view=(search,), shown=frame["Number"])
    with no_toolbar_csv(f"{KEY}_table_box"):  # names as they came in lists
        event = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun",
                             selection_mode="single-row", key=key, column_config=LIST_COLUMNS)
    # Every number that matches, not only the newest shown: the list goes to other tools.
    label = f"Download {_these(total)} (CSV)" if search.strip() else "Download the list (CSV)"
    st.download_button(label, on_download(lambda s: list_csv(s, search=search)), file_name="opt-outs.csv",
                       mime="text/csv", key="opt_out_csv", icon=":material/download:", on_click="ignore")
    rows = [i for i in event.selection.rows if i < len(entries)]
    if rows:
        _render_remove(entries[rows[0]].phone_number)


def _these(total: int) -> str:
    return "this number" if total == 1 else f"these {plural(total, 'number')}"


def list_csv(s: Session, *, search: str) -> bytes:
    """Every number on the list that matches `search`, for a spreadsheet or another tool. Headed
    in the list's words; "Number" is what a list of numbers uploaded again is read by."""
    entries, _ = listed(s, search=search, limit=None)
    return to_csv(((e.phone_number, local(e.created_at, "%Y-%m-%d %H:%M"), how_words(e), e.name or "")
                   for e in entries), columns=["Number", "Since", "How", "Name"])


def _render_remove(phone: str) -> None:
    with st.popover(f"Take {phone} off the list", icon=":material/undo:"):
        st.write("Only if they were put on it by mistake: future blasts will message them again. "
                 "Blasts they were taken out of stay as they are.")
        if not st.button("Yes, take them off", key="opt_out_remove", type="primary"):
            return
        with friendly_errors("take the number off the list") as done, session() as s:
            removed = remove_opt_out(s, phone=phone)
        if done.ok:
            after_action(KEY, f"{phone} was taken off the opt-out list." if removed
                         else f"{phone} was no longer on the list.")
