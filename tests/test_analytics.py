"""Trends, tag comparison with honest intervals, response times and hours people answer."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import re
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, case, event, func, or_, select
from sqlalchemy.orm import Session

from core import analytics
from core.analytics import (
    RESPONSE_SAMPLE,
    ResponseTimes,
    activity_by_hour,
    daily_trend,
    opted_out_by_reply,
    response_times,
    tag_comparison,
    wilson_interval,
)
from core.db import transaction
from core.funnel import FunnelFilter, apply_filter, fold_rollup_deltas, funnel, status_rank
from core.models import Blast, BlastRecipient, OptOut, RecipientReply
from core.opt_outs import add_opt_outs
from core.recipients import close_sale
from core.status_engine import apply_status
from core.statuses import RANK, Stage, Status
from core.webhook.inbox import WebhookRules, process_entry, store_raw
from core.webhook.replies import DEFAULT_OPT_OUT_WORDS, opt_out_keyword
from tests.support.factories import make_blast, make_recipient

UTC = dt.UTC


def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (0, 0, 0.0, 0.0),
        (5, 10, 0.2366, 0.7634),
        (1, 1, 0.2065, 1.0),
        (0, 20, 0.0, 0.1611),
        (500, 1000, 0.4691, 0.5309),
    ],
)
def test_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-4)


def _seed(engine: Engine) -> None:
    with transaction(engine) as s:
        big = make_blast(s, blast_tag="Big")
        # Sent 2026-03-01 15:30 UTC = 23:30 in KL (day 1); 16:30 UTC = 00:30 KL (day 2).
        for i in range(10):
            sent = t(1, 15, 30) if i < 6 else t(1, 16, 30)
            read = sent + dt.timedelta(minutes=10 * (i + 1)) if i < 5 else None
            status = "REPLIED" if i < 2 else ("READ_ACK" if i < 5 else "DELIVERY_ACK")
            make_recipient(
                s,
                big,
                status=status,
                sent_at=sent,
                read_timestamp=read,
                replied_at=sent + dt.timedelta(hours=1) if i < 2 else None,
            )
        small = make_blast(s, blast_tag="Small")
        make_recipient(
            s, small, status="REPLIED", sent_at=t(2, 1), read_timestamp=t(2, 2), replied_at=t(2, 2)
        )


def test_daily_trend_groups_by_the_teams_local_day(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        trend = daily_trend(s, filters=FunnelFilter())
    rows = {r.day: (r.sent, r.read, r.replied) for r in trend.itertuples()}
    assert rows == {dt.date(2026, 3, 1): (6, 5, 2), dt.date(2026, 3, 2): (5, 1, 1)}


def test_tag_comparison_gives_small_tags_wide_intervals(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        tags = tag_comparison(s, filters=FunnelFilter()).set_index("tag")
    assert tags.loc["Small", "replied_rate"] == 100.0
    assert tags.loc["Big", "replied_rate"] == 20.0
    small_width = tags.loc["Small", "replied_high"] - tags.loc["Small", "replied_low"]
    big_width = tags.loc["Big", "replied_high"] - tags.loc["Big", "replied_low"]
    assert small_width > big_width
    assert tags.loc["Small", "replied_low"] < tags.loc["Big", "replied_high"], "1 of 1 is no proven winner"


def _reply(engine: Engine, phone: str, text: str, at: dt.datetime) -> None:
    """A reply as the gateway posts it, stored and applied by the webhook."""
    body = {"type": "text", "message": text, "from": phone.lstrip("+") + "@c.us",
            "timestamp": int(at.timestamp())}
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(body).encode(), content_type="application/json")
    with transaction(engine) as s:
        process_entry(s, inbox_id=inbox_id, rules=WebhookRules())


def _opt_out_replies(engine: Engine) -> None:
    """Raya: two of four answer. CNY, a day later: three of five send an opt-out word, one of
    them after asking about Raya's price; one asks a question; one says nothing."""
    phones = [f"+60123{i:06d}" for i in range(8)]
    with transaction(engine) as s:
        for tag, day, group in (("Raya", 2, phones[:4]), ("CNY", 3, [phones[0], *phones[4:]])):
            blast = make_blast(s, blast_tag=tag, state="completed", blast_date=t(day, 2))
            for phone in group:
                make_recipient(s, blast, phone_number=phone, status="READ_ACK", sent_at=t(day, 2))
    _reply(engine, phones[0], "Berapa harga?", t(2, 3))
    _reply(engine, phones[1], "Nak 2 kotak", t(2, 3))
    for phone, text in zip([phones[0], *phones[4:]], ["STOP", "Berhenti!", "tak-nak 🙏", "Bila sampai?"],
                           strict=False):
        _reply(engine, phone, text, t(3, 4))
    with transaction(engine) as s:
        add_opt_outs(s, [phones[1]], source="manual")  # asked on the phone: no reply of theirs


