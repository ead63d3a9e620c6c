"""Who may see the dashboard: an identity provider (st.login), a password, or, locally, anyone."""

from __future__ import annotations

import ipaddress
import json
import threading
import time

import streamlit as st

from core.config import get_settings
from core.passwords import SESSION_SECONDS, AttemptLimiter, session_token, session_valid, verify_password
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


# A password login lasts for the browser, not only for its tab: a link opened in a new tab
# (the blast tables' "Details") starts a new session, which the cookie signs in.
SESSION_COOKIE = "blast_tracker_session"
_SIGNED_IN = "signed_in"
_SIGNED_OUT = "signed_out"  # this tab logged out: its cookie, read when it opened, no longer counts
_COOKIE_TO_WRITE = "session_cookie_to_write"


def signed_in() -> bool:
    """Whether this browser session may see the pages."""
    if identity_provider_configured():
        return bool(st.user.is_logged_in) and email_allowed(st.user.get("email"))
    stored = get_settings().dashboard_password_hash
    if stored is None:
        return on_this_computer()
    if st.session_state.get(_SIGNED_IN):
        return True
    if st.session_state.get(_SIGNED_OUT):
        return False
    if session_valid(st.context.cookies.get(SESSION_COOKIE), stored.get_secret_value()):
        st.session_state[_SIGNED_IN] = True
        return True
    return False


def on_this_computer() -> bool:
    """Whether the visitor is on the computer the server runs on: with no login, nobody else
    may see the pages."""
    return is_loopback(st.context.ip_address)


def is_loopback(ip: object) -> bool:
    """Whether a visitor's address is this computer's. Streamlit gives none for 127.0.0.1 and
    ::1, but passes on 127.0.0.1 as an IPv6 server sees it (::ffff:127.0.0.1)."""
    if not isinstance(ip, str):
        return True
    try:
        address = ipaddress.ip_address(ip.partition("%")[0])
    except ValueError:
        return False
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return (mapped or address).is_loopback


def email_allowed(email: object) -> bool:
    """Whether an identity provider's account may see the pages: its address, or its domain
    (`@example.com`), is in DASHBOARD_ALLOWED_EMAILS. Anyone with an account at the provider
    can log in there, so nobody is let in by default."""
    if not isinstance(email, str) or "@" not in email:
        return False
    email = email.strip().lower()
    allowed = {a.strip().lower() for a in get_settings().dashboard_allowed_emails.split(",") if a.strip()}
    return email in allowed or email[email.rindex("@"):] in allowed


def password_login() -> bool:
    """Whether the dashboard's own password login is on (not an identity provider's)."""
    return not identity_provider_configured() and get_settings().dashboard_password_hash is not None


def log_out() -> None:
    """End the login in this tab and in the browser; other browsers stay signed in until their
    cookie expires or the password is changed."""
    st.session_state[_SIGNED_IN] = False
    st.session_state[_SIGNED_OUT] = True
    st.session_state[_COOKIE_TO_WRITE] = ("", 0)


def write_session_cookie() -> None:
    """Set or clear the login cookie in the browser, once, after a login or a log-out."""
    pending = st.session_state.pop(_COOKIE_TO_WRITE, None)
    if pending is None:
        return
    value, max_age = pending
    cookie = json.dumps(f"{SESSION_COOKIE}={value}; Max-Age={max_age}; Path=/; SameSite=Strict")
    (st.sidebar if signed_in() else st).html(  # in the sidebar it moves no page down
        f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def render_login() -> None:
    """The only page a visitor who has not signed in can reach."""
    st.title("Blast Tracker")
    if identity_provider_configured():
        if st.user.is_logged_in:
            st.error(f"{st.user.get('email') or 'This account'} may not see this dashboard. Log in with "
                     "your work account, or ask whoever set it up to add this one.")
            st.button("Log out", on_click=st.logout, key="sso_logout")
            return
        st.button("Log in", on_click=st.login, type="primary", key="sso_login")
        return
    stored = get_settings().dashboard_password_hash
    if stored is not None:
        _password_form(stored.get_secret_value())
        return
    st.warning(
        "This dashboard has no password yet, so it opens only on the computer it runs on. Whoever "
        "set it up can give it one (DASHBOARD_PASSWORD_HASH, in the README's “Going live”); then "
        "it opens from anywhere, after the password.",
        icon=":material/lock:",
    )


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
        st.session_state[_SIGNED_IN] = True
        st.session_state.pop(_SIGNED_OUT, None)
        st.session_state[_COOKIE_TO_WRITE] = (session_token(stored), SESSION_SECONDS)
        st.rerun()
    _limiter().failed(who)
    _global_limiter().failed("*")
    st.error("That password is not right.")
