"""A deleted draft's number is never given to another blast on SQLite.

SQLite gives a new row the highest number in use plus one unless the table says AUTOINCREMENT:
a draft deleted while it was the newest blast handed its number to the next one, and an old
link to it (a bookmark, a colleague's open tab) opened that other blast. The table is rebuilt
with AUTOINCREMENT (its rows, numbers, indexes and triggers as they were); `core.db.migrate`
turns SQLite's foreign keys off around it, or dropping the old table would take every
recipient with it. PostgreSQL's sequence never gives a number twice: nothing to do there.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def _rebuild_blasts(*, autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    if bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("Rebuilding blasts with foreign keys on would delete every recipient; "
                           "run it through core.db.migrate.")
    triggers = bind.execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'blasts'")).scalars().all()
    with op.batch_alter_table('blasts', recreate='always',
                              table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass
    for sql in triggers:
        op.execute(sql)


def upgrade() -> None:
    _rebuild_blasts(autoincrement=True)


def downgrade() -> None:
    _rebuild_blasts(autoincrement=False)
