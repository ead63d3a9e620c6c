"""What the health page reports: gateway, device, webhook, worker, polling and database, as facts."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, Select, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core import app_state, uptime
from core.config import Settings
from core.errors import BlastError
from core.models import Blast, BlastRecipient, BlastState, PausedBy, StatusHistory, utcnow
from core.polling import POLLING_STATE_KEY, last_receipt_at, receipt_silence
from core.sending import gateways
from core.sending.trouble import PAUSED_PREFIX
from core.sending.worker import HEARTBEAT_PREFIX, STOPPED_KEY, checked_in
from core.statuses import RANK, Status
from core.webhook.inbox import SET_ASIDE, InboxState, inbox_summary

# "Recent sends did not go through": the last sends, within this long, none of them taken.
RECENT_SENDS = 10
RECENT_SENDS_WITHIN = dt.timedelta(hours=1)
REFUSALS_TO_WARN = 3
# How far back in the status history to look for them: a bound, so the page stays quick
# on a large history (each taken message leaves a few rows: sent, received, read).
HISTORY_ROWS_LOOKED_AT = 5000


@dataclass(frozen=True)
class WorkerSeen:
    name: str
    last_seen: dt.datetime
    sent: int  # messages the gateway took since it started
    tried: int  # messages it tried since it started, sent or not


@dataclass(frozen=True)
class WorkerGone(WorkerSeen):
    """The send worker last heard from, once none is: when it stopped, or went quiet."""

    stopped: bool = False  # it said it was stopping; else it stopped checking in (killed, or its machine)


@dataclass(frozen=True)
class Note:
    """A problem as a marketer reads it, and what whoever runs the server does about it."""

    words: str
    fix: str


@dataclass(frozen=True)
class HeldBlast:
    """A blast the sender paused because the gateway refused or failed: nothing more of it
    goes out until a person fixes the cause and resumes it."""

    id: int
    name: str | None
    reason: str

    @property
    def why(self) -> str:
        """The reason as a sentence after "Blast #3 is paused.": the worker's pause words begin
        "Sending is paused:" and say when to resume, which would be said twice."""
        return paused_why(self.reason)


def paused_why(reason: str | None) -> str:
    """A pause reason as the sentences that follow "… is paused.", ending with what to do."""
    said = (reason or "").strip().removeprefix(PAUSED_PREFIX).strip()
    if not said:
        return "No reason was given. Resume it from its page once that is sorted out."
    said = said[0].upper() + said[1:]
    return said if "resum" in said.lower() else f"{said} Once that is fixed, open the blast and resume it."


@dataclass(frozen=True)
class Refusals:
    """The last sends all ended refused or unconfirmed."""

    count: int
    unknown: int
    reason: str | None
    blast_id: int
    at: dt.datetime


@dataclass(frozen=True)
class Receipts:
    """Whether delivery and read receipts arrive while other events (replies) do, and whether
    any event reaches the webhook at all."""

    last_receipt_at: dt.datetime | None
    missing: bool  # none lately, though replies came and messages were sent since the last
    # No event at all (receipt, reply or anything else) since messages the gateway took long
    # enough ago for theirs to have come: WSAPME posts to a wrong address, or to none, which
    # “Enable status” alone would not explain (replies would still come).
    silent: bool = False
    arriving: bool = False  # one came lately, and neither of the above


@dataclass(frozen=True)
class EventCounts:
    """The webhook inbox as a marketer reads it: every event kept is in exactly one of these."""

    applied: int  # a receipt or a reply that moved a recipient (or an opt-out recorded)
    not_needed: int  # nothing to do: group messages, status posts, numbers never messaged
    waiting: int  # not applied yet: just arrived, or its message's send not saved yet
    set_aside: int  # could not be used: unreadable, its message never turned up, or failed

    @classmethod
    def from_states(cls, counts: dict[str, int]) -> EventCounts:
        return cls(
            applied=counts.get(InboxState.APPLIED, 0),
            not_needed=counts.get(InboxState.IGNORED, 0),
            waiting=counts.get(InboxState.NEW, 0) + counts.get(InboxState.WAITING, 0),
            set_aside=sum(counts.get(state, 0) for state in SET_ASIDE),
        )


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
    held: list[HeldBlast] = field(default_factory=list)
    refusals: Refusals | None = None
    receipts: Receipts | None = None
    gone: WorkerGone | None = None  # while no worker is, the last one there was

    @property
    def events(self) -> EventCounts:
        return EventCounts.from_states(self.inbox["counts"])

    @property
    def sending_blocked(self) -> bool:
        """Whether the gateway is, as far as the tracker can tell, not taking messages."""
        return bool(self.held or self.refusals)


def database_kind(engine: Engine) -> str:
    return "PostgreSQL" if engine.dialect.name == "postgresql" else "SQLite"


def database_where(engine: Engine) -> str:
    """Host and database name, never the password."""
    url = make_url(str(engine.url))
    if url.get_backend_name() == "sqlite":
        return url.database or "(in memory)"
    host = url.host or "localhost"
    return f"{host}/{url.database or ''}"


def collect(session: Session, *, engine: Engine, settings: Settings) -> Health:
    now = utcnow()
    workers = [_worker_seen(name, value, seen) for name, value, seen in
               checked_in(session, settings=settings, now=now)]
    polling = app_state.get(session, key=POLLING_STATE_KEY)
    inbox = inbox_summary(session)
    arrived = receipts(session, settings=settings, now=now, last_event_at=inbox["last_received_at"])
    notes = _notes(settings, workers)
    if arrived.silent and (settings.sandbox or not unreachable_reason(settings.public_url)):
        notes.append(_silence_note(settings))  # else the note on the address says why already
    return Health(
        database_kind=database_kind(engine),
        database_where=database_where(engine),
        schema_revision=MigrationContext.configure(session.connection()).get_current_revision(),
        workers=workers,
        inbox=inbox,
        polling=polling[0] if polling else None,
        polling_seen=polling[1] if polling else None,
        notes=notes,
        held=held_by_gateway(session, settings=settings),
        refusals=recent_refusals(session, settings=settings, now=now),
        receipts=arrived,
        gone=None if workers else last_worker(session),
    )


def _worker_seen(name: str, heartbeat: dict[str, Any], seen: dt.datetime) -> WorkerSeen:
    sent = int(heartbeat.get("sent", 0))
    tried = max(int(heartbeat.get("tried", 0)), sent)  # every message sent was tried
    return WorkerSeen(name=name, last_seen=seen, sent=sent, tried=tried)


_LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # any heartbeat, however old


def last_worker(session: Session) -> WorkerGone | None:
    """The send worker last heard from: the one that signed off last, or one that stopped
    checking in after that without signing off. None when no worker ever ran here."""
    found = []
    stopped = app_state.get(session, key=STOPPED_KEY)
    if stopped is not None:
        value, at = stopped
        found.append(WorkerGone(**vars(_worker_seen(str(value.get("name", "")), value, at)), stopped=True))
    for key, value, at in app_state.with_prefix(session, prefix=HEARTBEAT_PREFIX, since=_LONG_AGO):
        found.append(WorkerGone(**vars(_worker_seen(key.removeprefix(HEARTBEAT_PREFIX), value, at))))
    return max(found, key=lambda gone: gone.last_seen, default=None)


def held_by_gateway(session: Session, *, settings: Settings) -> list[HeldBlast]:
    """Paused blasts the gateway stopped (core/sending/worker.py `_pause_for`), not a person
    or a missed time, since it last took a message, the latest first. One
    paused last month for a bad token, with sends going through since, says nothing about now
    (its own page still shows why it is paused); nor does one the other gateway stopped (the
    sandbox, before a token was set)."""
    query = (
        select(Blast.id, Blast.name, Blast.state_reason)
        .where(Blast.state == BlastState.PAUSED, Blast.paused_by == PausedBy.GATEWAY,
               gateways.sent_here(settings))
        .order_by(Blast.paused_at.desc(), Blast.id.desc())
    )
    taken_at = _last_taken_at(session)
    if taken_at is not None:
        query = query.where(Blast.paused_at > taken_at)
    rows = session.execute(query).all()
    return [HeldBlast(r.id, r.name, r.state_reason or "") for r in rows]


_TAKEN = tuple(s.value for s in Status if RANK[s] >= 1)


def _recent_history_from(session: Session) -> int | None:
    """The id the recent status history starts at: the last HISTORY_ROWS_LOOKED_AT rows, read
    through the primary key whatever the history's size."""
    newest = session.scalar(select(func.max(StatusHistory.id)))
    return None if newest is None else newest - HISTORY_ROWS_LOOKED_AT


