"""Page furniture shared by every page: title, sandbox banner, friendly errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import streamlit as st

from core.errors import BlastError
from dashboard.data import settings

log = logging.getLogger(__name__)


def page_header(title: str, caption: str | None = None) -> None:
    st.title(title)
    if caption:
        st.caption(caption)
    if settings().sandbox:
        st.info(
            "**Sandbox mode** — no WSAPME token is set, so messages go to the built-in "
            "practice gateway and reach no one. Set `WSAPME_TOKEN` and `WSAPME_DEVICE` to "
            "send for real.",
            icon=":material/science:",
        )


class Outcome:
    """Whether the work inside `friendly_errors` went through."""

    ok = True


@contextlib.contextmanager
def friendly_errors(action: str) -> Iterator[Outcome]:
    """Show what went wrong in words, never a stack trace."""
    outcome = Outcome()
    try:
        yield outcome
    except BlastError as exc:
        outcome.ok = False
        st.error(f"Could not {action}: {exc.message}")
    except Exception:
        outcome.ok = False
        log.exception("unexpected failure while trying to %s", action)
        st.error(f"Could not {action} because of an unexpected problem. It has been logged.")
