"""Messages posted with receipts can be found by when they came too.

A body can hold a person's message and receipts at once (kind 'mixed'). The Replies page lists
the messages no blast explains from both kinds, so the partial index of 0009 on the messages'
arrival now covers the mixed bodies as well: one read through the index, as for messages alone.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_INDEX = 'idx_webhook_inbox_messages'
_MESSAGES = sa.text("kind = 'message'")
_WITH_MIXED = sa.text("kind IN ('message', 'mixed')")


def _index(where: sa.TextClause) -> None:
    op.create_index(_INDEX, 'webhook_inbox', ['received_at'], postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    op.drop_index(_INDEX, table_name='webhook_inbox')
    _index(_WITH_MIXED)


def downgrade() -> None:
    op.drop_index(_INDEX, table_name='webhook_inbox')
    _index(_MESSAGES)
