"""The worker when WSAPME is down, slow to answer, or set up wrong: it pauses the blast and
says why, loses no one, sends no one twice, and spends none of a message's tries on waiting."""

from __future__ import annotations

import datetime as dt
import logging
import re
import sqlite3
import threading
import time

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError, ProgrammingError

from core import health
from core.db import transaction
from core.models import Blast, BlastRecipient, Device, utcnow
from core.sending import blasts, trouble
from core.sending.worker import SendWorker
from tests.sending.support import (
    AroundSends,
    blast_state,
    launched_blast,
    phone,
    settings_for,
    statuses,
    worker_for,
)
from tests.support.simulator import TEST_TOKEN, client_for, running_simulator

SENT = {"PENDING", "SERVER_ACK"}


@pytest.fixture
def sim():
    with running_simulator() as simulator:
        yield simulator


def quick(worker: SendWorker) -> SendWorker:
    """The backoff shortened to nothing: these tests are about what is decided, not when."""
    worker._backoff = lambda attempts, exc: 0.0  # type: ignore[method-assign]
    return worker


def rows(engine: Engine, blast_id: int) -> list[BlastRecipient]:
    with transaction(engine) as s:
        found = s.scalars(select(BlastRecipient).where(BlastRecipient.blast_id == blast_id)
                          .order_by(BlastRecipient.id)).all()
        s.expunge_all()
        return list(found)


def resume(engine: Engine, blast_id: int) -> None:
    with transaction(engine) as s:
        blasts.resume(s, blast_id=blast_id)


# A gateway that is down


@pytest.mark.parametrize("outage", ["server_error_503", "connection_refused"])
def test_an_outage_pauses_the_blast_and_fails_no_one(
    engine: Engine, sim, closed_port: int, outage: str
) -> None:
    """Each try used to cost a message one of its tries, then failed it for good: a long outage
    failed a recipient a minute and the blast ended "completed". A few refusals in a row mean
    WSAPME is down: the blast waits for a person, the health page says so, nobody is lost."""
    blast_id = launched_blast(engine, 10)
    worker = quick(worker_for(engine, sim, send_max_attempts=5))
    if outage == "connection_refused":
        worker.client.api_url = f"http://127.0.0.1:{closed_port}"
        cause = "Could not reach WSAPME at 127.0.0.1 (connection refused)."
    else:
        sim.set_fault("server_error", times=None, http_status=503)
        cause = "WSAPME had a problem on its side (HTTP 503)."
    worker.run(once=True)

    state, reason = blast_state(engine, blast_id)
    assert state == "paused"
    assert reason.startswith("Sending is paused: messages are not getting through to WSAPME. " + cause)
    assert "Nothing was lost" in reason and "will be tried again" not in reason
    assert "Sending tries again by itself every 5 minutes until WSAPME takes them" in reason
    # Unreachable is as often this server's connection as WSAPME: whoever runs it is asked to look.
    assert ("check this server's internet connection" in reason) == (outage == "connection_refused")
    assert set(statuses(engine, blast_id).values()) == {"QUEUED"}
    assert sum(r.attempts for r in rows(engine, blast_id)) == 2, "the try that paused is not counted"
    with transaction(engine) as s:
        held = health.held_by_gateway(s, settings=settings_for())
    assert [(h.id, h.reason) for h in held] == [(blast_id, reason)], "the health page lists it"

    sim.clear_faults()
    worker.client.api_url = sim.url  # WSAPME is back
    resume(engine, blast_id)
    worker.run(once=True)
    assert set(statuses(engine, blast_id).values()) <= SENT
    assert blast_state(engine, blast_id)[0] == "completed"
    assert all(sim.sent_count(phone(i).lstrip("+")) == 1 for i in range(10))


def _paused_minutes_ago(engine: Engine, minutes: float) -> None:
    """Every paused blast as if paused `minutes` ago: the time that has passed, without waiting."""
    with transaction(engine) as s:
        s.execute(update(Blast).where(Blast.state == "paused")
                  .values(paused_at=utcnow() - dt.timedelta(minutes=minutes)))


