"""A blast's recipients: finding them, their history, and what a person does to them by hand."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, literal_column, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.expression import FunctionElement

from core.config import PRACTICE_DEVICES, get_settings
from core.funnel import status_rank
from core.models import Blast, BlastRecipient, BlastState, OptOut, RecipientReply, StatusHistory, UtcDateTime
from core.phones import typed_number
from core.status_engine import StatusChange, apply_status
from core.statuses import RANK, Stage, Status, status_in_words
from core.wsapme.answers import SendResult


@dataclass(frozen=True)
class StageSelector:
    """Recipients of a blast by how far they got: at least `stage`, and not yet `not_stage`."""

    stage: Stage | None = None
    not_stage: Stage | None = None
    statuses: tuple[str, ...] = ()
    older_than: dt.timedelta | None = None  # reached `stage` at least this long ago

    def as_json(self) -> dict[str, object]:
        """What a follow-up keeps of the choice it was made with (`blasts.follow_up_selector`)."""
        return {
            "stage": self.stage and self.stage.value,
            "not_stage": self.not_stage and self.not_stage.value,
            "statuses": list(self.statuses),
            "older_than_seconds": self.older_than and self.older_than.total_seconds(),
        }

    @classmethod
    def from_json(cls, kept: dict[str, object]) -> StageSelector:
        seconds = kept.get("older_than_seconds")
        return cls(
            stage=Stage(kept["stage"]) if kept.get("stage") else None,
            not_stage=Stage(kept["not_stage"]) if kept.get("not_stage") else None,
            statuses=tuple(kept.get("statuses") or ()),
            older_than=dt.timedelta(seconds=float(seconds)) if seconds else None,
        )


# The choices a marketer picks from, in their words.
SELECTIONS: dict[str, StageSelector] = {
    "Everyone": StageSelector(),
    "Sent": StageSelector(stage=Stage.SENT),
    "Sent, not received": StageSelector(stage=Stage.SENT, not_stage=Stage.RECEIVED),
    "Received": StageSelector(stage=Stage.RECEIVED),
    "Received, not read": StageSelector(stage=Stage.RECEIVED, not_stage=Stage.READ),
    "Read": StageSelector(stage=Stage.READ),
    "Read, no reply": StageSelector(stage=Stage.READ, not_stage=Stage.REPLIED),
    "Sent, no reply": StageSelector(stage=Stage.SENT, not_stage=Stage.REPLIED),
    "Replied": StageSelector(stage=Stage.REPLIED),
    "Replied, not closed": StageSelector(stage=Stage.REPLIED, not_stage=Stage.CLOSED),
    "Closed": StageSelector(stage=Stage.CLOSED),
    "Failed": StageSelector(statuses=(Status.FAILED.value,)),
    "Unknown": StageSelector(statuses=(Status.UNKNOWN.value,)),
    "Not sent yet": StageSelector(statuses=(Status.QUEUED.value, Status.SENDING.value)),
}

_STAGE_COLUMN = {
    Stage.SENT: BlastRecipient.sent_at,
    Stage.RECEIVED: BlastRecipient.delivered_at,
    Stage.READ: BlastRecipient.read_timestamp,
    Stage.REPLIED: BlastRecipient.replied_at,
    Stage.CLOSED: BlastRecipient.closed_at,
}


def select_recipients(
    *, blast_ids: Sequence[int], selector: StageSelector, now: dt.datetime | None = None,
    search: str | None = None,
) -> Select:
    """A query for the recipients of these blasts that the selector picks."""
    rank = status_rank()
    query = select(BlastRecipient).where(BlastRecipient.blast_id.in_(tuple(blast_ids)))
    if selector.stage is not None:
        query = query.where(rank >= selector.stage.min_rank)
        if selector.older_than is not None:
            cutoff = (now or dt.datetime.now(dt.UTC)) - selector.older_than
            query = query.where(_STAGE_COLUMN[selector.stage] <= cutoff)
    if selector.not_stage is not None:
        query = query.where(rank < selector.not_stage.min_rank)
    if selector.statuses:
        query = query.where(BlastRecipient.status.in_(selector.statuses))
    if search and search.strip():
        query = query.where(matches_search(search.strip()))
    return query


def matches_search(term: str, *, region: str | None = None) -> ColumnElement[bool]:
    """A recipient whose number, name or any reply holds `term`. Escaped: a % or _ typed is
    searched for as written, not as a pattern. A number is found however it is typed
    ("012-345 6789" finds +60123456789): by its digits, which a stored number keeps in order,
    or as the whole number it is in `region` (the configured PHONE_REGION unless given)."""
    typed = typed_number(term, region or get_settings().phone_region)
    by_number = BlastRecipient.phone_number.contains(typed.digits if typed else term, autoescape=True)
    if typed is not None and typed.e164:
        by_number = or_(by_number, BlastRecipient.phone_number == typed.e164)
    return or_(
        by_number,
        BlastRecipient.contact_name.icontains(term, autoescape=True),
        BlastRecipient.reply_text.icontains(term, autoescape=True),
        # A later reply too: the first is often "ok", the next says what they want.
        select(RecipientReply.id).where(
            RecipientReply.recipient_id == BlastRecipient.id,
            RecipientReply.text.icontains(term, autoescape=True),
        ).exists(),
    )


def page_of_recipients(
    session: Session, *, blast_id: int, selection: str = "Everyone", search: str | None = None,
    page: int = 1, page_size: int = 50,
) -> tuple[list[BlastRecipient], int]:
    """One page of a blast's recipients and how many there are in all."""
    query = select_recipients(blast_ids=[blast_id], selector=SELECTIONS[selection], search=search)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(BlastRecipient.id).offset((max(page, 1) - 1) * page_size).limit(page_size)
    ).all()
    return list(rows), total


