"""Test helpers: the gateway simulator on a free loopback port, and a real webhook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from core.simulator import Simulator, start_simulator
from core.wsapme import WsapmeClient

TEST_TOKEN = "test-token-5f2c9d1e7a"


@contextmanager
def running_simulator(**options: Any) -> Iterator[Simulator]:
    """A fast simulator on 127.0.0.1 and a free port, stopped afterwards."""
    options.setdefault("mode", "fast")
    options.setdefault("seed", 7)
    sim = start_simulator(host="127.0.0.1", port=0, **options)
    try:
        yield sim
    finally:
        sim.stop()


def client_for(sim: Simulator, **options: Any) -> WsapmeClient:
    """A real client aimed at the simulator, with short timeouts suited to tests."""
    options.setdefault("token", TEST_TOKEN)
    options.setdefault("device", "5850")
    options.setdefault("connect_timeout", 1.0)
    options.setdefault("read_timeout", 2.0)
    return WsapmeClient(api_url=sim.url, master_url=sim.url, **options)


@dataclass(frozen=True)
class Received:
    """One webhook post as it arrived."""

    content_type: str
    body: bytes

    def parsed(self) -> Any:
        """The JSON value, or the form fields as a dict."""
        if self.content_type.startswith("application/x-www-form-urlencoded"):
            return dict(parse_qsl(self.body.decode()))
        return json.loads(self.body)


class WebhookReceiver:
    """A real HTTP server that keeps every posted body; it can fail the first N posts."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._fail_next = 0
        self._fail_status = 500
        self.attempts = 0  # every post, answered 2xx or not
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhooks/wsapme/s3cret"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def fail_next(self, count: int, *, status: int = 500) -> None:
        with self._lock:
            self._fail_next, self._fail_status = count, status

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, count: int, *, timeout: float = 5.0) -> list[Received]:
        """At least `count` posts, or an AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self._received)} webhooks came, {count} expected")
                self._lock.wait(left)
            return list(self._received)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, content_type: str, body: bytes) -> int:
        with self._lock:
            self.attempts += 1
            if self._fail_next > 0:
                self._fail_next -= 1
                return self._fail_status
            self._received.append(Received(content_type, body))
            self._lock.notify_all()
            return 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver._record(self.headers.get("Content-Type", ""), body)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def running_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()
