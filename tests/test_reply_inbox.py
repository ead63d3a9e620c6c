"""The replies inbox: who wrote back across all blasts, newest first, filtered and paged."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from core.db import transaction
from core.models import Blast, BlastRecipient, RecipientReply, utcnow
from core.recipients import mark_closed
from core.reply_inbox import InboxFilter, default_since, inbox_page, unmatched_messages, who_replied
from core.webhook.inbox import WebhookRules, process_entry, store_raw
from core.webhook.replies import no_blast_note, no_blast_numbers
from tests.support.factories import make_blast, make_recipient

KL = "Asia/Kuala_Lumpur"
SINCE = dt.date(2026, 3, 2)
# Midnight starting 2 March in Kuala Lumpur (UTC+8), in UTC.
MIDNIGHT = dt.datetime(2026, 3, 1, 16, 0, tzinfo=dt.UTC)


def _replied(
    session: Session, blast: Blast, *said: tuple[dt.datetime, str], **fields: object
) -> BlastRecipient:
    """A recipient who wrote back, each reply kept as the webhook keeps it."""
    fields.setdefault("status", "REPLIED")
    person = make_recipient(session, blast, replied_at=said[0][0], reply_text=said[0][1], **fields)
    session.add_all(RecipientReply(recipient_id=person.id, replied_at=at, text=text) for at, text in said)
    session.flush()
    return person


def _inbox(engine: Engine, **filters: object):  # type: ignore[no-untyped-def]
    page = filters.pop("page", 1)
    page_size = filters.pop("page_size", 50)
    filters.setdefault("since", SINCE)
    with transaction(engine) as s:
        return inbox_page(s, filters=InboxFilter(timezone=KL, **filters), page=page, page_size=page_size)


def test_one_row_per_person_newest_reply_first_with_their_latest_words(engine: Engine) -> None:
    with transaction(engine) as s:
        raya = make_blast(s, name="Raya promo")
        cny = make_blast(s, name="CNY promo")
        early = _replied(s, raya, (MIDNIGHT + dt.timedelta(hours=1), "Berapa harga?"))
        chatty = _replied(s, raya, (MIDNIGHT + dt.timedelta(hours=2), "Ok"),
                          (MIDNIGHT + dt.timedelta(hours=9), "2 boxes please, to Shah Alam"))
        middle = _replied(s, cny, (MIDNIGHT + dt.timedelta(hours=5), "Ada stok?"))
        make_recipient(s, cny, status="READ_ACK")  # read, never wrote back
        ids = [chatty.id, middle.id, early.id]
        cny_id = cny.id
    found = _inbox(engine)
    assert [r.recipient_id for r in found.rows] == ids
    first = found.rows[0]
    assert (first.last_reply, first.replies) == ("2 boxes please, to Shah Alam", 2)
    assert first.last_reply_at == MIDNIGHT + dt.timedelta(hours=9)
    assert (first.blast_name, found.rows[1].blast_name, found.rows[1].blast_id) == (
        "Raya promo", "CNY promo", cny_id)
    assert (found.total, found.replied, found.to_follow_up, found.pages) == (3, 3, 3, 1)


def test_the_window_starts_at_midnight_in_the_teams_time_zone(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s)
        on_the_edge = _replied(s, blast, (MIDNIGHT, "Just in"))
        _replied(s, blast, (MIDNIGHT - dt.timedelta(seconds=1), "Just too early"))
        # Wrote before the window and again inside it: in, with everything they sent counted.
        back = _replied(s, blast, (MIDNIGHT - dt.timedelta(days=3), "Hi"),
                        (MIDNIGHT + dt.timedelta(minutes=5), "Still available?"))
        ids = [back.id, on_the_edge.id]
    found = _inbox(engine)
    assert [r.recipient_id for r in found.rows] == ids
    assert (found.rows[0].last_reply, found.rows[0].replies) == ("Still available?", 2)
    assert _inbox(engine, since=SINCE - dt.timedelta(days=1)).total == 3


def test_the_default_window_is_the_last_seven_days_today_included() -> None:
    # 17:00 UTC on 2 March is already 3 March in Kuala Lumpur.
    now = dt.datetime(2026, 3, 2, 17, 0, tzinfo=dt.UTC)
    assert default_since(timezone=KL, now=now) == dt.date(2026, 2, 25)
    assert default_since(timezone="UTC", now=now) == dt.date(2026, 2, 24)


def test_only_the_tags_picked(engine: Engine) -> None:
    with transaction(engine) as s:
        raya = _replied(s, make_blast(s, blast_tag="Raya"), (MIDNIGHT, "Raya?"))
        cny = _replied(s, make_blast(s, blast_tag="CNY"), (MIDNIGHT, "CNY?"))
        _replied(s, make_blast(s, blast_tag=None), (MIDNIGHT, "No tag"))
    assert [r.recipient_id for r in _inbox(engine, tags=("Raya",)).rows] == [raya.id]
    assert {r.recipient_id for r in _inbox(engine, tags=("Raya", "CNY")).rows} == {raya.id, cny.id}
    assert _inbox(engine).total == 3


def test_only_those_not_closed_yet_and_both_counts(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s)
        open_one = _replied(s, blast, (MIDNIGHT, "Interested"))
        sold = _replied(s, blast, (MIDNIGHT + dt.timedelta(hours=1), "I'll take it"))
        mark_closed(s, recipient_ids=[sold.id])
    found = _inbox(engine)
    assert [r.recipient_id for r in found.rows] == [open_one.id]
    assert (found.total, found.replied, found.to_follow_up) == (1, 2, 1)
    everyone = _inbox(engine, only_open=False)
    assert [(r.recipient_id, r.status) for r in everyone.rows] == [
        (sold.id, "CLOSED"), (open_one.id, "REPLIED")]
    assert (everyone.total, everyone.replied, everyone.to_follow_up) == (2, 2, 1)


def test_a_buyer_whose_sale_is_recorded_on_another_blast_of_the_campaign_is_no_lead(engine: Engine) -> None:
    """One sale a person a campaign (`closed_under_its_tag`): closed on the follow-up, their
    reply to the first blast is not to follow up any more, nor counted as waiting."""
    buyer, other = "+60123456781", "+60123456782"
    with transaction(engine) as s:
        raya = make_blast(s, name="Raya promo", blast_tag="Raya")
        again = make_blast(s, name="Raya promo, follow-up", blast_tag="Raya", parent_blast_id=raya.id,
                           follow_up_stage="Follow-up 1")
        first = _replied(s, raya, (MIDNIGHT, "Berapa?"), phone_number=buyer)
        sold = _replied(s, again, (MIDNIGHT + dt.timedelta(hours=5), "Ok nak 2"), phone_number=buyer)
        lead = _replied(s, raya, (MIDNIGHT + dt.timedelta(hours=1), "Ada stok?"), phone_number=other)
        mark_closed(s, recipient_ids=[sold.id])
        # Another campaign's reply from the buyer is a lead of its own.
        cny = make_blast(s, name="CNY promo", blast_tag="CNY")
        elsewhere = _replied(s, cny, (MIDNIGHT + dt.timedelta(hours=2), "CNY set?"), phone_number=buyer)
        again_id = again.id
    found = _inbox(engine)
    assert [r.recipient_id for r in found.rows] == [elsewhere.id, lead.id]
    assert (found.total, found.replied, found.to_follow_up) == (2, 2, 2)
    with transaction(engine) as s:
        assert who_replied(s, filters=InboxFilter(since=SINCE, timezone=KL)) == (2, 2)
    everyone = {r.recipient_id: r for r in _inbox(engine, only_open=False).rows}
    assert (everyone[first.id].status, everyone[first.id].sale_on) == ("REPLIED", again_id)
    assert everyone[elsewhere.id].sale_on is None and everyone[sold.id].status == "CLOSED"


def test_the_same_tag_a_campaign_apart_or_in_practice_is_another_campaign(engine: Engine) -> None:
    """As `closed_under_its_tag` says: a tag used again after CAMPAIGN_SPAN, or a practice
    blast's sale against one sent to WhatsApp, is no sale of this campaign."""
    from core.config import PRACTICE_DEVICES
    from core.recipients import CAMPAIGN_SPAN

    buyer = "+60123456781"
    with transaction(engine) as s:
        now = utcnow()
        last_year = make_blast(s, name="Year end", blast_tag="Year End",
                               created_at=now - CAMPAIGN_SPAN - dt.timedelta(days=1))
        practice = make_blast(s, name="Year end, tried", blast_tag="Year End",
                              device=sorted(PRACTICE_DEVICES)[0], created_at=now)
        this_year = make_blast(s, name="Year end", blast_tag="Year End", created_at=now)
        for old in (last_year, practice):
            mark_closed(s, recipient_ids=[_replied(s, old, (MIDNIGHT, "Beli"), phone_number=buyer).id])
        lead = _replied(s, this_year, (MIDNIGHT + dt.timedelta(hours=1), "Ada lagi?"), phone_number=buyer)
    found = _inbox(engine)
    assert [(r.recipient_id, r.sale_on) for r in found.rows] == [(lead.id, None)]
    assert found.to_follow_up == 1


