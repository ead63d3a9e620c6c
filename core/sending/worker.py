"""The send worker: claim a recipient, call the gateway, store the answer at once."""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from core import app_state, followups
from core.config import Settings
from core.db import transaction
from core.errors import ConfigError, GatewayError, GatewayUnreachable, RateLimited
from core.funnel import fold_rollup_deltas
from core.models import Blast, Device, PausedBy, utcnow
from core.phones import to_gateway
from core.sending import blasts, gateways, pacing, queue, trouble
from core.sending.direct import DirectStatements
from core.sending.queue import Claim
from core.statuses import RANK, Status, parse_status
from core.wsapme.answers import SendResult
from core.wsapme.failures import unknown_outcome

T = TypeVar("T")
log = logging.getLogger(__name__)

IDLE_SECONDS = 1.0
HOUSEKEEPING_SECONDS = 1.0
HEARTBEAT_SECONDS = 10.0
HEARTBEAT_PREFIX = "worker:"
# The last worker that stopped cleanly, with what it had sent: its heartbeat goes with it.
STOPPED_KEY = "worker-stopped"


def alive_within(settings: Settings) -> dt.timedelta:
    """How long a worker may go without checking in and still be counted as running: its
    heartbeat is written between sends, and one send may wait for WSAPME's answer up to the
    connect and read timeouts (a slow gateway had made a running worker look stopped)."""
    wait = settings.wsapme_connect_timeout + settings.wsapme_read_timeout
    return dt.timedelta(seconds=HEARTBEAT_SECONDS * 3 + wait)


def checked_in(
    session: Session, *, settings: Settings, now: dt.datetime
) -> list[tuple[str, dict[str, Any], dt.datetime]]:
    """The send workers counted as running at `now` (`alive_within`): each one's name, last
    heartbeat and when it came."""
    return [(key.removeprefix(HEARTBEAT_PREFIX), value, seen) for key, value, seen in
            app_state.with_prefix(session, prefix=HEARTBEAT_PREFIX, since=now - alive_within(settings))]


# `--once` also waits for retries due within this long, so a busy gateway does not end it early.
ONCE_RETRY_HORIZON = dt.timedelta(minutes=5)
# How soon to look again while another worker's message from the same device awaits its answer.
CALL_OUT_POLL_SECONDS = 0.2
# After an error no one foresaw, the loop waits this long at most before it tries again.
UNEXPECTED_WAIT_CAP = 60.0
# `--once` gives up after this many unforeseen errors in a row, rather than trying forever.
ONCE_UNEXPECTED_LIMIT = 3
# Storing an answer through a database outage: tried again at most this far apart, and given up
# this long before the claim's lease ends.
STORE_RETRY_CAP_SECONDS = 10.0
STORE_MARGIN_SECONDS = 5.0

class Sender(Protocol):
    def send_text(
        self, *, to: str, message: str, priority: str | None = None, device: str | None = None
    ) -> SendResult: ...


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def where_raised(exc: BaseException) -> str:
    """Where an exception came from, as code lines only: its message may hold what a gateway
    sent back, or a setting."""
    return "".join(traceback.format_tb(exc.__traceback__)).rstrip()


# SQLite's words when its file is busy or cannot be reached for now. It raises OperationalError
# for a statement it cannot run too ("no such column": a worker older than the schema).
_SQLITE_AWAY = ("database is locked", "database table is locked", "unable to open", "disk i/o error")


def database_away(exc: DBAPIError) -> bool:
    """Whether a database error means the database could not be reached, or the connection was
    lost: worth asking again once it is back. Any other is an answer about the statement."""
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError):
        return False
    if isinstance(exc.orig, sqlite3.Error):
        return any(words in str(exc.orig).lower() for words in _SQLITE_AWAY)
    return True


def sent_status(result: SendResult) -> Status:
    """The status a fresh send starts at: what the gateway said, at least PENDING."""
    status = parse_status(result.gateway_status or "") or Status.PENDING
    return status if RANK[status] >= 1 else Status.PENDING


