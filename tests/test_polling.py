"""Polling: only unread, young messages; unknown answers change nothing; backoff; refresh."""

from __future__ import annotations

import datetime as dt
import math
import threading
import time

import pytest
import requests
from sqlalchemy import Engine, select

from core.config import SANDBOX_DEVICE
from core.db import transaction
from core.models import Blast, BlastRecipient, StatusHistory, WebhookInbox, utcnow
from core.polling import Poller, poll_round, polling_wanted
from core.statuses import Status
from core.wsapme.answers import StatusResult
from core.wsapme.failures import GatewayBusy
from tests.sending.support import launched_blast, settings_for, worker_for
from tests.support.simulator import client_for, running_simulator


@pytest.fixture
def sim():
    with running_simulator() as simulator:  # no webhook URL: acks are only visible by asking
        yield simulator


def _sent_blast(engine: Engine, sim, n: int = 6) -> int:  # type: ignore[no-untyped-def]
    blast_id = launched_blast(engine, n)
    worker_for(engine, sim).run(once=True)
    assert sim.wait_idle(5)
    return blast_id


def test_polling_brings_statuses_up_to_what_the_gateway_says(engine: Engine, sim) -> None:
    blast_id = _sent_blast(engine, sim)
    settings = settings_for(poll_batch_size=100)
    result = poll_round(engine, client_for(sim), settings=settings)
    assert result.asked == 6 and result.errors == 0
    emitted = sim.emitted().statuses
    with transaction(engine) as s:
        rows = s.scalars(select(BlastRecipient).where(BlastRecipient.blast_id == blast_id)).all()
        for row in rows:
            expected = emitted[row.message_id]
            if expected in ("READ_ACK", "DELIVERY_ACK", "SERVER_ACK"):
                assert row.status == expected
        sources = set(s.scalars(select(StatusHistory.source)))
    assert result.changed >= 1 and sources == {"send", "polling"}


def test_unknown_answers_change_nothing_and_back_off(engine: Engine, sim) -> None:
    blast_id = _sent_blast(engine, sim, n=2)
    sim.set_fault("empty_lookup", times=None)
    settings = settings_for(poll_batch_size=100, poll_interval_seconds=60)
    before = {r: s for r, s in _statuses(engine, blast_id).items()}
    result = poll_round(engine, client_for(sim), settings=settings)
    assert result.unknown == 2 and result.changed == 0
    assert _statuses(engine, blast_id) == before
    # Backed off: a second round right away asks no one.
    assert poll_round(engine, client_for(sim), settings=settings).asked == 0
    with transaction(engine) as s:
        assert {r.poll_failures for r in s.scalars(select(BlastRecipient))} == {1}


def test_read_and_old_messages_are_not_polled(engine: Engine, sim) -> None:
    blast_id = _sent_blast(engine, sim, n=3)
    with transaction(engine) as s:
        rows = s.scalars(
            select(BlastRecipient).where(BlastRecipient.blast_id == blast_id).order_by(BlastRecipient.id)
        ).all()
        rows[0].status = Status.READ_ACK.value
        rows[1].sent_at = utcnow() - dt.timedelta(days=10)
    result = poll_round(engine, client_for(sim), settings=settings_for(poll_batch_size=100))
    assert result.asked == 1


def test_refresh_one_blast_ignores_the_backoff(engine: Engine, sim) -> None:
    blast_id = _sent_blast(engine, sim, n=2)
    settings = settings_for(poll_batch_size=100)
    poll_round(engine, client_for(sim), settings=settings)
    again = poll_round(engine, client_for(sim), settings=settings, blast_id=blast_id)
    unread = sum(
        1 for s in _statuses(engine, blast_id).values() if s in ("PENDING", "SERVER_ACK", "DELIVERY_ACK")
    )
    assert again.asked == unread


def test_a_refusing_gateway_stops_the_round(engine: Engine, sim) -> None:
    _sent_blast(engine, sim, n=3)
    sim.set_fault("bad_token", times=None, endpoint="status")
    result = poll_round(engine, client_for(sim), settings=settings_for(poll_batch_size=100))
    assert result.errors == 1 and result.stopped_by