@pytest.mark.parametrize("apart", [
    dt.timedelta(days=31) - dt.timedelta(milliseconds=300),  # inside, by a fraction of a second
    dt.timedelta(days=31) + dt.timedelta(milliseconds=300),  # outside
])
def test_the_list_and_recording_a_sale_draw_the_campaign_at_the_same_edge(
    engine: Engine, apart: dt.timedelta
) -> None:
    """The list's "Sale on #N" and the refusal to record a second sale are one rule: a row the
    list offers to close is closed, one it says is sold elsewhere is refused."""
    from core.recipients import closed_under_its_tag

    buyer = "+60123456781"
    made = dt.datetime(2026, 3, 2, 10, 0, 0, 400_000, tzinfo=dt.UTC)
    with transaction(engine) as s:
        first = make_blast(s, blast_tag="Raya", created_at=made)
        later = make_blast(s, blast_tag="Raya", created_at=made + apart)
        mark_closed(s, recipient_ids=[_replied(s, first, (MIDNIGHT, "Beli"), phone_number=buyer).id])
        lead = _replied(s, later, (MIDNIGHT + dt.timedelta(hours=1), "Ada lagi?"), phone_number=buyer)
        refused_by = closed_under_its_tag(s, lead)
        first_id = first.id
    [row] = [r for r in _inbox(engine, only_open=False).rows if r.recipient_id == lead.id]
    inside = apart < dt.timedelta(days=31)
    assert (row.sale_on, refused_by) == ((first_id, first_id) if inside else (None, None))