def test_a_pause_for_messages_not_getting_through_tries_again_by_itself(engine: Engine, sim) -> None:
    """A blip at nine in the morning had held the day's blast until someone pressed Resume:
    its messages were proven not taken, so sending tries again every few minutes by itself,
    one try each time while WSAPME is still down."""
    ids = [launched_blast(engine, 5) for _ in range(2)]  # one device: both pause, both go on
    sim.set_fault("server_error", times=None, http_status=503)
    worker = quick(worker_for(engine, sim, send_max_attempts=5))
    worker.run(once=True)
    assert {blast_state(engine, i)[0] for i in ids} == {"paused"}
    tried = worker.tried
    _paused_minutes_ago(engine, 4)
    worker.housekeeping(force=True)
    assert {blast_state(engine, i)[0] for i in ids} == {"paused"}, "not before its 5 minutes"

    _paused_minutes_ago(engine, 5.5)
    worker.housekeeping(force=True)  # as a running worker's does every few seconds
    assert {blast_state(engine, i)[0] for i in ids} == {"sending"}
    worker.run(once=True)  # still down: one try, and paused again at once
    assert {blast_state(engine, i)[0] for i in ids} == {"paused"}
    assert worker.tried == tried + 1
    assert sum(r.attempts for i in ids for r in rows(engine, i)) == 2, "its tries are not spent"

    sim.clear_faults()  # WSAPME is back
    _paused_minutes_ago(engine, 5.5)
    worker.housekeeping(force=True)
    worker.run(once=True)
    assert {blast_state(engine, i)[0] for i in ids} == {"completed"}
    assert {status for i in ids for status in statuses(engine, i).values()} <= SENT
    assert len(sim.sent_messages()) == 10, "each message once"


def test_only_a_pause_for_messages_not_getting_through_ends_by_itself(engine: Engine, sim) -> None:
    """Unknown sends wait for a person to decide about them, a refused token for the token to
    be fixed, a message out of tries for a person to look at it, a person's pause for that
    person, and a pause made before pauses ended by themselves as it was made."""
    unknown = launched_blast(engine, 3)
    sim.set_fault("drop_connection", times=2)
    quick(worker_for(engine, sim)).run(once=True)  # two unknowns in a row
    token = launched_blast(engine, 3)
    sim.set_fault("bad_token", times=None)
    quick(worker_for(engine, sim)).run(once=True)
    out_of_tries = launched_blast(engine, 1)
    sim.set_fault("server_error", times=None, http_status=503)
    quick(worker_for(engine, sim, send_max_attempts=1)).run(once=True)
    person, older = launched_blast(engine, 3), launched_blast(engine, 3)
    with transaction(engine) as s:
        blasts.pause(s, blast_id=person)
        s.execute(update(Blast).where(Blast.id == older).values(
            state="paused", paused_by="gateway", state_reason=trouble.NOT_TAKEN_HEAD + " Resume the blast "
            "once WSAPME is back."))
    ids = (unknown, token, out_of_tries, person, older)
    assert [blast_state(engine, i)[0] for i in ids] == ["paused"] * 5
    assert trouble.BY_ITSELF not in blast_state(engine, out_of_tries)[1]
    _paused_minutes_ago(engine, 60)
    worker_for(engine, sim).housekeeping(force=True)
    assert [blast_state(engine, i)[0] for i in ids] == ["paused"] * 5


def test_a_person_who_paused_while_sends_stopped_getting_through_keeps_the_pause(engine: Engine, sim) -> None:
    """WSAPME down for the device as a person pauses the blast whose message is out: the page
    says why nothing went, and the pause stands, not ended by itself five minutes later."""
    first, second = launched_blast(engine, 3), launched_blast(engine, 3)
    sim.set_fault("server_error", times=None, http_status=503)
    sends = []

    def third_send_out(to: str) -> None:
        sends.append(to)
        if len(sends) == 3:  # the send that makes three in a row
            with transaction(engine) as s:
                blast_id = s.scalar(select(BlastRecipient.blast_id).where(
                    BlastRecipient.phone_number == "+" + to.lstrip("+"), BlastRecipient.status == "SENDING"))
                blasts.pause(s, blast_id=blast_id)
                sends.append(blast_id)

    worker = quick(worker_for(engine, sim, send_max_attempts=5))
    worker.client = AroundSends(worker.client, before=third_send_out)
    worker.run(once=True)
    paused_by_hand = sends[3]
    other = second if paused_by_hand == first else first
    reasons = {i: blast_state(engine, i) for i in (first, second)}
    assert {state for state, _ in reasons.values()} == {"paused"}
    assert reasons[paused_by_hand][1].startswith(trouble.NOT_TAKEN_HEAD), "the page says why nothing went"
    assert trouble.BY_ITSELF not in reasons[paused_by_hand][1]
    assert trouble.BY_ITSELF in reasons[other][1]
    _paused_minutes_ago(engine, 10)
    worker.housekeeping(force=True)
    assert (blast_state(engine, paused_by_hand)[0], blast_state(engine, other)[0]) == ("paused", "sending")


