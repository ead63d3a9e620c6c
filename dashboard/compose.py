"""Writing and timing a blast's message: shared by the new-blast wizard and draft blasts."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import streamlit as st

from core import templates
from core.sending import gateways
from core.sending.pacing import PacingRules, after_quiet_hours
from core.sending.progress import rules_for
from dashboard.data import reading, settings
from dashboard.format import plural
from dashboard.message_length import render_length
from dashboard.whatsapp_format import to_html

SHOWN_BY_NAME = 3  # recipients named in a warning before "and N more"
# The chat bubble's own text, as WhatsApp shows it: a light green bubble, line breaks kept.
_BUBBLE = (
    '<div style="white-space: pre-wrap; overflow-wrap: anywhere; background: #d9fdd3; '
    'color: #111b21; padding: 0.5rem 0.75rem; border-radius: 0.5rem; line-height: 1.45">{}</div>'
)
# Their messages as WhatsApp shows them on our phone: white, on the left; ours are green.
_THEIR_BUBBLE = (
    '<div style="white-space: pre-wrap; overflow-wrap: anywhere; background: #ffffff; '
    'color: #111b21; border: 1px solid #e4e4e4; padding: 0.5rem 0.75rem; border-radius: 0.5rem; '
    'line-height: 1.45; margin-right: 15%">{}</div>'
)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


@dataclass(frozen=True)
class Sample:
    """One recipient as the message preview shows them."""

    label: str
    variables: Mapping[str, object]
    line: int | None = None  # their line in the uploaded CSV, when known

    @property
    def where(self) -> str:
        """How a warning points at them, in Markdown: "line 4 (+60123456789)", or the label."""
        if self.line is None:
            return plain(self.label) if self.label else "a recipient"
        return f"line {self.line} ({plain(self.label)})" if self.label else f"line {self.line}"


@dataclass(frozen=True)
class Message:
    """What the message box holds, and whether the blast can go out with it."""

    text: str
    usable: bool  # no mistake in the message itself: it can be tested and saved
    blocker: str | None = None  # why the blast cannot be sent yet, in words; None when it can
    gaps: bool = False  # some recipients have no value for a placeholder ("Send anyway" is offered)


def plain(text: str) -> str:
    """Text from a file, shown as typed inside Streamlit's Markdown (captions, warnings)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def bubble_html(text: str, *, theirs: bool = False) -> str:
    """One message as its chat bubble shows it: WhatsApp's formatting, everything else escaped;
    ours green, `theirs` white, as WhatsApp draws the two sides."""
    return (_THEIR_BUBBLE if theirs else _BUBBLE).format(to_html(text))


def _people(count: int) -> str:
    return f"{plural(count, 'recipient')} {'has' if count == 1 else 'have'}"


def gap_warnings(gaps: Mapping[str, Sequence[int]], samples: Sequence[Sample]) -> list[str]:
    """One line per empty placeholder: how many, and who, the first few by line or name."""
    lines = []
    for written, rows in gaps.items():
        who = ", ".join(samples[i].where for i in rows[:SHOWN_BY_NAME])
        more = f" and {len(rows) - SHOWN_BY_NAME:,} more" if len(rows) > SHOWN_BY_NAME else ""
        lines.append(f"{_people(len(rows))} no value for {{{written}}}: {who}{more}.")
    return lines


def gap_summary(gaps: Mapping[str, Sequence[int]]) -> str:
    """ "3 recipients have no {name}", counting each recipient once."""
    count = len({row for rows in gaps.values() for row in rows})
    return f"{_people(count)} no " + " or ".join(f"{{{written}}}" for written in gaps)


def render_template(
    *,
    names: Sequence[str],
    samples: Sequence[Sample],
    key: str = "tpl",
    value: str = "",
    fix: str = "fix the file",
) -> Message:
    """The message box with a live preview, its length, and what stands between it and sending.

    `fix` is what the marketer can do about an empty value: fix the file before it is a
    blast, change the message after."""
    message = _render_box(names=names, samples=samples, key=key, value=value, fix=fix)
    # A message with mistakes is counted as written: its placeholders cannot be filled yet.
    render_length(message.text, [s.variables for s in samples] if message.usable else [])
    return message


