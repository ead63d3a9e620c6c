"""The same migrations build the same schema on SQLite and PostgreSQL, and round-trip."""

from __future__ import annotations

import subprocess
import sys

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from core.db import alembic_config, current_revision, downgrade, make_engine, migrate
from core.models import Base

PLAN_COLUMNS = {
    "blasts": {
        "id",
        "blast_tag",
        "blast_date",
        "blast_time",
        "follow_up_stage",
        "total_recipients",
        "created_at",
        "updated_at",
    },
    "blast_recipients": {
        "id",
        "blast_id",
        "phone_number",
        "message_id",
        "message_text",
        "status",
        "message_timestamp",
        "message_c2s_timestamp",
        "read_timestamp",
        "replied_at",
        "closed_at",
        "wsapme_message_data",
        "created_at",
        "updated_at",
    },
    "status_history": {"id", "recipient_id", "old_status", "new_status", "changed_at", "source", "metadata"},
}


def _schema(engine: Engine) -> dict[str, set[str]]:
    inspector = inspect(engine)
    return {
        t: {c["name"] for c in inspector.get_columns(t)}
        for t in inspector.get_table_names()
        if t != "alembic_version"
    }


def test_migrated_schema_matches_the_models_and_keeps_the_plans_names(engine: Engine) -> None:
    schema = _schema(engine)
    assert set(schema) == set(Base.metadata.tables)
    for table, columns in PLAN_COLUMNS.items():
        assert columns <= schema[table]
    for table in Base.metadata.tables.values():
        assert schema[table.name] == {c.name for c in table.columns}


def test_message_id_is_nullable_until_sent_and_unique(engine: Engine) -> None:
    inspector = inspect(engine)
    column = next(c for c in inspector.get_columns("blast_recipients") if c["name"] == "message_id")
    assert column["nullable"]
    index = next(i for i in inspector.get_indexes("blast_recipients") if i["name"] == "idx_message_id")
    assert index["unique"]


def test_json_columns_are_jsonb_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        return
    columns = {c["name"]: c for c in inspect(engine).get_columns("blast_recipients")}
    assert type(columns["wsapme_message_data"]["type"]).__name__ == "JSONB"
    assert columns["sent_at"]["type"].timezone


def test_downgrade_to_base_then_upgrade_round_trips(engine: Engine) -> None:
    before = _schema(engine)
    downgrade(engine, "base")
    assert _schema(engine) == {}
    assert current_revision(engine) is None
    migrate(engine)
    assert _schema(engine) == before


def test_migrate_command_on_an_empty_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "core", "migrate"],
        capture_output=True,
        text=True,
        env={"DATABASE_URL": url, "PATH": ""},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert f"revision {head}" in result.stdout
    assert current_revision(make_engine(url)) == head


def test_alembic_by_hand_on_a_database_with_blasts(tmp_path) -> None:
    """`alembic upgrade head`, as the README allows: 0014 rebuilds `blasts` on SQLite, which needs
    foreign keys off (with them on, the recipients would go with the old table)."""
    url = f"sqlite:///{tmp_path / 'by-hand.db'}"
    engine = make_engine(url)
    migrate(engine, "0013")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO blasts (name) VALUES ('a')")
        conn.exec_driver_sql("INSERT INTO blast_recipients (blast_id, phone_number) "
                             "VALUES (1, '60123456789')")
    result = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], capture_output=True,
                            text=True, env={"DATABASE_URL": url, "PATH": ""}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert current_revision(engine) == ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blast_recipients").scalar() == 1


def test_a_reader_never_holds_up_a_writer_on_sqlite(tmp_path) -> None:
    from sqlalchemy import text

    from core.db import reading, transaction

    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(engine)
    with reading(engine) as reader:
        assert reader.execute(text("SELECT count(*) FROM blasts")).scalar() == 0
        with transaction(engine) as writer:  # would wait 30 s for the lock if the reader held it
            writer.execute(
                text("INSERT INTO opt_outs (phone_number, created_at) VALUES ('+601', CURRENT_TIMESTAMP)")
            )
        assert reader.execute(text("SELECT count(*) FROM opt_outs")).scalar() == 0, "a stable snapshot"


def _reloptions(engine: Engine, table: str) -> str | None:
    with engine.connect() as c:
        return c.exec_driver_sql(f"SELECT reloptions FROM pg_class WHERE relname = '{table}'").scalar()


