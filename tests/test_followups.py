"""A new follow-up's stage: the next number its chain has not used."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from core.db import transaction
from core.followups import create_follow_up, next_stage_name
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
