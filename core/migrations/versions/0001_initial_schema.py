"""Initial schema: the plan's three tables (fixed), plus inbox, opt-outs, devices and app state.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 20:33:56.867583
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_state',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('blasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('blast_tag', sa.String(length=255), nullable=True),
    sa.Column('blast_date', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('blast_time', sa.Time(), nullable=True),
    sa.Column('follow_up_stage', sa.String(length=100), nullable=True),
    sa.Column('total_recipients', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=20), server_default='draft', nullable=False),
    sa.Column('state_reason', sa.Text(), nullable=True),
    sa.Column('message_template', sa.Text(), nullable=True),
    sa.Column('device', sa.String(length=64), nullable=True),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('parent_blast_id', sa.Integer(), nullable=True),
    sa.Column('source_filename', sa.String(length=255), nullable=True),
    sa.Column('skipped_opted_out', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['parent_blast_id'], ['blasts.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('blasts', schema=None) as batch_op:
        batch_op.create_index('idx_blasts_blast_date', ['blast_date'], unique=False)
        batch_op.create_index('idx_blasts_blast_tag', ['blast_tag'], unique=False)
        batch_op.create_index('idx_blasts_parent', ['parent_blast_id'], unique=False)
        batch_op.create_index('idx_blasts_state', ['state'], unique=False)

    op.create_table('devices',
    sa.Column('device', sa.String(length=64), nullable=False),
    sa.Column('min_gap_seconds', sa.Float(), server_default='8', nullable=False),
    sa.Column('jitter_seconds', sa.Float(), server_default='7', nullable=False),
    sa.Column('pause_every', sa.Integer(), server_default='50', nullable=False),
    sa.Column('pause_seconds', sa.Float(), server_default='300', nullable=False),
    sa.Column('daily_cap', sa.Integer(), server_default='500', nullable=False),
    sa.Column('quiet_start', sa.Time(), nullable=True),
    sa.Column('quiet_end', sa.Time(), nullable=True),
    sa.Column('next_send_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_day', sa.Date(), nullable=True),
    sa.Column('sent_in_day', sa.Integer(), server_default='0', nullable=False),
    sa.Column('sent_since_pause', sa.Integer(), server_default='0', nullable=False),
    sa.Column('online', sa.Boolean(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('device')
    )
    op.create_table('opt_outs',
    sa.Column('phone_number', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=True),
    sa.Column('keyword', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('phone_number')
    )
    op.create_table('webhook_inbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('content_type', sa.String(length=255), nullable=True),
    sa.Column('body', sa.LargeBinary(), nullable=False),
    sa.Column('state', sa.String(length=20), server_default='new', nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.create_index('idx_webhook_inbox_state', ['state', 'id'], unique=False)

    op.create_table('blast_recipients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('phone_number', sa.String(length=20), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('message_text', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=50), server_default='QUEUED', nullable=False),
    sa.Column('message_timestamp', sa.BigInteger(), nullable=True),
    sa.Column('message_c2s_timestamp', sa.BigInteger(), nullable=True),
    sa.Column('read_timestamp', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('wsapme_message_data', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('contact_name', sa.String(length=255), nullable=True),
    sa.Column('variables', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.Column('csv_line', sa.Integer(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('gateway_status', sa.String(length=32), nullable=True),
    sa.Column('reply_text', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('last_polled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('poll_failures', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['blast_id'], ['blasts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('blast_id', 'phone_number', name='uq_blast_recipients_blast_phone')
    )
    with op.batch_alter_table('blast_recipients', schema=None) as batch_op:
        batch_op.create_index('idx_blast_id_status', ['blast_id', 'status'], unique=False)
        batch_op.create_index('idx_message_id', ['message_id'], unique=True)
        batch_op.create_index('idx_phone', ['phone_number', 'sent_at'], unique=False)
        batch_op.create_index('idx_status', ['status'], unique=False)

    op.create_table('status_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient_id', sa.Integer(), nullable=False),
    sa.Column('old_status', sa.String(length=50), nullable=True),
    sa.Column('new_status', sa.String(length=50), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('source', sa.String(length=50), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['recipient_id'], ['blast_recipients.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('status_history', schema=None) as batch_op:
        batch_op.create_index('idx_status_history_recipient', ['recipient_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('status_history', schema=None) as batch_op:
        batch_op.drop_index('idx_status_history_recipient')

    op.drop_table('status_history')
    with op.batch_alter_table('blast_recipients', schema=None) as batch_op:
        batch_op.drop_index('idx_status')
        batch_op.drop_index('idx_phone')
        batch_op.drop_index('idx_message_id')
        batch_op.drop_index('idx_blast_id_status')

    op.drop_table('blast_recipients')
    with op.batch_alter_table('webhook_inbox', schema=None) as batch_op:
        batch_op.drop_index('idx_webhook_inbox_state')

    op.drop_table('webhook_inbox')
    op.drop_table('opt_outs')
    op.drop_table('devices')
    with op.batch_alter_table('blasts', schema=None) as batch_op:
        batch_op.drop_index('idx_blasts_state')
        batch_op.drop_index('idx_blasts_parent')
        batch_op.drop_index('idx_blasts_blast_tag')
        batch_op.drop_index('idx_blasts_blast_date')

    op.drop_table('blasts')
    op.drop_table('app_state')