class SendWorker:
    """Sends queued recipients of sending blasts. Any number may run against one database."""

    def __init__(
        self,
        *,
        engine: Engine,
        client: Sender,
        settings: Settings,
        name: str | None = None,
        rng: random.Random | None = None,
        after_send: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        # SQLite keeps its transactions, which take the write lock up front (core.db).
        self._direct = DirectStatements(engine) if engine.dialect.name == "postgresql" else None
        self.client = client
        self.settings = settings
        self.name = name or worker_name()
        self.rng = rng or random.Random()
        self.after_send = after_send
        self.pacing = settings.send_pacing == "on"
        self._last_housekeeping = 0.0
        self._last_heartbeat = 0.0
        self.tried = 0  # messages tried, whatever the gateway answered
        # What came of each try: accepted (the gateway took it), unknown (no telling: never
        # sent again), retrying (refused for now, tried again later), failed (refused for
        # good), held (not sent: its blast was paused for a person to act).
        self.outcomes: Counter[str] = Counter()
        # The tries among those whose request never reached the gateway (no connection could
        # be made), by the same outcomes: the gateway refused none of them.
        self.unreached: Counter[str] = Counter()
        self._devices: list[str] = []
        self._elsewhere: set[str] = set()  # devices of the other gateway's blasts, told once
        self._dated: set[int] = set()  # blasts whose first send this worker has seen to
        self._follow_ups: dict[int, bool] = {}  # blast id → a follow-up that asks its choice again
        self._trouble = trouble.Tracker()  # each device's sends not taken since the last one taken
        self._held: dict[str, dt.datetime] = {}  # device → when it may send again after a refusal

    @property
    def sent(self) -> int:
        """Messages the gateway took: a try it refused, or never got, is not sent."""
        return self.outcomes["accepted"]

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, *, once: bool = False) -> int:
        """Send until stopped (or, with `once`, until nothing is due now). Returns messages sent
        (the gateway took them) in this run."""
        stop = stop or threading.Event()
        sent_before, unexpected = self.sent, 0
        while not stop.is_set():
            try:
                outcome = self.step()
            except Exception as exc:
                if isinstance(exc, DBAPIError) and database_away(exc):
                    log.warning("database unavailable, retrying shortly: %s", type(exc).__name__)
                    stop.wait(2.0)
                    continue
                # A defect must not end sending for good (in the dashboard this loop is a thread
                # no one watches): a message it caught mid-send is marked unknown when its
                # lease runs out, never sent again.
                unexpected += 1
                if once and unexpected >= ONCE_UNEXPECTED_LIMIT:
                    raise
                wait = min(2.0 ** (unexpected - 1), UNEXPECTED_WAIT_CAP)
                log.error("the send worker hit an unexpected %s; carrying on in %.0fs. Raised at:\n%s",
                          type(exc).__name__, wait, where_raised(exc))
                stop.wait(wait)
                continue
            unexpected = 0
            if outcome is True:
                continue
            if once and isinstance(outcome, float) and outcome > ONCE_RETRY_HORIZON.total_seconds():
                break  # the rest waits for pacing (a daily cap, quiet hours): not "due now"
            if once and outcome is None:
                retry = self._next_retry()
                if retry is None or retry - utcnow() > ONCE_RETRY_HORIZON:
                    break
                outcome = max((retry - utcnow()).total_seconds(), 0.05)
            stop.wait(min(outcome or IDLE_SECONDS, IDLE_SECONDS))
        self.housekeeping(force=True)
        self._sign_off()
        return self.sent - sent_before

    def _sign_off(self) -> None:
        """A worker that stops is no longer listed as sending (the health page counted a stopped
        one, with what it had sent, for half a minute after a restart); it leaves word of when
        it stopped, for the health page to say while nothing sends."""
        try:
            with transaction(self.engine) as s:
                app_state.forget(s, key=HEARTBEAT_PREFIX + self.name)
                app_state.put(s, key=STOPPED_KEY,
                              value={"name": self.name, "sent": self.sent, "tried": self.tried})
        except DBAPIError as exc:  # it ages out of the list on its own
            log.info("the worker's heartbeat was left to age out (%s)", type(exc).__name__)

    def step(self) -> bool | float | None:
        """One message if one may go now: True when sent; else seconds to wait, None when idle."""
        self.housekeeping()
        # Read after housekeeping, which may wait on the database; each claim reads it again.
        now = utcnow()
        # The devices that had work last time are tried first: asking which devices have
        # work costs a query per message, and is only needed when none of them can send. Then
        # it is asked, before any wait: a device waiting out its gap or its day's cap (with
        # work left or not) must not keep another device's blast waiting with it.
        asked: dict[str, float | None] = {}  # device: its wait, for those tried already
        listed = not self._devices
        if listed:
            self._devices = self._devices_with_work(now)
        while True:
            if not self._devices:
                return None
            waits = []
            for device in self._devices:
                if device not in asked:
                    claim, asked[device] = self._try(device, now)
                    if claim is not None:
                        self.tried += 1
                        self._send(claim, device=device)
                        return True
                if asked[device] is not None:
                    waits.append(asked[device])
            if listed:
                return min(waits, default=IDLE_SECONDS)
            self._devices, listed = self._devices_with_work(now), True

    def _devices_with_work(self, now: dt.datetime) -> list[str]:
        with transaction(self.engine) as s:
            return self._devices_sent_here(queue.devices_with_work(s, now=now))

    def _try(self, device: str, now: dt.datetime) -> tuple[Claim | None, float | None]:
        """`_claim` on the device, unless the gateway turned it away for now (`_hold`)."""
        held = self._held.get(device)
        if held is not None and held > now:
            return None, (held - now).total_seconds()
        return self._claim(device)

    def _devices_sent_here(self, devices: list[str]) -> list[str]:
        """Only the devices of the gateway this worker talks to: a blast made in practice mode
        never goes to WhatsApp, nor a blast made for WhatsApp to the sandbox."""
        for device in set(devices) - self._elsewhere:
            if not gateways.sends(device, settings=self.settings):
                self._elsewhere.add(device)
                words = gateways.not_sent_words(device)
                log.warning("blasts for device %s stay queued: %s", device, words)
        return [device for device in devices if device not in self._elsewhere]

    def _next_retry(self) -> dt.datetime | None:
        with transaction(self.engine) as s:
            return queue.next_retry_at(s, sent_here=gateways.sent_here(self.settings))

    def housekeeping(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_housekeeping < HOUSEKEEPING_SECONDS:
            return
        self._last_housekeeping = time.monotonic()
        now = utcnow()
        grace = dt.timedelta(minutes=self.settings.schedule_grace_minutes)
        with transaction(self.engine) as s:
            expired = queue.expire_leases(s, now=now)
            blasts.start_due_scheduled(s, now=now, grace=grace, zone=self.settings.timezone,
                                       settings=self.settings,
                                       sent_here=gateways.sent_here(self.settings))
            blasts.complete_finished(s, now=now)
            blasts.reopen_requeued(s)
            again = blasts.try_again_by_itself(s, now=now, sent_here=gateways.sent_here(self.settings))
            # Status changes leave +1/-1 rows on PostgreSQL (migration 0002); folding them
            # into the per-blast counts keeps the funnel's reads short.
            fold_rollup_deltas(s)
            if force or time.monotonic() - self._last_heartbeat >= HEARTBEAT_SECONDS:
                self._last_heartbeat = time.monotonic()
                app_state.put(s, key=HEARTBEAT_PREFIX + self.name,
                              value={"sent": self.sent, "tried": self.tried,
                                     "pacing": self.settings.send_pacing})
        queue.say_expired(expired)
        if again:
            log.warning("%s %s: sending tries again, %d minutes after messages stopped getting through",
                        "blast" if len(again) == 1 else "blasts", ", ".join(map(str, again)),
                        trouble.TRIES_AGAIN_AFTER.seconds // 60)

    # -- claiming under the device's pacing -------------------------------------------------

    def _claim(self, device_id: str) -> tuple[Claim | None, float | None]:
        """The next recipient to send from the device, or how long to wait for its pacing. The
        clock is read as the claim is made, after any wait for a lock: quiet hours, the day's
        cap and the lease are judged by when the message goes, not by when the worker began."""
        zone = self.settings.timezone
        lease = dt.timedelta(seconds=self.settings.send_lease_seconds)
        if not self.pacing and self._direct is not None:
            while True:
                claim = self._direct.claim(device=device_id, worker=self.name, now=utcnow(), lease=lease)
                if claim is None:
                    return None, None
                try:
                    if not self._is_follow_up(claim.blast_id):
                        return claim, None
                    with transaction(self.engine) as s:
                        if not self._moved_on(s, claim, claim.claimed_at):
                            return claim, None
                except DBAPIError:
                    self._unclaim(claim)  # nothing was sent: not to become unknown when its lease ends
                    raise
        with transaction(self.engine) as s:
            if not self.pacing:
                return self._claim_wanted(s, device_id, utcnow(), lease), None
            device = pacing.ensure_device(s, device=device_id, settings=self.settings, lock=True)
            now = utcnow()
            earliest = pacing.earliest_send(device, now=now, zone=zone)
            if earliest > now:
                return None, (earliest - now).total_seconds()
            if queue.call_out(s, device=device_id):  # another worker's; its answer moves the slot
                return None, CALL_OUT_POLL_SECONDS
            claim = self._claim_wanted(s, device_id, now, lease)
            if claim is not None:
                pacing.record_send(device, now=now, zone=zone, rng=self.rng)
            return claim, None

    def _unclaim(self, claim: Claim) -> None:
        """Put back a claim whose message was not sent, if the database lets us; otherwise its
        lease runs out and it is marked unknown, as after any stop between claim and send."""
        try:
            with transaction(self.engine) as s:
                queue.release(s, claim=claim, worker=self.name, retry_at=None, error=None,
                              count_attempt=False)
        except DBAPIError as exc:
            log.warning("could not put back a message not sent (%s); it is marked unknown when its "
                        "lease ends", type(exc).__name__)

    def _claim_wanted(
        self, s: Session, device_id: str, now: dt.datetime, lease: dt.timedelta
    ) -> Claim | None:
        """The next due recipient that is still to be messaged: a follow-up's who has moved on
        since it started (replied, bought) is taken off it and the next one claimed."""
        while True:
            claim = queue.claim_next(s, device=device_id, worker=self.name, now=now, lease=lease)
            if claim is None or not self._is_follow_up(claim.blast_id, s):
                return claim
            if not self._moved_on(s, claim, now):
                return claim

    def _is_follow_up(self, blast_id: int, s: Session | None = None) -> bool:
        """Whether the blast is a follow-up that asks its choice again (remembered: it never
        changes). Asked in the claim's transaction when there is one: on SQLite it holds the
        write lock, which another transaction would wait for."""
        if blast_id not in self._follow_ups:
            query = (select(Blast.follow_up_selector.is_not(None) & Blast.parent_blast_id.is_not(None))
                     .where(Blast.id == blast_id))
            if s is None:
                with transaction(self.engine) as own:
                    self._follow_ups[blast_id] = bool(own.scalar(query))
            else:
                self._follow_ups[blast_id] = bool(s.scalar(query))
        return self._follow_ups[blast_id]

    def _moved_on(self, s: Session, claim: Claim, now: dt.datetime) -> bool:
        """Whether the claimed follow-up recipient no longer matches its choice; if so they are
        taken off it, counted, and not messaged."""
        if followups.still_wanted(s, blast_id=claim.blast_id, phone_number=claim.phone_number, now=now):
            return False
        queue.withdraw_claim(s, claim=claim, worker=self.name)
        log.info("blast %d: a recipient no longer matches the follow-up's choice and was left out",
                 claim.blast_id)
        return True

    # -- sending and storing the answer -----------------------------------------------------

    def _send(self, claim: Claim, *, device: str) -> None:
        """Send from the blast's device, the one its pacing was counted against."""
        claimed = claim.claimed_at
        try:
            result = self.client.send_text(to=to_gateway(claim.phone_number), message=claim.message_text,
                                           device=device)
        except GatewayError as exc:
            failure = exc
        except ConfigError as exc:  # raised before the request left: a setting is wrong
            self._store(functools.partial(self._misconfigured, claim, exc, device=device, claimed=claimed),
                        claim=claim)
            self.outcomes["held"] += 1
            return
        except Exception as exc:  # a defect while sending: the request may have gone out
            log.error("a send failed with an unexpected %s; its message is marked unknown. Raised at:\n%s",
                      type(exc).__name__, where_raised(exc))
            failure = unknown_outcome("its answer could not be read")
        else:
            self._accepted_send(claim, result, device=device, claimed=claimed)
            return
        self._answered(device, claimed=claimed)
        kind = trouble.kind_of(failure)
        if kind is None and not failure.pauses_blast:  # refused for its number: WSAPME is answering
            self._trouble.clear(device)
        in_a_row = self._trouble.count(device, kind) if kind else 0
        failed = functools.partial(self._failed, claim, failure, device=device, claimed=claimed,
                                   in_a_row=in_a_row)
        outcome = self._store(failed, claim=claim) or "unknown"
        self.outcomes[outcome] += 1
        if isinstance(failure, GatewayUnreachable):
            self.unreached[outcome] += 1

    def _accepted_send(self, claim: Claim, result: SendResult, *, device: str, claimed: dt.datetime) -> None:
        self._answered(device, claimed=claimed)
        self._trouble.clear(device)
        at = utcnow()
        self._store(functools.partial(self._accepted, claim, result, at), claim=claim,
                    message_id=result.message_id)
        self.outcomes["accepted"] += 1
        if claim.blast_id not in self._dated:
            self._date_blast(claim.blast_id, at)
        if self.after_send is not None:
            self.after_send(result.message_id)

    def _answered(self, device: str, *, claimed: dt.datetime) -> None:
        # The slot moves before the answer is stored: another worker waits while the row is
        # being sent (`queue.call_out`), then finds the gap already counted from this answer.
        if self.pacing:
            self._keep_gap(device, claimed=claimed)

    def _store(self, write: Callable[[], T], *, claim: Claim, message_id: str | None = None) -> T | None:
        """Store an answer, riding out a database outage (`database_away`) for as long as the
        claim's lease lasts; if the database does not come back by then (or refuses the answer) the
        lease expires and the recipient is marked unknown, never sent again, and the log keeps
        the recipient and the gateway's message id, to be matched by hand. Returns what `write`
        returns; None when it could not be stored."""
        # Given up a little before the lease ends: once it has, another worker's housekeeping
        # marks the row unknown, and a person may send it again.
        give_up_at = claim.lease_until - dt.timedelta(seconds=STORE_MARGIN_SECONDS)
        delay = 0.5
        while True:
            try:
                return write()
            except IntegrityError:
                # The answer clashes with what is stored (its message id is another message's):
                # waiting will not change that. Left to its lease: unknown, for a person to decide.
                self._not_stored(claim, message_id, "it clashes with a stored message")
                return None
            except DBAPIError as exc:
                if not database_away(exc):
                    # Refused for what was asked (a message id longer than its column, say):
                    # asked again, it is refused again, and the worker would stall for the lease.
                    self._not_stored(claim, message_id, f"the database refused it ({type(exc).__name__})")
                    return None
                left = (give_up_at - utcnow()).total_seconds()
                if left <= 0:
                    self._not_stored(claim, message_id, "the database stayed unavailable for its lease")
                    return None
                wait = min(delay, left)
                log.warning("could not store a send's answer yet; retrying in %.1fs", wait)
                time.sleep(wait)
                delay = min(delay * 2, STORE_RETRY_CAP_SECONDS)

    def _not_stored(self, claim: Claim, message_id: str | None, why: str) -> None:
        # The ids only: never the message's text, nor anything of the gateway's settings.
        log.error("the answer for recipient %d of blast %d (message id %s) could not be stored: %s. "
                  "It is marked unknown; match it by hand", claim.recipient_id, claim.blast_id,
                  message_id or "none given", why)

    def _accepted(self, claim: Claim, result: SendResult, at: dt.datetime) -> None:
        answer = {
            "claim": claim, "status": sent_status(result), "at": at, "event": {"answer": result.raw},
            "updates": {**result.columns(), "error": None},
        }
        if self._direct is not None and self._direct.settle(**answer):
            return
        # SQLite, or the row moved on while the gateway answered (say, its lease expired):
        # the status engine decides, in a transaction.
        with transaction(self.engine) as s:
            queue.settle(s, **answer)

    def _failed(
        self, claim: Claim, exc: GatewayError, *, device: str, claimed: dt.datetime, in_a_row: int
    ) -> str:
        """Store a refused or unanswered try; `in_a_row` of the device's sends, this one too,
        ended the same way (`trouble.kind_of`). Returns its `outcomes` key."""
        now = utcnow()
        event = {"error": type(exc).__name__, "message": exc.message}
        with transaction(self.engine) as s:
            if exc.accepted is None:
                queue.settle(s, claim=claim, status=Status.UNKNOWN, at=now, event=event,
                             updates={"error": exc.message})
                # The gateway is failing: one or two unknown sends, not five hundred.
                if exc.pauses_blast:
                    self._pause_for(s, claim, exc.message, device=device)
                elif self._trouble.down(s, device, trouble.UNKNOWN, in_a_row):
                    self._pause_for(s, claim, trouble.pause_words(trouble.UNKNOWN, exc, in_a_row=in_a_row),
                                    device=device)
                return "unknown"
            back = functools.partial(self._put_back, s, claim, device=device, claimed=claimed)
            if exc.pauses_blast:
                back(pause=exc.message, whole_device=True)
                return "held"
            if isinstance(exc, RateLimited):  # a wait, not a try: the message was never looked at
                if self._trouble.down(s, device, trouble.SLOW_DOWN, in_a_row):
                    back(pause=trouble.pause_words(trouble.SLOW_DOWN, exc, in_a_row=in_a_row),
                         whole_device=True)
                    return "held"
                back(retry_at=self._hold(s, device, now, self._backoff(in_a_row, exc)), error=exc.message)
                return "retrying"
            if exc.retryable:
                # Out of tries, it waits for a person too: a message the gateway proved it did
                # not take is never failed, as a failed one is never sent again.
                # Out of tries, the blast waits; WSAPME down for the device, all its blasts do.
                out_of_tries = claim.attempts >= self.settings.send_max_attempts
                down = not out_of_tries and self._trouble.down(s, device, trouble.NOT_TAKEN, in_a_row)
                if out_of_tries or down:
                    # WSAPME down for the device ends by itself (`blasts.try_again_by_itself`); a
                    # message out of tries, and a blast a person paused, wait for a person.
                    back(pause=trouble.pause_words(trouble.NOT_TAKEN, exc, in_a_row=in_a_row, by_itself=down),
                         held=trouble.pause_words(trouble.NOT_TAKEN, exc, in_a_row=in_a_row),
                         whole_device=down)
                    return "held"
                wait = self._backoff(max(claim.attempts, in_a_row), exc)
                back(retry_at=self._hold(s, device, now, wait), error=exc.message, count_attempt=True)
                return "retrying"
            queue.settle(s, claim=claim, status=Status.FAILED, at=now, event=event,
                         updates={"error": exc.message})  # refused for its number, or so it seems
            if in_a_row and self._trouble.down(s, device, trouble.REFUSED, in_a_row):
                self._pause_for(s, claim, trouble.pause_words(trouble.REFUSED, exc, in_a_row=in_a_row),
                                device=device)
            return "failed"

    def _misconfigured(self, claim: Claim, exc: ConfigError, *, device: str, claimed: dt.datetime) -> None:
        with transaction(self.engine) as s:
            self._put_back(s, claim, device=device, claimed=claimed, pause=exc.message)

    def _put_back(
        self, s: Session, claim: Claim, *, device: str, claimed: dt.datetime, pause: str | None = None,
        retry_at: dt.datetime | None = None, error: str | None = None, count_attempt: bool = False,
        whole_device: bool = False, held: str | None = None,
    ) -> None:
        """The message did not leave: back in the queue, and off the device's count for the day
        (it is counted when it goes). With `pause`, nothing else goes until a person acts (or the
        pause ends by itself, as its words say): the try is not counted, and the blast is paused
        with that reason (with `whole_device`, every blast sending from the device; `held`, the
        reason for a blast a person had paused: `_pause_for`)."""
        if queue.release(s, claim=claim, worker=self.name, retry_at=retry_at, error=pause or error,
                         count_attempt=count_attempt) and self.pacing:
            row = s.get(Device, device, with_for_update=True)
            if row is not None:
                pacing.take_back_send(row, claimed=claimed, zone=self.settings.timezone)
        if pause is not None:
            self._pause_for(s, claim, pause, device=device if whole_device else None, held=held)

    def _pause_for(
        self, s: Session, claim: Claim, reason: str, *, device: str | None = None, held: str | None = None
    ) -> None:
        """Pause the claim's blast with the reason its page shows, unless it was cancelled or
        paused otherwise than by a person meanwhile. With `device`, the trouble is the device's
        or WSAPME's, not this message's: every blast sending from the device is paused with that
        reason, as its next message would fare no better (a blast and its follow-up sending at
        once do not each leave unknown sends)."""
        paused: dict[str, list[int]] = {}
        if blasts.change_state(s, blast_id=claim.blast_id, from_states=(blasts.S.SENDING,),
                               to_state=blasts.S.PAUSED, reason=reason, paused_by=PausedBy.GATEWAY):
            paused.setdefault(reason, []).append(claim.blast_id)
        # A person who paused the blast while its message was out hears why it did not go:
        # resumed, it would fail the same way. With `held`'s words, which never say that the
        # pause ends by itself: the person's pause stands.
        elif blasts.change_state(s, blast_id=claim.blast_id, from_states=(blasts.S.PAUSED,),
                                 provided=Blast.paused_by == PausedBy.PERSON, to_state=blasts.S.PAUSED,
                                 reason=held or reason, paused_by=PausedBy.GATEWAY):
            paused.setdefault(held or reason, []).append(claim.blast_id)
        others = [] if device is None else s.scalars(
            select(Blast.id).where(Blast.device == device, Blast.state == blasts.S.SENDING,
                                   Blast.id != claim.blast_id).order_by(Blast.id)).all()
        paused.setdefault(reason, []).extend(blast_id for blast_id in others if blasts.change_state(
            s, blast_id=blast_id, from_states=(blasts.S.SENDING,), to_state=blasts.S.PAUSED,
            reason=reason, paused_by=PausedBy.GATEWAY))
        for words, ids in paused.items():
            if ids:
                # Said as it happens, for whoever watches the worker's log: the blast page says it
                # too, and the worker's exit names every blast it paused.
                log.warning("%s %s paused: %s", "blast" if len(ids) == 1 else "blasts",
                            ", ".join(map(str, ids)), words)

    def _backoff(self, attempts: int, exc: GatewayError) -> float:
        """Seconds to wait after the `attempts`-th refusal in a row: growing, and never sooner
        than the gateway's Retry-After."""
        wait = min(300.0, 5.0 * 2 ** (attempts - 1)) * self.rng.uniform(0.8, 1.2)
        return max(wait, exc.retry_after or 0.0)

    def _hold(self, s: Session, device_id: str, now: dt.datetime, seconds: float) -> dt.datetime:
        """Send nothing more from the device for `seconds`: the gateway turned it away for now,
        and the next recipient would fare no better. Kept here, and with pacing in the device's
        slot, which every worker honours. Returns when it ends."""
        until = now + dt.timedelta(seconds=seconds)
        self._held[device_id] = max(self._held.get(device_id, until), until)
        self._trouble.lasts_until(device_id, until)
        row = s.get(Device, device_id, with_for_update=True) if self.pacing else None
        if row is not None and (row.next_send_at is None or row.next_send_at < until):
            row.next_send_at = until
        return until

    def _date_blast(self, blast_id: int, at: dt.datetime) -> None:
        """The blast's date follows its first message (`blasts.date_first_send`): one statement a
        blast for each worker, not one a message."""
        try:
            with transaction(self.engine) as s:
                blasts.date_first_send(s, blast_id=blast_id, at=at, zone=self.settings.timezone)
        except DBAPIError as exc:  # the date foreseen at launch stays
            log.warning("could not date a blast by its first send (%s)", type(exc).__name__)
            return
        self._dated.add(blast_id)

    def _keep_gap(self, device_id: str, *, claimed: dt.datetime) -> None:
        try:
            with transaction(self.engine) as s:
                device = s.get(Device, device_id, with_for_update=True)
                if device is not None:
                    pacing.keep_gap_after_send(device, claimed=claimed, finished=utcnow())
        except DBAPIError as exc:  # the slot counted at the claim still holds
            log.warning("could not push the device's next slot after a send (%s)", type(exc).__name__)
