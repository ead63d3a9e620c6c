"""The health page's facts: whether WSAPME can reach the webhook address, the device in words,
whether the gateway takes messages and whether its receipts arrive."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, update
from sqlalchemy.exc import OperationalError

from core import app_state
from core.config import Settings, get_settings
from core.db import transaction
from core.health import _notes, collect, device_state, unreachable_reason
from core.models import Blast, WebhookInbox, utcnow
from core.polling import POLLING_STATE_KEY
from core.sending import blasts
from core.status_engine import apply_status
from core.statuses import Status
from core.wsapme import WsapmeClient
from core.wsapme.failures import TOKEN_REFUSED
from tests import test_pages
from tests.sending.support import launched_blast, worker_for
from tests.support.factories import make_blast, make_recipient
from tests.support.simulator import running_simulator
from tests.test_pages import run_page


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
    assert any(code.value.startswith("http://localhost:8611/webhooks/wsapme/") for code in at.code)
    monkeypatch.setenv("PUBLIC_URL", "https://tracker.example.com")
    get_settings.cache_clear()
    at = run_page("pages/health.py")
    assert any(code.value.startswith("https://tracker.example.com/webhooks/wsapme/") for code in at.code)


def test_a_send_lease_shorter_than_the_gateways_answer_time_is_a_note() -> None:
    """Another worker's housekeeping marks a send unknown when its lease runs out, and two in a
    row pause the blast: a lease shorter than the longest wait for WSAPME's answer does that to
    slow answers that went out. The default leaves room."""
    assert not [n for n in _notes(_settings(), workers=[object()]) if "SEND_LEASE_SECONDS" in n.fix]  # type: ignore[list-item]
    short = _settings(send_lease_seconds=30, wsapme_read_timeout=30, wsapme_connect_timeout=5)
    [note] = [n for n in _notes(short, workers=[object()]) if "SEND_LEASE_SECONDS" in n.fix]  # type: ignore[list-item]
    assert "SEND_LEASE_SECONDS (30 s)" in note.fix and "up to 35 s" in note.fix
