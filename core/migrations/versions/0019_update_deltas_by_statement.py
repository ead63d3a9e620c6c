"""PostgreSQL journals an update's count and hour deltas once a statement, not once a row.

0002 and 0004 made the update triggers row-level: transition tables would have been copied
for every UPDATE of the table (polling times, texts), where a row trigger fired only when a
status really moved. 0017's change log copies them for every UPDATE anyway, so that reason is
gone, and a row trigger costs a call of its function and an INSERT of its own for each row:
the applier's statement of 200 acks ran 400 of them (measured: the statement took 18 ms with
this revision against 25.5 ms without, on a million-row history). Now each trigger reads the
statement's old and new rows once and appends one delta row per (blast, status) — and per
(blast, measure, hour, status) for the hours — that the statement moved, the net of its -1s
and +1s: the same sums the row triggers appended, in fewer rows. An update that moves no
count appends nothing, as before.

SQLite keeps its row triggers, which update the counts in place.

Revision ID: 0019
Revises: 0018
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

# The statement's net move per (blast, status): its -1s and +1s summed.
NET_MOVES = """SELECT blast_id, status, sum(delta) FROM (
            SELECT blast_id, status, -1 AS delta FROM old_rows
            UNION ALL SELECT blast_id, status, 1 FROM new_rows
        ) AS moved
        GROUP BY blast_id, status HAVING sum(delta) <> 0"""
STATUS_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION blast_status_journal_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO blast_status_deltas (blast_id, status, delta)
        {NET_MOVES};
        RETURN NULL;
    END $$
"""


def _revision(file: str) -> ModuleType:
    """An earlier revision's module, for the trigger SQL it builds."""
    spec = importlib.util.spec_from_file_location(f"revision_{file[:4]}", Path(__file__).with_name(file))
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _hours_function() -> str:
    hours = _revision("0005_hour_rollups_leave_out_closes.py")
    rules = hours._Rules(postgres=True, leave_out_closes=True)
    columns = hours.COLUMNS
    return hours._journal("blast_hour_journal_update", (
        f"SELECT {columns}, sum(delta) FROM (\n        {rules.grouped('old_rows', '-')}\n"
        f"        UNION ALL {rules.grouped('new_rows', '')}\n"
        f"        ) AS moved ({columns}, delta)\n"
        f"        GROUP BY {columns} HAVING sum(delta) <> 0"))


def _statement_trigger(name: str, function: str) -> str:
    return (f"CREATE TRIGGER {name} AFTER UPDATE ON blast_recipients "
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    # Dropped first: a function a row trigger still calls is not rewritten for statements.
    op.execute("DROP TRIGGER trg_blast_recipients_count_update ON blast_recipients")
    op.execute("DROP TRIGGER trg_blast_recipients_hours_update ON blast_recipients")
    op.execute(STATUS_FUNCTION)
    op.execute(_hours_function())
    op.execute(_statement_trigger("trg_blast_recipients_count_update", "blast_status_journal_update"))
    op.execute(_statement_trigger("trg_blast_recipients_hours_update", "blast_hour_journal_update"))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("DROP TRIGGER trg_blast_recipients_count_update ON blast_recipients")
    op.execute("DROP TRIGGER trg_blast_recipients_hours_update ON blast_recipients")
    counts = _revision("0002_blast_status_rollups.py")
    op.execute(next(f for f in counts.POSTGRES_FUNCTIONS if "blast_status_journal_update" in f)
               .replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute(next(t for t in counts.POSTGRES_TRIGGERS if "trg_blast_recipients_count_update" in t))
    hours = _revision("0005_hour_rollups_leave_out_closes.py")
    rules = hours._Rules(postgres=True, leave_out_closes=True)
    op.execute(next(f for f in rules.postgres_functions() if "blast_hour_journal_update" in f))
    op.execute(rules.postgres_update_trigger())
