"""The webhook route over real HTTP (uvicorn on loopback), on both databases."""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from sqlalchemy import Engine, func, select
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from core.config import get_settings
from core.db import engine_for, transaction
from core.models import BlastRecipient, OptOut, StatusHistory, utcnow
from core.status_engine import apply_status
from core.statuses import RANK, Status
from core.webhook.inbox import replay_after_send, replay_set_aside
from core.webhook.route import REFUSED_KEPT_BYTES, _webhook_secret
from core.webhook.secret import forget_remembered
from tests.reliability import support
from tests.support.factories import make_blast, make_recipient

MAX_BYTES = 20_000
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class Served(support.Served):
    """The route as support.served_route serves it, with posting that waits for applying."""

    def post(self, payload: object, *, content_type: str | None = JSON,
             secret: str | None = None, **kw: Any) -> requests.Response:
        """Post, then wait until the server has applied what it stored (it answers first)."""
        body = payload if isinstance(payload, bytes | Iterator) else json.dumps(payload).encode()
        headers = {"Content-Type": content_type} if content_type else {}
        response = requests.post(self.url(secret), data=body, headers=headers, timeout=30, **kw)
        self.settle()
        return response

    def recipient(self, rid: int) -> BlastRecipient:
        with transaction(self.engine) as s:
            return s.get(BlastRecipient, rid)


