"""Sales by number: a partial index on `blast_recipients(phone_number)` for CLOSED rows.

One sale a person a campaign (`core.recipients.sale_in_campaign`, `campaign_blasts`): the
Replies list and its counts ask, for each reply in their window, whether the number has a sale
on another blast of the campaign; follow-ups ask it of their people. Through this index that is
a look at the few sales of one number, where `idx_phone` read every message the number was
sent and the tag's index every blast the tag ever had.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

CLOSED = sa.text("status = 'CLOSED'")


def upgrade() -> None:
    op.create_index('idx_blast_recipients_closed_phone', 'blast_recipients', ['phone_number'],
                    postgresql_where=CLOSED, sqlite_where=CLOSED)


def downgrade() -> None:
    op.drop_index('idx_blast_recipients_closed_phone', table_name='blast_recipients')
