"""Messages from people can be found by when they came.

A message from a number no blast had messaged within the reply window (a new lead, or a late
answer to an older blast) matches no recipient: it stays in the webhook inbox only. The
Replies page lists the recent ones, and the inbox holds every receipt too, most of it, so a
partial index on the messages' arrival time reads only the days asked for, and costs the
receipts nothing.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_MESSAGES = sa.text("kind = 'message'")


def upgrade() -> None:
    op.create_index(
        'idx_webhook_inbox_messages', 'webhook_inbox', ['received_at'],
        postgresql_where=_MESSAGES, sqlite_where=_MESSAGES,
    )


def downgrade() -> None:
    op.drop_index('idx_webhook_inbox_messages', table_name='webhook_inbox')
