"""Blast states (draft → scheduled → sending ⇄ paused → completed / cancelled), each a compare-and-set."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core import templates
from core.config import Settings, get_settings
from core.errors import BadInput, NotFound, StateConflict
from core.followups import (
    ALLOW_BLANKS,
    chosen_at_start,
    drop_moved_on,
    follow_up_placeholders,
    take_on_who_matches,
)
from core.models import Blast, BlastRecipient, BlastState, OptOut, PausedBy, utcnow
from core.sending import gateways, pacing, trouble
from core.statuses import Status

S = BlastState

# Where each action may start from.
# The reasons a blast is paused by a person or by its missed time, not by the sender (the
# health page tells the gateway's pauses from these).
PAUSED_BY_YOU = "Paused by you."
MISSED_SCHEDULE = "It was scheduled for "
_LAUNCHABLE = (S.DRAFT, S.SCHEDULED)
_PAUSABLE = (S.SENDING, S.SCHEDULED)
_RESUMABLE = (S.PAUSED,)
_CANCELLABLE = (S.DRAFT, S.SCHEDULED, S.SENDING, S.PAUSED)

_WORDS = {
    S.DRAFT: "a draft",
    S.SCHEDULED: "scheduled",
    S.SENDING: "sending",
    S.PAUSED: "paused",
    S.COMPLETED: "finished",
    S.CANCELLED: "cancelled",
}


def change_state(
    session: Session,
    *,
    blast_id: int,
    from_states: Iterable[str],
    to_state: str,
    reason: str | None = None,
    paused_by: str | None = None,
    provided: ColumnElement[bool] | None = None,
    **values: object,
) -> bool:
    """Move the blast to `to_state` only if it is still in one of `from_states` (and, with
    `provided`, still meets it); a pause says who made it (`PausedBy`), and is dated."""
    assert (paused_by is not None) == (to_state == S.PAUSED), "a pause, and only a pause, says who"
    now = utcnow()
    result = session.execute(
        update(Blast)
        .where(Blast.id == blast_id, Blast.state.in_(tuple(from_states)),
               *(() if provided is None else (provided,)))
        .values(state=to_state, state_reason=reason, paused_by=paused_by,
                paused_at=now if paused_by else None, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _require(session: Session, blast_id: int, ok: bool, action: str) -> None:
    if ok:
        return
    blast = session.get(Blast, blast_id, populate_existing=True)
    if blast is None:
        raise NotFound(f"Blast {blast_id} does not exist.")
    raise StateConflict(f"Cannot {action} blast {blast_id}: it is {_WORDS.get(blast.state, blast.state)}.")


def remove_opted_out(session: Session, *, blast_id: int) -> int:
    """Take numbers that opted out off a blast's queue, and count them on the blast."""
    opted_out = exists().where(OptOut.phone_number == BlastRecipient.phone_number)
    removed = session.execute(
        delete(BlastRecipient)
        .where(BlastRecipient.blast_id == blast_id, BlastRecipient.status == Status.QUEUED.value, opted_out)
        .execution_options(synchronize_session=False)
    ).rowcount
    if removed:
        session.execute(
            update(Blast)
            .where(Blast.id == blast_id)
            .values(
                skipped_opted_out=Blast.skipped_opted_out + removed,
                total_recipients=Blast.total_recipients - removed,
            )
            .execution_options(synchronize_session=False)
        )
    return removed


def recipient_variables(name: str | None, variables: dict | None) -> dict[str, object]:
    """What a template may use for one recipient: their CSV columns, and `name`."""
    return {**(variables or {}), "name": name or ""}