def history(session: Session, *, recipient_id: int) -> list[StatusHistory]:
    """A recipient's changes in the order they were made, each old status the one before's new.

    Not by their times: the gateway's times are whole seconds, ours are not, so a receipt in
    the same second as the send would be listed before it."""
    return list(session.scalars(
        select(StatusHistory).where(StatusHistory.recipient_id == recipient_id).order_by(StatusHistory.id)
    ))


def replies(session: Session, *, recipient_id: int) -> list[RecipientReply]:
    """Everything the recipient wrote back, in the order written."""
    return list(session.scalars(
        select(RecipientReply).where(RecipientReply.recipient_id == recipient_id)
        .order_by(RecipientReply.replied_at, RecipientReply.id)
    ))


# A sale is recorded against a message that went out: not one still waiting to go (closing it
# would take it out of the queue unsent) nor one the gateway refused. A send with an unknown
# outcome can be closed: a sale is evidence that the message arrived.
NOT_SENT = (Status.QUEUED.value, Status.SENDING.value, Status.FAILED.value)
CANCELLED_UNSENT = "Not sent (cancelled)"


def status_words(status: str, *, cancelled: bool = False) -> str | None:
    """A recipient's status in a marketer's words (None for a code this version does not know).
    On a cancelled blast, a message still waiting to go will never go; one being sent when the
    blast was cancelled may still have gone, so it keeps its own words."""
    if cancelled and status == Status.QUEUED.value:
        return CANCELLED_UNSENT
    return status_in_words(status)


def close_sale(
    session: Session, *, recipient_id: int, source: str, at: dt.datetime | None = None,
    event: Mapping[str, object] | None = None,
) -> StatusChange:
    """Record a sale on one recipient: CLOSED, stamped with its own time only (a no-op for one
    already closed): an unknown send is not made "sent" at the hour of the sale, nor a read
    and a reply made up. The one way a sale is recorded, by hand or from a file."""
    return apply_status(session, recipient_id=recipient_id, status=Status.CLOSED, source=source, at=at,
                        event=event, stamp_skipped=False)


# How far apart two blasts of one tag may be made and still be one campaign, for a sale: a
# buyer closed on one is not closed again on the other, by hand or from a file.
CAMPAIGN_SPAN = dt.timedelta(days=31)


def closed_under_its_tag(session: Session, recipient: BlastRecipient) -> int | None:
    """The blast where this recipient's number is closed already, among the blasts of its
    blast's campaign (`_same_campaign`): the sale is recorded there. None for a blast with no
    tag."""
    this, its = aliased(Blast), aliased(Blast)
    return session.scalar(
        select(BlastRecipient.blast_id)
        .join(its, its.id == BlastRecipient.blast_id)
        .join(this, this.id == recipient.blast_id)
        .where(BlastRecipient.phone_number == recipient.phone_number,
               BlastRecipient.status == Status.CLOSED.value, _same_campaign(this, its))
        .order_by(BlastRecipient.blast_id)
        .limit(1)
    )


