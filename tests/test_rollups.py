"""The per-blast rollups (statuses, and activity by hour) always equal a recount of
blast_recipients, whatever writes them."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, func, insert, select, text, update

from core.db import downgrade, make_engine, migrate, transaction
from core.funnel import Funnel, FunnelFilter, fold_rollup_deltas, funnel, funnel_by_blast, status_counts
from core.models import (
    Blast,
    BlastHourCount,
    BlastHourDelta,
    BlastRecipient,
    BlastStatusCount,
    BlastStatusDelta,
)
from core.sending import queue
from core.status_engine import apply_status
from core.statuses import RANK, Stage, Status

STATUSES = [s.value for s in Status]
LEASE = dt.timedelta(minutes=2)


def recount(engine: Engine) -> dict[tuple[int, str], int]:
    with transaction(engine) as s:
        rows = s.execute(
            select(BlastRecipient.blast_id, BlastRecipient.status, func.count())
            .group_by(BlastRecipient.blast_id, BlastRecipient.status)
        ).all()
    return {(blast_id, status): n for blast_id, status, n in rows}


def rollups(engine: Engine) -> dict[tuple[int, str], int]:
    """Counts plus unfolded deltas, per (blast, status); zeros left out."""
    totals: Counter[tuple[int, str]] = Counter()
    with transaction(engine) as s:
        for blast_id, status, n in s.execute(select(BlastStatusCount.blast_id, BlastStatusCount.status,
                                                    BlastStatusCount.recipients)):
            totals[blast_id, status] += n
        for blast_id, status, n in s.execute(select(BlastStatusDelta.blast_id, BlastStatusDelta.status,
                                                    BlastStatusDelta.delta)):
            totals[blast_id, status] += n
    return {key: n for key, n in totals.items() if n != 0}


HourKey = tuple[int, str, str, str]


def hour_recount(engine: Engine) -> dict[HourKey, int]:
    """Recipients per (blast, measure, UTC hour, status), counted in Python from the rows."""
    counts: Counter[HourKey] = Counter()
    with transaction(engine) as s:
        rows = s.execute(select(BlastRecipient.blast_id, BlastRecipient.status, BlastRecipient.sent_at,
                                BlastRecipient.read_timestamp, BlastRecipient.replied_at,
                                BlastRecipient.closed_at))
        for blast_id, status, sent, read, replied, closed in rows:
            # A read or reply time that is the close's own was given by a sale closed by hand (0005).
            read, replied = (None if at == closed else at for at in (read, replied))
            measures = (("sent", sent, status), ("read", read, ""), ("replied", replied, ""))
            for what, at, kept_status in measures:
                if at is not None:
                    counts[blast_id, what, at.astimezone(dt.UTC).strftime("%Y-%m-%d %H"), kept_status] += 1
    return dict(counts)


def hour_rollups(engine: Engine) -> dict[HourKey, int]:
    totals: Counter[HourKey] = Counter()
    c, d = BlastHourCount, BlastHourDelta
    with transaction(engine) as s:
        for *key, n in s.execute(select(c.blast_id, c.what, c.hour, c.status, c.recipients)):
            totals[tuple(key)] += n
        for *key, n in s.execute(select(d.blast_id, d.what, d.hour, d.status, d.delta)):
            totals[tuple(key)] += n
    return {key: n for key, n in totals.items() if n != 0}


def assert_rollups_equal_recount(engine: Engine) -> None:
    assert rollups(engine) == recount(engine)
    assert hour_rollups(engine) == hour_recount(engine)
    with transaction(engine) as s:
        fold_rollup_deltas(s)
    assert rollups(engine) == recount(engine)
    assert hour_rollups(engine) == hour_recount(engine)
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(BlastStatusDelta)) == 0
        assert s.scalar(select(func.count()).select_from(BlastHourDelta)) == 0
        blasts = set(s.scalars(select(Blast.id)))
        kept = {*s.scalars(select(BlastStatusCount.blast_id)), *s.scalars(select(BlastHourCount.blast_id))}
    assert kept <= blasts, "rollup rows left behind for deleted blasts"


def expected_funnel(counts: dict[tuple[int, str], int], blast_ids: set[int]) -> Funnel:
    """The funnel's definitions applied to a recount, in Python."""
    by_status: Counter[str] = Counter()
    for (blast_id, status), n in counts.items():
        if blast_id in blast_ids:
            by_status[status] += n
    stages = {stage.value: sum(n for s, n in by_status.items() if RANK[Status(s)] >= stage.min_rank)
              for stage in Stage}
    return Funnel(
        total=sum(by_status.values()),
        waiting=by_status["QUEUED"] + by_status["SENDING"],
        failed=by_status["FAILED"],
        unknown=by_status["UNKNOWN"],
        **stages,
    )


