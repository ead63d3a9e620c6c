"""The webhook endpoint: check the secret, store the raw body durably, answer.

The gateway gets 200 once the body is stored, and the intake (core.webhook.intake) parses
and applies it a moment later, together with whatever else arrived; an entry that cannot
be applied stays in the inbox for replay. It gets 503 when the body cannot be stored, so
that it tries again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable

import psycopg
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core.config import Settings, get_settings
from core.db import engine_for, reading, transaction
from core.models import WebhookInbox, utcnow
from core.webhook.inbox import REFUSED, InboxState, WebhookRules, error_words, replay_waiting
from core.webhook.intake import STORAGE_ERRORS, intake_for
from core.webhook.secret import WEBHOOK_PATH, AcceptedSecrets, remembered_secrets, secret_made

log = logging.getLogger(__name__)

ROUTE_PATH = WEBHOOK_PATH + "{secret}"
# How long a post waits for its body to be committed before it is told to come back.
STORE_TIMEOUT_SECONDS = 20.0
REPLAY_EVERY_SECONDS = 30.0
_STORED = b'{"ok":true}'
_STORED_LENGTH = str(len(_STORED)).encode()
# Of a body refused for its size, what is kept to show what it was.
REFUSED_KEPT_BYTES = 4096
# The webhook's path and all that follows it, however it was typed ("/Webhooks//wsapme",
# "[secret]" pasted along, the secret as a query): none of it is logged.
_SECRET_IN_PATH_RE = re.compile(r"/+webhooks?/+wsapme[^\s\"']*", re.IGNORECASE)


def webhook_routes() -> list[Route]:
    """The routes to serve beside the pages (core.server.routes() adds them)."""
    redact_access_log()
    return [_ROUTE]


class WebhookEndpoint:
    """The webhook as a plain ASGI app: no response object is built for a post, whose answer
    is the same few bytes every time."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive_webhook(scope, receive, send, secret=scope["path_params"]["secret"])