def _render_box(
    *, names: Sequence[str], samples: Sequence[Sample], key: str, value: str, fix: str
) -> Message:
    st.caption(
        "Placeholders you can use: "
        + " ".join(f"`{{{n}}}`" for n in names)
        + " · WhatsApp formatting like `*bold*` and `_italic_` works."
    )
    text = st.text_area(
        "Message",
        value=value,
        key=key,
        height=160,
        placeholder="Hi {name}! Our Raya promo is on: *20% off* until Sunday 🎉",
    )
    if not text.strip():
        st.info("Write the message to see how it will look.")
        return Message(text, usable=False, blocker="write the message")
    problems = templates.validate(text, names)
    if problems:
        for problem in problems:
            st.error(problem, icon=":material/error:")
        return Message(text, usable=False, blocker="fix what is marked in red in the message")
    _render_previews(text, samples)
    gaps = templates.gaps(text, [s.variables for s in samples])
    if not gaps:
        return Message(text, usable=True)
    st.warning(
        "\n\n".join(gap_warnings(gaps, samples))
        + f"\n\nTheir message would have a gap there: {fix}, or tick the box below to send anyway."
    )
    if st.checkbox("Send anyway, leaving the gaps empty", key=f"{key}_blanks"):
        return Message(text, usable=True, gaps=True)
    return Message(text, usable=True, blocker=f'{gap_summary(gaps)}: {fix} or tick "Send anyway" above',
                   gaps=True)


def _render_previews(text: str, samples: Sequence[Sample]) -> None:
    previews = templates.preview(text, [s.variables for s in samples])
    for sample, rendered in zip(samples, previews, strict=False):
        with st.chat_message("user", avatar=":material/chat:"):
            st.caption(f"To {plain(sample.label)}")
            st.html(bubble_html(rendered.text))
            for problem in rendered.problems:
                st.warning(problem)


def quiet_hours_note(
    rules: PacingRules, *, when: dt.datetime, zone: ZoneInfo, now: bool = False
) -> str | None:
    """What the worker will do with a start inside quiet hours, by the worker's own rule;
    None when `when` is outside them."""
    start = after_quiet_hours(rules, when, zone)
    if start == when:
        return None
    local, begins = when.astimezone(zone), start.astimezone(zone)
    window = f"{rules.quiet_start:%H:%M}–{rules.quiet_end:%H:%M}"
    moment = f"It is {local:%H:%M} now, inside" if now else f"{local:%H:%M} is inside"
    return (
        f"{moment} quiet hours ({window}): sending will start at {begins:%H:%M} "
        f"on {begins.day} {begins:%b}."
    )


PASSED = "That time has passed: pick a later time, or send now."


def has_passed(send_at: dt.datetime | None) -> bool:
    """Whether a blast scheduled for `send_at` (None: now) is scheduled for a time gone by."""
    return send_at is not None and send_at <= dt.datetime.now(dt.UTC)


def render_when(*, key: str = "when", device: str | None = None) -> dt.datetime | None:
    """Send now (None) or a moment chosen in the team's time zone, as UTC; says when quiet
    hours will hold the start back, or that the moment has passed (`has_passed`)."""
    cfg = settings()
    zone = cfg.timezone
    choice = st.radio("When", ["Send now", "Schedule for later"], horizontal=True, key=key)
    if choice == "Send now":
        chosen = None
    else:
        d1, d2 = st.columns(2)
        # The defaults go into the session, not the boxes: a day and time put back there after
        # another page was shown (dashboard/kept_upload.py) then win, without Streamlit's warning.
        st.session_state.setdefault(f"{key}_day", dt.datetime.now(zone).date() + dt.timedelta(days=1))
        st.session_state.setdefault(f"{key}_time", dt.time(10, 0))
        day = d1.date_input("Day", key=f"{key}_day", format="DD/MM/YYYY")
        clock = d2.time_input("Time", key=f"{key}_time")
        chosen = dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)
        if has_passed(chosen):  # said first and only: quiet hours or a finish then mean nothing
            st.error(PASSED, icon=":material/schedule:")
            return chosen
    if cfg.send_pacing == "on":
        with reading() as s:
            rules = rules_for(s, device=device or gateways.launch_device(cfg), settings=cfg)
        when = chosen or dt.datetime.now(dt.UTC)
        note = quiet_hours_note(rules, when=when, zone=zone, now=chosen is None)
        if note:
            st.warning(note, icon=":material/bedtime:")
    return chosen


def send_problems(
    *, tag_ok: bool, message: Message, send_at: dt.datetime | None, pace_saved: bool = True
) -> list[str]:
    """What must change before the blast can be sent, in the marketer's words. `pace_saved`:
    the pace shown is the device's saved one (a pace typed but not saved would not be used)."""
    problems = []
    if not tag_ok:
        problems.append("give the blast a campaign tag")
    if message.blocker:
        problems.append(message.blocker)
    if has_passed(send_at):
        problems.append("pick a later time, or send now")
    if not pace_saved:
        problems.append("save the changed pace in step 4, or put it back")
    return problems
