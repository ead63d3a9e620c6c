"""The simulator's own HTTP controls under /_sim/: stats, records, faults, webhook and style."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from urllib.parse import urlsplit

from core.simulator import shapes
from core.simulator.faults import make_fault
from core.simulator.gateway import SimulatedGateway
from core.simulator.webhooks import receiver_address
from core.simulator.wire import Answer, Request, json_answer

PREFIX = "/_sim/"
# The tracker's webhook address ends in its secret: /webhooks/wsapme/<secret>.
TRACKER_WEBHOOK_PATH = "/webhooks/wsapme/"


def handle_control(gateway: SimulatedGateway, request: Request) -> Answer:
    """Answer a /_sim/ request; bad input gets a 400 with the reason."""
    route = (request.method, request.path.removeprefix(PREFIX).rstrip("/"))
    try:
        body = json.loads(request.body) if request.body else {}
    except ValueError:
        return json_answer({"error": "the body is not JSON"}, status=400)
    handler = ROUTES.get(route)
    if handler is None:
        return json_answer({"error": f"no {route[0]} /_sim/{route[1]}"}, status=404)
    try:
        return json_answer(handler(gateway, body))
    except (TypeError, ValueError) as exc:
        return json_answer({"error": str(exc)}, status=400)


def _stats(gateway: SimulatedGateway, _body: Any) -> dict[str, Any]:
    return {
        **gateway.state.stats(),
        "webhooks_pending": gateway.poster.pending(),
        "faults": gateway.faults.active(),
    }


def _messages(gateway: SimulatedGateway, _body: Any) -> list[dict[str, Any]]:
    listed = [dataclasses.asdict(m) for m in gateway.state.sent_messages()]
    for message in listed:
        message["webhook_url"] = shown_url(message["webhook_url"])
    return listed


def _emitted(gateway: SimulatedGateway, _body: Any) -> dict[str, Any]:
    emitted = dataclasses.asdict(gateway.state.emitted())
    for event in emitted["events"]:
        event["url"] = shown_url(event["url"])
    return emitted


def _faults(gateway: SimulatedGateway, _body: Any) -> list[dict[str, Any]]:
    return gateway.faults.active()


def _add_fault(gateway: SimulatedGateway, body: Any) -> list[dict[str, Any]]:
    """Body: {"kind": "rate_limited", "times": 2, "endpoint": "send", "retry_after": "5"}."""
    if not isinstance(body, dict) or "kind" not in body:
        raise ValueError('send {"kind": ..., "times": N or null, ...options}')
    options = dict(body)
    gateway.faults.add(
        make_fault(
            options.pop("kind"),
            times=options.pop("times", None),
            endpoint=options.pop("endpoint", None),
            **options,
        )
    )
    return gateway.faults.active()


def _clear_faults(gateway: SimulatedGateway, _body: Any) -> list[dict[str, Any]]:
    gateway.faults.clear()
    return []


def _webhook(gateway: SimulatedGateway, body: Any) -> dict[str, Any]:
    """Body: {"url": "http://..." or null, "shape": "baileys" or "mixed"} (either key)."""
    if not isinstance(body, dict):
        raise ValueError('send {"url": ..., "shape": ...}')
    with gateway.lock:
        if "url" in body:
            gateway.config.webhook_url = body["url"] or None
        if "shape" in body:
            gateway.config.webhook_shape = check_shape(body["shape"])
        return {"url": shown_url(gateway.config.webhook_url), "shape": gateway.config.webhook_shape}


def _style(gateway: SimulatedGateway, body: Any) -> dict[str, Any]:
    """Body: any AnswerStyle fields, e.g. {"id_place": "data.id", "timestamp": "number_ms"}."""
    if not isinstance(body, dict):
        raise ValueError("send an object of answer style fields")
    with gateway.lock:
        gateway.config.answer_style = dataclasses.replace(gateway.config.answer_style, **body)
        return dataclasses.asdict(gateway.config.answer_style)


def shown_url(url: str | None) -> str | None:
    """A webhook address as the controls answer it: where events go, never the secret.

    The controls answer any local process without a token, and in practice mode the address
    is the tracker's own, secret included. The tracker's path is kept with its secret
    masked, so a person can tell the right receiver was set; any other path, query or login
    is left out, since a secret may sit anywhere in it.
    """
    if not url:
        return url
    if urlsplit(url).path.startswith(TRACKER_WEBHOOK_PATH):
        return receiver_address(url) + TRACKER_WEBHOOK_PATH + "[secret]"
    return receiver_address(url)


def check_shape(shape: str) -> str:
    if shape != shapes.MIXED and shape not in shapes.ACK_SHAPES:
        raise ValueError(f"shape must be mixed or one of {', '.join(shapes.ACK_SHAPES)}")
    return shape


ROUTES = {
    ("GET", "stats"): _stats,
    ("GET", "messages"): _messages,
    ("GET", "emitted"): _emitted,
    ("GET", "faults"): _faults,
    ("POST", "faults"): _add_fault,
    ("DELETE", "faults"): _clear_faults,
    ("POST", "faults/clear"): _clear_faults,
    ("POST", "webhook"): _webhook,
    ("POST", "style"): _style,
}
