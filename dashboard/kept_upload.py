"""The New blast page's work kept across pages: Streamlit forgets an upload, and what was typed
in a box, when the marketer opens another page; these stay, for the file they were made for."""

from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st

from dashboard.compose import Message, plain
from dashboard.data import upload_digest
from dashboard.new_blast_views import forget_test


@dataclass(frozen=True)
class ContactsFile:
    """An uploaded contact list, kept in the session: Streamlit forgets the upload itself when
    the marketer opens another page."""

    name: str
    data: bytes

    def getvalue(self) -> bytes:  # as an upload reads
        return self.data


# Session state of the file kept, of whether the marketer chose to go on with it, and of what was
# typed for it: a widget's own state goes when another page is shown, these stay.
_KEPT_FILE, _CONTINUING, _TYPED_FOR = "kept_upload", "kept_upload_continued", "typed_for"
# What `_TYPED_FOR` holds once the marketer took the file off or started over: what the boxes
# send back then is the last file's, never what they typed for the next.
_STARTED_OVER = "started over"
# "when": a blast chosen to be scheduled must not come back as "Send now", nor for another day.
# Not the number for a test: it is the marketer's own, kept for every blast (`render_test`).
# The blast each upload of this session became, by the file's digest: one upload, one blast.
BLASTS_MADE = "blasts_from_upload"
TYPED = ("blast_name", "blast_tag", "blast_stage", "tpl", "when", "when_day", "when_time")
# The ticks, kept too, each with what it answers: "Send anyway, leaving the gaps empty" with the
# message it was ticked for (`keep_gaps_tick`), and "Send to them again anyway" by its key, which
# names the blasts it answers (dashboard/sent_before.py). Both are for the file only: another
# file, or starting over, asks again.
GAPS_TICK = "tpl_blanks"
_SEND_AGAIN_TICK = re.compile(r"send_again_\d+(?:_\d+)*")
# What the boxes show afresh. Forgetting sets these rather than removing the boxes' values: a
# value set in a callback is sent to the browser, while a removed one left the browser showing
# the last file's words, and sending them back with the next click (seen when the machine was
# busy). The blast's name is worked out again for the new file (dashboard/blast_naming.py).
_FRESH: dict[str, object] = {"blast_tag": "", "blast_stage": "Initial", "tpl": "", "when": "Send now"}


def _kept(key: str) -> str:
    return f"kept_{key}"


def contacts_file(upload) -> ContactsFile | None:  # type: ignore[no-untyped-def]
    """The file uploaded, kept for a later visit to the page; or, with none, the kept one once
    the marketer chose to continue with it (`render_continue_offer`); None when there is none."""
    if upload is not None:
        kept = ContactsFile(upload.name, upload.getvalue())
        st.session_state[_KEPT_FILE] = kept
        return kept
    kept = st.session_state.get(_KEPT_FILE)
    if kept is None or not st.session_state.get(_CONTINUING):
        return None
    c1, c2 = st.columns([3, 1])
    c1.caption(f"Contacts from **{plain(kept.name)}**, uploaded earlier.")
    c2.button("Start over", key="start_over", on_click=start_over, icon=":material/restart_alt:")
    return kept


def render_continue_offer() -> bool:
    """Offer the file uploaded on an earlier visit to the page; False when there is none."""
    kept = st.session_state.get(_KEPT_FILE)
    if kept is None:
        return False
    st.info(f"You were setting up a blast from **{plain(kept.name)}**. Continue with it, or start "
            "over with another file.", icon=":material/history:")
    c1, c2 = st.columns(2)
    c1.button(f"Continue with {plain(kept.name)}", key="continue_upload", type="primary",
              on_click=_continue, icon=":material/arrow_forward:")
    c2.button("Start over", key="start_over", on_click=start_over, icon=":material/restart_alt:")
    return True


def _continue() -> None:
    st.session_state[_CONTINUING] = True