def test_when_the_outage_goes_on_after_a_resume_the_blast_pauses_again_at_once(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 5)
    sim.set_fault("server_error", times=None, http_status=503)
    worker = quick(worker_for(engine, sim, send_max_attempts=5))
    worker.run(once=True)
    resume(engine, blast_id)
    worker.run(once=True)
    assert blast_state(engine, blast_id)[0] == "paused"
    assert sum(r.attempts for r in rows(engine, blast_id)) == 2, "the try after the resume is not counted"
    assert set(statuses(engine, blast_id).values()) == {"QUEUED"}


def test_a_message_out_of_tries_waits_for_a_person_rather_than_failing(engine: Engine, sim) -> None:
    """A failed message is never sent again: one the gateway proved it did not take is not
    failed for running out of tries; the blast pauses with it still queued."""
    blast_id = launched_blast(engine, 1)
    sim.set_fault("server_error", times=None, http_status=503)
    quick(worker_for(engine, sim, send_max_attempts=2)).run(once=True)
    (row,) = rows(engine, blast_id)
    assert (row.status, row.attempts) == ("QUEUED", 1)
    assert blast_state(engine, blast_id)[0] == "paused"
    assert sim.sent_count(phone(0).lstrip("+")) == 0


def test_a_refusal_another_worker_got_past_does_not_pause(engine: Engine, sim) -> None:
    """Each worker counts its own sends: two refusals of one worker with a message of another
    taken between them are not "in a row" on the device."""
    blast_id = launched_blast(engine, 6)
    first, second = quick(worker_for(engine, sim)), quick(worker_for(engine, sim))
    sim.set_fault("server_error", times=2, http_status=503)
    first.step()
    first.step()
    assert second.step() is True  # the gateway took this one
    sim.set_fault("server_error", times=1, http_status=503)
    first.step()
    assert blast_state(engine, blast_id)[0] == "sending"
    first.run(once=True)
    assert set(statuses(engine, blast_id).values()) <= SENT


# A gateway that asks to slow down


def test_a_gateway_that_keeps_asking_to_slow_down_pauses_and_spends_no_tries(engine: Engine, sim) -> None:
    """A 429 says "not now", not "not this message": it used to count as a try, so a busy
    hour failed everyone with "Gave up after 3 tries"."""
    blast_id = launched_blast(engine, 3)
    sim.set_fault("rate_limited", times=None, retry_after="0.3")
    quick(worker_for(engine, sim, send_max_attempts=3)).run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and "asked to slow down 10 times in a row" in reason
    assert "Nothing was lost" in reason
    assert [(r.status, r.attempts) for r in rows(engine, blast_id)] == [("QUEUED", 0)] * 3
    assert sim.sent_messages() == []


def test_a_slow_down_holds_the_device_and_then_every_message_goes_once(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 4)
    sim.set_fault("rate_limited", times=5, retry_after="0.05")
    quick(worker_for(engine, sim, send_max_attempts=1)).run(once=True)
    assert [(r.status in SENT, r.attempts, r.error) for r in rows(engine, blast_id)] == [(True, 1, None)] * 4
    assert blast_state(engine, blast_id)[0] == "completed"
    assert len(sim.sent_messages()) == 4


def test_refusals_do_not_use_up_the_days_cap(engine: Engine, sim) -> None:
    """The cap counts messages WhatsApp sees, not tries: two refusals had used two of three."""
    blast_id = launched_blast(engine, 3)
    sim.set_fault("rate_limited", times=1, retry_after="0")
    sim.set_fault("server_error", times=1, http_status=503)
    worker = quick(worker_for(engine, sim, send_pacing="on", send_min_gap_seconds=0.0,
                              send_jitter_seconds=0.0, send_pause_every=0, send_daily_cap=3))
    worker.run(once=True)
    assert set(statuses(engine, blast_id).values()) <= SENT
    with transaction(engine) as s:
        assert s.get(Device, "5850").sent_in_day == 3 == len(sim.sent_messages())


