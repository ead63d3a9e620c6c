"""Turning gateway refusals, HTTP errors and network failures into domain errors, in plain words.

The split that matters: an error with `accepted=False` proves the gateway did not take the
message (retry if `retryable`); `OutcomeUnknown` means it may have gone out (never resend).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re
import ssl
from collections.abc import Mapping
from typing import Any

import requests
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

from core.errors import (
    ConfigError,
    DeviceOffline,
    GatewayAuthError,
    GatewayError,
    GatewayRefused,
    GatewayServerError,
    GatewayUnreachable,
    OutcomeUnknown,
    RateLimited,
    ServerFailedMidSend,
)

# A longer wait is taken as a day: a person looks at a blast held that long anyway, and a wait of
# years cannot be added to a date.
RETRY_AFTER_MAX = 24 * 3600.0

AUTH_WORDS = ("token", "unauthori", "unauthenticated", "api key", "apikey")
OFFLINE_WORDS = (
    "offline",
    "disconnect",
    "not connected",
    "logged out",
    "logout",
    "not login",
    "scan the qr",
    "scan qr",
    "not ready",
)
UNKNOWN_DEVICE_WORDS = ("device not found", "invalid device", "unknown device", "no device")
INVALID_NUMBER_WORDS = (
    "invalid number",
    "number invalid",
    "invalid phone",
    "not registered",
    "not exist",
    "not on whatsapp",
    "wrong number",
    "invalid jid",
    "not a whatsapp",
)
# About the account, whatever the number: every message of the blast would be turned down alike.
ACCOUNT_WORDS = ("quota", "limit reached", "limit exceeded", "expired", "package", "subscription",
                 "balance", "credit", "suspended", "banned", "payment")
# OpenSSL's reasons that only a handshake gives: the connection never carried the request.
# Any other TLS failure (a reset, a bad record) may come after the message was written.
HANDSHAKE_FAILURES = frozenset({
    "CERTIFICATE_VERIFY_FAILED",
    "WRONG_VERSION_NUMBER",
    "HTTP_REQUEST",
    "UNKNOWN_PROTOCOL",
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
    "DH_KEY_TOO_SMALL",
    "UNSAFE_LEGACY_RENEGOTIATION_DISABLED",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "TLSV1_ALERT_UNKNOWN_CA",
    "TLSV1_ALERT_UNRECOGNIZED_NAME",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    "TLSV1_UNRECOGNIZED_NAME",
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
})
MAX_REASON_CHARS = 200
MAX_RAW_TEXT_CHARS = 2000
MIN_SECRET_IN_TEXT = 8  # see `scrub`

# Shown on a paused blast: the marketer passes it on, so it names no setting.
TOKEN_REFUSED = ("WSAPME refused the token: whoever set up the dashboard should check the token in its "
                 "settings.")


def scrub(value: Any, secret: str | None) -> Any:
    """The value with every copy of the secret masked, in case a gateway echoes our headers.

    Walked value by value: masking the serialised text cut into numbers and JSON syntax when
    the secret was short or made of digits, and left text that no longer parsed. A secret too
    short to tell from ordinary text is masked only where it stands as a word of its own
    ("Invalid token abc123"): masking it inside every string would mangle message ids and the
    rest of the answer.
    """
    if not secret:
        return value
    if isinstance(value, str):
        if len(secret) < MIN_SECRET_IN_TEXT:
            return re.sub(rf"(?<![\w-]){re.escape(secret)}(?![\w-])", "***", value)  # not inside an id
        return value.replace(secret, "***")
    if isinstance(value, Mapping):
        return {key: scrub(item, secret) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, secret) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and str(value) == secret:
        return "***"  # the token echoed back as a number
    return value


def gateway_reason(body: object) -> str | None:
    """The gateway's own one-line reason (its `message` field), trimmed for showing."""
    if not isinstance(body, Mapping):
        return None
    reason = body.get("message")
    if not isinstance(reason, str) or not reason.strip():
        return None
    return " ".join(reason.split())[:MAX_REASON_CHARS]


class RequestRefused(GatewayRefused):
    """WSAPME turned the request down for a reason that is not this number's: a wrong address or
    send path, or something about the account. Every other send would be refused the same way,
    so the blast waits for a person rather than failing each recipient in turn."""

    pauses_blast = True


class UnexplainedRefusal(GatewayRefused):
    """WSAPME answered that it did not take this message, in words that do not say whether it
    is about the number or the account: the message fails, and the worker counts them."""


class GatewayBusy(GatewayServerError):
    """HTTP 503: WSAPME, or a server in front of it, turned the request away before handling it
    (overloaded, restarting, down for maintenance), the one 5xx that says so. Safe to try
    again, no sooner than its Retry-After when it gives one."""


