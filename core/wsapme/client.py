"""The WSAPME client: send a text, look up a message's status, check the device."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from core.errors import ConfigError, GatewayError
from core.wsapme.answers import (
    AckNumbering,
    DeviceStatus,
    SendResult,
    StatusResult,
    dig,
    is_success,
    parse_device_answer,
    parse_send_answer,
    parse_status_answer,
)
from core.wsapme.failures import (
    AUTH_WORDS,
    OFFLINE_WORDS,
    UNKNOWN_DEVICE_WORDS,
    error_from_exception,
    error_from_http_status,
    gateway_reason,
    raw_text,
    refusal_from_body,
    scrub,
    unknown_outcome,
)

if TYPE_CHECKING:
    from core.config import Settings

log = logging.getLogger(__name__)

# Refusals that say nothing about the message looked up and would answer every look-up the
# same way: a refused token, an offline or unknown device. Raised, so polling stops, instead
# of reading as "unknown" for each message (which would also back each one off).
LOOKUP_STOPPING_WORDS = AUTH_WORDS + OFFLINE_WORDS + UNKNOWN_DEVICE_WORDS

TOKEN_HEADER = "x-wsapme-token"
SANDBOX_TOKEN = "sandbox"


class WsapmeClient:
    """One gateway account and device. Raises core.errors.GatewayError subclasses, never
    requests' own exceptions, and never retries: whether to retry is the caller's decision.
    """

    def __init__(
        self,
        *,
        token: str,
        device: str,
        api_url: str,
        master_url: str,
        send_path: str = "/v1/sendMessage2",
        status_path: str = "/v1/getMessageStatus",
        message_info_path: str = "/api/messageInfo",
        device_path: str = "/v1/getDevice",
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        ack_numbering: AckNumbering = "baileys",
        session: requests.Session | None = None,
    ) -> None:
        if not token:
            raise ConfigError("The WSAPME token is empty: set WSAPME_TOKEN in the settings.")
        self._token = token
        self.device = str(device)
        self.api_url = api_url.rstrip("/")
        self.master_url = master_url.rstrip("/")
        self.send_path = send_path
        self.status_path = status_path
        self.message_info_path = message_info_path
        self.device_path = device_path
        self.timeout = (connect_timeout, read_timeout)
        self.ack_numbering: AckNumbering = ack_numbering
        self.session = session or requests.Session()

    @classmethod
    def from_settings(cls, settings: Settings, *, session: requests.Session | None = None) -> WsapmeClient:
        """A client for the configured account; in sandbox mode any token suits the simulator."""
        token = settings.wsapme_token.get_secret_value() if settings.wsapme_token else ""
        return cls(
            token=token or SANDBOX_TOKEN,
            device=settings.wsapme_device,
            api_url=settings.wsapme_api_url,
            master_url=settings.wsapme_master_url,
            send_path=settings.wsapme_send_path,
            status_path=settings.wsapme_status_path,
            message_info_path=settings.wsapme_message_info_path,
            device_path=settings.wsapme_device_path,
            connect_timeout=settings.wsapme_connect_timeout,
            read_timeout=settings.wsapme_read_timeout,
            ack_numbering=settings.wsapme_ack_numbering,
            session=session,
        )

    def __repr__(self) -> str:
        return (
            f"WsapmeClient(api_url={self.api_url!r}, master_url={self.master_url!r}, "
            f"device={self.device!r}, token='***')"
        )

    def send_text(
        self, *, to: str, message: str, priority: str | None = None, device: str | None = None
    ) -> SendResult:
        """Hand one text to the gateway, from `device` (the configured one unless given). Raises
        a GatewayError whose `accepted` says whether the gateway certainly did not take it
        (False) or might have (None).
        """
        device = device or self.device
        payload: dict[str, Any] = {"device": device, "to": to, "message": message}
        if priority is not None:
            payload["priority"] = priority
        response = self._post(self.api_url, self.send_path, payload, sending=True)
        body = self._checked_body(response, sending=True, device=device)
        if not isinstance(body, dict):
            raise unknown_outcome("its answer could not be read", raw=self._raw(response))
        if is_success(body) is False:
            raise refusal_from_body(body, device=device)
        result = parse_send_answer(body, numbering=self.ack_numbering)
        if result is None:
            raise unknown_outcome("it answered without a message id", raw=body)
        return result

    def message_status(
        self, *, message_id: str, data: dict[str, Any] | None = None, to: str | None = None
    ) -> StatusResult | None:
        """The gateway's current status for a sent message, or None when it does not say.

        Asks the status call by message id first; when that gives nothing and the send's
        stored `data` is at hand, asks messageInfo on the master host with it.
        """
        result = None
        if self.status_path:
            body = {"device": self.device, "messageId": message_id}
            result = self._lookup(self.api_url, self.status_path, body, lookup="status")
        if result is None and data is not None and self.message_info_path:
            body = {"id_device": self.device, "jid": _jid(to, data), "messages": data}
            result = self._lookup(self.master_url, self.message_info_path, body, lookup="message_info")
        return result

    def device_status(self) -> DeviceStatus:
        """Whether the linked device is connected, for the health page."""
        response = self._post(self.api_url, self.device_path, {"device": self.device})
        body = self._checked_body(response, sending=False)
        if not isinstance(body, dict):
            raise unknown_outcome(
                "its device answer could not be read", raw=self._raw(response), sending=False
            )
        self._raise_if_token_refused(body)
        return parse_device_answer(body)

    def _lookup(self, base: str, path: str, payload: dict[str, Any], *, lookup: str) -> StatusResult | None:
        response = self._post(base, path, payload)
        if response.status_code == 404:  # this gateway does not offer that look-up
            return None
        body = self._checked_body(response, sending=False)
        self._raise_if_refused(body, words=LOOKUP_STOPPING_WORDS)
        return parse_status_answer(body, lookup=lookup, numbering=self.ack_numbering)

    def _raise_if_token_refused(self, body: object) -> None:
        """The device answer reads an offline device as "disconnected", but a bad token must
        stop the caller."""
        self._raise_if_refused(body, words=AUTH_WORDS)

    def _raise_if_refused(self, body: object, *, words: tuple[str, ...]) -> None:
        """Raise the refusal when the gateway said no in one of these words; other refusals
        are left to the caller's reading (a look-up reads them as "unknown")."""
        if not isinstance(body, dict) or is_success(body) is not False:
            return
        reason = (gateway_reason(body) or "").lower()
        if any(w in reason for w in words):
            raise refusal_from_body(body, device=self.device)

    def _post(
        self, base: str, path: str, payload: dict[str, Any], *, sending: bool = False
    ) -> requests.Response:
        url = base + path
        started = time.monotonic()
        failure: GatewayError | ConfigError
        try:
            response = self.session.post(
                url,
                json=payload,
                headers={TOKEN_HEADER: self._token},
                timeout=self.timeout,
                allow_redirects=False,
            )
        # A header value outside Latin-1 fails as the request is written out, not as
        # requests checks it, so it comes as a bare UnicodeEncodeError.
        except (requests.RequestException, UnicodeEncodeError) as exc:
            failure = error_from_exception(exc, host=_host(url), sending=sending)
            log.warning(
                "POST %s failed after %.2fs: %s", path, time.monotonic() - started, type(exc).__name__
            )
        else:
            log.debug("POST %s -> %s in %.2fs", path, response.status_code, time.monotonic() - started)
            return response
        # Raised outside the except block so the requests exception, which holds the
        # prepared request and its token header, is not kept as the error's context.
        raise failure

    def _checked_body(
        self, response: requests.Response, *, sending: bool, device: str | None = None
    ) -> object:
        """The answer's JSON, token masked (None when unreadable), after raising for an
        HTTP error status; an error names `device`, the one the call was for (the configured
        one unless given)."""
        body = scrub(_json_or_none(response), self._token)
        failure = error_from_http_status(
            status=response.status_code,
            headers=response.headers,
            body=body if body is not None else self._raw(response),
            device=device or self.device,
            sending=sending,
        )
        if failure is not None:
            raise failure
        return body

    def _raw(self, response: requests.Response) -> str:
        return raw_text(response.text, secret=self._token)


def _json_or_none(response: requests.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _jid(to: str | None, data: dict[str, Any]) -> str | None:
    """The recipient's JID for messageInfo: from `to` when given, else from the stored data."""
    if to:
        return to if "@" in to else f"{to.lstrip('+')}@s.whatsapp.net"
    remote = dig(data, "key.remoteJid")
    return remote if isinstance(remote, str) else None


def _host(url: str) -> str:
    return urlsplit(url).hostname or url