def test_a_setup_refusal_gives_the_days_count_back(engine: Engine, sim) -> None:
    launched_blast(engine, 2)
    worker = worker_for(engine, sim, send_pacing="on", send_min_gap_seconds=0.0,
                        send_jitter_seconds=0.0, send_pause_every=0, send_daily_cap=3)
    worker.client.send_path = "/v1/sendMesage2"
    worker.run(once=True)
    with transaction(engine) as s:
        device = s.get(Device, "5850")
        assert (device.sent_in_day, device.sent_since_pause) == (0, 0)


# A gateway that stops answering


@pytest.mark.parametrize(("fault", "options", "taken"), [
    ("slow_answer", {"delay": 1.5}, 2),  # past the 1 s read timeout
    ("drop_connection", {}, 2),
    ("server_error", {"http_status": 504}, 0),
])
def test_a_second_unknown_in_a_row_pauses_the_blast(
    engine: Engine, sim, fault: str, options: dict, taken: int
) -> None:
    """Each unanswered send is one more recipient for a person to decide about: the first may
    be a one-off, the second means WSAPME stopped answering. The rest wait, and are not sent."""
    blast_id = launched_blast(engine, 6)
    sim.set_fault(fault, times=None, **options)
    worker_for(engine, sim, read_timeout=1.0).run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and reason.startswith("Sending is paused: WSAPME stopped answering.")
    assert "check the recipients marked unknown before resuming" in reason
    assert [r.status for r in rows(engine, blast_id)] == ["UNKNOWN", "UNKNOWN"] + ["QUEUED"] * 4
    assert len(sim.sent_messages()) == taken


