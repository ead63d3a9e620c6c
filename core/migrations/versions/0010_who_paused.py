"""A paused blast says who paused it, and when.

The health page lists the blasts the gateway stopped (a refused token, a device offline,
several sends in a row not taken) since it last took a message, and not those a person paused
or that missed their scheduled time. It had told them apart by the pause's words, and dated
the pause by the blast's last change of any kind: an opt-out taking a number off a blast paused
last month brought that pause back. `paused_by` ('person', 'schedule' or 'gateway') and
`paused_at` now say it. Blasts paused before this revision are read once from those words and
dated by their last change.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

# The words of core/sending/blasts.py's pauses when this revision was written.
_FROM_WORDS = sa.text("""
    UPDATE blasts SET paused_by = CASE
        WHEN state_reason = 'Paused by you.' THEN 'person'
        WHEN state_reason LIKE 'It was scheduled for %' THEN 'schedule'
        ELSE 'gateway' END
    WHERE state = 'paused' AND state_reason IS NOT NULL
""")
_DATED = sa.text("UPDATE blasts SET paused_at = updated_at WHERE state = 'paused'")


def upgrade() -> None:
    with op.batch_alter_table('blasts') as batch:
        batch.add_column(sa.Column('paused_by', sa.String(16), nullable=True))
        batch.add_column(sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True))
    op.execute(_FROM_WORDS)
    op.execute(_DATED)


def downgrade() -> None:
    with op.batch_alter_table('blasts') as batch:
        batch.drop_column('paused_at')
        batch.drop_column('paused_by')
