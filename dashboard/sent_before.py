"""A list sent again: recent blasts that already hold most of it, said before it goes out, and
asked again as the blast is made (one made meanwhile, in another tab, stops it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st
from sqlalchemy.orm import Session

from core.csv_import import ImportReport, Overlap, recent_blasts_with
from core.models import utcnow
from dashboard.data import reading, settings
from dashboard.format import and_list, state_word

_AGREED = "send_again_for"  # the file, and the blasts "Send to them again anyway" was ticked for


@dataclass(frozen=True)
class SentBefore:
    """What the page says of recent blasts that already hold most of the list."""

    ok: bool  # none does, or "Send to them again anyway" is ticked for those that do
    # The blasts it was ticked for when the page was last drawn: those the marketer had seen
    # when they pressed Send. Any other found then was made meanwhile (in another tab, say).
    agreed: frozenset[int]
    overlaps: tuple[Overlap, ...] = ()  # found as the page was drawn


def render_list_sent_before(report: ImportReport, *, file: str) -> SentBefore:
    """Warn when recent blasts already hold most of this list (uploaded again after the page
    was left mid-send, say), with a tick to send anyway that answers for those blasts only: one
    made since asks again."""
    before = st.session_state.get(_AGREED)
    agreed = frozenset(before[1]) if before and before[0] == file else frozenset()
    with reading() as s:
        overlaps = _overlaps(s, report)
    ticked = bool(overlaps) and _render_overlaps(overlaps)
    st.session_state[_AGREED] = (file, tuple(o.blast_id for o in overlaps) if ticked else ())
    return SentBefore(ok=not overlaps or ticked, agreed=agreed, overlaps=tuple(overlaps))


def _overlaps(s: Session, report: ImportReport) -> list[Overlap]:
    return recent_blasts_with(s, [row.phone for row in report.recipients if row.phone], now=utcnow())


def render_draft_sent_before(blast_id: int, numbers: Sequence[str]) -> SentBefore:
    """The same for a draft sent from its own page (a list saved to finish later): recent
    blasts other than the draft itself that already hold most of its people, with a tick that
    answers for those blasts only. A follow-up is not asked: it is meant for people its blast
    messaged, and `core.followups` leaves out whoever another follow-up reached."""
    key = f"{_AGREED}_draft_{blast_id}"
    agreed = frozenset(st.session_state.get(key, ()))
    with reading() as s:
        overlaps = _draft_overlaps(s, blast_id, numbers)
    ticked = bool(overlaps) and _render_overlaps(overlaps, key=f"draft_{blast_id}_send_again")
    st.session_state[key] = tuple(o.blast_id for o in overlaps) if ticked else ()
    return SentBefore(ok=not overlaps or ticked, agreed=agreed, overlaps=tuple(overlaps))


def draft_made_meanwhile(s: Session, blast_id: int, numbers: Sequence[str], *,
                         agreed: frozenset[int]) -> str | None:
    """`made_meanwhile` for a draft's Send: asked again in the transaction that sends it."""
    return _meanwhile_words([o for o in _draft_overlaps(s, blast_id, numbers) if o.blast_id not in agreed])


def _draft_overlaps(s: Session, blast_id: int, numbers: Sequence[str]) -> list[Overlap]:
    return [o for o in recent_blasts_with(s, numbers, now=utcnow()) if o.blast_id != blast_id]


def _render_overlaps(overlaps: list[Overlap], *, key: str = "send_again") -> bool:
    zone = settings().timezone
    lines = [
        f"- **Blast #{o.blast_id}** “{o.name or 'Untitled'}” ({state_word(o.state).lower()}, made "
        f"{o.created_at.astimezone(zone):%d %b %H:%M}) already has {o.shared:,} of these numbers."
        for o in overlaps[:3]
    ]
    st.warning(
        "This list looks like one sent recently. Sending it again messages the same people twice.\n"
        + "\n".join(lines),
        icon=":material/content_copy:",
    )
    for o in overlaps[:3]:
        st.page_link("pages/blast.py", label=f"Open blast #{o.blast_id}",
                     query_params={"blast": o.blast_id}, icon=":material/open_in_new:")
    # Keyed by the blasts it answers: a tick given for last week's blast is no answer for one
    # made since from the same list.
    key += "_" + "_".join(str(o.blast_id) for o in sorted(overlaps, key=lambda o: o.blast_id))
    return st.checkbox("Send to them again anyway", key=key)


_PRESSED = "send_pressed"


def press_send() -> None:
    st.session_state[_PRESSED] = True


def send_pressed() -> bool:
    """Whether Send was pressed for this run (`press_send`), whether or not the click counts."""
    return bool(st.session_state.pop(_PRESSED, False))


def why_not_sent(seen: SentBefore, *, problems: list[str]) -> str:
    """Why a press on Send sent nothing: a blast made meanwhile from most of the list (found as
    this run drew the page), or else what must change first."""
    return (_meanwhile_words([o for o in seen.overlaps if o.blast_id not in seen.agreed])
            or "Nothing was sent: " + "; ".join(problems) + ".")


def made_meanwhile(s: Session, report: ImportReport, *, agreed: frozenset[int]) -> str | None:
    """Why the blast must not be made after all: recent blasts holding most of the list that the
    marketer had not seen and agreed to send again despite when they pressed Send (made in
    another tab since the page was drawn, say); None when there is none. Asked again in the
    transaction that makes the blast: one made since the page was drawn is found too."""
    return _meanwhile_words([o for o in _overlaps(s, report) if o.blast_id not in agreed])


def _meanwhile_words(newer: list[Overlap]) -> str | None:
    if not newer:
        return None
    named = and_list([f"blast #{o.blast_id} “{o.name or 'Untitled'}”" for o in newer[:3]]
                     + ([f"{len(newer) - 3:,} more"] if len(newer) > 3 else []))
    one = len(newer) == 1
    return (f"Nothing was sent: {named}, made while you were setting up this one (in another tab, or "
            f"by a colleague), already {'has' if one else 'have'} most of these numbers. Look at "
            f"{'it' if one else 'them'} before sending these people the same message twice; to send "
            "anyway, tick “Send to them again anyway”.")