def test_an_opt_out_reply_is_a_reply_in_the_funnel_but_no_success_for_its_tag(engine: Engine) -> None:
    _opt_out_replies(engine)
    with transaction(engine) as s:
        assert funnel(s).replied == 6, "every answer, opt-outs too"
        assert opted_out_by_reply(s, filters=FunnelFilter()) == {"CNY": 3}
        assert opted_out_by_reply(s, filters=FunnelFilter(tags=("Raya",))) == {}
        cny_day = FunnelFilter(start=dt.date(2026, 3, 3), end=dt.date(2026, 3, 3))
        assert opted_out_by_reply(s, filters=cny_day) == {"CNY": 3}
        tags = tag_comparison(s, filters=FunnelFilter()).set_index("tag")
    assert tags.loc["CNY", "opted_out"] == 3 and tags.loc["CNY", "opted_out_rate"] == 60.0
    assert tags.loc["CNY", "replied_rate"] == 20.0, "the one question, of five"
    assert tags.loc["Raya", "replied_rate"] == 50.0 and tags.loc["Raya", "opted_out"] == 0
    assert tags.loc["CNY", "opted_out_low"] < 60.0 < tags.loc["CNY", "opted_out_high"]


def test_an_opt_out_typed_in_full_width_or_with_a_please_is_counted_for_its_tag(engine: Engine) -> None:
    """The webhook reads "ＳＴＯＰ" (a Chinese keyboard) and "Stop pls" as opting out; the tags'
    count had missed the first, looking for "stop" in the words as typed."""
    said = ["ＳＴＯＰ", "Stop pls", "Ｓｔｏｐ", "Ｂｅｒｈｅｎｔｉ", "Berapa?"]  # the keyboard capitalises
    phones = [f"+60124{i:06d}" for i in range(len(said))]
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag="CNY", state="completed", blast_date=t(3, 2))
        for phone in phones:
            make_recipient(s, blast, phone_number=phone, status="READ_ACK", sent_at=t(3, 2))
    for phone, text in zip(phones, said, strict=True):
        _reply(engine, phone, text, t(3, 4))
    with transaction(engine) as s:
        assert opted_out_by_reply(s, filters=FunnelFilter()) == {"CNY": 4}


@pytest.mark.parametrize("filters", [FunnelFilter(), FunnelFilter(tags=("CNY",))], ids=["all time", "a tag"])
def test_opt_out_replies_are_found_without_reading_every_recipient(
    engine: Engine, filters: FunnelFilter
) -> None:
    """By id from the replies that may be opt-outs, or by blast: a million recipients stay unread."""
    _opt_out_replies(engine)
    statements: list[tuple[str, Any]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        with transaction(engine) as s:
            assert opted_out_by_reply(s, filters=filters) == {"CNY": 3}
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = next((q, p) for q, p in statements if "recipient_replies" in q)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # tables this small are read whole otherwise
            plan = " ".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters))
            assert "Seq Scan on blast_recipients" not in plan and re.search(r"\bid = ANY \(", plan), plan
        else:
            steps = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
            [recipients] = [step for step in steps if " blast_recipients " in f"{step} "]
            assert recipients.startswith("SEARCH"), steps
            assert "PRIMARY KEY" in recipients or "idx_blast_id_status" in recipients, steps


def test_response_times(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        times = response_times(s, filters=FunnelFilter(tags=("Big",)))
    assert times.read_median == dt.timedelta(minutes=30)
    assert times.read_p90 == dt.timedelta(minutes=46)
    assert times.reply_median == dt.timedelta(hours=1)
    assert not times.sampled


def _seed_gaps(engine: Engine, tag: str, reads: list[float], replies: list[float]) -> None:
    """One blast: a recipient read that many seconds after sending for each of `reads`, in
    that order, then one replied (read receipts off) for each of `replies`. Every other send
    is at .999999 of its second, so the gaps cross whole seconds."""
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag=tag)
        for column, status, gaps in (("read_timestamp", "READ_ACK", reads),
                                     ("replied_at", "REPLIED", replies)):
            for i, gap in enumerate(gaps):
                sent = t(1, 12, i) + dt.timedelta(microseconds=999_999 * (i % 2))
                make_recipient(s, blast, status=status, sent_at=sent,
                               **{column: sent + dt.timedelta(seconds=gap)})


