"""The health page's facts: whether WSAPME can reach the webhook address, the device in words,
whether the gateway takes messages and whether its receipts arrive."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import OperationalError

from core import app_state, uptime
from core.config import Settings, get_settings
from core.db import transaction
from core.health import _notes, collect, device_state, paused_why, unreachable_reason
from core.models import AppState, Blast, WebhookInbox, utcnow
from core.polling import POLLING_STATE_KEY
from core.sending import blasts
from core.sending.worker import STOPPED_KEY
from core.status_engine import apply_status
from core.statuses import Status
from core.webhook.secret import current_secret, mask
from core.wsapme import WsapmeClient
from core.wsapme.failures import TOKEN_REFUSED
from tests import test_pages
from tests.reliability.support import served_route
from tests.sending.support import launched_blast, worker_for
from tests.support.factories import make_blast, make_recipient
from tests.support.simulator import running_simulator
from tests.test_pages import run_page
from tests.test_secrets import page_text


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://tracker.example.com", None),
        ("http://175.136.0.10:8501", None),
        ("http://localhost:8501", "localhost is this computer's own name"),
        ("http://127.0.0.1:8501", "127.0.0.1 is this computer's own address"),
        ("http://[::1]:8501", "::1 is this computer's own address"),
        ("http://0.0.0.0:8501", "0.0.0.0 is this computer's own address"),
        ("http://192.168.1.20:8501", "192.168.1.20 is an address inside this network"),
        ("http://10.0.0.5", "10.0.0.5 is an address inside this network"),
        ("http://office-pc:8501", "office-pc is a name only this network knows"),
        ("http://tracker.local", "tracker.local is this computer's own name"),
        ("tracker.example.com", "it is not a web address"),
        ("", "it is not a web address"),
    ],
)
def test_an_address_the_gateway_cannot_reach_is_named(url: str, reason: str | None) -> None:
    assert unreachable_reason(url) == reason


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_a_local_webhook_address_is_a_note_only_when_sending_for_real() -> None:
    real = _settings(wsapme_token="t0ken-for-the-test", wsapme_device="5850", public_url="http://localhost:8501")
    notes = _notes(real, workers=[object()])  # type: ignore[list-item]
    assert any("WSAPME cannot deliver receipts" in n.words and "localhost" in n.fix for n in notes)
    assert not any("t0ken" in n.words + n.fix for n in notes)
    sandbox = _settings(public_url="http://localhost:8501")
    assert not any("WSAPME cannot deliver" in n.words for n in _notes(sandbox, workers=[object()]))  # type: ignore[list-item]
    public = _settings(wsapme_token="t0ken-for-the-test", wsapme_device="5850",
                       public_url="https://tracker.example.com")
    assert not any("WSAPME cannot deliver" in n.words for n in _notes(public, workers=[object()]))  # type: ignore[list-item]


HTTPS_NOTE = "WSAPME posts replies to an http:// address: the webhook secret crosses the internet unencrypted"


@pytest.mark.parametrize(("token", "url", "warned"), [
    ("t0ken-for-the-test", "http://175.136.0.10:8501", True),
    ("t0ken-for-the-test", "HTTP://tracker.example.com/", True),
    ("t0ken-for-the-test", "https://tracker.example.com", False),
    ("t0ken-for-the-test", "http://localhost:8501", False),  # WSAPME cannot reach it: said so instead
    ("t0ken-for-the-test", "http://127.0.0.1:8501", False),
    (None, "http://175.136.0.10:8501", False),  # practice mode: WSAPME posts nothing
])
def test_a_webhook_address_on_plain_http_is_a_note(token: str | None, url: str, warned: bool) -> None:
    settings = _settings(wsapme_token=token, wsapme_device="5850", public_url=url)
    notes = [n for n in _notes(settings, workers=[object()]) if HTTPS_NOTE in n.words]  # type: ignore[list-item]
    assert len(notes) == warned
    if warned:
        assert "HTTPS" in notes[0].fix and "PUBLIC_URL" in notes[0].fix


def test_each_note_says_the_problem_plainly_and_leaves_the_settings_to_the_fix() -> None:
    everything_wrong = _settings(wsapme_token="t0ken-for-the-test", wsapme_device="5850", send_pacing="off",
                                 public_url="http://192.168.1.20:8501", send_lease_seconds=30)
    plain_http = _settings(wsapme_token="t0ken-for-the-test", wsapme_device="5850",
                           public_url="http://175.136.0.10:8501")
    notes = [*_notes(everything_wrong, workers=[]), *_notes(plain_http, workers=[object()])]  # type: ignore[list-item]
    assert len(notes) == 5
    said = ("RUN_WORKER", "SEND_PACING", "SEND_LEASE_SECONDS", "PUBLIC_URL", "PUBLIC_URL")
    for note, setting in zip(notes, said, strict=True):
        assert setting in note.fix
        assert not re.search(r"[A-Z]+_[A-Z]+|`|python|worker", note.words), note.words


@dataclass
class _Status:
    connected: bool
    state: str | None


class _Client:
    def __init__(self, status: _Status) -> None:
        self.status = status

    def device_status(self) -> _Status:
        return self.status


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (_Status(True, "connected"), "Connected"),
        (_Status(True, "CONNECTED"), "Connected"),
        (_Status(True, None), "Connected"),
        (_Status(True, "open"), "Connected (open)"),
        (_Status(False, "disconnected"), "Not connected: open WSAPME and reconnect the WhatsApp device."),
        (_Status(False, "qr"), "Not connected (qr): open WSAPME and reconnect the WhatsApp device."),
    ],
)
def test_the_device_in_words_without_repeating_itself(status: _Status, words: str) -> None:
    assert device_state(_Client(status))[1] == words


@pytest.mark.parametrize(("api_url", "words"), [
    ("api.wsapme.com", "not a valid web address"),
    ("ftp://api.wsapme.com", "must start with https://"),
])
def test_a_wrong_gateway_address_is_said_in_words_not_raised(api_url: str, words: str) -> None:
    # Raised as a settings error, not a gateway one: it had replaced the whole page.
    client = WsapmeClient(token="t0ken-for-the-test", device="5850", api_url=api_url, master_url=api_url)
    connected, said = device_state(client)
    assert connected is None and words in said


# --- Whether messages can go out, and whether receipts arrive --------------------------------


app_db = test_pages.app_db  # the dashboard on the test database, in practice mode, quiet hours off


@pytest.fixture
def sim():
    with running_simulator() as simulator:
        yield simulator


@pytest.fixture
def sending_for_real(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dashboard set up to send to WhatsApp from the device the test blasts are made for."""
    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    get_settings.cache_clear()


