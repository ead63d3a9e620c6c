"""The everyday ack applied by PostgreSQL (core.webhook.plain_acks) leaves exactly what the
general way leaves: the same batch applied both ways, from the same rows, gives the same
recipients, history, inbox outcomes, waiting keys, replies and opt-outs."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from core.db import transaction
from core.models import StatusHistory, utcnow
from core.statuses import Status
from core.webhook import plain_acks
from core.webhook.inbox import WebhookRules, apply_everyday_acks, process_entries, store_raw
from core.webhook.parse import parse_webhook
from tests.support.factories import make_blast, make_recipient

pytestmark = pytest.mark.postgres_only

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
RECEIVED = START + dt.timedelta(hours=3)
PHONES = [f"+60120000{k:03d}" for k in range(40)]
STARTING = [Status.QUEUED, Status.SENDING, Status.PENDING, Status.SERVER_ACK, Status.DELIVERY_ACK,
            Status.READ_ACK, Status.REPLIED, Status.CLOSED, Status.FAILED, Status.UNKNOWN]
# Names and numbers the gateway uses, the ones the fast way takes and the ones it leaves.
ACK_STATUSES = ["PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ_ACK", "READ", "delivered", "sent",
                "ERROR", "FAILED", "PLAYED", 2, 3, 4, "REPLIED"]
RULES = WebhookRules(wait_limit=dt.timedelta(days=3650))

SNAPSHOTS = {
    "recipients": "SELECT id, status, sent_at, delivered_at, read_timestamp, replied_at, closed_at, "
                  "message_c2s_timestamp, error, reply_text, message_id, updated_at >= :start "
                  "FROM blast_recipients ORDER BY id",
    "history": "SELECT recipient_id, old_status, new_status, changed_at, source, metadata "
               "FROM status_history ORDER BY recipient_id, id",
    "inbox": "SELECT id, state, kind, detail, attempts, processed_at FROM webhook_inbox ORDER BY id",
    "waiting": "SELECT inbox_id, key FROM webhook_waiting ORDER BY inbox_id, key",
    "replies": "SELECT recipient_id, replied_at, text, inbox_id, inbox_position FROM recipient_replies "
               "ORDER BY recipient_id, replied_at, inbox_id",
    "opt_outs": "SELECT phone_number, keyword FROM opt_outs ORDER BY phone_number",
    "rollups": "SELECT blast_id, status, sum(delta) FROM blast_status_deltas GROUP BY 1, 2 "
               "HAVING sum(delta) <> 0 ORDER BY 1, 2",
    "hours": "SELECT blast_id, what, hour, status, sum(delta) FROM blast_hour_deltas GROUP BY 1, 2, 3, 4 "
             "HAVING sum(delta) <> 0 ORDER BY 1, 2, 3, 4",
}


def _recipients(engine: Engine, rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Recipients in three blasts, numbers shared between blasts, in every state."""
    made = []
    with transaction(engine) as s:
        blasts = [make_blast(s) for _ in range(3)]
        taken: set[tuple[int, str]] = set()
        for k in range(n):
            blast = rng.choice(blasts)
            phone = rng.choice(PHONES)
            if (blast.id, phone) in taken:
                continue
            taken.add((blast.id, phone))
            status = rng.choice(STARTING)
            fields: dict[str, Any] = {"status": status.value, "phone_number": phone}
            if status not in (Status.QUEUED, Status.SENDING) and rng.random() < 0.9:
                fields["message_id"] = f"MSG{k:04d}"
            # A failed send with an id is one the gateway took and later said it failed.
            sent = status not in (Status.QUEUED, Status.SENDING, Status.FAILED) or "message_id" in fields
            if sent and rng.random() < 0.8:
                fields["sent_at"] = START
            if status in (Status.FAILED, Status.UNKNOWN) or rng.random() < 0.1:
                fields["error"] = "earlier error"
            if rng.random() < 0.2:
                fields["delivered_at"] = START + dt.timedelta(minutes=1)
            if rng.random() < 0.2:
                fields["message_c2s_timestamp"] = int(START.timestamp()) + 30
            if status in (Status.REPLIED, Status.CLOSED):
                fields["replied_at"] = START + dt.timedelta(minutes=5)
                fields["reply_text"] = "earlier reply"
            person = make_recipient(s, blast, **fields)
            if status in (Status.FAILED, Status.UNKNOWN) and "sent_at" not in fields:
                # When it was tried, which an ack proving it went dates the send by.
                s.add(StatusHistory(recipient_id=person.id, old_status=Status.SENDING.value,
                                    new_status=status.value, changed_at=START - dt.timedelta(minutes=1),
                                    source="send"))
            made.append({"id": person.id, **fields})
    return made


