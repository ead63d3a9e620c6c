"""The WSAPME client against the simulator over real HTTP: answer shapes, faults, look-ups."""

from __future__ import annotations

import email.utils
import itertools
import logging
import socket
import time
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from core.config import Settings
from core.errors import (
    ConfigError,
    DeviceOffline,
    GatewayAuthError,
    GatewayError,
    GatewayRefused,
    GatewayServerError,
    GatewayUnreachable,
    OutcomeUnknown,
    RateLimited,
    ServerFailedMidSend,
)
from core.simulator import Proportions, Simulator
from core.wsapme import WsapmeClient
from core.wsapme.answers import EARLIEST, LATEST, epoch_seconds, status_from_value
from core.wsapme.failures import (
    RETRY_AFTER_MAX,
    error_from_http_status,
    parse_retry_after,
    rate_limited,
    refusal_from_body,
    scrub,
)
from tests.support.simulator import TEST_TOKEN, client_for, running_simulator

TO = "60123456789"
_numbers = itertools.count(60100000001)
ALL_READ = Proportions(delivered=1.0, read=1.0, replied=0.0)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with running_simulator(proportions=ALL_READ) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _fresh(sim: Simulator) -> Iterator[None]:
    sim.clear_faults()
    sim.set_answer_style(id_place="data.key.id", timestamp="string", status="mixed", lookup_status_place=None)
    yield
    sim.clear_faults()


@pytest.fixture
def client(sim: Simulator) -> WsapmeClient:
    return client_for(sim)


def fresh_number() -> str:
    """A recipient no other test sends to, so counts start at zero on the shared simulator."""
    return str(next(_numbers))


def last_sent(sim: Simulator) -> Any:
    return sim.sent_messages()[-1]


# Answer shapes


@pytest.mark.parametrize("id_place", ["data.key.id", "messageId", "data.id", "data.messageId"])
def test_message_id_is_found_wherever_the_answer_puts_it(
    sim: Simulator, client: WsapmeClient, id_place: str
) -> None:
    sim.set_answer_style(id_place=id_place)
    result = client.send_text(to=TO, message="Promo hari ini")
    assert result.message_id == last_sent(sim).message_id
    assert result.message_id.startswith("3EB0") and len(result.message_id) == 22
    assert result.raw["success"] is True
    assert result.data == result.raw["data"]


@pytest.mark.parametrize("form", ["string", "number", "string_ms", "number_ms"])
def test_timestamp_is_unix_seconds_in_every_form(sim: Simulator, client: WsapmeClient, form: str) -> None:
    sim.set_answer_style(timestamp=form)
    result = client.send_text(to=TO, message="hello")
    assert result.message_timestamp == int(last_sent(sim).sent_at)
    stamp = result.data["messageTimestamp"]
    assert isinstance(stamp, str) == form.startswith("string")


def test_missing_timestamp_is_none_not_an_error(sim: Simulator, client: WsapmeClient) -> None:
    sim.set_answer_style(timestamp="none")
    assert client.send_text(to=TO, message="hello").message_timestamp is None


@pytest.mark.parametrize("numbering", ["baileys", "wwebjs"])
@pytest.mark.parametrize("form", ["name", "number"])
def test_send_status_reads_names_and_both_numberings(numbering: str, form: str) -> None:
    with running_simulator(ack_numbering=numbering) as sim:
        sim.set_answer_style(status=form)
        client = client_for(sim, ack_numbering=numbering)
        result = client.send_text(to=TO, message="hi")
    assert result.gateway_status == "PENDING"
    assert isinstance(result.data["status"], str if form == "name" else int)


def test_numbers_are_read_by_the_configured_numbering() -> None:
    # Baileys' 1 (PENDING) is whatsapp-web.js' one tick: the setting must match the gateway.
    with running_simulator(ack_numbering="baileys") as sim:
        sim.set_answer_style(status="number")
        result = client_for(sim, ack_numbering="wwebjs").send_text(to=TO, message="hi")
    assert result.data["status"] == 1
    assert result.gateway_status == "SERVER_ACK"


