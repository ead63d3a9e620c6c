"""Funnel answers kept in memory on PostgreSQL: used while nothing they count has moved, dropped
when a change commits (another process's through the database's change log, this process's at
once), and never trusted while the change log cannot be read."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import Engine, event, text, update

from core import rollup_cache
from core.db import downgrade, make_engine, migrate, reading, transaction
from core.funnel import (
    Funnel,
    FunnelFilter,
    fold_rollup_deltas,
    funnel,
    funnel_by_blast,
    status_counts,
    stuck_at_each_stage,
)
from core.models import Base, BlastRecipient
from core.statuses import Status
from tests.support.factories import make_blast, make_recipient

STATUSES = [s.value for s in Status]


def _connect(engine: Engine) -> psycopg.Connection:
    """A connection outside SQLAlchemy: its writes reach this process only through the change
    log, as another process's would."""
    args, params = engine.dialect.create_connect_args(engine.url)
    return psycopg.connect(*args, **{**params, "autocommit": True})


def _until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.01)


_marks = iter(range(900_000_000, 999_999_999))


def _caught_up(watch: rollup_cache.Watch, conn: psycopg.Connection) -> None:
    """Wait until the watch has read every change `conn` committed so far: once a last one,
    naming an unused blast number, is read, every change committed before it has been."""
    mark = next(_marks)
    conn.execute("INSERT INTO blast_count_changes (xid, blasts, at) "
                 "VALUES (pg_current_xact_id()::text::bigint, %s, clock_timestamp())", (str(mark),))
    _until(lambda: mark in watch._touched, "the watch to read the changes")