def new_blast(engine: Engine, *, tag: str = "Promo", n: int = 0, status: str = "QUEUED") -> int:
    with transaction(engine) as s:
        blast = Blast(blast_tag=tag, follow_up_stage="Initial", state="sending", device="d1")
        s.add(blast)
        s.flush()
        add_recipients(s, blast.id, n, status)
        return blast.id


_phones = iter(range(10**9))


def add_recipients(session, blast_id: int, n: int, status: str, **times: dt.datetime | None) -> None:  # type: ignore[no-untyped-def]
    if n:
        session.execute(insert(BlastRecipient), [
            {"blast_id": blast_id, "phone_number": f"+6013{next(_phones):07d}", "status": status, **times}
            for _ in range(n)
        ])


TIMES = ("sent_at", "read_timestamp", "replied_at", "closed_at")
DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def random_time(rng: random.Random) -> dt.datetime | None:
    """None, an hour's first or last microsecond, or any moment over three days."""
    hour = DAY + dt.timedelta(hours=rng.randrange(72))
    return rng.choice([None, hour, hour + dt.timedelta(hours=1, microseconds=-1),
                       hour + dt.timedelta(seconds=rng.randrange(3600))])


def recipient_ids(engine: Engine, blast_id: int | None = None) -> list[int]:
    with transaction(engine) as s:
        query = select(BlastRecipient.id).order_by(BlastRecipient.id)
        if blast_id is not None:
            query = query.where(BlastRecipient.blast_id == blast_id)
        return list(s.scalars(query))


# --- every write path, one at a time ---------------------------------------------------------


def test_inserts_and_engine_moves_are_counted(engine: Engine) -> None:
    blast_id = new_blast(engine, n=5)
    ids = recipient_ids(engine, blast_id)
    with transaction(engine) as s:
        apply_status(s, recipient_id=ids[0], status="READ_ACK", source="webhook")
        apply_status(s, recipient_id=ids[1], status="PENDING", source="send", known_old=Status.QUEUED)
        apply_status(s, recipient_id=ids[2], status="QUEUED", source="manual", manual=True)  # no change
        apply_status(s, recipient_id=ids[0], status="DELIVERY_ACK", source="webhook")  # late: no change
    assert rollups(engine) == {(blast_id, "QUEUED"): 3, (blast_id, "READ_ACK"): 1, (blast_id, "PENDING"): 1}
    assert_rollups_equal_recount(engine)


def test_worker_claims_releases_and_settles_are_counted(engine: Engine) -> None:
    blast_id = new_blast(engine, n=3)
    now = dt.datetime.now(dt.UTC)
    with transaction(engine) as s:
        first = queue.claim_next(s, device="d1", worker="w", now=now, lease=LEASE)
        second = queue.claim_next(s, device="d1", worker="w", now=now, lease=LEASE)
    assert first is not None and second is not None
    assert rollups(engine) == {(blast_id, "QUEUED"): 1, (blast_id, "SENDING"): 2}
    with transaction(engine) as s:
        queue.release(s, claim=first, worker="w", retry_at=None, error="busy")
        queue.settle(s, claim=second, status=Status.SERVER_ACK, at=now, event={}, updates={})
    assert rollups(engine) == {(blast_id, "QUEUED"): 2, (blast_id, "SERVER_ACK"): 1}
    with transaction(engine) as s:
        queue.claim_next(s, device="d1", worker="w", now=now, lease=-LEASE)  # already expired
        assert len(queue.expire_leases(s, now=now)) == 1
    assert rollups(engine)[blast_id, "UNKNOWN"] == 1
    assert_rollups_equal_recount(engine)


def test_bulk_updates_deletes_and_moves_between_blasts_are_counted(engine: Engine) -> None:
    one, two = new_blast(engine, n=6, status="READ_ACK"), new_blast(engine, n=2, status="PENDING")
    ids = recipient_ids(engine, one)
    with transaction(engine) as s:
        s.execute(update(BlastRecipient).where(BlastRecipient.id.in_(ids[:3])).values(status="CLOSED"))
        s.execute(update(BlastRecipient).where(BlastRecipient.id == ids[3]).values(blast_id=two))
        s.execute(update(BlastRecipient).where(BlastRecipient.id == ids[4]).values(contact_name="no move"))
        s.execute(delete(BlastRecipient).where(BlastRecipient.id == ids[5]))
    assert rollups(engine) == {(one, "CLOSED"): 3, (one, "READ_ACK"): 1, (two, "READ_ACK"): 1,
                               (two, "PENDING"): 2}
    assert_rollups_equal_recount(engine)