def _when(rng: random.Random) -> Any:
    at = START + dt.timedelta(minutes=rng.randint(1, 150), seconds=rng.randint(0, 59))
    return rng.choice([None, int(at.timestamp()), int(at.timestamp() * 1000), at.isoformat()])


def _body(rng: random.Random, recipients: list[dict[str, Any]], k: int) -> bytes:
    """One post: mostly everyday acks, with what must not be taken the fast way among them."""
    known = [r["message_id"] for r in recipients if r.get("message_id")]
    message_id = rng.choice(known) if rng.random() < 0.85 else f"LATER{k}"
    kind = rng.random()
    if kind < 0.6:
        data: dict[str, Any] = {"id": message_id, "status": rng.choice(ACK_STATUSES)}
        if (when := _when(rng)) is not None:
            data["timestamp"] = when
        payload: Any = {"event": "message-ack", "data": data} if rng.random() < 0.8 else data
    elif kind < 0.64:  # an ack naming the chat: it may settle an unknown send
        payload = {"id": message_id, "status": "DELIVERY_ACK", "timestamp": _when(rng) or 1772442000,
                   "remoteJid": rng.choice(PHONES)[1:] + "@s.whatsapp.net"}
    elif kind < 0.68:  # several ids at once
        payload = {"ids": [message_id, rng.choice(known)], "status": rng.choice(["READ", "DELIVERY_ACK"])}
    elif kind < 0.8:  # a person writing back, now and then to stop
        words = rng.choice(["ok boleh", "berapa harga?", "STOP", "thanks"])
        payload = {"type": "text", "message": words, "from": rng.choice(PHONES)[1:] + "@c.us",
                   "timestamp": int((START + dt.timedelta(minutes=rng.randint(1, 150))).timestamp())}
    elif kind < 0.9:
        return b"{not json"
    else:
        payload = [{"event": "message-ack", "data": {"id": message_id, "status": "READ"}},
                   {"event": "message-ack", "data": {"id": rng.choice(known), "status": "SERVER_ACK"}}]
    return json.dumps(payload).encode()


def _apply_and_look(
    engine: Engine, inbox_ids: list[int], *, now: dt.datetime, database_reads: bool = False
) -> dict[str, list]:
    """Apply the entries in batches of the applier's size, read everything, then roll back.
    `database_reads`: as the intake does, the database's reading of each batch first
    (`apply_everyday_acks`), the rest the general way."""
    start = utcnow()
    with engine.connect() as connection:
        outer = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        for first in range(0, len(inbox_ids), 40):
            batch = inbox_ids[first:first + 40]
            if database_reads:
                done = apply_everyday_acks(session, inbox_ids=batch, rules=RULES, now=now)
                batch = [i for i in batch if i not in done]
            process_entries(session, inbox_ids=batch, rules=RULES, now=now)
        session.flush()
        seen = {name: [tuple(row) for row in connection.execute(text(sql), {"start": start})]
                for name, sql in SNAPSHOTS.items()}
        session.close()
        outer.rollback()
    return seen