def assert_found_by_blast_and_vacuumed_often(engine: Engine, table: str) -> None:
    """A delta table's index on blast_id, and on PostgreSQL autovacuum after 1,000 dead rows."""
    indexes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes(table)}
    assert indexes[f"idx_{table}_blast"] == ["blast_id"]
    if engine.dialect.name == "postgresql":
        options = _reloptions(engine, table)
        assert "autovacuum_vacuum_threshold=1000" in options
        assert "autovacuum_vacuum_scale_factor=0" in options


def test_status_deltas_are_found_by_blast_and_vacuumed_often_on_postgresql(engine: Engine) -> None:
    assert_found_by_blast_and_vacuumed_often(engine, "blast_status_deltas")
    if engine.dialect.name != "postgresql":
        return
    downgrade(engine, "0002")
    assert _reloptions(engine, "blast_status_deltas") is None
    names = {i["name"] for i in inspect(engine).get_indexes("blast_status_deltas")}
    assert "idx_blast_status_deltas_blast" not in names
    migrate(engine)


def test_reading_on_postgresql_sends_no_begin_and_leaves_pooled_connections_transactional(
    engine: Engine,
) -> None:
    from sqlalchemy import text

    from core.db import reading, transaction

    if engine.dialect.name != "postgresql":
        return
    with reading(engine) as reader:
        assert reader.connection().connection.dbapi_connection.autocommit
        assert reader.execute(text("SELECT count(*) FROM blasts")).scalar() == 0
        assert reader.execute(text("SELECT now() = statement_timestamp()")).scalar(), "no transaction"
    for _ in range(engine.pool.size() + 1):  # every pooled connection, the reader's included
        with transaction(engine) as writer:
            assert not writer.connection().connection.dbapi_connection.autocommit


def test_hour_deltas_are_found_by_blast_and_vacuumed_often_on_postgresql(engine: Engine) -> None:
    assert_found_by_blast_and_vacuumed_often(engine, "blast_hour_deltas")


def test_replies_are_found_by_their_time_from_0007_on(engine: Engine) -> None:
    def indexes() -> dict[str, list[str]]:
        return {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("recipient_replies")}

    assert indexes()["idx_recipient_replies_replied_at"] == ["replied_at", "recipient_id"]
    downgrade(engine, "0006")
    assert "idx_recipient_replies_replied_at" not in indexes()
    migrate(engine)
    assert "idx_recipient_replies_replied_at" in indexes()


def test_replies_known_before_0006_are_kept_as_replies(engine: Engine) -> None:
    import datetime as dt

    from sqlalchemy import select, text

    from core.db import transaction
    from core.models import RecipientReply

    downgrade(engine, "0005")
    replied = dt.datetime(2026, 11, 2, 3, 4, 5, tzinfo=dt.UTC)
    with transaction(engine) as s:
        blast_id = s.execute(text("INSERT INTO blasts (name) VALUES ('Old') RETURNING id")).scalar_one()
        s.execute(
            text("INSERT INTO blast_recipients (blast_id, phone_number, status, replied_at, reply_text) "
                 "VALUES (:b, '+60123456789', 'REPLIED', :at, 'Berapa harga?'), "
                 "(:b, '+60123456780', 'READ_ACK', NULL, NULL)"),
            # As each database keeps a UtcDateTime: SQLite as naive UTC text.
            {"b": blast_id,
             "at": replied if engine.dialect.name == "postgresql" else "2026-11-02 03:04:05.000000"},
        )
    migrate(engine)
    with transaction(engine) as s:
        kept = [(r.replied_at, r.text, r.inbox_id) for r in s.scalars(select(RecipientReply))]
    assert kept == [(replied, "Berapa harga?", None)]