@pytest.fixture(scope="module")
def own_database(pg_server) -> str | None:  # type: ignore[no-untyped-def]
    """A database of these tests' own on the run's PostgreSQL server: they count the answers
    kept, and a server or simulator another test left running may still write to the shared
    one. None where the run has no server of its own (TEST_POSTGRES_URL)."""
    if pg_server is None:
        return None
    with psycopg.connect(pg_server.url().replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS rollup_cache_tests")
        admin.execute("CREATE DATABASE rollup_cache_tests")
    url = pg_server.url("rollup_cache_tests")
    migrated = make_engine(url)
    migrate(migrated)
    migrated.dispose()
    return url


@pytest.fixture
def engine(own_database: str | None, pg_template_url: str | None) -> Iterator[Engine]:
    url = own_database or pg_template_url
    if url is None:
        pytest.skip("no PostgreSQL server on this machine")
    eng = make_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with eng.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield eng
    eng.dispose()


@pytest.fixture
def watch(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[rollup_cache.Watch]:
    # Looks taken late on a busy machine must not turn the hits these tests count into
    # misses; the tests of trust itself set it back.
    monkeypatch.setattr(rollup_cache, "TRUST_SECONDS", 60.0)
    found = rollup_cache.watch(engine)
    assert found is not None
    yield found
    rollup_cache.unwatch(engine)


def _listening(watch: rollup_cache.Watch, engine: Engine) -> None:
    with reading(engine) as s:
        funnel(s)  # the first question starts the watch
    _until(watch.trusted, "the watch to read the log")


def _seed(engine: Engine) -> dict[str, int]:
    with transaction(engine) as s:
        a = make_blast(s, blast_tag="Promo")
        b = make_blast(s, blast_tag="Launch")
        for status in ("READ_ACK", "DELIVERY_ACK", "SERVER_ACK"):
            make_recipient(s, a, status=status)
            make_recipient(s, b, status=status)
        return {"a": a.id, "b": b.id}


def _read(engine: Engine, filters: FunnelFilter) -> Funnel:
    with reading(engine) as s:
        return funnel(s, filters=filters)


def _recount(engine: Engine, filters: FunnelFilter) -> Funnel:
    """The same question in a writing transaction: never answered from memory."""
    with transaction(engine) as s:
        return funnel(s, filters=filters)


def test_an_answer_is_kept_until_a_change_to_its_blasts_commits(engine: Engine, watch) -> None:
    ids = _seed(engine)
    _listening(watch, engine)
    only_a, promo = FunnelFilter(blast_ids=(ids["a"],)), FunnelFilter(tags=("Promo",))
    first = _read(engine, only_a)
    _read(engine, promo)
    hits = watch.hits
    assert _read(engine, only_a) == first and _read(engine, promo) == first
    assert watch.hits == hits + 2

    with _connect(engine) as other:
        # Blast B moves: A's kept answer stays; the tag's is read again (a tag can gain blasts).
        other.execute("UPDATE blast_recipients SET status = 'READ_ACK' WHERE blast_id = %s "
                      "AND status = 'SERVER_ACK'", (ids["b"],))
        _caught_up(watch, other)
        hits = watch.hits
        assert _read(engine, only_a) == first
        assert watch.hits == hits + 1
        assert _read(engine, promo) == first
        assert watch.hits == hits + 1  # read again, not answered from memory

        # A moves: its answer is read again, and is the new one.
        other.execute("UPDATE blast_recipients SET status = 'REPLIED' WHERE blast_id = %s "
                      "AND status = 'READ_ACK'", (ids["a"],))
        _caught_up(watch, other)
        now = _read(engine, only_a)
        assert now.replied == 1 and now == _recount(engine, only_a)


def test_a_change_that_commits_while_a_question_is_answered_is_not_kept(engine: Engine, watch) -> None:
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    with _connect(engine) as other:
        def change_during_the_read(conn, cursor, statement, *_) -> None:  # type: ignore[no-untyped-def]
            # The question has read the old counts; the change commits and is read before the
            # answer is kept.
            if "blast_status_counts" in statement:
                other.execute("UPDATE blast_recipients SET status = 'FAILED' WHERE blast_id = %s",
                              (ids["a"],))
                _caught_up(watch, other)

        event.listen(engine, "after_cursor_execute", change_during_the_read)
        try:
            old = _read(engine, only_a)
        finally:
            event.remove(engine, "after_cursor_execute", change_during_the_read)
    assert old.failed == 0
    assert _read(engine, only_a).failed == 3


def test_a_change_begun_before_another_and_committed_after_it_is_read(engine: Engine, watch) -> None:
    """The log is read by snapshot, not by the order its entries were written in."""
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    _read(engine, only_a)
    with _connect(engine) as slow, _connect(engine) as quick:
        slow.execute("BEGIN")
        slow.execute("UPDATE blast_recipients SET status = 'FAILED' WHERE blast_id = %s", (ids["a"],))
        quick.execute("UPDATE blast_recipients SET status = 'FAILED' WHERE blast_id = %s", (ids["b"],))
        _caught_up(watch, quick)  # the watch has looked past the later entry
        assert _read(engine, only_a).failed == 0
        slow.execute("COMMIT")
        _caught_up(watch, slow)
    assert _read(engine, only_a).failed == 3


def test_folding_trims_what_was_committed_ten_minutes_ago(engine: Engine) -> None:
    """Entries go once a snapshot saved ten minutes ago sees them: not by when they were written,
    since a transaction may commit long after it wrote (its entry must still be read)."""
    def logged() -> set[str]:
        with transaction(engine) as s:
            return set(s.scalars(text("SELECT blasts FROM blast_count_changes")))

    def add(conn: psycopg.Connection, blasts: str) -> None:
        conn.execute("INSERT INTO blast_count_changes (xid, blasts, at) VALUES "
                     "(pg_current_xact_id()::text::bigint, %s, clock_timestamp() - interval '1 hour')",
                     (blasts,))

    with _connect(engine) as before, _connect(engine) as slow:
        add(before, "committed before")
        slow.execute("BEGIN")
        add(slow, "written before, committed after")
        with transaction(engine) as s:
            fold_rollup_deltas(s)  # saves the snapshot to trim by, trims nothing yet
        slow.execute("COMMIT")
        add(before, "committed after")
    assert {"committed before", "written before, committed after", "committed after"} <= logged()
    with transaction(engine) as s:  # ten minutes later
        s.execute(text("UPDATE app_state SET updated_at = updated_at - interval '11 minutes' "
                       "WHERE key = 'count_changes_trimmed_by'"))
    with transaction(engine) as s:
        fold_rollup_deltas(s)
    left = logged()
    assert "committed before" not in left
    assert {"written before, committed after", "committed after"} <= left


@pytest.mark.parametrize("damaged", ['"not an object"', '{"snapshot": "1:2:x; DROP"}', '{"snapshot": 7}'])
def test_a_damaged_trim_snapshot_is_replaced_not_failed_on(engine: Engine, damaged: str) -> None:
    with transaction(engine) as s:
        s.execute(text("INSERT INTO app_state (key, value, updated_at) VALUES "
                       "('count_changes_trimmed_by', :v, now() - interval '1 hour')"), {"v": damaged})
    with transaction(engine) as s:
        fold_rollup_deltas(s)
    with transaction(engine) as s:
        kept = s.scalar(text("SELECT value FROM app_state WHERE key = 'count_changes_trimmed_by'"))
    assert kept != damaged and '"snapshot"' in kept


def test_this_process_sees_its_own_writes_at_once(engine: Engine, watch, monkeypatch) -> None:
    """A page that records a sale and draws its funnel again must show the sale, without
    waiting for the change log."""
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    _read(engine, only_a)
    _read(engine, only_a)
    # Changes read late: only this process's own hooks can make the answers right at once.
    heard = watch.moved
    monkeypatch.setattr(watch, "moved", lambda payload: (time.sleep(1), heard(payload)))
    with transaction(engine) as s:
        s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == ids["a"],
                                               BlastRecipient.status == "READ_ACK")
                  .values(status=Status.CLOSED.value))
        # Another page reads (and keeps) the counts before this commits.
        assert _read(engine, only_a).closed == 0
    assert _read(engine, only_a).closed == 1
    # An autocommitted statement has no commit of its own. (The send worker's statements go
    # to the driver directly: read from the change log, as another process's are.)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("UPDATE blast_recipients SET status = 'FAILED' WHERE blast_id = :a "
                          "AND status = 'SERVER_ACK'"), {"a": ids["a"]})
    assert _read(engine, only_a).failed == 1


