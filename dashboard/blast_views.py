"""Blast detail pieces: live progress, actions, recipients, exports and follow-ups."""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy import func, select

from core import templates
from core.followups import (
    Audience,
    PendingFollowUp,
    ahead_of,
    blanks_among,
    chain_funnels,
    chain_ids,
    chain_people,
    chosen_at_start,
    create_follow_up,
    follow_up_audience,
    follow_up_placeholders,
    next_follow_up_stage,
    pending_follow_up,
    schedule_follow_up,
)
from core.funnel import FunnelFilter, closed_without_reply, stuck_at_each_stage
from core.gateway import make_client
from core.models import Blast, BlastRecipient, BlastState, longest, utcnow
from core.polling import poll_round
from core.recipients import (
    SELECTIONS,
    StageSelector,
    status_words,
)
from core.sending import blasts, gateways
from core.sending.pacing import PacingRules, current_device, held_back
from core.sending.progress import Progress, blast_progress, rules_for
from core.words import shown_percent
from dashboard.charts import funnel_figure
from dashboard.compose import PASSED, bubble_html, has_passed, plain, quiet_hours_note, render_when
from dashboard.data import get_engine, reading, session, settings
from dashboard.finish_note import held_words, made_words, not_going_out, waiting_note
from dashboard.format import STATE_WORDS, plural, state_word, when_words
from dashboard.kept_upload import BLASTS_MADE
from dashboard.layout import friendly_errors

LIVE_STATES = ("sending", "scheduled")
FINISHED_STATES = (BlastState.COMPLETED, BlastState.CANCELLED)
NO_ONE = "This blast had no one to send to."
UNFINISHED_STATES = BlastState.UNFINISHED
# How often the live sections refresh themselves: quickly while messages go out, slowly
# afterwards while receipts and replies can still arrive (most come after the last send).
LIVE_EVERY_SECONDS = 2
SETTLING_EVERY_SECONDS = 15
SOON = dt.timedelta(minutes=5)

PICK_KEY = "blast_pick"


def local(moment: dt.datetime | None, fmt: str = "%d %b %Y, %H:%M") -> str:
    return moment.astimezone(settings().timezone).strftime(fmt) if moment else "—"


def state_badge(state: str, *, held_up: bool = False) -> str:
    """The blast's state as a badge; `held_up`: a sending one whose messages are not going out
    (`finish_note.not_going_out`), which must not read "Sending"."""
    word, colour = STATE_WORDS.get(state, (state, "gray"))
    if held_up and state == BlastState.SENDING:
        word, colour = "Not going out", "orange"
    return f":{colour}-badge[{word}]"


# Why people were taken off a blast, for its heading. A number that opts out while its blast
# waits or sends leaves it then, so that count can grow.
OPTED_OUT = "they asked not to be messaged"
MOVED_ON = "they had moved on, say replied, when it went out"


def left_out_words(skipped: int | None, why: str) -> str:
    """ " · 3 left out (they asked not to be messaged)", for the blast's heading; "" for none."""
    return f" · {skipped:,} left out ({why})" if skipped else ""


def status_word(status: str | None, *, cancelled: bool = False) -> str:
    """A recipient's status as the marketer reads it (`cancelled`: of a cancelled blast, where
    one still waiting will never go); the code stays in the database and exports."""
    if not status:
        return "—"
    return status_words(status, cancelled=cancelled) or status.replace("_", " ").capitalize()


def flash(name: str, value: Any) -> None:
    """Keep a result to show on the next run, so that a rerun can bring every number up to date
    without the marketer losing the message about what just happened."""
    st.session_state[f"flash_{name}"] = value


def take_flash(name: str) -> Any:
    return st.session_state.pop(f"flash_{name}", None)


def blast_to_show(ids: Sequence[int], *, asked: str | None, picked: int | None) -> int:
    """The blast the address names (a link, a shared URL, or the picker, which writes the address
    when it changes); else the one picked before; else the newest."""
    if asked and asked.isdigit() and int(asked) in ids:
        return int(asked)
    return picked if picked in ids else ids[0]


def _address_follows_pick() -> None:
    # A change the browser sent before the picker was dropped (`redraw_picker`) finds no value:
    # the page's next run puts it back.
    picked = st.session_state.get(PICK_KEY)
    if picked is not None:
        st.query_params["blast"] = str(picked)


def picker_label(blast_id: int, name: str | None, tag: str | None, state: str, day: dt.datetime) -> str:
    """ "#57 · cny_list · 27 Nov · CNY Sale · sent 28 Nov 2026": the blast's day said for what it
    is (its messages' day, a draft's making, a schedule's), beside a name that may hold another
    day (the one it was made, for a blast sent after midnight)."""
    when = local(day, "%d %b %Y")
    said = {BlastState.DRAFT: f"draft of {when}", BlastState.SCHEDULED: f"for {when}"}.get(
        state, f"sent {when}")
    return f"#{blast_id} · {name or 'Untitled'} · {tag or 'no tag'} · {said}"


