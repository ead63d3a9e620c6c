"""Every reply a recipient sends is kept, not only the first.

`blast_recipients.reply_text` holds a person's first reply; a second message ("2 boxes
please, to Shah Alam") changed no status and was seen only in the raw webhook body. The new
`recipient_replies` table keeps each one with its time and the webhook body it came in (so
that applying a body again adds nothing). The replies already known are copied in.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'recipient_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('recipient_id', sa.Integer(), nullable=False),
        sa.Column('replied_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('inbox_id', sa.Integer(), nullable=True),
        sa.Column('inbox_position', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['recipient_id'], ['blast_recipients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('inbox_id', 'inbox_position', name='uq_recipient_replies_inbox'),
    )
    op.create_index('idx_recipient_replies_recipient', 'recipient_replies', ['recipient_id', 'replied_at'])
    op.execute(
        "INSERT INTO recipient_replies (recipient_id, replied_at, text) "
        "SELECT id, COALESCE(replied_at, updated_at), reply_text FROM blast_recipients "
        "WHERE reply_text IS NOT NULL AND reply_text <> ''"
    )


def downgrade() -> None:
    op.drop_index('idx_recipient_replies_recipient', table_name='recipient_replies')
    op.drop_table('recipient_replies')
