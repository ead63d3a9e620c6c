"""How long the message is, as the recipients will get it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from core import templates

# Not a limit (the gateway's is unknown): past this, a gentle word that long messages are
# read less.
LONG_MESSAGE = 1_000


def message_lengths(text: str, rows: Sequence[Mapping[str, object]]) -> tuple[int, int]:
    """The shortest and longest message once each row's values are filled in, by the same
    filling the sending uses; with no rows, the message as written."""
    parsed = templates.parse(text)
    # Python counts code points: close to what a person counts, though a skin-toned or
    # flag emoji counts as two.
    lengths = [len(templates.render(parsed, row).text) for row in rows] or [len(text)]
    return min(lengths), max(lengths)


def length_note(shortest: int, longest: int, *, filled: bool) -> str:
    """ "312 characters.", or "298 to 340 characters, depending on each person's values.",
    with a word about long messages past LONG_MESSAGE."""
    if shortest == longest:
        note = f"{longest:,} characters" + (" with each person's values filled in." if filled else ".")
    else:
        note = f"{shortest:,} to {longest:,} characters, depending on each person's values."
    if longest > LONG_MESSAGE:
        note += " Long messages are read less: put the offer in the first lines."
    return note


def render_length(text: str, rows: Sequence[Mapping[str, object]]) -> None:
    """The message's length under its box, for these recipients' values (none: counted as
    written); nothing while the box is empty."""
    if not text.strip():
        return
    filled = bool(rows) and bool(templates.placeholders(text))
    # Without placeholders every recipient gets the same text: one filling says how long it is.
    shortest, longest = message_lengths(text, rows if filled else rows[:1])
    st.caption(length_note(shortest, longest, filled=filled))
