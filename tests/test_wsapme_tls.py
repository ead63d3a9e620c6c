"""The WSAPME client over TLS: a failure setting up the secure connection proves the message
never left, while one after the request was written may have sent it and must never be retried.

A real TLS server on loopback (certificates from `trustme`) plays a gateway that fails at each
point in turn.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import trustme

from core.errors import GatewayUnreachable, OutcomeUnknown
from core.wsapme import WsapmeClient

TO = "60123456789"
ANSWER = b'{"success": true, "data": {"key": {"id": "3EB0TLS"}, "messageTimestamp": 1764000000}}'


@dataclass
class TlsGateway:
    """One connection's worth of gateway, failing as `mode` says once the request is read."""

    mode: str
    port: int = 0
    received: bytes = b""
    handshake_done: bool = False


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@contextlib.contextmanager
def tls_gateway(ca: trustme.CA, mode: str) -> Iterator[TlsGateway]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    gateway = TlsGateway(mode)
    listener = socket.create_server(("127.0.0.1", 0))
    gateway.port = listener.getsockname()[1]

    def serve() -> None:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        with raw:
            raw.settimeout(5)
            if mode == "plain_http":  # not TLS at all: an http:// server behind an https:// address
                gateway.received = raw.recv(65536)
                raw.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                return
            try:
                tls = context.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client gave up on the handshake
            gateway.handshake_done = True
            gateway.received = _read_request(tls)
            if mode == "answer":
                tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                            b"content-length: %d\r\n\r\n" % len(ANSWER) + ANSWER)
                tls.close()
            elif mode == "reset_after_request":
                tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                tls.close()
            elif mode == "damaged_record":
                plain = socket.socket(fileno=tls.detach())
                plain.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)  # application data it cannot decrypt
                with contextlib.suppress(OSError):  # the client resets it once it gives up
                    plain.recv(1)
                plain.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        listener.close()
        thread.join(5)


def _read_request(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = tls.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.lower().split(b"\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length")), 0)
    while len(body) < length:
        chunk = tls.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def client_for(port: int, ca_file: str | None) -> WsapmeClient:
    """A client trusting the test CA, or only the system's CAs when `ca_file` is None."""
    session = requests.Session()
    session.trust_env = False  # or REQUESTS_CA_BUNDLE, when set, would outrank `verify`
    session.verify = ca_file or True
    return WsapmeClient(
        token="tls-test-token",
        device="5850",
        api_url=f"https://127.0.0.1:{port}",
        master_url=f"https://127.0.0.1:{port}",
        connect_timeout=2,
        read_timeout=2,
        session=session,
    )


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA) -> Iterator[str]:
    with ca.cert_pem.tempfile() as path:
        yield path


def test_a_trusted_gateway_over_tls_takes_the_message(ca: trustme.CA, ca_file: str) -> None:
    with tls_gateway(ca, "answer") as gateway:
        result = client_for(gateway.port, ca_file).send_text(to=TO, message="hi")
    assert result.message_id == "3EB0TLS"
    assert TO.encode() in gateway.received


@pytest.mark.parametrize("mode", ["reset_after_request", "damaged_record"])
def test_a_secure_connection_breaking_after_the_request_is_an_unknown_outcome(
    ca: trustme.CA, ca_file: str, mode: str
) -> None:
    with tls_gateway(ca, mode) as gateway:
        client = client_for(gateway.port, ca_file)
        with pytest.raises(OutcomeUnknown) as caught:
            client.send_text(to=TO, message="hi")
    # The gateway had the whole message: retrying would send it twice.
    assert TO.encode() in gateway.received
    assert caught.value.accepted is None and not caught.value.retryable
    assert "will not be sent again" in caught.value.message
    assert "tls-test-token" not in caught.value.message


def test_an_untrusted_certificate_means_the_message_never_left(ca: trustme.CA) -> None:
    with tls_gateway(ca, "answer") as gateway:
        client = client_for(gateway.port, None)  # the system's CAs only
        with pytest.raises(GatewayUnreachable) as caught:
            client.send_text(to=TO, message="hi")
    assert gateway.received == b""
    assert caught.value.accepted is False and caught.value.retryable
    assert "secure connection could not be set up" in caught.value.message


def test_an_https_address_for_a_plain_http_server_means_the_message_never_left(
    ca: trustme.CA, ca_file: str
) -> None:
    with tls_gateway(ca, "plain_http") as gateway:
        client = client_for(gateway.port, ca_file)
        with pytest.raises(GatewayUnreachable) as caught:
            client.send_text(to=TO, message="hi")
    # What reached the server was the start of a handshake, never the request.
    assert TO.encode() not in gateway.received
    assert caught.value.accepted is False and caught.value.retryable


def test_a_look_up_whose_secure_connection_breaks_says_to_try_again(ca: trustme.CA, ca_file: str) -> None:
    with tls_gateway(ca, "reset_after_request") as gateway:
        client = client_for(gateway.port, ca_file)
        with pytest.raises(OutcomeUnknown, match="try again later"):
            client.device_status()