def render_blast_picker(labels: dict[int, str]) -> int:
    """The blast picker, in step with the address's ?blast=: a link to another blast wins over
    the picker's remembered value, and picking a blast updates the address."""
    ids = list(labels)
    asked = st.query_params.get("blast")
    blast_id = blast_to_show(ids, asked=asked, picked=st.session_state.get(PICK_KEY))
    if asked and asked.isdigit() and int(asked) != blast_id:
        st.warning(f"There is no blast #{int(asked)} (it may have been deleted); showing #{blast_id}.")
    if st.session_state.get(PICK_KEY) != blast_id:
        st.session_state[PICK_KEY] = blast_id
    st.selectbox("Blast", ids, format_func=labels.get, key=PICK_KEY, on_change=_address_follows_pick)
    st.query_params["blast"] = str(blast_id)
    return blast_id


def refresh_seconds(
    state: str, *, last_sent: dt.datetime | None, now: dt.datetime, window: dt.timedelta,
    starts_at: dt.datetime | None = None,
) -> int | None:
    """Seconds between refreshes of the live sections, or None for a blast nothing more can
    happen to: never sent, or its last send older than the reply window. A blast scheduled
    for later than the next few minutes is looked at every SETTLING_EVERY_SECONDS."""
    if state == "scheduled" and starts_at is not None and starts_at - now > SOON:
        return SETTLING_EVERY_SECONDS
    if state in LIVE_STATES:
        return LIVE_EVERY_SECONDS
    if last_sent is not None and now - last_sent < window:
        return SETTLING_EVERY_SECONDS
    return None


def refresh_every(blast: Blast) -> int | None:
    last_sent = None if blast.state in LIVE_STATES else _last_sent(blast.id)
    return refresh_seconds(
        blast.state, last_sent=last_sent, now=utcnow(), starts_at=blast.scheduled_at,
        window=dt.timedelta(hours=settings().reply_window_hours),
    )


def chain_refresh_every(blast_id: int) -> int | None:
    """How often the follow-up chain refreshes while any of its blasts can still move (a
    parent's page shows its follow-up sending too): at the settling pace at most, as counting
    the chain's people reads every recipient of it."""
    with reading() as s:
        chain = s.scalars(select(Blast).where(Blast.id.in_(chain_ids(s, blast_id=blast_id)))).all()
        s.expunge_all()
    if len(chain) < 2:
        return None  # no chain to show
    if all(refresh_every(b) is None for b in chain):
        return None
    return SETTLING_EVERY_SECONDS


def _last_sent(blast_id: int) -> dt.datetime | None:
    with reading() as s:
        return s.scalar(select(func.max(BlastRecipient.sent_at)).where(BlastRecipient.blast_id == blast_id))


def render_progress(blast_id: int, shown_state: str, shown_held_up: bool = False) -> None:
    """Sent / remaining / failed / unknown, the ETA and the funnel, run as a fragment that
    refreshes itself (`refresh_every`); reloads the whole page when the blast's state changes,
    or when sending stops or starts (`shown_held_up`: whether the page says nothing sends)."""
    with reading() as s:
        state, device, finished_at = s.execute(
            select(Blast.state, Blast.device, Blast.finished_at).where(Blast.id == blast_id)
        ).one()
        progress = blast_progress(s, blast_id=blast_id, settings=settings())
        unreplied = (closed_without_reply(s, filters=FunnelFilter(blast_ids=(blast_id,)))
                     if progress.funnel.closed else 0)
        pacing = current_device(s, device=device, settings=settings()) if device else None
    held_up = not_going_out(state, device=device)
    if state != shown_state or held_up != shown_held_up:
        st.rerun(scope="app")
    if state == BlastState.DRAFT:
        # Nothing sent, and whom it goes to is said with its Send button: "0 of 14 done" and
        # "Still to send 14" counted the people a follow-up now leaves out, beside "Send to 13".
        return
    f = progress.funnel
    if f.total == 0 and state in (BlastState.SCHEDULED, BlastState.PAUSED):  # a follow-up scheduled ahead
        st.caption("No one yet: its people are chosen as it starts.")
        return
    st.progress(progress.fraction, text=progress_words(progress, cancelled=state == BlastState.CANCELLED))
    # Its own sending standing still (not the blasts before it going out): a break, quiet hours
    # or the day's cap, said with when it goes on.
    if (state == BlastState.SENDING and progress.sent_here and not held_up and pacing is not None
            and progress.remaining and not progress.waits_for.messages):
        now, zone = utcnow(), settings().timezone
        if held := held_back(pacing, now=now, zone=zone):
            words = held_words(held, rules=PacingRules.of(pacing), now=now, zone=zone)
            st.info(words, icon=":material/coffee:")
    cols = st.columns(5)
    cols[0].metric("Sent", f"{f.sent:,}")
    if state == "cancelled":
        cols[1].metric("Not sent (cancelled)", f"{progress.remaining:,}")
    elif not progress.sent_here:  # the page says why (`render_sent_elsewhere`)
        practice = device == gateways.SANDBOX_DEVICE
        cols[1].metric("Not sent (practice)" if practice else "Not sent in practice mode",
                       f"{progress.remaining:,}")
    else:
        cols[1].metric("Still to send", f"{progress.remaining:,}")
    cols[2].metric("Failed", f"{f.failed:,}")
    cols[3].metric("Unknown", f"{f.unknown:,}")
    if state in FINISHED_STATES:
        _render_finished(cols[4], blast_id, state=state, finished_at=finished_at)
    elif state != BlastState.DRAFT:  # a draft's estimate is said with the choice of when it goes
        _render_expected_finish(cols[4], progress, live=state in LIVE_STATES, held_up=held_up)
    # A draft's says so with its launch; one held up has no finish to wait for.
    if progress.eta is not None and state in LIVE_STATES and not held_up:
        waiting = waiting_note(progress.waits_for, at=progress.eta, now=utcnow(), zone=settings().timezone)
        if waiting:
            st.info(waiting, icon=":material/schedule:")
    if f.unknown:
        st.warning(unknown_words(f.unknown, cancelled=state == BlastState.CANCELLED), icon=":material/help:")
    if f.total == 0 and state in FINISHED_STATES:
        st.caption(NO_ONE)
        return
    if f.sent == 0 and f.failed == 0 and f.unknown == 0:
        st.caption("Nothing was sent before it was cancelled." if state == BlastState.CANCELLED
                   else "Nothing sent yet: the funnel fills in as the messages go out.")
        return
    # Each stage's two lines of words at either side, with room between the rows at 360 px.
    st.plotly_chart(funnel_figure(f, height=360), width="stretch", key=f"live_funnel_{blast_id}")
    if unreplied:
        st.caption(f"Replied includes {plural(unreplied, 'sale')} recorded for people who did not "
                   "reply on WhatsApp: each stage counts everyone who got at least that far.")


