"""Domain errors: what went wrong, in words a marketer can read, and whether to try again."""

from __future__ import annotations


class BlastError(Exception):
    """Base of every error the product raises on purpose.

    `message` is safe to show to a user: it never holds a secret or a stack trace.
    """

    retryable: bool = False
    http_status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(BlastError):
    """A setting is missing or wrong."""


class BadInput(BlastError):
    """Something a person typed or uploaded cannot be used."""


class BadCsv(BadInput):
    """A CSV file cannot be read at all."""


class NotFound(BlastError):
    http_status = 404


class StateConflict(BlastError):
    """An action does not fit the current state (for example resuming a finished blast)."""

    http_status = 409


class GatewayError(BlastError):
    """The gateway did not take the message, or we cannot tell whether it did.

    `accepted` is False when the answer proves the message was not accepted (safe to
    retry if `retryable`), and None when the outcome is unknown (never resend).
    `retry_after`: seconds the gateway asked to wait before trying again, when it said.
    """

    accepted: bool | None = False
    pauses_blast: bool = False
    http_status = 502

    def __init__(self, message: str, *, raw: object = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.raw = raw
        self.retry_after = retry_after


class GatewayRefused(GatewayError):
    """The gateway said no for this message (invalid number, message rejected)."""


class GatewayAuthError(GatewayError):
    """The token was refused: every further send would fail the same way."""

    pauses_blast = True


class DeviceOffline(GatewayError):
    """The WhatsApp device is not connected: sending must wait until it is."""

    pauses_blast = True


class RateLimited(GatewayError):
    """The gateway asked us to slow down."""

    retryable = True


class GatewayServerError(GatewayError):
    """The gateway answered with a server error: the message was not taken."""

    retryable = True


class GatewayUnreachable(GatewayError):
    """No connection could be made: the request never left, so trying again is safe."""

    retryable = True


class OutcomeUnknown(GatewayError):
    """The request left but no usable answer came back: the message may have been sent."""

    accepted = None


class ServerFailedMidSend(OutcomeUnknown):
    """The gateway failed while handling a send (HTTP 500 or 502): it may have passed the
    message on before it failed, and the next sends would likely fail the same way."""

    pauses_blast = True