def _seconds(*values: float | None) -> tuple[dt.timedelta | None, ...]:
    return tuple(None if v is None else dt.timedelta(seconds=v) for v in values)


@pytest.mark.parametrize(
    ("reads", "replies", "expected"),
    [
        # Odd n once the negative gap is dropped: 10 20 30 40 100; p90 at 3.6 = 40 + 0.6 * 60.
        # One reply (n == 1) a microsecond after sending: both quantiles are that microsecond.
        ([-5, 40, 10, 100, 30, 20], [0.000001], _seconds(30, 76, 0.000001, 0.000001)),
        # Even n: 1.5 2 3 4 5 6 7 8 9 100; median at 4.5 = 5.5, p90 at 8.1 = 9 + 0.1 * 91.
        # Replies all before the send (a clock off): no reply time at all.
        ([7, 1.5, 9, 3, 100, 5, 2, 8, 4, 6], [-1, -0.000001], _seconds(5.5, 18.1, None, None)),
        # n == 2 with a gap of nought, which is kept; no replies.
        ([0.00001, 0], [], _seconds(0.000005, 0.000009, None, None)),
    ],
    ids=["odd", "even", "two"],
)
def test_response_times_of_known_gaps(
    engine: Engine, reads: list[float], replies: list[float], expected: tuple[dt.timedelta | None, ...]
) -> None:
    _seed_gaps(engine, "Known", reads, replies)
    _seed_gaps(engine, "Other", [1_000, 2_000, -3], [5_000])
    with transaction(engine) as s:
        times = response_times(s, filters=FunnelFilter(tags=("Known",)))
    assert times == ResponseTimes(*expected, sampled=False)


def test_response_times_of_a_full_sample_of_negative_gaps(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analytics, "RESPONSE_SAMPLE", 2)
    _seed_gaps(engine, "Known", [4], [30, -1, -0.000001])
    with transaction(engine) as s:
        times = response_times(s, filters=FunnelFilter())
    # The one read is no full sample; the two most recent replies are, and both are dropped.
    assert times == ResponseTimes(*_seconds(4, 4, None, None), sampled=True)


def test_a_sale_closed_by_hand_is_no_time_to_read_or_reply(engine: Engine) -> None:
    """Closing someone who never read stamps read and replied with the close's time: not
    theirs. Someone who read, then was closed later, still counts for reading."""
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag="Known")
        sent = t(1, 12)
        minutes = [sent + dt.timedelta(minutes=m) for m in (10, 20, 30)]
        closed = sent + dt.timedelta(days=2)
        make_recipient(s, blast, status="READ_ACK", sent_at=sent, read_timestamp=minutes[0])
        make_recipient(s, blast, status="REPLIED", sent_at=sent, read_timestamp=minutes[1],
                       replied_at=minutes[1])
        make_recipient(s, blast, status="CLOSED", sent_at=sent, read_timestamp=closed, replied_at=closed,
                       closed_at=closed)
        make_recipient(s, blast, status="CLOSED", sent_at=sent, read_timestamp=minutes[2],
                       replied_at=closed, closed_at=closed)
    with transaction(engine) as s:
        times = response_times(s, filters=FunnelFilter(tags=("Known",)))
    assert (times.read_median, times.reply_median) == (dt.timedelta(minutes=20), dt.timedelta(minutes=20))


def test_a_reply_with_read_receipts_off_is_no_time_to_read(engine: Engine) -> None:
    """Someone whose read receipts are off is read when they reply, stamped with the reply's
    time: when they read it is not known, so it is left out of the time to read (and counts
    for the time to reply)."""
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag="Known")
        sent = t(1, 12)
        minutes = [sent + dt.timedelta(minutes=m) for m in (10, 20, 30, 600, 900)]
        make_recipient(s, blast, status="READ_ACK", sent_at=sent, read_timestamp=minutes[0])
        make_recipient(s, blast, status="READ_ACK", sent_at=sent, read_timestamp=minutes[2])
        make_recipient(s, blast, status="REPLIED", sent_at=sent, read_timestamp=minutes[1],
                       replied_at=minutes[4])
        for late in minutes[3:]:
            make_recipient(s, blast, status="REPLIED", sent_at=sent, read_timestamp=late, replied_at=late)
    with transaction(engine) as s:
        times = response_times(s, filters=FunnelFilter(tags=("Known",)))
    assert times.read_median == dt.timedelta(minutes=20)
    assert times.read_p90 == dt.timedelta(minutes=28)
    assert times.reply_median == dt.timedelta(minutes=900)