def test_rows_read_again_show_a_sale_recorded_since_on_another_blast(engine: Engine) -> None:
    """The rows ticked on the page are read again before an action: a sale recorded on the other
    blast meanwhile (another tab) shows there, and the row's close button goes."""
    from core.reply_inbox import as_they_stand

    buyer = "+60123456781"
    with transaction(engine) as s:
        first = make_blast(s, blast_tag="Raya")
        again = make_blast(s, blast_tag="Raya", parent_blast_id=first.id, follow_up_stage="Follow-up 1")
        _replied(s, first, (MIDNIGHT, "Berapa?"), phone_number=buyer)
        sold = _replied(s, again, (MIDNIGHT + dt.timedelta(hours=1), "Ok"), phone_number=buyer)
        sold_id, first_id = sold.id, first.id
    shown = _inbox(engine).rows
    with transaction(engine) as s:
        mark_closed(s, recipient_ids=[sold_id])
    with transaction(engine) as s:
        now = {r.recipient_id: r for r in as_they_stand(s, shown)}
    assert now[sold_id].status == "CLOSED"
    assert [r.sale_on for r in now.values() if r.recipient_id != sold_id] == [again.id]
    assert first_id != again.id


def test_blasts_without_a_tag_are_no_campaign(engine: Engine) -> None:
    """An empty tag (the command line's `--tag ""`) is no tag: no sale elsewhere, as recording
    a sale says."""
    from core.recipients import closed_under_its_tag

    buyer = "+60123456781"
    with transaction(engine) as s:
        first, second = make_blast(s, blast_tag=""), make_blast(s, blast_tag="")
        mark_closed(s, recipient_ids=[_replied(s, first, (MIDNIGHT, "Beli"), phone_number=buyer).id])
        lead = _replied(s, second, (MIDNIGHT + dt.timedelta(hours=1), "Lagi"), phone_number=buyer)
        assert closed_under_its_tag(s, lead) is None
    assert [(r.recipient_id, r.sale_on) for r in _inbox(engine).rows] == [(lead.id, None)]