def sale_in_campaign() -> ColumnElement[int | None]:
    """For a query over `BlastRecipient` joined to its `Blast`: the blast where the recipient's
    number has its sale recorded on another blast of the same campaign (as
    `closed_under_its_tag` finds it), or NULL. Such a person is no lead to follow up: their
    sale is recorded, and recording it again is refused. A look at the number's few sales
    (`idx_blast_recipients_closed_phone`)."""
    other, its = aliased(BlastRecipient), aliased(Blast)
    return (
        select(func.min(other.blast_id))
        .join(its, its.id == other.blast_id)
        .where(other.phone_number == BlastRecipient.phone_number, other.status == Status.CLOSED.value,
               other.blast_id != BlastRecipient.blast_id, _same_campaign(Blast, its))
        .correlate(BlastRecipient, Blast)
        .scalar_subquery()
    )


def campaign_blasts(blast_id: int, *, made: dt.datetime | None = None) -> Select:
    """The ids of the other blasts of this blast's campaign (`_same_campaign`). With `made`, of
    the campaign a blast of its tag and device made then is in: a follow-up about to be made."""
    this, its = aliased(Blast), aliased(Blast)
    return select(its.id).join(this, this.id == blast_id).where(
        its.id != blast_id, _same_campaign(this, its, made=made))


def _same_campaign(this: Any, its: Any, *, made: dt.datetime | None = None) -> ColumnElement[bool]:
    """`its` is a blast of `this` blast's campaign: the same tag (a blast with none has no
    campaign), made within CAMPAIGN_SPAN of it (of `made`, when given). A tag used again next
    year ("Year End Sale") is another campaign, and so are practice mode's blasts to WhatsApp's
    (a sale tried out in practice is no real sale). The one definition of a campaign, for sales."""
    practice = func.coalesce(this.device, "").in_(PRACTICE_DEVICES)
    its_practice = func.coalesce(its.device, "").in_(PRACTICE_DEVICES)
    span = int(CAMPAIGN_SPAN.total_seconds())
    if made is None:
        within = its.created_at.between(_Shifted(this.created_at, -span), _Shifted(this.created_at, span))
    else:
        within = its.created_at.between(made - CAMPAIGN_SPAN, made + CAMPAIGN_SPAN)
    return and_(
        func.coalesce(this.blast_tag, "") != "", its.blast_tag == this.blast_tag, within,
        or_(practice & its_practice, ~practice & ~its_practice),
    )


class _Shifted(FunctionElement):
    """A time column moved by a whole number of seconds, in the database's own terms."""

    type = UtcDateTime()
    inherit_cache = True
    name = "shifted"

    def __init__(self, column: ColumnElement, seconds: int) -> None:
        super().__init__(column, literal_column(str(int(seconds))))


@compiles(_Shifted)
def _shifted_postgresql(element: _Shifted, compiler: object, **kw: object) -> str:
    column, seconds = element.clauses
    return f"({compiler.process(column, **kw)} + {compiler.process(seconds, **kw)} * interval '1 second')"  # type: ignore[attr-defined]


@compiles(_Shifted, "sqlite")
def _shifted_sqlite(element: _Shifted, compiler: object, **kw: object) -> str:
    # SQLite keeps times as text in UTC, with the fraction of a second: strftime's %f keeps it
    # too (to the millisecond), where datetime() would drop it.
    column, seconds = element.clauses
    return (f"strftime('%Y-%m-%d %H:%M:%f', {compiler.process(column, **kw)}, "  # type: ignore[attr-defined]
            f"{compiler.process(seconds, **kw)} || ' seconds')")  # type: ignore[attr-defined]


def cell_of(variables: Mapping[str, object] | None, key: str) -> str:
    """A recipient's cell in one of their list's columns, "" when it has none."""
    return str((variables or {}).get(key) or "")


_SALES_LOCK_ID = 7_305_115