def refusal_from_body(body: object, *, device: str, status: int | None = None) -> GatewayError:
    """The error for an answer that says no (`success: false`, or an HTTP error with a reason),
    from the gateway's words. Only a refusal of the number fails that one message: any other
    would be given to every message of the blast alike."""
    reason = gateway_reason(body) or ""
    words = reason.lower()
    if any(w in words for w in AUTH_WORDS):
        return GatewayAuthError(TOKEN_REFUSED, raw=body)
    if any(w in words for w in UNKNOWN_DEVICE_WORDS):
        return DeviceOffline(
            f"WSAPME does not know the WhatsApp device '{device}': whoever set up the dashboard "
            "should check the device in its settings.",
            raw=body,
        )
    if any(w in words for w in OFFLINE_WORDS):
        return DeviceOffline("The WhatsApp device is offline: open WSAPME and reconnect it.", raw=body)
    if any(w in words for w in INVALID_NUMBER_WORDS):
        return GatewayRefused(
            f"This number is not a valid WhatsApp number (WSAPME said: {reason}).", raw=body
        )
    if (status is None or 200 <= status < 300) and not any(w in words for w in ACCOUNT_WORDS):
        # Answered, with words we do not know ("Number is not valid", "Message failed to
        # send"): most likely about this message, so it alone fails. Several in a row pause
        # the blast (core/sending/trouble.py): then it is about the account.
        return UnexplainedRefusal(f"WSAPME did not accept the message ({_said(reason)}).", raw=body)
    return request_refused(reason, status=status, raw=body)


def _said(reason: str | None) -> str:
    return f"WSAPME said: {reason}" if reason else "WSAPME gave no reason"


def request_refused(reason: str | None, *, status: int | None, raw: object) -> RequestRefused:
    said = _said(reason)
    code = f"HTTP {status}, " if status is not None else ""
    if status in (404, 405):
        return RequestRefused(
            f"WSAPME has no such call ({code}{said}): whoever set up the dashboard should check the "
            "WSAPME address and send path in its settings.",
            raw=raw,
        )
    return RequestRefused(
        f"WSAPME refused the request ({code}{said}): whoever set up the dashboard should check the "
        "WSAPME account and the dashboard's WSAPME settings.",
        raw=raw,
    )


# What a send the gateway proved it did not take ends with: the worker tries it again. A send
# made once, by hand (a test message), is not tried again, and leaves these words out.
WILL_RETRY = " The message was not sent and will be tried again."


def error_from_http_status(
    *,
    status: int,
    headers: Mapping[str, str],
    body: object,
    device: str,
    sending: bool,
) -> GatewayError | None:
    """The error a non-2xx answer means, or None for a 2xx answer (its body decides).

    While sending, only 408, 429 and 503 prove the message was not taken: each says the
    request was turned away before it was handled. Any other 5xx may come after the gateway
    took the message: from the gateway failing midway, or from a server in front of it (a
    CDN's 520 or 524) that gave up on an answer the gateway was still working on.
    """
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return GatewayAuthError(TOKEN_REFUSED, raw=body)
    if status == 429:
        return rate_limited(headers.get("Retry-After"), raw=body)
    tail = WILL_RETRY if sending else ""
    if status == 503:
        return GatewayBusy(f"WSAPME had a problem on its side (HTTP 503).{tail}",
                           retry_after=parse_retry_after(headers.get("Retry-After")), raw=body)
    if status == 408:
        return GatewayServerError(f"WSAPME had a problem on its side (HTTP 408).{tail}", raw=body)
    if status == 504 and sending:
        # A proxy gave up waiting on the gateway, which may still have sent the message.
        return unknown_outcome("WSAPME's front server timed out waiting for it", raw=body)
    if status >= 500 and sending:
        # Failing while it handled the message proves nothing about whether it went out.
        return ServerFailedMidSend(
            f"WSAPME had a problem on its side (HTTP {status}) while taking this message. It may "
            "have gone out, so it will not be sent again automatically. Sending is paused: resume "
            "it once WSAPME works again.",
            raw=body,
        )
    if status >= 500:
        return GatewayServerError(f"WSAPME had a problem on its side (HTTP {status}).", raw=body)
    if 300 <= status < 400:
        return RequestRefused(
            f"WSAPME answered with a redirect (HTTP {status}): whoever set up the dashboard should "
            "check the WSAPME address in its settings.",
            raw=body,
        )
    return refusal_from_body(body, device=device, status=status)


def rate_limited(header: str | None, *, raw: object) -> RateLimited:
    wait = parse_retry_after(header)
    when = f"trying again {wait_words(wait)}" if wait is not None else "trying again shortly"
    return RateLimited(f"WSAPME asked to slow down: {when}.", retry_after=wait, raw=raw)


