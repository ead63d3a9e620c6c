"""Per-blast activity by hour, kept by triggers like the status rollups (0002), so the
overview's trend and "when people answer" read tens of thousands of rows, not every recipient.

`blast_hour_counts(blast_id, what, hour, status, recipients)`:
- what 'sent': recipients by the hour of `sent_at` and by their status now. The trend
  shows what became of each day's messages; which statuses count as read or replied is
  worked out when it is read, so the ranks are not frozen into the database here.
- what 'read' and 'replied': recipients by the hour of `read_timestamp` and of `replied_at`
  (status ''), which do not depend on how far a recipient went afterwards.
The hour is UTC text, 'YYYY-MM-DD HH', the same on both databases; the team's time zone is
applied when the counts are read. At a million recipients there are about 90,000 rows.

As for the status rollups, SQLite's triggers update the counts in place (one writer at a
time), and PostgreSQL's only append +1/-1 rows to `blast_hour_deltas`, which readers add
to the counts and core.funnel.fold_rollup_deltas() folds in with the status deltas.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# The three measures: (what, timestamp column, status kept with the count).
MEASURES = (("sent", "sent_at", "status"), ("read", "read_timestamp", "''"),
            ("replied", "replied_at", "''"))
COLUMNS = "blast_id, what, hour, status"
SQLITE_HOUR = "substr({row}.{column}, 1, 13)"  # UtcDateTime's text: 'YYYY-MM-DD HH:MM:SS.ffffff'
POSTGRES_HOUR = "to_char({row}.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')"


def _kept(status: str, row: str) -> str:
    """A measure's status as SQL for `row`: the row's status for 'sent', '' for the others."""
    return f"{row}.status" if status == "status" else status


def _sqlite_add(what: str, column: str, status: str) -> str:
    # The WHERE keeps SQLite from reading ON CONFLICT as a join's ON.
    return f"""
        INSERT INTO blast_hour_counts ({COLUMNS}, recipients)
        SELECT NEW.blast_id, '{what}', {SQLITE_HOUR.format(row='NEW', column=column)},
               {_kept(status, 'NEW')}, 1
        WHERE NEW.{column} IS NOT NULL
        ON CONFLICT ({COLUMNS}) DO UPDATE SET recipients = recipients + 1;"""


def _sqlite_remove(what: str, column: str, status: str) -> str:
    # A NULL hour matches no row; a row already removed with its blast, none either.
    return f"""
        UPDATE blast_hour_counts SET recipients = recipients - 1
        WHERE blast_id = OLD.blast_id AND what = '{what}'
          AND hour = {SQLITE_HOUR.format(row='OLD', column=column)}
          AND status = {_kept(status, 'OLD')};"""


def _sqlite_moved(what: str, column: str, status: str) -> str:
    changes = ["OLD.blast_id IS NOT NEW.blast_id",
               f"{SQLITE_HOUR.format(row='OLD', column=column)} IS NOT "
               f"{SQLITE_HOUR.format(row='NEW', column=column)}"]
    if status == "status":
        changes.append("OLD.status IS NOT NEW.status")
    watched = "status, blast_id, " + column if status == "status" else "blast_id, " + column
    return f"""
    CREATE TRIGGER trg_blast_recipients_hours_{what}_update
    AFTER UPDATE OF {watched} ON blast_recipients
    WHEN {' OR '.join(changes)}
    BEGIN{_sqlite_remove(what, column, status)}{_sqlite_add(what, column, status)}
    END
    """


ANY_TIME = " OR ".join(f"{{row}}.{column} IS NOT NULL" for _, column, _ in MEASURES)

SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER trg_blast_recipients_hours_insert AFTER INSERT ON blast_recipients
    WHEN {ANY_TIME.format(row='NEW')}
    BEGIN{''.join(_sqlite_add(*m) for m in MEASURES)}
    END
    """,
    f"""
    CREATE TRIGGER trg_blast_recipients_hours_delete AFTER DELETE ON blast_recipients
    WHEN {ANY_TIME.format(row='OLD')}
    BEGIN{''.join(_sqlite_remove(*m) for m in MEASURES)}
    END
    """,
    *(_sqlite_moved(*m) for m in MEASURES),
    """
    CREATE TRIGGER trg_blasts_hour_rollup_delete AFTER DELETE ON blasts
    BEGIN
        DELETE FROM blast_hour_counts WHERE blast_id = OLD.id;
        DELETE FROM blast_hour_deltas WHERE blast_id = OLD.id;
    END
    """,
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS trg_blast_recipients_hours_insert",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_hours_delete",
    *(f"DROP TRIGGER IF EXISTS trg_blast_recipients_hours_{what}_update" for what, _, _ in MEASURES),
    "DROP TRIGGER IF EXISTS trg_blasts_hour_rollup_delete",
]


def _grouped(rows: str, sign: str, hour: str, where: str = "") -> str:
    """One delta row per (blast, measure, hour, status) of a transition table."""
    return "\n        UNION ALL ".join(
        f"SELECT r.blast_id, '{what}', {hour.format(row='r', column=column)}, "
        f"{_kept(status, 'r')}, {sign}count(*) FROM {rows} r "
        f"WHERE r.{column} IS NOT NULL{where} GROUP BY 1, 3, 4"
        for what, column, status in MEASURES
    )