@pytest.mark.parametrize(("fault", "options", "unknown"), [
    ("server_error", {}, 1),  # HTTP 500: the one message it was handling is unknown
    ("server_error", {"http_status": 504}, 2),  # no answer: a second in a row means WSAPME is down
    ("device_offline", {}, 0),
])
def test_trouble_with_the_device_pauses_every_blast_sending_from_it_not_one_at_a_time(
    engine: Engine, sim, fault: str, options: dict, unknown: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A blast and its follow-up, or two lists, sending from one device at once: each had gone
    on to try its own message after the other paused, and left one more unknown send each for
    a person to decide about."""
    ids = [launched_blast(engine, 4) for _ in range(3)]
    sim.set_fault(fault, times=None, **options)
    with caplog.at_level(logging.WARNING, logger="core.sending.worker"):
        quick(worker_for(engine, sim, read_timeout=1.0)).run(once=True)
    states = [blast_state(engine, i) for i in ids]
    assert {state for state, _ in states} == {"paused"}
    assert len({reason for _, reason in states}) == 1, "one reason, the device's"
    # Said in the worker's log as it happens, not only at its exit: one line for them all.
    said = [r.getMessage() for r in caplog.records if " paused: " in r.getMessage()]
    assert len(said) == 1 and said[0].endswith(states[0][1]), said
    named = re.match(r"blasts ([\d, ]+) paused: ", said[0])
    assert named and {int(i) for i in named[1].split(", ")} == set(ids), said
    assert sum(r.status == "UNKNOWN" for i in ids for r in rows(engine, i)) == unknown
    assert sum(r.status == "QUEUED" for i in ids for r in rows(engine, i)) == 12 - unknown


def test_unknowns_with_messages_taken_between_them_do_not_pause(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 4)
    worker = worker_for(engine, sim)

    def drop_the_first_and_third(to: str) -> None:
        if to in (phone(0).lstrip("+"), phone(2).lstrip("+")):
            sim.set_fault("drop_connection", times=1)

    worker.client = AroundSends(worker.client, before=drop_the_first_and_third)
    worker.run(once=True)
    assert blast_state(engine, blast_id)[0] == "completed"
    result = [r.status if r.status not in SENT else "sent" for r in rows(engine, blast_id)]
    assert result == ["UNKNOWN", "sent", "UNKNOWN", "sent"]


@pytest.mark.parametrize("status", [524, 520])
def test_a_front_server_error_after_the_gateway_took_the_message_is_never_resent(
    engine: Engine, sim, status: int
) -> None:
    """A CDN in front of WSAPME gives up on the answer (524) after WSAPME took the message:
    trying again sent it twice. It is unknown, and the blast pauses."""
    blast_id = launched_blast(engine, 3)
    sim.set_fault("proxy_error", times=1, http_status=status)
    quick(worker_for(engine, sim)).run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and f"HTTP {status}" in reason
    assert [r.status for r in rows(engine, blast_id)] == ["UNKNOWN", "QUEUED", "QUEUED"]
    resume(engine, blast_id)
    worker_for(engine, sim).run(once=True)
    assert sim.sent_count(phone(0).lstrip("+")) == 1, "sent once, never again"
    assert blast_state(engine, blast_id)[0] == "completed"


# A gateway set up wrong


def test_a_wrong_send_path_pauses_the_blast_and_fails_no_one(engine: Engine, sim) -> None:
    """A typo in the send path: WSAPME answers 404 to every send. Failing each recipient in
    turn had lost the whole blast; it is a setting to fix, then resume."""
    blast_id = launched_blast(engine, 5)
    worker = worker_for(engine, sim)
    worker.client.send_path = "/v1/sendMesage2"
    worker.run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and "HTTP 404" in reason and "send path" in reason
    assert [(r.status, r.attempts) for r in rows(engine, blast_id)] == [("QUEUED", 0)] * 5
    worker.client.send_path = "/v1/sendMessage2"
    resume(engine, blast_id)
    worker.run(once=True)
    assert set(statuses(engine, blast_id).values()) <= SENT


def test_an_invalid_number_still_fails_only_its_own_message(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 3)
    sim.set_fault("invalid_number", times=1, http_status=400)
    worker_for(engine, sim).run(once=True)
    result = statuses(engine, blast_id)
    assert result[phone(0)] == "FAILED" and {result[phone(1)], result[phone(2)]} <= SENT
    assert blast_state(engine, blast_id)[0] == "completed"


# A defect does not stop sending


def test_an_unexpected_error_after_a_send_leaves_the_worker_running(
    engine: Engine, sim, caplog: pytest.LogCaptureFixture
) -> None:
    """In the dashboard the worker is a thread no one watches: an error no one foresaw ended it
    for good, and sending stopped without a word."""
    blast_id = launched_blast(engine, 3)
    failures = []

    def after_send(message_id: str) -> None:
        if not failures:
            failures.append(message_id)
            raise RuntimeError(f"replay failed with token {TEST_TOKEN}")

    worker = SendWorker(engine=engine, client=client_for(sim), settings=settings_for(), after_send=after_send)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    with caplog.at_level(logging.ERROR, logger="core.sending.worker"):
        thread.start()
        try:
            _wait_until(lambda: set(statuses(engine, blast_id).values()) <= SENT)
            assert thread.is_alive()
        finally:
            stop.set()
            thread.join(10)
    assert "RuntimeError" in caplog.text and TEST_TOKEN not in caplog.text
    assert len(sim.sent_messages()) == 3


@pytest.mark.parametrize(("away", "refused"), [
    (False, ProgrammingError("SELECT x FROM blast_recipients", {}, Exception('column "x" does not exist'))),
    # SQLite says the same as an OperationalError.
    (False, OperationalError("SELECT x FROM blast_recipients", {},
                             sqlite3.OperationalError("no such column: x"))),
    (True, None),
], ids=["refused", "refused-by-sqlite", "away"])
def test_a_statement_the_database_refuses_is_a_defect_and_not_an_outage(
    engine: Engine, sim, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, away: bool,
    refused: Exception | None,
) -> None:
    """A statement refused at every step (a worker left on an older schema) had been logged as
    "database unavailable" every 2 s, with no traceback, and a `--once` run never ended. It is
    now an unexpected error: logged with where it was raised, and `--once` gives up. A lost
    connection is still waited out."""
    from core.sending import worker as worker_module

    launched_blast(engine, 1)
    worker = SendWorker(engine=engine, client=client_for(sim), settings=settings_for())
    steps: list[int] = []

    def step() -> bool:
        steps.append(1)
        if away and len(steps) > 2:
            return worker_module.SendWorker.step(worker)
        if away:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        raise refused

    monkeypatch.setattr(worker, "step", step)
    monkeypatch.setattr(worker_module, "UNEXPECTED_WAIT_CAP", 0.05)
    stop = threading.Event()
    monkeypatch.setattr(stop, "wait", lambda seconds: False)  # no real pauses between tries
    caplog.set_level(logging.WARNING, logger="core.sending.worker")
    if away:
        assert worker.run(stop, once=True) == 1
        assert caplog.text.count("database unavailable, retrying shortly: OperationalError") == 2
        return
    with pytest.raises(type(refused)):
        worker.run(stop, once=True)
    assert len(steps) == worker_module.ONCE_UNEXPECTED_LIMIT
    assert "unavailable" not in caplog.text
    assert f"unexpected {type(refused).__name__}" in caplog.text and "Raised at:" in caplog.text


def test_an_unexpected_error_while_sending_marks_that_message_unknown_at_once(engine: Engine, sim) -> None:
    """It may have gone out: unknown now (not when its lease runs out), and never sent again."""
    blast_id = launched_blast(engine, 3)
    worker = worker_for(engine, sim)

    def read_the_first_badly(to: str) -> None:
        if to == phone(0).lstrip("+"):
            raise KeyError("data")

    worker.client = AroundSends(worker.client, after=read_the_first_badly)
    worker.run(once=True)
    result = statuses(engine, blast_id)
    assert result[phone(0)] == "UNKNOWN" and {result[phone(1)], result[phone(2)]} <= SENT
    assert sim.sent_count(phone(0).lstrip("+")) == 1


def test_a_short_token_the_answer_happens_to_contain_does_not_stop_the_worker(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 3)
    worker = SendWorker(engine=engine, client=client_for(sim, token="1"), settings=settings_for())
    worker.run(once=True)
    assert set(statuses(engine, blast_id).values()) <= SENT
    assert blast_state(engine, blast_id)[0] == "completed"


def _wait_until(condition, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_one_number_turned_down_in_unknown_words_fails_alone_and_the_rest_go(engine: Engine, sim) -> None:
    """"Number is not valid" is not in the words we know: the blast had paused on it, and every
    resume sent that same person first and paused again, so no one behind them was messaged."""
    blast_id = launched_blast(engine, 5)
    sim.set_fault("refused", times=1, message="Number is not valid")
    worker_for(engine, sim).run(once=True)
    assert blast_state(engine, blast_id)[0] == "completed"
    result = [r.status for r in rows(engine, blast_id)]
    assert result[0] == "FAILED" and set(result[1:]) <= SENT


def test_many_in_a_row_turned_down_in_unknown_words_pause_the_blast(engine: Engine, sim) -> None:
    """Five in a row, none taken between: then it is about the account, not the numbers."""
    blast_id = launched_blast(engine, 8)
    sim.set_fault("refused", times=None, message="Message failed to send")
    worker_for(engine, sim).run(once=True)
    state, reason = blast_state(engine, blast_id)
    assert state == "paused" and reason is not None
    assert reason.startswith("Sending is paused: WSAPME turned down the last 5 messages in a row.")
    assert "Message failed to send" in reason
    assert [r.status for r in rows(engine, blast_id)] == ["FAILED"] * 5 + ["QUEUED"] * 3


@pytest.mark.parametrize(("retry_after", "waited"), [
    ("1e400", (4.0, 6.0)),  # no usable wait: the usual one, 5 s give or take its jitter
    ("inf", (4.0, 6.0)),
    ("99999999999", (24 * 3600 - 5.0, 24 * 3600.0)),  # years: a day
])
def test_a_slow_down_with_an_unusable_wait_puts_the_message_back_and_holds_the_device(
    engine: Engine, sim, retry_after: str, waited: tuple[float, float]
) -> None:
    """The gateway proved it took nothing: an unusable Retry-After had made the message unknown
    (never sent again) and paused the blast as if WSAPME had stopped answering."""
    blast_id = launched_blast(engine, 2)
    sim.set_fault("rate_limited", times=1, retry_after=retry_after)
    worker = worker_for(engine, sim)
    before = time.time()
    assert worker.step() is True
    after = time.time()  # the wait runs from a moment inside the step, however long it took
    assert worker.outcomes == {"retrying": 1}
    [first, second] = rows(engine, blast_id)
    assert (first.status, first.attempts, second.status) == ("QUEUED", 0, "QUEUED")
    assert before + waited[0] <= first.next_attempt_at.timestamp() <= after + waited[1]
    assert blast_state(engine, blast_id) == ("sending", None)
    assert sim.sent_messages() == []
