"""A follow-up keeps the choice it was made with, and counts who had moved on when it went out.

A follow-up's people are picked when it is drafted ("Read, no reply" …), but it may go out a
day later, when it was scheduled. By then some of them have replied, or bought. The choice is
kept on the blast (`follow_up_selector`) so that it is asked again as the follow-up starts;
those who no longer match are taken off its queue and counted (`skipped_moved_on`), as numbers
that opted out are.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
    with op.batch_alter_table('blasts') as batch:
        batch.add_column(sa.Column('follow_up_selector', json, nullable=True))
        batch.add_column(sa.Column('skipped_moved_on', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('blasts') as batch:
        batch.drop_column('skipped_moved_on')
        batch.drop_column('follow_up_selector')
