"""When applying an inbox entry raises: it is set aside as failed after a few tries, shown on the
health page with what could not be used, and applied again once the cause is fixed; the
errors kept or logged hold no secret."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError, OperationalError

from core.config import get_settings
from core.db import transaction
from core.health import EventCounts
from core.models import BlastRecipient, WebhookInbox, utcnow
from core.webhook import inbox
from core.webhook.inbox import (
    MAX_ATTEMPTS,
    SET_ASIDE,
    InboxState,
    WebhookRules,
    error_words,
    inbox_summary,
    replay_set_aside,
    replay_waiting,
    store_raw,
)
from core.webhook.route import describe
from tests.support.factories import make_blast, make_recipient

RULES = WebhookRules()
DB_PASSWORD = "dbpw-SECRET-8c1e4b7a"
HOOK = "hook-SECRET-2f6d9a0c3b7e51"


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings with a database password and a webhook secret in them."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql://app:{DB_PASSWORD}@db.example.com/blasts")
    monkeypatch.setenv("WEBHOOK_SECRET", HOOK)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def _stored(engine: Engine, payload: object, *, ago: dt.timedelta = dt.timedelta(minutes=5)) -> int:
    with transaction(engine) as s:
        return store_raw(s, body=json.dumps(payload).encode(), content_type="application/json",
                         now=utcnow() - ago)


def _entry(engine: Engine, inbox_id: int) -> WebhookInbox:
    with transaction(engine) as s:
        return s.get(WebhookInbox, inbox_id)


def _broken(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    # Both ways of applying: the general one, and the database's for the everyday ack.
    monkeypatch.setattr(inbox, "_carry_out", broken)
    monkeypatch.setattr(inbox.plain_acks, "apply", broken)


def test_an_entry_that_keeps_failing_is_set_aside_as_failed_and_applied_once_fixed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), message_id="3EB0F", status="PENDING").id
    inbox_id = _stored(engine, {"id": "3EB0F", "status": "READ"})
    _broken(monkeypatch, RuntimeError("a bug in applying"))
    for _ in range(MAX_ATTEMPTS):
        assert replay_waiting(engine, rules=RULES).failed == 1
    entry = _entry(engine, inbox_id)
    assert (entry.state, entry.attempts) == ("failed", MAX_ATTEMPTS)
    assert entry.detail == "could not be applied: RuntimeError: a bug in applying"
    assert replay_waiting(engine, rules=RULES).seen == 0, "not retried every half minute for ever"
    with transaction(engine) as s:
        counts = inbox_summary(s)["counts"]
    assert counts["failed"] == 1 and counts["new"] == 0
    assert EventCounts.from_states(counts).set_aside == 1, "shown with what could not be used"

    monkeypatch.undo()  # the bug is fixed
    report = replay_set_aside(engine, rules=RULES)
    assert (report.seen, report.states, report.failed) == (1, {"applied": 1}, 0)
    assert _entry(engine, inbox_id).state == "applied"
    with transaction(engine) as s:
        assert s.get(BlastRecipient, rid).status == "READ_ACK"


def test_a_failed_entry_that_fails_again_stays_set_aside(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox_id = _stored(engine, {"id": "3EB0G", "status": "READ"})
    _broken(monkeypatch, RuntimeError("still broken"))
    for _ in range(MAX_ATTEMPTS):
        replay_waiting(engine, rules=RULES)
    report = replay_set_aside(engine, rules=RULES)
    assert (report.seen, report.failed) == (1, 1)
    assert "1 failed (see the log)" in report.set_aside_words()
    entry = _entry(engine, inbox_id)
    assert entry.state == "failed" and entry.attempts == MAX_ATTEMPTS + 1


def test_a_waiting_entry_that_keeps_failing_past_the_wait_is_set_aside_as_failed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else it would wait for ever: giving up on it happens in the applying that fails."""
    inbox_id = _stored(engine, {"id": "3EB0W", "status": "READ"}, ago=dt.timedelta(minutes=30))
    assert replay_waiting(engine, rules=RULES).states == {"waiting": 1}
    _broken(monkeypatch, RuntimeError("a bug"))
    replay_waiting(engine, rules=RULES)
    assert _entry(engine, inbox_id).state == "waiting", "still inside the wait"
    replay_waiting(engine, rules=RULES, now=utcnow() + RULES.wait_limit)
    assert _entry(engine, inbox_id).state == "failed"


def test_an_entry_left_new_after_its_last_try_before_this_change_is_set_aside(engine: Engine) -> None:
    inbox_id = _stored(engine, {"id": "3EB0L", "status": "READ"})
    with transaction(engine) as s:
        s.execute(update(WebhookInbox).where(WebhookInbox.id == inbox_id)
                  .values(attempts=MAX_ATTEMPTS, detail="could not be applied: RuntimeError"))
    replay_waiting(engine, rules=RULES)
    assert _entry(engine, inbox_id).state == "failed"
    assert replay_set_aside(engine, rules=RULES).states == {"waiting": 1}


def test_every_state_is_counted_in_one_tile() -> None:
    counts = {state: 10 ** i for i, state in enumerate(InboxState.ALL)}
    events = EventCounts.from_states(counts)
    assert events.applied + events.not_needed + events.waiting + events.set_aside == sum(counts.values())
    assert events.waiting == counts["new"] + counts["waiting"]
    assert events.set_aside == sum(counts[state] for state in SET_ASIDE)
    assert "failed" in SET_ASIDE


@pytest.mark.usefixtures("secrets_set")
@pytest.mark.parametrize(
    ("error", "words"),
    [
        (RuntimeError("a bug in applying\nmore lines"), "RuntimeError: a bug in applying"),
        (RuntimeError(f"token {HOOK} refused"), "RuntimeError"),
        (RuntimeError(f"cannot log in with {DB_PASSWORD}"), "RuntimeError"),
        (IntegrityError("INSERT INTO opt_outs ...", {"phone_number": "+60123"}, Exception("duplicate key")),
         "Exception"),
        (OperationalError("SELECT 1", None, Exception('connection to server failed: FATAL:  password '
                                                      f'authentication failed for user "{DB_PASSWORD}"')),
         "Exception"),
    ],
)
def test_the_error_kept_with_a_failed_entry_holds_no_secret_and_no_sql(error: Exception, words: str) -> None:
    assert error_words(error) == words


@pytest.mark.usefixtures("secrets_set")
def test_a_storage_error_in_the_log_leaves_out_the_database_password() -> None:
    refused = f'connection to server at "db.example.com", port 5432 failed: FATAL:  role "{DB_PASSWORD}"'
    said = describe(OperationalError("INSERT INTO webhook_inbox ...", {"body": b"{}"}, Exception(refused)))
    assert DB_PASSWORD not in said and said == "Exception"
    said = describe(psycopg.OperationalError(refused))
    assert DB_PASSWORD not in said and said == "OperationalError"
    # Words without the password are kept: they say what is wrong.
    away = 'connection to server at "db.example.com", port 5432 failed: Connection refused'
    assert describe(OperationalError("SELECT 1", None, Exception(away + "\nIs the server running?"))) == (
        f"Exception: {away}")
    assert describe(psycopg.OperationalError(away)) == f"OperationalError: {away}"
    # Not a connection error: the driver's words may quote the values being written.
    duplicate = IntegrityError("INSERT ...", {}, Exception("value (+60123) is a duplicate"))
    assert describe(duplicate) == "Exception"
    assert describe(TimeoutError()) == "TimeoutError"