def progress_words(progress: Progress, *, cancelled: bool) -> str:
    """ "5 of 30 done"; for a cancelled blast, what went out before it stopped."""
    sent, total = progress.funnel.sent, progress.funnel.total
    if not cancelled:
        return f"{progress.done:,} of {total:,} done"
    if sent == 0:
        return "Cancelled before any message was sent"
    return f"Cancelled after {sent:,} of {total:,} {'was' if sent == 1 else 'were'} sent"


def _render_expected_finish(column: Any, progress: Progress, *, live: bool, held_up: bool = False) -> None:
    """When a sending or scheduled blast should finish; "—" for a paused one, and for one held up
    because nothing is sending (an estimate from now would only move later as time passes)."""
    if held_up:
        column.metric("Expected to finish", "—",
                      help="Nothing is sending messages right now (see above): it finishes some time "
                           "after sending starts.")
        return
    finish = "—" if progress.eta is None or not live else when_words(progress.eta, zone=settings().timezone)
    pace = ("this blast's pace so far, one message every "
            f"{progress.pace_seconds:.0f} s" if progress.pace_seconds else "the device's sending rules")
    exact = "" if progress.eta is None else f" Around {local(progress.eta)}."
    column.metric("Expected to finish", finish,
                  help=f"At {pace}, with its pauses, daily cap and quiet hours, after the blasts that "
                       f"go before it from the same number.{exact}")


def _render_finished(column: Any, blast_id: int, *, state: str, finished_at: dt.datetime | None) -> None:
    """When a finished blast finished sending (its last send, for one that does not say), or when
    a cancelled one was cancelled."""
    if state == BlastState.CANCELLED:
        label, moment, after = "Cancelled", finished_at, "what had not gone out by then never will."
    else:
        label, moment = "Finished", finished_at or _last_sent(blast_id)
        after = "receipts and replies still come in after that, and the funnel keeps filling."
    if moment is None:
        column.metric(label, "—")
        return
    column.metric(label, when_words(moment, zone=settings().timezone),
                  help=f"{label} on {local(moment)}: {after}")


def unknown_words(unknown: int, *, cancelled: bool) -> str:
    """The warning about sends with an unknown outcome, and what the marketer can do about them:
    a cancelled blast sends nothing more, so there they can only be marked."""
    they, have, alone = ("it", "has", "itself") if unknown == 1 else ("they", "have", "themselves")
    words = (f"{plural(unknown, 'send')} {have} an unknown outcome: the gateway's answer was lost, so "
             f"{they} may or may not have arrived. ")
    settles = "a receipt from WhatsApp naming the number, or a reply from the person, settles one."
    if cancelled:
        return (words + f"Nothing more is sent from a cancelled blast; {settles} Open **Recipients → "
                f"Unknown** to mark {'it' if unknown == 1 else 'them'} as failed, or as closed for a sale.")
    return (words + f"{they.capitalize()} will not be sent again by {alone}; {settles} Open "
            "**Recipients → Unknown** to send again or mark as failed.")


def sent_elsewhere(blast: Blast) -> bool:
    """Whether the blast has messages left that the gateway set up here does not send: made in
    practice mode and the dashboard now sends to WhatsApp, or the other way round."""
    return blast.state in UNFINISHED_STATES and not gateways.sends(blast.device, settings=settings())


def render_sent_elsewhere(blast: Blast) -> None:
    st.warning(gateways.not_sent_words(blast.device), icon=":material/block:")


