"""Per-blast status rollups kept by triggers, so the funnel reads thousands of rows, not millions.

`blast_status_counts` holds recipients per (blast, status). Triggers on `blast_recipients`
keep it exact on every write path (status engine, worker claims, bulk imports, deletes,
blast deletion cascades), so no code path can forget to.

SQLite has one writer at a time, so its triggers update the counts directly. On PostgreSQL
many transactions change statuses of one blast at once: updating the same count rows would
serialise them and could deadlock a transaction that changes several statuses. There the
triggers only append +1/-1 rows to `blast_status_deltas` (inserts never wait on each other),
which readers add to the counts and core.funnel.fold_rollup_deltas() folds in now and then.

Also the send queue's partial index: a worker's claim found the first queued row by
reading (and sorting) every queued row of the sending blasts, 8 ms a claim with 9,000
queued on PostgreSQL; through this index it reads one row (0.2 ms).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00
"""

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER trg_blast_recipients_count_insert AFTER INSERT ON blast_recipients
    BEGIN
        INSERT INTO blast_status_counts (blast_id, status, recipients)
        VALUES (NEW.blast_id, NEW.status, 1)
        ON CONFLICT (blast_id, status) DO UPDATE SET recipients = recipients + 1;
    END
    """,
    # The count row exists since the insert; when a blast's deletion already removed it,
    # the decrement finds nothing, which is right.
    """
    CREATE TRIGGER trg_blast_recipients_count_delete AFTER DELETE ON blast_recipients
    BEGIN
        UPDATE blast_status_counts SET recipients = recipients - 1
        WHERE blast_id = OLD.blast_id AND status = OLD.status;
    END
    """,
    """
    CREATE TRIGGER trg_blast_recipients_count_update AFTER UPDATE OF status, blast_id ON blast_recipients
    WHEN OLD.status IS NOT NEW.status OR OLD.blast_id IS NOT NEW.blast_id
    BEGIN
        UPDATE blast_status_counts SET recipients = recipients - 1
        WHERE blast_id = OLD.blast_id AND status = OLD.status;
        INSERT INTO blast_status_counts (blast_id, status, recipients)
        VALUES (NEW.blast_id, NEW.status, 1)
        ON CONFLICT (blast_id, status) DO UPDATE SET recipients = recipients + 1;
    END
    """,
    """
    CREATE TRIGGER trg_blasts_rollup_delete AFTER DELETE ON blasts
    BEGIN
        DELETE FROM blast_status_counts WHERE blast_id = OLD.id;
        DELETE FROM blast_status_deltas WHERE blast_id = OLD.id;
    END
    """,
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS trg_blast_recipients_count_insert",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_count_delete",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_count_update",
    "DROP TRIGGER IF EXISTS trg_blasts_rollup_delete",
]

POSTGRES_FUNCTIONS = [
    # Statement-level with transition tables: a COPY or bulk insert of 100,000 rows adds
    # one delta row per (blast, status), not one per recipient.
    """
    CREATE FUNCTION blast_status_journal_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO blast_status_deltas (blast_id, status, delta)
        SELECT blast_id, status, count(*) FROM new_rows GROUP BY blast_id, status;
        RETURN NULL;
    END $$
    """,
    # A blast's deletion cascades to its recipients, but PostgreSQL fires this trigger for
    # the cascade only at the end of the DELETE on blasts, after the blast's own trigger
    # below has cleared its rollups: rows of a blast that is gone are not journalled.
    """
    CREATE FUNCTION blast_status_journal_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO blast_status_deltas (blast_id, status, delta)
        SELECT o.blast_id, o.status, -count(*) FROM old_rows o
        WHERE EXISTS (SELECT 1 FROM blasts b WHERE b.id = o.blast_id)
        GROUP BY o.blast_id, o.status;
        RETURN NULL;
    END $$
    """,
    # Row-level for updates: transition tables would fire on every UPDATE of the table
    # (polling times, texts), while this fires only when a status really moves.
    """
    CREATE FUNCTION blast_status_journal_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO blast_status_deltas (blast_id, status, delta)
        VALUES (OLD.blast_id, OLD.status, -1), (NEW.blast_id, NEW.status, 1);
        RETURN NULL;
    END $$
    """,
    """
    CREATE FUNCTION blast_status_rollup_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM blast_status_deltas;
        DELETE FROM blast_status_counts;
        RETURN NULL;
    END $$
    """,
    # Deltas written earlier in the same transaction go with the counts.
    """
    CREATE FUNCTION blast_status_rollup_forget_blast() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM blast_status_deltas WHERE blast_id = OLD.id;
        DELETE FROM blast_status_counts WHERE blast_id = OLD.id;
        RETURN NULL;
    END $$
    """,
]

POSTGRES_TRIGGERS = [
    """
    CREATE TRIGGER trg_blast_recipients_count_insert AFTER INSERT ON blast_recipients
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION blast_status_journal_insert()
    """,
    """
    CREATE TRIGGER trg_blast_recipients_count_delete AFTER DELETE ON blast_recipients
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION blast_status_journal_delete()
    """,
    """
    CREATE TRIGGER trg_blast_recipients_count_update AFTER UPDATE OF status, blast_id ON blast_recipients
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.blast_id IS DISTINCT FROM NEW.blast_id)
    EXECUTE FUNCTION blast_status_journal_update()
    """,
    """
    CREATE TRIGGER trg_blast_recipients_count_truncate AFTER TRUNCATE ON blast_recipients
    FOR EACH STATEMENT EXECUTE FUNCTION blast_status_rollup_truncate()
    """,
    """
    CREATE TRIGGER trg_blasts_rollup_delete AFTER DELETE ON blasts
    FOR EACH ROW EXECUTE FUNCTION blast_status_rollup_forget_blast()
    """,
]

POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS trg_blast_recipients_count_insert ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_count_delete ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_count_update ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blast_recipients_count_truncate ON blast_recipients",
    "DROP TRIGGER IF EXISTS trg_blasts_rollup_delete ON blasts",
    "DROP FUNCTION IF EXISTS blast_status_journal_insert()",
    "DROP FUNCTION IF EXISTS blast_status_journal_delete()",
    "DROP FUNCTION IF EXISTS blast_status_journal_update()",
    "DROP FUNCTION IF EXISTS blast_status_rollup_truncate()",
    "DROP FUNCTION IF EXISTS blast_status_rollup_forget_blast()",
]

# Triggers first: creating one locks blast_recipients against writes until this migration
# commits, so the backfill below counts exactly the rows the triggers did not see.
BACKFILL = """
INSERT INTO blast_status_counts (blast_id, status, recipients)
SELECT blast_id, status, count(*) FROM blast_recipients GROUP BY blast_id, status
"""


def upgrade() -> None:
    op.create_table('blast_status_counts',
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=50), nullable=False),
    sa.Column('recipients', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('blast_id', 'status')
    )
    op.create_table('blast_status_deltas',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=50), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    if op.get_bind().dialect.name == 'postgresql':
        statements = POSTGRES_FUNCTIONS + POSTGRES_TRIGGERS
    else:
        statements = SQLITE_TRIGGERS
    for statement in statements:
        op.execute(statement)
    op.execute(BACKFILL)
    op.create_index('idx_blast_recipients_queue', 'blast_recipients', ['blast_id', 'id'],
                    postgresql_where=sa.text("status = 'QUEUED'"), sqlite_where=sa.text("status = 'QUEUED'"))


def downgrade() -> None:
    op.drop_index('idx_blast_recipients_queue', table_name='blast_recipients')
    postgres = op.get_bind().dialect.name == 'postgresql'
    for statement in POSTGRES_DROP if postgres else SQLITE_DROP:
        op.execute(statement)
    op.drop_table('blast_status_deltas')
    op.drop_table('blast_status_counts')