def test_someone_who_answered_a_blast_and_its_follow_up_is_one_person_listed_twice(engine: Engine) -> None:
    """The list has a row for each message they answered; the counts say how many people."""
    with transaction(engine) as s:
        raya = make_blast(s, name="Raya promo")
        again = make_blast(s, name="Raya promo, follow-up", parent_blast_id=raya.id,
                           follow_up_stage="Follow-up 1")
        _replied(s, raya, (MIDNIGHT, "Berapa?"), phone_number="+60123456781")
        _replied(s, again, (MIDNIGHT + dt.timedelta(hours=5), "Ok nak 2"), phone_number="+60123456781")
        _replied(s, raya, (MIDNIGHT + dt.timedelta(hours=1), "Ada stok?"), phone_number="+60123456782")
    found = _inbox(engine)
    assert (found.total, found.replied, found.to_follow_up) == (3, 2, 2)
    with transaction(engine) as s:
        assert who_replied(s, filters=InboxFilter(since=SINCE, timezone=KL)) == (2, 2)


def test_someone_who_asked_to_stop_is_no_one_to_follow_up(engine: Engine) -> None:
    from core.opt_outs import add_opt_outs

    with transaction(engine) as s:
        blast = make_blast(s)
        lead = _replied(s, blast, (MIDNIGHT, "Interested"))
        stopped = _replied(s, blast, (MIDNIGHT + dt.timedelta(hours=1), "STOP"))
        add_opt_outs(s, [stopped.phone_number], source="webhook", keyword="STOP")
    found = _inbox(engine)
    assert [r.recipient_id for r in found.rows] == [lead.id]
    assert (found.total, found.replied, found.to_follow_up) == (1, 2, 1)
    everyone = _inbox(engine, only_open=False)
    assert [(r.recipient_id, r.opted_out) for r in everyone.rows] == [(stopped.id, True), (lead.id, False)]


def test_search_finds_a_later_reply_a_name_or_a_number(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s)
        later = _replied(s, blast, (MIDNIGHT, "Ok"),
                         (MIDNIGHT + dt.timedelta(minutes=3), "Send to Shah Alam"))
        named = _replied(s, blast, (MIDNIGHT, "Yes"), contact_name="Aisyah binti Ali",
                         phone_number="+60199998888")
        _replied(s, blast, (MIDNIGHT, "100% sure"))
    assert [r.recipient_id for r in _inbox(engine, search="shah alam").rows] == [later.id]
    assert [r.recipient_id for r in _inbox(engine, search="aisyah").rows] == [named.id]
    assert [r.recipient_id for r in _inbox(engine, search="99998888").rows] == [named.id]
    assert _inbox(engine, search="0%").total == 1, "a % typed is searched for as written"
    found = _inbox(engine, search="nobody wrote this")
    assert (found.rows, found.total, found.replied) == ([], 0, 0)


def test_pages_of_people_with_the_total(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s)
        people = [_replied(s, blast, (MIDNIGHT + dt.timedelta(minutes=i), f"Reply {i}")) for i in range(5)]
        newest_first = [p.id for p in reversed(people)]
    pages = [_inbox(engine, page=n, page_size=2) for n in (1, 2, 3)]
    assert [[r.recipient_id for r in p.rows] for p in pages] == [newest_first[:2], newest_first[2:4],
                                                                  newest_first[4:]]
    assert {(p.total, p.pages) for p in pages} == {(5, 3)}
    past_the_end = _inbox(engine, page=9, page_size=2)
    assert (past_the_end.page, [r.recipient_id for r in past_the_end.rows]) == (3, newest_first[4:])