def render_actions(blast: Blast) -> None:
    cols = st.columns(4)
    here = gateways.sends(blast.device, settings=settings())
    if blast.state in ("sending", "scheduled") and cols[0].button(
        "Pause", key="pause", icon=":material/pause:"
    ):
        _act("pause the blast", blasts.pause, blast.id)
    if blast.state == "paused" and here and cols[0].button(
        "Resume", key="resume", type="primary", icon=":material/play_arrow:", help=resume_help(blast),
    ):
        _act("resume the blast", blasts.resume, blast.id)
    if blasts.ends_by_itself(blast) and here and cols[0].button(
        "Keep it paused", key="keep_paused", icon=":material/pause:",
        help="It would try again by itself every few minutes; kept paused, it waits until you press Resume.",
    ):
        _act("keep the blast paused", blasts.keep_paused, blast.id)
    configured = gateways.launch_device(settings())
    movable = (blast.state in ("paused", "scheduled") and blast.device and blast.device != configured
               and not gateways.crosses(blast.device, configured))
    if movable:
        _render_move_to_device(blast, cols[2], configured)
    if here and can_reschedule(blast):
        _render_reschedule(blast, cols[3] if movable else cols[2])
    if blast.state == "draft":
        with cols[1].popover("Delete draft", icon=":material/delete:"):
            st.write("The draft and its list are removed; this cannot be undone. Nothing was sent from it.")
            if st.button("Yes, delete it", key="delete_confirm", type="primary"):
                with friendly_errors("delete the draft") as done, session() as s:
                    blasts.delete_draft(s, blast_id=blast.id)
                if done.ok:
                    flash("deleted", f"Draft #{blast.id} “{blast.name or 'Untitled'}” was deleted.")
                    # New blast forgets it made this draft: its link would lead nowhere.
                    made = st.session_state.get(BLASTS_MADE, {})
                    for file in [f for f, (made_id, _) in made.items() if made_id == blast.id]:
                        del made[file]
                    st.session_state.pop(PICK_KEY, None)
                    if blast.parent_blast_id:  # a follow-up's draft: back to the blast it follows
                        st.query_params["blast"] = str(blast.parent_blast_id)
                    else:
                        del st.query_params["blast"]
                    st.rerun()
    elif blast.state in UNFINISHED_STATES:
        with cols[1].popover("Cancel blast", icon=":material/cancel:"):
            st.write("The people not messaged yet will not get it; those already messaged keep their "
                     "message. This cannot be undone.")
            if st.button("Yes, cancel it", key="cancel_confirm", type="primary"):
                _act("cancel the blast", blasts.cancel, blast.id)


RESCHEDULED = "rescheduled"


def can_reschedule(blast: Blast) -> bool:
    """A blast that has sent nothing yet can be given another time: a scheduled one, or one
    paused before it started (its time missed, or paused while it waited)."""
    return blast.started_at is None and blast.state in (BlastState.SCHEDULED, BlastState.PAUSED)


def _render_reschedule(blast: Blast, place: Any) -> None:
    key = f"reschedule_{blast.id}"
    with place.popover("Change time", icon=":material/event:"):
        # It opens on the blast's own time; a blast whose time was missed, on tomorrow's.
        if blast.scheduled_at is not None and not has_passed(blast.scheduled_at):
            mine = blast.scheduled_at.astimezone(settings().timezone)
            st.session_state.setdefault(f"{key}_day", mine.date())
            st.session_state.setdefault(f"{key}_time", mine.time().replace(second=0, microsecond=0))
        st.session_state.setdefault(key, "Schedule for later")
        at = render_when(key=key, device=blast.device)
        if at is None and chosen_at_start(blast) and blast.parent_blast_id:
            selector = StageSelector.from_json(blast.follow_up_selector or {})
            with reading() as s:
                now = follow_up_audience(s, parent_id=blast.parent_blast_id, selector=selector,
                                         follow_up=blast.id).reached
            said = f"Sent now, it takes whoever matches now: {plural(now, 'person', 'people')}."
            if now:
                st.caption(said)
            else:
                st.warning(f"{said} It would finish having sent nothing.", icon=":material/group_off:")
        label = "Send now" if at is None else f"Send at {local(at, '%a %d %b, %H:%M')}"
        if st.button(label, key=f"{key}_go", type="primary", disabled=has_passed(at),
                     icon=":material/send:" if at is None else ":material/schedule:"):
            with friendly_errors("change the blast's time") as done, session() as s:
                state = blasts.reschedule(s, blast_id=blast.id, at=at, timezone=settings().timezone).state
            if done.ok:
                # A toast, not a message above: the page's elements stay as they are, so the
                # popover opened again is not closed by the next run taking a message away.
                flash(RESCHEDULED, made_words(blast.id, state))
                redraw_picker()
                st.rerun()


def resume_help(blast: Blast, *, now: dt.datetime | None = None) -> str:
    """What Resume will do: a blast paused before its scheduled time waits for it again."""
    now = now or utcnow()
    if blast.started_at is None and blast.scheduled_at is not None and blast.scheduled_at > now:
        return f"It goes back to waiting for its time, {local(blast.scheduled_at)}."
    if blast.started_at is None:
        return "It starts sending now."
    return "Sending carries on from where it stopped."