def test_deleting_a_blast_removes_its_rollups_through_the_cascade(engine: Engine) -> None:
    gone, kept = new_blast(engine, n=4, status="PENDING"), new_blast(engine, n=2, status="REPLIED")
    with transaction(engine) as s:
        apply_status(s, recipient_id=recipient_ids(engine, gone)[0], status="READ_ACK", source="webhook")
    with transaction(engine) as s:
        s.delete(s.get(Blast, gone))
    assert rollups(engine) == {(kept, "REPLIED"): 2}
    assert_rollups_equal_recount(engine)


def test_rollup_rows_of_a_deleted_blast_never_linger(engine: Engine) -> None:
    blast_id = new_blast(engine, n=3, status="PENDING")
    with transaction(engine) as s:
        s.execute(update(BlastRecipient).values(status="DELIVERY_ACK"))
        s.execute(delete(Blast).where(Blast.id == blast_id))
    with transaction(engine) as s:
        fold_rollup_deltas(s)
        assert s.scalar(select(func.count()).select_from(BlastStatusCount)) == 0
        assert s.scalar(select(func.count()).select_from(BlastStatusDelta)) == 0


def test_the_funnel_reads_its_own_transactions_writes(engine: Engine) -> None:
    blast_id = new_blast(engine, n=2, status="PENDING")
    with transaction(engine) as s:
        s.execute(update(BlastRecipient).values(status="REPLIED"))
        assert funnel(s, filters=FunnelFilter(blast_ids=(blast_id,))).replied == 2


@pytest.mark.postgres_only  # SQLite has no TRUNCATE; its DELETE fires the row triggers
def test_truncating_recipients_empties_the_rollups(engine: Engine) -> None:
    new_blast(engine, n=3)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE blast_recipients CASCADE"))
    assert rollups(engine) == {} == recount(engine)


