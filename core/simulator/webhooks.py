"""The simulator's webhook poster: fires scheduled events on time and retries failed posts."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)

POST_TIMEOUT = (2.0, 5.0)  # (connect, read) seconds, as a gateway would allow a webhook
IDLE_WAKE = 1.0  # the longest the loop sleeps without re-checking for stop


@dataclass(frozen=True)
class Outgoing:
    """A fired event's post: where, what, and its sequence number in the simulator's record."""

    seq: int
    url: str
    content_type: str
    body: bytes


@dataclass(order=True)
class _Job:
    due: float
    order: int
    event: Any = field(compare=False)  # what `fire` turns into a post
    outgoing: Outgoing | None = field(compare=False, default=None)
    attempt: int = field(compare=False, default=0)


class WebhookPoster:
    """One thread, one queue ordered by due time.

    `fire(event)` runs when an event falls due: it records the emission and returns the post
    to make (None when no webhook URL is set). `report(seq, delivered, http_status)` hears
    each attempt. A failed post (non-2xx or no connection) is retried with doubling waits,
    `max_attempts` in all, as a real gateway would.
    """

    def __init__(
        self,
        *,
        fire: Callable[[Any], Outgoing | None],
        report: Callable[[int, bool, int | None], None],
        max_attempts: int,
        retry_base: float,
        retry_cap: float,
    ) -> None:
        self._fire = fire
        self._report = report
        self._max_attempts = max(1, max_attempts)
        self._retry_base = retry_base
        self._retry_cap = retry_cap
        self._queue: list[_Job] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._busy = False
        self._stopped = False
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="sim-webhooks", daemon=True)
        self._thread.start()

    def schedule(self, event: Any, *, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._queue, _Job(time.monotonic() + delay, next(self._order), event))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued or being posted; False if `timeout` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, IDLE_WAKE))
            return True

    def stop(self, *, timeout: float = 5.0) -> None:
        """Stop firing; events not yet due are dropped, as when a gateway goes down."""
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        self._session.close()

    def _run(self) -> None:
        while True:
            job = self._next_due()
            if job is None:
                return
            try:
                self._handle(job)
            except Exception:  # one bad event must not stop every later webhook
                log.exception("simulator webhook failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _next_due(self) -> _Job | None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                if self._queue and self._queue[0].due <= now:
                    self._busy = True
                    return heapq.heappop(self._queue)
                wait = self._queue[0].due - now if self._queue else IDLE_WAKE
                self._cond.wait(min(wait, IDLE_WAKE))
            return None

    def _handle(self, job: _Job) -> None:
        if job.outgoing is None:
            job.outgoing = self._fire(job.event)
            if job.outgoing is None:
                return
        delivered, http_status = self._post(job.outgoing)
        self._report(job.outgoing.seq, delivered, http_status)
        job.attempt += 1
        if delivered or job.attempt >= self._max_attempts:
            return
        wait = min(self._retry_cap, self._retry_base * 2 ** (job.attempt - 1))
        with self._cond:
            if not self._stopped:
                job.due = time.monotonic() + wait
                heapq.heappush(self._queue, job)

    def _post(self, outgoing: Outgoing) -> tuple[bool, int | None]:
        try:
            response = self._session.post(
                outgoing.url,
                data=outgoing.body,
                headers={"Content-Type": outgoing.content_type},
                timeout=POST_TIMEOUT,
            )
        except requests.RequestException as exc:
            log.info("webhook to %s failed: %s", receiver_address(outgoing.url), type(exc).__name__)
            return False, None
        return 200 <= response.status_code < 300, response.status_code


def receiver_address(url: str) -> str:
    """Where a webhook goes, without the path: the receiver's secret is in it."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
