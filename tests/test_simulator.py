"""The gateway simulator: webhooks in every shape, faults, counts, records, controls, CLI."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from core.config import PROJECT_ROOT
from core.simulator import ACK_SHAPES, Proportions
from core.simulator.plan import FAST, REALISTIC, plan_message
from core.statuses import Status
from core.wsapme import WsapmeClient
from tests.support.simulator import (
    TEST_TOKEN,
    Received,
    WebhookReceiver,
    client_for,
    running_receiver,
    running_simulator,
)

TO = "60123456789"
EVERYTHING = Proportions(delivered=1.0, read=1.0, replied=1.0, reply_without_read=0.0, opt_out=0.0)
ACKS = ["SERVER_ACK", "DELIVERY_ACK", "READ_ACK"]
# How each shape writes SERVER_ACK, DELIVERY_ACK, READ_ACK (numbers are Baileys').
ACKS_AS_SENT: dict[str, list[object]] = {
    "flat": ACKS,
    "flat_ack": [2, 3, 4],
    "baileys": [2, 3, 4],
    "list": [2, 3, 4],
    "event": ["SERVER_ACK", "DELIVERY_ACK", "READ"],
    "form": ACKS,
}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver() as r:
        yield r


def ack_of(item: Received) -> tuple[str | None, object]:
    """(message id, status name or number) of an ack in any shape; (None, None) for a reply."""
    body = item.parsed()
    if isinstance(body, list):
        body = body[0]
    if "event" in body:
        body = body["data"]
    if "key" in body:
        return body["key"]["id"], body["update"]["status"]
    if "from" in body:
        return None, None
    return body.get("id") or body.get("messageId"), body.get("status", body.get("ack"))


# Webhooks


@pytest.mark.parametrize("shape", ACK_SHAPES)
def test_every_webhook_shape_reaches_a_real_receiver(receiver: WebhookReceiver, shape: str) -> None:
    with running_simulator(webhook_url=receiver.url, webhook_shape=shape, proportions=EVERYTHING) as sim:
        sent = client_for(sim).send_text(to=TO, message="Jualan murah")
        posts = receiver.wait_for(4)
        assert sim.wait_idle(5)
        emitted = sim.emitted()
    assert [p.body.decode() for p in posts] == [e.body for e in emitted.events]
    acks = [ack_of(p) for p in posts[:3]]
    assert {message_id for message_id, _ in acks} == {sent.message_id}
    assert [status for _, status in acks] == ACKS_AS_SENT[shape]
    reply = posts[3].parsed()
    assert reply["from"] in (f"{TO}@s.whatsapp.net", f"{TO}@c.us")
    assert reply["type"] == "text" and reply["message"]
    is_form = posts[3].content_type.startswith("application/x-www-form-urlencoded")
    assert is_form == (shape == "form")


def test_mixed_shapes_are_mostly_json_with_some_form_posts(receiver: WebhookReceiver) -> None:
    with running_simulator(webhook_url=receiver.url, proportions=EVERYTHING, seed=3) as sim:
        client = client_for(sim)
        for n in range(30):
            client.send_text(to=f"6012{n:07d}", message="hi")
        assert sim.wait_idle(10)
        events = sim.emitted().events
    assert len(receiver.received()) == len(events) == 120
    shapes = Counter(e.shape for e in events)
    assert set(shapes) == set(ACK_SHAPES)
    forms = sum(1 for r in receiver.received() if "form" in r.content_type)
    assert 0 < forms < len(events) / 3


def test_numeric_acks_follow_the_simulators_numbering(receiver: WebhookReceiver) -> None:
    with running_simulator(
        webhook_url=receiver.url,
        webhook_shape="flat_ack",
        ack_numbering="wwebjs",
        proportions=EVERYTHING,
    ) as sim:
        client_for(sim).send_text(to=TO, message="hi")
        posts = receiver.wait_for(4)
    assert [ack_of(p)[1] for p in posts[:3]] == [1, 2, 3]


def test_failed_posts_are_retried_until_answered(receiver: WebhookReceiver) -> None:
    receiver.fail_next(2, status=503)
    with running_simulator(
        webhook_url=receiver.url, webhook_shape="flat", proportions=Proportions(delivered=0.0)
    ) as sim:
        client_for(sim).send_text(to=TO, message="hi")
        assert sim.wait_idle(5)
        (event,) = sim.emitted().events
    assert receiver.attempts == 3
    assert (event.attempts, event.delivered, event.http_status) == (3, True, 200)


def test_retries_are_bounded(receiver: WebhookReceiver) -> None:
    receiver.fail_next(100)
    with running_simulator(
        webhook_url=receiver.url, proportions=Proportions(delivered=0.0), max_webhook_attempts=3
    ) as sim:
        client_for(sim).send_text(to=TO, message="hi")
        assert sim.wait_idle(5)
        (event,) = sim.emitted().events
    assert receiver.attempts == 3
    assert (event.attempts, event.delivered, event.http_status) == (3, False, 500)


def test_an_unreachable_webhook_gives_up_and_the_gateway_still_knows() -> None:
    with running_simulator(
        webhook_url="http://127.0.0.1:9/hook", proportions=EVERYTHING, max_webhook_attempts=2
    ) as sim:
        client = client_for(sim)
        sent = client.send_text(to=TO, message="hi")
        assert sim.wait_idle(5)
        events = sim.emitted().events
        found = client.message_status(message_id=sent.message_id)
    assert all(e.attempts == 2 and not e.delivered and e.http_status is None for e in events)
    assert found is not None and found.status == "READ_ACK"  # polling still finds it


def test_duplicate_acks_fault(receiver: WebhookReceiver) -> None:
    with running_simulator(webhook_url=receiver.url, webhook_shape="flat", proportions=EVERYTHING) as sim:
        sim.set_fault("duplicate_acks", times=1)
        client = client_for(sim)
        first = client.send_text(to=TO, message="one")
        assert sim.wait_idle(5)
        second = client.send_text(to=TO, message="two")
        assert sim.wait_idle(5)
        emitted = sim.emitted()
    statuses = Counter(ack_of(p) for p in receiver.received())
    for status in ACKS:
        assert statuses[(first.message_id, status)] == 2
        assert statuses[(second.message_id, status)] == 1
    assert emitted.statuses[first.message_id] == "READ_ACK"


def test_out_of_order_acks_fault(receiver: WebhookReceiver) -> None:
    with running_simulator(webhook_url=receiver.url, webhook_shape="flat", proportions=EVERYTHING) as sim:
        sim.set_fault("out_of_order_acks", times=1)
        client = client_for(sim)
        sent = client.send_text(to=TO, message="hi")
        posts = receiver.wait_for(4)
        assert sim.wait_idle(5)
        found = client.message_status(message_id=sent.message_id)
    assert [ack_of(p)[1] for p in posts if ack_of(p)[0]] == list(reversed(ACKS))
    assert found is not None and found.status == "READ_ACK"


def test_older_send_call_posts_to_its_redirect_url(receiver: WebhookReceiver) -> None:
    with running_simulator(proportions=Proportions(delivered=0.0)) as sim:
        answer = requests.post(
            sim.url + "/v1/sendMessage",
            json={"device": "5850", "to": TO, "message": "hi", "redirect_url": receiver.url},
            headers={"x-wsapme-token": TEST_TOKEN},
            timeout=5,
        ).json()
        posts = receiver.wait_for(1)
    assert ack_of(posts[0])[0] == answer["data"]["key"]["id"]


# Recipient behaviour


def test_realistic_proportions() -> None:
    rng = random.Random(11)
    fates = [plan_message(rng=rng, to=TO, proportions=Proportions(), timing=REALISTIC) for _ in range(4000)]
    delivered = [f for f in fates if any(e.status == Status.DELIVERY_ACK for e in f)]
    read_acked = [f for f in delivered if any(e.status == Status.READ_ACK for e in f)]
    replies = [e for f in fates for e in f if e.text]
    silent_readers = [
        f for f in delivered if any(e.text for e in f) and all(e.status != Status.READ_ACK for e in f)
    ]
    assert 0.90 < len(delivered) / len(fates) < 0.94
    assert 0.61 < (len(read_acked) + len(silent_readers)) / len(delivered) < 0.69
    assert 0.13 < len(replies) / len(fates) < 0.17
    assert 0.15 < len(silent_readers) / len(replies) < 0.35
    assert 0 < sum(r.opt_out for r in replies) < len(replies) * 0.2
    assert 0 < sum(r.from_jid.endswith("@c.us") for r in replies) < len(replies) * 0.45


def test_events_keep_their_order_and_realistic_delays() -> None:
    rng = random.Random(5)
    for _ in range(200):
        fate = plan_message(rng=rng, to=TO, proportions=EVERYTHING, timing=REALISTIC)
        times = [e.after for e in fate]
        assert times == sorted(times)
        assert 0.3 <= times[0] <= 3.0  # the server's tick
        assert times[-1] <= 3.0 + 600 + 7200 + 3600
        fast = plan_message(rng=rng, to=TO, proportions=EVERYTHING, timing=FAST)
        assert fast[-1].after < 0.05


def test_same_seed_same_ids_and_fates() -> None:
    def run(seed: int) -> tuple[list[str], dict[str, str], dict[str, str]]:
        with running_simulator(seed=seed) as sim:
            client = client_for(sim)
            ids = [client.send_text(to=f"6019{n:07d}", message="hi").message_id for n in range(20)]
            assert sim.wait_idle(5)
            emitted = sim.emitted()
        # Each message's fate repeats; how fates interleave in time need not.
        return ids, emitted.statuses, {r.message_id: r.text for r in emitted.replies}

    first = run(42)
    assert first == run(42)
    assert first[1] and first[2]
    assert run(43)[0] != first[0]


def test_realistic_mode_takes_its_time() -> None:
    with running_simulator(mode="realistic") as sim:
        sent = client_for(sim).send_text(to=TO, message="hi")
        # Delivery comes a second or more after the send: not yet.
        assert sim.emitted().statuses[sent.message_id] in ("PENDING", "SERVER_ACK")
        assert sim.gateway.poster.pending() >= 1
        delivered = sum(e.delivered for e in sim.emitted().events)
    # Stopping drops what is not yet due: it is neither waited for nor sent.
    assert sim.gateway.poster.pending() == 0
    assert sum(e.delivered for e in sim.emitted().events) == delivered


# Counts and records


def test_counts_per_recipient_show_anything_sent_twice() -> None:
    with running_simulator() as sim:
        client = client_for(sim)
        client.send_text(to="60111111111", message="a")
        client.send_text(to="+60111111111", message="b")
        client.send_text(to="60122222222", message="c")
        stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
        listed = requests.get(sim.url + "/_sim/messages", timeout=5).json()
        assert sim.sent_count("60111111111") == sim.sent_count("+60111111111") == 2
        assert sim.sent_count("60199999999") == 0
        assert [m.message for m in sim.sent_messages()] == ["a", "b", "c"]
    assert stats["sent_total"] == 3
    assert stats["per_recipient"] == {"60111111111": 2, "60122222222": 1}
    assert stats["sent_more_than_once"] == ["60111111111"]
    assert [m["to"] for m in listed] == ["60111111111", "+60111111111", "60122222222"]


def test_look_ups_agree_with_what_was_emitted() -> None:
    with running_simulator(seed=9) as sim:
        client = client_for(sim)
        sent = [client.send_text(to=f"6017{n:07d}", message="hi") for n in range(40)]
        assert sim.wait_idle(5)
        emitted = sim.emitted()
        found = {s.message_id: client.message_status(message_id=s.message_id, data=s.data) for s in sent}
        served = requests.get(sim.url + "/_sim/emitted", timeout=5).json()
    assert {k: v.status for k, v in found.items() if v} == emitted.statuses
    assert served["statuses"] == emitted.statuses
    assert len(set(emitted.statuses.values())) >= 3  # the mix has delivered and read ones
    replied = {r.message_id for r in emitted.replies}
    assert all(emitted.funnel_status(m) == "REPLIED" for m in replied)
    assert all(found[m] is not None and found[m].delivered_at for m in replied)


# Controls over HTTP


def test_faults_over_http() -> None:
    with running_simulator() as sim:
        client = client_for(sim)
        set_fault = requests.post(
            sim.url + "/_sim/faults",
            json={"kind": "rate_limited", "times": 2, "retry_after": "4"},
            timeout=5,
        )
        assert set_fault.status_code == 200
        assert requests.get(sim.url + "/_sim/faults", timeout=5).json()[0]["remaining"] == 2
        for _ in range(2):
            with pytest.raises(Exception, match="slow down"):
                client.send_text(to=TO, message="hi")
        assert requests.get(sim.url + "/_sim/faults", timeout=5).json() == []
        requests.post(sim.url + "/_sim/faults", json={"kind": "server_error"}, timeout=5)
        requests.delete(sim.url + "/_sim/faults", timeout=5)
        client.send_text(to=TO, message="hi")
        wrong = requests.post(sim.url + "/_sim/faults", json={"kind": "gremlins"}, timeout=5)
    assert wrong.status_code == 400 and "gremlins" in wrong.json()["error"]


@pytest.mark.parametrize("status", [None, 520])
def test_a_proxy_error_comes_after_the_gateway_took_the_message(status: int | None) -> None:
    """A front server's own error page (a CDN's 524 by default) after the gateway took the
    message: the message counts as sent, and the answer says nothing of it."""
    options = {} if status is None else {"http_status": status}
    with running_simulator() as sim:
        sim.set_fault("proxy_error", times=1, **options)
        answer = requests.post(sim.url + "/v1/sendMessage2", json={"to": TO, "message": "x"},
                               headers={"x-wsapme-token": TEST_TOKEN}, timeout=5)
        assert sim.sent_count(TO) == 1 and sim.sent_messages()[0].answer == "proxy_error"
    assert answer.status_code == (status or 524)
    assert answer.headers["Content-Type"].startswith("text/html") and "timed out" in answer.text


@pytest.mark.parametrize("status", [200, 400])
def test_an_unknown_device_is_refused_before_anything_is_sent(status: int) -> None:
    with running_simulator() as sim:
        sim.set_fault("unknown_device", times=1, http_status=status)
        answer = requests.post(sim.url + "/v1/sendMessage2", json={"device": "9", "to": TO, "message": "x"},
                               headers={"x-wsapme-token": TEST_TOKEN}, timeout=5)
        assert sim.sent_count(TO) == 0
    assert answer.status_code == status
    assert answer.json() == {"success": False, "message": "Device not found"}


def where(receiver: WebhookReceiver) -> str:
    return receiver.url.removesuffix("/webhooks/wsapme/s3cret")


def test_the_controls_never_answer_with_the_webhook_secret(receiver: WebhookReceiver) -> None:
    """The controls answer any local process without a token; in practice mode the address
    is the tracker's own, and its last part is the secret."""
    with running_simulator(proportions=Proportions(delivered=0.0)) as sim:
        answers = [requests.post(sim.url + "/_sim/webhook", json={"url": receiver.url}, timeout=5).text]
        requests.post(sim.url + "/v1/sendMessage",  # with its own address
                      json={"to": TO, "message": "hi", "redirect_url": receiver.url},
                      headers={"x-wsapme-token": TEST_TOKEN}, timeout=5)
        client_for(sim).send_text(to=TO, message="hi")  # to the one set above
        receiver.wait_for(2)
        assert sim.wait_idle(5)
        answers += [requests.get(sim.url + f"/_sim/{route}", timeout=5).text
                    for route in ("emitted", "messages")]
        emitted = requests.get(sim.url + "/_sim/emitted", timeout=5).json()
        other = requests.post(sim.url + "/_sim/webhook", json={"url": "https://u:pw@hooks.example/in?key=k3y"},
                              timeout=5).json()
    assert all("s3cret" not in answer for answer in answers)
    assert {e["url"] for e in emitted["events"]} == {where(receiver) + "/webhooks/wsapme/[secret]"}
    assert other["url"] == "https://hooks.example"
    assert {e.url for e in sim.emitted().events} == {receiver.url}, "tests in this process still see it"