def test_blasts_paused_before_0010_say_who_paused_them_from_their_words(engine: Engine) -> None:
    from sqlalchemy import select, text

    from core.db import transaction
    from core.models import Blast

    downgrade(engine, "0009")
    reasons = {
        "Paused by you.": "person",
        "It was scheduled for 02 Nov 09:00 but nothing was running then. Resume it to send now, "
        "or cancel it.": "schedule",
        "WSAPME refused the token. Check WSAPME_TOKEN, then resume.": "gateway",
    }
    with transaction(engine) as s:
        for reason in reasons:
            s.execute(text("INSERT INTO blasts (name, state, state_reason) VALUES (:n, 'paused', :r)"),
                      {"n": reason, "r": reason})
        s.execute(text("INSERT INTO blasts (name, state, state_reason) VALUES ('done', 'cancelled', "
                       "'Cancelled by you.')"))
    migrate(engine)
    with transaction(engine) as s:
        kept = {name: (by, at is not None) for name, by, at in s.execute(
            select(Blast.name, Blast.paused_by, Blast.paused_at))}
    assert kept == {**{reason: (by, True) for reason, by in reasons.items()}, "done": (None, False)}


def test_messages_posted_with_receipts_are_in_the_messages_index_from_0011_on(engine: Engine) -> None:
    """The Replies page reads both kinds through it (tests/test_reply_inbox.py reads the plan)."""
    def covers_mixed() -> bool:
        with engine.connect() as conn:
            sql = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_webhook_inbox_messages'"
                if engine.dialect.name == "postgresql" else
                "SELECT sql FROM sqlite_master WHERE name = 'idx_webhook_inbox_messages'").scalar_one()
        return "mixed" in sql

    assert covers_mixed()
    downgrade(engine, "0010")
    assert not covers_mixed()
    migrate(engine)
    assert covers_mixed()


def test_lost_sends_proved_before_0013_are_dated_by_their_try(engine: Engine) -> None:
    import datetime as dt

    from sqlalchemy import select, text

    from core.analytics import daily_trend
    from core.db import transaction
    from core.funnel import FunnelFilter
    from core.models import BlastRecipient

    downgrade(engine, "0012")
    day = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    tried, next_day = day, day + dt.timedelta(days=1, hours=1)

    def stored(at: dt.datetime | None) -> object:  # as each database keeps a UtcDateTime
        if at is None or engine.dialect.name == "postgresql":
            return at
        return at.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")

    people = {  # status now, send time now, then the history: (old, new, when)
        "replied a day later": ("REPLIED", next_day, [("SENDING", "UNKNOWN", tried),
                                                      ("UNKNOWN", "REPLIED", next_day)]),
        "bought, never answered": ("CLOSED", None, [("SENDING", "UNKNOWN", tried),
                                                     ("UNKNOWN", "CLOSED", next_day)]),
        "failed, then read": ("READ_ACK", next_day, [("SENDING", "FAILED", tried),
                                                      ("FAILED", "READ_ACK", next_day)]),
        "acked before the timeout": ("SERVER_ACK", day - dt.timedelta(seconds=20),
                                     [("SENDING", "UNKNOWN", tried),
                                      ("UNKNOWN", "SERVER_ACK", day - dt.timedelta(seconds=20))]),
        "sale undone": ("UNKNOWN", None, [("SENDING", "UNKNOWN", tried), ("UNKNOWN", "CLOSED", next_day),
                                          ("CLOSED", "UNKNOWN", next_day)]),
        "sent as usual": ("REPLIED", day, [("SENDING", "PENDING", day), ("PENDING", "REPLIED", next_day)]),
        "marked failed by hand, then replied": ("REPLIED", next_day, [
            ("SENDING", "UNKNOWN", tried), ("UNKNOWN", "FAILED", day + dt.timedelta(hours=6), "manual"),
            ("FAILED", "REPLIED", next_day)]),
    }
    with transaction(engine) as s:
        blast_id = s.execute(text("INSERT INTO blasts (name, blast_tag) VALUES ('Old', 'Lost') RETURNING id")
                             ).scalar_one()
        for k, (name, (status, sent_at, history)) in enumerate(people.items()):
            rid = s.execute(text(
                "INSERT INTO blast_recipients (blast_id, phone_number, status, sent_at, contact_name) "
                "VALUES (:b, :p, :s, :at, :n) RETURNING id"),
                {"b": blast_id, "p": f"+6012345678{k}", "s": status, "at": stored(sent_at), "n": name},
            ).scalar_one()
            for old, new, at, *source in history:
                s.execute(text("INSERT INTO status_history (recipient_id, old_status, new_status, "
                               "changed_at, source) VALUES (:r, :o, :n, :at, :source)"),
                          {"r": rid, "o": old, "n": new, "at": stored(at),
                           "source": source[0] if source else "webhook"})
    migrate(engine)
    with transaction(engine) as s:
        sent = dict(s.execute(select(BlastRecipient.contact_name, BlastRecipient.sent_at)).all())
        trend = daily_trend(s, filters=FunnelFilter(tags=("Lost",), timezone="UTC"))
    assert sent == {"replied a day later": tried, "bought, never answered": tried, "failed, then read": tried,
                    "acked before the timeout": day - dt.timedelta(seconds=20), "sale undone": None,
                    "sent as usual": day, "marked failed by hand, then replied": tried}
    assert {r.day: r.sent for r in trend.itertuples()} == {dt.date(2026, 3, 2): 6}  # none the next day