def upload_changed() -> None:
    """Removing the file starts afresh; another file is the one to go on with, and what was
    typed and ticked for the last one is forgotten here, in the uploader's callback: changed
    by the script instead, the boxes could still show, or send back, the last file's values
    (the browser keeps a box's value until the page is drawn again)."""
    upload = st.session_state.get("upload")
    if upload is None:
        start_over()
        return
    st.session_state[_CONTINUING] = False
    file = upload_digest(upload)
    if st.session_state.get(_TYPED_FOR) not in (None, file):
        _forget_typed()
    st.session_state[_TYPED_FOR] = file


def start_over() -> None:
    """Forget the file kept and everything typed and ticked for it. The boxes are not drawn
    again until a file comes, so the browser still holds the old values and sends them with
    the next file: that file's callback clears them once more (`_STARTED_OVER`)."""
    forget_file()
    _forget_typed()
    st.session_state[_TYPED_FOR] = _STARTED_OVER


def _forget_typed(*, keep_boxes: bool = False) -> None:
    """Forget what was typed and ticked, and the copies kept of it; with `keep_boxes`, what the
    boxes hold stays (the first file's: typed before the page knew of a file). A tick always
    goes: it answers for the list it was given for, never another; so does the last test."""
    forget_test()
    for key in TYPED:
        st.session_state.pop(_kept(key), None)
        if not keep_boxes:
            _afresh(key)
    for key in _ticks():  # unticked, not removed: the browser is told
        st.session_state.pop(_kept(key), None)
        st.session_state[key] = False


def _afresh(key: str) -> None:
    if key in _FRESH:
        st.session_state[key] = _FRESH[key]
    else:  # a box drawn for one file only: another file draws its own
        st.session_state.pop(key, None)


def forget_file() -> None:
    """Forget the file kept and the copies of what was typed and ticked for it, leaving the
    boxes as they are: once its blast is made, a later visit to the page starts afresh."""
    for key in (_KEPT_FILE, _CONTINUING, _TYPED_FOR, *map(_kept, (*TYPED, *_ticks()))):
        st.session_state.pop(key, None)


def _ticks() -> set[str]:
    """The ticks in the session or kept: "Send anyway" and any "Send to them again anyway"."""
    keys = [str(key) for key in st.session_state]
    again = {key.removeprefix(_kept("")) for key in keys
             if _SEND_AGAIN_TICK.fullmatch(key.removeprefix(_kept("")))}
    return {GAPS_TICK, *again}


def keep_typing(file: str) -> None:
    """Keep what is typed in the blast's boxes (`TYPED`) and ticked for `file`, and put it back
    on coming back to the page; what was typed for another file is forgotten, and a tick given
    for it too, even within one visit. Called before the boxes are drawn: the session holds
    what the marketer last typed in them."""
    if st.session_state.get(_TYPED_FOR) != file:  # another file: its boxes start afresh
        _forget_typed(keep_boxes=st.session_state.get(_TYPED_FOR) is None)
        st.session_state[_TYPED_FOR] = file
    for key in (*TYPED, *sorted(_ticks() - {GAPS_TICK})):
        if key in st.session_state:
            st.session_state[_kept(key)] = st.session_state[key]
        elif _kept(key) in st.session_state:
            st.session_state[key] = st.session_state[_kept(key)]
    kept = st.session_state.get(_kept(GAPS_TICK))
    if GAPS_TICK not in st.session_state and kept and kept[0] == st.session_state.get("tpl"):
        st.session_state[GAPS_TICK] = kept[1]


def keep_gaps_tick(message: Message) -> None:
    """Keep "Send anyway, leaving the gaps empty" with the message it was ticked for, once the
    message is drawn; a message with no gaps to answer for forgets it, so that a later one with
    gaps asks again."""
    if message.gaps:
        st.session_state[_kept(GAPS_TICK)] = (message.text, bool(st.session_state.get(GAPS_TICK)))
    else:
        st.session_state.pop(_kept(GAPS_TICK), None)
