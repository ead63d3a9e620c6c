"""When this process started, as near as it can tell: when it first needed this module, which a
server does once it serves a page or starts its background services. The pages ask it to tell
news from the first moments after a start (a worker that has not checked in yet, receipts the
test gateway kept in the memory of the process before)."""

from core.models import utcnow

STARTED_AT = utcnow()
