"""Recipients by stage, search, closing sales by hand, and deciding about unknown sends."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import Engine, select

from core.db import transaction
from core.errors import BadInput
from core.followups import (
    Audience,
    chain_funnels,
    chain_ids,
    create_follow_up,
    follow_up_audience,
    next_stage_name,
)
from core.models import Blast, BlastRecipient, OptOut, StatusHistory, utcnow
from core.recipients import (
    SELECTIONS,
    Resent,
    StageSelector,
    history,
    mark_closed,
    mark_failed,
    not_sent,
    page_of_recipients,
    resend,
)
from core.status_engine import apply_status
from core.statuses import Stage, Status
from core.webhook.inbox import WebhookRules, process_entry, store_raw
from tests.support.factories import make_blast, make_recipient

STATUSES = ["QUEUED", "PENDING", "DELIVERY_ACK", "READ_ACK", "READ_ACK", "REPLIED", "CLOSED",
            "FAILED", "UNKNOWN"]


def _blast(engine: Engine) -> int:
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag="Raya", follow_up_stage="Initial", name="Raya")
        for i, status in enumerate(STATUSES):
            make_recipient(s, blast, status=status, contact_name=f"Person {i}",
                           read_timestamp=utcnow() - dt.timedelta(hours=i) if status == "READ_ACK" else None)
        return blast.id


@pytest.mark.parametrize(("selection", "count"), [
    ("Everyone", 9), ("Sent", 6), ("Sent, not received", 1), ("Received", 5),
    ("Received, not read", 1), ("Read", 4), ("Read, no reply", 2), ("Replied", 2),
    ("Replied, not closed", 1), ("Closed", 1), ("Failed", 1), ("Unknown", 1),
    ("Not sent yet", 1), ("Sent, no reply", 4),
])
def test_selections(engine: Engine, selection: str, count: int) -> None:
    blast_id = _blast(engine)
    with transaction(engine) as s:
        rows, total = page_of_recipients(s, blast_id=blast_id, selection=selection, page_size=3)
    assert total == count
    assert len(rows) == min(3, count)


@pytest.mark.parametrize(("region", "typed", "stored"), [
    ("ID", "0812-3456-7890", "+6281234567890"),
    ("PH", "0917 123 4567", "+639171234567"),
    ("MY", "012-345 6789", "+60123456789"),
])
def test_a_local_number_is_found_in_the_configured_region(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, region: str, typed: str, stored: str
) -> None:
    """Its digits are not in the stored number outside Malaysia ("081234567890" is not in
    +6281234567890): the whole number typed is matched too."""
    from core.config import get_settings

    monkeypatch.setenv("PHONE_REGION", region)
    get_settings.cache_clear()
    try:
        with transaction(engine) as s:
            blast = make_blast(s)
            make_recipient(s, blast, phone_number=stored, contact_name="Found")
            make_recipient(s, blast, phone_number="+60198765432", contact_name="Other")
            rows, total = page_of_recipients(s, blast_id=blast.id, search=typed)
    finally:
        get_settings.cache_clear()
    assert (total, [r.contact_name for r in rows]) == (1, ["Found"])


def test_search_by_name_or_number_and_pages(engine: Engine) -> None:
    blast_id = _blast(engine)
    with transaction(engine) as s:
        rows, total = page_of_recipients(s, blast_id=blast_id, search="person 3")
        assert total == 1 and rows[0].contact_name == "Person 3"
        page2, total = page_of_recipients(s, blast_id=blast_id, page=2, page_size=4)
        assert total == 9 and len(page2) == 4


@pytest.mark.parametrize("typed", ["012-345 6789", "012 345 6789", "+60 12-345 6789", "(012) 3456789",
                                   "60123456789", "3456789"])
def test_a_number_is_found_however_it_is_typed(engine: Engine, typed: str) -> None:
    with transaction(engine) as s:
        blast = make_blast(s)
        make_recipient(s, blast, phone_number="+60123456789", contact_name="Aisyah")
        make_recipient(s, blast, phone_number="+60198765432", contact_name="Ben")
        rows, total = page_of_recipients(s, blast_id=blast.id, search=typed)
    assert (total, [r.contact_name for r in rows]) == (1, ["Aisyah"])


def test_mark_closed_records_a_manual_change_once(engine: Engine) -> None:
    blast_id = _blast(engine)
    with transaction(engine) as s:
        ids = s.scalars(select(BlastRecipient.id).where(BlastRecipient.blast_id == blast_id,
                                                        BlastRecipient.status == "REPLIED")).all()
        changes = mark_closed(s, recipient_ids=[*ids, *ids], note="paid RM120").changes
    assert [c.changed for c in changes] == [True, False]
    with transaction(engine) as s:
        history = s.scalars(select(StatusHistory).where(StatusHistory.recipient_id == ids[0])).all()
        assert [(h.new_status, h.source, h.event["note"]) for h in history] == [
            ("CLOSED", "manual", "paid RM120")
        ]


def test_a_sale_is_never_recorded_against_a_message_that_did_not_go_out(engine: Engine) -> None:
    """Closing a queued row would take it out of the queue unsent; a failed one never arrived.
    An unknown send may have gone, and a sale is evidence that it did."""
    with transaction(engine) as s:
        blast = make_blast(s, state="sending")
        ids = {status: make_recipient(s, blast, status=status).id
               for status in ("QUEUED", "SENDING", "FAILED", "UNKNOWN", "READ_ACK")}
    with transaction(engine) as s:
        assert sorted(not_sent(s, recipient_ids=list(ids.values()))) == sorted(
            ids[k] for k in ("QUEUED", "SENDING", "FAILED"))
        sales = mark_closed(s, recipient_ids=list(ids.values()))
        assert [c.recipient_id for c in sales.changes] == [ids["UNKNOWN"], ids["READ_ACK"]]
        assert sales.unsent == sorted(ids[k] for k in ("QUEUED", "SENDING", "FAILED"))
    with transaction(engine) as s:
        statuses = {k: s.get(BlastRecipient, rid).status for k, rid in ids.items()}
    assert statuses == {"QUEUED": "QUEUED", "SENDING": "SENDING", "FAILED": "FAILED",
                        "UNKNOWN": "CLOSED", "READ_ACK": "CLOSED"}


def test_unknown_sends_are_resent_or_marked_failed_only_by_a_person(engine: Engine) -> None:
    _blast(engine)
    with transaction(engine) as s:
        unknown = s.scalars(select(BlastRecipient.id).where(BlastRecipient.status == "UNKNOWN")).one()
        other = s.scalars(select(BlastRecipient.id).where(BlastRecipient.status == "READ_ACK")).first()
        assert resend(s, recipient_ids=[unknown, other]) == Resent(queued=1)
        assert s.get(BlastRecipient, unknown).status == "QUEUED"
        assert s.get(BlastRecipient, other).status == "READ_ACK"
    with transaction(engine) as s:
        s.get(BlastRecipient, unknown).status = "UNKNOWN"
    with transaction(engine) as s:
        assert mark_failed(s, recipient_ids=[unknown]) == 1
        assert s.get(BlastRecipient, unknown).status == "FAILED"


def test_a_failed_send_can_be_sent_again_by_a_person(engine: Engine) -> None:
    """Turned down while the account was out of quota: once mended, the marketer sends those
    again (there had been no way back from FAILED)."""
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        failed = make_recipient(s, blast, status="FAILED", attempts=1,
                                error="WSAPME did not accept the message (WSAPME said: Message failed).").id
        sent = make_recipient(s, blast, status="DELIVERY_ACK").id
        blast_id = blast.id
    with transaction(engine) as s:
        assert resend(s, recipient_ids=[failed, sent]) == Resent(queued=1)
    with transaction(engine) as s:
        row = s.get(BlastRecipient, failed)
        assert (row.status, row.error, row.attempts) == ("QUEUED", None, 0)
        assert s.get(BlastRecipient, sent).status == "DELIVERY_ACK"
        assert s.get(Blast, blast_id).state == "sending"
        assert [h.source for h in history(s, recipient_id=failed)][-1] == "manual"


def test_a_message_that_failed_after_the_gateway_took_it_is_sent_again_with_a_new_send_time(
    engine: Engine
) -> None:
    """WhatsApp reported an error for it at one tick: sent again, it counts as sent when the
    new message goes, not when the first one did."""
    first, again = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC), dt.datetime(2026, 3, 4, 10, tzinfo=dt.UTC)
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s, state="completed"), status="FAILED", message_id="3EB0FIRST",
                             sent_at=first, error="WhatsApp reported an error for this message.").id
    with transaction(engine) as s:
        assert resend(s, recipient_ids=[rid]) == Resent(queued=1)
    with transaction(engine) as s:
        row = s.get(BlastRecipient, rid)
        assert (row.status, row.sent_at, row.message_id) == ("QUEUED", None, None)
    for late in ("ERROR", "SERVER_ACK"):  # the first message's error again, its one-tick sent before it
        with transaction(engine) as s:
            inbox_id = store_raw(s, body=json.dumps({"event": "message-ack", "data": {
                "id": "3EB0FIRST", "status": late}}).encode(), content_type="application/json")
        with transaction(engine) as s:
            process_entry(s, inbox_id=inbox_id, rules=WebhookRules(), now=again)
        with transaction(engine) as s:
            assert s.get(BlastRecipient, rid).status == "QUEUED", late
    with transaction(engine) as s:  # the worker claims it and stores the gateway's answer
        apply_status(s, recipient_id=rid, status=Status.SENDING, source="send", at=again)
        apply_status(s, recipient_id=rid, status=Status.PENDING, source="send", at=again,
                     known_old=Status.SENDING, updates={"message_id": "3EB0AGAIN"})
    with transaction(engine) as s:
        row = s.get(BlastRecipient, rid)
        assert (row.status, row.sent_at, row.message_id) == ("PENDING", again, "3EB0AGAIN")


@pytest.mark.parametrize(("state", "after"), [
    ("completed", "sending"),  # it had finished: it takes up sending again
    ("sending", "sending"),
    ("paused", "paused"),  # sent when resumed
])
def test_a_resend_goes_whatever_state_the_blast_had_reached(engine: Engine, state: str, after: str) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state=state)
        unknown = make_recipient(s, blast, status="UNKNOWN").id
        blast_id = blast.id
    with transaction(engine) as s:
        assert resend(s, recipient_ids=[unknown]) == Resent(queued=1)
    with transaction(engine) as s:
        assert (s.get(Blast, blast_id).state, s.get(BlastRecipient, unknown).status) == (after, "QUEUED")
        assert s.get(Blast, blast_id).finished_at is None or after == "paused"


def test_a_resend_never_goes_to_a_number_that_opted_out_or_from_a_cancelled_blast(engine: Engine) -> None:
    from core.opt_outs import add_opt_outs

    with transaction(engine) as s:
        done, cancelled = make_blast(s, state="completed"), make_blast(s, state="cancelled")
        stopped = make_recipient(s, done, status="UNKNOWN", phone_number="+60123000001").id
        fine = make_recipient(s, done, status="UNKNOWN", phone_number="+60123000002").id
        dropped = make_recipient(s, cancelled, status="UNKNOWN", phone_number="+60123000003").id
        add_opt_outs(s, ["+60123000001"], source="webhook", keyword="STOP")
        ids = {"done": done.id, "cancelled": cancelled.id}
    with transaction(engine) as s:
        assert resend(s, recipient_ids=[stopped, fine, dropped]) == Resent(
            queued=1, opted_out=1, cancelled=1)
    with transaction(engine) as s:
        statuses = [s.get(BlastRecipient, rid).status for rid in (stopped, fine, dropped)]
        assert statuses == ["UNKNOWN", "QUEUED", "UNKNOWN"]
        states = (s.get(Blast, ids["done"]).state, s.get(Blast, ids["cancelled"]).state)
        assert states == ("sending", "cancelled")


@pytest.mark.postgres_only  # SQLite's dashboard transaction holds the write lock from its start
@pytest.mark.parametrize("decide", [resend, mark_failed])
def test_a_reply_landing_while_a_person_decides_about_an_unknown_send_is_kept(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, decide
) -> None:
    """The person saw UNKNOWN and chose; a reply committed between the page's look and the
    change. It settles the send: it is not undone, and the message is not sent again."""
    import core.recipients
    from core.status_engine import apply_status

    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        rid = make_recipient(s, blast, status="UNKNOWN", error="The answer was lost").id
        blast_id = blast.id
    real = core.recipients.apply_status

    def reply_lands_first(session, **kw):  # type: ignore[no-untyped-def]
        with transaction(engine) as other:
            apply_status(other, recipient_id=rid, status="REPLIED", source="webhook",
                         updates={"reply_text": "Nak 2 kotak"})
        return real(session, **kw)

    monkeypatch.setattr(core.recipients, "apply_status", reply_lands_first)
    with transaction(engine) as s:
        result = decide(s, recipient_ids=[rid])
    assert result in (Resent(queued=0), 0)
    with transaction(engine) as s:
        row = s.get(BlastRecipient, rid)
        assert (row.status, row.reply_text) == ("REPLIED", "Nak 2 kotak")
        assert s.get(Blast, blast_id).state == "completed", "nothing to send again"


def test_a_finished_blast_holding_queued_messages_takes_up_sending(engine: Engine) -> None:
    """complete_finished can mark a blast finished in the moment a resend is being queued (it
    cannot see rows not yet committed); housekeeping then sets it sending again."""
    from core.sending.blasts import complete_finished, reopen_requeued

    with transaction(engine) as s:
        finished = make_blast(s, state="completed")
        make_recipient(s, finished, status="QUEUED")
        untouched = make_blast(s, state="completed")
        make_recipient(s, untouched, status="READ_ACK")
        stopped = make_blast(s, state="cancelled")
        make_recipient(s, stopped, status="QUEUED")
        ids = (finished.id, untouched.id, stopped.id)
    with transaction(engine) as s:
        assert complete_finished(s, now=utcnow()) == []
        assert reopen_requeued(s) == [ids[0]]
        assert [s.get(Blast, i).state for i in ids] == ["sending", "completed", "cancelled"]


@pytest.mark.parametrize(("stage", "expected"), [
    (None, "Follow-up 1"), ("Initial", "Follow-up 1"), ("Follow-up 1", "Follow-up 2"),
    ("follow-up 9", "Follow-up 10"),
])
def test_next_stage_name(stage, expected) -> None:
    assert next_stage_name(stage) == expected


def test_follow_up_for_read_no_reply_after_some_hours(engine: Engine) -> None:
    blast_id = _blast(engine)
    with transaction(engine) as s:
        # One "read, no reply" opted out meanwhile: a follow-up must not include them.
        reader = s.scalars(select(BlastRecipient).where(BlastRecipient.status == "READ_ACK")
                           .order_by(BlastRecipient.id)).first()
        s.add(OptOut(phone_number=reader.phone_number, source="webhook", keyword="STOP"))
    read_no_reply = StageSelector(stage=Stage.READ, not_stage=Stage.REPLIED, older_than=dt.timedelta(hours=2))
    with transaction(engine) as s:
        audience = follow_up_audience(s, parent_id=blast_id, selector=read_no_reply)
        child = create_follow_up(
            s, parent_id=blast_id, message_template="Still keen, {name}?", selector=read_no_reply,
        )
        # What the tab says before the draft is made is what the draft gets.
        assert (audience.matching, audience.opted_out) == (2, 1)
        assert audience.reached == child.total_recipients
        assert (child.follow_up_stage, child.blast_tag) == ("Follow-up 1", "Raya")
        assert child.parent_blast_id == blast_id
        assert child.state == "draft" and child.total_recipients == 1
        assert chain_ids(s, blast_id=child.id) == [blast_id, child.id]
        chain = chain_funnels(s, blast_id=blast_id)
        assert [b.id for b, _ in chain] == [blast_id, child.id]
        assert chain[1][1].total == 1
    with transaction(engine) as s:
        assert follow_up_audience(s, parent_id=child.id, selector=SELECTIONS["Closed"]).matching == 0
    with pytest.raises(BadInput), transaction(engine) as s:
        create_follow_up(s, parent_id=child.id, message_template="x", selector=SELECTIONS["Closed"])
    with transaction(engine) as s:
        assert s.scalar(select(Blast.id).where(Blast.parent_blast_id == child.id)) is None


def test_a_follow_up_stage_typed_another_way_takes_the_spelling_in_use(engine: Engine) -> None:
    """"follow-up 1 " typed on the Follow up tab is the stage "Follow-up 1" already used: the
    Overview's stage filter must not offer both and count each apart."""
    blast_id = _blast(engine)
    with transaction(engine) as s:
        make_blast(s, follow_up_stage="Follow-up 1")
        child = create_follow_up(s, parent_id=blast_id, message_template="Still keen?",
                                 selector=SELECTIONS["Replied, not closed"], follow_up_stage="follow-up  1 ")
        assert child.follow_up_stage == "Follow-up 1"
        other = create_follow_up(s, parent_id=blast_id, message_template="Last call",
                                 selector=SELECTIONS["Read, no reply"], follow_up_stage="  Last call ")
        assert other.follow_up_stage == "Last call"