def _health(engine: Engine):  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        return collect(s, engine=engine, settings=get_settings())


def _sending_words(at) -> list[str]:  # type: ignore[no-untyped-def]
    return [m.value for m in at.markdown] + [w.value for w in at.warning]


@pytest.mark.usefixtures("sending_for_real")
def test_a_blast_the_gateway_paused_is_named_and_a_persons_pause_is_not(engine: Engine, sim) -> None:
    refused = launched_blast(engine, 3)
    sim.set_fault("bad_token", times=None)
    worker_for(engine, sim).run(once=True)
    paused_by_hand = launched_blast(engine, 2)
    with transaction(engine) as s:
        blasts.pause(s, blast_id=paused_by_hand)
    assert _paused_by(engine, refused) == "gateway"
    health = _health(engine)
    assert [(h.id, h.reason) for h in health.held] == [(refused, TOKEN_REFUSED)]
    assert health.sending_blocked


def _paused_by(engine: Engine, blast_id: int) -> str | None:
    with transaction(engine) as s:
        return s.get(Blast, blast_id).paused_by


@pytest.mark.usefixtures("sending_for_real")
def test_an_old_gateway_pause_stops_counting_once_messages_go_through_again(engine: Engine, sim) -> None:
    """Paused for a bad token and left so; the token was fixed and other blasts send fine: the
    page must not go on saying nothing goes out."""
    paused = launched_blast(engine, 3)
    sim.set_fault("bad_token", times=None)
    worker_for(engine, sim).run(once=True)
    assert _health(engine).sending_blocked
    sim.clear_faults()
    launched_blast(engine, 2)
    worker_for(engine, sim).run(once=True)
    health = _health(engine)
    assert health.held == [] and not health.sending_blocked
    with transaction(engine) as s:  # any later write to the blast: an opt-out off its queue, say
        s.execute(update(Blast).where(Blast.id == paused).values(updated_at=utcnow()))
    assert _health(engine).held == [], "the pause is as old as it was"


@pytest.mark.usefixtures("sending_for_real")
def test_sends_the_gateway_turned_down_are_counted_until_one_goes_through(engine: Engine, sim) -> None:
    blast_id = launched_blast(engine, 4)
    sim.set_fault("invalid_number", times=None)
    worker_for(engine, sim).run(once=True)
    refusals = _health(engine).refusals
    assert refusals is not None and refusals.count == 4 and refusals.unknown == 0
    assert refusals.blast_id == blast_id and "not a valid WhatsApp number" in (refusals.reason or "")
    sim.clear_faults()
    launched_blast(engine, 1)
    worker_for(engine, sim).run(once=True)
    health = _health(engine)
    assert health.refusals is None and not health.sending_blocked