def _both_ways(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, seed: int, *,
    body: Callable[[random.Random, list[dict[str, Any]], int], bytes], bodies: int, applier: str,
    database_reads: bool = False,
) -> tuple[int, dict[str, list], dict[str, list]]:
    """`bodies` posts made by `body` for random recipients, applied the fast way and the
    general way alone from the same rows: how many entries `plain_acks.<applier>` applied the
    fast way, and what each way left."""
    rng = random.Random(seed)
    recipients = _recipients(engine, rng, 150)
    with transaction(engine) as s:
        inbox_ids = [store_raw(s, body=body(rng, recipients, k), content_type="application/json",
                               now=RECEIVED) for k in range(bodies)]
    now = RECEIVED + dt.timedelta(seconds=1)
    taken: list[int] = []
    apply = getattr(plain_acks, applier)

    def counting(*args: Any, **kwargs: Any) -> dict[int, str]:
        applied = apply(*args, **kwargs)
        taken.extend(applied)
        return applied

    monkeypatch.setattr(plain_acks, applier, counting)
    fast = _apply_and_look(engine, inbox_ids, now=now, database_reads=database_reads)
    monkeypatch.setattr(plain_acks, "take", _nothing_taken)
    general = _apply_and_look(engine, inbox_ids, now=now)
    return len(taken), fast, general


@pytest.mark.parametrize("seed", range(12))
def test_the_fast_way_leaves_what_the_general_way_leaves(
    engine: Engine, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, fast, general = _both_ways(engine, monkeypatch, seed, body=_body, bodies=200, applier="apply")

    assert taken > 20, "the fast way took too little for the comparison to say anything"
    assert taken < 200 - 20
    for name in SNAPSHOTS:
        assert fast[name] == general[name], name


def _nothing_taken(*args: Any, **kwargs: Any) -> tuple[dict, list]:
    return {}, []


def test_an_ack_for_a_number_a_reply_in_the_same_batch_comes_from_goes_the_general_way(
    engine: Engine,
) -> None:
    """The reply was written first: read before the reply's time stamps read with the ack's
    time only if the ack is applied first. Applied in arrival order, the read stage takes
    the reply's time, as it would have one post at a time."""
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), phone_number=PHONES[0], message_id="M1",
                             status="DELIVERY_ACK", sent_at=START).id
    reply_at, read_at = START + dt.timedelta(minutes=5), START + dt.timedelta(minutes=6)
    bodies = [
        {"type": "text", "message": "ok", "from": PHONES[0][1:] + "@c.us",
         "timestamp": int(reply_at.timestamp())},
        {"event": "message-ack", "data": {"id": "M1", "status": "READ",
                                          "timestamp": int(read_at.timestamp())}},
    ]
    with transaction(engine) as s:
        ids = [store_raw(s, body=json.dumps(b).encode(), content_type="application/json", now=RECEIVED)
               for b in bodies]
    with transaction(engine) as s:
        process_entries(s, inbox_ids=ids, rules=RULES, now=RECEIVED)
    with transaction(engine) as s:
        row = s.execute(text("SELECT status, read_timestamp FROM blast_recipients WHERE id = :id"),
                        {"id": rid}).one()
        history = s.execute(text("SELECT old_status, new_status FROM status_history "
                                 "WHERE recipient_id = :id ORDER BY id"), {"id": rid}).all()
    assert row.status == "REPLIED"
    assert row.read_timestamp == reply_at
    assert [tuple(h) for h in history] == [("DELIVERY_ACK", "REPLIED")]


