"""PostgreSQL logs which blasts' counts moved, by transaction (`blast_count_changes`).

`core.rollup_cache` keeps funnel answers in memory and drops one once a change to its blasts
has committed. Statement triggers append a row naming the blasts a statement touched,
comma-separated, or `*` for every blast (a truncate, a schema change, or more blasts than a
row should carry), with the writing transaction's id:
- `blast_recipients`: rows inserted or deleted, and the blasts whose recipients by status an
  update changed (other updates, such as polling times or texts, move no count and log
  nothing; the rows an UPDATE touched are still copied for the trigger, one statement at a
  time);
- `blasts`: any row inserted, changed or deleted (a blast's tag, date, name or state is part of
  what the funnel answers, and a new blast can join a date range or a tag).
A reader finds the changes committed since its last look by comparing snapshots
(`pg_current_snapshot()`, `pg_visible_in_snapshot`), so a transaction that began earlier and
committed later is never skipped. The table is UNLOGGED (no write-ahead log: cheap to append
to, emptied by a crash, after which every reader starts afresh anyway); as the rollup deltas are
folded, entries committed ten minutes ago or more are deleted (`core.rollup_cache.trim_log`).

Why not NOTIFY: PostgreSQL commits one notifying transaction at a time (a lock held through the
commit's flush to disk), which halved concurrent single-row status updates in a measurement
(bench/RESULTS.md change 32); a notice also does not pass through a transaction pooler.

SQLite gets the table, unused: its readers read the database every time.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

# Past 7,900 characters of ids, "every blast".
_LOG = """
        IF ids IS NOT NULL THEN
            INSERT INTO blast_count_changes (xid, blasts, at)
            VALUES (pg_current_xact_id()::text::bigint,
                    CASE WHEN length(ids) > 7900 THEN '*' ELSE ids END, clock_timestamp());
        END IF;
        RETURN NULL;
"""

def _logging(name: str, ids: str) -> str:
    """A trigger function that logs the blast ids `ids` (a query selecting them INTO ids) names."""
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids text;
    BEGIN
        {ids}
        {_LOG}
    END $$
    """


FUNCTIONS = [
    _logging("blast_counts_log_added",
             "SELECT string_agg(DISTINCT blast_id::text, ',') INTO ids FROM new_rows;"),
    _logging("blast_counts_log_removed",
             "SELECT string_agg(DISTINCT blast_id::text, ',') INTO ids FROM old_rows;"),
    # The blasts whose recipients by status differ before and after: rows matched by what is
    # counted, not by id, so nothing that moves a count goes unnamed.
    _logging("blast_counts_log_moved", """
        SELECT string_agg(DISTINCT blast_id::text, ',') INTO ids
        FROM (SELECT blast_id, status, count(*) AS n FROM old_rows GROUP BY blast_id, status) AS o
        FULL JOIN (SELECT blast_id, status, count(*) AS n FROM new_rows GROUP BY blast_id, status) AS n
             USING (blast_id, status)
        WHERE o.n IS DISTINCT FROM n.n;"""),
    _logging("blast_counts_log_blasts_added", "SELECT string_agg(id::text, ',') INTO ids FROM new_rows;"),
    _logging("blast_counts_log_blasts_removed", "SELECT string_agg(id::text, ',') INTO ids FROM old_rows;"),
    _logging("blast_counts_log_blasts_changed", """
        SELECT string_agg(id::text, ',') INTO ids
        FROM (SELECT id FROM old_rows UNION SELECT id FROM new_rows) AS x;"""),
    """
    CREATE FUNCTION blast_counts_log_all() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO blast_count_changes (xid, blasts, at)
        VALUES (pg_current_xact_id()::text::bigint, '*', clock_timestamp());
        RETURN NULL;
    END $$
    """,
]

# (trigger, table, event, transition tables, function)
TRIGGERS = [
    ("trg_blast_recipients_changes_insert", "blast_recipients", "INSERT",
     "REFERENCING NEW TABLE AS new_rows", "blast_counts_log_added"),
    ("trg_blast_recipients_changes_delete", "blast_recipients", "DELETE",
     "REFERENCING OLD TABLE AS old_rows", "blast_counts_log_removed"),
    ("trg_blast_recipients_changes_update", "blast_recipients", "UPDATE",
     "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows", "blast_counts_log_moved"),
    ("trg_blast_recipients_changes_truncate", "blast_recipients", "TRUNCATE", "", "blast_counts_log_all"),
    ("trg_blasts_changes_insert", "blasts", "INSERT",
     "REFERENCING NEW TABLE AS new_rows", "blast_counts_log_blasts_added"),
    ("trg_blasts_changes_delete", "blasts", "DELETE",
     "REFERENCING OLD TABLE AS old_rows", "blast_counts_log_blasts_removed"),
    ("trg_blasts_changes_update", "blasts", "UPDATE",
     "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows", "blast_counts_log_blasts_changed"),
    ("trg_blasts_changes_truncate", "blasts", "TRUNCATE", "", "blast_counts_log_all"),
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    op.create_table(
        'blast_count_changes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True),
        sa.Column('xid', sa.BigInteger(), nullable=False),
        sa.Column('blasts', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        prefixes=['UNLOGGED'] if postgres else [],
    )
    op.create_index('idx_blast_count_changes_xid', 'blast_count_changes', ['xid'])
    if not postgres:
        return
    # Appended to all day and emptied every few minutes: vacuumed often, as the deltas are (0003).
    op.execute("ALTER TABLE blast_count_changes SET (autovacuum_vacuum_threshold = 1000, "
               "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000, "
               "autovacuum_vacuum_insert_scale_factor = 0)")
    for function in FUNCTIONS:
        op.execute(function)
    for name, table, when, transition, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} AFTER {when} ON {table} {transition} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name, table, *_ in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for function in sorted({t[-1] for t in TRIGGERS}):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_index('idx_blast_count_changes_xid', table_name='blast_count_changes')
    op.drop_table('blast_count_changes')