def _sends_taken(session: Session) -> Select:
    """Recent sends the gateway took (newest first), from the recent history only."""
    start = _recent_history_from(session)
    return (
        select(StatusHistory.changed_at)
        .where(StatusHistory.id > (start if start is not None else 0), StatusHistory.source == "send",
               StatusHistory.new_status.in_(_TAKEN))
        .order_by(StatusHistory.id.desc())
    )


def _last_taken_at(session: Session) -> dt.datetime | None:
    return session.scalar(_sends_taken(session).limit(1))


def recent_refusals(session: Session, *, settings: Settings, now: dt.datetime) -> Refusals | None:
    """The last sends (of the last hour) through the gateway these settings talk to, when at
    least a few were made and it took none of them: it refused each, or did not confirm it.
    None while sends go through."""
    start = _recent_history_from(session)
    if start is None:
        return None
    taken = list(_TAKEN)
    rows = session.execute(
        select(StatusHistory.new_status, StatusHistory.event, StatusHistory.changed_at,
               BlastRecipient.blast_id, BlastRecipient.error)
        .join(BlastRecipient, BlastRecipient.id == StatusHistory.recipient_id)
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(
            gateways.sent_here(settings),
            StatusHistory.id > start,
            StatusHistory.source == "send",
            StatusHistory.new_status.in_([*taken, Status.FAILED.value, Status.UNKNOWN.value]),
            StatusHistory.changed_at >= now - RECENT_SENDS_WITHIN,
        )
        .order_by(StatusHistory.id.desc())
        .limit(RECENT_SENDS)
    ).all()
    if len(rows) < REFUSALS_TO_WARN or any(r.new_status in taken for r in rows):
        return None
    latest = rows[0]
    said = latest.event.get("message") if isinstance(latest.event, dict) else None
    return Refusals(
        count=len(rows),
        unknown=sum(r.new_status == Status.UNKNOWN.value for r in rows),
        reason=said if isinstance(said, str) and said else latest.error,
        blast_id=latest.blast_id,
        at=latest.changed_at,
    )


