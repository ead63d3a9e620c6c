"""The simulated gateway's behaviour, apart from HTTP: sends, look-ups, device, faults, webhooks."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.simulator import shapes
from core.simulator.faults import AFTER_ACCEPTANCE, Fault, FaultBook, FaultKind
from core.simulator.plan import (
    PlannedEvent,
    Proportions,
    Timing,
    duplicate_acks,
    plan_message,
    reverse_acks,
)
from core.simulator.state import EmittedEvent, SentMessage, SimState, recipient_key
from core.simulator.webhooks import Outgoing, WebhookPoster
from core.simulator.wire import (
    MALFORMED_BODY,
    NOT_FOUND,
    PROXY_ERROR_PAGE,
    Answer,
    Request,
    json_answer,
    json_object,
    refusal,
    send_problem,
)
from core.statuses import Status
from core.wsapme.answers import AckNumbering, dig
from core.wsapme.client import TOKEN_HEADER

DEVICE_PHONE = "601140464720"
ALL_BUT_OFFLINE = frozenset(FaultKind) - {FaultKind.DEVICE_OFFLINE}


def _default(name: str) -> str:
    return str(Settings.model_fields[name].default)


@dataclass(frozen=True)
class GatewayPaths:
    """Where each call lives; the defaults are the settings' defaults."""

    send: str = _default("wsapme_send_path")
    legacy_send: str = "/v1/sendMessage"
    status: str = _default("wsapme_status_path")
    message_info: str = _default("wsapme_message_info_path")
    device: str = _default("wsapme_device_path")


@dataclass(frozen=True)
class ScheduledEvent:
    message_id: str
    planned: PlannedEvent
    shape: str


@dataclass
class GatewayConfig:
    """What can be changed while the simulator runs (under the gateway's lock)."""

    webhook_url: str | None
    webhook_shape: str  # one of shapes.ACK_SHAPES or "mixed"
    answer_style: shapes.AnswerStyle