def test_a_lost_send_settled_later_counts_on_the_day_it_went_with_its_real_time_to_reply(
    engine: Engine,
) -> None:
    """Two sends whose answers were lost: one is replied to the next day, the other made a sale.
    Both went on 2 Mar, when they were tried; the reply took a day, not no time at all."""
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag="Lost")
        answered = [make_recipient(s, blast, status="REPLIED", sent_at=t(2, 1), replied_at=t(2, 3)),
                    make_recipient(s, blast, status="REPLIED", sent_at=t(2, 1, 1), replied_at=t(2, 5, 1))]
        lost = [make_recipient(s, blast, status="SENDING").id for _ in range(2)]
        assert answered
    for rid in lost:
        with transaction(engine) as s:
            apply_status(s, recipient_id=rid, status=Status.UNKNOWN, source="send", at=t(2, 1, 4))
    with transaction(engine) as s:
        apply_status(s, recipient_id=lost[0], status=Status.REPLIED, source="webhook", at=t(3, 2))
        close_sale(s, recipient_id=lost[1], source="manual", at=t(3, 4))
    filters = FunnelFilter(tags=("Lost",), timezone="UTC")
    with transaction(engine) as s:
        trend = daily_trend(s, filters=filters)
        times = response_times(s, filters=filters)
        sent = funnel(s, filters=filters).sent
    # A sale is past replied, so it counts there too.
    assert {r.day: (r.sent, r.replied) for r in trend.itertuples()} == {dt.date(2026, 3, 2): (4, 4)}
    assert sent == 4
    assert times.reply_median == dt.timedelta(hours=4)  # of 2 h, 4 h and 24 h 56 min


def test_activity_by_local_hour_and_weekday(engine: Engine) -> None:
    _seed(engine)
    with transaction(engine) as s:
        activity = activity_by_hour(s, filters=FunnelFilter(tags=("Small",)))
    reads = activity[activity["what"] == "read"]
    # 2026-03-02 02:00 UTC is Monday 10:00 in Kuala Lumpur.
    assert list(zip(reads["weekday"], reads["hour_of_day"], reads["n"], strict=True)) == [("Mon", 10, 1)]


def test_empty_selection(engine: Engine) -> None:
    with transaction(engine) as s:
        assert daily_trend(s, filters=FunnelFilter()).empty
        assert activity_by_hour(s, filters=FunnelFilter()).empty
        assert tag_comparison(s, filters=FunnelFilter()).empty
        assert response_times(s, filters=FunnelFilter()).read_median is None


# --- the fast paths against a plain recount of recipient rows ------------------------------------
#
# Each reference below is the straightforward query the analytics ran before they read rollups
# and let the database do the arithmetic: one pass over blast_recipients joined to blasts.


def _recount_hours(
    session: Session, column: Any, filters: FunnelFilter, *columns: Any, where: Any = True
) -> pd.DataFrame:
    if session.get_bind().dialect.name == "postgresql":
        bucket = func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")
    else:
        bucket = func.strftime("%Y-%m-%d %H", column)
    query = (
        select(bucket, func.count(), *columns)
        .select_from(BlastRecipient)
        .join(Blast)
        .where(column.is_not(None), where)
        .group_by(bucket)
    )
    rows = [tuple(row) for row in session.execute(apply_filter(query, filters))]
    frame = pd.DataFrame(rows, columns=["hour", "n", *(f"c{i}" for i in range(len(columns)))])
    frame["hour"] = pd.to_datetime(frame["hour"], format="%Y-%m-%d %H", utc=True)
    frame["hour"] = frame["hour"].dt.tz_convert(filters.timezone)
    return frame