def receipts(
    session: Session, *, settings: Settings, now: dt.datetime, last_event_at: dt.datetime | None
) -> Receipts:
    """Receipts are missing when other events (replies) came lately but no receipt did, and
    messages went out long enough ago since the last receipt for theirs to have come: what
    WSAPME does with "Enable status" off in the device's webhook settings. The webhook is
    silent when no event at all came since such messages: WSAPME posts to another address,
    or none. In practice mode the test gateway posts to the dashboard itself, each message's
    first receipt within seconds, so silence there means its posts do not reach it either (a
    worker run on its own with another PUBLIC_URL, or no dashboard on its database)."""
    last = last_receipt_at(session)
    silence = receipt_silence(settings)
    # Sends the gateway took long enough ago for their receipts to have come: looked for in
    # the recent history (`sent_at` has no index of its own).
    due = _sends_taken(session).where(StatusHistory.changed_at <= now - silence)
    if settings.sandbox:
        # The test gateway's pending receipts live in this process's memory: those of sends made
        # before it started went with the last one, and say nothing of the webhook.
        due = due.where(StatusHistory.changed_at > uptime.STARTED_AT)
    if last_event_at is None or now - last_event_at > silence:
        if last_event_at is not None:
            due = due.where(StatusHistory.changed_at > last_event_at)
        return Receipts(last, missing=False, silent=session.scalar(due.limit(1)) is not None)
    if last is not None and now - last <= silence:
        return Receipts(last, missing=False, arriving=True)
    if last is not None:
        due = due.where(StatusHistory.changed_at > last)
    return Receipts(last, missing=session.scalar(due.limit(1)) is not None)


