"""Settings: defaults, URL forms people paste, documentation, and secrets kept secret."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from core.cli.settings import markdown_table
from core.config import PACING_LIMITS, PROJECT_ROOT, Settings, get_settings, normalise_database_url
from core.errors import ConfigError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@host/db", "postgresql+psycopg://u:p@host/db"),
        (
            "postgresql://u:p@ep-cool-1234-pooler.ap-southeast-1.aws.neon.tech/neondb"
            "?sslmode=require&channel_binding=require",
            "postgresql+psycopg://u:p@ep-cool-1234-pooler.ap-southeast-1.aws.neon.tech/neondb"
            "?sslmode=require&channel_binding=require",
        ),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_urls_people_paste(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_defaults_are_sqlite_and_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = Settings(_env_file=None)
    assert settings.sqlalchemy_url.startswith("sqlite:///")
    assert settings.sandbox
    assert settings.app_timezone == "Asia/Kuala_Lumpur"
    assert settings.phone_region == "MY"


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSAPME_TOKEN", "tok-123")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    monkeypatch.setenv("RUN_WORKER", "false")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:hunter2@h/d")
    settings = Settings(_env_file=None)
    assert not settings.sandbox
    assert settings.run_worker is False
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:hunter2@h/d"


def test_secrets_never_appear_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSAPME_TOKEN", "tok-very-secret")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    monkeypatch.setenv("WEBHOOK_SECRET", "hook-very-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw-very-secret@h/d")
    text = repr(Settings(_env_file=None)) + str(Settings(_env_file=None))
    for secret in ("tok-very-secret", "hook-very-secret", "pw-very-secret"):
        assert secret not in text


def test_an_unknown_timezone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError):
        Settings(_env_file=None)


def _refusal(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> str:
    """What loading the settings says when `name` is set to `value` (it must refuse)."""
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as refused:
            get_settings()
    finally:
        get_settings.cache_clear()
    return str(refused.value)


@pytest.mark.parametrize(("value", "reason"), [
    ("short-secret", "too short"),
    ("has/a/slash-0123456789", "only letters, digits"),
    ("has space 0123456789ab", "only letters, digits"),
    ("ques?tion#0123456789ab", "only letters, digits"),
])
def test_a_webhook_secret_that_cannot_work_in_the_url_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    refused = _refusal(monkeypatch, "WEBHOOK_SECRET", value)
    assert "WEBHOOK_SECRET" in refused and reason in refused
    assert value not in refused


@pytest.mark.parametrize("device", [None, "sandbox", " Sandbox ", ""])
def test_a_token_with_the_sandbox_device_stops_the_start_naming_the_device(
    monkeypatch: pytest.MonkeyPatch, device: str | None
) -> None:
    # Blasts would otherwise reach WSAPME from a device called "sandbox", with no warning.
    if device is None:
        monkeypatch.delenv("WSAPME_DEVICE", raising=False)
    else:
        monkeypatch.setenv("WSAPME_DEVICE", device)
    refused = _refusal(monkeypatch, "WSAPME_TOKEN", "tok-Zq81-secret")
    assert "WSAPME_DEVICE: " in refused and "set it to your WSAPME device id" in refused
    assert "Zq81" not in refused
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    assert Settings(_env_file=None).wsapme_device == "5850"
    monkeypatch.delenv("WSAPME_TOKEN")
    monkeypatch.delenv("WSAPME_DEVICE")
    assert Settings(_env_file=None).sandbox, "practice mode keeps its own device"


@pytest.mark.parametrize("value", ["tok-Zq81-secret\n", "tok-Zq81-secret\r\n", "  tok-Zq81-secret "])
def test_a_token_copied_with_a_line_break_or_spaces_is_trimmed(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # A secret made from a file ends in a line break: sent as it is, no request could carry it.
    monkeypatch.setenv("WSAPME_TOKEN", value)
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    token = Settings(_env_file=None).wsapme_token
    assert isinstance(token, SecretStr) and token.get_secret_value() == "tok-Zq81-secret"


@pytest.mark.parametrize("value", ["tok-Zq81\nsecret", "tok-Zq81\tsecret", "tok-Zq81\x1bsecret",
                                   "tok-Zq81\u20acsecret"])
def test_a_token_with_a_character_no_request_can_carry_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    refused = _refusal(monkeypatch, "WSAPME_TOKEN", value)
    assert "WSAPME_TOKEN: " in refused and "copy the token again" in refused
    assert "Zq81" not in refused


@pytest.mark.parametrize("value", ["21.00-09.00", "21:00", "25:00-09:00", "nights"])
def test_quiet_hours_that_cannot_be_read_stop_the_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # Read again on every claim, a bad value had stopped the worker in the middle of a blast.
    refused = _refusal(monkeypatch, "SEND_QUIET_HOURS", value)
    assert "SEND_QUIET_HOURS" in refused and "quiet hours" in refused
    assert "Value error" not in refused


@pytest.mark.parametrize(("name", "value", "said"), [
    ("SEND_DAILY_CAP", "-1", "from 0 to 100,000 messages"),
    ("SEND_DAILY_CAP", "100001", "from 0 to 100,000 messages"),
    ("SEND_MIN_GAP_SECONDS", "-0.5", "from 0 to 3,600 seconds"),
    ("SEND_MIN_GAP_SECONDS", "nan", "from 0 to 3,600 seconds"),
    ("SEND_JITTER_SECONDS", "inf", "from 0 to 3,600 seconds"),
    ("SEND_PAUSE_EVERY", "-3", "from 0 to 100,000 messages"),
    ("SEND_PAUSE_SECONDS", "90000", "from 0 to 86,400 seconds, a day"),
])
def test_a_pace_setting_out_of_range_stops_the_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, said: str
) -> None:
    # The New blast page's pace inputs take every value the settings allow, and no other.
    assert f"{name}: should be {said}" in _refusal(monkeypatch, name, value)


@pytest.mark.parametrize(("name", "value", "example"), [
    ("WSAPME_API_URL", "api.wsapme.com", "https://api.wsapme.com"),  # typed without https://
    ("WSAPME_API_URL", "ftp://api.wsapme.com", "https://api.wsapme.com"),
    ("WSAPME_API_URL", "https://api.wsapme.com:99999", "https://api.wsapme.com"),
    ("WSAPME_MASTER_URL", "https:// master.wsapme.com", "https://master.wsapme.com"),
    ("PUBLIC_URL", "tracker.example.com", "https://tracker.example.com"),
    ("PUBLIC_URL", "https://admin:Zq81-pw@", "https://tracker.example.com"),
])
def test_an_address_that_is_not_a_web_address_stops_the_start_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, example: str
) -> None:
    # The gateway's had let the dashboard start, and paused the first blast with words that
    # named no setting.
    refused = _refusal(monkeypatch, name, value)
    assert f"{name}: not a web address: write it whole, starting with https://, e.g. {example}" in refused
    assert "Zq81" not in refused


@pytest.mark.parametrize(("name", "value"), [
    ("WSAPME_API_URL", "http://127.0.0.1:9"), ("WSAPME_MASTER_URL", "https://master.wsapme.com/"),
    ("PUBLIC_URL", "https://admin:pw@tracker.example.com/blasts"), ("PUBLIC_URL", "http://[::1]:8501"),
])
def test_web_addresses_of_every_usual_form_are_taken(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, f" {value} ")
    assert getattr(Settings(_env_file=None), name.lower()) == value


def test_the_pace_settings_take_their_whole_range(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (low, high, _) in PACING_LIMITS.items():
        for value in (low, high):
            assert getattr(Settings(_env_file=None, **{name: value}), name) == value


def test_a_blank_webhook_secret_means_a_generated_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_SECRET", "   ")
    assert Settings(_env_file=None).webhook_secret is None
    monkeypatch.setenv("WEBHOOK_SECRET", "  Abc-123_x.y~z-0123  ")
    assert Settings(_env_file=None).webhook_secret.get_secret_value() == "Abc-123_x.y~z-0123"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README's table is stale: paste `python -m core settings`"


def test_the_browsers_upload_limit_matches_the_import_cap() -> None:
    import tomllib

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == Settings.model_fields["max_upload_mb"].default


UNREADABLE = "(set, hidden: not readable as an address)"


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://tracker:Zq81%40pw@db.example.com:5432/blasts",
     "postgresql://tracker:•••@db.example.com:5432/blasts"),
    ("postgresql://tracker:Zq81@ck:er/pw#1@127.0.0.1:5432/blasts", UNREADABLE),
    ("postgresql://tracker:Zq81pa#ss@127.0.0.1/blasts", UNREADABLE),
    ("postgresql://tracker@127.0.0.1/blasts", "postgresql://tracker@127.0.0.1/blasts"),
    ("postgresql://tracker@127.0.0.1/blasts?password=Zq81&sslmode=require",
     "postgresql://tracker@127.0.0.1/blasts?•••"),
])
def test_settings_in_force_hide_a_password_however_it_was_typed(
    monkeypatch: pytest.MonkeyPatch, url: str, shown: str
) -> None:
    """`python -m core settings --in-force`: an operator checks what .env gives without
    showing a secret, even in an address typed with its special characters as they are."""
    from core.cli.settings import in_force

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PUBLIC_URL", "https://admin:Zq81-login@tracker.example.com/blasts")
    rows = {name: (value, set_here) for name, value, set_here in in_force(Settings(_env_file=None))}
    assert rows["DATABASE_URL"] == (shown, True)
    assert rows["PUBLIC_URL"] == ("https://admin:•••@tracker.example.com/blasts", True)
    assert rows["RUN_WORKER"] == ("true", False), "a default, as it is"
    assert not [value for value, _ in rows.values() if "Zq81" in value]