def test_0014_keeps_every_blast_its_recipients_counts_and_triggers(engine: Engine) -> None:
    """On SQLite it rebuilds `blasts`: with foreign keys on, dropping the old table would have
    taken every recipient with it."""
    from core.db import transaction
    from core.funnel import status_counts
    from core.models import Blast, BlastRecipient

    downgrade(engine, "0013")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO blasts (name, state) VALUES ('a', 'completed')")
        conn.exec_driver_sql("INSERT INTO blasts (name, state, parent_blast_id) VALUES ('b', 'draft', 1)")
        conn.exec_driver_sql("INSERT INTO blast_recipients (blast_id, phone_number, status) VALUES "
                             "(1, '60123456789', 'READ_ACK'), (2, '60123456780', 'QUEUED')")
    migrate(engine)
    with transaction(engine) as s:
        assert [(b.id, b.parent_blast_id) for b in s.query(Blast).order_by(Blast.id)] == [(1, None), (2, 1)]
        assert s.query(BlastRecipient).count() == 2
        assert status_counts(s) == {"READ_ACK": 1, "QUEUED": 1}
        s.delete(s.get(Blast, 1))
    with transaction(engine) as s:  # the rollup triggers and the foreign keys came through
        assert s.get(Blast, 2).parent_blast_id is None
        assert s.query(BlastRecipient).count() == 1
        assert status_counts(s) == {"QUEUED": 1}
        s.add(Blast(name="c"))
    with transaction(engine) as s:
        s.delete(s.get(Blast, 3))
    with transaction(engine) as s:
        s.add(Blast(name="d"))
    with transaction(engine) as s:
        assert s.query(Blast.id, Blast.name).order_by(Blast.id).all() == [(2, "b"), (4, "d")]


def test_sqlite_commits_are_on_disk_before_they_return(tmp_path) -> None:
    """WAL with synchronous=NORMAL may lose the last commits to a power cut: a webhook answered
    "stored" that the gateway will not post again, a send marked as going out that would go
    out a second time."""
    engine = make_engine(f"sqlite:///{tmp_path / 'durable.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_sqlite_checks_its_foreign_keys_after_a_schema_change_only(tmp_path) -> None:
    """The check reads every row (0.4 s at a million recipients), and every start migrates."""
    from sqlalchemy import event

    engine = make_engine(f"sqlite:///{tmp_path / 'checked.db'}")
    checks: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: checks.append(statement) if "foreign_key_check" in statement
                 else None)
    migrate(engine, "0013")
    assert len(checks) == 1, "after; an empty database has nothing to check before"
    migrate(engine)
    assert len(checks) == 3, "before and after"
    migrate(engine)
    assert len(checks) == 3, "nothing changed, nothing checked"


def test_rows_left_pointing_at_nothing_before_an_upgrade_do_not_stop_it(tmp_path) -> None:
    """A blast deleted with SQLite's own shell (foreign keys off there) leaves its recipients:
    not the upgrade's doing, and every start of the app migrates."""
    import sqlite3

    path = tmp_path / "orphans.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine, "0013")
    by_hand = sqlite3.connect(path)
    by_hand.execute("INSERT INTO blasts (id, name) VALUES (1, 'a')")
    by_hand.execute("INSERT INTO blast_recipients (blast_id, phone_number) VALUES (1, '60123456789')")
    by_hand.execute("DELETE FROM blasts")
    by_hand.commit()
    by_hand.close()
    migrate(engine)
    assert current_revision(engine) == ScriptDirectory.from_config(alembic_config()).get_current_head()