@pytest.mark.parametrize(("audience", "hours", "words"), [
    (Audience(0, 0), 24, "No one matches “Read, no reply” (reached at least 24 hours ago) yet: schedule the "
                         "follow-up to take whoever does then."),
    (Audience(0, 0), 0, "No one matches “Read, no reply” yet, so there is no one to follow up."),
    (Audience(2, 2), 0, "Everyone who matches “Read, no reply” has opted out, so there is no one to "
                        "follow up."),
    (Audience(2, 1), 1, "**1** person matches “Read, no reply” (reached at least 1 hour ago) and will "
                        "get this follow-up. 1 more opted out and is left out."),
    (Audience(190, 3), 0, "**187** people match “Read, no reply” and will get this follow-up. 3 more "
                          "opted out and are left out."),
    (Audience(190, 3, 1), 0, "**186** people match “Read, no reply” and will get this follow-up. 3 more "
                             "opted out and are left out. 1 more has had a follow-up of this blast already "
                             "and is left out."),
    (Audience(2, 0, 2), 0, "Everyone who matches “Read, no reply” has had a follow-up of this blast, so "
                           "there is no one to follow up."),
    (Audience(10, 1, 2, 3), 0, "**4** people match “Read, no reply” and will get this follow-up. 1 more "
                               "opted out and is left out. 2 more have had a follow-up of this blast already "
                               "and are left out. 3 more have bought on another blast of this campaign and "
                               "are left out."),
    (Audience(3, 1, 1, 1), 0, "Everyone who matches “Read, no reply” has opted out, had a follow-up of this "
                              "blast or bought on another blast of this campaign, so there is no one to "
                              "follow up."),
])
def test_the_follow_up_tab_says_who_will_get_it(audience: Audience, hours: int, words: str) -> None:
    from dashboard.blast_views import audience_words

    assert audience_words(audience, selection="Read, no reply", hours=hours) == words


