"""What runs beside the pages in one server process: startup, background services, routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from core.config import get_settings
from core.db import engine_for, migrate

log = logging.getLogger(__name__)

# Background services register a start function returning a stop function.
_services: list[Callable[[], Callable[[], None]]] = []


def background_service(start: Callable[[], Callable[[], None]]) -> Callable[[], Callable[[], None]]:
    _services.append(start)
    return start


def startup() -> list[Callable[[], None]]:
    """Migrate, then start every background service; returns their stop functions."""
    settings = get_settings()
    migrate(engine_for(settings.sqlalchemy_url))
    stops = []
    for start in _services:
        stops.append(start())
    return stops


@contextlib.asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    stops = startup()
    log.info("server started (%s)", "sandbox" if get_settings().sandbox else "live gateway")
    try:
        yield
    finally:
        for stop in reversed(stops):
            stop()


def routes() -> list[Any]:
    """HTTP routes served beside the pages (the webhook joins here)."""
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(_request: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    return [Route("/healthz", healthz, methods=["GET"])]