def test_a_read_answer_keeps_the_gateways_delivery_time(engine: Engine, sim) -> None:
    """The received stage is when the gateway delivered, not when we asked; read is when that
    message's own look-up answered, not when the round began."""
    _sent_blast(engine, sim)
    time.sleep(1.1)  # the poll comes a while after the gateway saw the delivery
    client = _Clocked(client_for(sim))
    poll_round(engine, client, settings=settings_for(poll_batch_size=100))
    read = [m for m, status in sim.emitted().statuses.items() if status == "READ_ACK"]
    assert read, "the seed must read some messages for this test to mean anything"
    with transaction(engine) as s:
        rows = s.scalars(select(BlastRecipient).where(BlastRecipient.message_id.in_(read))).all()
        for row in rows:
            assert row.status == "READ_ACK" and row.message_c2s_timestamp
            assert row.delivered_at == dt.datetime.fromtimestamp(row.message_c2s_timestamp, dt.UTC)
            assert row.read_timestamp is not None and row.read_timestamp >= client.answered[row.message_id]
            assert row.last_polled_at is not None and row.last_polled_at >= client.answered[row.message_id]
        assert len(rows) == len(read)


@pytest.mark.parametrize(("fault", "options"), [("slow_answer", {"delay": 3.0}), ("drop_connection", {})])
def test_a_gateway_that_does_not_answer_stops_the_round(engine: Engine, sim, fault, options) -> None:
    """Otherwise every message waits out the whole timeout, and each is backed off for it."""
    _sent_blast(engine, sim, n=4)
    sim.set_fault(fault, times=None, endpoint="status", **options)
    client = client_for(sim, read_timeout=0.5)
    result = poll_round(engine, client, settings=settings_for(poll_batch_size=100))
    assert (result.asked, result.errors) == (0, 1)
    assert result.stopped_by and result.stopped_by.startswith("WSAPME did not answer")
    assert _poll_failures(engine) == {0}


def test_a_wrong_setting_stops_the_round_with_its_words_and_backs_no_one_off(engine: Engine, sim) -> None:
    """A token no request can carry fails before anything is asked: one reason, said where
    the round is reported, rather than a failure logged again at every interval."""
    _sent_blast(engine, sim, n=3)
    client = client_for(sim, token="t0ken\u20ac")  # as typed, outside what a header can hold
    result = poll_round(engine, client, settings=settings_for(poll_batch_size=100))
    assert (result.asked, result.errors) == (0, 1)
    assert result.stopped_by and "WSAPME_TOKEN" in result.stopped_by
    assert _poll_failures(engine) == {0}


def test_an_offline_device_stops_the_round_and_backs_no_one_off(engine: Engine, sim) -> None:
    """Not "unknown" for every message: one request, the round stops with the reason, and the
    messages are asked about as usual once the device is back."""
    _sent_blast(engine, sim, n=4)
    sim.set_fault("device_offline", times=None)  # as the real gateway does, look-ups refuse too
    session = _CountingSession()
    settings = settings_for(poll_batch_size=100, poll_interval_seconds=60)
    result = poll_round(engine, client_for(sim, session=session), settings=settings)
    assert (result.asked, result.unknown, result.errors, session.posts) == (0, 0, 1, 1)
    assert result.stopped_by == "The WhatsApp device is offline: open WSAPME and reconnect it."
    assert _poll_failures(engine) == {0}
    sim.clear_faults()
    assert poll_round(engine, client_for(sim), settings=settings).asked == 3  # all but the one just asked


A_DAY = 24 * 3600.0


@pytest.mark.parametrize(("header", "kept"), [("300", 300.0), ("99999999999", A_DAY)])
def test_a_rate_limited_round_carries_the_gateways_wait(engine: Engine, sim, header, kept) -> None:
    """The wait the gateway asked for travels with the round, bounded to a day."""
    _sent_blast(engine, sim, n=3)
    sim.set_fault("rate_limited", times=None, endpoint="status", retry_after=header)
    result = poll_round(engine, client_for(sim), settings=settings_for(poll_batch_size=100))
    assert (result.asked, result.errors, result.retry_after) == (0, 1, kept)
    assert result.stopped_by and result.stopped_by.startswith("WSAPME asked to slow down")