def test_everyday_acks_are_applied_by_the_database(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch the gateway sends all day never reaches the Python status engine."""
    with transaction(engine) as s:
        blast = make_blast(s)
        rids = [make_recipient(s, blast, message_id=f"D{k}", status="SERVER_ACK", sent_at=START).id
                for k in range(50)]
    with transaction(engine) as s:
        ids = [store_raw(s, body=json.dumps({"event": "message-ack", "data": {
            "id": f"D{k}", "status": "DELIVERY_ACK", "timestamp": int(START.timestamp()) + 60}}).encode(),
            content_type="application/json", now=RECEIVED) for k in range(50)]
    general: list[Callable] = []
    monkeypatch.setattr("core.webhook.inbox.apply_statuses", lambda *a, **k: general.append(a) or [])
    with transaction(engine) as s:
        outcomes = process_entries(s, inbox_ids=ids, rules=RULES, now=utcnow())
    assert not general
    assert {o.state for o in outcomes.values()} == {"applied"}
    assert outcomes[ids[0]].detail == "D0 DELIVERY_ACK: SERVER_ACK → DELIVERY_ACK"
    with transaction(engine) as s:
        rows = s.execute(text("SELECT status, delivered_at, message_c2s_timestamp FROM blast_recipients "
                              "WHERE id = ANY(:ids)"), {"ids": rids}).all()
    assert {tuple(r) for r in rows} == {("DELIVERY_ACK", START + dt.timedelta(seconds=60),
                                         int(START.timestamp()) + 60)}


def test_a_batch_going_both_ways_locks_its_people_in_one_go(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch 1 moves B the database's way and A the general way; batch 2 moves both the
    general way, locking A, then B. Had batch 1 locked B, then A, each would wait for the
    other until PostgreSQL gave one of them up."""
    with transaction(engine) as s:
        blast = make_blast(s)
        for phone, message_id in ((PHONES[0], "A"), (PHONES[1], "B")):
            make_recipient(s, blast, phone_number=phone, message_id=message_id, status="SERVER_ACK",
                           sent_at=START)
    with transaction(engine) as s:
        first = [store_raw(s, body=json.dumps(b).encode(), content_type="application/json") for b in (
            {"id": "A", "status": "DELIVERY_ACK", "remoteJid": PHONES[0][1:] + "@s.whatsapp.net"},
            {"event": "message-ack", "data": {"id": "B", "status": "DELIVERY_ACK"}},
        )]
        second = [store_raw(s, body=json.dumps({"ids": ["A", "B"], "status": "READ"}).encode(),
                            content_type="application/json")]
    applied, failures = threading.Event(), []
    apply = plain_acks.apply

    def then_wait(*args: Any, **kwargs: Any) -> dict[int, str]:
        done = apply(*args, **kwargs)
        if done:  # batch 1's: batch 2 starts meanwhile
            applied.set()
            time.sleep(1.0)
        return done

    monkeypatch.setattr(plain_acks, "apply", then_wait)

    def run(ids: list[int], wait: threading.Event | None) -> None:
        if wait is not None:
            wait.wait(10)
        try:
            with transaction(engine) as s:
                process_entries(s, inbox_ids=ids, rules=RULES)
        except Exception as exc:  # the deadlock, had there been one
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(first, None)),
               threading.Thread(target=run, args=(second, applied))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert applied.is_set()
    assert not failures, failures
    with transaction(engine) as s:
        assert set(s.scalars(text("SELECT status FROM blast_recipients"))) == {"READ_ACK"}