def test_the_migration_backfills_existing_recipients(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        downgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM blasts"))
            conn.execute(text("INSERT INTO blasts (id, blast_tag, state) VALUES (41, 'Raya', 'completed')"))
            sent, read = DAY + dt.timedelta(hours=9, minutes=59), DAY + dt.timedelta(hours=10, minutes=5)
            conn.execute(insert(BlastRecipient.__table__), [
                {"blast_id": 41, "phone_number": "+60111", "status": "READ_ACK", "sent_at": sent,
                 "read_timestamp": read},
                {"blast_id": 41, "phone_number": "+60112", "status": "READ_ACK", "sent_at": sent,
                 "read_timestamp": read + dt.timedelta(hours=1)},
                {"blast_id": 41, "phone_number": "+60113", "status": "FAILED", "sent_at": None,
                 "read_timestamp": None},
            ])
        migrate(engine)
        assert rollups(engine) == {(41, "READ_ACK"): 2, (41, "FAILED"): 1} == recount(engine)
        assert hour_rollups(engine) == {
            (41, "sent", "2026-03-02 09", "READ_ACK"): 2,
            (41, "read", "2026-03-02 10", ""): 1, (41, "read", "2026-03-02 11", ""): 1,
        } == hour_recount(engine)
        with transaction(engine) as s:  # and the triggers work from there on
            add_recipients(s, 41, 1, "QUEUED")
        assert_rollups_equal_recount(engine)
    finally:
        migrate(engine)  # the PostgreSQL template database is shared by later tests
        engine.dispose()


def test_a_sale_closed_by_hand_is_no_read_or_reply_in_the_hours(engine: Engine) -> None:
    """Closing someone who never read or replied stamps both with the close's time: those are
    left out of 'read' and 'replied'. Someone who replied, then was closed, still counts; a
    close undone by hand gives the reply time back to the hours."""
    blast_id = new_blast(engine, n=2, status="SERVER_ACK")
    quiet, answered = recipient_ids(engine, blast_id)
    replied_at, closed_at = DAY + dt.timedelta(hours=9, minutes=5), DAY + dt.timedelta(hours=15)
    with transaction(engine) as s:
        apply_status(s, recipient_id=answered, status="REPLIED", source="webhook", at=replied_at)
        for rid in (quiet, answered):
            apply_status(s, recipient_id=rid, status="CLOSED", source="import", at=closed_at)
    activity = {k: n for k, n in hour_rollups(engine).items() if k[1] != "sent"}
    assert activity == {(blast_id, "read", "2026-03-02 09", ""): 1,
                        (blast_id, "replied", "2026-03-02 09", ""): 1}
    with transaction(engine) as s:
        apply_status(s, recipient_id=quiet, status="REPLIED", source="manual", manual=True)
    assert hour_rollups(engine)[blast_id, "replied", "2026-03-02 15", ""] == 1
    assert_rollups_equal_recount(engine)


# --- random mixes ---------------------------------------------------------------------------


OPERATIONS = ("insert", "move", "manual", "claim", "settle", "bulk", "delete", "delete_blast",
              "new_blast", "rehome", "fold", "stamp", "bulk_stamp", "close", "bulk_close")


def run_operation(engine: Engine, op: str, rng: random.Random) -> None:
    """One random write, in its own transaction, through the code paths the product uses."""
    with transaction(engine) as s:
        blasts = list(s.scalars(select(Blast.id)))
        ids = list(s.scalars(select(BlastRecipient.id)))
        if op == "new_blast" or not blasts:
            s.add(Blast(blast_tag=rng.choice(["A", "B"]), state="sending", device="d1"))
        elif op == "insert":
            times = {c: random_time(rng) for c in TIMES} if rng.random() < 0.5 else {}
            add_recipients(s, rng.choice(blasts), rng.randint(1, 4), rng.choice(STATUSES), **times)
        elif op == "stamp" and ids:
            s.execute(update(BlastRecipient).where(BlastRecipient.id == rng.choice(ids))
                      .values({c: random_time(rng) for c in rng.sample(TIMES, rng.randint(1, 3))}))
        elif op == "bulk_stamp":
            s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == rng.choice(blasts))
                      .values({rng.choice(TIMES): random_time(rng), "status": rng.choice(STATUSES)}))
        elif op in ("move", "manual") and ids:
            apply_status(s, recipient_id=rng.choice(ids), status=rng.choice(STATUSES), source="manual",
                         manual=op == "manual")
        elif op == "claim":
            queue.claim_next(s, device="d1", worker="w", now=dt.datetime.now(dt.UTC), lease=LEASE)
        elif op == "settle":
            claimed = s.scalars(select(BlastRecipient.id).where(BlastRecipient.status == "SENDING")).first()
            if claimed is not None:
                apply_status(s, recipient_id=claimed, status=rng.choice(["PENDING", "FAILED"]),
                             source="send", known_old=Status.SENDING)
        elif op == "bulk":
            s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == rng.choice(blasts))
                      .values(status=rng.choice(STATUSES)))
        elif op == "delete" and ids:
            s.execute(delete(BlastRecipient).where(BlastRecipient.id.in_(rng.sample(ids, min(2, len(ids))))))
        elif op == "delete_blast":
            s.execute(delete(Blast).where(Blast.id == rng.choice(blasts)))
        elif op == "rehome" and ids:
            s.execute(update(BlastRecipient).where(BlastRecipient.id == rng.choice(ids))
                      .values(blast_id=rng.choice(blasts)))
        elif op == "fold":
            fold_rollup_deltas(s)
        elif op == "close" and ids:  # a sale closed by hand: skipped stages take its time
            apply_status(s, recipient_id=rng.choice(ids), status="CLOSED", source="manual",
                         at=random_time(rng) or DAY)
        elif op == "bulk_close":
            s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == rng.choice(blasts))
                      .values(closed_at=BlastRecipient.replied_at))


def test_a_long_random_mix_of_writes(engine: Engine) -> None:
    rng = random.Random(20261126)
    for step in range(300):
        run_operation(engine, rng.choice(OPERATIONS), rng)
        if step % 50 == 49:
            assert rollups(engine) == recount(engine), f"after step {step}"
            assert hour_rollups(engine) == hour_recount(engine), f"after step {step}"
    assert_rollups_equal_recount(engine)
    counts = recount(engine)
    with transaction(engine) as s:
        for tag in ("A", "B"):
            blast_ids = set(s.scalars(select(Blast.id).where(Blast.blast_tag == tag)))
            assert funnel(s, filters=FunnelFilter(tags=(tag,))) == expected_funnel(counts, blast_ids)
        for row in funnel_by_blast(s):
            assert row.funnel == expected_funnel(counts, {row.blast_id})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.sampled_from(OPERATIONS), min_size=1, max_size=25), seed=st.integers(0, 2**16))
def test_any_sequence_of_writes_keeps_rollups_equal_to_a_recount(engine: Engine, ops: list[str],
                                                                 seed: int) -> None:
    rng = random.Random(seed)
    for op in ops:
        run_operation(engine, op, rng)
    assert rollups(engine) == recount(engine)
    assert hour_rollups(engine) == hour_recount(engine)


