"""The funnel's definitions, on hand-built data, including what the plan's query gets wrong."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, text

from core.db import transaction
from core.funnel import FunnelFilter, funnel, funnel_by_blast, stuck_at_each_stage
from core.statuses import Stage

# One blast: every status once, plus a reply that came with read receipts off.
STATUSES = ["QUEUED", "SENDING", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ_ACK",
            "REPLIED", "CLOSED", "FAILED", "UNKNOWN", "REPLIED"]

PLAN_BLAST_METRICS = """
SELECT COUNT(*) AS total_sent,
  SUM(CASE WHEN br.status != 'PENDING' THEN 1 ELSE 0 END) AS received,
  SUM(CASE WHEN br.status IN ('READ_ACK', 'REPLIED', 'CLOSED') THEN 1 ELSE 0 END) AS read
FROM blasts b LEFT JOIN blast_recipients br ON b.id = br.blast_id WHERE b.id = :id
"""


def _seed(engine: Engine) -> dict[str, int]:
    from tests.support.factories import make_blast, make_recipient

    kl = dt.timezone(dt.timedelta(hours=8))
    with transaction(engine) as s:
        launch = make_blast(s, blast_tag="Launch", follow_up_stage="Initial",
                            blast_date=dt.datetime(2026, 3, 1, 23, 30, tzinfo=kl))
        for status in STATUSES:
            make_recipient(s, launch, status=status)
        promo = make_blast(s, blast_tag="Promo", follow_up_stage="Follow-up 1",
                           blast_date=dt.datetime(2026, 3, 2, 0, 30, tzinfo=kl))
        for status in ["PENDING", "READ_ACK", "READ_ACK"]:
            make_recipient(s, promo, status=status)
        empty = make_blast(s, blast_tag="Promo", blast_date=dt.datetime(2026, 3, 5, tzinfo=kl))
        return {"launch": launch.id, "promo": promo.id, "empty": empty.id}


def test_cumulative_counts_follow_the_ranked_model(engine: Engine) -> None:
    ids = _seed(engine)
    with transaction(engine) as s:
        f = funnel(s, filters=FunnelFilter(blast_ids=(ids["launch"],)))
    assert f.total == 11
    assert f.waiting == 2
    assert f.sent == 7  # PENDING..CLOSED: never FAILED/UNKNOWN/QUEUED
    assert f.received == 5  # DELIVERY_ACK and up, replies included
    assert f.read == 4
    assert f.replied == 3
    assert f.closed == 1
    assert (f.failed, f.unknown) == (1, 1)
    assert f.pct_of_sent(Stage.READ) == pytest.approx(400 / 7)
    assert f.pct_of_previous(Stage.REPLIED) == pytest.approx(75.0)
    assert f.pct_of_previous(Stage.SENT) is None


def test_reply_without_read_receipt_counts_as_read_unlike_the_plans_query(engine: Engine) -> None:
    from tests.support.factories import make_blast, make_recipient

    with transaction(engine) as s:
        blast = make_blast(s)
        make_recipient(s, blast, status="PENDING")
        make_recipient(s, blast, status="FAILED")
        make_recipient(s, blast, status="REPLIED")  # receipts off: no READ_ACK ever came
        blast_id = blast.id
    with transaction(engine) as s:
        ours = funnel(s, filters=FunnelFilter(blast_ids=(blast_id,)))
        plan = s.execute(text(PLAN_BLAST_METRICS), {"id": blast_id}).one()
    assert (ours.sent, ours.received, ours.read, ours.replied) == (2, 1, 1, 1)
    # The plan counts the failure as "received" and everything as "sent".
    assert (plan.total_sent, plan.received) == (3, 2)


@pytest.mark.parametrize(
    ("filters", "expected_total"),
    [
        (FunnelFilter(), 14),
        (FunnelFilter(tags=("Promo",)), 3),
        (FunnelFilter(follow_up_stages=("Initial",)), 11),
        # 2026-03-01 23:30 and 2026-03-02 00:30 in Kuala Lumpur: local days decide.
        (FunnelFilter(start=dt.date(2026, 3, 2), end=dt.date(2026, 3, 2)), 3),
        (FunnelFilter(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 1)), 11),
        (FunnelFilter(start=dt.date(2026, 3, 3)), 0),
        (FunnelFilter(tags=("Launch",), follow_up_stages=("Follow-up 1",)), 0),
    ],
)
def test_filters(engine: Engine, filters: FunnelFilter, expected_total: int) -> None:
    _seed(engine)
    with transaction(engine) as s:
        assert funnel(s, filters=filters).total == expected_total


def test_practice_blasts_can_be_left_out_of_every_count(engine: Engine) -> None:
    """Once live, a practice blast's made-up receipts are not the team's results; a draft with
    no device yet belongs to the gateway in use."""
    from sqlalchemy import update

    from core.funnel import filter_options, status_counts_by_tag
    from core.models import Blast

    ids = _seed(engine)
    with transaction(engine) as s:
        s.execute(update(Blast).where(Blast.id == ids["promo"]).values(device="sandbox"))
        s.execute(update(Blast).where(Blast.id == ids["launch"]).values(device="5850"))
    live = FunnelFilter(leave_out_practice=True)
    with transaction(engine) as s:
        assert funnel(s, filters=live).total == 11
        assert funnel(s, filters=FunnelFilter(tags=("Promo",), leave_out_practice=True)).total == 0
        assert [r.blast_id for r in funnel_by_blast(s, filters=live)] == [ids["empty"], ids["launch"]]
        assert set(status_counts_by_tag(s, filters=live)) == {"Launch"}
        assert filter_options(s, leave_out_practice=True) == (["Launch", "Promo"], ["Initial"])
        assert filter_options(s) == (["Launch", "Promo"], ["Initial", "Follow-up 1"])
        assert funnel(s).total == 14


def test_the_stage_filter_lists_stages_in_the_order_they_are_sent(engine: Engine) -> None:
    """As text, "Follow-up 1" came before "Initial" and "Follow-up 10" before "Follow-up 2"."""
    from core.funnel import filter_options
    from tests.support.factories import make_blast

    with transaction(engine) as s:
        for stage in ("Reminder", "Follow-up 10", "Follow-up 2", "Initial", "Follow-up 1", "Follow-up 9",
                      "Last call", None):
            make_blast(s, follow_up_stage=stage)
    with transaction(engine) as s:
        _, stages = filter_options(s)
    assert stages == ["Initial", "Follow-up 1", "Follow-up 2", "Follow-up 9", "Follow-up 10", "Last call",
                      "Reminder"]


def test_per_blast_funnels_include_empty_blasts_newest_first(engine: Engine) -> None:
    ids = _seed(engine)
    with transaction(engine) as s:
        rows = funnel_by_blast(s)
    assert [r.blast_id for r in rows] == [ids["empty"], ids["promo"], ids["launch"]]
    assert rows[0].funnel.total == 0
    assert (rows[1].funnel.sent, rows[1].funnel.read) == (3, 2)
    assert rows[2].funnel.replied == 3


def test_stuck_at_each_stage_orders_by_the_status_model(engine: Engine) -> None:
    ids = _seed(engine)
    with transaction(engine) as s:
        rows = stuck_at_each_stage(s, blast_id=ids["launch"])
    assert [r[0] for r in rows][:3] == ["QUEUED", "SENDING", "PENDING"]
    assert dict((r[0], r[1]) for r in rows)["REPLIED"] == 2
    assert sum(r[2] for r in rows) == pytest.approx(100.0)