def test_everyone_on_one_page_for_a_download(engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Replies are looked up a few ids at a time (SQLite takes only so many in one statement):
    # here 3, so that seven people cross two chunk boundaries.
    monkeypatch.setattr("core.reply_inbox._IDS_PER_LOOKUP", 3)
    with transaction(engine) as s:
        blast = make_blast(s)
        people = [_replied(s, blast, (MIDNIGHT + dt.timedelta(minutes=i), f"Reply {i}"),
                           (MIDNIGHT + dt.timedelta(hours=1, minutes=i), f"Later {i}")) for i in range(7)]
        newest_first = [p.id for p in reversed(people)]
    everyone = _inbox(engine, page_size=None)
    assert [r.recipient_id for r in everyone.rows] == newest_first
    latest = [(r.last_reply, r.replies) for r in everyone.rows]
    assert latest == [(f"Later {i}", 2) for i in reversed(range(7))]
    assert (everyone.total, everyone.page, everyone.pages) == (7, 1, 1)


def test_the_window_is_read_through_the_index_on_reply_times(engine: Engine) -> None:
    """Not the whole replies table on every visit (a million recipients' worth)."""
    with transaction(engine) as s:
        _replied(s, make_blast(s), (MIDNIGHT, "Hi"))
    statements: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        _inbox(engine)
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    statement, parameters = next((q, p) for q, p in statements if "recipient_replies" in q)
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # a table this small is read whole otherwise
            plan = conn.exec_driver_sql("EXPLAIN " + statement, parameters).all()
        else:
            plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    assert "idx_recipient_replies_replied_at" in " ".join(map(str, plan))


# --- messages no blast explains -----------------------------------------------------------


def _person_says(phone_digits: str, text: str, at: dt.datetime) -> dict:
    return {"type": "text", "message": text, "from": f"{phone_digits}@c.us", "timestamp": int(at.timestamp())}


def _arrives(engine: Engine, payload: object) -> str:
    """A body stored and applied as the webhook does; its inbox state."""
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(payload).encode(), content_type="application/json")
    with transaction(engine) as s:
        outcome = process_entry(s, inbox_id=inbox_id, rules=WebhookRules())
    assert outcome is not None
    return outcome.state


def test_once_live_a_reply_answers_the_real_message_not_a_later_practice_one(engine: Engine) -> None:
    """The list tried out in practice mode after a real send: a customer's answer is to the
    message that reached their phone. Had it gone to the practice row, the live Overview and
    Replies, which leave practice out, would have lost the lead. In practice mode the newest
    message still takes it, as the sandbox's replies answer its own."""
    from core.config import Settings

    phone, now = "+60123456789", utcnow()
    with transaction(engine) as s:
        live = make_blast(s, blast_tag="Raya", state="completed", device="5850")
        practice = make_blast(s, blast_tag="Raya", state="completed", device="sandbox")
        real = make_recipient(s, live, phone_number=phone, status="DELIVERY_ACK",
                              sent_at=now - dt.timedelta(hours=3)).id
        tried = make_recipient(s, practice, phone_number=phone, status="DELIVERY_ACK",
                               sent_at=now - dt.timedelta(hours=1)).id
    live_rules = WebhookRules.from_settings(
        Settings(_env_file=None, wsapme_token="t0ken", wsapme_device="5850"))
    assert live_rules.leave_out_practice
    assert not WebhookRules.from_settings(Settings(_env_file=None, wsapme_token=None)).leave_out_practice
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(_person_says(phone[1:], "Nak order 2 kotak", now)).encode(),
                             content_type="application/json")
    with transaction(engine) as s:
        process_entry(s, inbox_id=inbox_id, rules=live_rules)
    with transaction(engine) as s:
        assert (s.get(BlastRecipient, real).status, s.get(BlastRecipient, tried).status) == (
            "REPLIED", "DELIVERY_ACK")
        reply = s.scalars(select(RecipientReply)).one()
        assert reply.recipient_id == real


def test_in_practice_mode_a_reply_answers_the_newest_message_practice_or_not(engine: Engine) -> None:
    phone, now = "+60123456789", utcnow()
    with transaction(engine) as s:
        live = make_blast(s, state="completed", device="5850")
        practice = make_blast(s, state="completed", device="sandbox")
        real = make_recipient(s, live, phone_number=phone, status="DELIVERY_ACK",
                              sent_at=now - dt.timedelta(hours=3)).id
        tried = make_recipient(s, practice, phone_number=phone, status="DELIVERY_ACK",
                               sent_at=now - dt.timedelta(hours=1)).id
    assert _arrives(engine, _person_says(phone[1:], "Ok", now)) == "applied"
    with transaction(engine) as s:
        assert (s.get(BlastRecipient, real).status, s.get(BlastRecipient, tried).status) == (
            "DELIVERY_ACK", "REPLIED")


def _unmatched(engine: Engine, *, search: str | None = None) -> list[tuple[str, str]]:
    since = (utcnow() - dt.timedelta(days=1)).date()
    with transaction(engine) as s:
        found = unmatched_messages(s, filters=InboxFilter(since=since, timezone="UTC", search=search))
    return [(m.phone_number, m.text) for m in found]


