"""Secrets stay secret: the webhook secret is required, compared in constant time and
rotatable without losing events; no route serves data without it or a login; and the
token, the webhook secret, the database password and the dashboard password never show
in pages, logs, errors, exports or tracebacks while real flows run with them set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import streamlit as st
import uvicorn
from sqlalchemy import Engine, MetaData, make_url, select
from starlette.applications import Starlette
from streamlit.testing.v1 import AppTest

from core.cli import main as cli_main
from core.config import PROJECT_ROOT, Settings, get_settings
from core.db import NOT_A_URL, engine_for, transaction
from core.exports import stage_csv
from core.models import Blast, BlastRecipient, WebhookInbox, utcnow
from core.passwords import hash_password
from core.server import lifespan_for, without_refusal_trace
from core.services import start_services
from core.simulator import Simulator
from core.status_engine import apply_status
from core.statuses import Status
from core.webhook import secret as webhook_secret
from core.webhook.inbox import replay_after_send
from core.webhook.secret import matches_any, rotate_secret, secret_matches
from core.wsapme.failures import TOKEN_REFUSED
from tests.reliability.support import (
    Served,
    app_env,
    app_server,
    assert_every_event_kept,
    served_route,
    wait_until,
)
from tests.sending.support import KL, launched_blast
from tests.support.factories import make_blast, make_recipient
from tests.support.simulator import client_for, running_simulator
from tests.test_pages import app_db  # noqa: F401  (fixture)

TOKEN = "wsapme-token-SECRET-7d3f9a2c41"
HOOK = "hook-SECRET-5b8e1f0c9d2a7e64aa"
DB_PASSWORD = "dbpw-SECRET-3e9c7a1f"
LOGIN_PASSWORD = "login-SECRET-kuih-2026"
LOGIN_HASH = hash_password(LOGIN_PASSWORD)
SECRETS = (TOKEN, HOOK, DB_PASSWORD, LOGIN_PASSWORD, LOGIN_HASH)
PRIVATE = ("Zubaidah PRIVATE-5521", "PRIVATE reply 5521", "60129995521")
RIGHT_TOKEN = "the-token-the-gateway-knows"  # the simulator refuses every other one


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows a secret ({secret[:10]}…)"


def with_password(url: str) -> str:
    """The URL with the database password in it (the test server trusts any password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.set(password=DB_PASSWORD).render_as_string(hide_password=False)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


UNREACHABLE_DB = f"postgresql://blaster:{DB_PASSWORD}@127.0.0.1:{closed_port()}/blasts"
MALFORMED_DB = f"postgresql://blaster:{DB_PASSWORD}@127.0.0.1:no-port/blasts"


def secret_env(db_url: str, **extra: str) -> dict[str, str]:
    """Every secret set, as on a production machine."""
    return app_env(with_password(db_url), WSAPME_TOKEN=TOKEN, WEBHOOK_SECRET=HOOK,
                   DASHBOARD_PASSWORD_HASH=LOGIN_HASH, **{"WSAPME_DEVICE": "5850", **extra})


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def database_text(engine: Engine) -> str:
    """Every row of every table, as text: what a backup or a support dump would hold."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return "\n".join(repr(row) for table in metadata.sorted_tables
                         for row in connection.execute(select(table)))


# --- the webhook secret ------------------------------------------------------------------


def test_every_accepted_secret_is_compared_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time: hmac.compare_digest against each accepted secret, with no early exit
    on a match, so the answer takes as long whichever secret (if any) matched."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(webhook_secret.hmac, "compare_digest", recording)
    accepted = ["current-secret-aaaaaaaa", "previous-secret-bbbbbbbb", "older-secret-cccccccc"]
    for candidate, expected in ((accepted[0], True), (accepted[2], True), ("guess", False)):
        calls.clear()
        assert matches_any(candidate, accepted) is expected
        assert calls == [(candidate.encode(), s.encode()) for s in accepted]


@pytest.mark.parametrize(("public_url", "shown"), [
    ("https://ali:pw-Zq81@blasts.example.com", "https://blasts.example.com"),
    ("https://ali@blasts.example.com:8443/tracker/", "https://blasts.example.com:8443/tracker"),
    ("http://localhost:8501", "http://localhost:8501"),
])
def test_the_webhook_address_shown_masked_leaves_out_a_login_in_public_url(
    public_url: str, shown: str
) -> None:
    # A proxy's basic-auth login in PUBLIC_URL is a secret as much as the webhook's own.
    settings = Settings(_env_file=None, public_url=public_url)
    masked = webhook_secret.webhook_url(settings, HOOK)
    assert masked == f"{shown}/webhooks/wsapme/{webhook_secret.mask(HOOK)}"
    revealed = webhook_secret.webhook_url(settings, HOOK, reveal=True)
    assert revealed == f"{public_url.rstrip('/')}/webhooks/wsapme/{HOOK}", "revealed: exactly what to paste"


@pytest.fixture
def served(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    with served_route(monkeypatch, db_url) as route:
        yield route


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/webhooks/wsapme"), ("POST", "/webhooks/wsapme/"), ("POST", "/webhooks/wsapme/%20"),
    ("POST", "/webhooks/wsapme/?secret={secret}"), ("POST", "/webhooks/wsapme/{secret}/extra"),
    ("POST", "/webhooks/wsapme/{upper}"), ("POST", "/webhooks/wsapme/{secret}%00"),
    ("GET", "/webhooks/wsapme/{secret}"), ("PUT", "/webhooks/wsapme/{secret}"),
])
def test_no_request_without_the_exact_secret_is_stored(served: Served, method: str, path: str) -> None:
    url = served.base + path.format(secret=served.secret, upper=served.secret.swapcase())
    response = requests.request(method, url, data=b'{"id": "3EB0A", "status": 3}', timeout=30)
    assert response.status_code in (404, 405), response.status_code
    assert served.secret not in response.text
    assert served.inbox() == []


def _store_answer(engine: Engine, rid: int, message_id: str) -> None:
    """What the send worker does with the gateway's answer, then its replay call."""
    with transaction(engine) as s:
        apply_status(s, recipient_id=rid, status=Status.PENDING, source="send",
                     updates={"message_id": message_id})
    replay_after_send(engine, message_ids=[message_id])


def _send_some(served: Served, sim: Simulator, first: int, count: int) -> None:
    client = client_for(sim)
    for i in range(first, first + count):
        phone = f"+6013{i:07d}"
        with transaction(served.engine) as s:
            rid = make_recipient(s, make_blast(s), phone_number=phone, status="SENDING").id
        _store_answer(served.engine, rid, client.send_text(to=phone[1:], message="Hi").message_id)


def test_rotating_the_secret_twice_mid_flow_loses_no_event(served: Served) -> None:
    """WSAPME keeps posting to the address it was given until someone pastes the new one;
    a second rotation (a double click) must not cut that address off either."""
    first = served.url()
    with running_simulator(webhook_url=first, max_webhook_attempts=3) as sim:
        _send_some(served, sim, 0, 15)
        with transaction(served.engine) as s:
            rotate_secret(s, settings=get_settings())
        _send_some(served, sim, 15, 15)  # the gateway still uses the first address
        with transaction(served.engine) as s:
            newest = rotate_secret(s, settings=get_settings())
        _send_some(served, sim, 30, 15)
        sim.set_webhook_url(served.url(newest))  # pasted at last
        _send_some(served, sim, 45, 15)
        assert sim.wait_idle(30)
        emitted = sim.emitted()
    assert {e.http_status for e in emitted.events} == {200}, "no event was refused"
    assert {e.url for e in emitted.events} == {first, served.url(newest)}
    assert_every_event_kept(emitted, served.inbox())
    with transaction(served.engine) as s:  # once the grace period is over, only the newest
        later = utcnow() + webhook_secret.DEFAULT_GRACE + dt.timedelta(minutes=1)
        assert not secret_matches(s, settings=get_settings(), candidate=served.secret, now=later)
        assert secret_matches(s, settings=get_settings(), candidate=newest, now=later)


def test_two_rotations_at_once_keep_every_address(engine: Engine) -> None:
    """Two people click "Make a new address" in two tabs: both new addresses, and the one
    WSAPME still has, keep working."""
    settings = Settings(_env_file=None, webhook_secret=None)
    with transaction(engine) as s:
        original = webhook_secret.current_secret(s, settings=settings)
    first_done, made = threading.Event(), {}

    def first() -> None:
        with transaction(engine) as s:
            made["first"] = rotate_secret(s, settings=settings)
            first_done.set()
            time.sleep(0.5)  # still uncommitted while the second rotation starts

    thread = threading.Thread(target=first)
    thread.start()
    assert first_done.wait(30)
    with transaction(engine) as s:
        made["second"] = rotate_secret(s, settings=settings)
    thread.join(30)
    with transaction(engine) as s:
        accepted = webhook_secret.accepted_secrets(s, settings=settings)
    assert sorted(accepted) == sorted([original, made["first"], made["second"]])


# --- secrets in flows: CLI and worker, webhook, pages, sandbox ---------------------------


def test_the_cli_and_a_refused_worker_keep_secrets_out_of_output_and_database(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with running_simulator(token=RIGHT_TOKEN) as sim:
        env = secret_env(db_url, WSAPME_API_URL=sim.url, WSAPME_MASTER_URL=sim.url, SEND_PACING="off")
        contacts = tmp_path / "contacts.csv"
        contacts.write_text("Name,Phone\nAisyah,012-345 6789\nWei Ling,011-2345 6789\n")
        runs = [
            cli(env, "migrate"),
            cli(env, "settings"),
            cli(env, "settings", "--in-force"),  # what an operator checks after editing .env
            cli(env, "import-csv", str(contacts), "--tag", "Raya", "--message", "Hi {name}", "--json"),
        ]
        blast_id = json.loads(runs[-1].stdout)["blast_id"]
        runs += [cli(env, "send", str(blast_id)), cli(env, "worker", "--once")]
        runs += [cli({**env, "DATABASE_URL": UNREACHABLE_DB}, "migrate"),  # a traceback
                 cli({**env, "DATABASE_URL": MALFORMED_DB}, "migrate")]
        hashed = cli(env, "hash-password", stdin=LOGIN_PASSWORD + "\n")
    # The worker's token is refused: it pauses the blast and says so in its exit code.
    assert [r.returncode for r in runs[:6]] == [0, 0, 0, 0, 0, 1], [r.stderr[-1000:] for r in runs]
    assert all(r.returncode != 0 and r.stderr.strip() for r in runs[6:]), "the failures ran and said so"
    in_force = runs[2].stdout.splitlines()
    assert "* WSAPME_TOKEN                  (set, hidden)" in in_force
    assert "* WSAPME_DEVICE                 5850" in in_force
    [database] = [line for line in in_force if line.startswith("* DATABASE_URL ")]
    assert ":•••@127.0.0.1:" in database or database.endswith("blasts.db"), database
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        assert (blast.state, blast.state_reason) == ("paused", TOKEN_REFUSED)
        export = stage_csv(s, blast_id=blast_id, selection="Everyone", zone=KL).decode("utf-8-sig")
    for run in runs:
        assert_no_secret(run.stdout + run.stderr, f"`python -m core {' '.join(run.args[3:])}`")
    assert LOGIN_PASSWORD not in hashed.stdout + hashed.stderr
    assert_no_secret(export, "an export")
    assert_no_secret(database_text(engine), "the database")


# A password with an @ and a : typed as they are, not percent-encoded: the URL breaks inside the
# password, and what the parser or the driver then quotes holds its end.
PASSWORD_ENDS = ("ssw0rd-SECRET-5521", "Tail-SECRET-7d3f")
BROKEN_URLS = {
    "an @ and a :": f"postgresql://app:Pa@{PASSWORD_ENDS[0]}:{PASSWORD_ENDS[1]}@db.example.com:5432/blasts",
    "an @": f"postgresql://app:Pa@{PASSWORD_ENDS[0]}@127.0.0.1:5432/blasts",
    "an @ and a /": f"postgresql://app:Pa@{PASSWORD_ENDS[0]}/{PASSWORD_ENDS[1]}@127.0.0.1:5432/blasts",
}


def _start_refused() -> uvicorn.Server:
    """Start the server as `streamlit run` does, with the settings of the moment, expecting its
    start to be refused (uvicorn exits); the settings and the engine are forgotten after."""
    server = uvicorn.Server(uvicorn.Config(Starlette(lifespan=lifespan_for("http://127.0.0.1:9")),
                                           lifespan="on", log_config=None))
    try:
        with pytest.raises(SystemExit):
            asyncio.run(server.serve())
    finally:
        logging.getLogger("uvicorn.error").removeFilter(without_refusal_trace)
        get_settings.cache_clear()
        engine_for.cache_clear()
    return server


@pytest.mark.parametrize("url", BROKEN_URLS.values(), ids=list(BROKEN_URLS))
def test_a_database_url_that_cannot_be_read_is_refused_without_any_of_it(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`python -m core migrate` and the server's start say what to do in one line, without any
    part of the URL (the command line in this process: the same function, seconds faster)."""
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    assert cli_main(["migrate"]) == 2
    said = capsys.readouterr()
    server = _start_refused()  # before any port is opened
    assert said.err == f"error: {NOT_A_URL}\n" and not said.out
    assert not server.started and f"cannot start: {NOT_A_URL}" in caplog.text
    assert "Application startup failed" in caplog.text and "Traceback" not in caplog.text
    for end in PASSWORD_ENDS:
        assert end not in said.err + caplog.text


def test_a_database_that_cannot_be_reached_stops_the_start_in_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The database server down (or a wrong password): the server's start says so, with the
    driver's words, and logs no traceback (which had filled the screen of whoever started it)."""
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DB)
    monkeypatch.setenv("DATABASE_WAIT_SECONDS", "0")  # not waited for: tests/test_database_wait.py
    get_settings.cache_clear()
    server = _start_refused()
    assert not server.started
    assert ("cannot start: cannot use the database: check DATABASE_URL and that the database server is "
            "running (connection failed: connection to server at \"127.0.0.1\"") in caplog.text
    assert "Application startup failed" in caplog.text and "Traceback" not in caplog.text
    assert DB_PASSWORD not in caplog.text


@pytest.mark.parametrize(("error", "said", "traceback"), [
    # Another program holds the SQLite file, or it is read-only: said in words.
    ("OperationalError", "cannot start: cannot prepare the database: check that this server may write "
                         "to it and that no other program holds it (database is locked)", False),
    # A defect in a migration: its traceback is kept, and it is not called a connection problem.
    ("ProgrammingError", "column already exists", True),
])
def test_a_migration_that_fails_at_start(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    error: str, said: str, traceback: bool,
) -> None:
    from sqlalchemy import exc

    from core import server

    def failing(_engine: Engine) -> None:
        words = "database is locked" if error == "OperationalError" else "column already exists"
        raise getattr(exc, error)("ALTER TABLE", {}, Exception(words))

    caplog.set_level(logging.INFO)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setattr(server, "migrate", failing)
    get_settings.cache_clear()
    _start_refused()
    assert said in caplog.text and "cannot use the database" not in caplog.text
    assert ("Traceback" in caplog.text) == traceback


def test_webhook_answers_and_logs_keep_secrets_out(
    db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with served_route(monkeypatch, with_password(db_url), secret=HOOK) as route:
        answers = [requests.post(route.url(secret), json={"id": "3EB0A", "status": 3}, timeout=30)
                   for secret in (HOOK, "wrong-guess", HOOK[:-1])]
        monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DB)
        get_settings.cache_clear()
        answers.append(requests.post(route.url(HOOK), json={"id": "3EB0A", "status": 3}, timeout=30))
    assert [a.status_code for a in answers] == [200, 404, 404, 503]
    for answer in answers:
        assert_no_secret(answer.text + json.dumps(dict(answer.headers)), "a webhook answer")
    assert "database is unavailable" in caplog.text, "the outage was logged"
    assert_no_secret(caplog.text, "the server log")


@pytest.fixture
def dashboard(app_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:  # noqa: F811
    """Pages rendered with every secret set, against a gateway that refuses the token."""
    with running_simulator(token=RIGHT_TOKEN) as sim:
        for name, value in secret_env(app_db, WSAPME_API_URL=sim.url, WSAPME_MASTER_URL=sim.url).items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        engine_for.cache_clear()
        st.cache_resource.clear()
        yield sim


def page_text(at: AppTest) -> str:
    """Everything the page sent to the browser: each element's full message."""
    parts: list[str] = []

    def walk(node: object) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def test_pages_never_show_a_secret(
    dashboard: Simulator, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo", state="paused", state_reason="Paused by you.")
        make_recipient(s, blast, contact_name="Aisyah", status="REPLIED", reply_text="Berapa?")
        blast_id = blast.id
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=30).run()
    at.text_input(key="login_password").set_value(LOGIN_PASSWORD)
    at.button[0].click().run()
    seen = [page_text(at)]
    for path in sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "pages").glob("*.py")):
        at.query_params["blast"] = str(blast_id)
        at.switch_page(path).run()
        assert not at.exception, (path, at.exception)
        seen.append(page_text(at))
        if path == "pages/health.py":
            at.button(key="check_device").click().run()  # the gateway refuses the token
            assert any("refused the token" in e.value for e in at.error), [e.value for e in at.error]
            seen.append(page_text(at))
    shown = "\n".join(seen)
    assert "Raya promo" in shown and "Berapa?" in shown, "the login worked and pages rendered"
    assert webhook_secret.mask(HOOK) in shown, "the webhook address is shown masked"
    assert_no_secret(shown, "a page")
    assert_no_secret(caplog.text, "the log of a page run")


def test_the_sandbox_gateway_does_not_log_the_webhook_address(
    engine: Engine, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """In the default one-process setup the sandbox posts webhooks to this very server; when
    it cannot reach it (a wrong port under uvicorn), it must not log the address's secret."""
    caplog.set_level(logging.INFO)
    settings = Settings(_env_file=None, database_url=db_url, webhook_secret=HOOK, sandbox_speed="fast",
                        send_pacing="off", status_polling="off", wsapme_device="5850")
    launched_blast(engine, 3, device="sandbox")  # a practice blast: the sandbox sends it
    stop = start_services(engine, settings=settings, local_url=f"http://127.0.0.1:{closed_port()}")
    try:
        wait_until(lambda: "webhook to http://127.0.0.1" in caplog.text, timeout=30,
                   what="the sandbox to try a webhook")
    finally:
        stop()
    assert_no_secret(caplog.text, "the sandbox's log")


# --- every route, probed without the secret or a login -----------------------------------

ENUMERATE = """
import json, streamlit_app
routes = streamlit_app.app._build_starlette_app().routes
print(json.dumps([{"kind": type(r).__name__, "path": r.path,
                   "methods": sorted(getattr(r, "methods", None) or [])} for r in routes]))
"""


def served_routes(env: dict[str, str]) -> list[dict[str, object]]:
    """The routes the app object in streamlit_app.py serves (its own and Streamlit's)."""
    result = subprocess.run([sys.executable, "-c", ENUMERATE], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def probes(routes: list[dict[str, object]]) -> Iterator[tuple[str, str]]:
    for route in routes:
        path = str(route["path"]) or "/"
        for name in ("secret", "file_id:path", "path:path", "session_id", "file_id"):
            path = path.replace("{" + name + "}", "probe-0001")
        methods = [m for m in route["methods"] if m != "HEAD"] or ["GET"]  # type: ignore[union-attr]
        for method in methods:
            yield method, path
    yield from (("GET", "/"), ("GET", "/blast?blast=1"), ("GET", "/health"), ("GET", "/app/static/x"))


def test_no_route_serves_data_without_the_secret_or_a_login(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, name=PRIVATE[0])
        make_recipient(s, blast, contact_name=PRIVATE[0], reply_text=PRIVATE[1],
                       phone_number="+" + PRIVATE[2], status="REPLIED", message_id="3EB0PRIVATE")
    env = secret_env(db_url)
    routes = served_routes(env)
    assert {"/healthz", "/webhooks/wsapme/{secret}", "/_stcore/stream"} <= {r["path"] for r in routes}
    answers: list[tuple[str, str, int, str]] = []
    with app_server(env, tmp_path) as server, requests.Session() as http:
        for method, path in probes(routes):
            response = http.request(method, server.base + path, data=b'{"id": "3EB0PRIVATE", "status": 4}',
                                    headers={"Content-Type": "application/json"}, timeout=30,
                                    allow_redirects=False)
            answers.append((method, path, response.status_code, response.text + str(response.headers)))
        assert http.get(f"{server.base}/healthz", timeout=30).json() == {"ok": True}
        webhook = http.post(f"{server.base}/webhooks/wsapme/{HOOK}", json={"id": "x", "status": 2},
                            timeout=30)
        # The secret is remembered now: this one is answered at the door, before the pages' layers.
        again = http.post(f"{server.base}/webhooks/wsapme/{HOOK}", json={"id": "y", "status": 2},
                          timeout=30)
    assert webhook.status_code == 200, "the right secret works: the probes were refused for a reason"
    assert (again.status_code, again.json(), again.headers.get("set-cookie")) == (200, {"ok": True}, None)
    for method, path, status, text in answers:
        for private in PRIVATE:
            assert private not in text, f"{method} {path} ({status}) shows private data"
        assert_no_secret(text, f"{method} {path}")
        if path.startswith("/webhooks/"):
            assert status in (404, 405), (method, path, status)
    with transaction(engine) as s:
        assert len(s.scalars(select(WebhookInbox)).all()) == 2, "only the posts with the secret were stored"
        assert s.scalars(select(BlastRecipient.status)).one() == "REPLIED"
    log = server.output()
    assert "/webhooks/wsapme/[secret]" in log, "the access log was written, and redacted"
    assert_no_secret(log, "the server's own log")
    assert "Traceback" not in log, log[-3000:]



def test_a_database_error_never_carries_the_values_it_was_writing(engine: Engine) -> None:
    """A failed write of the webhook secret (a full disk, a broken connection) is logged: its
    error must not hold the secret, which SQLAlchemy would otherwise print as a parameter."""
    from sqlalchemy.exc import IntegrityError

    from core.models import AppState

    secret = "zq-very-secret-value-0123456789"
    with transaction(engine) as s:
        s.add(AppState(key="webhook_secret_previous", value="[]"))
    with pytest.raises(IntegrityError) as refused, transaction(engine) as s:
        s.add(AppState(key="webhook_secret_previous", value=json.dumps([{"secret": secret}])))
        s.flush()
    assert secret not in str(refused.value)
    assert "hidden due to hide_parameters" in str(refused.value)
