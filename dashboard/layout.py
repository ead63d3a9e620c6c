"""Page furniture shared by every page: title, sandbox banner, friendly errors."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeGuard

import streamlit as st
from sqlalchemy.exc import InterfaceError, OperationalError
from streamlit.navigation.page import StreamlitPage

from core.config import get_settings
from core.db import driver_says
from core.errors import BlastError
from dashboard.auth import signed_in

log = logging.getLogger(__name__)

ENTRY = "streamlit_app.py"
# Set by the router in ENTRY on every run, before it runs the page it chose.
ROUTED = "routed"
WANTED = "wanted_page"


_RUNS = "page_runs"


def page_run() -> int:
    """Which run of a page this is, in this browser session (`page_header` counts them): a part
    drawn in some runs only can tell whether it was on the page in the run before."""
    return int(st.session_state.get(_RUNS, 0))


def page_header(title: str, caption: str | None = None) -> None:
    """The top of every page; first, the page makes sure it was reached through the router."""
    require_the_router(Path(sys._getframe(1).f_globals.get("__file__", "")).stem)  # the calling page
    st.session_state[_RUNS] = page_run() + 1
    st.title(title)
    if caption:
        st.caption(caption)
    if get_settings().sandbox:
        st.info(
            # Settings names are for whoever runs the server: Settings & health lists them.
            "This is the **practice mode**: messages go to a built-in test gateway, not to "
            "WhatsApp. Whoever set up the dashboard can connect the real WSAPME account.",
            icon=":material/science:",
        )


def require_the_router(page: str) -> None:
    """Send a visitor who reached `page` (its file's name) without the router, and so
    without its login, through it.

    On a freshly started server, a visitor's first request for a deep link such as /health
    can make Streamlit run the page file by itself, as in its older multipage mode, before
    any session has run the router's st.navigation: no login, and every file of pages/ in
    the sidebar. The page then stops, and the router takes the visitor to the login, then
    to the page they asked for with its query (`wanted_page`).
    """
    if not st.session_state.get(ROUTED) or not signed_in():
        query = {key: st.query_params.get_all(key) for key in st.query_params}  # tag=A&tag=B too
        st.session_state[WANTED] = (page, query)
        st.switch_page(ENTRY, query_params=query)


def wanted_page(pages: list[StreamlitPage]) -> tuple[StreamlitPage, dict[str, list[str]]] | None:
    """The page (and its query) a visitor asked for before require_the_router sent them to
    the router, if it is among `pages` (the default page, the overview, needs no switch: the
    router runs it with the query kept); asked once."""
    wanted = st.session_state.pop(WANTED, None)
    if not wanted:
        return None
    name, query = wanted
    page = next((p for p in pages if p.url_path == name), None)
    return (page, query) if page is not None else None


PAGE_FAILED = ("This page could not be shown because of an unexpected problem. It has been logged: try "
               "again in a moment, or ask whoever runs the dashboard to look at the server's log.")
PART_FAILED = ("This part of the page could not be brought up to date because of an unexpected "
               "problem. It has been logged, and it tries again by itself.")
DATABASE_AWAY = ("This page cannot be shown right now: the database is not answering. Try again in a "
                 "moment; the page shows as usual once the database is back. If it stays like this, ask "
                 "whoever runs the server to check the database.")
PART_DATABASE_AWAY = ("This part of the page could not be brought up to date: the database is not "
                      "answering. It tries again by itself.")
ACTION_DATABASE_AWAY = ("the database is not answering. Try again in a moment; if it stays like this, ask "
                        "whoever runs the server to check the database.")


def database_away(exc: BaseException) -> TypeGuard[OperationalError | InterfaceError]:
    """Whether a failure is the database not being reached: the server down, refusing the
    connection, or dropping it mid-query. Any other error of the database answers what was
    asked of it, and stays an unexpected problem."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    return exc.statement is None or exc.connection_invalidated  # no statement: failed to connect


def _log_database_away(exc: OperationalError | InterfaceError, what: str) -> None:
    """One line, without a traceback: while the database is down every run logs one, and their
    frames would bury the rest of the log. The driver's words name the host and port, and
    `driver_says` leaves out a line that holds the password."""
    log.warning("%s: the database is not answering (%s)", what, driver_says(exc) or type(exc).__name__)


# A part of a page that refreshes itself runs every few seconds in every open tab: while the
# database is down, its line is logged once a minute, saying how many it stands for.
PART_LOG_EVERY_SECONDS = 60.0


class _Quieted:
    """Log lines of one kind at most once per `seconds`, counting the ones held back."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}  # kind: (when last logged, held back since)

    def due(self, kind: str) -> int | None:
        """None to hold this one back; else how many were held back since the last one logged."""
        now = self._clock()
        with self._lock:
            last, held = self._last.get(kind, (None, 0))
            if last is not None and now - last < self._seconds:
                self._last[kind] = (last, held + 1)
                return None
            self._last[kind] = (now, 0)
            return held


_part_lines = _Quieted(PART_LOG_EVERY_SECONDS)


def _log_part_database_away(exc: OperationalError | InterfaceError, part: str) -> None:
    held = _part_lines.due(part)
    if held is None:
        return
    again = f" ({held:,} more like this since the last one)" if held else ""
    _log_database_away(exc, f"the part {part} of a page{again}")


def say_database_away(exc: OperationalError | InterfaceError, page: str) -> None:
    """A page the database's absence stopped, in words, with a way to try again."""
    _log_database_away(exc, f"the page {page}")
    st.error(DATABASE_AWAY, icon=":material/cloud_off:")
    st.button("Try again", icon=":material/refresh:", key="database_away_try_again")


def in_words(render: Callable[..., None]) -> Callable[..., None]:
    """A part of a page that refreshes itself (`st.fragment`), failing in words, not with
    Streamlit's error box: such a run does not pass through the page's own catch-all."""
    @functools.wraps(render)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            render(*args, **kwargs)
        except Exception as exc:  # Streamlit's own rerun and stop are not Exceptions: they pass
            if database_away(exc):
                _log_part_database_away(exc, render.__name__)
                st.error(PART_DATABASE_AWAY, icon=":material/cloud_off:")
                return
            log.exception("the part %s of a page failed", render.__name__)
            st.error(PART_FAILED, icon=":material/error:")
    return run


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
    except Exception as exc:
        outcome.ok = False
        if database_away(exc):
            _log_database_away(exc, f"could not {action}")
            st.error(f"Could not {action}: {ACTION_DATABASE_AWAY}")
            return
        log.exception("unexpected failure while trying to %s", action)
        st.error(f"Could not {action} because of an unexpected problem. It has been logged.")
