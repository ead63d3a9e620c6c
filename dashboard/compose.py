"""Writing and timing a blast's message: shared by the new-blast wizard and draft blasts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import streamlit as st

from core import templates
from dashboard.data import settings


@dataclass(frozen=True)
class Sample:
    """One recipient as the message preview shows them."""

    label: str
    variables: Mapping[str, object]


def render_template(
    *, names: Sequence[str], samples: Sequence[Sample], key: str = "tpl", value: str = ""
) -> tuple[str, bool]:
    """The message box with a live preview; returns the text and whether it is usable."""
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
        return text, False
    problems = templates.validate(text, names)
    if problems:
        for problem in problems:
            st.error(problem, icon=":material/error:")
        return text, False
    previews = templates.preview(text, [s.variables for s in samples])
    for sample, rendered in zip(samples, previews, strict=False):
        with st.chat_message("user", avatar=":material/chat:"):
            st.caption(f"To {sample.label}")
            st.markdown(rendered.text)
            for problem in rendered.problems:
                st.warning(problem)
    parsed = templates.parse(text)
    blanks = sum(1 for s in samples if not templates.render(parsed, s.variables).ok)
    if blanks:
        st.warning(
            f"{blanks:,} recipients have an empty value for a placeholder: their message "
            "would have a gap. Fix the file, or tick the box below to send anyway."
        )
        return text, st.checkbox("Send anyway, leaving the gaps empty", key=f"{key}_blanks")
    return text, True


def render_when(*, key: str = "when") -> dt.datetime | None:
    """Send now (None) or a moment chosen in the team's time zone, as UTC."""
    zone = settings().timezone
    choice = st.radio("When", ["Send now", "Schedule for later"], horizontal=True, key=key)
    if choice == "Send now":
        return None
    d1, d2 = st.columns(2)
    local_now = dt.datetime.now(zone)
    day = d1.date_input("Day", local_now.date() + dt.timedelta(days=1), key=f"{key}_day")
    clock = d2.time_input("Time", dt.time(10, 0), key=f"{key}_time")
    return dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)


def send_problems(*, tag_ok: bool, message_ok: bool, send_at: dt.datetime | None) -> list[str]:
    problems = []
    if not tag_ok:
        problems.append("give the blast a campaign tag")
    if not message_ok:
        problems.append("write a message that works")
    if send_at is not None and send_at <= dt.datetime.now(dt.UTC):
        problems.append("pick a time in the future")
    return problems
