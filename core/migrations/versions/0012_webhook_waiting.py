"""What a waiting webhook entry waits for, kept as values.

An entry waits for message ids (a receipt that came before its send was stored) or for the
number a reply came from. When a send stores its id, the entries waiting for it are applied at
once. They had been found by searching their `detail`, the words shown to people, which are
cut at 20,000 characters (a body naming a thousand ids lost the last ones) and rewritten when
applying fails. `webhook_waiting` holds one row per entry and key, found by key.

Entries waiting when this revision runs get their rows the next time the periodic replay
applies them (every 30 seconds while the server runs).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_waiting',
        sa.Column('inbox_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['inbox_id'], ['webhook_inbox.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('inbox_id', 'key'),
    )
    op.create_index('idx_webhook_waiting_key', 'webhook_waiting', ['key'])


def downgrade() -> None:
    op.drop_index('idx_webhook_waiting_key', table_name='webhook_waiting')
    op.drop_table('webhook_waiting')