def test_a_read_inside_a_writing_transaction_is_never_kept(engine: Engine, watch) -> None:
    """What an open transaction wrote may yet be rolled back: only `reading` answers are kept."""
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    with pytest.raises(RuntimeError), transaction(engine) as s:
        s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == ids["a"])
                  .values(status=Status.FAILED.value))
        hits = watch.hits
        assert funnel(s, filters=only_a).failed == 3
        assert funnel(s, filters=only_a).failed == 3
        assert watch.hits == hits  # neither answered from memory nor kept
        raise RuntimeError("changed my mind")
    assert _read(engine, only_a).failed == 0
    assert _read(engine, only_a).failed == 0


def test_a_blast_made_later_joins_a_kept_tag_answer(engine: Engine, watch) -> None:
    _seed(engine)
    _listening(watch, engine)
    promo = FunnelFilter(tags=("Promo",))
    before = _read(engine, promo)
    assert _read(engine, promo) == before
    with _connect(engine) as other:
        new = other.execute("INSERT INTO blasts (blast_tag, follow_up_stage, message_template, state) "
                            "VALUES ('Promo', 'Initial', 'Hi', 'completed') RETURNING id").fetchone()[0]
        other.execute("INSERT INTO blast_recipients (blast_id, phone_number, status) "
                      "VALUES (%s, '+60123000001', 'READ_ACK')", (new,))
        _caught_up(watch, other)
    after = _read(engine, promo)
    assert after.total == before.total + 1
    assert new in [b.blast_id for b in _by_blast(engine, promo)]


def _by_blast(engine: Engine, filters: FunnelFilter):  # type: ignore[no-untyped-def]
    with reading(engine) as s:
        return funnel_by_blast(s, filters=filters)