class SimulatedGateway:
    def __init__(
        self,
        *,
        config: GatewayConfig,
        paths: GatewayPaths,
        timing: Timing,
        proportions: Proportions,
        seed: int | str,
        token: str | None,
        ack_numbering: AckNumbering,
        max_webhook_attempts: int,
    ) -> None:
        self.config = config
        self.paths = paths
        self.timing = timing
        self.proportions = proportions
        self.seed = seed
        self.token = token
        self.numbering: AckNumbering = ack_numbering
        self.state = SimState()
        self.faults = FaultBook()
        self.lock = threading.Lock()
        self._rng = random.Random(f"{seed}|gateway")
        self.poster = WebhookPoster(
            fire=self._fire,
            report=lambda seq, ok, code: self.state.record_attempt(seq, delivered=ok, http_status=code),
            max_attempts=max_webhook_attempts,
            retry_base=timing.retry_base,
            retry_cap=timing.retry_cap,
        )

    def handle(self, request: Request) -> Answer | None:
        """The answer to a gateway call, or None when the path is not one of the gateway's."""
        routes = {
            self.paths.send: self._send,
            self.paths.legacy_send: self._send,
            self.paths.status: self._status_by_id,
            self.paths.message_info: self._message_info,
            self.paths.device: self._device,
        }
        route = routes.get(request.path)
        if route is None:
            return None
        if request.method != "POST" and route != self._device:
            return json_answer(shapes.failure("Method not allowed"), status=405)
        token = request.headers.get(TOKEN_HEADER, "").strip()
        if not token or (self.token is not None and token != self.token):
            return json_answer(shapes.failure("Unauthorised Token"), status=401)
        return route(request)

    # Sending

    def _send(self, request: Request) -> Answer:
        fault = self.faults.take("send")
        if fault is not None and fault.kind not in AFTER_ACCEPTANCE:
            return refusal(fault)
        body = json_object(request.body)
        problem = send_problem(body)
        if problem is not None:
            return json_answer(shapes.failure(problem))
        redirect = body.get("redirect_url") if request.path == self.paths.legacy_send else None
        answer = str(fault.kind) if fault is not None else "answered"
        message = self._accept(body, answer=answer, redirect=redirect)
        if fault is not None:
            return self._misbehave(fault, normal=self._send_answer(message))
        return self._send_answer(message)

    def _accept(self, body: dict[str, Any], *, answer: str, redirect: object) -> SentMessage:
        to = str(body["to"]).strip()
        with self.lock:
            message_id = shapes.new_message_id(self._rng)
            while self.state.has_message_id(message_id):
                message_id = shapes.new_message_id(self._rng)
        message = SentMessage(
            message_id=message_id,
            to=to,
            jid=to if "@" in to else f"{recipient_key(to)}@s.whatsapp.net",
            message=str(body["message"]),
            device=str(body.get("device", "")),
            priority=str(body["priority"]) if body.get("priority") is not None else None,
            sent_at=time.time(),
            answer=answer,
            webhook_url=redirect if isinstance(redirect, str) and redirect else None,
        )
        self.state.record_send(message)
        self._schedule(message)
        return message

    def _send_answer(self, message: SentMessage) -> Answer:
        with self.lock:
            style = self.config.answer_style
            id_place = shapes.pick(self._rng, style.id_place, shapes.ID_PLACES)
            stamp = shapes.pick(self._rng, style.timestamp, shapes.TIMESTAMP_FORMS)
            form = shapes.pick(self._rng, style.status, shapes.STATUS_FORMS)
            delay = self.timing.answer.sample(self._rng)
        body = shapes.send_answer(
            message_id=message.message_id,
            jid=message.jid,
            text=message.message,
            sent_at=message.sent_at,
            id_place=id_place,
            timestamp_form=stamp,
            status=shapes.status_value(Status.PENDING, form=form, numbering=self.numbering),
        )
        return json_answer(body, delay=delay)

    def _misbehave(self, fault: Fault, *, normal: Answer) -> Answer:
        """Answer a call the gateway did handle, but so that the caller cannot tell."""
        if fault.kind == FaultKind.SLOW_ANSWER:
            return dataclasses.replace(normal, delay=float(fault.options.get("delay", 3.0)))
        if fault.kind == FaultKind.DROP_CONNECTION and fault.options.get("partial"):
            return dataclasses.replace(normal, cut_after=len(normal.body) // 2)
        if fault.kind == FaultKind.DROP_CONNECTION:
            return Answer(drop=True)
        if fault.kind == FaultKind.MALFORMED_JSON:
            return Answer(body=MALFORMED_BODY)
        if fault.kind == FaultKind.NO_MESSAGE_ID:
            return json_answer({"success": True, "message": "Sent successfully", "data": {}})
        if fault.kind == FaultKind.PROXY_ERROR:
            status = int(fault.options.get("http_status", 524))
            return Answer(status=status, body=PROXY_ERROR_PAGE, content_type="text/html")
        return normal

    # Webhooks

    def _schedule(self, message: SentMessage) -> None:
        to = recipient_key(message.to)
        nth = self.state.sent_count(to)
        rng = random.Random(f"{self.seed}|{to}|{nth}")  # the same fate whatever else runs
        events = plan_message(rng=rng, to=to, proportions=self.proportions, timing=self.timing)
        fault = self.faults.take("webhook")
        if fault is not None and fault.kind == FaultKind.DUPLICATE_ACKS:
            events = duplicate_acks(events, gap=self.timing.duplicate_gap)
        elif fault is not None and fault.kind == FaultKind.OUT_OF_ORDER_ACKS:
            events = reverse_acks(events)
        with self.lock:
            fixed = self.config.webhook_shape
        for planned in events:
            shape = _pick_shape(rng) if fixed == shapes.MIXED else fixed
            self.poster.schedule(ScheduledEvent(message.message_id, planned, shape), delay=planned.after)

    def _fire(self, event: ScheduledEvent) -> Outgoing | None:
        """Emit a due event: the gateway's view moves on, and the webhook is built to post."""
        message = self.state.message(event.message_id)
        if message is None:
            return None
        with self.lock:
            url = message.webhook_url or self.config.webhook_url
        now = time.time()
        payload = self._payload(event, message, at=now)
        planned = event.planned
        record = self.state.record_event(
            EmittedEvent(
                seq=0,
                message_id=message.message_id,
                status=str(planned.status) if planned.status is not None else None,
                text=planned.text,
                from_jid=planned.from_jid,
                shape=event.shape,
                at=now,
                url=url,
                content_type=payload.content_type,
                body=payload.body.decode(),
            ),
            opt_out=planned.opt_out,
        )
        return Outgoing(record.seq, url, payload.content_type, payload.body) if url else None

    def _payload(self, event: ScheduledEvent, message: SentMessage, *, at: float) -> shapes.Payload:
        planned = event.planned
        if planned.status is not None:
            return shapes.ack_payload(
                event.shape,
                message_id=message.message_id,
                jid=message.jid,
                status=planned.status,
                at=at,
                numbering=self.numbering,
            )
        return shapes.reply_payload(
            event.shape,
            text=planned.text or "",
            from_jid=planned.from_jid or message.jid,
            at=at,
            device_jid=f"{DEVICE_PHONE}@s.whatsapp.net",
        )

    # Look-ups and device

    def _status_by_id(self, request: Request) -> Answer:
        message_id = json_object(request.body).get("messageId")
        return self._lookup(str(message_id or ""), default_place="data.status")

    def _message_info(self, request: Request) -> Answer:
        messages = json_object(request.body).get("messages")
        found = _message_id_in(messages)
        return self._lookup(found or "", default_place="data.messages.status")

    def _lookup(self, message_id: str, *, default_place: str) -> Answer:
        fault = self.faults.take("status")
        if fault is not None and fault.kind not in AFTER_ACCEPTANCE:
            return refusal(fault)
        view = self.state.gateway_view(message_id)
        if view is None:
            return json_answer(NOT_FOUND)
        status, delivered_at = view
        with self.lock:
            style = self.config.answer_style
            form = shapes.pick(self._rng, style.status, shapes.STATUS_FORMS)
        body = shapes.lookup_answer(
            message_id=message_id,
            status=shapes.status_value(status, form=form, numbering=self.numbering),
            delivered_at=delivered_at,
            place=style.lookup_status_place or default_place,
        )
        normal = json_answer(body)
        return self._misbehave(fault, normal=normal) if fault is not None else normal

    def _device(self, request: Request) -> Answer:
        fault = self.faults.take("device", ALL_BUT_OFFLINE)
        if fault is not None and fault.kind not in AFTER_ACCEPTANCE:
            return refusal(fault)
        offline = self.faults.peek("device", frozenset({FaultKind.DEVICE_OFFLINE}))
        device = json_object(request.body).get("device") or DEVICE_PHONE
        data = {
            "device": str(device),
            "status": "disconnected" if offline else "connected",
            "phone": DEVICE_PHONE,
            "name": "WSAPME Simulator",
        }
        normal = json_answer({"success": True, "message": "Device found", "data": data})
        return self._misbehave(fault, normal=normal) if fault is not None else normal


def _message_id_in(messages: object) -> str | None:
    """The message id inside the `messages` a messageInfo look-up sends back to us."""
    for place in ("key.id", "id", "messageId"):
        value = dig(messages, place)
        if isinstance(value, str) and value:
            return value
    return None


def _pick_shape(rng: random.Random) -> str:
    names = list(shapes.SHAPE_WEIGHTS)
    return rng.choices(names, weights=[shapes.SHAPE_WEIGHTS[n] for n in names])[0]
