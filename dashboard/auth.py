"""Who may see the dashboard: an identity provider (st.login), a password, or, locally, anyone."""

from __future__ import annotations

import threading
import time

import streamlit as st

from core.passwords import AttemptLimiter, verify_password
from dashboard.data import settings
from dashboard.format import plural


@st.cache_resource
def _limiter() -> AttemptLimiter:
    """One limiter for the whole server process, shared by every browser session."""
    return AttemptLimiter(limit=5, window=900)


# Wrong passwords from every address together, in the last 15 minutes: past the first 30, each
# attempt waits a little longer before its password is checked, up to a few seconds. Guessing from
# many addresses is slowed down, but a stranger cannot lock the team out: the right password is
# always checked, and accepted.
SHARED_FREE_FAILURES = 30
SHARED_STEP_SECONDS = 0.1
SHARED_MAX_SECONDS = 3.0

_pause = time.sleep  # replaced in tests


@st.cache_resource
def _global_limiter() -> AttemptLimiter:
    """Wrong passwords from every address, counted together under one key ("*")."""
    return AttemptLimiter(limit=SHARED_FREE_FAILURES, window=900)


def shared_delay(failures: int) -> float:
    """Seconds an attempt waits, given how many wrong passwords every address sent lately."""
    return min(SHARED_MAX_SECONDS, SHARED_STEP_SECONDS * max(0, failures - SHARED_FREE_FAILURES))


@st.cache_resource
def _shared_turn() -> threading.Lock:
    """Attempts past the free ones take turns: the pause then bounds the guesses of every
    address together (one check per pause), not only each session's, which would all pause at
    once."""
    return threading.Lock()


def _checked(password: str, stored: str) -> bool:
    """Whether the password is right, after the shared pause when guessing is going on. The
    pause comes before the check, right password or wrong: how long the answer takes tells
    nothing."""
    delay = shared_delay(_global_limiter().failures("*"))
    if not delay:
        return verify_password(password, stored)
    with _shared_turn():
        _pause(delay)
        return verify_password(password, stored)


def _client_key() -> str:
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else "unknown"


def identity_provider_configured() -> bool:
    try:
        return "auth" in st.secrets
    except FileNotFoundError:
        return False


def login_required() -> bool:
    return identity_provider_configured() or settings().dashboard_password_hash is not None


def signed_in() -> bool:
    """Whether this browser session may see the pages."""
    if identity_provider_configured():
        return bool(st.user.is_logged_in)
    return settings().dashboard_password_hash is None or bool(st.session_state.get("signed_in"))


def render_login() -> None:
    """The only page a visitor who has not signed in can reach."""
    st.title("Blast Tracker")
    if identity_provider_configured():
        st.button("Log in", on_click=st.login, type="primary", key="sso_login")
        return
    stored = settings().dashboard_password_hash
    if stored is not None:
        _password_form(stored.get_secret_value())


def _password_form(stored: str) -> None:
    who = _client_key()
    with st.form("login"):
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    wait = _limiter().wait_seconds(who)
    if wait > 0:
        st.error(f"Too many wrong passwords. Try again in {plural(int(wait // 60) + 1, 'minute')}.")
        return
    if _checked(password, stored):
        _limiter().succeeded(who)
        st.session_state["signed_in"] = True
        st.rerun()
    _limiter().failed(who)
    _global_limiter().failed("*")
    st.error("That password is not right.")