def sales_in_turn(session: Session, phones: Iterable[str]) -> None:
    """Sales for these numbers are recorded one transaction at a time: two people closing one
    buyer on two blasts of a campaign at once would each find no sale recorded, and both close
    it. Taken in order of number, so two transactions never wait on each other. On SQLite the
    write lock taken at BEGIN already does it."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for phone in sorted(set(phones)):
        session.execute(select(func.pg_advisory_xact_lock(_SALES_LOCK_ID, func.hashtext(phone))))


def not_sent(session: Session, *, recipient_ids: Sequence[int]) -> list[int]:
    """Those of these recipients whose message has not gone out (waiting, or failed)."""
    if not recipient_ids:
        return []
    return list(session.scalars(select(BlastRecipient.id).where(
        BlastRecipient.id.in_(tuple(recipient_ids)), BlastRecipient.status.in_(NOT_SENT))))


@dataclass(frozen=True)
class Sales:
    """What recording sales by hand did (`mark_closed`)."""

    changes: list[StatusChange]  # one for each recipient it closed, or found closed already
    unsent: list[int]  # whose message has not gone out: left as they are
    elsewhere: dict[int, int]  # recipient: the blast of its campaign where its number is closed

    @property
    def closed(self) -> int:
        return sum(c.changed for c in self.changes)

    @property
    def already(self) -> int:
        return len(self.changes) - self.closed


def mark_closed(
    session: Session, *, recipient_ids: Sequence[int], source: str = "manual",
    at: dt.datetime | None = None, note: str | None = None,
) -> Sales:
    """Record sales: each recipient moves to CLOSED (a no-op for ones already closed). Left as
    they are: ones whose message has not gone out (`not_sent`), and ones whose number is closed
    already on another blast of the campaign (`closed_under_its_tag`: one sale a person a
    campaign, as a file of buyers counts it; undo it there to record it here)."""
    event = {"action": "mark closed", **({"note": note} if note else {})}
    if recipient_ids:
        sales_in_turn(session, session.scalars(select(BlastRecipient.phone_number)
                                               .where(BlastRecipient.id.in_(tuple(recipient_ids)))))
    unsent = set(not_sent(session, recipient_ids=recipient_ids))
    # Read once, after the lock: what each is now.
    rows = {row.id: row for row in session.scalars(
        select(BlastRecipient).where(BlastRecipient.id.in_(tuple(recipient_ids)))
        .execution_options(populate_existing=True))} if recipient_ids else {}
    changes, elsewhere = [], {}
    for rid in recipient_ids:
        if rid in unsent:
            continue
        row = rows.get(rid)
        open_ = row is not None and row.status != Status.CLOSED.value
        if open_ and (before := closed_under_its_tag(session, row)) is not None:
            elsewhere[rid] = before
            continue
        changes.append(close_sale(session, recipient_id=rid, source=source, at=at, event=event))
    return Sales(changes, sorted(unsent), elsewhere)


def undo_sales(session: Session, *, recipient_ids: Sequence[int]) -> int:
    """Sales recorded by mistake: each of these that is CLOSED goes back to where it stood
    before its sale was recorded (in its history; for one closed without a history, the last
    stage it has a time for), its close time cleared. Someone who wrote back since the sale is
    then moved on to replied by their first reply, as the reply would have moved them. How
    many were undone; a recipient a change reached meanwhile is left as it is."""
    closed = session.scalars(select(BlastRecipient).where(
        BlastRecipient.id.in_(tuple(recipient_ids)), BlastRecipient.status == Status.CLOSED.value)).all()
    undone = 0
    for row in closed:
        before = _status_before_the_sale(session, row)
        # A send whose outcome was never known is that again: the sale had settled it.
        updates = {"error": UNDONE_UNKNOWN} if before is Status.UNKNOWN else {}
        change = apply_status(session, recipient_id=row.id, status=before, source="manual", manual=True,
                              event={"action": "undo sale"}, updates=updates,
                              only_from=(Status.CLOSED.value,))
        undone += change.changed
        below_replied = change.changed and RANK[before] < RANK[Status.REPLIED]
        said = replies(session, recipient_id=row.id) if below_replied else []
        if said:
            apply_status(session, recipient_id=row.id, status=Status.REPLIED, source="manual",
                         at=said[0].replied_at, event={"action": "undo sale: they had replied"},
                         updates={"reply_text": said[0].text})
    return undone


UNDONE_UNKNOWN = "A sale was recorded for this send, then undone: whether it went out is not known."


def _status_before_the_sale(session: Session, row: BlastRecipient) -> Status:
    before = session.scalar(
        select(StatusHistory.old_status)
        .where(StatusHistory.recipient_id == row.id, StatusHistory.new_status == Status.CLOSED.value)
        .order_by(StatusHistory.id.desc()).limit(1)
    )
    if before in Status.__members__ and before != Status.CLOSED.value:
        return Status(before)
    for status, at in ((Status.REPLIED, row.replied_at), (Status.READ_ACK, row.read_timestamp),
                       (Status.DELIVERY_ACK, row.delivered_at), (Status.SERVER_ACK, row.sent_at)):
        if at is not None:
            return status
    return Status.UNKNOWN  # a sale for a send whose outcome was never known


@dataclass(frozen=True)
class Resent:
    queued: int  # back in the queue
    opted_out: int = 0  # left as they were: the number asked not to be messaged since
    cancelled: int = 0  # left as they were: their blast was cancelled, nothing more goes from it


# What a person may send again: a send whose outcome was lost, once they are sure it did not
# arrive, and one the gateway turned down, once the cause is mended (a quota, an account).
RESENDABLE = (Status.UNKNOWN.value, Status.FAILED.value)


# A message that failed after the gateway took it had a send time and a message id: the new
# send stamps its own, and a late or repeated receipt of the first message (its error again, a
# one-tick sent before the error) finds no row to move, where it had failed the resend or lifted
# it out of the queue as if it had gone. Its history keeps what the first try was.
FIRST_TRY_FORGOTTEN = {"sent_at": None, **dict.fromkeys(SendResult.STORED_AS)}


def resend(session: Session, *, recipient_ids: Sequence[int]) -> Resent:
    """A person decided these unknown or failed sends should go again: back in the queue, and a
    blast that had finished takes up sending again. Never to a number on the opt-out list, and
    never from a cancelled blast."""
    from core.sending.blasts import reopen_for_resends

    rows = session.execute(
        select(BlastRecipient.id, BlastRecipient.blast_id,
               (Blast.state == BlastState.CANCELLED).label("cancelled"),
               OptOut.phone_number.is_not(None).label("opted_out"))
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .outerjoin(OptOut, OptOut.phone_number == BlastRecipient.phone_number)
        .where(BlastRecipient.id.in_(tuple(recipient_ids)), BlastRecipient.status.in_(RESENDABLE))
    ).all()
    again = {r.id: r.blast_id for r in rows if not r.cancelled and not r.opted_out}
    queued = _decide(
        session, recipient_ids=list(again), status=Status.QUEUED, action="resend",
        updates={"error": None, "next_attempt_at": None, "attempts": 0, **FIRST_TRY_FORGOTTEN},
        among=RESENDABLE,
    )
    for blast_id in sorted({again[rid] for rid in queued}):
        reopen_for_resends(session, blast_id=blast_id)
    return Resent(queued=len(queued), opted_out=sum(1 for r in rows if r.opted_out and not r.cancelled),
                  cancelled=sum(1 for r in rows if r.cancelled))


def mark_failed(session: Session, *, recipient_ids: Sequence[int]) -> int:
    """A person decided these UNKNOWN sends did not go out."""
    return len(_decide(
        session, recipient_ids=recipient_ids, status=Status.FAILED, action="mark failed",
        updates={"error": "Marked as not sent by a person."},
    ))


def _decide(
    session: Session, *, recipient_ids: Sequence[int], status: Status, action: str,
    updates: dict[str, object], among: Sequence[str] = (Status.UNKNOWN.value,),
) -> list[int]:
    """Only a person settles an UNKNOWN send (or sends a FAILED one again); rows in any other
    status than `among` are left alone, judged once each is locked: a receipt or a reply
    that landed since the person looked settles it instead. The ids changed."""
    unknown = session.scalars(
        select(BlastRecipient.id).where(
            BlastRecipient.id.in_(tuple(recipient_ids)), BlastRecipient.status.in_(tuple(among))
        )
    ).all()
    changes = [
        apply_status(session, recipient_id=rid, status=status, source="manual", manual=True,
                     event={"action": action}, updates=updates, only_from=among)
        for rid in unknown
    ]
    return [change.recipient_id for change in changes if change.changed]
