"""A new blast's suggested name: the file it came from and the day, told apart from the others."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import streamlit as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Blast, longest
from dashboard.data import reading, settings

KEY = "blast_name"
_MADE_FOR = "blast_name_for"  # the file the name in the box was suggested for
# The column holds 255; the day and a "(12)" must still fit after a long file name.
_LONGEST_STEM = 200


def suggested_name(filename: str, *, today: dt.date, taken: Collection[str] = ()) -> str:
    """ "contacts.csv" on 26 Nov → "contacts · 26 Nov"; "contacts · 26 Nov (2)" when a blast
    already has that name, so two uploads of the same file read apart in every list."""
    stem = filename.rsplit(".", 1)[0]
    stem = " ".join(stem.split())[:_LONGEST_STEM].strip() or "Blast"
    name = f"{stem} · {today.day} {today:%b}"
    count = 1
    while (candidate := name if count == 1 else f"{name} ({count})") in taken:
        count += 1
    return candidate


def names_like(session: Session, start: str) -> set[str]:
    """The blast names that begin with `start`."""
    query = select(Blast.name).where(Blast.name.startswith(start, autoescape=True))
    return {name for name in session.scalars(query) if name}


def render_blast_name(container, *, filename: str, file_id: str) -> str:  # type: ignore[no-untyped-def]
    """The name box, filled with the suggestion for this file; a name typed over it is kept
    until another file is uploaded."""
    if st.session_state.get(_MADE_FOR) != file_id or KEY not in st.session_state:
        today = dt.datetime.now(settings().timezone).date()
        first = suggested_name(filename, today=today)
        with reading() as s:
            taken = names_like(s, first)
        st.session_state[KEY] = suggested_name(filename, today=today, taken=taken)
        st.session_state[_MADE_FOR] = file_id
    return container.text_input(
        "Blast name",
        key=KEY,
        max_chars=longest("name"),
        help="How the blast is listed everywhere. Suggested from the file's name and today's date; "
        "type your own if you like.",
    )