@pytest.mark.parametrize(
    ("value", "numbering", "expected"),
    [
        ("DELIVERY_ACK", "wwebjs", "DELIVERY_ACK"),
        ("READ", "baileys", "READ_ACK"),
        ("PLAYED", "baileys", "READ_ACK"),
        (3, "baileys", "DELIVERY_ACK"),
        (3, "wwebjs", "READ_ACK"),
        ("3", "wwebjs", "READ_ACK"),
        (0, "baileys", "FAILED"),
        (-1, "wwebjs", "FAILED"),
        (5, "baileys", "READ_ACK"),
        (9, "baileys", None),
        ("CLOSED", "baileys", None),
        (True, "baileys", None),
        ("", "baileys", None),
    ],
)
def test_status_values(value: object, numbering: str, expected: str | None) -> None:
    result = status_from_value(value, numbering=numbering)  # type: ignore[arg-type]
    assert (str(result) if result else None) == expected


@given(st.integers(min_value=EARLIEST, max_value=LATEST - 1))
def test_seconds_milliseconds_and_microseconds_give_the_same_second(seconds: int) -> None:
    assert epoch_seconds(seconds) == seconds
    assert epoch_seconds(str(seconds * 1000 + 999)) == seconds
    assert epoch_seconds(seconds * 1_000_000 + 999_999) == seconds
    assert epoch_seconds(float(seconds) + 0.5) == seconds


@pytest.mark.parametrize(
    "value", [None, "", "soon", True, -5, 0, float("nan"), float("inf"), "1e400", 1e30, [1], {"high": 1}]
)
def test_unusable_timestamps_are_none(value: object) -> None:
    assert epoch_seconds(value) is None


@given(st.one_of(st.text(), st.floats(), st.integers(),
                 st.fixed_dictionaries({"low": st.integers(), "high": st.integers()})))
def test_any_timestamp_value_gives_seconds_or_none(value: object) -> None:
    result = epoch_seconds(value)
    # <= : a float a hair under 2100 rounds up to it at the microsecond.
    assert result is None or EARLIEST <= result <= LATEST


# Faults: certainly not accepted (with or without retry) versus unknown

REFUSALS = [
    ("bad_token", {}, GatewayAuthError, False),
    ("bad_token", {"http_status": 401}, GatewayAuthError, False),
    ("device_offline", {}, DeviceOffline, False),
    ("invalid_number", {}, GatewayRefused, False),
    ("invalid_number", {"http_status": 400}, GatewayRefused, False),
    ("rate_limited", {"retry_after": "7"}, RateLimited, True),
    ("server_error", {"http_status": 408}, GatewayServerError, True),
    ("server_error", {"http_status": 503}, GatewayServerError, True),
]


@pytest.mark.parametrize(("kind", "options", "error", "retryable"), REFUSALS)
def test_refusals_are_certainly_not_accepted(
    sim: Simulator,
    client: WsapmeClient,
    kind: str,
    options: dict[str, Any],
    error: type[GatewayError],
    retryable: bool,
) -> None:
    to = fresh_number()
    sim.set_fault(kind, times=1, **options)
    with pytest.raises(error) as caught:
        client.send_text(to=to, message="hi")
    assert caught.value.accepted is False
    assert caught.value.retryable is retryable
    assert sim.sent_count(to) == 0
    client.send_text(to=to, message="hi")  # the fault was for one request only
    assert sim.sent_count(to) == 1


@pytest.mark.parametrize("status", [500, 502])
def test_a_server_failing_while_it_took_the_message_proves_nothing(
    sim: Simulator, client: WsapmeClient, status: int
) -> None:
    """It may have handed the message on before it failed: unknown, never retried by itself,
    and the blast paused (the next sends would likely fail the same way)."""
    sim.set_fault("server_error", times=1, http_status=status)
    with pytest.raises(ServerFailedMidSend) as caught:
        client.send_text(to=fresh_number(), message="hi")
    assert (caught.value.accepted, caught.value.retryable, caught.value.pauses_blast) == (None, False, True)
    assert f"HTTP {status}" in caught.value.message and "Sending is paused" in caught.value.message


