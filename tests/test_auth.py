"""Access: no login locally; a hashed password with limited attempts when one is set."""

from __future__ import annotations

import subprocess
import sys

import pytest
from streamlit.testing.v1 import AppTest

from core.config import PROJECT_ROOT
from core.passwords import AttemptLimiter, hash_password, verify_password
from tests.test_pages import app_db  # noqa: F401  (fixture)

PASSWORD = "kuih-lapis-2026"


def test_hash_and_verify() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored)
    assert not verify_password("wrong", stored)
    assert hash_password(PASSWORD) != stored, "salted"
    for broken in ("", "scrypt$x", "md5$1$2$3$4$5", "scrypt$16384$8$1$!!$!!"):
        assert not verify_password(PASSWORD, broken)


def test_attempts_are_limited_per_key_and_window() -> None:
    limiter = AttemptLimiter(limit=3, window=60)
    for t in range(3):
        assert limiter.wait_seconds("1.2.3.4", now=t) == 0
        limiter.failed("1.2.3.4", now=t)
    assert limiter.wait_seconds("1.2.3.4", now=10) == pytest.approx(50)
    assert limiter.wait_seconds("5.6.7.8", now=10) == 0
    assert limiter.wait_seconds("1.2.3.4", now=61) == 0
    limiter.succeeded("1.2.3.4")
    assert limiter.wait_seconds("1.2.3.4", now=11) == 0


def test_hash_password_command() -> None:
    result = subprocess.run([sys.executable, "-m", "core", "hash-password"], input=PASSWORD + "\n",
                            capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    assert verify_password(PASSWORD, result.stdout.strip())
    short = subprocess.run([sys.executable, "-m", "core", "hash-password"], input="short\n",
                           capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)
    assert short.returncode == 2 and "10 characters" in short.stderr and "Traceback" not in short.stderr


def _app() -> AppTest:
    return AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=30)


def test_no_password_set_means_no_login(app_db: str) -> None:  # noqa: F811
    at = _app().run()
    assert not at.exception
    assert any(t.value == "Overview" for t in at.title)


def test_password_login_and_limited_attempts(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import streamlit as st

    from core.config import get_settings

    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", hash_password(PASSWORD))
    get_settings.cache_clear()
    st.cache_resource.clear()
    at = _app().run()
    assert not at.exception
    assert not any(t.value == "Overview" for t in at.title), "pages must stay hidden"
    for _ in range(5):
        at.text_input(key="login_password").set_value("guess")
        at.button[0].click().run()
        assert "not right" in at.error[0].value
    at.text_input(key="login_password").set_value(PASSWORD)
    at.button[0].click().run()
    assert "Too many wrong passwords" in at.error[0].value, "even the right password waits"
    st.cache_resource.clear()  # a fresh limiter, as after the wait
    fresh = _app().run()
    fresh.text_input(key="login_password").set_value(PASSWORD)
    fresh.button[0].click().run()
    assert not fresh.exception
    assert any(t.value == "Overview" for t in fresh.title)


def test_wrong_passwords_from_every_address_slow_each_attempt_a_little_more() -> None:
    from dashboard.auth import SHARED_FREE_FAILURES, SHARED_MAX_SECONDS, shared_delay

    assert shared_delay(0) == shared_delay(SHARED_FREE_FAILURES) == 0
    delays = [shared_delay(SHARED_FREE_FAILURES + n) for n in range(1, 200)]
    assert delays == sorted(delays) and delays[0] > 0
    assert max(delays) == SHARED_MAX_SECONDS <= 5, "a few seconds at most"
    limiter = AttemptLimiter(limit=3, window=60)
    for t in range(4):
        limiter.failed("*", now=t)
    assert limiter.failures("*", now=10) == 4 and limiter.failures("*", now=62) == 1


def test_a_stranger_cannot_lock_the_team_out(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import streamlit as st

    from core.config import get_settings
    from dashboard import auth

    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", hash_password(PASSWORD))
    get_settings.cache_clear()
    st.cache_resource.clear()
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        # Taken in turn with every other session's attempt: a pause bounds them all together.
        assert auth._shared_turn().locked()
        pauses.append(seconds)

    monkeypatch.setattr(auth, "_pause", pause, raising=False)
    for _ in range(100):  # wrong passwords from many addresses, more than ever refused everyone
        auth._global_limiter().failed("*")
    at = _app().run()
    at.text_input(key="login_password").set_value("guess")
    at.button[0].click().run()
    assert "not right" in at.error[0].value, "a wrong password is still checked, slowly"
    at.text_input(key="login_password").set_value(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert any(t.value == "Overview" for t in at.title), "the right password gets in"
    assert len(pauses) == 2 and 0 < pauses[0] <= pauses[1] <= 5, "slowed, a few seconds at most"
