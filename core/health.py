"""What the health page reports: gateway, device, webhook, worker, polling and database, as facts."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core import app_state
from core.config import Settings
from core.errors import GatewayError
from core.models import utcnow
from core.polling import POLLING_STATE_KEY
from core.sending.worker import HEARTBEAT_PREFIX, HEARTBEAT_SECONDS
from core.webhook.inbox import inbox_summary

ALIVE_WITHIN = dt.timedelta(seconds=HEARTBEAT_SECONDS * 3)


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    last_seen: dt.datetime
    sent: int


@dataclass(frozen=True)
class Note:
    """A problem as a marketer reads it, and what whoever runs the server does about it."""

    words: str
    fix: str


@dataclass(frozen=True)
class Health:
    database_kind: str
    database_where: str
    schema_revision: str | None
    workers: list[WorkerSeen]
    inbox: dict[str, Any]
    polling: dict[str, Any] | None
    polling_seen: dt.datetime | None
    notes: list[Note] = field(default_factory=list)


def database_where(engine: Engine) -> str:
    """Host and database name, never the password."""
    url = make_url(str(engine.url))
    if url.get_backend_name() == "sqlite":
        return url.database or "(in memory)"
    host = url.host or "localhost"
    return f"{host}/{url.database or ''}"


def collect(session: Session, *, engine: Engine, settings: Settings) -> Health:
    now = utcnow()
    workers = [
        WorkerSeen(name=key.removeprefix(HEARTBEAT_PREFIX), last_seen=seen, sent=int(value.get("sent", 0)))
        for key, value, seen in app_state.with_prefix(
            session, prefix=HEARTBEAT_PREFIX, since=now - ALIVE_WITHIN
        )
    ]
    polling = app_state.get(session, key=POLLING_STATE_KEY)
    return Health(
        database_kind="PostgreSQL" if engine.dialect.name == "postgresql" else "SQLite",
        database_where=database_where(engine),
        schema_revision=MigrationContext.configure(session.connection()).get_current_revision(),
        workers=workers,
        inbox=inbox_summary(session),
        polling=polling[0] if polling else None,
        polling_seen=polling[1] if polling else None,
        notes=_notes(settings, workers),
    )


def _notes(settings: Settings, workers: list[WorkerSeen]) -> list[Note]:
    notes = []
    if not workers:
        notes.append(Note(
            "Blasts will not go out: nothing that sends messages has checked in during the last "
            "half minute.",
            "No send worker has checked in. Start the dashboard with RUN_WORKER=true, or run "
            "`python -m core worker` against the same database.",
        ))
    if settings.send_pacing == "off" and not settings.sandbox:
        notes.append(Note(
            "Messages go out one right after another, with no pauses: WhatsApp may block the number.",
            "Pacing is off while sending for real. Set SEND_PACING=on.",
        ))
    unreachable = unreachable_reason(settings.public_url)
    if unreachable and not settings.sandbox:
        notes.append(Note(
            "WSAPME cannot deliver receipts and replies to this dashboard, so reads and replies "
            "will not show up by themselves.",
            f"WSAPME cannot reach the webhook address: {unreachable}. Set PUBLIC_URL to the "
            "address this server has on the internet (for example https://tracker.yourcompany.com).",
        ))
    return notes


def unreachable_reason(url: str) -> str | None:
    """Why a gateway on the internet could not reach `url`; None when it may."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        host = None
    if not host:
        return "it is not a web address"
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
        return f"{host} is this computer's own name"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None if "." in host else f"{host} is a name only this network knows"
    if address.is_loopback or address.is_unspecified:
        return f"{host} is this computer's own address"
    if address.is_private or address.is_link_local:
        return f"{host} is an address inside this network"
    return None


def device_state(client: Any) -> tuple[bool | None, str]:
    """Ask the gateway whether the device is connected; the answer in words."""
    try:
        status = client.device_status()
    except GatewayError as exc:
        return None, exc.message
    # The gateway's own word for the state, when it adds something to ours.
    said = f" ({status.state})" if status.state and status.state.strip().lower() not in (
        "connected", "disconnected", "not connected") else ""
    if status.connected:
        return True, "Connected" + said
    return False, f"Not connected{said}: open WSAPME and reconnect the WhatsApp device."