def personalise(
    session: Session, *, blast: Blast, allow_blanks: bool = False, columns: Iterable[str] | None = None
) -> int:
    """Write each queued recipient's own message from the template; returns how many.

    A mistake in the message (an unknown placeholder, a column in double braces) always
    stops the launch, whatever path it came by (a draft keeps its message as typed); an empty
    value does too unless the marketer chose to send with the blank left empty.
    """
    parsed = templates.parse(blast.message_template or "")
    if parsed.problems:
        raise templates.TemplateError(parsed.problems)
    rows = session.execute(
        select(BlastRecipient.id, BlastRecipient.contact_name, BlastRecipient.variables,
               BlastRecipient.csv_line, BlastRecipient.phone_number)
        .where(BlastRecipient.blast_id == blast.id, BlastRecipient.status == Status.QUEUED.value)
    ).all()
    # The columns the message may use: its people's, or those given (a follow-up's: the first list's).
    known = {"name"}.union(*(row.variables or {} for row in rows)) if columns is None else {"name", *columns}
    templates.check(blast.message_template or "", known)
    texts, blanks = [], []
    for row in rows:
        rendered = templates.render(parsed, recipient_variables(row.contact_name, row.variables))
        if not rendered.ok:
            where = f"line {row.csv_line}" if row.csv_line else row.phone_number
            blanks.append(f"{where}: {'; '.join(rendered.problems)}")
        texts.append({"id": row.id, "message_text": rendered.text})
    if blanks and not allow_blanks:
        shown = "; ".join(blanks[:3]) + (f" (and {len(blanks) - 3} more)" if len(blanks) > 3 else "")
        who = "1 recipient" if len(blanks) == 1 else f"{len(blanks):,} recipients"
        raise BadInput(f"{who} would get a message with a gap: {shown}")
    if texts:
        session.execute(update(BlastRecipient), texts)  # bulk update by primary key
    return len(texts)


def launch(
    session: Session,
    *,
    blast_id: int,
    at: dt.datetime | None = None,
    device: str,
    timezone: dt.tzinfo,
    allow_blanks: bool = False,
    settings: Settings | None = None,
) -> Blast:
    """Freeze the blast's recipients, each with their own message, and queue it: now (`at`
    None) or at a later time. Its date is when sending can really start (`first_send_at`),
    until its first message goes out (`date_first_send`)."""
    blast = session.get(Blast, blast_id, populate_existing=True)
    if blast is None:
        raise NotFound(f"Blast {blast_id} does not exist.")
    if not (blast.message_template or "").strip():
        raise BadInput("Write the message before sending the blast.")
    drop_moved_on(session, blast_id=blast_id)
    remove_opted_out(session, blast_id=blast_id)
    queued = session.scalar(
        select(func.count()).where(
            BlastRecipient.blast_id == blast_id, BlastRecipient.status == Status.QUEUED.value
        )
    )
    if not queued:
        raise BadInput("This blast has no one left to send to.")
    personalise(session, blast=blast, allow_blanks=allow_blanks)
    now = utcnow()
    when = at or now
    state = S.SCHEDULED if at is not None and at > now else S.SENDING
    starts = first_send_at(session, device=device, when=when, settings=settings or get_settings())
    ok = change_state(
        session,
        blast_id=blast_id,
        from_states=_LAUNCHABLE,
        to_state=state,
        device=device,
        scheduled_at=when if state == S.SCHEDULED else None,
        started_at=None if state == S.SCHEDULED else now,
        blast_date=starts,
        blast_time=local_time(starts, timezone),
    )
    _require(session, blast_id, ok, "send")
    session.refresh(blast)
    return blast


def local_time(moment: dt.datetime, zone: dt.tzinfo) -> dt.time:
    """A blast's `blast_time`: the clock time in the team's time zone, to the second."""
    return moment.astimezone(zone).time().replace(microsecond=0)


def first_send_at(session: Session, *, device: str, when: dt.datetime, settings: Settings) -> dt.datetime:
    """When the worker may send the first message of a blast queued for `when` from `device`:
    after the device's quiet hours, day's cap and pacing slot, by the worker's own rule."""
    if settings.send_pacing != "on":  # the worker then keeps none of them
        return when
    row = pacing.current_device(session, device=device, settings=settings)
    return pacing.earliest_send(row, now=when, zone=settings.timezone)