def _render_move_to_device(blast: Blast, place: Any, configured: str) -> None:
    """A blast keeps the device it was launched with (its follow-ups too: the customer hears
    from the same number). When the dashboard now sends from another, the blast can follow."""
    with place.popover("Send from another device", icon=":material/smartphone:"):
        st.write(f"This blast sends from WhatsApp device **{blast.device}**; the dashboard is now set "
                 f"up with **{configured}**. Its remaining messages can come from that one instead: "
                 "people will get them from that device's number.")
        if st.button(f"Send from {configured}", key="move_device", type="primary"):
            _act("move the blast", functools.partial(blasts.move_to_device, device=configured), blast.id)


def render_refresh(blast: Blast) -> tuple[str, bool] | None:
    """Ask the gateway now about every message of this blast not yet read; not shown for a blast
    sent through the other gateway (practice mode's, or WSAPME's), which this one knows nothing of.
    What it did is returned, and whether it was stopped by trouble, to be said at the page's
    width (`say_refreshed`), not in the button's narrow column."""
    if blast.state == "draft" or not gateways.sends(blast.device, settings=settings()):
        return None
    if not st.button(
        "Refresh statuses",
        key="refresh",
        icon=":material/refresh:",
        help=("Asks the practice gateway directly. It forgets the messages it was sent before the "
              "dashboard last restarted, so it cannot say what became of those."
              if settings().sandbox else "Asks WSAPME directly, for when receipts seem late."),
    ):
        return None
    with friendly_errors("refresh the statuses") as done, st.spinner("Asking the gateway…"):
        result = poll_round(get_engine(), make_client(settings()), settings=settings(), blast_id=blast.id)
    if done.ok and result.stopped_by:  # "nothing to ask about" would hide the gateway's trouble
        return refresh_stopped_words(result.asked, result.changed, result.stopped_by), True
    if done.ok:
        return refresh_words(result.asked, result.changed, result.unknown), False
    return None


def say_refreshed(said: tuple[str, bool] | None) -> None:
    """What "Refresh statuses" did, on the page, not in a toast: one seen only for its few
    seconds was easy to miss."""
    if said is None:
        return
    words, trouble = said
    if trouble:
        st.warning(words)
    else:
        st.info(words, icon=":material/refresh:")


def redraw_picker() -> None:
    """After a blast changes state, have the picker drawn afresh on the next run: a browser keeps
    the label it showed for a value that did not change ("for 29 Nov" of a blast now sending)."""
    st.session_state.pop(PICK_KEY, None)


def _act(action: str, fn: Callable[..., None], blast_id: int) -> None:
    with friendly_errors(action) as done, session() as s:
        fn(s, blast_id=blast_id)
    if done.ok:
        redraw_picker()
        st.rerun()


def render_stuck_table(blast_id: int, *, cancelled: bool) -> None:
    """Recipients by where they are now; run as a fragment with the same rhythm as the progress.
    `cancelled` as the page was drawn: it is drawn again when the blast's state changes."""
    with reading() as s:
        rows = stuck_at_each_stage(s, blast_id=blast_id)
    if not rows:
        st.caption("No recipients to show.")
        return
    frame = pd.DataFrame(
        [(status_word(status, cancelled=cancelled), n, shown_percent(share)) for status, n, share in rows],
        columns=["Status", "Recipients", "Share %"],
    )
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "Share %": st.column_config.ProgressColumn(format="%.1f%%", min_value=0, max_value=100)
        },
    )


def audience_words(audience: Audience, *, selection: str, hours: int) -> str:
    """Who the follow-up would go to, in a sentence, before the draft is made."""
    since = f" (reached at least {hours:,} hour{'s' if hours != 1 else ''} ago)" if hours else ""
    if audience.matching == 0:
        if hours:  # the hours may yet pass: a follow-up scheduled ahead takes whoever then matches
            return (f"No one matches “{selection}”{since} yet: schedule the follow-up to take whoever "
                    "does then.")
        return f"No one matches “{selection}”{since} yet, so there is no one to follow up."
    if audience.reached == 0:
        reasons = [why for count, why in ((audience.opted_out, "opted out"),
                                          (audience.followed_up, "had a follow-up of this blast"),
                                          (audience.bought, "bought on another blast of this campaign"))
                   if count]
        why = reasons[-1] if len(reasons) == 1 else f"{', '.join(reasons[:-1])} or {reasons[-1]}"
        return f"Everyone who matches “{selection}”{since} has {why}, so there is no one to follow up."
    people = "person matches" if audience.reached == 1 else "people match"
    left_out = ""
    if audience.opted_out:
        verb = "is" if audience.opted_out == 1 else "are"
        left_out = f" {audience.opted_out:,} more opted out and {verb} left out."
    if audience.followed_up:
        verb = "has" if audience.followed_up == 1 else "have"
        left_out += (f" {audience.followed_up:,} more {verb} had a follow-up of this blast already and "
                     f"{'is' if audience.followed_up == 1 else 'are'} left out.")
    if audience.bought:
        verb = "has" if audience.bought == 1 else "have"
        left_out += (f" {audience.bought:,} more {verb} bought on another blast of this campaign and "
                     f"{'is' if audience.bought == 1 else 'are'} left out.")
    return f"**{audience.reached:,}** {people} “{selection}”{since} and will get this follow-up.{left_out}"


