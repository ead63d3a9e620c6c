"""A blast keeps the headings of its uploaded list's other columns.

Each recipient's cells were kept (`variables`, by template key), but not the file's own
headings for them: the export could not give a team's "Branch" or "Agent" column back. Blasts
made before this revision have none, and their exports stay as they were.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('blasts') as batch:
        batch.add_column(sa.Column('upload_columns', sa.JSON().with_variant(JSONB(), 'postgresql'),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('blasts') as batch:
        batch.drop_column('upload_columns')
