"""A new follow-up's stage: the next number its chain has not used."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from core.db import transaction
from core.followups import Audience, create_follow_up, next_stage_name
from core.recipients import SELECTIONS
from tests.support.factories import make_blast, make_recipient


@pytest.mark.parametrize(("stage", "taken", "expected"), [
    ("Initial", [], "Follow-up 1"),
    ("Initial", ["Initial", "Follow-up 1"], "Follow-up 2"),  # the first blast followed up once already
    ("Follow-up 1", ["Initial", "Follow-up 1", "Follow-up 2"], "Follow-up 3"),
    ("Follow-up 2", ["Initial", "Follow-up 1"], "Follow-up 3"),  # a follow-up of a follow-up: the next
    ("Initial", ["follow up 9", "Last call", None], "Follow-up 10"),  # by number, however it was typed
])
def test_the_next_stage_is_past_every_follow_up_in_the_chain(stage, taken, expected) -> None:
    assert next_stage_name(stage, taken=taken) == expected


def _chain(engine: Engine) -> dict[str, int]:
    """A first blast, its follow-up "Follow-up 1", and that one's own follow-up."""
    with transaction(engine) as s:
        first = make_blast(s, follow_up_stage="Initial", state="completed")
        for status in ("READ_ACK", "DELIVERY_ACK"):
            make_recipient(s, first, status=status)
        second = make_blast(s, follow_up_stage="Follow-up 1", parent_blast_id=first.id, state="completed")
        third = make_blast(s, follow_up_stage="Follow-up 2", parent_blast_id=second.id, state="draft")
        make_blast(s, follow_up_stage="Follow-up 7")  # another campaign's numbers are its own
        return {"first": first.id, "second": second.id, "third": third.id}


def test_a_blast_already_followed_up_is_offered_the_next_stage(engine: Engine) -> None:
    """Blast #52's follow-up #53 is "Follow-up 1": another follow-up of #52 is not one too."""
    from core.followups import next_follow_up_stage

    with transaction(engine) as s:
        first = make_blast(s, follow_up_stage="Initial")
        make_blast(s, follow_up_stage="Follow-up 1", parent_blast_id=first.id)
        lone = make_blast(s, follow_up_stage="Initial")
        assert next_follow_up_stage(s, blast_id=first.id) == "Follow-up 2"
        assert next_follow_up_stage(s, blast_id=lone.id) == "Follow-up 1"
    ids = _chain(engine)
    with transaction(engine) as s:
        assert [next_follow_up_stage(s, blast_id=ids[b]) for b in ("first", "second", "third")] == [
            "Follow-up 3"] * 3


def test_a_follow_up_made_without_a_stage_takes_the_next_one(engine: Engine) -> None:
    ids = _chain(engine)
    with transaction(engine) as s:
        child = create_follow_up(s, parent_id=ids["first"], message_template="Masih berminat?",
                                 selector=SELECTIONS["Received, not read"])
        assert child.follow_up_stage == "Follow-up 3"


def test_a_follow_up_is_named_after_the_first_blast_and_its_stage(engine: Engine) -> None:
    """A follow-up of a follow-up had been "… — follow-up — follow-up", cut in every list."""
    with transaction(engine) as s:
        first = make_blast(s, name="Year end sale · 27 Nov", follow_up_stage="Initial", state="completed")
        make_recipient(s, first, status="READ_ACK")
        second = create_follow_up(s, parent_id=first.id, message_template="Masih berminat?",
                                  selector=SELECTIONS["Read, no reply"])
        second.state = "completed"
        s.flush()
        make_recipient(s, second, status="READ_ACK")
        third = create_follow_up(s, parent_id=second.id, message_template="Last call",
                                 selector=SELECTIONS["Read, no reply"], follow_up_stage="Last call")
        assert (second.name, third.name) == ("Year end sale · 27 Nov — Follow-up 1",
                                             "Year end sale · 27 Nov — Last call")
        long = make_blast(s, name="N" * 255, follow_up_stage="Initial", state="completed")
        make_recipient(s, long, status="READ_ACK")
        fourth = create_follow_up(s, parent_id=long.id, message_template="Hi",
                                  selector=SELECTIONS["Read, no reply"])
        assert fourth.name == "N" * (255 - len(" — Follow-up 1")) + " — Follow-up 1"
        # A first blast named with its own stage, as the demo's are: "CNY — Initial".
        staged = make_blast(s, name="CNY — Initial", follow_up_stage="Initial", state="completed")
        make_recipient(s, staged, status="READ_ACK")
        fifth = create_follow_up(s, parent_id=staged.id, message_template="Hi",
                                 selector=SELECTIONS["Read, no reply"])
        assert fifth.name == "CNY — Follow-up 1"