@pytest.mark.parametrize(("state", "status", "left_out"), [
    # They have had it, or are having it.
    ("sending", "QUEUED", True), ("paused", "QUEUED", True), ("completed", "DELIVERY_ACK", True),
    # Scheduled, then paused before its time: it has messaged no one (`not_sent_yet`).
    ("paused before it started", "QUEUED", False),
    # Cancelled halfway: those it reached have had it, the rest may have another.
    ("cancelled", "DELIVERY_ACK", True), ("cancelled", "UNKNOWN", True),
    ("cancelled", "QUEUED", False), ("cancelled", "FAILED", False),
])
def test_a_second_follow_up_leaves_out_people_an_earlier_one_messaged(
    engine: Engine, state: str, status: str, left_out: bool
) -> None:
    started = None if state == "paused before it started" else utcnow() - dt.timedelta(hours=1)
    with transaction(engine) as s:
        parent = make_blast(s, state="completed", name="Raya")
        read = [make_recipient(s, parent, status="READ_ACK", contact_name=f"R{i}") for i in range(3)]
        earlier = make_blast(s, state=state.split()[0], parent_blast_id=parent.id, started_at=started)
        make_recipient(s, earlier, phone_number=read[0].phone_number, status=status)
        parent_id = parent.id
    read_no_reply = StageSelector(stage=Stage.READ, not_stage=Stage.REPLIED)
    with transaction(engine) as s:
        audience = follow_up_audience(s, parent_id=parent_id, selector=read_no_reply)
        child = create_follow_up(s, parent_id=parent_id, message_template="Still keen?",
                                 selector=read_no_reply)
        assert (audience.matching, audience.followed_up) == (3, 1 if left_out else 0)
        assert child.total_recipients == audience.reached == (2 if left_out else 3)


