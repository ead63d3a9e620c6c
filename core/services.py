"""Background work inside the dashboard's server: the sandbox gateway, the send worker, polling."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.config import Settings
from core.db import transaction
from core.funnel import fold_rollup_deltas
from core.gateway import make_client, stop_sandbox
from core.models import utcnow
from core.polling import Poller
from core.sending.blasts import complete_finished
from core.sending.queue import expire_leases, say_expired
from core.sending.worker import SendWorker, database_away
from core.webhook.inbox import error_words, replay_after_send, replay_waiting
from core.webhook.route import turned_away
from core.webhook.secret import WEBHOOK_PATH, current_secret

log = logging.getLogger(__name__)


def local_webhook_url(engine: Engine, *, settings: Settings, local_url: str) -> str:
    """Where the sandbox gateway posts its webhooks: this very server, on loopback."""
    with transaction(engine) as s:
        secret = current_secret(s, settings=settings)
    return f"{local_url.rstrip('/')}{WEBHOOK_PATH}{secret}"


def start_services(engine: Engine, *, settings: Settings, local_url: str) -> Callable[[], None]:
    """Start the background threads; returns the function that stops them all."""
    stop = threading.Event()
    threads: list[threading.Thread] = []
    client = make_client(
        settings, webhook_url=local_webhook_url(engine, settings=settings, local_url=local_url)
    )

    def spawn(name: str, target: Callable[[threading.Event], object]) -> None:
        thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
        thread.start()
        threads.append(thread)

    if settings.run_worker:
        worker = SendWorker(
            engine=engine,
            client=client,
            settings=settings,
            after_send=lambda message_id: replay_after_send(engine, message_ids=[message_id]),
        )
        spawn("send-worker", worker.run)
    poller = Poller(engine=engine, client=client, settings=settings)
    spawn("status-poller", poller.run)
    spawn("webhook-replay", lambda stopped: _replay_loop(engine, stopped))
    log.info(
        "background services started: worker %s, polling %s",
        "on" if settings.run_worker else "off",
        settings.status_polling,
    )

    def stop_all() -> None:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        stop_sandbox()

    return stop_all


REPLAY_SECONDS = 30.0
FOLD_SECONDS = 5.0


def _replay_loop(engine: Engine, stop: threading.Event) -> None:
    """Events that came before their send was stored, or whose request failed half-way,
    are applied here even when no new webhook arrives to drive the replay. The status
    deltas webhooks leave on PostgreSQL are folded here too, so the dashboard's counts stay
    quick to read when no send worker runs in any process."""
    next_replay = time.monotonic() + REPLAY_SECONDS
    outage = Outage()
    while not stop.wait(FOLD_SECONDS):
        turned_away.say_unsaid()
        try:
            with transaction(engine) as session:
                fold_rollup_deltas(session)
        except Exception as exc:
            outage.failed(exc, "folding status counts")
            continue
        outage.back()
        if time.monotonic() < next_replay:
            continue
        next_replay = time.monotonic() + REPLAY_SECONDS
        try:
            # A send whose worker vanished, with no worker left to find it (RUN_WORKER off
            # here, the others stopped): unknown, so a reply or receipt can settle it.
            with transaction(engine) as session:
                now = utcnow()
                expired = expire_leases(session, now=now)
                if expired:  # a blast whose last message that was: finished now
                    complete_finished(session, now=now)
            say_expired(expired)
            replay_waiting(engine)
        except Exception as exc:
            outage.failed(exc, "replaying waiting webhooks")


def away(exc: BaseException) -> bool:
    """Whether an error means the database could not be reached or the connection was lost
    (`worker.database_away`), not an answer about a statement: a defect keeps its traceback."""
    if isinstance(exc, DBAPIError):
        return database_away(exc)
    return isinstance(exc, PoolTimeout | OSError | psycopg.OperationalError)


class Outage:
    """The database away: said in one line as it goes and one as it comes back, not a
    traceback every few seconds while it is away (what went wrong is the same each time)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None

    def failed(self, exc: BaseException, doing: str) -> None:
        """`doing` failed with `exc`: the database away is said once (`away`); anything else
        keeps its traceback, each time."""
        if away(exc):
            self.away(exc)
        else:
            log.exception("%s failed; trying again shortly", doing)

    def away(self, exc: BaseException) -> None:
        if self._since is None:
            self._since = self._clock()
            log.warning("the database is unavailable (%s): counts and waiting webhooks are brought up to "
                        "date once it is back", error_words(exc))

    def back(self) -> None:
        if self._since is not None:
            log.warning("the database is back after %.0f s", self._clock() - self._since)
            self._since = None
