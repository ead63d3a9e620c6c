"""Replies can be found by when they came, across all blasts.

The Replies page lists who wrote back in the last days, whatever the blast. The only index on
`recipient_replies` starts with the recipient, so that list read the whole table on every
visit. An index on `replied_at` reads only the days asked for; `recipient_id` beside it lets
the replies be grouped per person from the index alone.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'idx_recipient_replies_replied_at', 'recipient_replies', ['replied_at', 'recipient_id']
    )


def downgrade() -> None:
    op.drop_index('idx_recipient_replies_replied_at', table_name='recipient_replies')