def test_refresh_within_the_gateways_wait_does_not_ask_and_says_when(engine: Engine, sim) -> None:
    """A "Refresh statuses" soon after a 429 would only be turned away again (and tell the
    gateway we do not listen): nothing is asked, and the words say when to try."""
    blast_id = _sent_blast(engine, sim, n=3)
    settings = settings_for(poll_batch_size=100)
    sim.set_fault("rate_limited", times=1, endpoint="status", retry_after="300")
    assert poll_round(engine, client_for(sim), settings=settings).retry_after == 300.0
    session = _CountingSession()
    again = poll_round(engine, client_for(sim, session=session), settings=settings, blast_id=blast_id)
    assert (again.asked, again.errors, session.posts) == (0, 0, 0)
    assert again.stopped_by == "WSAPME asked for a pause in status checks: try again in 5 minutes."
    assert again.retry_after is not None and 0 < again.retry_after <= 300
    # WSAPME's wait holds back no other gateway: practice mode still asks the sandbox.
    with transaction(engine) as s:
        s.get(Blast, blast_id).device = SANDBOX_DEVICE
    practice = settings_for(poll_batch_size=100, wsapme_token=None)
    assert poll_round(engine, client_for(sim), settings=practice, blast_id=blast_id).asked == 3


@pytest.mark.parametrize(("header", "waits"), [("300", [60.0, 300.0]), ("99999999999", [60.0, A_DAY]),
                                               ("0", [60.0, 60.0])])
def test_the_poller_waits_as_long_as_the_gateway_asked(engine: Engine, sim, header, waits) -> None:
    _sent_blast(engine, sim, n=3)
    sim.set_fault("rate_limited", times=None, endpoint="status", retry_after=header)
    stop = _RecordingStop(rounds=1)
    _poller(engine, client_for(sim)).run(stop)
    assert stop.waits == waits


def test_the_poller_does_not_ask_again_within_the_gateways_wait(engine: Engine, sim) -> None:
    """Even once its own wait is over (a shorter interval, a restart), the next round keeps to
    the gateway's: nothing is asked, and the loop waits out what is left."""
    _sent_blast(engine, sim, n=3)
    sim.set_fault("rate_limited", times=1, endpoint="status", retry_after="300")
    session = _CountingSession()
    stop = _RecordingStop(rounds=2)
    _poller(engine, client_for(sim, session=session)).run(stop)
    assert session.posts == 1 and stop.waits[:2] == [60.0, 300.0]
    assert 0 < stop.waits[2] <= 300


@pytest.mark.parametrize(("retry_after", "wait"), [(math.inf, A_DAY), (math.nan, 60.0), (-5.0, 60.0)])
def test_a_senseless_wait_neither_crashes_nor_stops_polling(engine: Engine, sim, retry_after, wait) -> None:
    """The simulator sends no Retry-After with a 503, so the gateway's error is raised here."""
    _sent_blast(engine, sim, n=2)
    stop = _RecordingStop(rounds=1)
    poller = _poller(engine, _Busy(retry_after))
    poller.run(stop)
    assert poller.last_round is not None and poller.last_round.errors == 1
    assert stop.waits == [60.0, wait]


def _poller(engine: Engine, client) -> Poller:  # type: ignore[no-untyped-def]
    settings = settings_for(status_polling="on", poll_batch_size=100, poll_interval_seconds=60)
    return Poller(engine=engine, client=client, settings=settings)