def test_a_watch_that_cannot_read_the_log_means_reading_the_database(engine: Engine, watch,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(rollup_cache, "RETRY_SECONDS", 600)  # not again until told
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    _read(engine, only_a)
    with _connect(engine) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (watch.backend_pid,))
        _until(lambda: not watch.trusted(), "the watch to find its connection gone")
        other.execute("UPDATE blast_recipients SET status = 'FAILED' WHERE blast_id = %s", (ids["a"],))
        hits = watch.hits
        assert _read(engine, only_a).failed == 3
        assert _read(engine, only_a).failed == 3
        assert watch.hits == hits and not watch.trusted()
    # Once it looks again, it answers from memory again.
    monkeypatch.setattr(rollup_cache, "RETRY_SECONDS", 0.2)
    watch.stop()
    _read(engine, only_a)
    _until(watch.trusted, "the watch to read the log again")
    _read(engine, only_a)
    hits = watch.hits
    assert _read(engine, only_a).failed == 3
    assert watch.hits == hits + 1


def test_a_watch_whose_connection_stalls_is_not_trusted(engine: Engine, watch, monkeypatch) -> None:
    """A connection that stops answering without an error (a stalled server, a firewall): its
    looks stop coming back, memory is set aside within TRUST_SECONDS, and used again once they
    come back."""
    monkeypatch.setattr(rollup_cache, "TRUST_SECONDS", 1.0)
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    _read(engine, only_a)
    stalled = watch.backend_pid
    try:
        os.kill(stalled, signal.SIGSTOP)  # the looking server process freezes, its socket open
    except PermissionError:
        pytest.skip("cannot pause the database's server process here")
    try:
        with _connect(engine) as other:
            other.execute("UPDATE blast_recipients SET status = 'FAILED' WHERE blast_id = %s", (ids["a"],))
        _until(lambda: not watch.trusted(), "memory to be set aside")
        hits = watch.hits
        assert _read(engine, only_a).failed == 3
        assert watch.hits == hits
    finally:
        os.kill(stalled, signal.SIGCONT)
    _until(watch.trusted, "the watch to look again")
    monkeypatch.setattr(rollup_cache, "TRUST_SECONDS", 60.0)  # hits counted on a busy machine
    _read(engine, only_a)
    hits = watch.hits
    assert _read(engine, only_a).failed == 3
    assert watch.hits == hits + 1


def test_memory_is_set_aside_while_a_log_trigger_is_off(engine: Engine, watch, monkeypatch) -> None:
    """With a trigger switched off changes would go unlogged: each look finds it so."""
    monkeypatch.setattr(rollup_cache, "RETRY_SECONDS", 0.2)
    monkeypatch.setattr(rollup_cache, "TRUST_SECONDS", 1.0)
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    _read(engine, only_a)
    with _connect(engine) as other:
        other.execute("ALTER TABLE blast_recipients DISABLE TRIGGER trg_blast_recipients_changes_update")
        try:
            _until(lambda: not watch.trusted(), "memory to be set aside")
            other.execute("UPDATE blast_recipients SET status = 'FAILED' WHERE blast_id = %s", (ids["a"],))
            assert _read(engine, only_a).failed == 3
        finally:
            other.execute("ALTER TABLE blast_recipients ENABLE TRIGGER trg_blast_recipients_changes_update")
    _until(watch.trusted, "the watch to trust the log again")


def test_an_answer_is_read_again_after_keep_seconds(engine: Engine, watch, monkeypatch) -> None:
    """Changes nobody announced (written with triggers off, as a restore may) last that long."""
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    _read(engine, only_a)
    monkeypatch.setattr(rollup_cache, "KEEP_SECONDS", 0.0)
    hits = watch.hits
    _read(engine, only_a)
    assert watch.hits == hits


def test_an_answer_built_on_a_kept_one_is_as_old_as_it(engine: Engine, watch, monkeypatch) -> None:
    """A funnel is made from the status counts: made from kept counts, it expires with them."""
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    now = [time.monotonic()]
    monkeypatch.setattr(watch, "_clock", lambda: now[0])  # a clock of the test's own
    with reading(engine) as s:
        status_counts(s, filters=only_a)
    now[0] += 20
    _read(engine, only_a)  # the funnel, from the counts kept 20 s ago
    now[0] += 20  # the counts 40 s old, the funnel's own reading 20 s
    hits = watch.hits
    _read(engine, only_a)
    assert watch.hits == hits  # past KEEP_SECONDS (30): both read again