def wait_words(seconds: float) -> str:
    """A wait as a person says it: "in a moment", "in 30 seconds", "in 2 minutes"."""
    if seconds < 1.5:
        return "in a moment"
    if seconds < 90:
        return f"in {round(seconds)} seconds"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"in {minutes} minutes"
    return f"in {round(seconds / 3600)} hours"


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date, at most
    RETRY_AFTER_MAX. None for anything else (`inf`, `nan`): the caller's own wait then holds."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = _seconds_until(text, now=now or dt.datetime.now(dt.UTC))
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), RETRY_AFTER_MAX)


def _seconds_until(text: str, *, now: dt.datetime) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - now).total_seconds()


def unknown_outcome(reason: str, *, raw: object = None, sending: bool = True) -> OutcomeUnknown:
    if not sending:
        return OutcomeUnknown(f"WSAPME did not answer ({reason}): try again later.", raw=raw)
    return OutcomeUnknown(
        f"WSAPME did not confirm the message ({reason}). It may have gone out, so it will "
        "not be sent again automatically.",
        raw=raw,
    )


def unreachable(reason: str, *, host: str, sending: bool) -> GatewayUnreachable:
    tail = WILL_RETRY if sending else ""
    return GatewayUnreachable(f"Could not reach WSAPME at {host} ({reason}).{tail}")


def error_from_exception(
    exc: requests.RequestException | UnicodeEncodeError, *, host: str, sending: bool
) -> GatewayError | ConfigError:
    """The error a failed request means. Built from the exception's type only: requests'
    exceptions carry the prepared request, headers and token included, so none of it is kept.
    """
    # The token header is the only one we set: requests refuses it, or it cannot be written
    # as a header at all, while the request is built, before anything is sent. Read as "may
    # have gone out", it would mark messages unknown and pause for a gateway that was never asked.
    if isinstance(exc, requests.exceptions.InvalidHeader | UnicodeEncodeError):
        return ConfigError(
            "The WSAPME token in the settings cannot be sent: it holds a space, line break or "
            "other character a web request cannot carry. Copy WSAPME_TOKEN again, on its own."
        )
    # Also raised while the request is built (the same type read from an answer is not one).
    # A look-up's body holds the send's stored data: that message alone cannot be asked about,
    # and a settings error would stop polling for every message behind it.
    if isinstance(exc, requests.exceptions.InvalidJSONError) and not isinstance(
        exc, requests.exceptions.JSONDecodeError
    ):
        if sending:
            return ConfigError("The message could not be put into a request to WSAPME, so it was not sent.")
        return GatewayError("This message's saved details could not be put into a request, so WSAPME "
                            "was not asked about it.")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
        return ConfigError("The WSAPME address in the settings is not a valid web address.")
    if isinstance(exc, requests.exceptions.InvalidSchema):
        return ConfigError("The WSAPME address in the settings must start with https://.")
    if isinstance(exc, requests.ConnectTimeout):
        return unreachable("the connection timed out", host=host, sending=sending)
    if isinstance(exc, requests.Timeout):
        return unknown_outcome("no answer in time after the request was sent", sending=sending)
    if isinstance(exc, requests.exceptions.SSLError) and not failed_handshake(exc):
        return unknown_outcome("the secure connection broke before the answer came", sending=sending)
    if isinstance(exc, requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return unreachable("the secure connection could not be set up", host=host, sending=sending)
    if isinstance(exc, requests.ConnectionError):
        reason = connect_failure(exc)
        if reason is not None:
            return unreachable(reason, host=host, sending=sending)
        return unknown_outcome("the connection dropped before the answer came", sending=sending)
    return unknown_outcome("the answer was cut off", sending=sending)


def failed_handshake(exc: requests.exceptions.SSLError) -> bool:
    """Whether a TLS failure came from setting up the connection, before any request was
    written. A failure while reading the answer (the server reset the connection after the
    request, or sent a damaged record) raises the same exception type, so OpenSSL's reason
    decides; a reason not known to be the handshake's counts as "may have gone out".
    """
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(cause, Urllib3SSLError):
        cause = cause.args[0] if cause.args else None
    if isinstance(cause, ssl.SSLCertVerificationError):
        return True
    return isinstance(cause, ssl.SSLError) and getattr(cause, "reason", None) in HANDSHAKE_FAILURES


def connect_failure(exc: requests.ConnectionError) -> str | None:
    """Why a connection could not be made, or None when the failure came after it was made."""
    cause = exc.args[0] if exc.args else None
    if isinstance(cause, MaxRetryError):
        cause = cause.reason
    if isinstance(cause, NameResolutionError):
        return "the address could not be found"
    if isinstance(cause, NewConnectionError):
        if isinstance(cause.__cause__, ConnectionRefusedError):
            return "connection refused"
        return "could not connect"
    if isinstance(cause, ConnectTimeoutError):
        return "the connection timed out"
    return None


def raw_text(text: str, *, secret: str | None) -> str:
    return scrub(text[:MAX_RAW_TEXT_CHARS], secret)
