"""Follow-ups: a new draft blast for the recipients of a chosen stage, linked to its parent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Row, Subquery, and_, case, delete, func, not_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core import templates
from core.config import Settings, get_settings
from core.errors import BadInput, NotFound
from core.funnel import Funnel, FunnelFilter, follow_up_number, funnel, statuses_reaching
from core.models import Blast, BlastRecipient, BlastState, OptOut, longest, utcnow
from core.opt_outs import has_a_past
from core.recipients import StageSelector, campaign_blasts, select_recipients
from core.statuses import Stage, Status


def next_stage_name(stage: str | None, *, taken: Iterable[str | None] = ()) -> str:
    """"Initial" → "Follow-up 1" → "Follow-up 2" …: one past the blast's own stage and past every
    follow-up stage already in its chain (`taken`). A chain numbers its follow-ups in the order
    they are made, so a second follow-up of the first blast is "Follow-up 2", not another
    "Follow-up 1" that the Overview's stage filter would count with the first."""
    numbers = [n for n in map(follow_up_number, [stage, *taken]) if n is not None]
    return f"Follow-up {max(numbers, default=0) + 1}"


def next_follow_up_stage(session: Session, *, blast_id: int) -> str:
    """The stage to propose for a new follow-up of this blast: one past the highest follow-up
    number its chain (the blast itself included) has used."""
    chain = chain_ids(session, blast_id=blast_id)
    stages = session.scalars(select(Blast.follow_up_stage).where(Blast.id.in_(chain)))
    return next_stage_name(None, taken=stages)


@dataclass(frozen=True)
class Audience:
    """Who a follow-up would go to: the recipients the choice picks, less the opted out and
    those another follow-up of this blast has already messaged (or is messaging, or had
    messaged before it was cancelled)."""

    matching: int
    opted_out: int
    followed_up: int = 0
    # Not opted out, and their sale is recorded on another blast of the campaign (one sale a
    # person a campaign): no lead to follow up.
    bought: int = 0

    @property
    def reached(self) -> int:
        return self.matching - self.opted_out - self.followed_up - self.bought


# Follow-ups that have messaged, or are messaging, their people: a second follow-up of the
# same blast leaves those people out. (A draft or scheduled one is pointed to instead: see
# `pending_follow_up`.)
SENT_STATES = (BlastState.SENDING, BlastState.PAUSED, BlastState.COMPLETED)
# A recipient of a cancelled follow-up in one of these never got its message; one the
# gateway refused (FAILED) never got it whatever the follow-up's state.
NEVER_WENT = (Status.QUEUED.value, Status.FAILED.value)


def _candidates(
    parent_id: int, selector: StageSelector, now: dt.datetime | None, *, excluding: int | None = None
) -> tuple[Subquery, ColumnElement[bool], ColumnElement[bool]]:
    """The parent's recipients the selector picks, "this one has opted out" and "this one has
    moved on" (another follow-up of the parent, not `excluding`, has messaged them, or their
    sale is recorded on another blast of the campaign): what the audience counts, what the
    draft takes and what it still takes as it starts, from one definition."""
    chosen, opted_out, followed_up, bought = _parts(parent_id, selector, now, excluding=excluding)
    return chosen, opted_out, and_(or_(followed_up, bought), not_(opted_out))


def _parts(
    parent_id: int, selector: StageSelector, now: dt.datetime | None, *, excluding: int | None
) -> tuple[Subquery, ColumnElement[bool], ColumnElement[bool], ColumnElement[bool]]:
    """`_candidates`' recipients and conditions, with "moved on" in its two parts: followed up
    by another follow-up, and bought on another blast of the campaign (`_bought`)."""
    chosen = select_recipients(blast_ids=[parent_id], selector=selector, now=now).subquery()
    opted_out = chosen.c.phone_number.in_(select(OptOut.phone_number))
    followed_up = chosen.c.phone_number.in_(
        select(BlastRecipient.phone_number).join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(Blast.parent_blast_id == parent_id, Blast.id != (excluding or 0), or_(
            # A paused follow-up that never started has messaged no one (`not_sent_yet`).
            and_(Blast.state.in_(SENT_STATES), not_(not_sent_yet()),
                 BlastRecipient.status != Status.FAILED.value),
            # A follow-up cancelled halfway still reached the people it had sent to.
            and_(Blast.state == BlastState.CANCELLED, BlastRecipient.status.not_in(NEVER_WENT)),
        ))
    )
    return chosen, opted_out, followed_up, _bought(parent_id, chosen, follow_up=excluding)