def test_kept_answers_are_bounded_and_the_least_asked_go_first(engine: Engine, watch, monkeypatch) -> None:
    monkeypatch.setattr(rollup_cache, "MAX_ANSWERS", 2)
    ids = _seed(engine)
    _listening(watch, engine)
    a, b, both = (FunnelFilter(blast_ids=(ids["a"],)), FunnelFilter(blast_ids=(ids["b"],)),
                  FunnelFilter(blast_ids=(ids["a"], ids["b"])))

    def kept(filters: FunnelFilter) -> bool:
        hits = watch.hits
        with reading(engine) as s:
            status_counts(s, filters=filters)
        return watch.hits == hits + 1

    for filters in (a, b):
        with reading(engine) as s:
            status_counts(s, filters=filters)
    assert kept(a)  # a asked last now: b goes first
    with reading(engine) as s:
        status_counts(s, filters=both)
    assert kept(a) and kept(both) and not kept(b)


def test_folding_the_deltas_and_reads_keep_the_answers(engine: Engine, watch) -> None:
    """Folding moves deltas into the counts without changing a sum, a write elsewhere moves no
    count, and a WITH that only reads writes nothing: none drops what is kept."""
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    _read(engine, only_a)
    with transaction(engine) as s:
        assert fold_rollup_deltas(s) > 0
    with transaction(engine) as s:  # a write to what is not counted
        s.execute(text("INSERT INTO app_state (key, value) VALUES ('test', 'x')"))
    with engine.connect() as conn:
        conn.execute(text("WITH x AS (SELECT 1 AS one) SELECT one FROM x"))
        conn.commit()
    hits = watch.hits
    _read(engine, only_a)
    assert watch.hits == hits + 1
    with transaction(engine) as s:  # a write that matches nothing (the worker's housekeeping)
        s.execute(text("UPDATE blast_recipients SET status = 'FAILED' WHERE id = -1"))
    hits = watch.hits
    _read(engine, only_a)
    assert watch.hits == hits + 1
    with engine.connect() as conn:  # a WITH that writes does drop them
        conn.execute(text("WITH x AS (UPDATE blasts SET name = 'n' WHERE id = :a RETURNING id) "
                          "SELECT count(*) FROM x"), {"a": ids["a"]})
        conn.commit()
    _read(engine, only_a)
    assert watch.hits == hits + 1


def test_the_watch_lets_its_connection_go_when_nobody_asks(engine: Engine, watch, monkeypatch) -> None:
    _listening(watch, engine)
    pid = watch.backend_pid
    monkeypatch.setattr(rollup_cache, "IDLE_SECONDS", 1.0)  # nobody asks from now on

    def connected() -> bool:
        with _connect(engine) as other:
            found = other.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            return found.fetchone()[0] > 0

    _until(lambda: not connected(), "the idle watch to disconnect")
    _until(lambda: not watch.trusted(), "the idle watch to stop trusting memory")
    monkeypatch.setattr(rollup_cache, "IDLE_SECONDS", 120.0)
    _listening(watch, engine)  # the next question starts it again
    assert watch.backend_pid != pid


