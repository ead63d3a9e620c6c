"""The one settings object: every knob the product has, read from the environment (or `.env`)."""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.passwords import looks_like_password_hash

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_API_URL = "https://api.wsapme.com"
DEFAULT_MASTER_URL = "https://master.wsapme.com"
MIN_WEBHOOK_SECRET_LENGTH = 16
# The device the sandbox gateway sends from: with a real token it would reach WSAPME as a
# device id no account has.
SANDBOX_DEVICE = "sandbox"
# The device of the demo blasts (`python -m core seed-demo`): practice mode's too.
DEMO_DEVICE = "demo"
# Blasts made in practice mode: the sandbox's own, and the demo data's (a follow-up drafted
# from a demo blast keeps its device). Their numbers are made up or were only practised on.
PRACTICE_DEVICES = (SANDBOX_DEVICE, DEMO_DEVICE)
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")
# The range each pacing setting may take, and so each pace the dashboard lets a person type:
# (lowest, highest, the unit said when a value is outside them).
PACING_LIMITS: dict[str, tuple[float, float, str]] = {
    "send_min_gap_seconds": (0, 3600, "seconds, an hour"),
    "send_jitter_seconds": (0, 3600, "seconds, an hour"),
    "send_pause_every": (0, 100_000, "messages"),
    "send_pause_seconds": (0, 86_400, "seconds, a day"),
    "send_daily_cap": (0, 100_000, "messages"),
}


