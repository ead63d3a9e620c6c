"""A sending blast's ETA goes by its own recent pace once it has one: that pace counts the
gateway's answer time, which the rules alone cannot know."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, select, update

from core.db import transaction
from core.models import BlastRecipient, utcnow
from core.sending.pacing import ensure_device
from core.sending.progress import blast_progress, observed_gap
from core.statuses import Status
from tests.sending.support import launched_blast, settings_for

PACED = {"send_pacing": "on", "send_min_gap_seconds": 10.0, "send_jitter_seconds": 0.0,
         "send_pause_every": 0, "send_daily_cap": 0}


def _sent(engine: Engine, blast_id: int, times: list[dt.datetime]) -> None:
    """Mark the blast's first recipients sent at `times`, one each."""
    with transaction(engine) as s:
        ids = s.scalars(select(BlastRecipient.id).where(BlastRecipient.blast_id == blast_id)
                        .order_by(BlastRecipient.id)).all()
        for recipient_id, at in zip(ids, times, strict=False):
            s.execute(update(BlastRecipient).where(BlastRecipient.id == recipient_id)
                      .values(status=Status.SERVER_ACK.value, sent_at=at))


def test_the_pace_is_the_median_gap_of_the_latest_sends(engine: Engine) -> None:
    blast_id = launched_blast(engine, 40)
    now = utcnow()
    # 12 s apart, with one 5-minute pause among them, and two sends from yesterday.
    times, at = [], now - dt.timedelta(minutes=20)
    for i in range(16):
        times.append(at)
        at += dt.timedelta(seconds=312 if i == 7 else 12)
    _sent(engine, blast_id, [now - dt.timedelta(days=1, seconds=s) for s in (0, 50)] + times)
    with transaction(engine) as s:
        assert observed_gap(s, blast_id=blast_id, now=now) == 12.0


def test_too_few_recent_sends_give_no_pace(engine: Engine) -> None:
    blast_id = launched_blast(engine, 10)
    now = utcnow()
    _sent(engine, blast_id, [now - dt.timedelta(seconds=12 * i) for i in range(5)])  # 4 gaps
    with transaction(engine) as s:
        assert observed_gap(s, blast_id=blast_id, now=now) is None


def test_a_sending_blasts_eta_counts_the_answer_time_the_rules_leave_out(engine: Engine) -> None:
    settings = settings_for(**PACED)
    blast_id = launched_blast(engine, 30)
    with transaction(engine) as s:
        ensure_device(s, device="5850", settings=settings)
        before = blast_progress(s, blast_id=blast_id, settings=settings).eta
    started = utcnow()
    # Rules say 10 s a message; the gateway took 2 s to answer each, so they went 12 s apart.
    _sent(engine, blast_id, [started - dt.timedelta(seconds=12 * i) for i in range(10)])
    with transaction(engine) as s:
        progress = blast_progress(s, blast_id=blast_id, settings=settings)
    assert progress.remaining == 20 and progress.pace_seconds == 12.0
    # The first of the 20 left goes now, the last 19 gaps of 12 s later.
    expected = utcnow() + dt.timedelta(seconds=19 * 12)
    assert abs((progress.eta - expected).total_seconds()) < 5
    # Before any send, the rules' 10 s: 29 gaps.
    assert abs((before - started - dt.timedelta(seconds=29 * 10)).total_seconds()) < 5
