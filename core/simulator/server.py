"""The simulator over real HTTP: a threaded server in the background, started and stopped in-process."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from core.simulator import control, shapes
from core.simulator.faults import FaultKind, make_fault
from core.simulator.gateway import GatewayConfig, GatewayPaths, SimulatedGateway
from core.simulator.plan import TIMINGS, Mode, Proportions
from core.simulator.state import Emitted, SentMessage
from core.simulator.wire import Answer, Request, json_answer
from core.wsapme.answers import AckNumbering

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
IDLE_CONNECTION_SECONDS = 30  # a keep-alive connection with nothing to say is closed after this
STOP_TIMEOUT = 5.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], gateway: SimulatedGateway) -> None:
        self.gateway = gateway
        self.stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer's own looks up the host's full name, which can hang with no DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_open_connections(self) -> None:
        """Wake every handler blocked on a keep-alive connection so it ends now."""
        with self._open_lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's session expects
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server
    timeout = IDLE_CONNECTION_SECONDS

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("simulator: " + format, *args)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._write(json_answer(shapes.failure("Request too large"), status=413))
            return
        request = Request(
            method=method,
            path=urlsplit(self.path).path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        self._write(self._answer(request))

    def _answer(self, request: Request) -> Answer:
        gateway = self.server.gateway
        if request.path.startswith(control.PREFIX):
            return control.handle_control(gateway, request)
        answer = gateway.handle(request)
        return answer or json_answer(shapes.failure("Not found"), status=404)

    def _write(self, answer: Answer) -> None:
        # A slow answer ends early when the simulator stops, so stopping stays quick.
        if answer.delay > 0 and self.server.stopping.wait(answer.delay):
            answer = Answer(drop=True)
        if answer.drop:
            self._drop()
            return
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body[: answer.cut_after])
        except OSError:  # the caller stopped waiting (a slow answer past its timeout)
            self.close_connection = True
        if answer.cut_after is not None:
            self._drop()

    def _drop(self) -> None:
        """Close the connection with the request read and no answer written."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class Simulator:
    """A running simulated WSAPME gateway. Point both the API and the master URL at `url`."""

    def __init__(self, *, server: _Server, mode: Mode) -> None:
        self._server = server
        self.gateway = server.gateway
        self.mode = mode
        host, port = server.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"
        self._stopped = False
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sim-http", daemon=True
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"Simulator(url={self.url!r}, mode={self.mode!r})"

    def __enter__(self) -> Simulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and posting; safe to call twice. Events not yet due are dropped."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stopping.set()
        self._server.shutdown()
        self._server.close_open_connections()
        self._server.server_close()
        self._thread.join(STOP_TIMEOUT)
        self.gateway.poster.stop(timeout=STOP_TIMEOUT)

    # Configuration while running

    def set_webhook_url(self, url: str | None) -> None:
        with self.gateway.lock:
            self.gateway.config.webhook_url = url or None

    def set_webhook_shape(self, shape: str) -> None:
        """One of ACK_SHAPES for every webhook from now on, or "mixed"."""
        with self.gateway.lock:
            self.gateway.config.webhook_shape = control.check_shape(shape)

    def set_answer_style(self, **fields: Any) -> None:
        """Change how answers are written, e.g. id_place="data.id", timestamp="number_ms"."""
        with self.gateway.lock:
            style = dataclasses.replace(self.gateway.config.answer_style, **fields)
            self.gateway.config.answer_style = style

    def set_fault(
        self,
        kind: FaultKind | str,
        *,
        times: int | None = None,
        endpoint: str | None = None,
        **options: Any,
    ) -> None:
        """Misbehave on the next `times` matching requests (None: until cleared)."""
        self.gateway.faults.add(make_fault(kind, times=times, endpoint=endpoint, **options))

    def clear_faults(self) -> None:
        self.gateway.faults.clear()

    # What happened

    def sent_count(self, to: str) -> int:
        return self.gateway.state.sent_count(to)

    def sent_messages(self) -> list[SentMessage]:
        return self.gateway.state.sent_messages()

    def emitted(self) -> Emitted:
        return self.gateway.state.emitted()

    def stats(self) -> dict[str, Any]:
        return self.gateway.state.stats()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every scheduled webhook has fired and been posted (or given up)."""
        return self.gateway.poster.wait_idle(timeout)


def start_simulator(
    *,
    port: int = 0,
    webhook_url: str | None = None,
    mode: Mode = "fast",
    seed: int | str | None = None,
    host: str = "127.0.0.1",
    proportions: Proportions | None = None,
    token: str | None = None,
    ack_numbering: AckNumbering = "baileys",
    webhook_shape: str = shapes.MIXED,
    answer_style: shapes.AnswerStyle | None = None,
    paths: GatewayPaths | None = None,
    max_webhook_attempts: int = 5,
) -> Simulator:
    """Start a simulated gateway on `host:port` (0: any free port) and return it running.

    `token` None accepts any non-empty token. `seed` makes ids, fates and shapes repeatable.
    """
    if mode not in TIMINGS:
        raise ValueError(f"mode must be fast or realistic, not {mode!r}")
    gateway = SimulatedGateway(
        config=GatewayConfig(
            webhook_url=webhook_url or None,
            webhook_shape=control.check_shape(webhook_shape),
            answer_style=answer_style or shapes.AnswerStyle(),
        ),
        paths=paths or GatewayPaths(),
        timing=TIMINGS[mode],
        proportions=proportions or Proportions(),
        seed=seed if seed is not None else secrets.randbits(64),
        token=token,
        ack_numbering=ack_numbering,
        max_webhook_attempts=max_webhook_attempts,
    )
    try:
        server = _Server((host, port), gateway)
    except OSError:
        gateway.poster.stop()
        raise
    return Simulator(server=server, mode=mode)