def recount_daily_trend(session: Session, filters: FunnelFilter) -> pd.DataFrame:
    rank = status_rank()
    reached = [func.sum(case((rank >= stage.min_rank, 1), else_=0)) for stage in (Stage.READ, Stage.REPLIED)]
    # A message that failed after the gateway took it keeps its send time; it was not sent to anyone.
    frame = _recount_hours(session, BlastRecipient.sent_at, filters, *reached,
                           where=rank >= Stage.SENT.min_rank)
    if frame.empty:
        return frame
    frame.columns = ["hour", "sent", "read", "replied"]
    frame["day"] = frame["hour"].dt.date
    daily = frame.groupby("day", as_index=False)[["sent", "read", "replied"]].sum()
    daily["read_rate"] = 100.0 * daily["read"] / daily["sent"]
    daily["reply_rate"] = 100.0 * daily["replied"] / daily["sent"]
    return daily


def recount_activity(session: Session, filters: FunnelFilter) -> pd.DataFrame:
    frames = []
    for what, column in (("read", BlastRecipient.read_timestamp), ("replied", BlastRecipient.replied_at)):
        # A read or reply time that is the close's own was given by a sale closed by hand.
        by_the_person = or_(BlastRecipient.closed_at.is_(None), column != BlastRecipient.closed_at)
        frame = _recount_hours(session, column, filters, where=by_the_person)
        if not frame.empty:
            frame.columns = ["hour", "n"]
            frame["what"] = what
            frames.append(frame)
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    frame["weekday"] = frame["hour"].dt.day_name().str[:3]
    frame["hour_of_day"] = frame["hour"].dt.hour
    return frame.groupby(["what", "weekday", "hour_of_day"], as_index=False)["n"].sum()


def recount_response_times(session: Session, filters: FunnelFilter, sample: int) -> ResponseTimes:
    found: list[dt.timedelta | None] = []
    sampled = False
    for column in (BlastRecipient.read_timestamp, BlastRecipient.replied_at):
        query = (
            select(BlastRecipient.sent_at, column)
            .join(Blast)
            .where(BlastRecipient.sent_at.is_not(None), column.is_not(None),
                   or_(BlastRecipient.closed_at.is_(None), column != BlastRecipient.closed_at))
            .order_by(BlastRecipient.id.desc())
            .limit(sample)
        )
        if column is BlastRecipient.read_timestamp:  # not read with the reply's time (receipts off)
            query = query.where(or_(BlastRecipient.replied_at.is_(None),
                                    BlastRecipient.replied_at != BlastRecipient.read_timestamp))
        rows = session.execute(apply_filter(query, filters)).all()
        sampled = sampled or len(rows) == sample
        seconds = pd.Series([(later - sent).total_seconds() for sent, later in rows], dtype=float)
        seconds = seconds[seconds >= 0]
        for value in (seconds.median(), seconds.quantile(0.9)) if len(seconds) else (None, None):
            found.append(None if value is None else dt.timedelta(seconds=float(value)))
    return ResponseTimes(*found, sampled=sampled)


def assert_response_times_match(times: ResponseTimes, expected: ResponseTimes) -> None:
    """Equal to a recount's to within a microsecond per time: the database sorts the gaps and
    the quantiles are interpolated between whole microseconds, the recount's in pandas between
    seconds, so the last bits of a float may differ and round to the neighbouring microsecond."""
    assert times.sampled == expected.sampled
    for field in dataclasses.fields(ResponseTimes):
        if field.name == "sampled":
            continue
        got, want = getattr(times, field.name), getattr(expected, field.name)
        if got is None or want is None:
            assert got is want, (field.name, got, want)
        else:
            assert abs(got - want) <= dt.timedelta(microseconds=1), (field.name, got, want)


def recount_opted_out(session: Session, filters: FunnelFilter) -> dict[str | None, int]:
    """Recipients who reached replied and one of whose replies is the opt-out word their
    number is listed with by the webhook, by tag: the webhook's own test of a reply."""
    by_reply = select(OptOut.phone_number, OptOut.keyword).where(OptOut.source == "webhook")
    listed = {phone: keyword for phone, keyword in session.execute(by_reply)}
    query = (
        select(BlastRecipient.id, BlastRecipient.phone_number, Blast.blast_tag, RecipientReply.text)
        .join(Blast)
        .join(RecipientReply, RecipientReply.recipient_id == BlastRecipient.id)
        .where(status_rank() >= Stage.REPLIED.min_rank)
    )
    opted_out = {}
    for recipient_id, phone, tag, text in session.execute(apply_filter(query, filters)):
        if phone in listed and opt_out_keyword(text, words=[listed[phone]]) == listed[phone]:
            opted_out[recipient_id] = tag
    return {tag: list(opted_out.values()).count(tag) for tag in set(opted_out.values())}


