"""The webhook endpoint: check the secret, store the raw body durably, then parse and apply it.

The gateway gets 200 once the body is stored (whatever happens next: it stays in the
inbox for replay) and 503 when it cannot be stored, so that it tries again.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.config import Settings, get_settings
from core.db import engine_for, transaction
from core.webhook.inbox import WebhookRules, process_entry, replay_for_message_ids, replay_waiting, store_raw
from core.webhook.secret import WEBHOOK_PATH, secret_matches

log = logging.getLogger(__name__)

ROUTE_PATH = WEBHOOK_PATH + "{secret}"
# "Cannot store" covers the server being away, a pool with no free connection, and a
# SQLite file whose folder cannot be written.
STORAGE_ERRORS = (DBAPIError, PoolTimeout, OSError)
APPLY_TRIES = 3  # PostgreSQL may pick a concurrent request as a deadlock victim
REPLAY_EVERY_SECONDS = 30.0
_SECRET_IN_PATH_RE = re.compile(re.escape(WEBHOOK_PATH) + r"[^/?#\s\"']*")


class Refusal(enum.Enum):
    WRONG_SECRET = "wrong secret"
    TOO_LARGE = "too large"


def webhook_routes() -> list[Route]:
    """The routes to serve beside the pages (core.server.routes() adds them)."""
    redact_access_log()
    return [Route(ROUTE_PATH, receive_webhook, methods=["POST"])]


async def receive_webhook(request: Request) -> Response:
    settings = get_settings()
    body = await read_body(request, limit=settings.webhook_max_bytes)
    try:
        stored = await run_in_threadpool(
            check_and_store,
            settings=settings,
            candidate=request.path_params.get("secret", ""),
            body=body,
            content_type=request.headers.get("content-type"),
        )
    except STORAGE_ERRORS as exc:
        log.warning("webhook not stored, the database is unavailable (%s)", describe(exc))
        return JSONResponse(
            {"ok": False, "error": "the database is unavailable; try again"},
            status_code=503, headers={"Retry-After": "30"},
        )
    if stored is Refusal.WRONG_SECRET:
        # The same answer as for a path that does not exist.
        raise HTTPException(status_code=404)
    if stored is Refusal.TOO_LARGE:
        limit = settings.webhook_max_bytes
        return JSONResponse({"ok": False, "error": f"body over {limit} bytes"}, status_code=413)
    await run_in_threadpool(apply_stored, settings=settings, inbox_id=stored)
    return JSONResponse({"ok": True}, background=BackgroundTask(replay_now_and_then, settings))


async def read_body(request: Request, *, limit: int) -> bytes | None:
    """The body, or None as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def check_and_store(
    *, settings: Settings, candidate: str, body: bytes | None, content_type: str | None
) -> int | Refusal:
    """One committed transaction: the secret checked, then the raw body stored."""
    with transaction(engine_for(settings.sqlalchemy_url)) as session:
        if not secret_matches(session, settings=settings, candidate=candidate):
            return Refusal.WRONG_SECRET
        if body is None:
            return Refusal.TOO_LARGE
        return store_raw(session, body=body, content_type=content_type)


def apply_stored(*, settings: Settings, inbox_id: int) -> None:
    """Parse and apply a stored body in a second transaction. Never raises: the body is
    already durable, and the gateway must not resend it because applying failed."""
    engine = engine_for(settings.sqlalchemy_url)
    rules = WebhookRules.from_settings(settings)
    for attempt in range(1, APPLY_TRIES + 1):
        try:
            with transaction(engine) as session:
                outcome = process_entry(session, inbox_id=inbox_id, rules=rules)
            break
        except STORAGE_ERRORS as exc:
            if attempt == APPLY_TRIES:
                log.warning("webhook %s stored, not applied yet (%s); replay will retry",
                            inbox_id, describe(exc))
                return
        except Exception:  # a bug must not cost the gateway's event: it stays in the inbox
            log.exception("webhook %s stored but could not be applied", inbox_id)
            return
    if outcome is not None and outcome.waiting_for:
        _look_again(engine, rules=rules, keys=outcome.waiting_for)


def _look_again(engine: Engine, *, rules: WebhookRules, keys: tuple[str, ...]) -> None:
    # The send may have stored its message id, and already replayed, while this entry was
    # being marked waiting: one more look after our commit closes that gap.
    try:
        with transaction(engine) as session:
            replay_for_message_ids(session, message_ids=keys, rules=rules)
    except STORAGE_ERRORS as exc:
        log.warning("second look at waiting webhook failed (%s)", describe(exc))


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


def replay_now_and_then(settings: Settings) -> None:
    """Webhook traffic drives the replay of waiting entries, at most every 30 seconds."""
    if not _replay_clock.due():
        return
    try:
        replay_waiting(engine_for(settings.sqlalchemy_url), rules=WebhookRules.from_settings(settings))
    except STORAGE_ERRORS as exc:
        log.warning("replaying waiting webhooks failed (%s)", describe(exc))


def describe(exc: BaseException) -> str:
    """An error in a few words: no SQL parameters (they hold bodies and secrets)."""
    original = getattr(exc, "orig", None) or exc
    first_line = (str(original).splitlines() or [""])[0][:200]
    return f"{type(original).__name__}: {first_line}" if first_line else type(original).__name__


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