@pytest.mark.parametrize("status", [520, 521, 522, 524, 530, 599])
def test_a_5xx_other_than_503_may_have_come_after_the_message_was_taken(
    sim: Simulator, client: WsapmeClient, status: int
) -> None:
    """A CDN in front of WSAPME answers 52x of its own, some after WSAPME took the message (524:
    it gave up waiting for the answer). Only 503 says the request was turned away before it was
    handled: every other 5xx is unknown and pauses, never "not sent, try again"."""
    to = fresh_number()
    sim.set_fault("proxy_error", times=1, http_status=status)
    with pytest.raises(ServerFailedMidSend) as caught:
        client.send_text(to=to, message="hi")
    assert (caught.value.accepted, caught.value.retryable, caught.value.pauses_blast) == (None, False, True)
    assert f"HTTP {status}" in caught.value.message
    assert sim.sent_count(to) == 1, "the gateway did take it: trying again would send it twice"


def test_a_503_is_not_taken_and_says_how_long_to_wait(sim: Simulator, client: WsapmeClient) -> None:
    """A server that is overloaded or restarting turns the request away before handling it, and
    often says when to come back: the worker waits at least that long."""
    to = fresh_number()
    sim.set_fault("server_error", times=1, http_status=503)
    with pytest.raises(GatewayServerError) as caught:
        client.send_text(to=to, message="hi")
    assert (caught.value.accepted, caught.value.retryable) == (False, True)
    assert sim.sent_count(to) == 0
    error = error_from_http_status(status=503, headers={"Retry-After": "42"}, body=None, device="5850",
                                   sending=True)
    assert isinstance(error, GatewayServerError) and getattr(error, "retry_after", None) == 42.0


def test_a_wrong_send_path_pauses_rather_than_failing_each_number(sim: Simulator) -> None:
    """A typo in the send path makes every send a 404: a setup problem, not the number's."""
    client = client_for(sim, send_path="/v1/sendMesage2")
    with pytest.raises(GatewayRefused) as caught:
        client.send_text(to=fresh_number(), message="hi")
    assert caught.value.accepted is False and caught.value.pauses_blast
    assert "HTTP 404" in caught.value.message and "send path" in caught.value.message


@pytest.mark.parametrize(("status", "body", "words"), [
    (405, None, "send path"),
    (400, None, "HTTP 400"),
    (400, {"success": False, "message": "Bad request"}, "Bad request"),
    (402, {"success": False, "message": "Your package has expired"}, "package has expired"),
    (302, None, "redirect"),
    (200, {"success": False, "message": "Quota exceeded for today"}, "Quota exceeded"),
    (200, {"success": False, "message": "Your subscription has expired"}, "subscription has expired"),
])
def test_a_refusal_that_is_not_about_the_number_pauses(status: int, body: object, words: str) -> None:
    """Whatever is wrong with the request or the account is wrong for every recipient: failing
    each in turn would lose the whole blast (failed messages are never sent again)."""
    if status == 200:
        error = refusal_from_body(body, device="5850")
    else:
        error = error_from_http_status(status=status, headers={}, body=body, device="5850", sending=True)
    assert isinstance(error, GatewayRefused)
    assert error.accepted is False and error.pauses_blast and not error.retryable
    assert words in error.message


@pytest.mark.parametrize("body", [
    {"success": False, "message": "Number is not valid"},
    {"success": False, "message": "Message failed to send"},
    {"success": False},
])
def test_a_refusal_in_words_not_known_fails_that_message_alone(body: object) -> None:
    """Answered, but in words that may well be about this number ("Number is not valid"):
    pausing the blast for it held everyone behind that one number at every resume."""
    error = refusal_from_body(body, device="5850")
    assert isinstance(error, GatewayRefused)
    assert error.accepted is False and not error.pauses_blast and not error.retryable


@pytest.mark.parametrize("status", [200, 400, 404])
def test_only_a_refusal_of_the_number_fails_that_one_message(sim: Simulator, status: int) -> None:
    sim.set_fault("invalid_number", times=1, http_status=status)
    with pytest.raises(GatewayRefused) as caught:
        client_for(sim).send_text(to=fresh_number(), message="hi")
    assert not caught.value.pauses_blast and "not a valid WhatsApp number" in caught.value.message