def recount_tags(session: Session, filters: FunnelFilter) -> pd.DataFrame:
    rank = status_rank()
    stages = (Stage.SENT, Stage.READ, Stage.REPLIED, Stage.CLOSED)
    query = (
        select(Blast.blast_tag, *(func.sum(case((rank >= s.min_rank, 1), else_=0)) for s in stages))
        .select_from(BlastRecipient)
        .join(Blast)
        .group_by(Blast.blast_tag)
    )
    opted_out = recount_opted_out(session, filters)
    records = []
    for tag, sent, read, replied, closed in session.execute(apply_filter(query, filters)):
        out = opted_out.get(tag, 0)
        record = {"tag": tag or "(no tag)", "sent": sent, "opted_out": out}
        # An opt-out is a reply in the funnel, but no success for a tag.
        for name, n in (("read", read), ("replied", replied - out), ("closed", closed), ("opted_out", out)):
            low, high = wilson_interval(n, sent)
            record[f"{name}_rate"] = 100.0 * n / sent if sent else 0.0
            record[f"{name}_low"], record[f"{name}_high"] = 100.0 * low, 100.0 * high
        records.append(record)
    return pd.DataFrame.from_records(records)


STATUS_WEIGHTS = {"QUEUED": 2, "FAILED": 2, "UNKNOWN": 1, "PENDING": 2, "SERVER_ACK": 3, "DELIVERY_ACK": 6,
                  "READ_ACK": 8, "REPLIED": 4, "CLOSED": 2}


def _varied_recipient(rng: random.Random, start: dt.datetime) -> dict[str, Any]:
    """A recipient whose timestamps fit its status, with the odd cases the data has: replies with
    read receipts off, a clock that put a read before the send, sales closed by hand before any
    send was recorded, whole seconds."""
    status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
    rank = RANK[Status(status)]
    fraction = rng.choice([0, rng.randint(1, 999_999)])
    sent = start + dt.timedelta(seconds=rng.randint(0, 40_000), microseconds=fraction)
    fields: dict[str, Any] = {"status": status}
    if rank >= 1 and not (status == "CLOSED" and rng.random() < 0.1):
        fields["sent_at"] = sent
    if status == "FAILED" and rng.random() < 0.5:  # the gateway took it, then reported an error
        fields["sent_at"] = sent
    if rank >= 4:
        after = dt.timedelta(seconds=rng.randint(-120, 200_000), microseconds=rng.randint(0, 999_999))
        if rank == 4 or rng.random() < 0.8:
            fields["read_timestamp"] = sent + after
    if rank >= 5:
        after = dt.timedelta(seconds=rng.randint(30, 300_000), microseconds=rng.randint(0, 999_999))
        fields["replied_at"] = sent + after
    return fields


@pytest.fixture
def varied(engine: Engine) -> Engine:
    """Forty blasts over two months of mixed tags (one untagged) and follow-up stages, each
    sent across local midnight now and then; one blast's recipients deleted again. On
    PostgreSQL the rollups then hold folded counts and, for some reads that came later, deltas."""
    rng = random.Random(2026)
    with transaction(engine) as s:
        for i in range(40):
            start = dt.datetime(2026, 1, 1, 10, tzinfo=UTC) + dt.timedelta(hours=rng.randint(0, 24 * 60))
            blast = make_blast(s, blast_tag=rng.choice(["Raya", "CNY", "Flash Sale", "Merdeka", None]),
                               follow_up_stage=rng.choice(["Initial", "Follow-up 1", "Follow-up 2"]),
                               blast_date=start)
            recipients = [make_recipient(s, blast, **_varied_recipient(rng, start))
                          for _ in range(rng.randint(0, 25))]
            if i == 7:
                for recipient in recipients:
                    s.delete(recipient)
    with transaction(engine) as s:
        fold_rollup_deltas(s)
    with transaction(engine) as s:
        delivered = select(BlastRecipient).where(BlastRecipient.status == "DELIVERY_ACK")
        for recipient in s.scalars(delivered.order_by(BlastRecipient.id).limit(15)):
            recipient.status = "READ_ACK"
            recipient.read_timestamp = recipient.sent_at + dt.timedelta(minutes=5)
        _varied_replies(s, rng)
    return engine