class WebhookDoor:
    """ASGI middleware: a post to the webhook with a secret this process has accepted lately
    goes straight to it, past the layers the dashboard's pages need (Streamlit's path checks,
    session cookie and compression, the routing of its many routes): about a seventh of the
    server's time per event. Every other request, a wrong or new secret among them, goes on
    to the app, whose webhook route answers it the same way."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        secret = _webhook_secret(scope)
        if secret is not None and remembered_secrets(get_settings()).matches(secret):
            await receive_webhook(scope, receive, send, secret=secret, accepted=True)
            return
        await self.app(scope, receive, send)


_ROUTE = Route(ROUTE_PATH, WebhookEndpoint(), methods=["POST"])


def _webhook_secret(scope: Scope) -> str | None:
    """The secret of a post the webhook's route would take (its path, below the app's root
    path, and its method, as the route itself matches them); None for any other request."""
    match, child = _ROUTE.matches(scope)
    return child["path_params"]["secret"] if match is Match.FULL else None


async def receive_webhook(
    scope: Scope, receive: Receive, send: Send, *, secret: str, accepted: bool = False
) -> None:
    """Answer a post to the webhook. `accepted`: the secret was matched already (the door)."""
    settings = get_settings()
    limit = settings.webhook_max_bytes
    request = Request(scope, receive)
    try:
        if not (accepted or await secret_accepted(settings, secret)):
            # The same answer as for a path that does not exist; the body is not read.
            turned_away.add()
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return
        body, over = await read_body(request, limit=limit)
        if body is None:
            return  # the gateway hung up before the body was sent: nothing to store or answer
        if over:
            await run_in_threadpool(keep_refused, settings, body, request.headers.get("content-type"),
                                    request.headers.get("content-length", ""))
            await JSONResponse({"ok": False, "error": f"body over {limit} bytes"},
                               status_code=413)(scope, receive, send)
            return
        intake = intake_for(settings.sqlalchemy_url)
        await intake.save(body, request.headers.get("content-type"), timeout=STORE_TIMEOUT_SECONDS)
    except (*STORAGE_ERRORS, TimeoutError) as exc:
        log.warning("webhook not stored, the database is unavailable (%s)", describe(exc))
        await JSONResponse(
            {"ok": False, "error": "the database is unavailable; try again"},
            status_code=503, headers={"Retry-After": "30"},
        )(scope, receive, send)
        return
    # Durable now: the intake applies it in a moment, together with whatever came meanwhile.
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/json"), (b"content-length", _STORED_LENGTH)]})
    await send({"type": "http.response.body", "body": _STORED})
    if _replay_clock.due():
        await run_in_threadpool(replay_waiting_now, settings)


class TurnedAway:
    """Posts turned away for a wrong secret: WSAPME still posting to an address rotated out
    past its grace, or one mistyped when it was pasted, loses every event (it does not retry a
    404), and nothing else would say so. Logged at most once every `every` seconds with how many
    since (never the secret tried), and counted for Settings & health over the last hour. In
    this process only, which is the dashboard's server where it serves the webhook."""

    def __init__(self, *, every: float = 60.0, kept: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._every, self._clock = every, clock
        self._lock = threading.Lock()
        self._times: deque[dt.datetime] = deque(maxlen=kept)  # anyone can post: a bounded memory
        self._unsaid, self._said_at = 0, -float("inf")

    def add(self) -> None:
        with self._lock:
            self._times.append(utcnow())
            self._unsaid += 1
        self.say_unsaid()

    def say_unsaid(self) -> None:
        """Log how many were turned away since the last line, if any and if that line was at
        least `every` seconds ago. The server's background loop calls it every few seconds,
        so the last posts of a burst are said too, not only when another comes."""
        with self._lock:
            if not self._unsaid or self._clock() - self._said_at < self._every:
                return
            count, self._unsaid, self._said_at = self._unsaid, 0, self._clock()
        log.warning("%s to the webhook with a wrong secret turned away (404): if WSAPME sends them, "
                    "paste the address on Settings & health into its webhook settings",
                    "a post" if count == 1 else f"{count:,} posts")

    def forget(self) -> None:
        with self._lock:
            self._times.clear()
            self._unsaid, self._said_at = 0, -float("inf")

    def lately(self, within: dt.timedelta = dt.timedelta(hours=1)) -> tuple[int, dt.datetime | None]:
        """How many were turned away within `within`, and when the last was."""
        since = utcnow() - within
        with self._lock:
            recent = [at for at in self._times if at > since]
        return len(recent), (recent[-1] if recent else None)


turned_away = TurnedAway()


async def secret_accepted(settings: Settings, candidate: str) -> bool:
    remembered = remembered_secrets(settings)
    if remembered.matches(candidate):
        return True
    if not remembered.worth_asking():
        return False
    return await run_in_threadpool(_check_secret, remembered, settings, candidate)


def _check_secret(remembered: AcceptedSecrets, settings: Settings, candidate: str) -> bool:
    # Read without the write lock (SQLite has one for the whole file): a wrong secret must not
    # hold up the worker and the webhook's storage. Only before any secret is made (the
    # server's start makes it) does the check make and keep one, in a transaction: a reading
    # session keeps nothing.
    engine = engine_for(settings.sqlalchemy_url)
    # Before the first statement, which takes SQLite's snapshot: a rotation committed after it
    # spoils what this read remembers, though the read cannot see the new secret.
    forgotten = remembered.forgotten()
    with reading(engine) as session:
        if secret_made(session, settings=settings):
            return remembered.refresh_and_match(session, settings=settings, candidate=candidate,
                                                forgotten=forgotten)
    with transaction(engine) as session:
        return remembered.refresh_and_match(session, settings=settings, candidate=candidate,
                                            forgotten=forgotten)


async def read_body(request: Request, *, limit: int) -> tuple[bytes | None, bool]:
    """The body and False; or, once it is known to be over `limit` bytes, its first `limit`
    bytes and True (the rest is not read); None if the client hung up first."""
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                chunks.append(chunk[:len(chunk) - (size - limit)])
                return b"".join(chunks), True
            chunks.append(chunk)
    except ClientDisconnect:
        return None, False
    declared = request.headers.get("content-length", "")
    return b"".join(chunks), declared.isdigit() and int(declared) > limit


def keep_refused(settings: Settings, body: bytes, content_type: str | None, declared: str) -> None:
    """A body refused for its size is set aside (`REFUSED`), its start kept, and logged: what
    the gateway meant to say is lost (it was told so, 413), but not without a trace. The same
    body posted again within the hour (a gateway retrying) is not kept twice."""
    kept = body[:REFUSED_KEPT_BYTES]
    size = f"{int(declared):,} bytes" if declared.isdigit() else "of unknown length"
    detail = (f"Refused: the body ({size}) was over WEBHOOK_MAX_BYTES ({settings.webhook_max_bytes:,} "
              f"bytes). Its first {len(kept):,} bytes are kept here "
              f"(sha256 {hashlib.sha256(kept).hexdigest()[:16]}).")
    log.warning("a webhook body over WEBHOOK_MAX_BYTES (%s) was refused and set aside", size)
    try:
        with transaction(engine_for(settings.sqlalchemy_url)) as session:
            again = session.scalar(select(WebhookInbox.id).where(
                WebhookInbox.kind == REFUSED, WebhookInbox.detail == detail,
                WebhookInbox.received_at > utcnow() - dt.timedelta(hours=1)).limit(1))
            if again is None:
                session.add(WebhookInbox(body=kept, content_type=(content_type or "")[:255] or None,
                                         state=InboxState.UNPARSEABLE, kind=REFUSED, detail=detail,
                                         attempts=0, processed_at=utcnow()))
    except STORAGE_ERRORS as exc:
        log.warning("the refused webhook body could not be set aside (%s)", describe(exc))


class _Every:
    """True at most once per `seconds`, across threads."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._lock = threading.Lock()
        self._next = 0.0

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return False
            self._next = now + self._seconds
            return True


_replay_clock = _Every(REPLAY_EVERY_SECONDS)


def replay_waiting_now(settings: Settings) -> None:
    """Webhook traffic drives the replay of waiting entries, at most every 30 seconds."""
    try:
        replay_waiting(engine_for(settings.sqlalchemy_url), rules=WebhookRules.from_settings(settings))
    except STORAGE_ERRORS as exc:
        log.warning("replaying waiting webhooks failed (%s)", describe(exc))


def describe(exc: BaseException) -> str:
    """An error in a few words, as the inbox keeps them (`error_words`): never SQL or its
    parameters (they hold bodies and secrets), nor a secret."""
    if isinstance(exc, psycopg.OperationalError):
        # The event loop's own connection (core.webhook.intake) has no SQLAlchemy around it.
        exc = OperationalError(None, None, exc)
    return error_words(exc)


def redact_path(text: str) -> str:
    return _SECRET_IN_PATH_RE.sub(WEBHOOK_PATH + "[secret]", text)


class RedactWebhookSecret(logging.Filter):
    """Access logs print each request's path, which for the webhook holds the secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_path(a) if isinstance(a, str) else a for a in record.args)
        return True


def redact_access_log() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactWebhookSecret) for f in logger.filters):
            logger.addFilter(RedactWebhookSecret())
