"""The webhook secret: where it comes from, how it is checked, and rotating it without loss.

WSAPME can send no headers, so the secret is part of the URL. It is the WEBHOOK_SECRET
setting when set; otherwise one is generated on first use and kept in `app_state`.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.config import Settings
from core.errors import ConfigError
from core.models import AppState, utcnow

SECRET_KEY = "webhook_secret"
PREVIOUS_KEY = "webhook_secret_previous"
# After a rotation the old URL keeps working this long, so that events the gateway sends
# before someone pastes the new URL into WSAPME are not lost.
DEFAULT_GRACE = dt.timedelta(days=7)
WEBHOOK_PATH = "/webhooks/wsapme/"
SECRET_BYTES = 32


def current_secret(session: Session, *, settings: Settings) -> str:
    """The secret the webhook URL should carry now (generated and kept on first use)."""
    configured = _configured(settings)
    if configured:
        return configured
    stored = _read(session, SECRET_KEY)
    if stored:
        return stored
    # Two processes may start at once: the first insert wins and both read it back.
    _insert_if_absent(session, key=SECRET_KEY, value=secrets.token_urlsafe(SECRET_BYTES))
    return _read(session, SECRET_KEY) or ""


def secret_made(session: Session, *, settings: Settings) -> bool:
    """Whether the current secret is set or kept already (`current_secret` then writes nothing)."""
    return bool(_configured(settings) or _read(session, SECRET_KEY))


def accepted_secrets(
    session: Session, *, settings: Settings, now: dt.datetime | None = None
) -> list[str]:
    """The current secret, and the previous ones while their grace periods last."""
    now = now or utcnow()
    accepted = [current_secret(session, settings=settings)]
    accepted += [secret for secret, until in _previous(session) if until > now]
    return [s for s in accepted if s]


def secret_matches(
    session: Session, *, settings: Settings, candidate: str, now: dt.datetime | None = None
) -> bool:
    return matches_any(candidate, accepted_secrets(session, settings=settings, now=now))


def matches_any(candidate: str, accepted: Iterable[str]) -> bool:
    """Constant-time comparison against every accepted secret (no early exit on a match)."""
    given = candidate.encode("utf-8", errors="replace")
    results = [hmac.compare_digest(given, s.encode("utf-8")) for s in accepted]
    return any(results)


class AcceptedSecrets:
    """The accepted secrets, remembered for a few seconds so that each webhook post need not
    read them from the database. A candidate that does not match reads them again, at most once
    every `asked_again_after` (a secret rotated in another process works a moment later; in this
    one, at once); a secret whose grace period ends is refused at most `ttl` late.

    `forget` (a rotation here, once committed) also spoils any read already under way: that
    read may have seen the secrets before the rotation, and must not be remembered as fresh."""

    def __init__(self, ttl: float = 5.0, *, asked_again_after: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        # A post with a wrong secret reads them again at most this often: anyone can post
        # to the webhook's address, and must not make every post a read of the database.
        self._asked_again_after = asked_again_after
        self._lock = threading.Lock()
        self._accepted: tuple[str, ...] = ()
        self._fresh_until = 0.0
        self._read_at = -float("inf")
        self._forgotten = 0  # how many times forgotten: a read that spans one keeps nothing

    def matches(self, candidate: str) -> bool:
        """True when the remembered secrets are fresh and one matches; False means "ask again"."""
        with self._lock:
            accepted, fresh = self._accepted, self._clock() < self._fresh_until
        return fresh and matches_any(candidate, accepted)

    def worth_asking(self) -> bool:
        """Whether a candidate that did not match should read the secrets again: they are stale,
        or were read longer ago than `asked_again_after` (a secret rotated in another process).
        A yes takes the turn: wrong posts arriving together, while that read runs, are refused
        from memory, not each sent to the database. Stale secrets are read by every post that
        asks (a right one among them must not be refused)."""
        with self._lock:
            now = self._clock()
            if now < self._fresh_until and now - self._read_at < self._asked_again_after:
                return False
            self._read_at = now
            return True

    def forgotten(self) -> int:
        """How many times forgotten so far: taken before a read's transaction begins, and given
        to `refresh_and_match`, it spoils a read whose snapshot may be older than a rotation."""
        with self._lock:
            return self._forgotten

    def refresh_and_match(
        self, session: Session, *, settings: Settings, candidate: str, forgotten: int | None = None
    ) -> bool:
        """Read the accepted secrets in `session` and remember them, unless they were forgotten
        since `forgotten` (`forgotten()` before the session's first statement: SQLite's snapshot
        is taken there; by default, now)."""
        if forgotten is None:
            forgotten = self.forgotten()
        accepted = tuple(accepted_secrets(session, settings=settings))
        with self._lock:
            if forgotten == self._forgotten:
                self._read_at = self._clock()
                self._accepted, self._fresh_until = accepted, self._read_at + self._ttl
        return matches_any(candidate, accepted)

    def forget(self) -> None:
        with self._lock:
            self._accepted, self._fresh_until, self._read_at = (), 0.0, -float("inf")
            self._forgotten += 1


_remembered: dict[tuple[str, str | None], AcceptedSecrets] = {}
_remembered_lock = threading.Lock()


def remembered_secrets(settings: Settings) -> AcceptedSecrets:
    """This process's remembered secrets for these settings' database and WEBHOOK_SECRET."""
    with _remembered_lock:
        return _remembered.setdefault((settings.sqlalchemy_url, _configured(settings)), AcceptedSecrets())


def forget_remembered() -> None:
    with _remembered_lock:
        for remembered in _remembered.values():
            remembered.forget()


def rotate_secret(
    session: Session,
    *,
    settings: Settings,
    grace: dt.timedelta = DEFAULT_GRACE,
    now: dt.datetime | None = None,
) -> str:
    """Generate a new secret; the old one stays accepted for `grace`. Returns the new one.

    Secrets rotated out earlier stay accepted until their own grace ends: a second
    rotation (a double click, or a URL not yet pasted into WSAPME) must not cut off the
    address the gateway still posts to.

    Only the generated secret can be rotated here: one set in WEBHOOK_SECRET is changed
    where it is set.
    """
    if _configured(settings):
        raise ConfigError("the webhook secret is set by WEBHOOK_SECRET: change it there")
    now = now or utcnow()
    current_secret(session, settings=settings)  # there is one to rotate
    # Locked before the previous ones are read: two rotations at once (two tabs) must not
    # each keep only their own view of the list.
    old = session.get(AppState, SECRET_KEY, with_for_update=True, populate_existing=True).value
    previous = [(secret, until) for secret, until in _previous(session) if until > now]
    previous.append((old, now + grace))
    stored = [{"secret": secret, "until": until.isoformat()} for secret, until in previous]
    _write(session, key=PREVIOUS_KEY, value=json.dumps(stored))
    new = secrets.token_urlsafe(SECRET_BYTES)
    _write(session, key=SECRET_KEY, value=new)
    # This process forgets once the new secret is committed: forgotten before, a webhook post
    # in between would remember the secrets without it, and refuse it for a few seconds. Other
    # processes notice within their few seconds; the old secret is in its grace anyway.
    event.listen(session, "after_commit", lambda _session: forget_remembered(), once=True)
    return new


def webhook_url(settings: Settings, secret: str, *, reveal: bool = False) -> str:
    """The URL to paste into WSAPME; the secret, and any login in PUBLIC_URL, masked unless
    `reveal`."""
    if reveal:
        return f"{settings.public_url.rstrip('/')}{WEBHOOK_PATH}{secret}"
    return f"{_without_login(settings.public_url).rstrip('/')}{WEBHOOK_PATH}{mask(secret)}"


def _without_login(url: str) -> str:
    """`url` without a `user:password@` part. Unlike the worker's log line, which shows only
    where the dashboard is, the path stays: a dashboard served under one keeps it in the URL."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def mask(secret: str) -> str:
    # Four characters let a person tell two secrets apart without giving the secret away.
    return f"{secret[:4]}{'•' * 12}" if len(secret) >= 16 else "•" * 12