# Opt-out words written loosely, and replies that only look like one.
REPLY_TEXTS = ["Berapa harga?", "STOP", "stop!!", "Berhenti 🙏", "Tak-nak", "Nak 2 kotak", "Stop sending pls"]


def _varied_replies(session: Session, rng: random.Random) -> None:
    """A reply for everyone who replied, and their numbers listed as the webhook lists an opt-out
    reply; now and then a number listed by hand, or by a STOP that answered no message of ours."""
    answered = select(BlastRecipient).where(BlastRecipient.status.in_(["REPLIED", "CLOSED"]))
    for i, recipient in enumerate(session.scalars(answered.order_by(BlastRecipient.id))):
        text = rng.choice(REPLY_TEXTS)
        session.add(RecipientReply(recipient_id=recipient.id, replied_at=recipient.replied_at, text=text))
        if keyword := opt_out_keyword(text, words=DEFAULT_OPT_OUT_WORDS):
            session.add(OptOut(phone_number=recipient.phone_number, source="webhook", keyword=keyword))
        elif i % 4 == 0:
            session.add(OptOut(phone_number=recipient.phone_number, source=rng.choice(["manual", "webhook"]),
                               keyword="STOP"))


FILTERS = [
    FunnelFilter(),
    FunnelFilter(timezone="America/New_York"),
    FunnelFilter(start=dt.date(2026, 1, 10), end=dt.date(2026, 2, 5)),
    FunnelFilter(tags=("Raya", "CNY")),
    FunnelFilter(follow_up_stages=("Follow-up 1",)),
    FunnelFilter(start=dt.date(2026, 1, 20), tags=("Flash Sale",),
                 follow_up_stages=("Initial", "Follow-up 2")),
    FunnelFilter(blast_ids=(3, 5, 8)),
    FunnelFilter(tags=("No such tag",)),
]


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
def test_fast_paths_equal_a_recount(varied: Engine, filters: FunnelFilter) -> None:
    with transaction(varied) as s:
        trend, expected_trend = daily_trend(s, filters=filters), recount_daily_trend(s, filters)
        activity, expected_activity = activity_by_hour(s, filters=filters), recount_activity(s, filters)
        times = response_times(s, filters=filters)
        expected_times = recount_response_times(s, filters, RESPONSE_SAMPLE)
        tags, expected_tags = tag_comparison(s, filters=filters), recount_tags(s, filters)
    assert trend.empty == expected_trend.empty
    if not trend.empty:
        pd.testing.assert_frame_equal(trend, expected_trend)
    assert activity.empty == expected_activity.empty
    if not activity.empty:
        pd.testing.assert_frame_equal(activity, expected_activity)
    assert_response_times_match(times, expected_times)
    assert tags.empty == expected_tags.empty
    if not tags.empty:
        by_tag = lambda frame: frame.sort_values("tag").reset_index(drop=True)  # noqa: E731
        pd.testing.assert_frame_equal(by_tag(tags), by_tag(expected_tags))
    if filters == FunnelFilter():
        assert not trend.empty and not activity.empty and times.reply_p90 is not None, "a test that can fail"
        assert tags["opted_out"].sum() > 0 and tags["replied_rate"].sum() > 0, "opt-outs and other replies"


def test_fast_paths_see_a_change_at_once(varied: Engine) -> None:
    with transaction(varied) as s:
        blast = make_blast(s, blast_tag="Brand new")
        make_recipient(s, blast, status="REPLIED", sent_at=t(3, 1), read_timestamp=t(3, 2),
                       replied_at=t(3, 3))
    with transaction(varied) as s:
        tags = tag_comparison(s, filters=FunnelFilter()).set_index("tag")
        trend = daily_trend(s, filters=FunnelFilter(tags=("Brand new",)))
    assert tags.loc["Brand new", "replied_rate"] == 100.0
    assert list(trend["sent"]) == [1]


@pytest.mark.parametrize("sample", [1, 7, 40])
def test_response_times_sample_the_most_recent_like_a_recount(
    varied: Engine, sample: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analytics, "RESPONSE_SAMPLE", sample)
    for filters in (FunnelFilter(), FunnelFilter(tags=("Raya",))):
        with transaction(varied) as s:
            times = response_times(s, filters=filters)
            assert_response_times_match(times, recount_response_times(s, filters, sample))
    assert times.sampled