def pending_words(pending: PendingFollowUp, *, reached: int) -> str:
    """The unsent follow-up that already has these people, before another one is made."""
    stage = f" (“{pending.follow_up_stage}”)" if pending.follow_up_stage else ""
    who = (
        "everyone chosen here" if pending.overlap >= reached
        else f"{pending.overlap:,} of the {reached:,} chosen here"
    )
    return (
        f"**{state_word(pending.state)} blast #{pending.blast_id}**{stage} already follows up this blast "
        f"with {plural(pending.recipients, 'person', 'people')}, including {who}. "
        "Another draft would message them twice."
    )


def _render_created(blast_id: int) -> None:
    created = take_flash("follow_up")
    if created is None:
        return
    child_id, count = created[:2]
    st.session_state[f"fu_again_{blast_id}"] = False  # the next one needs its own confirmation
    # The stage box proposes the chain's next number again: it had kept the one just used.
    st.session_state.pop(f"fu_stage_{blast_id}", None)
    if len(created) > 2:  # scheduled ahead: (id, 0, when, name)
        st.success(f"Blast #{child_id}, “{plain(created[3])}”, is scheduled for "
                   f"{local(created[2], '%a %d %b, %H:%M')}: it goes to whoever matches then.")
    else:
        st.success(f"Draft blast #{child_id} created for {plural(count, 'recipient')}.")
    st.page_link("pages/blast.py", label=f"Open blast #{child_id}", query_params={"blast": child_id},
                 icon=":material/open_in_new:")


def render_follow_up(blast: Blast) -> None:
    """A draft follow-up for a stage's recipients. Inputs whose default comes from the blast
    are keyed by it, so another blast shows its own."""
    _render_created(blast.id)
    options = [
        "Read, no reply",
        "Received, not read",
        "Sent, no reply",
        "Replied, not closed",
        "Sent, not received",
    ]
    cols = st.columns(3)
    selection = cols[0].selectbox("Follow up with", options, key="fu_sel")
    hours = cols[1].number_input(
        "…who reached that stage at least this many hours ago", 0, 24 * 30, 24, key="fu_hours"
    )
    with reading() as s:
        proposed = next_follow_up_stage(s, blast_id=blast.id)  # the next number in the whole chain
    stage_name = cols[2].text_input("Follow-up stage", proposed, key=f"fu_stage_{blast.id}",
                                    max_chars=longest("follow_up_stage"))
    template = st.text_area(
        "Message",
        blast.message_template or "",
        key=f"fu_text_{blast.id}",
        help="Use {name} and the columns of the original file.",
    )
    chosen = SELECTIONS[selection]
    selector = StageSelector(
        stage=chosen.stage,
        not_stage=chosen.not_stage,
        older_than=dt.timedelta(hours=int(hours)) if hours else None,
    )
    now = utcnow()
    with reading() as s:
        audience = follow_up_audience(s, parent_id=blast.id, selector=selector, now=now)
        pending = (
            pending_follow_up(s, parent_id=blast.id, selector=selector, now=now) if audience.reached else None
        )
    st.markdown(audience_words(audience, selection=selection, hours=int(hours)))
    # Right after the blast no one has waited the hours yet: scheduling is what is left to do. The
    # choice follows who matches until the marketer makes it, and is kept under a key of its own:
    # Streamlit forgets a widget's value once another blast's page is drawn without it.
    when_key = f"fu_ahead_{blast.id}"
    picked = st.session_state.get(f"{when_key}_pick")
    st.session_state[when_key] = (not audience.reached and bool(hours)) if picked is None else picked
    ahead = st.radio(
        "When", [False, True], horizontal=True, key=when_key,
        on_change=lambda: st.session_state.__setitem__(f"{when_key}_pick", st.session_state[when_key]),
        format_func=lambda later: ("Schedule it: whoever matches then" if later
                                   else "A draft for the people who match now"),
        help="Scheduled, it takes its people as it starts: set up tomorrow's follow-up today.",
    )
    with reading() as s:
        scheduled = ahead_words(ahead_of(s, parent_id=blast.id))
    confirmed = True
    if scheduled:
        st.warning(scheduled, icon=":material/content_copy:")
        confirmed = st.checkbox("Make another one anyway", key=f"fu_also_{blast.id}")
    if template.strip() and _same_words(template, blast.message_template or ""):
        st.warning("This is the message they were sent already. Write what is new for them: the same "
                   "words twice read as spam, and people who report a number get it banned.",
                   icon=":material/content_copy:")
        confirmed = st.checkbox("Send the same message again", key=f"fu_same_{blast.id}") and confirmed
    if ahead:
        _render_follow_up_ahead(blast, selector=selector, selection=selection, hours=int(hours),
                                template=template, stage_name=stage_name, confirmed=confirmed)
        return
    if audience.reached:
        st.caption(f"The choice is asked again when the follow-up goes out, and for each person "
                   f"just before their message: anyone who no longer matches “{selection}” by then "
                   "(say they replied) is left out.")
    if pending is not None:
        st.warning(pending_words(pending, reached=audience.reached), icon=":material/content_copy:")
        st.page_link("pages/blast.py", label=f"Open blast #{pending.blast_id}",
                     query_params={"blast": pending.blast_id}, icon=":material/open_in_new:")
        confirmed = st.checkbox("Create another draft anyway", key=f"fu_again_{blast.id}") and confirmed
    with reading() as s:
        problems = templates.validate(template, follow_up_placeholders(s, parent_id=blast.id))
    for problem in problems:
        st.error(problem, icon=":material/error:")
    ready = audience.reached > 0 and confirmed and not problems and bool(template.strip())
    if not st.button("Create follow-up draft", key="fu_create", type="primary", disabled=not ready):
        return
    with friendly_errors("create the follow-up") as done, session() as s:
        child = create_follow_up(
            s, parent_id=blast.id, selector=selector, message_template=template,
            follow_up_stage=stage_name, now=now,
        )
        created = (child.id, child.total_recipients)
    if done.ok:
        flash("follow_up", created)
        st.rerun()  # the chain, the guard above and the blast picker all learn of the new draft