class _RecordingStop(threading.Event):
    """Notes how long the poller chose to wait each time, without waiting; set after `rounds`."""

    def __init__(self, *, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return len(self.waits) > self.rounds


class _Busy:
    """A gateway answering every look-up with HTTP 503 and the given Retry-After."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after

    def message_status(self, **kwargs) -> StatusResult | None:  # type: ignore[no-untyped-def]
        raise GatewayBusy("WSAPME had a problem on its side (HTTP 503).", retry_after=self.retry_after)


class _Clocked:
    """The real client, noting when each look-up's answer came back."""

    def __init__(self, client) -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.answered: dict[str, dt.datetime] = {}

    def message_status(self, *, message_id: str, **kwargs) -> StatusResult | None:  # type: ignore[no-untyped-def]
        answer = self.client.message_status(message_id=message_id, **kwargs)
        self.answered[message_id] = utcnow()
        return answer


class _CountingSession(requests.Session):
    posts = 0

    def post(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.posts += 1
        return super().post(*args, **kwargs)


def _poll_failures(engine: Engine) -> set[int]:
    with transaction(engine) as s:
        return set(s.scalars(select(BlastRecipient.poll_failures)))


@pytest.mark.parametrize(
    ("mode", "webhook_age", "wanted"),
    [
        ("off", None, False),
        ("on", dt.timedelta(minutes=1), True),
        ("auto", None, True),
        ("auto", dt.timedelta(minutes=1), False),
        ("auto", dt.timedelta(hours=2), True),
    ],
)
def test_auto_polling_only_while_webhooks_are_silent(engine: Engine, mode, webhook_age, wanted) -> None:
    now = utcnow()
    if webhook_age is not None:
        with transaction(engine) as s:
            s.add(WebhookInbox(body=b"{}", received_at=now - webhook_age, state="applied", kind="ack"))
    with transaction(engine) as s:
        assert polling_wanted(s, settings=settings_for(status_polling=mode), now=now) is wanted


@pytest.mark.parametrize(
    ("events", "wanted"),
    [
        ([("message", dt.timedelta(minutes=1))], True),
        ([("ack", dt.timedelta(hours=2)), ("message", dt.timedelta(minutes=1))], True),
        ([("message", dt.timedelta(minutes=1)), ("ack", dt.timedelta(minutes=3))], False),
        ([("mixed", dt.timedelta(minutes=1))], False),
        ([("other", dt.timedelta(minutes=1)), (None, dt.timedelta(seconds=5))], True),
    ],
)
def test_only_receipts_keep_auto_polling_off(engine: Engine, events, wanted) -> None:
    """With "Enable status" off in WSAPME, replies keep coming and receipts never do: replies
    alone must not keep polling off, or messages stay at "sent" for ever."""
    now = utcnow()
    with transaction(engine) as s:
        for kind, age in sorted(events, key=lambda e: -e[1]):  # stored oldest first, as they came
            s.add(WebhookInbox(body=b"{}", received_at=now - age, state="applied", kind=kind))
            s.flush()
    with transaction(engine) as s:
        assert polling_wanted(s, settings=settings_for(status_polling="auto"), now=now) is wanted


def _statuses(engine: Engine, blast_id: int) -> dict[int, str]:
    with transaction(engine) as s:
        return dict(
            s.execute(
                select(BlastRecipient.id, BlastRecipient.status).where(BlastRecipient.blast_id == blast_id)
            ).all()
        )


def test_polling_asks_only_about_messages_sent_through_this_gateway(engine: Engine, sim) -> None:
    """A blast sent in practice mode, still unread when the token was set: WSAPME is not asked
    about the sandbox's message ids, neither by the background round nor by its "Refresh"."""
    blast_id = _sent_blast(engine, sim, n=3)
    with transaction(engine) as s:
        s.get(Blast, blast_id).device = SANDBOX_DEVICE
    settings = settings_for(poll_batch_size=100)
    assert poll_round(engine, client_for(sim), settings=settings).asked == 0
    assert poll_round(engine, client_for(sim), settings=settings, blast_id=blast_id).asked == 0
    # In practice mode again, the sandbox is asked about them.
    practice = settings_for(poll_batch_size=100, wsapme_token=None)
    assert poll_round(engine, client_for(sim), settings=practice, blast_id=blast_id).asked == 3