def test_history_lists_changes_in_the_order_they_were_made(engine: Engine) -> None:
    """The gateway's receipt times are whole seconds, ours are not: a receipt in the same
    second as the send is still listed after it."""
    from core.recipients import history
    from core.status_engine import apply_status

    sent = dt.datetime(2026, 3, 2, 10, 0, 2, 500_000, tzinfo=dt.UTC)
    with transaction(engine) as s:
        rid = make_recipient(s, make_blast(s), status="SENDING").id
        apply_status(s, recipient_id=rid, status="PENDING", source="send", at=sent)
        same_second = sent.replace(microsecond=0)
        apply_status(s, recipient_id=rid, status="SERVER_ACK", source="webhook", at=same_second)
        apply_status(s, recipient_id=rid, status="READ_ACK", source="webhook", at=same_second)
    with transaction(engine) as s:
        chain = [(h.old_status, h.new_status) for h in history(s, recipient_id=rid)]
    assert chain == [("SENDING", "PENDING"), ("PENDING", "SERVER_ACK"), ("SERVER_ACK", "READ_ACK")]


def _follow_up_of_read_no_reply(engine: Engine, statuses: list[str]) -> tuple[int, list[str]]:
    """A finished blast whose people got as far as `statuses`, and its follow-up for "Read, no
    reply" (drafted now: everyone still read and not replied then)."""
    with transaction(engine) as s:
        parent = make_blast(s, state="completed", name="Raya")
        people = [make_recipient(s, parent, status=status) for status in statuses]
        phones = [p.phone_number for p in people]
        child = create_follow_up(s, parent_id=parent.id, message_template="Still keen?",
                                 selector=StageSelector(stage=Stage.READ, not_stage=Stage.REPLIED))
        return child.id, phones