def render_chosen_at_start(blast: Blast) -> None:
    """A follow-up scheduled ahead says whom it will take, and how many that would be now; one
    that found no one as it started, why it sent nothing."""
    if not chosen_at_start(blast):
        return
    took_no_one = blast.state == BlastState.COMPLETED and not blast.total_recipients
    if not took_no_one and (blast.state != BlastState.SCHEDULED or blast.scheduled_at is None):
        return
    selector = StageSelector.from_json(blast.follow_up_selector or {})
    kind = (selector.stage, selector.not_stage, selector.statuses)
    name = next((n for n, s in SELECTIONS.items() if (s.stage, s.not_stage, s.statuses) == kind),
                "its choice")
    hours = int(selector.older_than.total_seconds() // 3600) if selector.older_than else 0
    since = f" (reached at least {plural(hours, 'hour')} before)" if hours else ""
    if took_no_one:
        st.info(f"As it started, no one matched “{name}”{since} of blast #{blast.parent_blast_id} who had "
                "not opted out or had another follow-up of it: it sent nothing.", icon=":material/group:")
        return
    with reading() as s:
        then = follow_up_audience(s, parent_id=blast.parent_blast_id, selector=selector,
                                  now=blast.scheduled_at, follow_up=blast.id)
    st.info(f"Its people are chosen as it starts: whoever then matches “{name}”{since} of blast "
            f"#{blast.parent_blast_id}, less anyone who opted out or had another follow-up of it. As "
            f"things stand, that would be **{plural(then.reached, 'person', 'people')}**.",
            icon=":material/group:")


def ahead_words(scheduled: list[Blast]) -> str | None:
    """The follow-ups already scheduled ahead for this blast, before another is made."""
    if not scheduled:
        return None
    first = scheduled[0]
    more = f" (and {plural(len(scheduled) - 1, 'other')})" if len(scheduled) > 1 else ""
    when = local(first.scheduled_at, "%a %d %b, %H:%M") if first.scheduled_at else "its time"
    name = plain(first.name or first.follow_up_stage or "Untitled")
    return (f"**Blast #{first.id}**, “{name}”{more}, is scheduled for {when} and takes whoever matches as "
            "it starts. Another follow-up would take some of the same people first, or leave it with fewer.")


def _render_follow_up_ahead(
    blast: Blast, *, selector: StageSelector, selection: str, hours: int, template: str, stage_name: str,
    confirmed: bool,
) -> None:
    """The follow-up scheduled for a time to come, its people chosen then
    (`core.followups.schedule_follow_up`)."""
    cfg, key = settings(), f"fu_at_{blast.id}"
    zone = cfg.timezone
    first = dt.datetime.now(zone) + dt.timedelta(hours=hours)  # when the first could match
    st.session_state.setdefault(f"{key}_day", (first + dt.timedelta(days=0 if first.hour < 10 else 1)).date())
    st.session_state.setdefault(f"{key}_time", dt.time(10, 0))
    d1, d2 = st.columns(2)
    day = d1.date_input("Day", key=f"{key}_day", format="DD/MM/YYYY")
    clock = d2.time_input("Time", key=f"{key}_time")
    at = dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)
    since = f", reached at least {plural(hours, 'hour')} before," if hours else ""
    with reading() as s:
        then = follow_up_audience(s, parent_id=blast.id, selector=selector, now=at)
        problems = templates.validate(template, follow_up_placeholders(s, parent_id=blast.id))
        gaps = 0 if problems else blanks_among(s, parent_id=blast.id, message_template=template)
        rules = rules_for(s, device=blast.device or gateways.launch_device(cfg), settings=cfg)
    if has_passed(at):
        st.error(PASSED, icon=":material/schedule:")
    else:
        st.markdown(f"At **{local(at, '%a %d %b, %H:%M')}** it goes to whoever then matches “{selection}”"
                    f"{since} less anyone who opted out or had a follow-up of this blast. As things stand, "
                    f"that would be **{plural(then.reached, 'person', 'people')}**.")
        if cfg.send_pacing == "on" and (note := quiet_hours_note(rules, when=at, zone=zone)):
            st.warning(note, icon=":material/bedtime:")
    for problem in problems:
        st.error(problem, icon=":material/error:")
    blanks = False
    if gaps and not problems:
        have = "has" if gaps == 1 else "have"
        st.warning(f"{plural(gaps, 'person', 'people')} it may go to {have} no value for a placeholder in "
                   "the message: theirs would have a gap.", icon=":material/warning:")
        blanks = st.checkbox("Send with the blank left empty", key=f"fu_blanks_{blast.id}")
    ready = (confirmed and not has_passed(at) and not problems and bool(template.strip())
             and (blanks or not gaps))
    if not st.button("Schedule follow-up", key="fu_schedule", type="primary", disabled=not ready,
                     icon=":material/schedule:"):
        return
    with friendly_errors("schedule the follow-up") as done, session() as s:
        child = schedule_follow_up(s, parent_id=blast.id, selector=selector, message_template=template,
                                   at=at, timezone=zone, follow_up_stage=stage_name, allow_blanks=blanks,
                                   settings=cfg)
        created = (child.id, 0, at, child.name or "")
    if done.ok:
        flash("follow_up", created)
        st.rerun()


