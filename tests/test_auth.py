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


def test_a_login_lasts_for_the_browser_until_it_expires_or_the_password_changes() -> None:
    from core.passwords import SESSION_SECONDS, session_token, session_valid

    stored = hash_password(PASSWORD)
    token = session_token(stored, now=1_000_000)
    assert session_valid(token, stored, now=1_000_000 + SESSION_SECONDS - 1)
    assert not session_valid(token, stored, now=1_000_000 + SESSION_SECONDS), "expired"
    assert not session_valid(token, hash_password(PASSWORD), now=1_000_001), "the password was set again"
    expires, signature = token.split(".")
    longer = f"{int(expires) + 86_400}.{signature}"
    assert not session_valid(longer, stored, now=1_000_001), "an expiry moved by hand"
    altered = signature[:-1] + ("1" if signature.endswith("0") else "0")
    for broken in (None, "", ".", "abc.def", f"{expires}.", f"{expires}.{altered}", "-5.x", "².x",
                   "9" * 5000 + ".x"):
        assert not session_valid(broken, stored, now=1_000_001)


def test_a_password_hash_cut_short_by_the_shell_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import get_settings
    from core.errors import ConfigError

    stored = hash_password(PASSWORD)
    monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", stored)
    get_settings.cache_clear()
    assert get_settings().dashboard_password_hash is not None
    cut = "scrypt6384==+kWd2Bwfi8f6zA="  # `export X=scrypt$16384$8$1$...` in bash
    for wrong in (cut, PASSWORD, stored.replace("$", "", 1), stored + "$x"):
        monkeypatch.setenv("DASHBOARD_PASSWORD_HASH", wrong)
        get_settings.cache_clear()
        with pytest.raises(ConfigError, match="DASHBOARD_PASSWORD_HASH: not a value from") as caught:
            get_settings()
        assert wrong not in str(caught.value), "the value is not repeated"
    get_settings.cache_clear()


def test_only_this_computers_addresses_are_loopback() -> None:
    from dashboard.auth import is_loopback

    for here in (None, "127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert is_loopback(here), here
    for elsewhere in ("192.168.1.5", "10.0.0.7", "::ffff:10.0.0.7", "2001:db8::1", "fe80::1%eth0", "", "x"):
        assert not is_loopback(elsewhere), elsewhere


def test_with_no_login_only_this_computer_sees_the_pages(
    app_db: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from dashboard import auth

    # Streamlit gives no address for a visitor on loopback; a test cannot come from elsewhere.
    monkeypatch.setattr(auth, "on_this_computer", lambda: False)
    at = _app().run()
    assert not at.exception
    assert not any(t.value == "Overview" for t in at.title), "pages must stay hidden"
    assert "opens only on the computer it runs on" in at.warning[0].value


def test_an_identity_provider_lets_in_only_the_listed_accounts(
    app_db: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    from core.config import get_settings

    monkeypatch.setenv("DASHBOARD_ALLOWED_EMAILS", "boss@gmail.com, @kedai.com.my")
    get_settings.cache_clear()
    provider = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                "client_id": "id", "client_secret": "secret",
                "server_metadata_url": "https://accounts.example.com/.well-known/openid-configuration"}
    for email, allowed in (("stranger@gmail.com", False), ("Siti@Kedai.com.my", True),
                           ("boss@gmail.com", True), ("boss@gmail.com.evil.io", False), (None, False)):
        at = _app()
        at.secrets["auth"] = provider
        at.user = {"is_logged_in": True, "email": email}
        at.run()
        assert not at.exception
        assert any(t.value == "Overview" for t in at.title) is allowed, email
        if not allowed:
            assert "may not see this dashboard" in at.error[0].value
    monkeypatch.delenv("DASHBOARD_ALLOWED_EMAILS")
    get_settings.cache_clear()
    at = _app()
    at.secrets["auth"] = provider
    at.user = {"is_logged_in": True, "email": "boss@gmail.com"}
    assert not any(t.value == "Overview" for t in at.run().title), "nobody until the list is set"