def _move(engine: Engine, phone: str, status: str) -> None:
    """The parent's row for `phone` moves on (a reply, a sale), as the webhook or a person would."""
    with transaction(engine) as s:
        row = s.scalars(select(BlastRecipient).where(
            BlastRecipient.phone_number == phone, BlastRecipient.status != "QUEUED")).one()
        row.status = status


def _queued_phones(engine: Engine, blast_id: int) -> list[str]:
    with transaction(engine) as s:
        return list(s.scalars(select(BlastRecipient.phone_number).where(
            BlastRecipient.blast_id == blast_id, BlastRecipient.status == "QUEUED"
        ).order_by(BlastRecipient.id)))


def test_a_scheduled_follow_up_leaves_out_who_replied_or_bought_before_it_went(engine: Engine) -> None:
    """Drafted for "Read, no reply" on Monday and scheduled for Tuesday: whoever replied or bought
    in between must not get "Still keen?"."""
    from core.sending import blasts

    child, (replied, bought, still) = _follow_up_of_read_no_reply(engine, ["READ_ACK"] * 3)
    tuesday = utcnow() + dt.timedelta(hours=20)
    with transaction(engine) as s:
        blasts.launch(s, blast_id=child, at=tuesday, device="d", timezone=dt.UTC)
    _move(engine, replied, "REPLIED")
    _move(engine, bought, "CLOSED")
    with transaction(engine) as s:
        assert blasts.start_due_scheduled(s, now=tuesday, grace=dt.timedelta(hours=1), zone=dt.UTC) == [child]
    assert _queued_phones(engine, child) == [still]
    with transaction(engine) as s:
        blast = s.get(Blast, child)
        assert (blast.skipped_moved_on, blast.total_recipients, blast.state) == (2, 1, "sending")