@pytest.mark.parametrize("status", [200, 400])
def test_an_unknown_device_error_names_the_device_the_message_was_sent_from(
    sim: Simulator, client: WsapmeClient, status: int
) -> None:
    """A blast goes from its own device (a follow-up keeps its parent's), not always the one
    the settings name today: the error must name the one WSAPME did not know."""
    sim.set_fault("unknown_device", times=1, http_status=status)
    with pytest.raises(DeviceOffline) as caught:
        client.send_text(to=fresh_number(), message="hi", device="7777")
    assert "'7777'" in caught.value.message and "'5850'" not in caught.value.message


@pytest.mark.parametrize(("retry_after", "words"), [
    ("0.3", "trying again in a moment"),
    ("0", "trying again in a moment"),
    ("30", "trying again in 30 seconds"),
    ("600", "trying again in 10 minutes"),
    ("7200", "trying again in 2 hours"),
    (None, "trying again shortly"),
])
def test_a_slow_down_says_when_in_words(retry_after: str | None, words: str) -> None:
    assert rate_limited(retry_after, raw=None).message == f"WSAPME asked to slow down: {words}."


def test_auth_and_offline_pause_the_blast_while_refusals_do_not(sim: Simulator, client: WsapmeClient) -> None:
    pauses = {}
    for kind in ("bad_token", "device_offline", "invalid_number"):
        sim.set_fault(kind, times=1)
        with pytest.raises(GatewayError) as caught:
            client.send_text(to=TO, message="hi")
        pauses[kind] = caught.value.pauses_blast
    assert pauses == {"bad_token": True, "device_offline": True, "invalid_number": False}


def test_error_words_are_for_a_marketer(sim: Simulator, client: WsapmeClient) -> None:
    sim.set_fault("device_offline", times=1)
    with pytest.raises(DeviceOffline) as caught:
        client.send_text(to=TO, message="hi")
    assert caught.value.message == "The WhatsApp device is offline: open WSAPME and reconnect it."


def test_rate_limit_honours_retry_after_as_an_http_date(sim: Simulator, client: WsapmeClient) -> None:
    before = time.time()
    later = email.utils.formatdate(before + 300, usegmt=True)  # to the second, as HTTP dates are
    sim.set_fault("rate_limited", times=1, retry_after=later)
    with pytest.raises(RateLimited) as caught:
        client.send_text(to=TO, message="hi")
    waited = time.time() - before  # however long the send took, the date stays where it was
    assert caught.value.retry_after is not None and 299 - waited <= caught.value.retry_after <= 300