def _bought(parent_id: int, chosen: Subquery, *, follow_up: int | None) -> ColumnElement[bool]:
    """Their sale is recorded on another blast of the follow-up's campaign, as the sale rule
    measures it from the follow-up (`closed_under_its_tag`): "Last call!" to a buyer, whose
    sale could not be recorded on the follow-up's row. Measured from `follow_up` once it is
    made (from when it was made, not when it is due), else from now, when it would be made;
    the parent's own sales are the chosen stage's business."""
    blasts = campaign_blasts(parent_id, made=utcnow()) if follow_up is None else campaign_blasts(follow_up)
    return chosen.c.phone_number.in_(
        select(BlastRecipient.phone_number)
        .where(BlastRecipient.status == Status.CLOSED.value, BlastRecipient.blast_id.in_(blasts),
               BlastRecipient.blast_id != parent_id)
    )


def follow_up_audience(
    session: Session, *, parent_id: int, selector: StageSelector, now: dt.datetime | None = None,
    follow_up: int | None = None,
) -> Audience:
    """How many of the parent's recipients `create_follow_up` would take with this choice, and
    how many of them it would leave out (opted out, followed up already, or bought on another
    blast of the campaign): shown before the draft is made. For `follow_up`, one made already
    that chooses its people as it starts: whom it would take, as things stand."""
    chosen, opted_out, followed_up, bought = _parts(parent_id, selector, now, excluding=follow_up)

    def counted(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    # Each left out once: opted out first, then bought, then followed up.
    matching, left_out, already, sold = session.execute(
        select(func.count(), counted(opted_out), counted(and_(followed_up, not_(bought), not_(opted_out))),
               counted(and_(bought, not_(opted_out))))
        .select_from(chosen)
    ).one()
    return Audience(int(matching), int(left_out), int(already), int(sold))


# Follow-ups not sent yet: a second one for the same people would message them twice. A paused
# one that never started counts too: Resume or Change time sends it.
UNSENT_STATES = (BlastState.DRAFT, BlastState.SCHEDULED)


def not_sent_yet() -> ColumnElement[bool]:
    never_started = and_(Blast.state == BlastState.PAUSED, Blast.started_at.is_(None))
    return or_(Blast.state.in_(UNSENT_STATES), never_started)


@dataclass(frozen=True)
class PendingFollowUp:
    """A draft or scheduled follow-up that already holds some of the people a new one would take."""

    blast_id: int
    state: str
    follow_up_stage: str | None
    recipients: int
    overlap: int  # how many of the people the new choice picks are already in it


def pending_follow_up(
    session: Session, *, parent_id: int, selector: StageSelector, now: dt.datetime | None = None
) -> PendingFollowUp | None:
    """The parent's unsent follow-up holding the most of the people this choice picks, if any;
    one query, cheap enough to ask on every run of the page."""
    chosen, _, _ = _candidates(parent_id, selector, now)
    overlap = func.count(BlastRecipient.id)
    row = session.execute(
        select(Blast.id, Blast.state, Blast.follow_up_stage, Blast.total_recipients, overlap)
        .join(BlastRecipient, BlastRecipient.blast_id == Blast.id)
        .where(
            Blast.parent_blast_id == parent_id,
            not_sent_yet(),
            BlastRecipient.phone_number.in_(select(chosen.c.phone_number)),
        )
        .group_by(Blast.id, Blast.state, Blast.follow_up_stage, Blast.total_recipients)
        .order_by(overlap.desc(), Blast.id.desc())
        .limit(1)
    ).first()
    return None if row is None else PendingFollowUp(*row)


def _parent_of(session: Session, *, parent_id: int, message_template: str) -> Blast:
    """The blast a follow-up follows, once its message is known to use only what that blast's
    people carry."""
    parent = session.get(Blast, parent_id)
    if parent is None:
        raise NotFound(f"Blast {parent_id} does not exist.")
    problems = templates.validate(message_template, follow_up_placeholders(session, parent_id=parent_id))
    if problems:
        raise BadInput(" ".join(problems))
    return parent


def _stage_of(session: Session, *, parent: Blast, typed: str | None) -> str:
    """A follow-up's stage: as typed, in the spelling other blasts use (`spelled_as_before`), or
    the chain's next."""
    from core.csv_import.storage import check_blast_words, spelled_as_before

    if typed is not None:
        check_blast_words(follow_up_stage=typed)
        typed = spelled_as_before(session, Blast.follow_up_stage, typed)
    return typed or next_follow_up_stage(session, blast_id=parent.id)


def _queue(session: Session, *, blast_id: int, people: Sequence[Row]) -> None:
    """Queue these of the parent's people (number, name, cells) on the follow-up."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(BlastRecipient).on_conflict_do_nothing(),
        [{"blast_id": blast_id, "phone_number": r.phone_number, "contact_name": r.contact_name,
          "variables": r.variables} for r in people],
    )


def create_follow_up(
    session: Session,
    *,
    parent_id: int,
    selector: StageSelector,
    message_template: str,
    follow_up_stage: str | None = None,
    now: dt.datetime | None = None,
) -> Blast:
    """A draft blast, with the same tag, for the parent's recipients that the selector picks,
    less the opted out, those another follow-up of the parent has already messaged and those
    whose sale is recorded on another blast of the campaign. A stage
    typed takes the spelling other blasts use, as an import's does (`spelled_as_before`)."""
    parent = _parent_of(session, parent_id=parent_id, message_template=message_template)
    chosen, opted_out, followed_up = _candidates(parent_id, selector, now)
    rows = session.execute(
        select(chosen.c.phone_number, chosen.c.contact_name, chosen.c.variables)
        .where(~opted_out, ~followed_up)
        .order_by(chosen.c.id)
    ).all()
    if not rows:
        raise BadInput("No recipients match that choice, so there is no one to follow up.")
    stage = _stage_of(session, parent=parent, typed=follow_up_stage)
    child = Blast(
        blast_tag=parent.blast_tag,
        follow_up_stage=stage,
        name=follow_up_name(session, parent=parent, stage=stage),
        message_template=message_template,
        parent_blast_id=parent.id,
        device=parent.device,
        follow_up_selector=selector.as_json(),
        upload_columns=parent.upload_columns,  # their cells come along, in `variables`
    )
    session.add(child)
    session.flush()
    _queue(session, blast_id=child.id, people=rows)
    child.total_recipients = len(rows)
    return child


def drop_moved_on(session: Session, *, blast_id: int, now: dt.datetime | None = None) -> int:
    """Take off a follow-up's queue the people who no longer match its choice as it starts:
    drafted for "Read, no reply" and scheduled for tomorrow, it must not reach someone who has
    replied or bought since, nor someone another follow-up has messaged meanwhile. Counted on
    the blast; returns how many. Anything else (a blast from a file) is left as it is."""
    moved_on = _moved_on(session.get(Blast, blast_id), now)
    if moved_on is None:
        return 0
    removed = session.execute(
        delete(BlastRecipient).where(moved_on).execution_options(synchronize_session=False)
    ).rowcount
    count_moved_on(session, blast_id=blast_id, removed=removed)
    return removed


def moved_on_since(session: Session, *, blast_id: int, now: dt.datetime | None = None) -> set[str]:
    """The numbers `drop_moved_on` would take off this follow-up now, taking nothing off: for
    its draft's page, which says who it will go to before it is sent."""
    moved_on = _moved_on(session.get(Blast, blast_id), now)
    if moved_on is None:
        return set()
    return set(session.scalars(select(BlastRecipient.phone_number).where(moved_on)))


def _moved_on(blast: Blast | None, now: dt.datetime | None) -> ColumnElement[bool] | None:
    """A follow-up's queued rows whose people no longer match its choice; None for anything
    else (a blast from a file)."""
    if blast is None or blast.parent_blast_id is None or not blast.follow_up_selector:
        return None
    selector = StageSelector.from_json(blast.follow_up_selector)
    chosen, _, followed_up = _candidates(blast.parent_blast_id, selector, now, excluding=blast.id)
    still = select(chosen.c.phone_number).where(~followed_up)
    return and_(BlastRecipient.blast_id == blast.id, BlastRecipient.status == Status.QUEUED.value,
                BlastRecipient.phone_number.not_in(still),
                # One sent before (found unknown, sent again by a person) is its only record: left
                # for the claim, which keeps it (`queue.withdraw_claim`).
                ~has_a_past())


# Kept in `blasts.follow_up_selector` beside the choice: a follow-up scheduled ahead takes its
# people as it starts (whoever then matches), and whether it may send with a blank left empty.
CHOSEN_AT_START = "chosen_at_start"
ALLOW_BLANKS = "allow_blanks"


def chosen_at_start(blast: Blast) -> bool:
    """A follow-up scheduled ahead, whose people are whoever matches its choice as it starts."""
    return bool(blast.parent_blast_id and (blast.follow_up_selector or {}).get(CHOSEN_AT_START))


def ahead_of(session: Session, *, parent_id: int) -> list[Blast]:
    """The parent's follow-ups scheduled ahead and not started: they hold no one yet, so
    `pending_follow_up` cannot see them, but they will take whoever matches as they start."""
    unsent = session.scalars(select(Blast).where(Blast.parent_blast_id == parent_id, not_sent_yet())
                             .order_by(Blast.id)).all()
    return [blast for blast in unsent if chosen_at_start(blast)]


def blanks_among(session: Session, *, parent_id: int, message_template: str) -> int:
    """How many of the parent's people (not opted out) would get the message with a gap: a
    follow-up scheduled ahead may take any of them by its time (one not yet read today may
    have by then), and cannot ask as it starts."""
    from core.sending.blasts import recipient_variables  # the sending package reaches this module

    parsed = templates.parse(message_template)
    chosen, opted_out, _ = _candidates(parent_id, StageSelector(), None)
    rows = session.execute(select(chosen.c.contact_name, chosen.c.variables).where(~opted_out))
    return sum(not templates.render(parsed, recipient_variables(name, cells)).ok for name, cells in rows)


def schedule_follow_up(
    session: Session,
    *,
    parent_id: int,
    selector: StageSelector,
    message_template: str,
    at: dt.datetime,
    timezone: dt.tzinfo,
    follow_up_stage: str | None = None,
    allow_blanks: bool = False,
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> Blast:
    """A follow-up scheduled for `at` that takes its people as it starts: whoever then matches
    the choice ("Read, no reply" for 24 hours, say, the day after the blast), less the opted
    out and those another follow-up has messaged. Made right after the blast, when no one has
    waited the hours yet."""
    from core.sending import gateways
    from core.sending.blasts import TIME_PASSED, first_send_at, local_time

    now = now or utcnow()
    if at <= now:
        raise BadInput(TIME_PASSED)
    parent = _parent_of(session, parent_id=parent_id, message_template=message_template)
    if parent.state == BlastState.DRAFT:
        raise BadInput("This blast is a draft: send it before scheduling its follow-up.")
    if not allow_blanks and (gaps := blanks_among(session, parent_id=parent_id,
                                                   message_template=message_template)):
        raise BadInput(f"{gaps:,} of the people it may go to would get the message with a gap: take "
                       "that placeholder out, or choose to send with the blank left empty.")
    stage = _stage_of(session, parent=parent, typed=follow_up_stage)
    device = parent.device or gateways.launch_device(settings or get_settings())
    starts = first_send_at(session, device=device, when=at, settings=settings or get_settings())
    child = Blast(
        blast_tag=parent.blast_tag, follow_up_stage=stage, message_template=message_template,
        name=follow_up_name(session, parent=parent, stage=stage), parent_blast_id=parent.id,
        device=device, state=BlastState.SCHEDULED, scheduled_at=at, total_recipients=0,
        blast_date=starts, blast_time=local_time(starts, timezone), upload_columns=parent.upload_columns,
        follow_up_selector={**selector.as_json(), CHOSEN_AT_START: True, ALLOW_BLANKS: allow_blanks},
    )
    session.add(child)
    session.flush()
    return child


def take_on_who_matches(session: Session, *, blast_id: int, now: dt.datetime | None = None) -> int:
    """A follow-up scheduled ahead (`chosen_at_start`), as it starts: queue whoever now matches
    its choice and is not on it yet, not opted out, not messaged by another follow-up. How
    many; their messages are written by the caller (`core.sending.blasts.personalise`)."""
    blast = session.get(Blast, blast_id)
    if blast is None or not chosen_at_start(blast):
        return 0
    selector = StageSelector.from_json(blast.follow_up_selector or {})
    chosen, opted_out, followed_up = _candidates(blast.parent_blast_id, selector, now, excluding=blast_id)
    on_it = select(BlastRecipient.phone_number).where(BlastRecipient.blast_id == blast_id)
    rows = session.execute(
        select(chosen.c.phone_number, chosen.c.contact_name, chosen.c.variables)
        .where(~opted_out, ~followed_up, chosen.c.phone_number.not_in(on_it))
        .order_by(chosen.c.id)
    ).all()
    if rows:
        _queue(session, blast_id=blast_id, people=rows)
        session.execute(update(Blast).where(Blast.id == blast_id)
                        .values(total_recipients=Blast.total_recipients + len(rows))
                        .execution_options(synchronize_session=False))
    return len(rows)


def count_moved_on(session: Session, *, blast_id: int, removed: int) -> None:
    """Count on the blast the people taken off it for no longer matching its choice."""
    if removed:
        session.execute(
            update(Blast).where(Blast.id == blast_id)
            .values(skipped_moved_on=Blast.skipped_moved_on + removed,
                    total_recipients=Blast.total_recipients - removed)
            .execution_options(synchronize_session=False)
        )


def still_wanted(
    session: Session, *, blast_id: int, phone_number: str, now: dt.datetime | None = None
) -> bool:
    """Whether a follow-up's recipient still matches its choice, asked again just before the
    message goes: a follow-up takes hours to go out at a person's pace, and someone who has
    replied or bought meanwhile must not get "Still keen?". True for any other blast."""
    row = session.execute(
        select(Blast.parent_blast_id, Blast.follow_up_selector).where(Blast.id == blast_id)
    ).one_or_none()
    if row is None or row.parent_blast_id is None or not row.follow_up_selector:
        return True
    selector = StageSelector.from_json(row.follow_up_selector)
    chosen, _, followed_up = _candidates(row.parent_blast_id, selector, now, excluding=blast_id)
    return session.scalar(
        select(chosen.c.phone_number).where(chosen.c.phone_number == phone_number, ~followed_up).limit(1)
    ) is not None


def follow_up_placeholders(session: Session, *, parent_id: int) -> list[str]:
    """The placeholders a follow-up of this blast can use: `name` and the columns of the
    original file, as its recipients carry them."""
    keys = {"name"}
    for variables in session.scalars(
        select(BlastRecipient.variables).where(BlastRecipient.blast_id == parent_id)
    ):
        keys.update(variables or {})
    return sorted(keys)


def follow_up_name(session: Session, *, parent: Blast, stage: str) -> str:
    """The first blast's name and the stage: "Raya promo — Follow-up 2", not the parent's name
    with " — follow-up" added once more for each follow-up of a follow-up, nor the first's own
    stage kept ("Raya promo — Initial — Follow-up 2")."""
    root = session.get(Blast, chain_ids(session, blast_id=parent.id)[0]) or parent
    name = root.name or f"Blast {root.id}"
    if root.follow_up_stage:
        name = name.removesuffix(f" — {root.follow_up_stage}") or name
    said, most = f" — {stage}", longest("name")
    return f"{name[:max(most - len(said), 0)]}{said}"[:most]


def chain_ids(session: Session, *, blast_id: int) -> list[int]:
    """The whole follow-up chain a blast belongs to: its first blast and every follow-up."""
    root = blast_id
    seen = {root}
    while (parent := session.scalar(select(Blast.parent_blast_id).where(Blast.id == root))) is not None:
        if parent in seen:  # a loop would be corrupt data; stop rather than spin
            break
        seen.add(parent)
        root = parent
    chain, frontier = [root], [root]
    while frontier:
        children = session.scalars(
            select(Blast.id).where(Blast.parent_blast_id.in_(frontier)).order_by(Blast.id)
        ).all()
        frontier = [c for c in children if c not in chain]
        chain.extend(frontier)
    return chain


@dataclass(frozen=True)
class ChainPeople:
    """Different people across a blast and its follow-ups, each counted once however many of
    the chain's messages reached them: the campaign's outcome."""

    messaged: int
    replied: int  # wrote back on WhatsApp
    closed: int
    closed_silently: int = 0  # of the closed, those who never wrote back (a sale from a call, a file)


def chain_people(session: Session, *, blast_id: int) -> ChainPeople:
    """Who the chain reached, and how many of them replied (wrote back on WhatsApp) and bought,
    at any of its blasts."""
    status = BlastRecipient.status

    def reached(stage: Stage) -> ColumnElement[int]:
        return func.max(case((status.in_(statuses_reaching(stage.min_rank)), 1), else_=0))

    # Replied on WhatsApp: a sale recorded for someone who never wrote back has no reply time.
    wrote_back = func.max(case((BlastRecipient.replied_at.is_not(None), 1), else_=0))
    people = (
        select(reached(Stage.SENT).label("sent"), wrote_back.label("replied"),
               reached(Stage.CLOSED).label("closed"))
        .where(BlastRecipient.blast_id.in_(chain_ids(session, blast_id=blast_id)))
        .group_by(BlastRecipient.phone_number)
        .subquery()
    )
    silent = case(((people.c.closed == 1) & (people.c.replied == 0), 1), else_=0)
    row = session.execute(select(
        func.coalesce(func.sum(people.c.sent), 0), func.coalesce(func.sum(people.c.replied), 0),
        func.coalesce(func.sum(people.c.closed), 0), func.coalesce(func.sum(silent), 0),
    )).one()
    return ChainPeople(*map(int, row))


def chain_funnels(session: Session, *, blast_id: int) -> list[tuple[Blast, Funnel]]:
    """Each blast of the chain with its own funnel, in order."""
    return [
        (session.get(Blast, bid), funnel(session, filters=FunnelFilter(blast_ids=(bid,))))
        for bid in chain_ids(session, blast_id=blast_id)
    ]