def test_a_message_that_failed_after_the_look_is_held_by_the_statement(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look found it at one tick, unlocked; by the lock another transaction had applied
    WhatsApp's error for it. The late one-tick was sent before that error: it must not lift
    the message back into the funnel, here any more than the general way."""
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), message_id="F1", status="FAILED", sent_at=START,
                             error="WhatsApp reported an error for this message: it did not reach them.").id
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps({"event": "message-ack", "data": {
            "id": "F1", "status": "SERVER_ACK"}}).encode(), content_type="application/json", now=RECEIVED)
    monkeypatch.setattr(plain_acks, "match", lambda _s, acks, phones: {i: rid for i in acks})
    with transaction(engine) as s:
        outcomes = process_entries(s, inbox_ids=[inbox_id], rules=RULES, now=utcnow())
    assert outcomes[inbox_id].detail == "F1 SERVER_ACK: no change (already FAILED)"
    with transaction(engine) as s:
        row = s.execute(text("SELECT status, sent_at, error FROM blast_recipients WHERE id = :id"),
                        {"id": rid}).one()
    assert (row.status, row.sent_at) == ("FAILED", START)
    assert row.error is not None


# --- the everyday ack read by the database from the stored body -----------------------------

_READING = f"""
SELECT w.id, ack.message_id, ack.status, ack.at, ack.c2s, ack.raw
FROM webhook_inbox w CROSS JOIN {plain_acks._stored_reading('w.body')} ORDER BY w.id
"""
_TIMES = [1772442000, 1772442000123, 0, -5, 946684799, 946684800, 4102444799, 4102444800,
          10**20, "1772442000", "2026-03-02T09:00:00Z", 1772442000.0, None, True, {"low": 5}]
_IDS = ["3EB0A1", "3EB0-A1:x@y.z", "", " 3EB0 ", "a b", "x" * 255, "x" * 256, 42, None, ["3EB0A1"],
        "caf\u00e9", "tab\there", 'quo"te', "back\\slash", "\u0000nul"]
_STATUS_WORDS = [*plain_acks.STATUS_NAMES, "Delivery_ack", " READ ", "REPLIED", "FAILED", "ERROR",
                 "CLOSED", "QUEUED", "UNKNOWN", "unknown", "", 2, 3, "3", 3.0, None, True, "x" * 41]


def _member(rng: random.Random, key: str) -> str:
    good = rng.random() < 0.8
    value = {"id": lambda: f"3EB0{rng.randrange(10**6):06X}" if good else rng.choice(_IDS),
             "status": lambda: rng.choice(list(plain_acks.STATUS_NAMES) if good else _STATUS_WORDS),
             "timestamp": lambda: 1772442000 + rng.randrange(10**4) if good else rng.choice(_TIMES),
             "from": lambda: "60123456789@c.us", "ack": lambda: 3}[key]()
    text = json.dumps(value, ensure_ascii=rng.random() < 0.7)
    return json.dumps(key) + rng.choice([":", ": ", " : ", ":\n"]) + text


def _tricky_body(rng: random.Random) -> bytes:
    """An ack body, or something near one: what the database must read as `parse` does, or
    leave alone."""
    keys = [k for k in ("id", "status", "timestamp") if rng.random() < 0.85]
    if rng.random() < 0.1:
        keys.append(rng.choice(["from", "ack", "id", "status"]))  # more, or twice
    rng.shuffle(keys)
    data = "{" + rng.choice([",", ", ", ",\n  "]).join(_member(rng, k) for k in keys) + "}"
    event = json.dumps(rng.choice(["message-ack", "ack", "", "message-ack\u00e9"]))
    shape = rng.random()
    if shape < 0.7:
        text = '{"event": ' + event + ', "data": ' + data + "}"
    elif shape < 0.8:
        text = '{"data": ' + data + ', "event": ' + event + "}"
    elif shape < 0.85:
        text = '{"event": ' + event + ', "data": ' + data + ', "more": 1}'
    elif shape < 0.9:
        text = '{"event": 5, "data": ' + data + "}"
    else:
        text = data
    if rng.random() < 0.3:
        text = text.replace(" ", rng.choice(["", "  ", "\t", "\n"]))
    body = text.encode()
    damage = rng.random()
    if damage < 0.04:
        body = b"\xef\xbb\xbf" + body
    elif damage < 0.08:
        body = body[:-1]
    elif damage < 0.1:
        body = body + b"x"
    elif damage < 0.12:
        body = body.replace(b'"id"', b'"\xff"')
    elif damage < 0.14:
        body = b" \x0b" + body + b"\r\n"
    elif damage < 0.16:
        body = body.replace(b"1772442000", b"01772442000")
    return body


@pytest.mark.parametrize("seed", range(4))
def test_the_database_reads_an_everyday_ack_exactly_as_the_parser_does(engine: Engine, seed: int) -> None:
    """Whatever the database reads as an everyday ack, `parse_webhook` reads as the same one
    ack (id, status, time, raw object); what it leaves, the parser reads its own way."""
    rng = random.Random(seed)
    bodies = [_tricky_body(rng) for _ in range(600)]
    with transaction(engine) as s:
        ids = [store_raw(s, body=b, content_type=rng.choice([None, "application/json", "text/plain"]),
                         now=RECEIVED) for b in bodies]
        read = {row[0]: row[1:] for row in s.connection().exec_driver_sql(_READING)}
    taken = 0
    for inbox_id, body in zip(ids, bodies, strict=True):
        message_id, status, at, c2s, raw = read[inbox_id]
        parsed = parse_webhook(body, "application/json")
        if status is None:
            assert (message_id, at, c2s, raw) == (None, None, None, None)
            continue
        taken += 1
        assert isinstance(parsed, list) and len(parsed) == 1, body
        [ack] = parsed
        assert plain_acks._everyday(ack), body
        assert (message_id, status, at, raw) == (ack.message_ids[0], ack.status.value, ack.at, ack.raw), body
        assert c2s == (int(ack.at.timestamp()) if ack.at and ack.status is Status.DELIVERY_ACK else None)
    # The comparison says something only if both kinds are many.
    assert 60 < taken < 540, taken


def test_everyday_acks_are_read_by_the_database_however_spaced(engine: Engine) -> None:
    """The shape `parse._plain_ack` reads the short way, compact, spaced or indented, its
    members in any order, with or without a time: every one is read."""
    datas = [{"id": "3EB0AA", "status": "DELIVERY_ACK", "timestamp": 1772442000},
             {"id": "3EB0AB", "status": "READ"}, {"id": "3EB0AC", "status": "SERVER_ACK", "timestamp": None},
             {"timestamp": 1772442000, "status": "delivered", "id": "3EB0AD"}]
    bodies = [json.dumps({"event": "message-ack", "data": d}, **style).encode()  # type: ignore[arg-type]
              for style in ({}, {"separators": (",", ":")}, {"indent": 2}) for d in datas]
    with transaction(engine) as s:
        for body in bodies:
            store_raw(s, body=body, content_type="application/json")
        read = list(s.connection().exec_driver_sql(_READING))
    assert [row[2] for row in read] == ["DELIVERY_ACK", "READ_ACK", "SERVER_ACK", "DELIVERY_ACK"] * 3


def _everyday_body(rng: random.Random, recipients: list[dict[str, Any]], k: int) -> bytes:
    """An ack the database reads, now and then one it leaves, or a person writing."""
    known = [r["message_id"] for r in recipients if r.get("message_id")]
    message_id = rng.choice(known) if rng.random() < 0.9 else f"LATER{k}"
    odd = rng.random()
    if odd < 0.03:
        return json.dumps({"type": "text", "message": "ok", "from": rng.choice(PHONES)[1:] + "@c.us",
                           "timestamp": int(START.timestamp()) + 600}).encode()
    if odd < 0.06:
        return json.dumps({"event": "message-ack", "data": {"id": message_id, "status": 3}}).encode()
    data: dict[str, Any] = {"id": message_id, "status": rng.choice(
        ["PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ_ACK", "READ", "delivered", "sent", "PLAYED"])}
    if rng.random() < 0.8:
        at = START + dt.timedelta(minutes=rng.randint(1, 150), seconds=rng.randint(0, 59))
        data["timestamp"] = int(at.timestamp())
    return json.dumps({"event": "message-ack", "data": data}).encode()


@pytest.mark.parametrize("seed", range(8))
def test_acks_read_by_the_database_leave_what_the_general_way_leaves(
    engine: Engine, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, stored, general = _both_ways(engine, monkeypatch, seed, body=_everyday_body, bodies=400,
                                        applier="apply_stored", database_reads=True)

    assert taken > 40, "the database took too little for the comparison to say anything"
    assert taken < 400 - 40
    for name in SNAPSHOTS:
        assert stored[name] == general[name], name


def test_a_burst_of_acks_never_reaches_the_parser(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the intake, as the webhook stores them: read and applied by the database."""
    from core.webhook import inbox as inbox_module
    from core.webhook.intake import Intake

    with transaction(engine) as s:
        blast = make_blast(s)
        for k in range(80):
            make_recipient(s, blast, message_id=f"B{k}", status="SERVER_ACK", sent_at=START)
    parsed: list[bytes] = []
    real = inbox_module.parse_webhook

    def counted(body: bytes, *args: Any, **kwargs: Any) -> Any:
        parsed.append(body)
        return real(body, *args, **kwargs)

    monkeypatch.setattr(inbox_module, "parse_webhook", counted)
    intake = Intake(engine, rules=lambda: RULES)
    at = int(START.timestamp())
    bodies = [json.dumps({"event": "message-ack", "data": {"id": f"B{k}", "status": "READ",
                                                           "timestamp": at + k}}).encode() for k in range(80)]
    futures = [intake.store(body, "application/json") for body in bodies]
    for future in futures:
        future.result(timeout=30)
    assert intake.wait_settled(30)
    assert not parsed
    with transaction(engine) as s:
        assert set(s.scalars(text("SELECT status FROM blast_recipients"))) == {"READ_ACK"}
        assert set(s.scalars(text("SELECT state FROM webhook_inbox"))) == {"applied"}