def test_a_follow_up_sent_later_than_drafted_asks_its_choice_again(engine: Engine) -> None:
    from core.sending import blasts

    child, (replied, still) = _follow_up_of_read_no_reply(engine, ["READ_ACK", "READ_ACK"])
    _move(engine, replied, "REPLIED")
    with transaction(engine) as s:
        blasts.launch(s, blast_id=child, device="d", timezone=dt.UTC)
    assert _queued_phones(engine, child) == [still]
    with transaction(engine) as s:
        assert s.get(Blast, child).skipped_moved_on == 1


def test_a_follow_up_leaves_out_who_another_follow_up_reached_while_it_waited(engine: Engine) -> None:
    from core.sending import blasts

    child, (reached, still) = _follow_up_of_read_no_reply(engine, ["READ_ACK", "READ_ACK"])
    with transaction(engine) as s:
        parent_id = s.get(Blast, child).parent_blast_id
        other = make_blast(s, state="completed", parent_blast_id=parent_id)
        make_recipient(s, other, phone_number=reached, status="DELIVERY_ACK")
    with transaction(engine) as s:
        blasts.launch(s, blast_id=child, device="d", timezone=dt.UTC)
    assert _queued_phones(engine, child) == [still]


def test_a_blast_from_a_file_or_made_before_choices_were_kept_is_sent_as_it_is(engine: Engine) -> None:
    from core.sending import blasts

    child, phones = _follow_up_of_read_no_reply(engine, ["READ_ACK", "READ_ACK"])
    with transaction(engine) as s:
        s.get(Blast, child).follow_up_selector = None  # a follow-up drafted before 0008
        from_file = make_blast(s)
        make_recipient(s, from_file)
        from_file_id = from_file.id
    _move(engine, phones[0], "REPLIED")
    with transaction(engine) as s:
        blasts.launch(s, blast_id=child, device="d", timezone=dt.UTC)
        blasts.launch(s, blast_id=from_file_id, device="d", timezone=dt.UTC)
    assert _queued_phones(engine, child) == phones
    assert len(_queued_phones(engine, from_file_id)) == 1