def test_the_log_names_the_blasts_each_statement_moved(engine: Engine) -> None:
    ids = _seed(engine)
    a, b = ids["a"], ids["b"]
    with _connect(engine) as writer:

        def logged_by(sql: str, *params: object) -> list[str]:
            """What the statement logged, one entry a statement."""
            writer.execute("DELETE FROM blast_count_changes")
            writer.execute(sql, params or None)
            return [row[0] for row in writer.execute("SELECT blasts FROM blast_count_changes ORDER BY id")]

        assert logged_by("UPDATE blast_recipients SET status = 'REPLIED' WHERE blast_id = %s "
                          "AND status = 'READ_ACK'", a) == [str(a)]
        # A polling time or a text moves no count, and says nothing.
        assert logged_by("UPDATE blast_recipients SET message_text = 'x' WHERE blast_id = %s", a) == []
        # A status written again unchanged says nothing either.
        assert logged_by("UPDATE blast_recipients SET status = status WHERE blast_id = %s", b) == []
        moved = logged_by("UPDATE blast_recipients SET status = 'FAILED' WHERE status = 'SERVER_ACK'")
        assert sorted(moved[0].split(",")) == sorted([str(a), str(b)])
        assert logged_by("UPDATE blast_recipients SET blast_id = %s WHERE blast_id = %s "
                          "AND status = 'FAILED'", b, a)[0] in (f"{a},{b}", f"{b},{a}")
        assert logged_by("INSERT INTO blast_recipients (blast_id, phone_number, status) "
                          "VALUES (%s, '+60123000009', 'QUEUED')", a) == [str(a)]
        assert logged_by("DELETE FROM blast_recipients WHERE blast_id = %s "
                          "AND status = 'QUEUED'", a) == [str(a)]
        # Rows renumbered as their status moves are still named (compared by what is counted).
        assert logged_by("UPDATE blast_recipients SET id = id + 100000, status = 'CLOSED' "
                          "WHERE blast_id = %s AND status = 'REPLIED'", a) == [str(a)]
        assert logged_by("UPDATE blast_recipients SET id = id - 100000 WHERE id > 100000") == []
        assert logged_by("UPDATE blasts SET name = 'Renamed' WHERE id = %s", b) == [str(b)]
        # Nothing matched: nothing to say.
        assert logged_by("UPDATE blasts SET name = 'x' WHERE id = -1") == []
        # More blasts than an entry should carry, and a truncate: every blast.
        assert logged_by("INSERT INTO blasts (blast_tag, follow_up_stage, message_template) "
                          "SELECT 'Bulk', 'Initial', 'Hi' FROM generate_series(1, 2000)") == ["*"]
        # The blast, and its recipients going with it.
        assert logged_by("DELETE FROM blasts WHERE id = %s", a) == [str(a), str(a)]
        assert logged_by("TRUNCATE blasts CASCADE") == ["*", "*"]  # the blasts, their recipients
        # Rolled back: never logged.
        writer.execute("DELETE FROM blast_count_changes")
        writer.execute("BEGIN")
        writer.execute("INSERT INTO blasts (blast_tag, follow_up_stage, message_template) "
                       "VALUES ('x', 'y', 'z')")
        assert writer.execute("SELECT count(*) FROM blast_count_changes").fetchone() == (1,)
        writer.execute("ROLLBACK")
        assert writer.execute("SELECT count(*) FROM blast_count_changes").fetchone() == (0,)


@pytest.fixture
def unwatched(engine: Engine) -> Iterator[Engine]:
    """The same database under another address: its reads are never kept and its commits drop
    nothing, so what it reads is the database's own answer."""
    other = make_engine(engine.url.update_query_dict({"application_name": "recount"})
                        .render_as_string(hide_password=False))
    yield other
    other.dispose()


def test_a_schema_change_drops_every_answer(engine: Engine) -> None:
    def logged() -> list[str]:
        with transaction(engine) as s:
            return list(s.scalars(text("SELECT blasts FROM blast_count_changes ORDER BY id")))

    downgrade(engine, "0016")
    migrate(engine)
    assert logged() == ["*"]
    migrate(engine)  # nothing to change: nothing logged
    assert logged() == ["*"]


def test_each_look_counts_every_log_trigger(engine: Engine) -> None:
    with transaction(engine) as s:
        names = s.scalars(text("SELECT tgname FROM pg_trigger WHERE tgfoid::regproc::text "
                               "LIKE 'blast_counts_log%'")).all()
    assert sorted(names) == sorted(rollup_cache.LOG_TRIGGERS)