@pytest.fixture
def served(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("WEBHOOK_MAX_BYTES", str(MAX_BYTES))
    with support.served_route(monkeypatch, db_url) as route:
        yield Served(route.base, route.secret, route.engine)


def _sent_recipient(engine: Engine, *, message_id: str | None, phone: str = "+60123456789",
                    status: Status = Status.PENDING) -> int:
    with transaction(engine) as s:
        return make_recipient(s, make_blast(s), phone_number=phone, message_id=message_id,
                              status=status.value,
                              sent_at=utcnow() - dt.timedelta(minutes=5) if message_id else None).id


def _now_ts() -> int:
    return int(time.time())


# --- the happy path ------------------------------------------------------------------------


def test_an_ack_is_stored_then_applied(served: Served) -> None:
    rid = _sent_recipient(served.engine, message_id="3EB0A")
    body = json.dumps({"id": "3EB0A", "status": "DELIVERY_ACK", "timestamp": _now_ts()}).encode()
    response = served.post(body)
    assert (response.status_code, response.json()) == (200, {"ok": True})
    [entry] = served.inbox()
    assert (entry.body, entry.content_type, entry.state) == (body, JSON, "applied")
    assert served.recipient(rid).status == "DELIVERY_ACK"


def test_a_reply_as_a_form_post(served: Served) -> None:
    rid = _sent_recipient(served.engine, message_id="3EB0A")
    form = urlencode({"type": "text", "message": "Berapa harga?", "from": "60123456789@c.us",
                      "fromMe": "false", "is_broadcast": "false", "timestamp": _now_ts()})
    assert served.post(form.encode(), content_type=FORM).status_code == 200
    row = served.recipient(rid)
    assert (row.status, row.reply_text) == ("REPLIED", "Berapa harga?")


def test_a_multipart_form_post(served: Served) -> None:
    rid = _sent_recipient(served.engine, message_id="3EB0A")
    response = requests.post(served.url(), files={"id": (None, "3EB0A"), "ack": (None, "4")},
                             timeout=30)
    served.settle()
    assert response.status_code == 200
    assert served.inbox()[0].content_type.startswith("multipart/form-data")
    assert served.recipient(rid).status == "READ_ACK"


def test_a_generated_secret_and_a_configured_one(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    assert served.post({"id": "x", "status": 2}).status_code == 200
    monkeypatch.setenv("WEBHOOK_SECRET", "configured-secret-abcdefghijklmnop")
    get_settings.cache_clear()
    assert served.post({"id": "x", "status": 2}).status_code == 404  # the generated one stops
    assert served.post({"id": "x", "status": 2},
                       secret="configured-secret-abcdefghijklmnop").status_code == 200
    assert len(served.inbox()) == 2


# --- the door in front of the pages -------------------------------------------------------


class _Seen:
    """ASGI middleware that lists the requests reaching the app behind the webhook's door
    (where the dashboard's session, compression and routing layers are)."""

    def __init__(self, app: ASGIApp, *, seen: list[tuple[str, str]]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def test_an_accepted_secret_is_served_at_the_door_and_anything_else_by_the_route(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []
    with support.served_route(monkeypatch, db_url, inner=[Middleware(_Seen, seen=seen)]) as route:
        served = Served(route.base, route.secret, route.engine)
        rid = _sent_recipient(served.engine, message_id="3EB0DOOR")
        forget_remembered()
        ack = {"id": "3EB0DOOR", "status": "DELIVERY_ACK", "timestamp": _now_ts()}
        # One right after the other (not waiting for applying): the accepted secrets are
        # remembered for a few seconds.
        assert requests.post(served.url(), json=ack, timeout=30).status_code == 200
        assert len(seen) == 1, "a secret not remembered yet is checked by the route"
        assert requests.post(served.url(), json={**ack, "status": "READ_ACK"}, timeout=30).status_code == 200
        assert len(seen) == 1, "once accepted, posts are answered at the door"
        served.settle()
        assert served.recipient(rid).status == "READ_ACK"
        assert [e.body for e in served.inbox()] == [json.dumps(ack).encode(),
                                                    json.dumps({**ack, "status": "READ_ACK"}).encode()]
        unknown = requests.post(f"{served.base}/no/such/path", data=b"{}", timeout=30)
        wrong = served.post(ack, secret=served.secret + "x")
        assert (wrong.status_code, wrong.content) == (404, unknown.content)
        assert requests.get(served.url(), timeout=30).status_code == 405
        assert requests.post(served.url() + "/extra", data=b"{}", timeout=30).status_code == 404
        assert len(seen) == 5, "a wrong secret, another method or another path goes on to the app"
        assert len(served.inbox()) == 2


def test_a_post_whose_sender_hangs_up_before_its_body_is_not_stored(served: Served) -> None:
    assert served.post({"id": "x", "status": 2}).status_code == 200  # the secret is remembered now
    parts = urlsplit(served.url())
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(f"POST {parts.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 400\r\n\r\n{\"id\": \"3EB0".encode())
        time.sleep(0.2)
    assert served.post({"id": "y", "status": 2}).status_code == 200, "the server goes on"
    assert [json.loads(e.body)["id"] for e in served.inbox()] == ["x", "y"]


@pytest.mark.parametrize(("path", "root_path", "secret"), [
    ("/webhooks/wsapme/s3cret", "", "s3cret"),
    ("/webhooks/wsapme/s3cret", "/tracker", "s3cret"),  # served below a prefix, the prefix stripped
    ("/tracker/webhooks/wsapme/s3cret", "/tracker", "s3cret"),
    ("/trackerx/webhooks/wsapme/s3cret", "/tracker", None),
    ("/webhooks/wsapme/", "", None),
    ("/webhooks/wsapme/s3cret/more", "", None),
    ("/webhooks/wsapmes3cret", "", None),
    ("/other/webhooks/wsapme/s3cret", "", None),
])
def test_the_door_reads_the_secret_as_the_route_does(path: str, root_path: str, secret: str | None) -> None:
    scope = {"type": "http", "method": "POST", "path": path, "root_path": root_path}
    assert _webhook_secret(scope) == secret
    assert _webhook_secret({**scope, "method": "GET"}) is None, "the route takes posts only"
    assert _webhook_secret({**scope, "type": "websocket"}) is None


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["nope", "SECRET-PREFIX", "é-ünïcode", "%00", "a" * 3000])
def test_a_wrong_secret_looks_like_an_unknown_path(served: Served, wrong: str) -> None:
    unknown = requests.post(f"{served.base}/no/such/path", data=b"{}", timeout=30)
    response = served.post({"id": "3EB0A", "status": 3}, secret=wrong)
    assert response.status_code == unknown.status_code == 404
    assert response.content == unknown.content
    assert served.secret not in response.text
    assert served.inbox() == []


def test_a_wrong_secret_never_waits_for_the_write_lock(served: Served) -> None:
    """Anyone can post to the webhook's address: a wrong secret had opened a writing transaction,
    which on SQLite is the whole file's one write lock (the worker's and the webhook's own)."""
    import sqlite3
    import threading

    if served.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    writer = sqlite3.connect(served.engine.url.database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process writing, for as long as this test runs
    answers: list[int] = []
    try:
        post = threading.Thread(target=lambda: answers.append(requests.post(
            served.url("not-the-secret"), data=b"{}", timeout=60).status_code))
        post.start()
        post.join(timeout=20)
        assert answers == [404], "answered while another held the write lock"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        post.join()


def test_wrong_secrets_read_the_accepted_ones_again_at_most_once_a_second(engine: Engine) -> None:
    from core.webhook.secret import AcceptedSecrets, current_secret

    settings = get_settings()
    with transaction(engine) as s:
        secret = current_secret(s, settings=settings)
    clock = [1000.0]  # a clock of its own: a busy machine's pauses must not end the moment
    remembered = AcceptedSecrets(ttl=60, asked_again_after=0.2, clock=lambda: clock[0])
    assert remembered.worth_asking(), "nothing read yet"
    with transaction(engine) as s:
        assert not remembered.refresh_and_match(s, settings=settings, candidate="wrong")
    clock[0] += 0.15
    assert not remembered.worth_asking(), "a second wrong one within the moment is refused from memory"
    assert remembered.matches(secret)
    clock[0] += 0.1
    assert remembered.worth_asking(), "a secret rotated in another process is found a moment later"
    with ThreadPoolExecutor(8) as pool:  # wrong posts arriving together, while that read runs
        asked = list(pool.map(lambda _: remembered.worth_asking(), range(20)))
    assert asked.count(True) == 0, "the turn was taken by the one that asked first"


def test_a_check_while_a_rotation_is_uncommitted_does_not_hide_the_new_secret(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post checked in the moment between a rotation and its commit reads the secrets
    without the new one; the new one is still taken as soon as the rotation is committed."""
    import asyncio

    from core.webhook.route import _check_secret, secret_accepted
    from core.webhook.secret import current_secret, remembered_secrets, rotate_secret

    settings = _own_secret(db_url, monkeypatch)
    engine = engine_for(settings.sqlalchemy_url)
    with transaction(engine) as s:
        first = current_secret(s, settings=settings)
    remembered = remembered_secrets(settings)
    with transaction(engine) as s:
        newest = rotate_secret(s, settings=settings)
        assert _check_secret(remembered, settings, first), "a post in between, with the old secret"
    assert asyncio.run(secret_accepted(settings, newest)), "the new secret at once"
    get_settings.cache_clear()


@pytest.mark.parametrize("step", ["first", "last"])
def test_a_read_under_way_when_the_secrets_are_forgotten_is_not_remembered(
    db_url: str, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A rotation committing while a post's check is reading: what that read saw may be from
    before it, so the next post reads again rather than trust it. After the check's first
    statement too: SQLite's snapshot is taken there."""
    from sqlalchemy import event

    from core.webhook.route import _check_secret
    from core.webhook.secret import PREVIOUS_KEY, AcceptedSecrets, current_secret

    settings = _own_secret(db_url, monkeypatch)
    engine = engine_for(settings.sqlalchemy_url)
    with transaction(engine) as s:
        secret = current_secret(s, settings=settings)
    remembered = AcceptedSecrets(ttl=60, asked_again_after=60)

    def committed_meanwhile(_conn: object, _cursor: object, _statement: str, parameters: Any,
                            *_: object) -> None:
        last = PREVIOUS_KEY in str(parameters)  # the read's last step, after the current secret
        if not done and (step == "last") == last:
            done.append(step)
            remembered.forget()

    done: list[str] = []
    event.listen(engine, "after_cursor_execute", committed_meanwhile)
    assert _check_secret(remembered, settings, secret)
    assert not remembered.matches(secret), "not remembered as fresh"
    assert remembered.worth_asking(), "the next post reads again"
    assert _check_secret(remembered, settings, secret)
    assert remembered.matches(secret)
    event.remove(engine, "after_cursor_execute", committed_meanwhile)
    get_settings.cache_clear()


def _own_secret(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings on this test's database with a generated (rotatable) secret."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    return get_settings()


def test_the_first_check_before_any_secret_is_made_keeps_the_one_it_makes(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's start makes the secret; a check that comes first makes it and keeps it (a
    reading session would let it go, and each check would make up another)."""
    from core.models import AppState
    from core.webhook.route import _check_secret
    from core.webhook.secret import SECRET_KEY, AcceptedSecrets

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    engine = engine_for(settings.sqlalchemy_url)
    assert not _check_secret(AcceptedSecrets(), settings, "wrong")
    with transaction(engine) as s:
        kept = s.get(AppState, SECRET_KEY)
    assert kept is not None and kept.value
    assert _check_secret(AcceptedSecrets(), settings, kept.value)
    get_settings.cache_clear()


def test_a_prefix_of_the_secret_is_wrong(served: Served) -> None:
    assert served.post({"id": "x", "status": 2}, secret=served.secret[:-1]).status_code == 404
    assert served.post({"id": "x", "status": 2}, secret=served.secret + "x").status_code == 404
    assert served.inbox() == []


def test_posts_with_a_wrong_secret_are_counted_and_said_in_the_log_without_it(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """WSAPME posting to an old or mistyped address loses every event (a 404 is not retried):
    the log says so, at most once a minute, and Settings & health counts them."""
    from core.webhook.route import turned_away

    wrong = "Wr0ng-secret-" + served.secret[:8]
    with caplog.at_level(logging.WARNING, logger="core.webhook.route"):
        for _ in range(3):
            assert served.post({"id": "x", "status": 2}, secret=wrong).status_code == 404
        assert served.post({"id": "x", "status": 2}).status_code == 200
    said = [r.getMessage() for r in caplog.records if "wrong secret" in r.getMessage()]
    assert said == ["a post to the webhook with a wrong secret turned away (404): if WSAPME sends "
                    "them, paste the address on Settings & health into its webhook settings"]
    assert wrong not in caplog.text and served.secret not in caplog.text
    count, last = turned_away.lately()
    assert count == 3 and last is not None and utcnow() - last < dt.timedelta(minutes=1)


def test_the_last_posts_of_a_burst_with_a_wrong_secret_are_said_a_minute_on(
    caplog: pytest.LogCaptureFixture
) -> None:
    """Said at most once a minute: the posts after that line were said only if another came
    a minute later, which after the last of a burst none does."""
    from core.webhook.route import TurnedAway

    now = [1000.0]
    turned = TurnedAway(every=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="core.webhook.route"):
        for _ in range(4):
            turned.add()
        turned.say_unsaid()
        now[0] += 59.0
        turned.say_unsaid()
        assert len(caplog.records) == 1, "the first at once, the rest not within the minute"
        now[0] += 1.0
        turned.say_unsaid()
        turned.say_unsaid()
        now[0] += 600.0
        turned.say_unsaid()
    said = [r.getMessage().split(" to the webhook")[0] for r in caplog.records]
    assert said == ["a post", "3 posts"]
    assert turned.lately()[0] == 4


def test_an_oversized_body_is_refused_but_set_aside_and_logged(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """What the gateway meant is lost (it is told so), but not without a trace: the body had
    been neither kept nor logged."""
    big = json.dumps({"id": "3EB0A", "status": 3, "pad": "x" * MAX_BYTES}).encode()
    with caplog.at_level(logging.WARNING):
        assert served.post(big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size shows only while reading
        for _ in range(30):
            yield b"x" * 1000

    assert served.post(chunks()).status_code == 413
    assert served.post(big, secret="wrong").status_code == 404  # the secret is checked first
    assert served.post(big).status_code == 413  # the gateway trying again: not kept twice
    declared, chunked = served.inbox()
    kept = REFUSED_KEPT_BYTES
    assert (declared.state, declared.kind, bytes(declared.body)) == ("unparseable", "refused", big[:kept])
    assert declared.detail.startswith(f"Refused: the body ({len(big):,} bytes) was over WEBHOOK_MAX_BYTES "
                                      f"({MAX_BYTES:,} bytes). Its first {kept:,} bytes are kept here")
    assert (chunked.state, bytes(chunked.body)) == ("unparseable", b"x" * kept)
    assert "of unknown length" in chunked.detail
    # Cut short, it can never be applied: replaying the set-aside events leaves it, and its words.
    assert replay_set_aside(served.engine).seen == 0
    assert [e.detail for e in served.inbox()] == [declared.detail, chunked.detail]
    assert any("over WEBHOOK_MAX_BYTES" in r.getMessage() for r in caplog.records)
    assert served.secret not in caplog.text
    exactly = b'{"pad": "' + b"x" * (MAX_BYTES - 11) + b'"}'
    assert len(exactly) == MAX_BYTES
    assert served.post(exactly).status_code == 200


def test_malformed_json_is_kept_as_unparseable(served: Served) -> None:
    response = served.post(b'{"id": "3EB0A", "status":')
    assert (response.status_code, response.json()) == (200, {"ok": True})
    [entry] = served.inbox()
    assert (entry.state, entry.body) == ("unparseable", b'{"id": "3EB0A", "status":')
    assert "not valid JSON" in entry.detail


@pytest.mark.parametrize(
    ("content_type", "body", "state"),
    [
        ("text/plain", b'{"id": "3EB0A", "status": "READ"}', "applied"),
        (None, b'{"id": "3EB0A", "status": "READ"}', "applied"),
        (FORM, b'{"id": "3EB0A", "status": "READ"}', "applied"),
        ("application/xml", b"<ack id='3EB0A' status='READ'/>", "unparseable"),
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00", "unparseable"),
    ],
)
def test_the_content_type_is_a_hint_only(
    served: Served, content_type: str | None, body: bytes, state: str
) -> None:
    rid = _sent_recipient(served.engine, message_id="3EB0A")
    assert served.post(body, content_type=content_type).status_code == 200
    assert served.inbox()[0].state == state
    assert served.recipient(rid).status == ("READ_ACK" if state == "applied" else "PENDING")


def test_the_secret_never_reaches_the_access_log(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    assert served.post({"id": "x", "status": 2}).status_code == 200
    assert served.post({"id": "x", "status": 2}, secret="guess").status_code == 404
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access) == 2
    assert all("/webhooks/wsapme/[secret]" in line for line in access)
    assert served.secret not in caplog.text and "guess" not in caplog.text


def test_the_secret_in_a_mistyped_webhook_address_never_reaches_the_access_log(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    """An address pasted with a capital, a doubled slash, "[secret]" left in it or the secret
    as a query had been logged as typed: the live secret in the server's log."""
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    secret = served.secret
    for path in (f"/webhooks/WSAPME/{secret}", f"/WEBHOOKS/wsapme/{secret}", f"//webhooks//wsapme/{secret}",
                 f"/webhooks/wsapme/[secret]/{secret}", f"/webhooks/wsapme/[secret]?s={secret}",
                 f"/webhooks/wsapme?secret={secret}", f"/webhooks/wsapme/{secret}/",
                 f"/webhook/wsapme/{secret}"):
        answer = requests.post(served.base + path, data=b"{}", timeout=30, allow_redirects=False)
        assert answer.status_code != 200, path
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    assert len(access) == 8
    assert secret not in caplog.text, caplog.text


# --- the ack that beats the send ---------------------------------------------------------


def test_an_ack_before_the_message_id_is_stored_waits_then_applies(served: Served) -> None:
    rid = _sent_recipient(served.engine, message_id=None, status=Status.SENDING)
    assert served.post({"messageId": "3EB0RACE", "ack": 3}).status_code == 200
    assert served.inbox()[0].state == "waiting"
    with transaction(served.engine) as s:  # the send worker stores the gateway's answer
        apply_status(s, recipient_id=rid, status=Status.PENDING, source="send",
                     updates={"message_id": "3EB0RACE"})
    assert replay_after_send(served.engine, message_ids=["3EB0RACE"]) == 1
    assert served.inbox()[0].state == "applied"
    assert served.recipient(rid).status == "DELIVERY_ACK"


# --- many at once --------------------------------------------------------------------------


def _burst(n_recipients: int) -> tuple[list[tuple[bytes, str]], list[str]]:
    """Acks in every shape, each duplicated, a reply each, unknown ids and garbage; shuffled."""
    posts: list[tuple[bytes, str]] = []
    ids = [f"3EB0BURST{i:04d}" for i in range(n_recipients)]
    ts = _now_ts()
    for i, mid in enumerate(ids):
        phone = f"6012{i:07d}"
        read = json.dumps({"event": "message-ack", "data": {"id": mid, "status": "READ", "timestamp": ts}})
        posts += [
            (json.dumps({"key": {"id": mid, "fromMe": True}, "update": {"status": 2}}).encode(), JSON),
            (urlencode({"id": mid, "status": "DELIVERY_ACK", "timestamp": ts}).encode(), FORM),
            (read.encode(), JSON),
            (read.encode(), JSON),  # the gateway's duplicate
            (json.dumps({"type": "text", "message": "ok", "from": f"{phone}@c.us",
                         "timestamp": ts}).encode(), JSON),
        ]
    posts += [(json.dumps({"id": f"3EB0NOBODY{i}", "status": 3}).encode(), JSON) for i in range(15)]
    posts += [(b'{"broken": ', JSON) for _ in range(10)]
    random.Random(42).shuffle(posts)
    return posts, ids


@pytest.mark.slow
def test_hundreds_of_concurrent_posts_lose_nothing_and_duplicate_nothing(served: Served) -> None:
    n = 60
    rids = [_sent_recipient(served.engine, message_id=f"3EB0BURST{i:04d}", phone=f"+6012{i:07d}")
            for i in range(n)]
    posts, _ = _burst(n)
    assert len(posts) >= 300
    shares = [posts[k::8] for k in range(8)]

    def send(share: list[tuple[bytes, str]]) -> list[int]:
        with requests.Session() as http:
            return [http.post(served.url(), data=body, headers={"Content-Type": ct},
                              timeout=60).status_code for body, ct in share]

    with ThreadPoolExecutor(8) as pool:
        codes = [c for result in pool.map(send, shares) for c in result]
    assert Counter(codes) == {200: len(posts)}
    served.settle()

    states = Counter(e.state for e in served.inbox())
    assert states == {"applied": 5 * n, "waiting": 15, "unparseable": 10}
    with transaction(served.engine) as s:
        history = s.execute(select(StatusHistory.recipient_id, StatusHistory.new_status)
                            .order_by(StatusHistory.id)).all()
        rows = {r.id: r for r in s.scalars(select(BlastRecipient))}
    by_recipient: dict[int, list[str]] = {}
    for rid, status in history:
        by_recipient.setdefault(rid, []).append(status)
    for rid in rids:
        assert (rows[rid].status, rows[rid].reply_text) == ("REPLIED", "ok")
        changes = by_recipient[rid]
        ranks = [RANK[Status(s)] for s in changes]
        assert ranks == sorted(set(ranks)), changes  # only upwards, never twice
        assert changes[-1] == "REPLIED"


# --- the database away ---------------------------------------------------------------------


def test_database_down_answers_503_and_a_retry_succeeds(
    served: Served, db_url: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    rid = _sent_recipient(served.engine, message_id="3EB0A")
    payload = {"id": "3EB0A", "status": "READ"}
    if db_url.startswith("sqlite"):
        # A database path under a plain file: no process, root included, can open it.
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        monkeypatch.setenv("DATABASE_URL", f"sqlite:///{blocker}/blasts.db")
        get_settings.cache_clear()
        response = served.post(payload)
        monkeypatch.setenv("DATABASE_URL", db_url)
        get_settings.cache_clear()
    else:
        server = request.getfixturevalue("pg_server")
        if server is None:
            pytest.skip("the PostgreSQL server is not ours to stop")
        server.stop()
        try:
            response = served.post(payload)
        finally:
            server.start()
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert served.secret not in response.text
    assert served.inbox() == []

    retry = served.post(payload)
    assert retry.status_code == 200
    assert [e.state for e in served.inbox()] == ["applied"]
    assert served.recipient(rid).status == "READ_ACK"


def test_opt_out_over_http_is_recorded_once(served: Served) -> None:
    _sent_recipient(served.engine, message_id="3EB0A")
    for _ in range(3):
        payload = {"message": "BERHENTI", "from": "60123456789@s.whatsapp.net", "timestamp": _now_ts()}
        assert served.post(payload).status_code == 200
    with transaction(served.engine) as s:
        assert s.scalar(select(func.count()).select_from(OptOut)) == 1


# --- with the gateway simulator ------------------------------------------------------------


def _store_answer(engine: Engine, rid: int, message_id: str) -> None:
    """What the send worker does with the gateway's answer, then its call to the replay."""
    with transaction(engine) as s:
        apply_status(s, recipient_id=rid, status=Status.PENDING, source="send",
                     updates={"message_id": message_id})
    replay_after_send(engine, message_ids=[message_id])


@pytest.mark.slow
def test_the_gateway_simulator_end_to_end(served: Served) -> None:
    """Real sends to the simulator and its webhooks in every shape, with replies and
    opt-outs: each recipient ends where the gateway says it is. For half the messages the
    answer is stored only after all their webhooks came (a slow worker), so those wait."""
    from core.simulator import Proportions
    from tests.support.simulator import client_for, running_simulator

    proportions = Proportions(replied=0.4, opt_out=0.4, reply_without_read=0.5)
    sent: dict[int, str] = {}
    late: dict[int, str] = {}
    with running_simulator(webhook_url=served.url(), seed=11, proportions=proportions) as sim:
        client = client_for(sim)
        for i in range(40):
            phone = f"+6013{i:07d}"
            rid = _sent_recipient(served.engine, message_id=None, phone=phone, status=Status.SENDING)
            result = client.send_text(to=phone.removeprefix("+"), message="Hi!")
            sent[rid] = result.message_id
            if i % 2:
                late[rid] = result.message_id
            else:
                _store_answer(served.engine, rid, result.message_id)
        assert sim.wait_idle(30)
        emitted = sim.emitted()
    assert all(e.delivered and e.http_status == 200 for e in emitted.events)
    served.settle()  # the route answers before it applies
    assert Counter(e.state for e in served.inbox())["waiting"] > 0
    for rid, message_id in late.items():
        _store_answer(served.engine, rid, message_id)
    served.settle()

    inbox = served.inbox()
    assert len(inbox) == len(emitted.events)
    assert Counter(e.state for e in inbox) == {"applied": len(emitted.events)}
    for rid, message_id in sent.items():
        assert served.recipient(rid).status == emitted.funnel_status(message_id), rid
    opted_out = {"+" + r.to for r in emitted.replies if r.opt_out}
    assert opted_out  # the seed gives some
    with transaction(served.engine) as s:
        assert set(s.scalars(select(OptOut.phone_number))) == opted_out


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["drop_connection", "no_message_id"])
def test_the_gateways_acks_settle_a_send_whose_answer_was_lost(served: Served, fault: str) -> None:
    """The real worker sends through the simulator, which takes one message and loses its
    answer: the worker marks it unknown and never sends it again; the gateway's acks, naming
    the number, then settle it with the id the gateway gave it."""
    from core.simulator import Proportions
    from core.webhook.inbox import replay_waiting
    from tests.sending.support import launched_blast, phone, worker_for
    from tests.support.simulator import running_simulator

    quiet = Proportions(delivered=1.0, read=1.0, replied=0.0)  # acks only: a reply would settle it too
    with running_simulator(webhook_url=served.url(), webhook_shape="baileys", proportions=quiet) as sim:
        blast_id = launched_blast(served.engine, 3)
        sim.set_fault(fault, times=1)
        worker_for(served.engine, sim).run(once=True)
        assert sim.wait_idle(30)
        [lost] = [m for m in sim.sent_messages() if m.to == phone(0).removeprefix("+")]
        emitted = sim.emitted()
    served.settle()
    replay_waiting(served.engine)  # for acks that came before the send was marked unknown
    with transaction(served.engine) as s:
        rows = {r.phone_number: r for r in s.scalars(
            select(BlastRecipient).where(BlastRecipient.blast_id == blast_id))}
        history = s.execute(select(StatusHistory.old_status, StatusHistory.source)
                            .where(StatusHistory.recipient_id == rows[phone(0)].id)
                            .order_by(StatusHistory.id)).all()
    settled = rows[phone(0)]
    assert (settled.message_id, settled.status) == (lost.message_id, emitted.funnel_status(lost.message_id))
    assert settled.status == "READ_ACK" and settled.sent_at and settled.delivered_at
    assert history[:2] == [("SENDING", "send"), ("UNKNOWN", "webhook")]
    assert sim.sent_count(phone(0).removeprefix("+")) == 1
    assert all(r.status == "READ_ACK" for r in rows.values())