def _messaged(engine: Engine, phone: str, *, message_id: str) -> None:
    with transaction(engine) as s:
        make_recipient(s, make_blast(s, state="completed"), phone_number=phone, message_id=message_id,
                       status="PENDING", sent_at=utcnow() - dt.timedelta(hours=1))


def test_a_strangers_message_in_the_same_body_as_a_receipt_is_listed(engine: Engine) -> None:
    """A new lead must not vanish because the gateway posted a receipt with it."""
    now = utcnow()
    _messaged(engine, "+60120000001", message_id="MID1")
    assert _arrives(engine, _person_says("60199999999", "Hi, how much is the promo?", now)) == "ignored"
    together = [{"id": "MID1", "status": "DELIVERY_ACK"}, _person_says("60188888888", "Ada stok?", now)]
    assert _arrives(engine, together) == "applied"
    assert _unmatched(engine) == [("+60188888888", "Ada stok?"),
                                  ("+60199999999", "Hi, how much is the promo?")]
    assert _unmatched(engine, search="stok") == [("+60188888888", "Ada stok?")]
    # A number, as a marketer types one when the person calls: the search had failed the page.
    assert _unmatched(engine, search="018-888 8888") == [("+60188888888", "Ada stok?")]
    assert _unmatched(engine, search="0199999999") == [("+60199999999", "Hi, how much is the promo?")]


def test_of_several_messages_in_one_body_only_those_no_blast_explains_are_listed(engine: Engine) -> None:
    """A reply to our blast is on the list of replies; a stop is no lead; the stranger beside
    them is one."""
    now = utcnow()
    _messaged(engine, "+60120000001", message_id="MID1")
    body = [_person_says("60120000001", "Yes please", now), _person_says("60199999999", "Price?", now),
            _person_says("60177777777", "STOP", now), {"id": "MID1", "status": "READ"}]
    _arrives(engine, body)
    _arrives(engine, body[:3])  # the same messages without the receipt: kind "message"
    assert _unmatched(engine) == [("+60199999999", "Price?")] * 2


@pytest.mark.parametrize(
    ("detail", "numbers"),
    [
        (no_blast_note("+60199999999", window=dt.timedelta(hours=72)), {"+60199999999"}),
        (no_blast_note("+60199999999", window=dt.timedelta(hours=72), opt_out="TAK NAK"), set()),
        ("gave up after 60 min: " + no_blast_note("+60111", window=dt.timedelta(hours=1.5)), {"+60111"}),
        ("reply from +60122 (opt-out STOP): READ_ACK → REPLIED; "
         + no_blast_note("+60133", window=dt.timedelta(hours=72)), {"+60133"}),
        ("3EB0A DELIVERY_ACK: PENDING → DELIVERY_ACK; "
         + no_blast_note("+60144", window=dt.timedelta(hours=72), opt_out="STOP") + "; "
         + no_blast_note("+60155", window=dt.timedelta(hours=72)), {"+60155"}),
        ("not a reply: a group message", set()),
        (None, set()),
    ],
)
def test_the_note_the_inbox_writes_is_the_one_the_replies_page_reads(
    detail: str | None, numbers: set[str]
) -> None:
    assert no_blast_numbers(detail) == numbers


def test_messages_no_blast_explains_are_read_through_indexes_not_the_whole_inbox(engine: Engine) -> None:
    """The Replies page asks on every visit; the inbox holds every receipt ever."""
    _messaged(engine, "+60120000001", message_id="MID1")
    _arrives(engine, [{"id": "MID1", "status": "READ"}, _person_says("60188888888", "Hi", utcnow())])
    statements: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert _unmatched(engine) == [("+60188888888", "Hi")]
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    asked = [(q, p) for q, p in statements if "webhook_inbox" in q]
    assert len(asked) == 1, "the bodies of messages, alone or with receipts, in one read"
    explain = "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")  # a table this small is read whole otherwise
        plans = [" ".join(str(row) for row in conn.exec_driver_sql(explain + q, p)) for q, p in asked]
    [plan] = plans
    assert "Seq Scan" not in plan and "SCAN webhook_inbox" not in plan
    assert "idx_webhook_inbox_messages" in plan