# --- a follow-up scheduled ahead: its people are whoever matches as it starts ------------------


def _sent_an_hour_ago(engine: Engine) -> dict[str, object]:
    """Five read a blast an hour ago: one has replied, one opted out, one has no name."""
    import datetime as dt

    from core.models import OptOut, utcnow

    hour_ago = utcnow() - dt.timedelta(hours=1)
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", name="Raya promo", follow_up_stage="Initial", device="5850",
                           upload_columns=[["branch", "Branch"]])
        people = {}
        for name, status in (("Aisyah", "READ_ACK"), ("Ben", "READ_ACK"), ("Chong", "REPLIED"),
                             ("Dina", "READ_ACK"), ("", "READ_ACK")):
            people[name or "nameless"] = make_recipient(
                s, blast, status=status, contact_name=name or None, sent_at=hour_ago,
                read_timestamp=hour_ago, replied_at=hour_ago if status == "REPLIED" else None,
                variables={"branch": "Ipoh"}).phone_number
        s.add(OptOut(phone_number=people["Dina"], source="webhook", keyword="STOP"))
        return {"blast": blast.id, "at": hour_ago, **people}


def test_a_follow_up_scheduled_ahead_takes_whoever_matches_as_it_starts(engine: Engine) -> None:
    """Right after the blast no one had read it 24 hours before: the follow-up could not be made."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from core.config import Settings
    from core.followups import schedule_follow_up
    from core.models import Blast, BlastRecipient
    from core.sending import blasts

    kl, unpaced = ZoneInfo("Asia/Kuala_Lumpur"), Settings(_env_file=None, send_pacing="off")
    sent = _sent_an_hour_ago(engine)
    at = sent["at"] + dt.timedelta(hours=25)
    read_no_reply = SELECTIONS["Read, no reply"]
    selector = type(read_no_reply)(stage=read_no_reply.stage, not_stage=read_no_reply.not_stage,
                                   older_than=dt.timedelta(hours=24))
    with transaction(engine) as s:
        child = schedule_follow_up(s, parent_id=sent["blast"], selector=selector, timezone=kl,
                                   message_template="Still keen, {name}? {branch} has stock", at=at,
                                   allow_blanks=True, settings=unpaced)
        child_id = child.id
        assert (child.state, child.total_recipients, child.device, child.name) == (
            "scheduled", 0, "5850", "Raya promo — Follow-up 1")
        assert (child.scheduled_at, child.blast_date) == (at, at)
        assert child.upload_columns == [["branch", "Branch"]]
    with transaction(engine) as s:  # Ben replies before its time: not followed up
        ben = s.query(BlastRecipient).filter_by(phone_number=sent["Ben"], blast_id=sent["blast"]).one()
        ben.status, ben.replied_at = "REPLIED", at - dt.timedelta(hours=2)
    with transaction(engine) as s:
        assert blasts.start_due_scheduled(s, now=at + dt.timedelta(minutes=1), grace=dt.timedelta(hours=1),
                                          zone=kl) == [child_id]
    with transaction(engine) as s:
        rows = s.query(BlastRecipient).filter_by(blast_id=child_id).order_by(BlastRecipient.id).all()
        assert [(r.phone_number, r.status, r.message_text) for r in rows] == [
            (sent["Aisyah"], "QUEUED", "Still keen, Aisyah? Ipoh has stock"),
            (sent["nameless"], "QUEUED", "Still keen, ? Ipoh has stock")]  # blanks chosen as it was scheduled
        assert (s.get(Blast, child_id).state, s.get(Blast, child_id).total_recipients) == ("sending", 2)


def test_a_follow_up_scheduled_ahead_refuses_gaps_unless_chosen_and_a_past_time(engine: Engine) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from core.errors import BadInput
    from core.followups import schedule_follow_up
    from core.models import utcnow

    sent = _sent_an_hour_ago(engine)
    kl = ZoneInfo("Asia/Kuala_Lumpur")
    ahead = {"parent_id": sent["blast"], "selector": SELECTIONS["Read, no reply"], "timezone": kl}
    with pytest.raises(BadInput, match="1 of the people it may go to would get the message with a gap"), \
            transaction(engine) as s:
        schedule_follow_up(s, message_template="Hi {name}", at=utcnow() + dt.timedelta(days=1), **ahead)
    with pytest.raises(BadInput, match="That time has passed"), transaction(engine) as s:
        schedule_follow_up(s, message_template="Hi", at=utcnow() - dt.timedelta(minutes=1), **ahead)
    with pytest.raises(BadInput, match="colour"), transaction(engine) as s:
        schedule_follow_up(s, message_template="Hi {colour}", at=utcnow() + dt.timedelta(days=1), **ahead)


def test_a_follow_up_scheduled_ahead_that_finds_no_one_finishes_with_no_one_sent(engine: Engine) -> None:
    import datetime as dt
    from zoneinfo import ZoneInfo

    from core.config import Settings
    from core.followups import schedule_follow_up
    from core.models import BlastRecipient
    from core.recipients import mark_closed
    from core.sending import blasts

    kl = ZoneInfo("Asia/Kuala_Lumpur")
    sent = _sent_an_hour_ago(engine)
    at = sent["at"] + dt.timedelta(hours=2)
    with transaction(engine) as s:
        child_id = schedule_follow_up(s, parent_id=sent["blast"], selector=SELECTIONS["Replied, not closed"],
                                      message_template="Thanks!", at=at, timezone=kl,
                                      settings=Settings(_env_file=None, send_pacing="off")).id
    with transaction(engine) as s:  # Chong, who replied, bought meanwhile
        chong = s.query(BlastRecipient).filter_by(phone_number=sent["Chong"], blast_id=sent["blast"]).one()
        mark_closed(s, recipient_ids=[chong.id])
    with transaction(engine) as s:
        blasts.start_due_scheduled(s, now=at, grace=dt.timedelta(hours=1), zone=kl)
        assert blasts.complete_finished(s, now=at) == [child_id]


def test_a_follow_up_ahead_whose_message_cannot_be_written_pauses_alone(engine: Engine) -> None:
    """Its message failing for the people it took had failed the worker's whole housekeeping,
    again every second: no blast started, finished or sent until the follow-up was cancelled."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from core.config import Settings
    from core.followups import schedule_follow_up
    from core.models import Blast, BlastRecipient
    from core.sending import blasts

    kl, unpaced = ZoneInfo("Asia/Kuala_Lumpur"), Settings(_env_file=None, send_pacing="off")
    sent = _sent_an_hour_ago(engine)
    at = sent["at"] + dt.timedelta(hours=2)
    with transaction(engine) as s:
        ahead = schedule_follow_up(s, parent_id=sent["blast"], selector=SELECTIONS["Read, no reply"],
                                   message_template="Hi, {branch} has stock", at=at, timezone=kl,
                                   settings=unpaced).id
        other = make_blast(s)
        make_recipient(s, other)
        blasts.launch(s, blast_id=other.id, at=at, device="d", timezone=kl, settings=unpaced)
        other = other.id
        # Since it was scheduled, Aisyah's cells have lost the branch (say, another file's row).
        aisyah = s.query(BlastRecipient).filter_by(phone_number=sent["Aisyah"], blast_id=sent["blast"]).one()
        aisyah.variables = {}
    with transaction(engine) as s:
        assert blasts.start_due_scheduled(s, now=at, grace=dt.timedelta(hours=1), zone=kl) == [ahead, other]
    with transaction(engine) as s:
        paused = s.get(Blast, ahead)
        assert (paused.state, paused.paused_by, paused.total_recipients) == ("paused", "message", 0)
        assert paused.state_reason.startswith("Its message could not be written for the people it took as "
                                              "it started: 1 recipient would get a message with a gap")
        assert s.query(BlastRecipient).filter_by(blast_id=ahead).count() == 0, "nothing half taken on"
        assert s.get(Blast, other).state == "sending", "the rest of the worker's round went on"
        assert paused.started_at is None, "not started: Resume tries its people again"
        aisyah = s.query(BlastRecipient).filter_by(phone_number=sent["Aisyah"], blast_id=sent["blast"]).one()
        aisyah.variables = {"branch": "Klang"}  # put right
    with transaction(engine) as s:
        blasts.resume(s, blast_id=ahead, now=at + dt.timedelta(minutes=5))
    with transaction(engine) as s:
        assert (s.get(Blast, ahead).state, s.get(Blast, ahead).total_recipients) == ("sending", 3)