def test_webhook_and_style_over_http(receiver: WebhookReceiver) -> None:
    with running_simulator(proportions=Proportions(delivered=0.0)) as sim:
        answer = requests.post(
            sim.url + "/_sim/webhook", json={"url": receiver.url, "shape": "form"}, timeout=5
        )
        assert answer.json() == {"url": where(receiver) + "/webhooks/wsapme/[secret]", "shape": "form"}
        requests.post(sim.url + "/_sim/style", json={"id_place": "data.id"}, timeout=5)
        sent = client_for(sim).send_text(to=TO, message="hi")
        posts = receiver.wait_for(1)
        bad = requests.post(sim.url + "/_sim/webhook", json={"shape": "telegram"}, timeout=5)
    assert sent.data["id"] == sent.message_id
    assert posts[0].parsed() == {
        "id": sent.message_id,
        "status": "SERVER_ACK",
        "timestamp": posts[0].parsed()["timestamp"],
    }
    assert bad.status_code == 400


def test_gateway_answers_need_a_token_and_unknown_paths_are_404() -> None:
    with running_simulator() as sim:
        bare = requests.post(sim.url + "/v1/sendMessage2", json={"to": TO, "message": "x"}, timeout=5)
        nowhere = requests.get(sim.url + "/v2/whatever", timeout=5)
        no_to = requests.post(
            sim.url + "/v1/sendMessage2",
            json={"message": "x"},
            headers={"x-wsapme-token": TEST_TOKEN},
            timeout=5,
        )
        assert sim.stats()["sent_total"] == 0
    assert bare.status_code == 401 and bare.json() == {"success": False, "message": "Unauthorised Token"}
    assert nowhere.status_code == 404
    assert no_to.status_code == 200 and no_to.json()["success"] is False