@pytest.mark.parametrize("choice", list(SELECTIONS))
def test_every_choice_is_kept_as_it_was_made(choice: str) -> None:
    selector = SELECTIONS[choice]
    assert StageSelector.from_json(selector.as_json()) == selector
    later = StageSelector(stage=Stage.READ, older_than=dt.timedelta(hours=24))
    assert StageSelector.from_json(later.as_json()) == later


def test_a_sale_marked_by_mistake_goes_back_to_where_it_was(engine: Engine) -> None:
    from core.models import RecipientReply
    from core.recipients import undo_sales

    read_at = utcnow() - dt.timedelta(hours=2)
    with transaction(engine) as s:
        blast = make_blast(s)
        read = make_recipient(s, blast, status="READ_ACK", sent_at=read_at, read_timestamp=read_at).id
        wrote = make_recipient(s, blast, status="READ_ACK", sent_at=read_at, read_timestamp=read_at).id
        untouched = make_recipient(s, blast, status="REPLIED", sent_at=read_at, replied_at=read_at).id
    with transaction(engine) as s:
        mark_closed(s, recipient_ids=[read, wrote])
    with transaction(engine) as s:  # one of them wrote back after the sale was recorded
        s.add(RecipientReply(recipient_id=wrote, replied_at=utcnow(), text="Bila sampai?"))
    with transaction(engine) as s:
        assert undo_sales(s, recipient_ids=[read, wrote, untouched]) == 2
    with transaction(engine) as s:
        first, second, third = (s.get(BlastRecipient, rid) for rid in (read, wrote, untouched))
        assert (first.status, first.closed_at, first.replied_at) == ("READ_ACK", None, None)
        assert (second.status, second.closed_at, second.reply_text) == ("REPLIED", None, "Bila sampai?")
        assert third.status == "REPLIED", "not a sale: left alone"
        steps = s.scalars(select(StatusHistory.new_status).where(StatusHistory.recipient_id == read)
                          .order_by(StatusHistory.id)).all()
        assert steps == ["CLOSED", "READ_ACK"], "the undo is in the history too"


def test_an_undone_sale_is_moved_on_by_a_reply_that_came_since_as_the_reply_would_have(
    engine: Engine,
) -> None:
    from core.models import RecipientReply
    from core.recipients import UNDONE_UNKNOWN, undo_sales

    sent = utcnow() - dt.timedelta(hours=3)
    with transaction(engine) as s:
        blast = make_blast(s)
        received = make_recipient(s, blast, status="DELIVERY_ACK", sent_at=sent, delivered_at=sent).id
        unknown = make_recipient(s, blast, status="UNKNOWN", error="the answer was cut off").id
    with transaction(engine) as s:
        mark_closed(s, recipient_ids=[received, unknown])
    replied_at = utcnow() - dt.timedelta(minutes=5)
    with transaction(engine) as s:
        s.add(RecipientReply(recipient_id=received, replied_at=replied_at, text="Ok, bila?"))
    with transaction(engine) as s:
        assert undo_sales(s, recipient_ids=[received, unknown]) == 2
    with transaction(engine) as s:
        row = s.get(BlastRecipient, received)
        assert (row.status, row.read_timestamp, row.replied_at, row.reply_text) == (
            "REPLIED", replied_at, replied_at, "Ok, bila?"), "read when they replied, as a reply stamps it"
        gone = s.get(BlastRecipient, unknown)
        assert (gone.status, gone.error) == ("UNKNOWN", UNDONE_UNKNOWN), "still to be decided, and said so"
