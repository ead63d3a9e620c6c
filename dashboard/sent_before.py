"""A list sent again: recent blasts that already messaged some of it, or hold most of it not sent
yet, said before it goes out, and asked again as the blast is made (one made meanwhile, in
another tab, stops it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st
from sqlalchemy.orm import Session

from core.csv_import import ImportReport, Overlap, recent_blasts_with
from core.models import BlastState, utcnow
from core.sending.progress import held_by, list_reach, recently_messaged
from dashboard.data import reading, settings
from dashboard.format import and_list, plural, state_word

_AGREED = "send_again_for"  # the file, and the blasts "Send to them again anyway" was ticked for
SEND_AGAIN = "Send to them again anyway"
SEND_SECOND = "Send a second blast anyway"  # when no earlier blast has messaged them yet
SHOWN = 3  # earlier blasts named in each warning


@dataclass(frozen=True)
class Earlier:
    """Recent blasts that hold most of a list. Each Overlap's `shared` is how many of the list's
    people it messaged (`messaged`), or holds not sent yet (`unsent`)."""

    # Messaged some of them, or may have (outcome unknown), or sends to them in its turn: a
    # second blast messages those twice.
    messaged: tuple[Overlap, ...] = ()
    # Holds most of them, none sent yet, paused, scheduled or a draft: that one can still go.
    unsent: tuple[Overlap, ...] = ()
    # Of the blasts that messaged some: how many of the list each still holds not sent yet.
    still_holds: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def blasts(self) -> tuple[Overlap, ...]:
        return self.messaged + self.unsent

    @property
    def tick(self) -> str:
        """The label of the tick that sends anyway."""
        return SEND_AGAIN if self.messaged else SEND_SECOND


@dataclass(frozen=True)
class SentBefore:
    """What the page says of recent blasts that already hold most of the list."""

    ok: bool  # none does, or the tick to send anyway is ticked for those that do
    # The blasts it was ticked for when the page was last drawn: those the marketer had seen
    # when they pressed Send. Any other found then was made meanwhile (in another tab, say).
    agreed: frozenset[int]
    earlier: Earlier = Earlier()  # found as the page was drawn
    # The numbers those blasts have, when the marketer chose to leave them out of this one.
    leave_out: frozenset[str] = frozenset()

    @property
    def tick(self) -> str:
        return self.earlier.tick


def render_list_sent_before(report: ImportReport, *, file: str) -> SentBefore:
    """Warn when recent blasts already hold most of this list (uploaded again after the page
    was left mid-send, say), with a tick to send anyway that answers for those blasts only: one
    made since asks again."""
    before = st.session_state.get(_AGREED)
    agreed = frozenset(before[1]) if before and before[0] == file else frozenset()
    numbers = _numbers(report)
    held: set[str] = set()
    left_out: set[str] = set()
    with reading() as s:
        earlier = _earlier(s, numbers)
        if not earlier.blasts:
            left_out = _render_some_messaged(s, numbers, file=file)
        else:
            held = held_by(s, blast_ids=[o.blast_id for o in earlier.blasts], numbers=numbers,
                           leave_out_practice=not settings().sandbox)
    if not earlier.blasts:
        st.session_state[_AGREED] = (file, ())
        return SentBefore(ok=True, agreed=agreed, earlier=earlier, leave_out=frozenset(left_out))
    leave_out = _render_earlier(earlier, held=held, of=len(set(numbers)))
    ticked = bool(leave_out) or st.session_state.get(_tick_key(earlier), False)
    st.session_state[_AGREED] = (file, tuple(o.blast_id for o in earlier.blasts) if ticked else ())
    return SentBefore(ok=ticked, agreed=agreed, earlier=earlier, leave_out=frozenset(leave_out))


def _numbers(report: ImportReport) -> list[str]:
    return [row.phone for row in report.recipients if row.phone]


def _earlier(s: Session, numbers: Sequence[str], *, besides: int | None = None) -> Earlier:
    """The recent blasts (other than `besides`) holding most of `numbers`, by what they did with
    them. Only a message that went, or may have, counts as sent: a blast paused before it sent
    them holds them unsent, and one whose messages the gateway refused reached no one. Once
    sending for real, practice blasts reached no one either."""
    found = [o for o in recent_blasts_with(s, numbers, now=utcnow()) if o.blast_id != besides]
    reach = list_reach(s, blast_ids=[o.blast_id for o in found], numbers=numbers,
                       leave_out_practice=not settings().sandbox)
    messaged, unsent, still_holds = [], [], {}
    for overlap in found:
        got = reach.get(overlap.blast_id)
        if got is not None and got.messaged_some:
            messaged.append(dataclasses.replace(overlap, shared=got.messaged))
            if got.unsent:
                still_holds[overlap.blast_id] = got.unsent
        elif got is not None and got.holds_most_unsent:
            unsent.append(dataclasses.replace(overlap, shared=got.unsent))
    return Earlier(messaged=tuple(messaged), unsent=tuple(unsent), still_holds=still_holds)


# Fewer than this share of a list messaged in the past week goes unsaid: a few regulars in a
# new list are no news.
SOME = 0.05


def _render_some_messaged(
    s: Session, numbers: Sequence[str], *, besides: int | None = None, file: str | None = None
) -> set[str]:
    """A list that is not one sent again, but of which a share was messaged in the past week:
    said (a new list of leads often holds some of last week's), with a tick for a new list
    (`file`) to leave them out. The numbers left out; none unless ticked. A draft's list is
    made already (`besides`, the draft): only said."""
    # A new list's are counted one by one, as they may be left out; a long draft's by a sample.
    reach = recently_messaged(s, numbers, now=utcnow(), leave_out_practice=not settings().sandbox,
                              every=file is not None)
    blasts = [(i, name) for i, name in reach.blasts if i != besides]
    size = len(set(numbers))
    if not blasts or reach.people < max(1, size * SOME):
        return set()
    named = [f"#{i} “{name or 'Untitled'}”" for i, name in blasts[:SHOWN]]
    more = len(blasts) - SHOWN
    if more > 0:
        named.append(f"{more:,} more")
    messaged = set(reach.phones)
    others = size - len(messaged)
    key = f"leave_out_recent_{file}"
    left_out = bool(messaged) and others > 0 and st.session_state.get(key, False)
    who = (f"**{reach.people:,} of these {size:,} people** were" if reach.people > 1
           else f"**1 of these {size:,} people** was")
    st.info(f"{who} messaged in the past week, by {'blast' if len(blasts) == 1 else 'blasts'} "
            f"{and_list(named)}. " + ("They are left out of this blast." if left_out
                                      else "This blast messages them again."), icon=":material/history:")
    if not messaged or others <= 0:
        return set()
    st.checkbox(f"Leave them out: send only to the {plural(others, 'other person', 'others')}", key=key,
                help=f"The {plural(len(messaged), 'person', 'people')} messaged in the past week are left "
                     "out of this blast; the rest of the list gets it.")
    return messaged if left_out else set()


def render_draft_sent_before(blast_id: int, numbers: Sequence[str]) -> SentBefore:
    """The same for a draft sent from its own page (a list saved to finish later): recent
    blasts other than the draft itself that already hold most of its people, with a tick that
    answers for those blasts only. A follow-up is not asked: it is meant for people its blast
    messaged, and `core.followups` leaves out whoever another follow-up reached."""
    key = f"{_AGREED}_draft_{blast_id}"
    agreed = frozenset(st.session_state.get(key, ()))
    with reading() as s:
        earlier = _earlier(s, numbers, besides=blast_id)
        if not earlier.blasts:
            _render_some_messaged(s, numbers, besides=blast_id)
    tick = f"draft_{blast_id}_send_again"
    if earlier.blasts:
        _render_earlier(earlier, key=tick)  # its list is made already: nobody to leave out here
    ticked = bool(earlier.blasts) and st.session_state.get(_tick_key(earlier, tick), False)
    st.session_state[key] = tuple(o.blast_id for o in earlier.blasts) if ticked else ()
    return SentBefore(ok=not earlier.blasts or ticked, agreed=agreed, earlier=earlier)


def draft_made_meanwhile(s: Session, blast_id: int, numbers: Sequence[str], *,
                         agreed: frozenset[int]) -> str | None:
    """`made_meanwhile` for a draft's Send: asked again in the transaction that sends it."""
    return _meanwhile_words(_earlier(s, numbers, besides=blast_id), agreed=agreed)


def _made_words(o: Overlap) -> str:
    made = o.created_at.astimezone(settings().timezone)
    state = state_word(o.state).lower()
    return f"**Blast #{o.blast_id}** “{o.name or 'Untitled'}” ({state}, made {made:%d %b %H:%M})"


# What to do instead of a second blast, for a blast that holds the people not sent yet.
_INSTEAD = {
    BlastState.PAUSED: "resume it rather than sending a second blast",
    BlastState.SCHEDULED: "it sends to them at its time, so check it rather than sending a second blast",
    BlastState.DRAFT: "send it from its page rather than sending a second blast",
}


def _tick_key(earlier: Earlier, key: str = "send_again") -> str:
    # Keyed by the blasts it answers: a tick given for last week's blast is no answer for one
    # made since from the same list.
    return key + "_" + "_".join(str(o.blast_id) for o in sorted(earlier.blasts, key=lambda o: o.blast_id))


def _render_earlier(earlier: Earlier, *, held: set[str] | None = None, of: int = 0,
                    key: str = "send_again") -> set[str]:
    """The warnings, and the choices: leave out the people those blasts have (`held`, of the
    list's `of`), when some are new; or send to them again anyway. The numbers left out; none
    when the choice is to send anyway (the tick, in the session) or not made yet."""
    if earlier.messaged:
        lines = [f"- {_made_words(o)} {_sent_to(o)} {o.shared:,} of these people" + _held_too(earlier, o)
                 for o in earlier.messaged[:SHOWN]]
        st.warning("This list looks like one sent recently. Sending it again messages the same people "
                   "twice.\n" + "\n".join(lines), icon=":material/content_copy:")
        _render_links(earlier.messaged)
    if earlier.unsent:
        lines = [f"- {_made_words(o)} still holds {o.shared:,} of these numbers, not sent yet: "
                 f"{_INSTEAD.get(o.state, 'open it rather than sending a second blast')}."
                 for o in earlier.unsent[:SHOWN]]
        holding, goes = (("a recent blast that has", "that one goes") if len(earlier.unsent) == 1
                         else ("recent blasts that have", "those go"))
        st.warning(f"Most of this list is in {holding} not messaged them yet. A second blast would "
                   f"message them twice once {goes}.\n" + "\n".join(lines), icon=":material/pending_actions:")
        _render_links(earlier.unsent)
    others = of - len(held or ())
    if held and others > 0 and st.checkbox(
        f"Leave them out: send only to the {plural(others, 'other person', 'others')}",
        key=_tick_key(earlier, "leave_out"),
        help=f"The {plural(len(held), 'person', 'people')} those blasts messaged or still hold are left "
             "out of this blast; the rest of the list gets it.",
    ):
        return set(held)
    st.checkbox(earlier.tick, key=_tick_key(earlier, key))
    return set()


def _sent_to(o: Overlap) -> str:
    # A sending blast counts those it will reach in its turn: it is sending to them.
    return "is sending to" if o.state == BlastState.SENDING else "already sent to"


def _held_too(earlier: Earlier, o: Overlap) -> str:
    """ ", and still holds 2 not sent yet: resume it rather than …", or the line's end."""
    held = earlier.still_holds.get(o.blast_id)
    if not held:
        return "."
    instead = _INSTEAD.get(o.state, "open it rather than sending a second blast")
    return f", and still holds {held:,} not sent yet: {instead}."


def _render_links(overlaps: Sequence[Overlap]) -> None:
    for o in overlaps[:SHOWN]:
        st.page_link("pages/blast.py", label=f"Open blast #{o.blast_id}",
                     query_params={"blast": o.blast_id}, icon=":material/open_in_new:")


_PRESSED = "send_pressed"


def press_send() -> None:
    st.session_state[_PRESSED] = True


def send_pressed() -> bool:
    """Whether Send was pressed for this run (`press_send`), whether or not the click counts."""
    return bool(st.session_state.pop(_PRESSED, False))


def why_not_sent(seen: SentBefore, *, problems: list[str]) -> str:
    """Why a press on Send sent nothing: a blast made meanwhile from most of the list (found as
    this run drew the page), or else what must change first."""
    return (_meanwhile_words(seen.earlier, agreed=seen.agreed)
            or "Nothing was sent: " + "; ".join(problems) + ".")


def made_meanwhile(s: Session, report: ImportReport, *, agreed: frozenset[int],
                   leave_out: frozenset[str] = frozenset()) -> str | None:
    """Why the blast must not be made after all: recent blasts holding most of the list (but for
    the numbers left out) that the marketer had not seen and agreed to send again despite when
    they pressed Send (made in another tab since the page was drawn, say); None when there is
    none. Asked again in the transaction that makes the blast: one made since the page was drawn
    is found too."""
    numbers = [n for n in _numbers(report) if n not in leave_out]
    return _meanwhile_words(_earlier(s, numbers), agreed=agreed)


def _meanwhile_words(earlier: Earlier, *, agreed: frozenset[int]) -> str | None:
    newer = [o for o in earlier.blasts if o.blast_id not in agreed]
    if not newer:
        return None
    named = and_list([f"blast #{o.blast_id} “{o.name or 'Untitled'}”" for o in newer[:SHOWN]]
                     + ([f"{len(newer) - SHOWN:,} more"] if len(newer) > SHOWN else []))
    one = len(newer) == 1
    return (f"Nothing was sent: {named}, made while you were setting up this one (in another tab, or "
            f"by a colleague), already {'has' if one else 'have'} most of these numbers. Look at "
            f"{'it' if one else 'them'} before sending these people the same message twice; to send "
            f"anyway, tick “{earlier.tick}”.")