@pytest.mark.parametrize(
    ("header", "expected"), [("12", 12.0), ("0.5", 0.5), ("-3", 0.0), ("", None), ("soon", None)]
)
def test_retry_after_forms(header: str, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


@pytest.mark.parametrize("header", ["1e400", "inf", "-inf", "nan", "Fri, 31 Dec 99999 23:59:59 GMT"])
def test_a_retry_after_that_is_no_number_of_seconds_is_left_out(header: str) -> None:
    """The caller's own wait holds instead: an infinite wait broke the error's words, and with
    them the send's outcome (marked unknown, though the gateway proved it took nothing)."""
    assert parse_retry_after(header) is None
    assert rate_limited(header, raw=None).message == "WSAPME asked to slow down: trying again shortly."


@pytest.mark.parametrize("header", ["99999999999", "1e300", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_retry_after_of_years_is_taken_as_a_day(header: str) -> None:
    assert parse_retry_after(header) == RETRY_AFTER_MAX == 24 * 3600


@pytest.mark.parametrize(
    ("header", "expected"), [("1e400", None), ("nan", None), ("99999999999", 24 * 3600.0)]
)
def test_a_slow_down_with_an_unusable_retry_after_is_still_a_slow_down(
    sim: Simulator, client: WsapmeClient, header: str, expected: float | None
) -> None:
    sim.set_fault("rate_limited", times=1, retry_after=header)
    with pytest.raises(RateLimited) as caught:
        client.send_text(to=TO, message="hi")
    assert caught.value.accepted is False and caught.value.retry_after == expected


UNKNOWNS = [
    ("slow_answer", {"delay": 1.5}),
    ("drop_connection", {}),
    ("drop_connection", {"partial": True}),
    ("malformed_json", {}),
    ("no_message_id", {}),
]


@pytest.mark.parametrize(("kind", "options"), UNKNOWNS)
def test_lost_answers_are_unknown_and_the_message_did_go_out(
    sim: Simulator, kind: str, options: dict[str, Any]
) -> None:
    to = fresh_number()
    client = client_for(sim, read_timeout=0.5)
    sim.set_fault(kind, times=1, **options)
    with pytest.raises(OutcomeUnknown) as caught:
        client.send_text(to=to, message="hi")
    assert caught.value.accepted is None
    assert not caught.value.retryable
    assert "will not be sent again" in caught.value.message
    assert sim.sent_count(to) == 1
    assert last_sent(sim).answer == kind


def test_connection_refused_is_unreachable_and_safe_to_retry() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    client = WsapmeClient(
        token=TEST_TOKEN,
        device="5850",
        api_url=f"http://127.0.0.1:{port}",
        master_url=f"http://127.0.0.1:{port}",
        connect_timeout=1,
        read_timeout=1,
    )
    with pytest.raises(GatewayUnreachable) as caught:
        client.send_text(to=TO, message="hi")
    assert caught.value.accepted is False and caught.value.retryable
    assert "connection refused" in caught.value.message


def test_unknown_host_is_unreachable() -> None:
    client = WsapmeClient(
        token=TEST_TOKEN,
        device="5850",
        api_url="http://no-such-host.invalid",
        master_url="http://no-such-host.invalid",
        connect_timeout=1,
        read_timeout=1,
    )
    with pytest.raises(GatewayUnreachable, match="could not be found"):
        client.send_text(to=TO, message="hi")


def test_connect_timeout_is_unreachable() -> None:
    # A listener whose backlog is full drops new connection attempts: a connect timeout.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        client = WsapmeClient(
            token=TEST_TOKEN,
            device="5850",
            api_url=f"http://127.0.0.1:{port}",
            master_url=f"http://127.0.0.1:{port}",
            connect_timeout=0.3,
            read_timeout=1,
        )
        try:
            with pytest.raises(GatewayUnreachable, match="timed out"):
                client.send_text(to=TO, message="hi")
        finally:
            for filler in fillers:
                filler.close()


def test_invalid_number_is_refused_by_the_gateway(client: WsapmeClient) -> None:
    with pytest.raises(GatewayRefused, match="not a valid WhatsApp number"):
        client.send_text(to="12", message="hi")


# The token never leaks


def _everything_shown(error: BaseException) -> str:
    return " ".join(
        [
            str(error),
            repr(error),
            repr(getattr(error, "raw", None)),
            "".join(traceback.format_exception(error)),
        ]
    )


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("bad_token", {"http_status": 401}),
        ("server_error", {}),
        ("rate_limited", {}),
        ("slow_answer", {"delay": 1.5}),
        ("drop_connection", {}),
        ("malformed_json", {}),
    ],
)
def test_token_never_appears_in_errors_or_logs(
    sim: Simulator, kind: str, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(sim, read_timeout=0.5)
    sim.set_fault(kind, times=1, **options)
    with pytest.raises(GatewayError) as caught:
        client.send_text(to=TO, message="hi")
    # Nothing chained: a requests exception would carry the request and its token header.
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert TEST_TOKEN not in _everything_shown(caught.value)
    assert TEST_TOKEN not in caplog.text


def test_token_never_appears_when_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = WsapmeClient(
        token=TEST_TOKEN,
        device="5850",
        api_url="http://127.0.0.1:9",
        master_url="http://127.0.0.1:9",
        connect_timeout=0.5,
        read_timeout=0.5,
    )
    with pytest.raises(GatewayUnreachable) as caught:
        client.device_status()
    assert caught.value.__context__ is None
    assert TEST_TOKEN not in _everything_shown(caught.value) + caplog.text


def test_repr_masks_the_token(client: WsapmeClient) -> None:
    assert TEST_TOKEN not in repr(client) and TEST_TOKEN not in str(client)
    assert "token='***'" in repr(client)


def test_an_echoed_token_is_masked() -> None:
    body = {"success": False, "message": f"bad header x-wsapme-token: {TEST_TOKEN}"}
    assert TEST_TOKEN not in repr(scrub(body, TEST_TOKEN))


@pytest.mark.parametrize("token", ["1", "true", "data", "{", "60"])
def test_a_short_token_found_in_the_answer_does_not_break_reading_it(sim: Simulator, token: str) -> None:
    """Masking the serialised answer once cut into numbers and JSON syntax (a digit token in a
    timestamp): the answer no longer parsed, and the send raised an error no one expected."""
    sim.set_answer_style(timestamp="number")
    to = fresh_number()
    result = client_for(sim, token=token).send_text(to=to, message="hi")
    assert result.message_id == last_sent(sim).message_id
    assert result.message_timestamp == int(last_sent(sim).sent_at)


def test_scrub_masks_the_token_in_every_string_and_nothing_else() -> None:
    body = {"success": False, "data": {"echo": [f"token {TEST_TOKEN}", 1617700944, None, True]}}
    masked = {"success": False, "data": {"echo": ["token ***", 1617700944, None, True]}}
    assert scrub(body, TEST_TOKEN) == masked
    short = {"id": "3EB061ED1BD7A6532", "stamp": 1617700944, "echo": 61, "header": "61"}
    assert scrub(short, "61") == {**short, "echo": "***", "header": "***"}
    said = {"message": "Invalid request for abc12, token abc12.", "id": "3EB0abc12X", "ref": "3EB0-abc12-9"}
    assert scrub(said, "abc12") == {**said, "message": "Invalid request for ***, token ***."}


class RecordingSession(requests.Session):
    """A real session that notes what each request carried."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.calls.append({"url": url, **kwargs})
        return super().request(method, url, **kwargs)


def test_every_call_has_a_timeout_and_the_token_header(sim: Simulator) -> None:
    session = RecordingSession()
    client = client_for(sim, session=session, connect_timeout=1.5, read_timeout=4.0)
    result = client.send_text(to=TO, message="hi", priority="1")
    client.message_status(message_id=result.message_id, data=result.data, to=TO)
    client.message_status(message_id="3EB0NOTKNOWN", data={"key": {"id": "3EB0NOTKNOWN"}})
    client.device_status()
    assert len(session.calls) == 5
    for call in session.calls:
        assert call["timeout"] == (1.5, 4.0)
        assert call["headers"] == {"x-wsapme-token": TEST_TOKEN}
    assert session.calls[0]["json"] == {"device": "5850", "to": TO, "message": "hi", "priority": "1"}
    assert last_sent(sim).priority == "1"


# Settings


def test_from_settings_uses_every_gateway_setting(sim: Simulator) -> None:
    settings = Settings(
        wsapme_token=TEST_TOKEN,
        wsapme_device="7001",
        wsapme_api_url=sim.url + "/",
        wsapme_master_url=sim.url,
        wsapme_read_timeout=3.0,
        wsapme_ack_numbering="wwebjs",
    )
    client = WsapmeClient.from_settings(settings)
    assert client.timeout == (settings.wsapme_connect_timeout, 3.0)
    assert client.ack_numbering == "wwebjs"
    client.send_text(to=TO, message="hi")
    assert last_sent(sim).device == "7001"


def test_sandbox_settings_get_a_placeholder_token(sim: Simulator) -> None:
    client = WsapmeClient.from_settings(Settings(wsapme_token=None, wsapme_api_url=sim.url))
    assert client.device_status().connected


def test_an_empty_token_is_a_settings_error() -> None:
    with pytest.raises(ConfigError):
        WsapmeClient(token="", device="1", api_url="http://127.0.0.1:9", master_url="")


@pytest.mark.parametrize("token", [TEST_TOKEN + "\n", TEST_TOKEN + "\r\n", " " + TEST_TOKEN,
                                   TEST_TOKEN + "\u20ac"])
def test_a_token_no_request_can_carry_is_a_settings_error_and_nothing_is_sent(
    sim: Simulator, token: str
) -> None:
    # Refused while the request is built: read as "may have gone out", it marked messages unknown.
    to = fresh_number()
    with pytest.raises(ConfigError, match="WSAPME_TOKEN") as caught:
        client_for(sim, token=token).send_text(to=to, message="hi")
    assert caught.value.__context__ is None and TEST_TOKEN not in _everything_shown(caught.value)
    with pytest.raises(ConfigError, match="WSAPME_TOKEN"):
        client_for(sim, token=token).device_status()
    assert sim.sent_count(to) == 0


def test_a_look_up_that_cannot_be_written_as_json_is_that_messages_trouble_alone(sim: Simulator) -> None:
    # Never asked, so not "no answer" (which stops a polling round for every message).
    client = client_for(sim, status_path="")  # straight to messageInfo, with the stored data
    with pytest.raises(GatewayError, match="was not asked") as caught:
        client.message_status(message_id="3EB0NAN", data={"key": {"id": "3EB0NAN"}, "n": float("nan")})
    failure = caught.value
    assert failure.accepted is False and not failure.retryable and not failure.pauses_blast


def test_a_wrong_token_is_refused_by_a_strict_gateway() -> None:
    with running_simulator(token="the-right-one") as sim:
        with pytest.raises(GatewayAuthError):
            client_for(sim, token="a-wrong-one").send_text(to=TO, message="hi")
        assert client_for(sim, token="the-right-one").send_text(to=TO, message="hi")
        assert sim.sent_count(TO) == 1  # its own simulator: only the accepted send counts


# Status look-ups and device


def _sent_and_settled(sim: Simulator, client: WsapmeClient, to: str = TO) -> Any:
    result = client.send_text(to=to, message="hi")
    assert sim.wait_idle(5)
    return result


@pytest.mark.parametrize("place", ["status", "data.status", "data.messages.status"])
def test_look_up_reads_the_status_wherever_it_is(sim: Simulator, client: WsapmeClient, place: str) -> None:
    sim.set_answer_style(lookup_status_place=place, status="number")
    sent = _sent_and_settled(sim, client)
    found = client.message_status(message_id=sent.message_id)
    assert found is not None
    assert found.status == sim.emitted().statuses[sent.message_id] == "READ_ACK"
    assert found.delivered_at is not None and abs(found.delivered_at - time.time()) < 60


def test_look_up_falls_back_to_message_info_with_the_stored_data(sim: Simulator) -> None:
    client = client_for(sim, status_path="/v1/notOnThisGateway")
    sent = _sent_and_settled(sim, client)
    assert client.message_status(message_id=sent.message_id) is None
    found = client.message_status(message_id=sent.message_id, data=sent.data, to=TO)
    assert found is not None and found.lookup == "message_info"
    assert found.status == "READ_ACK"


def test_unknown_and_empty_look_ups_are_none_never_failed(sim: Simulator, client: WsapmeClient) -> None:
    assert client.message_status(message_id="3EB0000000000000000000") is None
    sent = _sent_and_settled(sim, client)
    sim.set_fault("empty_lookup")
    assert client.message_status(message_id=sent.message_id, data=sent.data, to=TO) is None


def test_a_bad_token_on_a_look_up_is_not_mistaken_for_unknown(sim: Simulator, client: WsapmeClient) -> None:
    sim.set_fault("bad_token", times=1)
    with pytest.raises(GatewayAuthError):
        client.message_status(message_id="3EB0000000000000000000")


def test_an_offline_device_on_a_look_up_is_not_mistaken_for_unknown(
    sim: Simulator, client: WsapmeClient
) -> None:
    """It says nothing about the message and would answer every look-up the same way: raised
    (pausing, so polling stops), without a second request to messageInfo."""
    sent = _sent_and_settled(sim, client)
    sim.set_fault("device_offline", times=1)  # on look-ups too, as the real gateway does
    with pytest.raises(DeviceOffline) as caught:
        client.message_status(message_id=sent.message_id, data=sent.data, to=TO)
    assert caught.value.pauses_blast
    assert client.message_status(message_id=sent.message_id, data=sent.data, to=TO) is not None


def test_device_status_follows_the_offline_fault(sim: Simulator, client: WsapmeClient) -> None:
    assert client.device_status().connected
    sim.set_fault("device_offline")
    status = client.device_status()
    assert not status.connected and status.state == "disconnected"
    assert not client.device_status().connected  # showing the state does not use it up
    sim.clear_faults()
    assert client.device_status().connected