# --- concurrency on PostgreSQL ----------------------------------------------------------------


@pytest.mark.postgres_only
def test_a_concurrent_burst_on_one_blast_neither_waits_nor_miscounts(engine: Engine) -> None:
    """Eight writers change statuses of one blast at once, several per transaction and in
    opposite orders: with counters updated in place that would deadlock; with deltas it
    cannot, and the totals still match."""
    blast_id = new_blast(engine, n=400, status="PENDING")
    ids = recipient_ids(engine, blast_id)
    ladder = ["PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ_ACK", "REPLIED", "CLOSED"]
    with transaction(engine) as s:  # mixed starting points: each transaction locks in its own order
        for k, start in enumerate(ladder[:4]):
            s.execute(update(BlastRecipient).where(BlastRecipient.id.in_(ids[k::4])).values(status=start))
    errors: list[BaseException] = []

    def writer(share: list[int], seed: int) -> None:
        rng = random.Random(seed)
        try:
            for chunk in (share[i:i + 4] for i in range(0, len(share), 4)):
                with transaction(engine) as s:
                    for recipient_id in sorted(chunk, reverse=seed % 2 == 1):
                        apply_status(s, recipient_id=recipient_id, status=rng.choice(ladder),
                                     source="webhook")
                    if rng.random() < 0.2:
                        add_recipients(s, blast_id, 1, "QUEUED")
        except BaseException as exc:  # collected: an assertion in a thread would be lost
            errors.append(exc)

    def folder(stop: threading.Event) -> None:
        while not stop.is_set():
            with transaction(engine) as s:
                fold_rollup_deltas(s)

    stop = threading.Event()
    fold_thread = threading.Thread(target=folder, args=(stop,))
    fold_thread.start()
    threads = [threading.Thread(target=writer, args=(ids[i::8], i)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    fold_thread.join()
    assert not errors, f"{len(errors)} writers failed, first: {str(errors[0])[:300]}"
    assert_rollups_equal_recount(engine)
    with transaction(engine) as s:
        assert sum(status_counts(s, filters=FunnelFilter(blast_ids=(blast_id,))).values()) == len(
            recipient_ids(engine, blast_id))


@pytest.mark.postgres_only  # SQLite's triggers count in place and leave no deltas
def test_one_update_of_many_rows_journals_each_move_once(engine: Engine) -> None:
    """The update triggers run once a statement (migration 0019): 200 recipients moved by one
    UPDATE leave one status delta row per (blast, status) and one hour delta row per
    (blast, measure, hour, status), not a pair for each recipient; an UPDATE that moves no
    count leaves none."""
    at = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)
    blast_id = new_blast(engine, n=200, status="SERVER_ACK")
    with transaction(engine) as s:
        s.execute(update(BlastRecipient).values(sent_at=at))
        fold_rollup_deltas(s)
    with transaction(engine) as s:
        s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == blast_id)
                  .values(status="READ_ACK", read_timestamp=at + dt.timedelta(minutes=5)))
        s.execute(update(BlastRecipient).values(message_text="no count moves"))
    with transaction(engine) as s:
        deltas = s.execute(select(BlastStatusDelta.status, BlastStatusDelta.delta)).all()
        hours = s.execute(select(BlastHourDelta.what, BlastHourDelta.hour, BlastHourDelta.status,
                                 BlastHourDelta.delta)).all()
    assert sorted(deltas) == [("READ_ACK", 200), ("SERVER_ACK", -200)]
    assert sorted(hours) == [("read", "2026-03-02 09", "", 200), ("sent", "2026-03-02 09", "READ_ACK", 200),
                             ("sent", "2026-03-02 09", "SERVER_ACK", -200)]
    assert_rollups_equal_recount(engine)


@pytest.mark.postgres_only  # SQLite's triggers count in place and leave no deltas
def test_the_send_workers_housekeeping_folds_the_deltas(engine: Engine) -> None:
    from core.config import Settings
    from core.sending.worker import SendWorker

    blast_id = new_blast(engine, n=3, status="PENDING")
    with transaction(engine) as s:
        s.execute(update(BlastRecipient).values(status="READ_ACK"))
        assert s.scalar(select(func.count()).select_from(BlastStatusDelta)) > 0
    worker = SendWorker(engine=engine, client=None, settings=Settings(_env_file=None))  # type: ignore[arg-type]
    worker.housekeeping(force=True)
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(BlastStatusDelta)) == 0
        assert s.get(BlastStatusCount, (blast_id, "READ_ACK")).recipients == 3
    assert_rollups_equal_recount(engine)
