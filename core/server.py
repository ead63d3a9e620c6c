"""What runs beside the pages in one server process: startup, background services, routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from core.config import get_settings
from core.db import WaitStopped, connect_when_up, driver_says, ended_by_signals, engine_for, migrate

log = logging.getLogger(__name__)

# How this project's lines read in a log: when, how bad, from where (the command line's too).
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_stderr() -> None:
    """This project's log lines on stderr with LOG_FORMAT, from INFO up. `streamlit run` sets up
    no logging of Python's: its lines came without time, level or source, and INFO ones not at
    all. Left alone when logging has been set up already (uvicorn's own, or a test's)."""
    core = logging.getLogger("core")
    if core.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    core.addHandler(handler)
    core.setLevel(logging.INFO)


def lifespan_for(local_url: str) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """The server's lifespan: migrate, start the background services, stop them at the end.

    `local_url` is where this server answers on loopback: the sandbox gateway posts its
    webhooks there.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        from sqlalchemy.exc import InterfaceError, OperationalError

        from core.errors import ConfigError
        from core.services import start_services

        try:
            settings = get_settings()
            engine = engine_for(settings.sqlalchemy_url)  # a malformed DATABASE_URL stops here
            # The server down (waited for), a wrong password, a folder not there.
            with ended_by_signals() as stop:
                await asyncio.to_thread(connect_when_up, engine, patience=settings.database_wait_seconds,
                                        stop=stop)
        except (OperationalError, InterfaceError) as exc:
            raise _refused(ConfigError(
                "cannot use the database: check DATABASE_URL and that the database server is running "
                f"({driver_says(exc) or type(exc).__name__})")) from None
        except ConfigError as exc:
            raise _refused(exc) from None
        except WaitStopped:
            raise _refused(ConfigError("stopped while waiting for the database to answer")) from None
        try:
            migrate(engine)  # a migration that fails otherwise keeps its traceback: a defect to report
        except OperationalError as exc:  # the database opened but cannot be written: locked, read-only
            raise _refused(ConfigError(
                "cannot prepare the database: check that this server may write to it and that no other "
                f"program holds it ({driver_says(exc) or type(exc).__name__})")) from None
        stop = start_services(engine, settings=settings, local_url=local_url)
        log.info("server started (%s)", "sandbox gateway" if settings.sandbox else "WSAPME")
        try:
            yield
        finally:
            from core.webhook import intake

            if not await intake.finish():
                log.warning("stopping with webhooks stored but not applied; the next start applies them")
            stop()

    return lifespan


def _refused(exc: Exception) -> Exception:
    """Say in one line why the server cannot start, and leave the frames out of the log."""
    log.error("cannot start: %s", getattr(exc, "message", exc))  # the setting's name, never its value
    logging.getLogger("uvicorn.error").addFilter(without_refusal_trace)
    return exc


def without_refusal_trace(record: logging.LogRecord) -> bool:
    """A log filter: leaves out the traceback the server logs when a setting stops the start.
    The "cannot start" line before it says what is wrong, in words; the frames add nothing."""
    from core.errors import ConfigError

    text = record.getMessage().rstrip()
    refused = f"{ConfigError.__module__}.{ConfigError.__qualname__}:"
    return not (text.startswith("Traceback") and text.rpartition("\n")[2].startswith(refused))


def routes() -> list[Any]:
    """HTTP routes served beside the pages: the webhook, and a health check for monitors."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from core.webhook.route import webhook_routes

    async def healthz(_request: Any) -> JSONResponse:
        ok = await run_in_threadpool(_database_answers)
        return JSONResponse({"ok": ok}, status_code=200 if ok else 503)

    return [Route("/healthz", healthz, methods=["GET"]), *webhook_routes()]


def middleware() -> list[Any]:
    """ASGI middleware in front of the pages: accepted webhook posts are answered before
    anything the pages need (core.webhook.route.WebhookDoor)."""
    from starlette.middleware import Middleware

    from core.webhook.route import WebhookDoor

    return [Middleware(WebhookDoor)]


def _database_answers() -> bool:
    from sqlalchemy import text

    try:
        with engine_for(get_settings().sqlalchemy_url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means "not healthy"; the reason is in the server log
        log.warning("health check: the database did not answer", exc_info=True)
        return False