class Settings(BaseSettings):
    """Each field is one environment variable of the same name, upper-cased.

    The README's configuration table is checked against these fields by a test,
    so a new setting cannot ship undocumented.
    """

    model_config = SettingsConfigDict(
        # Beside the README whatever folder the server is started from.
        env_file=PROJECT_ROOT / ".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Storage
    database_url: SecretStr | None = Field(
        None,
        description="Where all state lives. Unset: a SQLite file in DATA_DIR. "
        "A postgres:// or postgresql:// URL (Neon's included) is used as given.",
    )
    data_dir: Path = Field(
        PROJECT_ROOT / "data",
        description="Folder for the default SQLite database; created on first run.",
    )
    database_wait_seconds: float = Field(
        60.0,
        ge=0,
        description="At start, how long the dashboard and the worker wait for a PostgreSQL server "
        "that does not take connections yet (starting up, waking, out of reach), then give up. "
        "A wrong password or database name stops the start at once.",
    )

    # Gateway
    wsapme_token: SecretStr | None = Field(
        None,
        description="WSAPME user token. Unset: the built-in sandbox gateway is used "
        "and every page says so.",
    )
    wsapme_device: str = Field(
        SANDBOX_DEVICE, validate_default=True,
        description="The linked WhatsApp device id messages are sent from (e.g. 5850); "
        "needed once WSAPME_TOKEN is set.",
    )
    wsapme_api_url: str = Field(
        DEFAULT_API_URL, description="Base URL for sending and device calls."
    )
    wsapme_master_url: str = Field(
        DEFAULT_MASTER_URL, description="Base URL for the messageInfo status look-up."
    )
    wsapme_send_path: str = Field("/v1/sendMessage2", description="Path of the send call.")
    wsapme_status_path: str = Field(
        "/v1/getMessageStatus", description="Path of the status look-up on the API host."
    )
    wsapme_message_info_path: str = Field(
        "/api/messageInfo", description="Path of the status look-up on the master host."
    )
    wsapme_device_path: str = Field(
        "/v1/getDevice", description="Path of the device status call."
    )
    wsapme_connect_timeout: float = Field(
        5.0, description="Seconds to wait for the gateway to accept a connection."
    )
    wsapme_read_timeout: float = Field(
        30.0, description="Seconds to wait for the gateway's answer once a request is sent."
    )
    wsapme_ack_numbering: Literal["baileys", "wwebjs"] = Field(
        "baileys",
        description="How numeric ack codes are read: baileys (0 = error, 3 = delivered) "
        "or wwebjs (0 = on its way, 3 = read). Status names always win over numbers. A wrong "
        "choice misreads receipts: wwebjs's 0 read as baileys fails messages on their way.",
    )

    sandbox_speed: Literal["realistic", "fast"] = Field(
        "realistic",
        description="How quickly the sandbox gateway's receipts and replies come: realistic "
        "(seconds to minutes) or fast (at once, for demos and tests).",
    )

    # Webhook
    webhook_secret: SecretStr | None = Field(
        None,
        description="The secret part of the webhook URL: at least 16 characters, letters, "
        "digits and - . _ ~ only. Unset: one is generated on first run and kept in the database.",
    )
    webhook_max_bytes: int = Field(
        1_000_000, description="Largest webhook body accepted, in bytes. A larger one is refused, "
        "and set aside with its first 4 KB kept."
    )
    webhook_wait_minutes: float = Field(
        60.0,
        description="How long an event for a message we have not stored yet waits before it is "
        "set aside as unmatched (kept, never deleted).",
    )
    opt_out_words: str = Field(
        "",
        description="Extra opt-out words, comma-separated, on top of STOP, UNSUBSCRIBE, "
        "BERHENTI and the other built-in ones.",
    )
    public_url: str = Field(
        "http://localhost:8501",
        description="The address WSAPME reaches this server on; used to show the webhook URL. "
        "Unset, the dashboard uses its own port on localhost; a worker run on its own, this default.",
    )

    # Access
    dashboard_password_hash: SecretStr | None = Field(
        None,
        description="Turns on the dashboard login. Make it with `python -m core hash-password`. "
        "Unset (and no identity provider in secrets.toml): no login, for use on this computer only.",
    )
    dashboard_allowed_emails: str = Field(
        "",
        description="With an identity provider in secrets.toml: who may log in, comma-separated "
        "addresses (ali@example.com) or whole domains (@example.com). Unset: nobody.",
    )

    # People and time
    app_timezone: str = Field(
        "Asia/Kuala_Lumpur", description="The team's time zone: quiet hours, days, charts."
    )
    phone_region: str = Field(
        "MY", description="Country assumed for numbers typed without a country code."
    )

    # Sending
    run_worker: bool = Field(
        True, description="Run the send worker inside the dashboard process."
    )
    send_pacing: Literal["on", "off"] = Field(
        "on",
        description="off sends as fast as the gateway answers (sandbox and tests only).",
    )

    send_min_gap_seconds: float = Field(
        8.0, description="Default shortest gap between two messages from one device, in seconds."
    )
    send_jitter_seconds: float = Field(
        7.0, description="Default random extra wait added to each gap (0 to this many seconds)."
    )
    send_pause_every: int = Field(
        50, description="Default: take a longer pause after this many messages (0 = never)."
    )
    send_pause_seconds: float = Field(
        300.0, description="Default length of that longer pause, in seconds."
    )
    send_daily_cap: int = Field(
        500, description="Default most messages one device sends in a day (0 = no cap)."
    )
    send_quiet_hours: str = Field(
        "21:00-09:00",
        description="Default hours (team time zone) when nothing is sent, as HH:MM-HH:MM, or off.",
    )
    send_max_attempts: int = Field(
        5, description="Tries for a message the gateway did not take (busy, server error) before its "
        "blast is paused."
    )
    send_lease_seconds: float = Field(
        120.0,
        description="How long a worker may hold a message without an answer before it is marked "
        "unknown (never re-sent automatically).",
    )
    schedule_grace_minutes: float = Field(
        60.0,
        description="A scheduled blast found more than this late is paused for a person to "
        "confirm, not started silently.",
    )

    max_upload_mb: float = Field(
        10.0,
        description="Largest contact list (CSV or Excel) accepted, in megabytes (keep "
        ".streamlit/config.toml's maxUploadSize the same).",
    )

    # Tracking
    reply_window_hours: float = Field(
        72.0,
        description="An incoming message counts as a reply to the last message sent to "
        "that number within this many hours.",
    )

    status_polling: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Ask the gateway for statuses: auto does it only while webhooks are silent.",
    )
    poll_interval_seconds: float = Field(60.0, description="Seconds between polling rounds.")
    poll_batch_size: int = Field(50, description="Messages asked about in one polling round.")
    poll_max_age_hours: float = Field(
        48.0, description="Messages older than this are no longer polled."
    )
    poll_webhook_silence_minutes: float = Field(
        30.0, description="In auto mode, polling starts after this long without a delivery or read receipt."
    )

    @field_validator("app_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (KeyError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (try Asia/Kuala_Lumpur)") from None
        return value

    @field_validator("send_quiet_hours")
    @classmethod
    def _readable_quiet_hours(cls, value: str) -> str:
        parse_quiet_hours(value)  # a typo stops the start, not the worker halfway through a blast
        return value

    @field_validator(*PACING_LIMITS)
    @classmethod
    def _pace_in_range(cls, value: float, info: ValidationInfo) -> float:
        low, high, unit = PACING_LIMITS[info.field_name or ""]
        if not (math.isfinite(value) and low <= value <= high):  # NaN is outside every range
            raise ValueError(f"should be from {low:,} to {high:,} {unit}")
        return value

    @field_validator("dashboard_password_hash")
    @classmethod
    def _readable_password_hash(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not looks_like_password_hash(value.get_secret_value()):
            # The value is not repeated: it may be the password itself, pasted by mistake.
            raise ValueError("not a value from `python -m core hash-password`; in a shell, put it in "
                             "single quotes, or its $ signs are read as variables")
        return value

    @field_validator("wsapme_token")
    @classmethod
    def _sendable_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        # A secret made from a file often ends in a line break, which no request can carry.
        token = value.get_secret_value().strip()
        if any(not " " <= ch <= "~" for ch in token):
            # The message never holds the value: it is a secret.
            raise ValueError("holds a line break, tab or other character a web request cannot carry: "
                             "copy the token again, on its own")
        return SecretStr(token)

    @field_validator("wsapme_device")
    @classmethod
    def _real_device_with_a_token(cls, value: str, info: ValidationInfo) -> str:
        token = info.data.get("wsapme_token")
        practice = value.strip().lower() in ("", *PRACTICE_DEVICES)
        if token is not None and token.get_secret_value() and practice:
            # Blasts would reach WSAPME from a device named "sandbox", which no account has.
            raise ValueError("WSAPME_TOKEN is set, so messages go out for real: set it to your "
                             "WSAPME device id (the number WSAPME shows for the linked WhatsApp, e.g. 5850)")
        return value

    @field_validator("wsapme_api_url", "wsapme_master_url", "public_url")
    @classmethod
    def _web_address(cls, value: str, info: ValidationInfo) -> str:
        """Refused at the start, naming the setting: typed without https://, a gateway address
        had let the dashboard start and paused the first blast with words naming no setting."""
        value = value.strip()
        if not value and info.field_name == "public_url":
            return value  # taken as it is, as before this check
        example = {"public_url": "https://tracker.example.com", "wsapme_master_url": DEFAULT_MASTER_URL
                   }.get(info.field_name or "", DEFAULT_API_URL)
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if (parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname
                or not port_ok or any(ch.isspace() for ch in value)):
            # The value is not repeated: a login in it (user:password@) would be shown.
            raise ValueError(f"not a web address: write it whole, starting with https://, e.g. {example}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _usable_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never holds the value: it is a secret.
        secret = value.get_secret_value().strip() if value is not None else ""
        if not secret:
            return None
        if len(secret) < MIN_WEBHOOK_SECRET_LENGTH:
            raise ValueError(f"too short: at least {MIN_WEBHOOK_SECRET_LENGTH} characters, so "
                             "that it cannot be guessed (leave it unset to have one generated)")
        if not _URL_SAFE.fullmatch(secret):
            raise ValueError("only letters, digits and - . _ ~ can stand in a URL as they are")
        return SecretStr(secret)

    @property
    def sandbox(self) -> bool:
        """No token means the built-in gateway simulator stands in for WSAPME."""
        return self.wsapme_token is None or not self.wsapme_token.get_secret_value()

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.app_timezone)

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in the form SQLAlchemy wants, with the psycopg 3 driver."""
        if self.database_url is None or not self.database_url.get_secret_value():
            return f"sqlite:///{self.data_dir / 'blasts.db'}"
        return normalise_database_url(self.database_url.get_secret_value())


def normalise_database_url(url: str) -> str:
    """Accept the URL forms people paste (Heroku's postgres://, Neon's postgresql://)."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@functools.cache
def get_settings() -> Settings:
    """The settings from the environment and `.env`; a value that cannot be used is a
    ConfigError naming the setting, never its value (it may be a secret)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'a setting'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"a setting cannot be used ({problems})") from None


_CLOCK = re.compile(r"(\d{1,2})(?::(\d{2}))?")


def parse_quiet_hours(text: str) -> tuple[dt.time | None, dt.time | None]:
    """`"21:00-09:00"` (or `"21:00-9:00"`, `"21-9"`) → (21:00, 09:00); empty or "off" → no
    quiet hours. Raises ValueError, in words, for anything else."""
    text = text.strip().lower()
    if not text or text in ("off", "none"):
        return None, None
    start, dash, end = text.partition("-")
    times = [_clock(part.strip()) for part in (start, end)] if dash else [None]
    if any(t is None for t in times):
        raise ValueError(f"quiet hours should look like 21:00-09:00, or say off (not {text!r})")
    return times[0], times[1]


def _clock(text: str) -> dt.time | None:
    match = _CLOCK.fullmatch(text)
    if match is None or int(match.group(1)) > 23 or int(match.group(2) or 0) > 59:
        return None
    return dt.time(int(match.group(1)), int(match.group(2) or 0))