def test_the_page_does_not_say_messages_go_out_while_the_gateway_refuses_the_token(
    app_db: str, sending_for_real: None, engine: Engine, sim
) -> None:
    blast_id = launched_blast(engine, 3)
    sim.set_fault("bad_token", times=None)
    worker_for(engine, sim).run(once=True)
    with transaction(engine) as s:
        app_state.put(s, key="worker:host:1:abc", value={"sent": 40})
    at = run_page("pages/health.py")
    words = _sending_words(at)
    assert not any("Messages can go out" in w for w in words)
    [held] = [w for w in at.warning if f"blast #{blast_id}" in w.value]
    assert TOKEN_REFUSED in held.value and "resume" in held.value
    assert any("Sending itself is running" in w and "sent since" in w for w in words), "the heartbeat stays"
    assert any(link.proto.page == "blast" for link in at.get("page_link"))


def test_refusals_that_paused_a_blast_are_said_once_with_the_pause(
    app_db: str, sending_for_real: None, engine: Engine, sim
) -> None:
    """Refusals in words WSAPME has not used before fail each message, and five in a row pause
    the blast: the page says so once, with the pause, not again as "the last sends failed"."""
    blast_id = launched_blast(engine, 6)
    sim.set_fault("refused", times=None, message="Number is not valid")
    worker_for(engine, sim).run(once=True)
    health = _health(engine)
    assert [h.id for h in health.held] == [blast_id] and health.refusals is not None
    at = run_page("pages/health.py")
    assert [w for w in at.warning if f"blast #{blast_id}" in w.value]
    assert not any("did not go through" in w.value for w in at.warning)


def test_the_page_says_when_the_last_sends_all_failed(
    app_db: str, sending_for_real: None, engine: Engine, sim
) -> None:
    launched_blast(engine, 4)
    sim.set_fault("invalid_number", times=None)
    worker_for(engine, sim).run(once=True)
    with transaction(engine) as s:
        app_state.put(s, key="worker:host:1:abc", value={"sent": 4})
    at = run_page("pages/health.py")
    assert not any("Messages can go out" in w for w in _sending_words(at))
    assert any("The last 4 messages sent did not go through" in w.value for w in at.warning)


@pytest.mark.usefixtures("sending_for_real")
def test_what_the_sandbox_refused_before_the_token_was_set_says_nothing_about_whatsapp(
    engine: Engine, sim
) -> None:
    """Practice blasts the sandbox paused or turned down, then a token set: the page must not say
    that messages are not going out to WhatsApp."""
    practising = {"wsapme_token": None, "wsapme_device": "sandbox"}
    paused = launched_blast(engine, 3, device="sandbox")
    sim.set_fault("bad_token", times=None)
    worker_for(engine, sim, **practising).run(once=True)
    launched_blast(engine, 4, device="sandbox")
    sim.set_fault("invalid_number", times=None)
    worker_for(engine, sim, **practising).run(once=True)
    with transaction(engine) as s:
        app_state.put(s, key="worker:host:1:abc", value={"sent": 4})
    health = _health(engine)
    assert health.held == [] and health.refusals is None and not health.sending_blocked
    practice = collect_in_practice(engine)
    assert paused in [h.id for h in practice.held] and practice.sending_blocked


def collect_in_practice(engine: Engine):  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        return collect(s, engine=engine, settings=_settings(wsapme_token=None, wsapme_device="sandbox"))


def _replies_but_no_receipts(engine: Engine, *, receipt_age: dt.timedelta | None) -> None:
    now = utcnow()
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        sent = make_recipient(s, blast, status="SENDING")
        apply_status(s, recipient_id=sent.id, status=Status.SERVER_ACK, source="send",
                     at=now - dt.timedelta(hours=5), updates={"message_id": "3EB0A"})
        if receipt_age is not None:
            s.add(WebhookInbox(body=b"{}", received_at=now - receipt_age, state="applied", kind="ack"))
        s.add(WebhookInbox(body=b"{}", received_at=now - dt.timedelta(minutes=2), state="applied",
                           kind="message"))
        # What the page showed before: the poller's last word, from when webhooks seemed alive.
        app_state.put(s, key=POLLING_STATE_KEY, value={"active": False, "mode": "auto", "last_round": None})


