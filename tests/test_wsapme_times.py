"""The one reader of gateway times: each rule, read the same by webhooks and by send and status answers."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core.webhook.parse import AckEvent, IncomingMessage, parse_webhook
from core.wsapme.answers import (
    EARLIEST,
    LATEST,
    epoch_seconds,
    parse_send_answer,
    parse_status_answer,
    parse_time,
)

T = 1617690369
AT = dt.datetime.fromtimestamp(T, dt.UTC)  # 2021-04-06 06:26:09 UTC
T_MS = T * 1000 + 250
Y2000 = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
Y2100 = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _ms(value: int) -> dt.timedelta:
    return dt.timedelta(milliseconds=value)


def _long(value: int) -> dict[str, object]:
    """A protobufjs Long as JSON: signed 32-bit halves."""
    low, high = value & 0xFFFFFFFF, value >> 32
    return {"low": low - 2**32 if low >= 2**31 else low, "high": high, "unsigned": False}


TIMES = [
    # Unix seconds, as a number or as text (protobuf longs are serialised as strings).
    pytest.param(T, AT, id="seconds"),
    pytest.param(str(T), AT, id="seconds-text"),
    pytest.param(f" {T} ", AT, id="seconds-text-padded"),
    pytest.param(float(T), AT, id="seconds-float"),
    pytest.param(T + 0.5, AT + _ms(500), id="seconds-fraction"),
    pytest.param(f"{T}.5", AT + _ms(500), id="seconds-fraction-text"),
    # Milliseconds (13 digits) and microseconds (16 digits).
    pytest.param(T * 1000, AT, id="milliseconds"),
    pytest.param(str(T_MS), AT + _ms(250), id="milliseconds-text"),
    pytest.param(T * 10**6 + 123_456, AT + dt.timedelta(microseconds=123_456), id="microseconds"),
    pytest.param(str(T * 10**6), AT, id="microseconds-text"),
    # Protobuf Longs, as protobufjs writes them to JSON.
    pytest.param({"low": T, "high": 0, "unsigned": False}, AT, id="long"),
    pytest.param({"low": T}, AT, id="long-without-high"),
    pytest.param(_long(T_MS), AT + _ms(250), id="long-milliseconds-negative-low"),
    pytest.param({"low": T, "high": "x" * 9}, None, id="long-with-a-text-half"),
    pytest.param({"high": 0}, None, id="long-without-low"),
    pytest.param({"low": True, "high": 0}, None, id="long-with-a-flag"),
    # ISO 8601: UTC unless it says otherwise.
    pytest.param("2021-04-06T06:26:09Z", AT, id="iso-z"),
    pytest.param("2021-04-06T06:26:09", AT, id="iso-naive-is-utc"),
    pytest.param("2021-04-06T14:26:09+08:00", AT, id="iso-offset"),
    pytest.param("2021-04-06 06:26:09.250+00:00", AT + _ms(250), id="iso-fraction"),
    # 2000 to 2100, in every unit; the ranges do not overlap and what lies between is no time.
    pytest.param(EARLIEST, Y2000, id="first-second"),
    pytest.param(EARLIEST - 1, None, id="1999-seconds"),
    pytest.param(LATEST - 1, Y2100 - dt.timedelta(seconds=1), id="last-second"),
    pytest.param(LATEST, None, id="2100-seconds"),
    pytest.param(EARLIEST * 1000, Y2000, id="first-millisecond"),
    pytest.param(EARLIEST * 1000 - 1, None, id="1999-milliseconds"),
    pytest.param(LATEST * 1000 - 1, Y2100 - _ms(1), id="last-millisecond"),
    pytest.param(EARLIEST * 10**6, Y2000, id="first-microsecond"),
    pytest.param(LATEST * 10**6, None, id="2100-microseconds"),
    pytest.param(T // 10, None, id="nine-digits-1975"),
    pytest.param(T * 100, None, id="twelve-digits-neither-seconds-nor-milliseconds"),
    pytest.param(T * 10**9, None, id="nanoseconds"),
    pytest.param("1999-12-31T23:59:59Z", None, id="iso-1999"),
    pytest.param("2100-01-01T00:00:00Z", None, id="iso-2100"),
    pytest.param("0001-01-01T00:00:00+01:00", None, id="iso-year-1-with-offset"),
    # Not times at all.
    pytest.param(0, None, id="zero"),
    pytest.param(-5, None, id="negative"),
    pytest.param("", None, id="empty"),
    pytest.param("soon", None, id="word"),
    pytest.param("nan", None, id="nan-text"),
    pytest.param(str(T).rjust(41, "0"), None, id="text-over-40"),
    pytest.param(True, None, id="flag"),
    pytest.param(None, None, id="none"),
    pytest.param([T], None, id="list"),
    pytest.param(10**400, None, id="huge-int"),
    pytest.param(1e300, None, id="huge-float"),
    pytest.param(float("inf"), None, id="infinity"),
    pytest.param(float("nan"), None, id="nan"),
]


@pytest.mark.parametrize(("value", "expected"), TIMES)
def test_the_time_reader(value: object, expected: dt.datetime | None) -> None:
    at = parse_time(value)
    assert at == expected
    assert at is None or at.utcoffset() == dt.timedelta(0)
    assert epoch_seconds(value) == (None if expected is None else int(expected.timestamp()))


@pytest.mark.parametrize(("value", "expected"), TIMES)
def test_send_and_status_answers_read_times_as_the_webhook_does(
    value: object, expected: dt.datetime | None
) -> None:
    seconds = None if expected is None else int(expected.timestamp())
    sent = parse_send_answer({"success": True, "data": {"key": {"id": "3EB0A"}, "messageTimestamp": value}},
                             numbering="baileys")
    assert sent is not None and sent.message_timestamp == seconds
    found = parse_status_answer({"status": "DELIVERY_ACK", "data": {"messageC2STimestamp": value}},
                                lookup="messageInfo", numbering="baileys")
    assert found is not None and found.delivered_at == seconds
    assert _webhook_times(value) == [expected] * 3


def _webhook_times(value: object) -> list[dt.datetime | None]:
    """The time of the everyday ack (the short way), a Baileys update and an incoming message."""
    bodies = [
        {"event": "message-ack", "data": {"id": "3EB0A", "status": "DELIVERY_ACK", "timestamp": value}},
        {"key": {"id": "3EB0A", "fromMe": True}, "update": {"status": 3, "timestamp": value}},
        {"from": "601133428730@c.us", "message": "hi", "timestamp": value},
    ]
    times = []
    for body in bodies:
        events = parse_webhook(json.dumps(body).encode(), "application/json")
        assert isinstance(events, list) and len(events) == 1
        assert isinstance(events[0], AckEvent | IncomingMessage)
        times.append(events[0].at)
    return times