# Lifecycle


def test_stop_is_quick_with_a_slow_answer_in_flight() -> None:
    sim_ctx = running_simulator()
    sim = sim_ctx.__enter__()
    sim.set_fault("slow_answer", delay=60)
    with pytest.raises(Exception, match="did not confirm"):
        client_for(sim, read_timeout=0.3).send_text(to=TO, message="hi")
    started = time.monotonic()
    sim_ctx.__exit__(None, None, None)
    assert time.monotonic() - started < 20, "not the slow answer's 60 s"
    with pytest.raises(OSError), socket.create_connection((sim.host, sim.port), timeout=1):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30  # the CLI imports every command first
    while time.monotonic() < deadline:
        assert process.poll() is None, "the simulator command exited early"
        try:
            requests.get(url + "/_sim/stats", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("the simulator command did not start listening")


def test_cli_command_answers_a_send() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "simulator", "--port", str(port), "--mode", "fast"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        client = WsapmeClient(token=TEST_TOKEN, device="5850", api_url=url, master_url=url)
        sent = client.send_text(to=TO, message="hi from the CLI test")
        stats: dict[str, Any] = requests.get(url + "/_sim/stats", timeout=5).json()
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert sent.message_id.startswith("3EB0")
    assert stats["per_recipient"] == {TO: 1}
    assert process.returncode == 0
    assert f"listening on {url}" in output and "simulator stopped" in output


def test_cli_command_says_where_webhooks_go_without_the_secret() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "core", "simulator", "--port", str(port),
         "--webhook-url", "http://127.0.0.1:8501/webhooks/wsapme/hook-Zq81-0123456789abcdef"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert "webhooks go to http://127.0.0.1:8501\n" in output  # pasted from Settings & health
    assert "Zq81" not in output


# The simulator speaks what the product's webhook parser reads


@pytest.mark.parametrize("numbering", ["baileys", "wwebjs"])
def test_every_emitted_webhook_is_read_by_the_parser(numbering: str) -> None:
    from core.webhook.parse import AckEvent, IncomingMessage, parse_webhook

    with running_simulator(proportions=EVERYTHING, ack_numbering=numbering) as sim:
        client = client_for(sim)
        for shape in ACK_SHAPES:
            sim.set_webhook_shape(shape)
            client.send_text(to=TO, message="hi")
        assert sim.wait_idle(5)
        events = sim.emitted().events
    assert len(events) == 4 * len(ACK_SHAPES)
    for event in events:
        assert event.body is not None
        parsed = parse_webhook(event.body.encode(), event.content_type, numbering=numbering)
        assert isinstance(parsed, list) and len(parsed) == 1, (event.shape, parsed)
        (read,) = parsed
        if event.status is not None:
            assert isinstance(read, AckEvent), event.shape
            assert (read.message_ids[0], str(read.status)) == (event.message_id, event.status)
        else:
            assert isinstance(read, IncomingMessage), event.shape
            assert (read.text, read.jid, read.from_me) == (event.text, event.from_jid, False)


@pytest.mark.parametrize("numbering", ["baileys", "wwebjs"])
def test_an_error_after_the_tick_is_read_as_failed_and_the_gateway_keeps_it(numbering: str) -> None:
    """A number not on WhatsApp: one tick, then WhatsApp's error, in every shape; reversed,
    the late tick does not undo the error in the gateway's own view either."""
    from core.statuses import parse_status
    from core.webhook.parse import AckEvent, parse_webhook

    errors = Proportions(delivered=0.0, errored=1.0)
    with running_simulator(proportions=errors, ack_numbering=numbering) as sim:
        client = client_for(sim, ack_numbering=numbering)
        sent = []
        for shape in ACK_SHAPES:
            sim.set_webhook_shape(shape)
            sent.append(client.send_text(to=TO, message="hi").message_id)
        sim.set_fault("out_of_order_acks", times=1)
        sent.append(client.send_text(to=TO, message="hi").message_id)
        assert sim.wait_idle(5)
        emitted = sim.emitted()
        found = [client.message_status(message_id=m) for m in sent]
    assert [e.status for e in emitted.events if e.message_id == sent[-1]] == ["FAILED", "SERVER_ACK"]
    assert Counter(e.status for e in emitted.events) == {"SERVER_ACK": len(sent), "FAILED": len(sent)}
    for event in emitted.events:
        assert event.body is not None
        (read,) = parse_webhook(event.body.encode(), event.content_type, numbering=numbering)
        assert isinstance(read, AckEvent) and str(read.status) == event.status, event.shape
    named = [e for e in emitted.events if e.shape == "flat" and e.status == "FAILED"]
    assert named and all(e.body and "ERROR" in e.body and "FAILED" not in e.body for e in named)
    assert {emitted.statuses[m] for m in sent} == {"FAILED"}
    assert all(f is not None and parse_status(str(f.status)) is Status.FAILED for f in found), found