@pytest.mark.parametrize("receipt_age", [None, dt.timedelta(hours=6)])
def test_replies_without_receipts_are_called_out(
    app_db: str, engine: Engine, receipt_age: dt.timedelta | None
) -> None:
    _replies_but_no_receipts(engine, receipt_age=receipt_age)
    at = run_page("pages/health.py")
    [warning] = [w.value for w in at.warning if "Receipts" in w.value]
    assert "not arriving" in warning and "Enable status" in warning and "asks WSAPME itself" in warning
    assert not any("Not needed now" in m.value for m in at.markdown)


def test_receipts_arriving_need_no_warning(app_db: str, engine: Engine) -> None:
    _replies_but_no_receipts(engine, receipt_age=dt.timedelta(minutes=5))
    at = run_page("pages/health.py")
    assert not any("Receipts" in w.value for w in at.warning)
    assert any("Not needed now" in m.value for m in at.markdown)


def test_a_database_error_while_making_a_new_address_is_said_plainly(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.webhook import secret

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OperationalError("INSERT INTO app_state ...", None, Exception("database or disk is full"))

    at = run_page("pages/health.py")
    monkeypatch.setattr(secret, "rotate_secret", disk_full)
    at.button(key="rotate_secret").click().run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("Could not make a new address") and "INSERT" not in error


def test_the_webhook_tiles_count_each_event_once_in_a_marketers_words(app_db: str, engine: Engine) -> None:
    """Events with nothing to update are not "applied"; events just stored, or whose applying
    failed, are counted too."""
    states = {"applied": 3, "ignored": 2, "new": 1, "waiting": 1, "unmatched": 1, "unparseable": 1,
              "failed": 1}
    with transaction(engine) as s:
        s.add_all(WebhookInbox(body=b"{}", received_at=utcnow(), state=state)
                  for state, n in states.items() for _ in range(n))
    at = run_page("pages/health.py")
    tiles = {m.label: m.value for m in at.metric}
    assert tiles == {"Applied": "3", "Not needed": "2", "Waiting": "2", "Set aside": "3"}
    helps = {m.label: m.help for m in at.metric}
    assert "replies" in helps["Waiting"] and "group messages" in helps["Not needed"]
    assert "could not be used" in helps["Set aside"] and "set aside" in helps["Waiting"]
    assert any("set aside**: 3" in m.value for m in at.markdown)
    assert at.button(key="replay_set_aside")


# Four tiles share half the page: on a 1366 px laptop screen a label longer than "Not needed"
# is cut short ("Could not b…").
TILE_LABEL_FITS = len("Not needed")


def test_the_webhook_tile_labels_fit_four_to_a_row(app_db: str) -> None:
    at = run_page("pages/health.py")
    labels = [m.label for m in at.metric]
    assert len(labels) == 4
    assert all(len(label) <= TILE_LABEL_FITS for label in labels), labels


def test_the_webhook_address_without_public_url_is_this_server_on_its_own_port(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started with --server.port 8611 and no PUBLIC_URL: the address shown is the one it answers on."""
    from streamlit import config as st_config

    monkeypatch.delenv("PUBLIC_URL", raising=False)
    get_settings.cache_clear()
    monkeypatch.setattr(st_config, "get_option",
                        lambda name, real=st_config.get_option: 8611 if name == "server.port" else real(name))
    at = run_page("pages/health.py")
    assert _address_shown(at).startswith("http://localhost:8611/webhooks/wsapme/")
    monkeypatch.setenv("PUBLIC_URL", "https://tracker.example.com")
    get_settings.cache_clear()
    at = run_page("pages/health.py")
    assert _address_shown(at).startswith("https://tracker.example.com/webhooks/wsapme/")


def test_a_send_lease_shorter_than_the_gateways_answer_time_is_a_note() -> None:
    """Another worker's housekeeping marks a send unknown when its lease runs out, and two in a
    row pause the blast: a lease shorter than the longest wait for WSAPME's answer does that to
    slow answers that went out. The default leaves room."""
    assert not [n for n in _notes(_settings(), workers=[object()]) if "SEND_LEASE_SECONDS" in n.fix]  # type: ignore[list-item]
    short = _settings(send_lease_seconds=30, wsapme_read_timeout=30, wsapme_connect_timeout=5)
    [note] = [n for n in _notes(short, workers=[object()]) if "SEND_LEASE_SECONDS" in n.fix]  # type: ignore[list-item]
    assert "SEND_LEASE_SECONDS (30 s)" in note.fix and "up to 35 s" in note.fix


# --- The webhook address: copied whole, never shown by accident -------------------------------


def _address_shown(at) -> str:  # type: ignore[no-untyped-def]
    """The webhook address as the page shows it: plain text while hidden, with its copy icon once
    revealed."""
    [shown] = [e.value for e in [*at.text, *at.code] if "/webhooks/wsapme/" in e.value]
    return shown


@pytest.mark.parametrize("for_real", [False, True])
def test_the_hidden_webhook_address_has_nothing_to_copy_and_the_page_says_where_it_goes(
    app_db: str, engine: Engine, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture,
    for_real: bool,
) -> None:
    """The copy icon beside the hidden address put the dots on the clipboard, useless in WSAPME;
    what to do with the address was said only in a tooltip."""
    caplog.set_level(logging.DEBUG)
    if for_real:
        request.getfixturevalue("sending_for_real")
    at = run_page("pages/health.py")
    with transaction(engine) as s:
        secret = current_secret(s, settings=get_settings())
    assert not at.code, "nothing to copy while the address is hidden"
    assert mask(secret) in _address_shown(at) and secret not in page_text(at)
    said = " ".join(m.value for m in [*at.markdown, *at.caption])
    assert "paste it into WSAPME's webhook settings for the device" in said and "“Enable status”" in said
    assert "turn on “Show the full address” to copy it" in said
    at.toggle(key="reveal_webhook").set_value(True).run()
    assert not at.exception, at.exception
    [address] = at.code
    assert address.value.startswith("http") and address.value.endswith(f"/webhooks/wsapme/{secret}")
    assert secret not in caplog.text


# --- Whether any webhook event arrives at all ---------------------------------------------------


FOR_REAL = {"wsapme_token": "t0ken-for-the-test", "wsapme_device": "5850",
            "public_url": "https://tracker.example.com"}
PRACTICE = {"wsapme_token": None, "wsapme_device": "sandbox", "public_url": "http://localhost:8501"}
SILENT = "not reaching the dashboard"


@pytest.fixture(autouse=True)
def up_for_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process, as the dashboard's server, has run long before the sends of each test."""
    monkeypatch.setattr(uptime, "STARTED_AT", utcnow() - dt.timedelta(days=1))


def test_practice_sends_from_before_the_server_started_are_no_silence(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test gateway's pending receipts went with the server that stopped: sends from before
    this one started had made the page blame the webhook's address after a restart."""
    monkeypatch.setattr(uptime, "STARTED_AT", utcnow() - dt.timedelta(minutes=20))
    _sends_and_an_event(engine, sent_ago=dt.timedelta(minutes=40), event_ago=None)
    assert not _collect(engine, **PRACTICE).receipts.silent
    assert _collect(engine, **FOR_REAL).receipts.silent, "WSAPME keeps its own: silence is news"


def _sends_and_an_event(
    engine: Engine, *, sent_ago: dt.timedelta, event_ago: dt.timedelta | None, kind: str = "ack"
) -> None:
    """Two messages the gateway took `sent_ago`, and the webhook's last event `event_ago`."""
    now = utcnow()
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        for message_id in ("3EB0A", "3EB0B"):
            sent = make_recipient(s, blast, status="SENDING")
            apply_status(s, recipient_id=sent.id, status=Status.SERVER_ACK, source="send",
                         at=now - sent_ago, updates={"message_id": message_id})
        if event_ago is not None:
            s.add(WebhookInbox(body=b"{}", received_at=now - event_ago, state="applied", kind=kind))


def _collect(engine: Engine, **settings: object):  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        return collect(s, engine=engine, settings=_settings(**settings))


@pytest.mark.parametrize(("sent_ago", "event_ago", "silent"), [
    (dt.timedelta(minutes=40), None, True),  # nothing ever came
    (dt.timedelta(minutes=40), dt.timedelta(hours=3), True),  # the last came before those sends
    (dt.timedelta(minutes=40), dt.timedelta(minutes=35), False),  # one came since
    (dt.timedelta(minutes=40), dt.timedelta(minutes=2), False),
    (dt.timedelta(minutes=10), None, False),  # too soon for theirs to have come
    (dt.timedelta(minutes=10), dt.timedelta(hours=3), False),
])
@pytest.mark.parametrize("settings", [FOR_REAL, PRACTICE], ids=["for_real", "practice"])
def test_sends_with_no_event_since_are_a_note(
    engine: Engine, sent_ago: dt.timedelta, event_ago: dt.timedelta | None, silent: bool,
    settings: dict[str, object],
) -> None:
    """With the default 30 minutes for receipts to come (POLL_WEBHOOK_SILENCE_MINUTES)."""
    _sends_and_an_event(engine, sent_ago=sent_ago, event_ago=event_ago)
    health = _collect(engine, **settings)
    assert health.receipts is not None and health.receipts.silent == silent
    assert len([n for n in health.notes if SILENT in n.words]) == silent
    assert not health.receipts.missing
    assert not (silent and health.receipts.arriving), "receipts are not said to arrive"


@pytest.mark.parametrize("settings", [FOR_REAL, PRACTICE], ids=["for_real", "practice"])
def test_the_note_on_silence_says_what_to_check_and_leaves_the_settings_to_the_fix(
    engine: Engine, settings: dict[str, object]
) -> None:
    _sends_and_an_event(engine, sent_ago=dt.timedelta(minutes=40), event_ago=None)
    [note] = [n for n in _collect(engine, **settings).notes if SILENT in n.words]
    assert "receipts and replies" in note.words.lower() and "30 minutes" in note.words
    assert not re.search(r"[A-Z]+_[A-Z]+|`|python|worker", note.words), note.words
    assert "PUBLIC_URL" in note.fix
    if settings is FOR_REAL:
        assert "webhook settings" in note.fix and "“Enable status”" in note.fix
    else:  # the test gateway of a worker started on its own posts to PUBLIC_URL
        assert "`python -m core worker`" in note.fix


def test_silence_is_not_said_twice_when_the_address_cannot_be_reached(engine: Engine) -> None:
    _sends_and_an_event(engine, sent_ago=dt.timedelta(minutes=40), event_ago=None)
    health = _collect(engine, **{**FOR_REAL, "public_url": "http://localhost:8501"})
    assert health.receipts is not None and health.receipts.silent
    [note] = [n for n in health.notes if "receipts and replies" in n.words.lower()]
    assert "WSAPME cannot deliver" in note.words


@pytest.mark.parametrize("address", ["the dashboard's", "a wrong one"])
def test_a_gateway_posting_its_webhooks_elsewhere_is_called_out_on_the_page(
    app_db: str, sending_for_real: None, engine: Engine, monkeypatch: pytest.MonkeyPatch,
    closed_port: int, address: str,
) -> None:
    """The simulator's webhook aimed at a wrong address, then messages sent: no receipt and no
    reply came, and the page said receipts were arriving by themselves."""
    silence = 1.2
    monkeypatch.setenv("POLL_WEBHOOK_SILENCE_MINUTES", f"{silence / 60:g}")
    monkeypatch.setenv("PUBLIC_URL", "https://tracker.example.com")
    with served_route(monkeypatch, app_db) as dashboard:
        hook = dashboard.url() if address == "the dashboard's" else f"http://127.0.0.1:{closed_port}/x"
        with running_simulator(webhook_url=hook, max_webhook_attempts=1) as sim:
            launched_blast(engine, 3)
            worker_for(engine, sim).run(once=True)
            assert sim.wait_idle(30)
        dashboard.settle()
    with transaction(engine) as s:  # the poller's last word, from before those sends
        app_state.put(s, key=POLLING_STATE_KEY, value={"active": False, "mode": "auto", "last_round": None})
    time.sleep(silence + 0.5)
    get_settings.cache_clear()
    at = run_page("pages/health.py")
    warned = [w.value for w in at.warning if SILENT in w.value]
    said = " ".join(m.value for m in at.markdown)
    if address == "a wrong one":
        assert len(warned) == 1 and "Whoever runs the server can fix this" in warned[0]
        [details] = at.expander
        assert any("PUBLIC_URL" in m.value and "“Enable status”" in m.value for m in details.markdown)
        assert "arriving by themselves" not in said
    else:
        assert warned == []


def test_receipts_are_not_said_to_arrive_when_none_came_lately(app_db: str, engine: Engine) -> None:
    """The poller's last word said it was not needed; no receipt had come for hours since."""
    with transaction(engine) as s:
        s.add(WebhookInbox(body=b"{}", received_at=utcnow() - dt.timedelta(hours=3), state="applied",
                           kind="ack"))
        app_state.put(s, key=POLLING_STATE_KEY, value={"active": False, "mode": "auto", "last_round": None})
    at = run_page("pages/health.py")
    said = " ".join(m.value for m in at.markdown)
    assert "arriving by themselves" not in said
    assert "once no receipt has come for 30 minutes" in said


# --- What the send workers made of their tries --------------------------------------------------


def test_the_page_does_not_say_messages_go_out_before_any_has(app_db: str, engine: Engine, sim) -> None:
    worker_for(engine, sim).housekeeping(force=True)  # its first heartbeat: nothing tried yet
    at = run_page("pages/health.py")
    words = _sending_words(at)
    assert not any("Messages can go out" in w for w in words)
    assert any(w.startswith("Ready to send") and "nothing sent since it started" in w for w in words)


def test_tries_the_gateway_never_got_are_not_counted_as_sent(
    app_db: str, sending_for_real: None, engine: Engine, sim, closed_port: int
) -> None:
    """WSAPME out of reach pauses the blast with nothing sent: the page had said "3 sent"."""
    blast_id = launched_blast(engine, 3)
    worker = worker_for(engine, sim)
    worker.client.api_url = f"http://127.0.0.1:{closed_port}"
    worker._backoff = lambda attempts, exc: 0.0  # type: ignore[method-assign]
    assert worker.run(once=True) == 0
    assert (worker.sent, worker.tried) == (0, 3) and sim.sent_messages() == []
    worker.housekeeping(force=True)  # its heartbeat, as while it runs on
    at = run_page("pages/health.py")
    [held] = [w.value for w in at.warning if f"blast #{blast_id}" in w.value]
    assert "Could not reach WSAPME" in held
    # The pause's words begin "Sending is paused:" and end with when to resume: said once each.
    assert held.count("paused") == 1 and held.lower().count("resume") == 1, held
    words = _sending_words(at)
    [running] = [w for w in words if "Sending itself is running" in w]
    assert "0 sent since it started, and 3 more tried that WSAPME did not confirm taking" in running
    [details] = at.expander
    assert any("0 sent since it started, and 3 more tried" in m.value for m in details.markdown)


@pytest.mark.parametrize(("heartbeat", "said"), [
    ({"sent": 5, "tried": 5}, "✅ Messages can go out: checked just now; 5 sent since it started."),
    ({"sent": 5, "tried": 7}, "✅ Messages can go out: checked just now; 5 sent since it started, and 2 "
                              "more tried that WSAPME did not confirm taking."),
    ({"sent": 0, "tried": 2}, "⚠️ The gateway has not confirmed taking any message yet: checked just "
                              "now; 0 sent since it started, and 2 more tried that WSAPME did not "
                              "confirm taking."),
    ({"sent": 12}, "✅ Messages can go out: checked just now; 12 sent since it started."),
])
def test_the_sending_line_counts_only_what_the_gateway_took_as_sent(
    app_db: str, engine: Engine, heartbeat: dict[str, int], said: str
) -> None:
    with transaction(engine) as s:
        app_state.put(s, key="worker:host:1:abc", value=heartbeat)
    assert said in _sending_words(run_page("pages/health.py"))


def test_once_the_worker_stops_the_page_says_when_and_what_it_had_sent(
    app_db: str, engine: Engine, sim
) -> None:
    """It had said only "No send worker has checked in", as if none ever had."""
    at = run_page("pages/health.py")
    assert any("No send worker has run on this database yet." in w for w in _sending_words(at))
    launched_blast(engine, 2)
    worker = worker_for(engine, sim)
    assert worker.run(once=True) == 2  # sends both, then signs off
    with transaction(engine) as s:  # it stopped an hour ago
        s.execute(update(AppState).where(AppState.key == STOPPED_KEY)
                  .values(updated_at=utcnow() - dt.timedelta(minutes=60, seconds=20)))
    at = run_page("pages/health.py")
    [line] = [w for w in _sending_words(at) if w.startswith("⚠️ Nothing is sending")]
    assert "The last send worker stopped 1 h ago; it had sent 2 messages." in line
    assert worker.name not in line, "its name is for whoever runs the server"
    [details] = at.expander
    assert any(f"**Send workers**: none lately. The last send worker, `{worker.name}`, stopped 1 h ago; "
               "it had sent 2 messages. Worker inside" in m.value for m in details.markdown)


def test_a_worker_that_went_quiet_without_stopping_is_said_to_have_been_last_heard_from(
    app_db: str, engine: Engine
) -> None:
    with transaction(engine) as s:
        app_state.put(s, key=STOPPED_KEY, value={"name": "host:1:old", "sent": 4, "tried": 4})
        app_state.put(s, key="worker:host:2:new", value={"sent": 3, "tried": 5})
        s.execute(update(AppState).where(AppState.key == STOPPED_KEY)
                  .values(updated_at=utcnow() - dt.timedelta(days=2)))
        s.execute(update(AppState).where(AppState.key == "worker:host:2:new")
                  .values(updated_at=utcnow() - dt.timedelta(hours=3)))
    with transaction(engine) as s:
        health = collect(s, engine=engine, settings=get_settings())
    assert health.workers == [] and health.gone is not None
    gone = health.gone
    assert (gone.name, gone.stopped, gone.sent, gone.tried) == ("host:2:new", False, 3, 5)
    [line] = [w for w in _sending_words(run_page("pages/health.py")) if w.startswith("⚠️ Nothing is sending")]
    assert ("The last send worker was last heard from 3 h ago without saying it was stopping (its "
            "server may have stopped or restarted); it had sent 3 messages, and tried 2 more that WSAPME "
            "did not confirm taking.") in line


@pytest.mark.parametrize(("reason", "said"), [
    ("Sending is paused: WSAPME asked to slow down 10 times in a row. Resume the blast in a while.",
     "WSAPME asked to slow down 10 times in a row. Resume the blast in a while."),
    ("WSAPME refused the token.",
     "WSAPME refused the token. Once that is fixed, open the blast and resume it."),
    (None, "No reason was given. Resume it from its page once that is sorted out."),
])
def test_a_pause_reason_reads_once_after_is_paused(reason: str | None, said: str) -> None:
    assert paused_why(reason) == said


def test_every_pause_of_the_worker_begins_as_the_health_page_expects() -> None:
    from core.sending import trouble

    assert all(words.startswith(trouble.PAUSED_PREFIX) for words in trouble.PAUSE_WORDS.values())


@pytest.mark.parametrize(("asked", "changed", "said"), [
    (4, 0, "The last time the tracker asked the gateway, about 4 messages, none had a new status."),
    (4, 3, "The last time the tracker asked the gateway, about 4 messages, 3 had a new status."),
    (0, 0, "The last time the tracker looked, it had no messages to ask the gateway about."),  # not "about 0"
])
def test_the_last_round_of_asking_the_gateway_is_said_plainly(
    app_db: str, engine: Engine, asked: int, changed: int, said: str
) -> None:
    """It had read "Last time it asked about 4 messages; 0 had news", and named WSAPME in
    practice mode too."""
    with transaction(engine) as s:
        app_state.put(s, key=POLLING_STATE_KEY, value={
            "active": True, "mode": "auto", "last_round": {"asked": asked, "changed": changed}})
    at = run_page("pages/health.py")
    assert said in [c.value for c in at.caption]


@dataclass
class _Watching:
    """What `memory_words` reads of a `core.rollup_cache.Watch`."""

    hits: int
    misses: int
    looked: bool
    looking: bool

    def trusted(self) -> bool:
        return self.looked

    def resting(self) -> bool:
        return not self.looking


@pytest.mark.parametrize(("watching", "words"), [
    (_Watching(41, 9, looked=True, looking=True), "on: 41 funnel questions of 50 answered from memory"),
    (_Watching(0, 0, looked=False, looking=False), "on, resting: no page has asked"),
    (_Watching(3, 7, looked=False, looking=True), "off for now: the database's change log"),
])
def test_whether_funnels_come_from_memory_is_said_for_whoever_runs_the_server(
    watching: _Watching, words: str
) -> None:
    from dashboard.health_views import memory_words

    assert memory_words(watching).startswith(words)  # type: ignore[arg-type]


def test_the_health_page_says_whether_funnels_come_from_memory_on_postgresql(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import rollup_cache
    from core.db import reading
    from core.funnel import funnel

    def said() -> list[str]:
        at = run_page("pages/health.py")
        return [m.value for m in at.markdown if "Funnel counts kept in memory" in m.value]

    if app_db.startswith("sqlite"):
        assert said() == []  # SQLite reads every time: nothing to say
        return
    rollup_cache.unwatch(engine)  # whatever an earlier test on this database left
    monkeypatch.setattr(rollup_cache, "TRUST_SECONDS", 60.0)  # a slow look on a busy machine
    try:
        # No page has asked for a funnel yet in this server: the watch rests until one does.
        [words] = said()
        assert words.startswith("**Funnel counts kept in memory**: on, resting")
        watching = rollup_cache.watch(engine)
        for _ in range(2):
            with reading(engine) as s:
                funnel(s)
            deadline = time.monotonic() + 15
            while not watching.trusted() and time.monotonic() < deadline:
                time.sleep(0.01)
        [words] = said()
        assert words.startswith("**Funnel counts kept in memory**: on: ") and "answered from memory" in words
    finally:
        rollup_cache.unwatch(engine)


def test_the_page_says_when_webhook_posts_were_turned_away_for_a_wrong_secret(app_db: str) -> None:
    """An address rotated out past its grace, or one mistyped into WSAPME: its events are lost."""
    from core.webhook.route import turned_away

    at = run_page("pages/health.py")
    assert not [w for w in at.warning if "turned away" in w.value]
    for _ in range(2):
        turned_away.add()
    at = run_page("pages/health.py")
    assert [w.value for w in at.warning if "turned away" in w.value] == [
        "2 posts came in the last hour to a webhook address with a wrong or old secret, the last one "
        "just now, and were turned away. If WSAPME sent them, its events are lost: paste the address "
        "above into its webhook settings."]
