"""A failed or unknown send that proved to have gone is dated by when it was tried.

Until this revision the reply, receipt or sale that proved such a send had gone stamped its
send time with its own: a reply a day later counted the message as sent that day (on the
daily trend, and as no time at all to reply), and a sale recorded by hand left it with no send
time (counted as sent in the funnel, but on no day). The status engine now dates it by the
history row that marked it failed or unknown; this revision dates the ones settled before it
the same way. A proof that came before the send was marked (a receipt faster than the
timeout) keeps its own, earlier time. The hour rollups follow through their triggers.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# The statuses when this revision was written: a send whose outcome was lost or refused, and
# the statuses that say a message went.
_LOST = "'FAILED', 'UNKNOWN'"
_WENT = "'PENDING', 'SERVER_ACK', 'DELIVERY_ACK', 'READ_ACK', 'REPLIED', 'CLOSED'"

# `tried` marked the send lost (the worker, or the gateway's report; not a person deciding about
# it later), `proof` later moved it on; the send time is the one the proof stamped (or none, for
# a sale), and the try came before the proof.
_TRIED_THEN_PROVED = f"""
    FROM status_history tried
    JOIN status_history proof ON proof.recipient_id = tried.recipient_id
        AND proof.old_status IN ({_LOST}) AND proof.id > tried.id
    WHERE tried.recipient_id = blast_recipients.id AND tried.new_status IN ({_LOST})
        AND tried.source <> 'manual'
        AND proof.new_status IN ({_WENT}) AND tried.changed_at < proof.changed_at
        AND (blast_recipients.sent_at IS NULL OR blast_recipients.sent_at = proof.changed_at)
"""

_REPAIR = sa.text(f"""
    UPDATE blast_recipients SET sent_at = (SELECT max(tried.changed_at) {_TRIED_THEN_PROVED})
    WHERE id IN (SELECT recipient_id FROM status_history WHERE old_status IN ({_LOST})
                 AND new_status IN ({_WENT}))
        AND status IN ({_WENT})
        AND EXISTS (SELECT 1 {_TRIED_THEN_PROVED})
""")


def upgrade() -> None:
    op.execute(_REPAIR)


def downgrade() -> None:
    pass  # the times the proofs stamped are not kept: a send keeps the better date