def _configured(settings: Settings) -> str | None:
    value = settings.webhook_secret.get_secret_value().strip() if settings.webhook_secret else ""
    return value or None


def _previous(session: Session) -> list[tuple[str, dt.datetime]]:
    """Secrets rotated out, each with the end of its grace period."""
    raw = _read(session, PREVIOUS_KEY)
    if not raw:
        return []
    try:
        stored = json.loads(raw)
    except ValueError:
        return []  # a damaged entry grants nothing
    entries = stored if isinstance(stored, list) else [stored]  # one object before lists
    return [entry for entry in map(_previous_entry, entries) if entry is not None]


def _previous_entry(stored: object) -> tuple[str, dt.datetime] | None:
    try:
        until = dt.datetime.fromisoformat(stored["until"])  # type: ignore[index]
        secret = str(stored["secret"])  # type: ignore[index]
    except (ValueError, KeyError, TypeError):
        return None
    return secret, until if until.tzinfo else until.replace(tzinfo=dt.UTC)


def _read(session: Session, key: str) -> str | None:
    return session.scalar(select(AppState.value).where(AppState.key == key))


def _insert_if_absent(session: Session, *, key: str, value: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(AppState).values(key=key, value=value).on_conflict_do_nothing(index_elements=["key"])
    )


def _write(session: Session, *, key: str, value: str) -> None:
    row = session.get(AppState, key, with_for_update=True)
    if row is None:
        session.add(AppState(key=key, value=value))
    else:
        row.value = value
    session.flush()
