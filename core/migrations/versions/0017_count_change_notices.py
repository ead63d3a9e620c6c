"""PostgreSQL tells listeners which blasts' counts moved (`NOTIFY blast_counts`).

`core.rollup_cache` keeps funnel answers in memory and drops one as soon as a change to its
blasts commits. The notice names the blasts a statement touched, comma-separated, or `*`
for every blast (a truncate, or more blasts than a notice can carry):
- `blast_recipients`: rows inserted or deleted, and the blasts whose recipients by status an
  update changed (other updates, such as polling times or texts, move no count and say
  nothing; the rows an UPDATE touched are still copied for the trigger, one statement at a
  time, which the webhook benchmark measured: RESULTS.md change 32);
- `blasts`: any row inserted, changed or deleted (a blast's tag, date, name or state is part of
  what the funnel answers, and a new blast can join a date range or a tag).
One notice per statement at most, sent when its transaction commits (PostgreSQL folds equal
notices of a transaction into one), so a webhook batch of 200 acks sends one. A schema change
sends `*` too (`core.db.changing_schema`).

What it costs: PostgreSQL commits one notifying transaction at a time (a lock held through
the commit's flush), so concurrent writers of recipients' statuses queue behind each other
(bench/RESULTS.md change 32: 8 clients' single-row updates at 4,200/s instead of 9,650/s with
`fsync` on); the product's own writers commit a few times a second.

SQLite has no notices; nothing changes there.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

# 8,000 bytes is PostgreSQL's limit for a notice; past it, "every blast".
_SEND = """
        IF ids IS NOT NULL THEN
            PERFORM pg_notify('blast_counts', CASE WHEN length(ids) > 7900 THEN '*' ELSE ids END);
        END IF;
        RETURN NULL;
"""

FUNCTIONS = [
    f"""
    CREATE FUNCTION blast_counts_notice_added() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids text;
    BEGIN
        SELECT string_agg(DISTINCT blast_id::text, ',') INTO ids FROM new_rows;
        {_SEND}
    END $$
    """,
    f"""
    CREATE FUNCTION blast_counts_notice_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids text;
    BEGIN
        SELECT string_agg(DISTINCT blast_id::text, ',') INTO ids FROM old_rows;
        {_SEND}
    END $$
    """,
    f"""
    CREATE FUNCTION blast_counts_notice_moved() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids text;
    BEGIN
        -- The blasts whose recipients by status differ before and after: rows matched by
        -- what is counted, not by id, so nothing that moves a count goes unnamed.
        SELECT string_agg(DISTINCT blast_id::text, ',') INTO ids
        FROM (SELECT blast_id, status, count(*) AS n FROM old_rows GROUP BY blast_id, status) AS o
        FULL JOIN (SELECT blast_id, status, count(*) AS n FROM new_rows GROUP BY blast_id, status) AS n
             USING (blast_id, status)
        WHERE o.n IS DISTINCT FROM n.n;
        {_SEND}
    END $$
    """,
    f"""
    CREATE FUNCTION blast_counts_notice_blasts_added() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids text;
    BEGIN
        SELECT string_agg(id::text, ',') INTO ids FROM new_rows;
        {_SEND}
    END $$
    """,
    f"""
    CREATE FUNCTION blast_counts_notice_blasts_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids text;
    BEGIN
        SELECT string_agg(id::text, ',') INTO ids FROM old_rows;
        {_SEND}
    END $$
    """,
    f"""
    CREATE FUNCTION blast_counts_notice_blasts_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE ids text;
    BEGIN
        SELECT string_agg(id::text, ',') INTO ids
        FROM (SELECT id FROM old_rows UNION SELECT id FROM new_rows) AS x;
        {_SEND}
    END $$
    """,
    """
    CREATE FUNCTION blast_counts_notice_all() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('blast_counts', '*');
        RETURN NULL;
    END $$
    """,
]

# (trigger, table, event, transition tables, function)
TRIGGERS = [
    ("trg_blast_recipients_notice_insert", "blast_recipients", "INSERT",
     "REFERENCING NEW TABLE AS new_rows", "blast_counts_notice_added"),
    ("trg_blast_recipients_notice_delete", "blast_recipients", "DELETE",
     "REFERENCING OLD TABLE AS old_rows", "blast_counts_notice_removed"),
    ("trg_blast_recipients_notice_update", "blast_recipients", "UPDATE",
     "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows", "blast_counts_notice_moved"),
    ("trg_blast_recipients_notice_truncate", "blast_recipients", "TRUNCATE", "", "blast_counts_notice_all"),
    ("trg_blasts_notice_insert", "blasts", "INSERT",
     "REFERENCING NEW TABLE AS new_rows", "blast_counts_notice_blasts_added"),
    ("trg_blasts_notice_delete", "blasts", "DELETE",
     "REFERENCING OLD TABLE AS old_rows", "blast_counts_notice_blasts_removed"),
    ("trg_blasts_notice_update", "blasts", "UPDATE",
     "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows", "blast_counts_notice_blasts_changed"),
    ("trg_blasts_notice_truncate", "blasts", "TRUNCATE", "", "blast_counts_notice_all"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for function in FUNCTIONS:
        op.execute(function)
    for name, table, when, transition, function in TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} AFTER {when} ON {table} {transition} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for name, table, *_ in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for function in sorted({t[-1] for t in TRIGGERS}):
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
