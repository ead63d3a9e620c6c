"""Each kept reply has the id WhatsApp gave the person's message.

Replies were told apart by person, time and words: two "ok"s sent within one second (WhatsApp
dates messages by the second) were kept as one, and a message with no time of its own was kept
once for each time the gateway posted it. The id, when the gateway sends it, tells them apart.
Replies kept before this revision have none, and are still told apart the old way.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('recipient_replies') as batch:
        batch.add_column(sa.Column('message_id', sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recipient_replies') as batch:
        batch.drop_column('message_id')