def date_first_send(session: Session, *, blast_id: int, at: dt.datetime, zone: dt.tzinfo) -> bool:
    """Date the blast by its first message, sent `at`: its launch only foresaw when sending
    would start. Nothing changes once an earlier message of it has gone."""
    earlier = exists().where(BlastRecipient.blast_id == blast_id, BlastRecipient.sent_at < at)
    result = session.execute(
        update(Blast)
        .where(Blast.id == blast_id, Blast.blast_date != at, ~earlier)
        .values(blast_date=at, blast_time=local_time(at, zone))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def pause(session: Session, *, blast_id: int, reason: str = PAUSED_BY_YOU) -> None:
    _require(session, blast_id, change_state(
        session, blast_id=blast_id, from_states=_PAUSABLE, to_state=S.PAUSED, reason=reason,
        paused_by=PausedBy.PERSON,
    ), "pause")


def ends_by_itself(blast: Blast) -> bool:
    """Whether the blast is paused with words that say the pause ends by itself: WSAPME down
    for its device, messages not taken (`trouble.BY_ITSELF`). `_ends_by_itself` in SQL."""
    reason = blast.state_reason or ""
    return (blast.state == S.PAUSED and blast.paused_by == PausedBy.GATEWAY
            and reason.startswith(trouble.NOT_TAKEN_HEAD) and trouble.BY_ITSELF in reason)


def _ends_by_itself() -> ColumnElement[bool]:
    return and_(Blast.state == S.PAUSED, Blast.paused_by == PausedBy.GATEWAY,
                Blast.state_reason.startswith(trouble.NOT_TAKEN_HEAD, autoescape=True),
                Blast.state_reason.contains(trouble.BY_ITSELF, autoescape=True))


def keep_paused(session: Session, *, blast_id: int) -> None:
    """Hold for a person a pause that would end by itself (`ends_by_itself`): it waits for
    Resume, as a person's pause. One that has ended by itself meanwhile is paused again."""
    held = change_state(session, blast_id=blast_id, from_states=(S.PAUSED,), to_state=S.PAUSED,
                        reason=PAUSED_BY_YOU, paused_by=PausedBy.PERSON, provided=_ends_by_itself())
    if not held:
        pause(session, blast_id=blast_id)


def resume(session: Session, *, blast_id: int, now: dt.datetime | None = None) -> None:
    """Carry on sending. A blast paused while it waited for its time waits again when that time
    is still ahead; one paused before it ever started whose time has passed starts now."""
    now = now or utcnow()
    waiting = session.scalar(select(Blast.id).where(
        Blast.id == blast_id, Blast.state == S.PAUSED, Blast.started_at.is_(None), Blast.scheduled_at > now
    ))
    if waiting is not None and change_state(session, blast_id=blast_id, from_states=_RESUMABLE,
                                            to_state=S.SCHEDULED):
        return
    starting = session.scalar(select(Blast.started_at.is_(None)).where(Blast.id == blast_id))
    ok = change_state(session, blast_id=blast_id, from_states=_RESUMABLE, to_state=S.SENDING,
                      scheduled_at=None)
    _require(session, blast_id, ok, "resume")
    if starting:
        session.execute(
            update(Blast).where(Blast.id == blast_id, Blast.started_at.is_(None))
            .values(started_at=now).execution_options(synchronize_session=False)
        )
        _take_off_who_moved_on(session, blast_id=blast_id, now=now)


def try_again_by_itself(
    session: Session, *, now: dt.datetime, after: dt.timedelta = trouble.TRIES_AGAIN_AFTER,
    sent_here: ColumnElement[bool] | None = None,
) -> list[int]:
    """Carry on sending the blasts paused at least `after` ago with a pause that ends by itself
    (`ends_by_itself`); returns their ids. Each change asks again that it is still that pause:
    one a person resumed, paused or cancelled meanwhile is left as it is. With `sent_here`
    (`gateways.sent_here`), only the blasts of the worker's gateway."""
    still = and_(_ends_by_itself(), Blast.paused_at <= now - after)
    query = select(Blast.id).where(still).order_by(Blast.id)
    found = session.scalars(query if sent_here is None else query.where(sent_here)).all()
    return [blast_id for blast_id in found
            if change_state(session, blast_id=blast_id, from_states=(S.PAUSED,), to_state=S.SENDING,
                            provided=still)]


TIME_PASSED = "That time has passed: pick a later time, or send now."


def reschedule(
    session: Session,
    *,
    blast_id: int,
    at: dt.datetime | None,
    timezone: dt.tzinfo,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> Blast:
    """Give a blast that has sent nothing yet another time (`at`), or start it now (`at` None):
    a scheduled one, or one paused before it started (by a person, or because its time was
    missed). Its date becomes when sending can really start, as at launch. A blast that has
    started carries on with Resume instead."""
    now = now or utcnow()
    if at is not None and at <= now:
        raise BadInput(TIME_PASSED)
    blast = session.get(Blast, blast_id, populate_existing=True)
    if blast is None:
        raise NotFound(f"Blast {blast_id} does not exist.")
    starts = at or now
    if blast.device:
        starts = first_send_at(session, device=blast.device, when=starts, settings=settings or get_settings())
    dated = {"blast_date": starts, "blast_time": local_time(starts, timezone)}
    not_started = Blast.started_at.is_(None)
    if at is not None:
        ok = change_state(session, blast_id=blast_id, from_states=(S.SCHEDULED, S.PAUSED),
                          to_state=S.SCHEDULED, provided=not_started, scheduled_at=at, **dated)
    else:
        ok = change_state(session, blast_id=blast_id, from_states=(S.SCHEDULED, S.PAUSED),
                          to_state=S.SENDING, provided=not_started, scheduled_at=None, started_at=now,
                          **dated)
        if ok:
            _take_off_who_moved_on(session, blast_id=blast_id, now=now)
    if not ok:
        session.refresh(blast)
        if at is None and blast.state == S.SENDING:
            return blast  # started meanwhile (its time came, or another tab): as asked
        if blast.started_at is not None and blast.state in (S.PAUSED, S.SENDING):
            raise StateConflict(f"Blast {blast_id} has started sending: it cannot be given another time.")
        _require(session, blast_id, ok, "reschedule")
    session.refresh(blast)
    return blast


def move_to_device(session: Session, *, blast_id: int, device: str) -> None:
    """Send the rest of a paused or scheduled blast from another WhatsApp device: the one the
    dashboard is set up with now, when the blast's own is gone. Its pacing is that device's
    from then on. A blast made in practice mode never moves to WhatsApp, nor back."""
    current = session.scalar(select(Blast.device).where(Blast.id == blast_id))
    if gateways.crosses(current, device):
        raise BadInput(f"Blast {blast_id} cannot move to device {device}. {gateways.not_sent_words(current)}")
    result = session.execute(
        update(Blast)
        .where(Blast.id == blast_id, Blast.state.in_((S.PAUSED, S.SCHEDULED)))
        .values(device=device, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    _require(session, blast_id, result.rowcount == 1, "move")


def delete_draft(session: Session, *, blast_id: int) -> None:
    """Take a draft away whole, its list with it: a draft sent nothing and has no history (a
    blast that sent anything keeps its record, and can only be cancelled). A follow-up made of
    it, if any, keeps going without its parent."""
    sent_any = exists().where(BlastRecipient.blast_id == Blast.id,
                              BlastRecipient.status != Status.QUEUED.value)
    result = session.execute(
        delete(Blast).where(Blast.id == blast_id, Blast.state == S.DRAFT, ~sent_any)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 0 and session.scalar(select(Blast.state).where(Blast.id == blast_id)) == S.DRAFT:
        raise StateConflict(f"Cannot delete blast {blast_id}: some of its messages were sent, so it keeps "
                            "its record. Cancel it instead.")
    _require(session, blast_id, result.rowcount == 1, "delete")


def cancel(session: Session, *, blast_id: int) -> None:
    ok = change_state(session, blast_id=blast_id, from_states=_CANCELLABLE, to_state=S.CANCELLED,
                      reason="Cancelled by you.", finished_at=utcnow())
    _require(session, blast_id, ok, "cancel")


def start_due_scheduled(
    session: Session, *, now: dt.datetime, grace: dt.timedelta, zone: ZoneInfo,
    sent_here: ColumnElement[bool] | None = None, settings: Settings | None = None,
) -> list[int]:
    """Start scheduled blasts whose time has come; pause those found long past due instead,
    saying when they were due in the team's time zone (`zone`). With `settings`, a blast is
    late only past the first moment its device's pacing let it go (`first_send_at`): one set
    for midnight, inside the quiet hours, is not missed by a worker that starts at seven.
    With `sent_here` (`gateways.sent_here`), only the blasts the worker's gateway sends:
    another's stay as they are."""
    query = (select(Blast.id, Blast.scheduled_at, Blast.device)
             .where(Blast.state == S.SCHEDULED, Blast.scheduled_at <= now))
    due = session.execute(query if sent_here is None else query.where(sent_here)).all()
    # Each change asks again that the blast is still due: given another time since it was read
    # (Change time, committed meanwhile on PostgreSQL), it waits for that time.
    still_due = Blast.scheduled_at <= now
    started = []
    for blast_id, scheduled_at, device in due:
        could_go = scheduled_at
        if settings is not None and device:
            could_go = first_send_at(session, device=device, when=scheduled_at, settings=settings)
        if now - could_go > grace:
            then = (f"{scheduled_at.astimezone(zone):%d %b %H:%M}" if could_go == scheduled_at else
                    f"{scheduled_at.astimezone(zone):%d %b %H:%M} (its first message could go at "
                    f"{could_go.astimezone(zone):%d %b %H:%M})")
            change_state(
                session, blast_id=blast_id, from_states=(S.SCHEDULED,), to_state=S.PAUSED,
                paused_by=PausedBy.SCHEDULE, provided=still_due,
                reason=f"{MISSED_SCHEDULE}{then} but nothing was running then. Resume it to send "
                "now, give it another time (Change time), or cancel it.",
            )
        elif change_state(session, blast_id=blast_id, from_states=(S.SCHEDULED,),
                          to_state=S.SENDING, provided=still_due, started_at=now):
            _take_off_who_moved_on(session, blast_id=blast_id, now=now)
            started.append(blast_id)
    return started


def _take_off_who_moved_on(session: Session, *, blast_id: int, now: dt.datetime) -> None:
    """A follow-up starting later than it was launched asks its choice again (see
    `drop_moved_on`), and its opt-outs: both may have changed while it waited. One scheduled
    ahead takes on whoever now matches (`take_on_who_matches`), their messages written here:
    its blanks were judged as it was scheduled, for everyone it could take."""
    drop_moved_on(session, blast_id=blast_id, now=now)
    _take_on(session, blast_id=blast_id, now=now)
    remove_opted_out(session, blast_id=blast_id)


def _take_on(session: Session, *, blast_id: int, now: dt.datetime) -> None:
    """`take_on_who_matches` and their messages, in a savepoint: a message that cannot be
    written for them (a gap the marketer did not allow) pauses this blast, saying why, and
    leaves everything else the worker does in the same transaction to go on."""
    blast = session.get(Blast, blast_id, populate_existing=True)
    if blast is None or not chosen_at_start(blast):
        return
    try:
        with session.begin_nested():
            if take_on_who_matches(session, blast_id=blast_id, now=now):
                blanks = bool((blast.follow_up_selector or {}).get(ALLOW_BLANKS))
                columns = follow_up_placeholders(session, parent_id=blast.parent_blast_id or 0)
                personalise(session, blast=blast, allow_blanks=blanks, columns=columns)
    except BadInput as exc:  # a TemplateError too
        # Not started: nothing went, and Resume or Change time tries its people again.
        change_state(session, blast_id=blast_id, from_states=(S.SENDING,), to_state=S.PAUSED,
                     paused_by=PausedBy.MESSAGE, started_at=None,
                     reason=f"Its message could not be written for the people it took as it started: {exc} "
                     "Cancel it, and make the follow-up again with another message.")


def reopen_for_resends(session: Session, *, blast_id: int) -> bool:
    """A finished blast given messages to send again (unknown sends a person chose to resend)
    takes up sending; a paused one sends them when resumed, a sending one in its turn."""
    return change_state(session, blast_id=blast_id, from_states=(S.COMPLETED,), to_state=S.SENDING,
                        finished_at=None)


def reopen_requeued(session: Session) -> list[int]:
    """Finished blasts that hold queued messages, sending again. `reopen_for_resends` does this
    as the messages are queued; this catches a blast that `complete_finished` marked finished
    in the moment between (on PostgreSQL it cannot see rows another transaction has not yet
    committed)."""
    # Read from the queue's side: its partial index holds only the queued rows.
    queued = select(BlastRecipient.blast_id).where(BlastRecipient.status == Status.QUEUED.value)
    ids = session.scalars(select(Blast.id).where(Blast.state == S.COMPLETED, Blast.id.in_(queued))).all()
    return [blast_id for blast_id in ids if reopen_for_resends(session, blast_id=blast_id)]


def complete_finished(session: Session, *, now: dt.datetime) -> list[int]:
    """Mark sending blasts with nothing left queued or in flight as completed."""
    in_flight = exists().where(
        BlastRecipient.blast_id == Blast.id,
        BlastRecipient.status.in_((Status.QUEUED.value, Status.SENDING.value)),
    )
    ids = session.scalars(select(Blast.id).where(Blast.state == S.SENDING, ~in_flight)).all()
    return [
        blast_id for blast_id in ids
        if change_state(session, blast_id=blast_id, from_states=(S.SENDING,), to_state=S.COMPLETED,
                        finished_at=now)
    ]
