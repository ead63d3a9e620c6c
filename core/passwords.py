"""Dashboard passwords: scrypt hashes, checked in constant time, with failed attempts limited."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    encode = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt)}${encode(digest)}"


def looks_like_password_hash(stored: str) -> bool:
    """Whether `stored` has the shape `hash_password` gives: a value cut short by a shell that
    read its $ signs as variables does not."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
        return False
    try:
        return all(base64.b64decode(p, validate=True) for p in parts[4:])
    except ValueError:
        return False


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches a hash from `hash_password`; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                                p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# How long a browser stays signed in after a password login.
SESSION_SECONDS = 7 * 24 * 3600


def session_token(stored: str, *, now: float | None = None, lifetime: float = SESSION_SECONDS) -> str:
    """A browser's proof of a password login: its expiry and a signature by a key drawn from
    the password's hash, so it ends when it expires or when the password is changed."""
    expires = int((time.time() if now is None else now) + lifetime)
    return f"{expires}.{_session_signature(stored, expires)}"


def session_valid(token: str | None, stored: str, *, now: float | None = None) -> bool:
    """Whether `token` came from `session_token` for this password and has not expired."""
    if not isinstance(token, str):
        return False
    expires_text, _, signature = token.partition(".")
    # isdigit alone takes "²", which int() refuses; twelve digits outlast any expiry.
    if not (expires_text.isascii() and expires_text.isdigit()) or len(expires_text) > 12 or not signature:
        return False
    expires = int(expires_text)
    if expires <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature, _session_signature(stored, expires))


def _session_signature(stored: str, expires: int) -> str:
    key = hashlib.sha256(b"dashboard session\0" + stored.encode()).digest()
    return hmac.new(key, str(expires).encode(), hashlib.sha256).hexdigest()


class AttemptLimiter:
    """At most `limit` failed attempts per key in `window` seconds; then the key must wait."""

    def __init__(self, *, limit: int = 5, window: float = 900.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, key: str, *, now: float | None = None) -> float:
        """0 when an attempt is allowed now, else how long until it is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._recent(key, now)
            if len(failures) < self.limit:
                return 0.0
            return failures[0] + self.window - now

    def failures(self, key: str, *, now: float | None = None) -> int:
        """How many attempts under `key` failed in the last `window` seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return len(self._recent(key, now))

    def failed(self, key: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures
