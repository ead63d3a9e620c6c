"""The hour rollups leave out read and reply times that a sale closed by hand gave.

Closing someone who never read or replied skips those stages, and a skipped stage takes the
later event's time: their read and reply times become the close's. "When people answer"
counted them as reads and replies at the hour someone recorded the sales (a spike at the
hour a list of sales was uploaded). A read or reply time equal to the recipient's close time
is now left out of the 'read' and 'replied' measures; someone who read or replied, then was
closed later, still counts. core.analytics.response_times applies the same rule.

The triggers of 0004 are made again with that rule (and now also watch `closed_at`), and the
'read' and 'replied' counts are rebuilt from the rows. The downgrade makes 0004's again.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# As in 0004: (what, timestamp column, status kept with the count).
MEASURES = (("sent", "sent_at", "status"), ("read", "read_timestamp", "''"),
            ("replied", "replied_at", "''"))
ACTIVITY = ("read", "replied")
COLUMNS = "blast_id, what, hour, status"


class _Rules:
    """The trigger SQL of the hour rollups for one database, with or without this revision's
    rule (without it, the statements are 0004's)."""

    def __init__(self, *, postgres: bool, leave_out_closes: bool) -> None:
        self.postgres = postgres
        self.leave_out_closes = leave_out_closes

    def time(self, what: str, column: str, row: str) -> str:
        """A measure's moment for `row`: NULL when it is the close's own time."""
        if not self.leave_out_closes or what not in ACTIVITY:
            return f"{row}.{column}"
        differs = "IS DISTINCT FROM" if self.postgres else "IS NOT"
        return f"(CASE WHEN {row}.{column} {differs} {row}.closed_at THEN {row}.{column} END)"

    def hour(self, what: str, column: str, row: str) -> str:
        moment = self.time(what, column, row)
        if self.postgres:
            return f"to_char({moment} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')"
        return f"substr({moment}, 1, 13)"  # UtcDateTime's text: 'YYYY-MM-DD HH:MM:SS.ffffff'

    def watched(self, *columns: str) -> list[str]:
        return [*columns, "closed_at"] if self.leave_out_closes else list(columns)

    # --- SQLite: counts updated in place ---------------------------------------------------

    def _sqlite_add(self, what: str, column: str, status: str) -> str:
        # The WHERE keeps SQLite from reading ON CONFLICT as a join's ON.
        return f"""
        INSERT INTO blast_hour_counts ({COLUMNS}, recipients)
        SELECT NEW.blast_id, '{what}', {self.hour(what, column, 'NEW')}, {_kept(status, 'NEW')}, 1
        WHERE {self.time(what, column, 'NEW')} IS NOT NULL
        ON CONFLICT ({COLUMNS}) DO UPDATE SET recipients = recipients + 1;"""

    def _sqlite_remove(self, what: str, column: str, status: str) -> str:
        # A NULL hour matches no row; a row already removed with its blast, none either.
        return f"""
        UPDATE blast_hour_counts SET recipients = recipients - 1
        WHERE blast_id = OLD.blast_id AND what = '{what}'
          AND hour = {self.hour(what, column, 'OLD')} AND status = {_kept(status, 'OLD')};"""

    def _sqlite_moved(self, what: str, column: str, status: str) -> str:
        changes = ["OLD.blast_id IS NOT NEW.blast_id",
                   f"{self.hour(what, column, 'OLD')} IS NOT {self.hour(what, column, 'NEW')}"]
        if status == "status":
            changes.append("OLD.status IS NOT NEW.status")
            watched = ["status", "blast_id", column]
        else:
            watched = self.watched("blast_id", column)
        return f"""
        CREATE TRIGGER trg_blast_recipients_hours_{what}_update
        AFTER UPDATE OF {', '.join(watched)} ON blast_recipients
        WHEN {' OR '.join(changes)}
        BEGIN{self._sqlite_remove(what, column, status)}{self._sqlite_add(what, column, status)}
        END
        """

    def sqlite_triggers(self) -> list[str]:
        any_time = " OR ".join(f"{{row}}.{column} IS NOT NULL" for _, column, _ in MEASURES)
        return [
            f"""
            CREATE TRIGGER trg_blast_recipients_hours_insert AFTER INSERT ON blast_recipients
            WHEN {any_time.format(row='NEW')}
            BEGIN{''.join(self._sqlite_add(*m) for m in MEASURES)}
            END
            """,
            f"""
            CREATE TRIGGER trg_blast_recipients_hours_delete AFTER DELETE ON blast_recipients
            WHEN {any_time.format(row='OLD')}
            BEGIN{''.join(self._sqlite_remove(*m) for m in MEASURES)}
            END
            """,
            *(self._sqlite_moved(*m) for m in MEASURES),
        ]

    # --- PostgreSQL: +1/-1 rows appended to blast_hour_deltas --------------------------------

    def grouped(self, rows: str, sign: str, measures: tuple = MEASURES, where: str = "") -> str:
        """One delta (or count) row per (blast, measure, hour, status) of a set of rows."""
        return "\n        UNION ALL ".join(
            f"SELECT r.blast_id, '{what}', {self.hour(what, column, 'r')}, {_kept(status, 'r')}, "
            f"{sign}count(*) FROM {rows} r "
            f"WHERE {self.time(what, column, 'r')} IS NOT NULL{where} GROUP BY 1, 3, 4"
            for what, column, status in measures
        )

    def _row_deltas(self) -> str:
        """The update's -1/+1 rows for each measure whose (blast, hour, status) moved."""
        values, moved = [], []
        for what, column, status in MEASURES:
            old_hour, new_hour = self.hour(what, column, "OLD"), self.hour(what, column, "NEW")
            old_status, new_status = _kept(status, "OLD"), _kept(status, "NEW")
            values += [f"(OLD.blast_id, '{what}', {old_hour}, {old_status}, -1)",
                       f"(NEW.blast_id, '{what}', {new_hour}, {new_status}, 1)"]
            moved.append(f"(d.what = '{what}' AND (OLD.blast_id, {old_hour}, {old_status}) "
                         f"IS DISTINCT FROM (NEW.blast_id, {new_hour}, {new_status}))")
        return (f"SELECT * FROM (VALUES {', '.join(values)}) AS d ({COLUMNS}, delta)\n"
                f"        WHERE d.hour IS NOT NULL AND ({' OR '.join(moved)})")

    def postgres_functions(self) -> list[str]:
        return [
            _journal("blast_hour_journal_insert", self.grouped("new_rows", "")),
            # As for the status deltas: rows of a blast being deleted are not journalled.
            _journal("blast_hour_journal_delete", self.grouped(
                "old_rows", "-", where=" AND EXISTS (SELECT 1 FROM blasts b WHERE b.id = r.blast_id)")),
            _journal("blast_hour_journal_update", self._row_deltas()),
        ]

    def postgres_update_trigger(self) -> str:
        columns = self.watched("status", "blast_id", *(column for _, column, _ in MEASURES))
        any_move = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        return f"""
        CREATE TRIGGER trg_blast_recipients_hours_update
        AFTER UPDATE OF {', '.join(columns)} ON blast_recipients
        FOR EACH ROW WHEN ({any_move})
        EXECUTE FUNCTION blast_hour_journal_update()
        """


def _kept(status: str, row: str) -> str:
    """A measure's status as SQL for `row`: the row's status for 'sent', '' for the others."""
    return f"{row}.status" if status == "status" else status


def _journal(name: str, deltas: str) -> str:
    """A trigger function that appends `deltas` (a SELECT of delta rows) to the journal."""
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO blast_hour_deltas ({COLUMNS}, delta)
        {deltas};
        RETURN NULL;
    END $$
    """


SQLITE_ROW_TRIGGERS = ["trg_blast_recipients_hours_insert", "trg_blast_recipients_hours_delete",
                       *(f"trg_blast_recipients_hours_{what}_update" for what, _, _ in MEASURES)]


def _remake(*, leave_out_closes: bool) -> None:
    postgres = op.get_bind().dialect.name == 'postgresql'
    rules = _Rules(postgres=postgres, leave_out_closes=leave_out_closes)
    if postgres:
        # The functions are replaced in place; the update trigger watches other columns.
        op.execute("DROP TRIGGER IF EXISTS trg_blast_recipients_hours_update ON blast_recipients")
        for statement in rules.postgres_functions():
            op.execute(statement)
        op.execute(rules.postgres_update_trigger())
    else:
        for name in SQLITE_ROW_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in rules.sqlite_triggers():
            op.execute(statement)
    # The read and reply counts again from the rows, after the triggers (as in 0004: making
    # them locks out writers until this commits, so nothing moves in between).
    activity = tuple(m for m in MEASURES if m[0] in ACTIVITY)
    op.execute(f"DELETE FROM blast_hour_deltas WHERE what IN {ACTIVITY!r}")
    op.execute(f"DELETE FROM blast_hour_counts WHERE what IN {ACTIVITY!r}")
    op.execute(f"INSERT INTO blast_hour_counts ({COLUMNS}, recipients)\n"
               f"{rules.grouped('blast_recipients', '', activity)}")
    if postgres:
        op.execute("ANALYZE blast_hour_counts")


def upgrade() -> None:
    _remake(leave_out_closes=True)


def downgrade() -> None:
    _remake(leave_out_closes=False)
