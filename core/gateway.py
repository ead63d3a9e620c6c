"""The gateway this process talks to: WSAPME when a token is set, else the sandbox simulator."""

from __future__ import annotations

import threading
from typing import Any

from core.config import Settings
from core.wsapme.client import WsapmeClient

_lock = threading.Lock()
_sandbox: Any = None


def sandbox_simulator(settings: Settings, *, webhook_url: str | None = None) -> Any:
    """The process's sandbox gateway, started on first use on a loopback port."""
    global _sandbox
    with _lock:
        if _sandbox is None:
            from core.simulator import start_simulator

            _sandbox = start_simulator(port=0, webhook_url=webhook_url, mode=settings.sandbox_speed)
        if webhook_url:
            _sandbox.set_webhook_url(webhook_url)
        return _sandbox


def stop_sandbox() -> None:
    global _sandbox
    with _lock:
        if _sandbox is not None:
            _sandbox.stop()
            _sandbox = None


def make_client(settings: Settings, *, webhook_url: str | None = None) -> WsapmeClient:
    if settings.sandbox:
        url = sandbox_simulator(settings, webhook_url=webhook_url).url
        settings = settings.model_copy(update={"wsapme_api_url": url, "wsapme_master_url": url})
    return WsapmeClient.from_settings(settings)