def test_a_follow_up_ahead_judges_gaps_over_everyone_it_could_take(engine: Engine) -> None:
    """Right after the blast most people have not read it yet: judged over who matched then, a
    gap for them had gone unasked, and out."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from core.errors import BadInput
    from core.followups import schedule_follow_up
    from core.models import BlastRecipient, utcnow

    sent = _sent_an_hour_ago(engine)
    with transaction(engine) as s:  # the nameless one has not read it yet
        row = s.query(BlastRecipient).filter_by(phone_number=sent["nameless"], blast_id=sent["blast"]).one()
        row.status, row.read_timestamp = "DELIVERY_ACK", None
    with pytest.raises(BadInput, match="1 of the people it may go to"), transaction(engine) as s:
        schedule_follow_up(s, parent_id=sent["blast"], selector=SELECTIONS["Read, no reply"],
                           message_template="Hi {name}", at=utcnow() + dt.timedelta(days=1),
                           timezone=ZoneInfo("Asia/Kuala_Lumpur"))


def test_a_follow_up_leaves_out_who_bought_on_another_blast_of_the_campaign(engine: Engine) -> None:
    """Closed on the first follow-up, the buyer is no lead: the next follow-up neither counts
    them nor queues them, nor still wants them as it sends (their sale cannot be recorded on
    the first blast's row again)."""
    from core.followups import follow_up_audience, still_wanted
    from core.recipients import mark_closed

    buyer, other = "+60123456781", "+60123456782"
    read_no_reply = SELECTIONS["Read, no reply"]
    with transaction(engine) as s:
        first = make_blast(s, blast_tag="Raya", follow_up_stage="Initial", state="completed")
        for phone in (buyer, other):
            make_recipient(s, first, phone_number=phone, status="READ_ACK")
        again = make_blast(s, blast_tag="Raya", follow_up_stage="Follow-up 1", parent_blast_id=first.id,
                           state="completed")
        sold = make_recipient(s, again, phone_number=buyer, status="READ_ACK")
        mark_closed(s, recipient_ids=[sold.id])
        assert follow_up_audience(s, parent_id=first.id, selector=read_no_reply) == (
            Audience(matching=2, opted_out=0, followed_up=0, bought=1))
        child = create_follow_up(s, parent_id=first.id, message_template="Last call!", selector=read_no_reply)
        assert [r.phone_number for r in child.recipients] == [other]
        # Had the draft been made before the sale, the buyer is still not messaged.
        late = make_recipient(s, child, phone_number=buyer, status="QUEUED")
        assert not still_wanted(s, blast_id=child.id, phone_number=late.phone_number)
        assert still_wanted(s, blast_id=child.id, phone_number=other)


def test_a_follow_ups_campaign_is_measured_from_the_follow_up_as_its_sales_are(engine: Engine) -> None:
    """A first blast 40 days old: a sale 5 days ago on another blast of its tag is in the
    follow-up's campaign (a sale on the follow-up's row would be refused), though not in the
    first blast's; one 60 days ago is in the first blast's campaign but not the follow-up's,
    whose row would take that person's sale. The follow-up leaves out the first, not the second."""
    from core.followups import follow_up_audience, still_wanted
    from core.models import utcnow
    from core.recipients import closed_under_its_tag, mark_closed

    recent, long_ago, neither = "+60123456781", "+60123456782", "+60123456783"
    read_no_reply = SELECTIONS["Read, no reply"]
    now = utcnow()
    with transaction(engine) as s:
        first = make_blast(s, blast_tag="Raya", state="completed", created_at=now - dt.timedelta(days=40))
        for phone in (recent, long_ago, neither):
            make_recipient(s, first, phone_number=phone, status="READ_ACK")
        for days, phone in ((5, recent), (60, long_ago)):
            other = make_blast(s, blast_tag="Raya", state="completed",
                               created_at=now - dt.timedelta(days=days))
            mark_closed(s, recipient_ids=[make_recipient(s, other, phone_number=phone, status="READ_ACK").id])
        assert follow_up_audience(s, parent_id=first.id, selector=read_no_reply) == (
            Audience(matching=3, opted_out=0, followed_up=0, bought=1))
        # Scheduled for a month ahead, it is still made now: measured from now, not its time.
        assert follow_up_audience(s, parent_id=first.id, selector=read_no_reply,
                                  now=now + dt.timedelta(days=30)).bought == 1
        child = create_follow_up(s, parent_id=first.id, message_template="Last call!", selector=read_no_reply)
        assert follow_up_audience(s, parent_id=first.id, selector=read_no_reply, follow_up=child.id,
                                  now=now + dt.timedelta(days=30)).bought == 1
        taken = {r.phone_number: r for r in child.recipients}
        assert sorted(taken) == [long_ago, neither]
        assert closed_under_its_tag(s, taken[long_ago]) is None, "its sale may be recorded here"
        late = make_recipient(s, child, phone_number=recent, status="QUEUED")
        assert closed_under_its_tag(s, late) is not None
        assert not still_wanted(s, blast_id=child.id, phone_number=recent)
        assert still_wanted(s, blast_id=child.id, phone_number=long_ago)


def test_a_paused_follow_up_that_never_started_has_messaged_no_one(engine: Engine) -> None:
    """Scheduled, then paused before its time: its people are still free for another one."""
    from core.followups import follow_up_audience

    read_no_reply = SELECTIONS["Read, no reply"]
    with transaction(engine) as s:
        first = make_blast(s, follow_up_stage="Initial", state="completed")
        for _ in range(3):
            make_recipient(s, first, status="READ_ACK")
        held = make_blast(s, follow_up_stage="Follow-up 1", parent_blast_id=first.id, state="paused")
        for person in list(first.recipients):
            make_recipient(s, held, phone_number=person.phone_number, status="QUEUED")
        assert follow_up_audience(s, parent_id=first.id, selector=read_no_reply).followed_up == 0
        held.started_at = held.created_at  # it had started, then was paused: they may have had it
        s.flush()
        assert follow_up_audience(s, parent_id=first.id, selector=read_no_reply).followed_up == 3