def _same_words(one: str, other: str) -> bool:
    """Whether two messages say the same, spacing, capitals and punctuation aside: "Raya sale!"
    and "raya  sale" would read as the same promo twice."""
    def words(text: str) -> list[str]:
        return re.findall(r"\w+|\{[^}]*\}", text.casefold())
    return words(one) == words(other)


def render_chain(blast_id: int) -> None:
    with reading() as s:
        chain = chain_funnels(s, blast_id=blast_id)
        people = chain_people(s, blast_id=blast_id)
        records = [
            {
                "Blast": b.id,
                "Stage": b.follow_up_stage or "",
                "State": chain_state(b),
                "Sent": f.sent,
                "Received": f.received,
                "Read": f.read,
                "Replied": f.replied,
                "Closed": f.closed,
            }
            for b, f in chain
        ]
    if len(records) < 2:
        st.caption("No follow-ups yet.")
        return
    st.dataframe(pd.DataFrame(records), hide_index=True, width="stretch")
    # People, not messages: a follow-up goes to people the first blast reached already.
    st.markdown(
        f"Across the chain: **{plural(people.messaged, 'person', 'people')}** messaged, "
        f"**{people.replied:,}** of them wrote back on WhatsApp, **{people.closed:,}** bought"
        + (f" ({people.closed_silently:,} without writing back)." if people.closed_silently else "."),
        help="Each person counted once, however many of these blasts reached them.",
    )


def chain_state(blast: Blast) -> str:
    """A chain blast's state in its table; when one is scheduled, for when ("Scheduled for 28
    Nov, 09:00"): a follow-up set up ahead shows nothing else until it starts."""
    if blast.state == BlastState.SCHEDULED and blast.scheduled_at is not None:
        return f"{state_word(blast.state)} for {local(blast.scheduled_at, '%d %b, %H:%M')}"
    return state_word(blast.state)


def render_quiet_hours_note(blast: Blast) -> None:
    """When a scheduled start falls inside quiet hours, when sending will really begin."""
    cfg = settings()
    if cfg.send_pacing != "on" or blast.scheduled_at is None:
        return
    with reading() as s:
        rules = rules_for(s, device=blast.device or gateways.launch_device(cfg), settings=cfg)
    note = quiet_hours_note(rules, when=blast.scheduled_at, zone=cfg.timezone)
    if note:
        st.warning(note, icon=":material/bedtime:")


def refresh_words(asked: int, changed: int, unknown: int) -> str:
    """What "Refresh statuses" did, in words."""
    if asked == 0:
        return ("Nothing to ask about: every message of this blast has been read, or has not "
                "been sent, or is too old to change.")
    news = "none had news" if changed == 0 else f"{changed:,} had news, shown now"
    words = f"Asked the gateway about {plural(asked, 'message')}: {news}"
    if unknown:
        words += f"; the gateway could not say for {unknown:,}"
    return words + "."


def refresh_stopped_words(asked: int, changed: int, reason: str) -> str:
    """Why "Refresh statuses" stopped before the end, and what it got done first; only why,
    when it asked nothing (the gateway's words say it all)."""
    if not asked:
        return reason
    news = "none had news" if changed == 0 else f"{changed:,} had news"
    return f"Stopped early after asking the gateway about {plural(asked, 'message')} ({news}): {reason}"


def render_message(blast: Blast) -> None:
    """What the blast sends (or sent), as WhatsApp shows it, placeholders and all."""
    if blast.state == "draft" or not blast.message_template:
        return  # a draft shows its message box instead
    with st.expander("The message", icon=":material/chat:"):
        st.html(bubble_html(blast.message_template))
        st.caption("Placeholders such as {name} were filled in for each recipient.")