def test_answers_equal_a_recount_through_random_changes(engine: Engine, watch, unwatched: Engine) -> None:
    rng = random.Random(17)
    with transaction(engine) as s:
        blasts = [make_blast(s, blast_tag=rng.choice(["Promo", "Launch", "CNY"])) for _ in range(4)]
        for blast in blasts:
            for _ in range(6):
                make_recipient(s, blast, status=rng.choice(STATUSES))
        blast_ids = [b.id for b in blasts]
    _listening(watch, engine)
    questions = [FunnelFilter(), FunnelFilter(tags=("Promo",)), FunnelFilter(tags=("CNY", "Launch")),
                 *[FunnelFilter(blast_ids=(i,)) for i in blast_ids],
                 FunnelFilter(blast_ids=tuple(blast_ids[:2]))]
    phone = iter(range(10_000, 99_999))
    with _connect(engine) as other:
        for step in range(40):
            choice = rng.random()
            target = rng.choice(blast_ids)
            if choice < 0.4:
                other.execute("UPDATE blast_recipients SET status = %s WHERE id = (SELECT id FROM "
                              "blast_recipients WHERE blast_id = %s ORDER BY random() LIMIT 1)",
                              (rng.choice(STATUSES), target))
            elif choice < 0.55:
                other.execute("INSERT INTO blast_recipients (blast_id, phone_number, status) "
                              "VALUES (%s, %s, %s)", (target, f"+60129{next(phone)}", rng.choice(STATUSES)))
            elif choice < 0.7:
                other.execute("DELETE FROM blast_recipients WHERE id = (SELECT id FROM blast_recipients "
                              "WHERE blast_id = %s ORDER BY id LIMIT 1)", (target,))
            elif choice < 0.8:
                other.execute("UPDATE blasts SET blast_tag = %s WHERE id = %s",
                              (rng.choice(["Promo", "Launch", "CNY"]), target))
            elif choice < 0.9:
                other.execute("UPDATE blast_recipients SET blast_id = %s WHERE id = (SELECT id FROM "
                              "blast_recipients WHERE blast_id = %s ORDER BY id LIMIT 1)",
                              (rng.choice(blast_ids), target))
            else:
                with transaction(engine) as s:  # this process's own write
                    s.execute(update(BlastRecipient).where(BlastRecipient.blast_id == target)
                              .values(status=rng.choice(STATUSES)))
            _caught_up(watch, other)
            for question in rng.sample(questions, 4):
                with reading(engine) as s:
                    kept = (funnel(s, filters=question), status_counts(s, filters=question),
                            funnel_by_blast(s, filters=question))
                with reading(unwatched) as s:
                    fresh = (funnel(s, filters=question), status_counts(s, filters=question),
                             funnel_by_blast(s, filters=question))
                assert kept == fresh, f"step {step}: {question}"
    # Memory was used, across changes (each step asks once per question, so a hit is an answer
    # kept from an earlier step).
    assert watch.hits > 40


def test_a_kept_answer_is_a_copy(engine: Engine, watch) -> None:
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    with reading(engine) as s:
        status_counts(s, filters=only_a)["READ_ACK"] = 999
        funnel_by_blast(s, filters=only_a).clear()
    stuck_at_each_stage_kept = _read_stuck(engine, ids["a"])
    stuck_at_each_stage_kept.clear()
    hits = watch.hits
    with reading(engine) as s:
        assert status_counts(s, filters=only_a)["READ_ACK"] == 1
        assert len(funnel_by_blast(s, filters=only_a)) == 1
    assert dict((st, n) for st, n, _ in _read_stuck(engine, ids["a"]))["READ_ACK"] == 1
    assert watch.hits == hits + 3  # all three from memory, as they were before being changed


def _read_stuck(engine: Engine, blast_id: int) -> list[tuple[str, int, float]]:
    with reading(engine) as s:
        return stuck_at_each_stage(s, blast_id=blast_id)


def test_sqlite_is_never_watched(tmp_path) -> None:
    from core.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    migrate(engine)
    assert rollup_cache.watch(engine) is None
    with transaction(engine) as s:
        make_recipient(s, make_blast(s), status="READ_ACK")
    with reading(engine) as s:
        assert funnel(s).read == 1
    engine.dispose()


def test_questions_from_many_threads_agree_with_the_database(engine: Engine, watch) -> None:
    ids = _seed(engine)
    _listening(watch, engine)
    only_a = FunnelFilter(blast_ids=(ids["a"],))
    expected = _recount(engine, only_a)
    wrong: list[Funnel] = []

    def ask() -> None:
        for _ in range(50):
            got = _read(engine, only_a)
            if got != expected:
                wrong.append(got)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert watch.hits > 100