def _notes(settings: Settings, workers: list[WorkerSeen]) -> list[Note]:
    notes = []
    if not workers:
        notes.append(Note(
            "Blasts will not go out: nothing that sends messages has checked in lately.",
            "No send worker is running now. Start the dashboard with RUN_WORKER=true, or run "
            "`python -m core worker` against the same database.",
        ))
    if settings.send_pacing == "off" and not settings.sandbox:
        notes.append(Note(
            "Messages go out one right after another, with no pauses: WhatsApp may block the number.",
            "Pacing is off while sending for real. Set SEND_PACING=on.",
        ))
    answer = settings.wsapme_connect_timeout + settings.wsapme_read_timeout
    if settings.send_lease_seconds <= answer:
        notes.append(Note(
            "A message whose answer from WSAPME is slow may be marked as not known to have arrived, "
            "and its blast paused, though it went out.",
            f"A worker holds a message for SEND_LEASE_SECONDS ({settings.send_lease_seconds:g} s) but "
            f"waits up to {answer:g} s for WSAPME's answer (WSAPME_CONNECT_TIMEOUT + "
            "WSAPME_READ_TIMEOUT). Set SEND_LEASE_SECONDS above that.",
        ))
    unreachable = unreachable_reason(settings.public_url)
    if unreachable and not settings.sandbox:
        notes.append(Note(
            "WSAPME cannot deliver receipts and replies to this dashboard, so reads and replies "
            "will not show up by themselves.",
            f"WSAPME cannot reach the webhook address: {unreachable}. Set PUBLIC_URL to the "
            "address this server has on the internet (for example https://tracker.yourcompany.com).",
        ))
    elif not settings.sandbox and urlsplit(settings.public_url.strip()).scheme.lower() == "http":
        notes.append(Note(
            "WSAPME posts replies to an http:// address: the webhook secret crosses the internet "
            "unencrypted, and so does the dashboard's password when it is opened there.",
            "Put the server behind HTTPS (a reverse proxy: see “Going live” in the README) and set "
            "PUBLIC_URL to its https:// address.",
        ))
    return notes


def _silence_note(settings: Settings) -> Note:
    minutes = f"{settings.poll_webhook_silence_minutes:g} minutes"
    if settings.sandbox:
        return Note(
            f"Practice receipts and replies are not reaching the dashboard: nothing has come back "
            f"from the test gateway since messages went out more than {minutes} ago.",
            f"No webhook event has arrived since messages the test gateway took more than {minutes} "
            "ago. It posts them to the dashboard that sent them; a send worker started on its own "
            "(`python -m core worker`) posts them to PUBLIC_URL instead: set PUBLIC_URL there to "
            "this dashboard's address, and keep the dashboard running on the same database.",
        )
    return Note(
        f"Receipts and replies are not reaching the dashboard: nothing has come back from WSAPME "
        f"since messages went out more than {minutes} ago, so replies do not show up, and received "
        "and read only when the tracker asks WSAPME itself.",
        f"No webhook event has arrived since messages WSAPME took more than {minutes} ago. In "
        "WSAPME, open the device's webhook settings: the webhook address there must be the one on "
        "this page (turn on “Show the full address” to copy it), with “Enable status” on. "
        "PUBLIC_URL must be the address WSAPME reaches this server on; after changing it, paste "
        "the new webhook address into WSAPME.",
    )


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
    except BlastError as exc:  # a wrong setting too (an address without https://): its words are ready
        return None, exc.message
    # The gateway's own word for the state, when it adds something to ours.
    said = f" ({status.state})" if status.state and status.state.strip().lower() not in (
        "connected", "disconnected", "not connected") else ""
    if status.connected:
        return True, "Connected" + said
    return False, f"Not connected{said}: open WSAPME and reconnect the WhatsApp device."