def _postgres_row_deltas() -> str:
    """The update's -1/+1 rows for each measure whose (blast, hour, status) moved."""
    values, moved = [], []
    for what, column, status in MEASURES:
        old_hour = POSTGRES_HOUR.format(row="OLD", column=column)
        new_hour = POSTGRES_HOUR.format(row="NEW", column=column)
        old_status, new_status = _kept(status, "OLD"), _kept(status, "NEW")
        values += [f"(OLD.blast_id, '{what}', {old_hour}, {old_status}, -1)",
                   f"(NEW.blast_id, '{what}', {new_hour}, {new_status}, 1)"]
        moved.append(f"(d.what = '{what}' AND (OLD.blast_id, {old_hour}, {old_status}) "
                     f"IS DISTINCT FROM (NEW.blast_id, {new_hour}, {new_status}))")
    return (f"SELECT * FROM (VALUES {', '.join(values)}) AS d ({COLUMNS}, delta)\n"
            f"        WHERE d.hour IS NOT NULL AND ({' OR '.join(moved)})")


def _journal(name: str, deltas: str) -> str:
    """A trigger function that appends `deltas` (a SELECT of delta rows) to the journal."""
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO blast_hour_deltas ({COLUMNS}, delta)
        {deltas};
        RETURN NULL;
    END $$
    """


POSTGRES_FUNCTIONS = [
    _journal("blast_hour_journal_insert", _grouped("new_rows", "", POSTGRES_HOUR)),
    # As for the status deltas: rows of a blast being deleted are not journalled.
    _journal("blast_hour_journal_delete", _grouped(
        "old_rows", "-", POSTGRES_HOUR, " AND EXISTS (SELECT 1 FROM blasts b WHERE b.id = r.blast_id)")),
    _journal("blast_hour_journal_update", _postgres_row_deltas()),
    """
    CREATE FUNCTION blast_hour_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM blast_hour_deltas;
        DELETE FROM blast_hour_counts;
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION blast_hour_rollup_forget_blast() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM blast_hour_deltas WHERE blast_id = OLD.id;
        DELETE FROM blast_hour_counts WHERE blast_id = OLD.id;
        RETURN NULL;
    END $$
    """,
]

_ANY_MOVE = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}"
                        for c in ("status", "blast_id", *(column for _, column, _ in MEASURES)))

POSTGRES_TRIGGERS = [
    """
    CREATE TRIGGER trg_blast_recipients_hours_insert AFTER INSERT ON blast_recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION blast_hour_journal_insert()
    """,
    """
    CREATE TRIGGER trg_blast_recipients_hours_delete AFTER DELETE ON blast_recipients
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION blast_hour_journal_delete()
    """,
    f"""
    CREATE TRIGGER trg_blast_recipients_hours_update
    AFTER UPDATE OF status, blast_id, sent_at, read_timestamp, replied_at ON blast_recipients
    FOR EACH ROW WHEN ({_ANY_MOVE})
    EXECUTE FUNCTION blast_hour_journal_update()
    """,
    """
    CREATE TRIGGER trg_blast_recipients_hours_truncate AFTER TRUNCATE ON blast_recipients
    FOR EACH STATEMENT EXECUTE FUNCTION blast_hour_rollup_truncate()
    """,
    """
    CREATE TRIGGER trg_blasts_hour_rollup_delete AFTER DELETE ON blasts
    FOR EACH ROW EXECUTE FUNCTION blast_hour_rollup_forget_blast()
    """,
]

POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS trg_blast_recipients_hours_insert ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_hours_delete ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_hours_update ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_hours_truncate ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blasts_hour_rollup_delete ON blasts",
    "DROP FUNCTION IF EXISTS blast_hour_journal_insert()",
    "DROP FUNCTION IF EXISTS blast_hour_journal_delete()",
    "DROP FUNCTION IF EXISTS blast_hour_journal_update()",
    "DROP FUNCTION IF EXISTS blast_hour_rollup_truncate()",
    "DROP FUNCTION IF EXISTS blast_hour_rollup_forget_blast()",
]


def _backfill(hour: str) -> str:
    # After the triggers, as in 0002: creating them locks out writers until this commits.
    return f"INSERT INTO blast_hour_counts ({COLUMNS}, recipients)\n{_grouped('blast_recipients', '', hour)}"


def upgrade() -> None:
    op.create_table('blast_hour_counts',
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('what', sa.String(length=10), nullable=False),
    sa.Column('hour', sa.String(length=13), nullable=False),
    sa.Column('status', sa.String(length=50), nullable=False),
    sa.Column('recipients', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('blast_id', 'what', 'hour', 'status')
    )
    op.create_table('blast_hour_deltas',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('what', sa.String(length=10), nullable=False),
    sa.Column('hour', sa.String(length=13), nullable=False),
    sa.Column('status', sa.String(length=50), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('idx_blast_hour_deltas_blast', 'blast_hour_deltas', ['blast_id'])
    postgres = op.get_bind().dialect.name == 'postgresql'
    for statement in POSTGRES_FUNCTIONS + POSTGRES_TRIGGERS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)
    op.execute(_backfill(POSTGRES_HOUR if postgres else SQLITE_HOUR))
    if postgres:
        # Statistics now, not at autovacuum's next visit: without them the planner expects a
        # hundred rows and sorts tens of thousands of text keys to group them.
        op.execute("ANALYZE blast_hour_counts")
        # The deltas churn like the status deltas (see 0003).
        op.execute("ALTER TABLE blast_hour_deltas SET (autovacuum_vacuum_threshold = 1000, "
                   "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000, "
                   "autovacuum_vacuum_insert_scale_factor = 0)")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    for statement in POSTGRES_DROP if postgres else SQLITE_DROP:
        op.execute(statement)
    op.drop_index('idx_blast_hour_deltas_blast', table_name='blast_hour_deltas')
    op.drop_table('blast_hour_deltas')
    op.drop_table('blast_hour_counts')
