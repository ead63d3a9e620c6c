"""Why a blast would finish later than its pace alone says: quiet hours, the daily cap, other
blasts sent first from the same number and the longer pause every so many messages; and that it
does not finish at all while nothing is sending messages."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import select

from core.models import Blast, BlastState, Device, utcnow
from core.sending import gateways
from core.sending.pacing import Finish, Held, PacingRules, Waiting, after_quiet_hours, pauses_among
from core.sending.progress import Ahead, finish_estimate, nothing_sends, queued_ahead, rules_for
from dashboard.compose import has_passed, plain
from dashboard.data import reading, settings
from dashboard.format import and_list, duration_words, plural

NAMES_SHOWN = 3  # of the blasts a blast waits for; the rest are counted


def sent_on_first_day(
    rules: PacingRules, *, now: dt.datetime, zone: ZoneInfo, sent_day: dt.date | None, sent_in_day: int
) -> int:
    """What the device has already sent on the day this blast can begin, against its daily cap: a
    start held back past midnight by quiet hours begins a new count."""
    first_day = after_quiet_hours(rules, now, zone).astimezone(zone).date()
    return sent_in_day if sent_day == first_day else 0


def day_words(moment: dt.datetime, *, now: dt.datetime, zone: ZoneInfo) -> str:
    """ "today around 16:30", "tomorrow around 10:30", "on Thu 27 Nov around 10:30"."""
    local = moment.astimezone(zone)
    days = (local.date() - now.astimezone(zone).date()).days
    day = {0: "today", 1: "tomorrow"}.get(days, f"on {local:%a} {local.day} {local:%b}")
    return f"{day} around {local:%H:%M}"


def held_words(waiting: Waiting, *, rules: PacingRules, now: dt.datetime, zone: ZoneInfo) -> str:
    """Why a sending blast sends nothing for now, and when it goes on: "On a planned break: this
    number pauses after every 50 messages it sends, which protects it. The next goes today around
    22:49." (a blast that stood still for five minutes had looked stuck). The count is the
    number's, over all its blasts, not this blast's."""
    when = day_words(waiting.until, now=now, zone=zone)
    if waiting.why is Held.QUIET:
        window = f"{rules.quiet_start:%H:%M}–{rules.quiet_end:%H:%M}"
        return f"Quiet hours ({window}): nothing is sent to anyone now. Sending goes on {when}."
    if waiting.why is Held.CAP:
        return (f"Today's limit of {plural(rules.daily_cap, 'message')} from this number is reached. "
                f"Sending goes on {when}.")
    return (f"On a planned break: this number pauses after every {plural(rules.pause_every, 'message')} "
            f"it sends, which protects it. The next goes {when}.")


def waiting_words(ahead: Ahead) -> str:
    """ "it waits for “Raya promo” to finish first (400 messages to go from the same WhatsApp
    number)"; with more blasts, "it waits for 2 other blasts to finish first (“A” and “B”: …)"."""
    names = [f"“{plain(name)}”" for name in ahead.names[:NAMES_SHOWN]]
    if len(ahead.names) > NAMES_SHOWN:
        names.append(f"{len(ahead.names) - NAMES_SHOWN:,} more")
    listed = and_list(names)
    to_go = f"{plural(ahead.messages, 'message')} to go from the same WhatsApp number"
    if len(ahead.names) == 1:
        return f"it waits for {listed} to finish first ({to_go})"
    return f"it waits for {len(ahead.names):,} other blasts to finish first ({listed}: {to_go})"


def made_words(blast_id: int, state: str) -> str:
    """What became of a blast just made: "Blast #12 is sending now.", or, when older blasts
    on its WhatsApp number go first, that it waits for them (the worker sends a number's
    blasts oldest first)."""
    words = {"sending": "is sending now", "scheduled": "is scheduled", "draft": "was saved as a draft"}
    if state == BlastState.SENDING:
        with reading() as s:
            blast = s.get(Blast, blast_id)
            ahead = queued_ahead(s, device=blast.device, blast_id=blast_id) if blast else Ahead()
            if blast is not None and not blast.total_recipients:  # a follow-up that found no one
                return f"Blast #{blast_id} had no one to send to: it sends nothing."
        if ahead.messages:
            return f"Blast #{blast_id} is in line to send: {waiting_words(ahead)}."
    if state == BlastState.SCHEDULED:
        with reading() as s:
            at = s.scalar(select(Blast.scheduled_at).where(Blast.id == blast_id))
        if at is not None:
            return f"Blast #{blast_id} is scheduled for {at.astimezone(settings().timezone):%a %d %b, %H:%M}."
    return f"Blast #{blast_id} {words.get(state, state)}."


# The blasts that go out by themselves, once sending runs: a scheduled one at its time.
_GOES_OUT = (BlastState.SENDING, BlastState.SCHEDULED)


def not_going_out(state: str, *, device: str | None) -> bool:
    """Whether a sending or scheduled blast, of the gateway in use, is held up because nothing is
    sending messages (`core.sending.progress.nothing_sends`). A blast of the other gateway is not:
    its page says why it is not sent from here."""
    if state not in _GOES_OUT or not gateways.sends(device, settings=settings()):
        return False
    with reading() as s:
        return nothing_sends(s, settings=settings())


def not_going_out_words(state: str, *, blast_id: int | None = None, before_send: bool = False) -> str:
    """What a marketer needs to know of a blast (`blast_id`: one just made; `before_send`: one
    about to be) while nothing sends."""
    if before_send:
        return ("Nothing that sends messages is running right now: a blast sent now waits until "
                "sending starts, and none of it is lost. Ask whoever runs the dashboard to start sending.")
    this = f"Blast #{blast_id}" if blast_id else "This blast"
    if state == BlastState.SCHEDULED:
        held = (f"{this} is scheduled, but it will not start at its time unless sending is started "
                "before then")
    else:
        held = (f"{this} is saved, but its messages are not going out" if blast_id else
                "This blast's messages are not going out")
    return (f"{held}: nothing that sends messages is running right now. Its messages wait, and none "
            "is lost. Ask whoever runs the dashboard to start sending.")


def render_not_going_out(state: str, *, blast_id: int | None = None, before_send: bool = False) -> None:
    """The warning, with what whoever runs the dashboard does about it."""
    st.warning(not_going_out_words(state, blast_id=blast_id, before_send=before_send),
               icon=":material/cloud_off:")
    st.caption("For whoever runs the dashboard: start it with `RUN_WORKER=true`, or run "
               "`python -m core worker` against the same database. **Settings & health** shows when "
               "sending has started.")


def break_words(rules: PacingRules, *, pauses: int, sent_since_pause: int = 0) -> str:
    """ "the WhatsApp number takes a 5-minute break after every 50 messages (it has sent 44
    since its last break)", for `pauses` of them among a blast's messages."""
    every = "after each message" if rules.pause_every == 1 else f"after every {rules.pause_every:,} messages"
    asides = [f"{pauses:,} breaks for this blast"] if pauses > 1 else []
    if sent_since_pause and rules.pause_every > 1:  # why a break comes sooner than its count says
        asides.append(f"it has sent {sent_since_pause:,} since its last break")
    aside = f" ({'; '.join(asides)})" if asides else ""
    return f"the WhatsApp number takes a {_length(rules.pause_seconds)} break {every}{aside}"


def _length(seconds: float) -> str:
    """ "5-minute", "1-hour", "30-second", "1.5-minute"."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}-second"
    if whole % 3600 == 0:
        return f"{whole // 3600}-hour"
    return f"{round(seconds / 60, 1):g}-minute"


def _sentence(reasons: list[str], *, at: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> str:
    because = and_list(reasons)
    when = day_words(at, now=now, zone=zone)
    return f"{because[0].upper()}{because[1:]}, so it would finish {when}."


def waiting_note(waits_for: Ahead, *, at: dt.datetime, now: dt.datetime, zone: ZoneInfo) -> str | None:
    """ "It waits for “Raya promo” to finish first (…), so it would finish tomorrow around 10:30.",
    for a blast finishing `at` because of the blasts it waits for (`Progress.waits_for`); None
    when there are none."""
    if not waits_for.messages:
        return None
    return _sentence([waiting_words(waits_for)], at=at, now=now, zone=zone)


def finish_note(
    rules: PacingRules, *, now: dt.datetime, finish: Finish, zone: ZoneInfo, sent_today: int = 0,
    ahead: Ahead | None = None, pauses: int = 0, sent_since_pause: int = 0,
) -> str | None:
    """ "Sending pauses during quiet hours (22:00–08:00), so it would finish tomorrow around
    10:30.", naming the daily cap too when it holds the blast back, the other blasts that go
    first from the same number (`ahead`) when they do, and the longer pauses among its
    messages (`pauses`, `pauses_among`); None when none of them does. What held it back is
    the pacing's own estimate's (`estimate_finish`).

    `sent_today`: what the device has sent on the day the blast can begin (`sent_on_first_day`).
    `sent_since_pause`: what it has sent since its last longer pause.
    """
    reasons = []
    if ahead is not None and finish.others_first and ahead.messages:
        reasons.append(waiting_words(ahead))
    if finish.quiet_hours:
        window = f"{rules.quiet_start:%H:%M}–{rules.quiet_end:%H:%M}"
        reasons.append(f"sending pauses during quiet hours ({window})")
    if finish.daily_cap:
        already = f" ({sent_today:,} already went out today)" if sent_today else ""
        reasons.append(f"at most {plural(rules.daily_cap, 'message')} {_s('go', rules.daily_cap)} out a "
                       f"day{already}")
    if pauses:
        reasons.append(break_words(rules, pauses=pauses, sent_since_pause=sent_since_pause))
    if not reasons:
        return None
    return _sentence(reasons, at=finish.at, now=now, zone=zone)


def render_finish(
    *, device: str, recipients: int, blast_id: int | None = None, start: dt.datetime | None = None
) -> None:
    """How long `recipients` messages take at the device's saved pace if sent now, or from
    `start` when the blast is scheduled for then, when they would finish, and what holds them
    back (quiet hours, the daily cap, other blasts sent first from the device, its longer
    pauses). `blast_id`: the draft's, for where the worker puts it among the device's blasts;
    None for a blast not made yet (the newest, so the last)."""
    cfg, now = settings(), utcnow()
    if has_passed(start):
        return  # a time gone by: `render_when` says so, and nothing else
    with reading() as s:
        ahead = queued_ahead(s, device=device, blast_id=blast_id)
        finish = finish_estimate(s, device=device, remaining=recipients, settings=cfg, ahead=ahead.messages,
                                 start=start)
        rules, row = rules_for(s, device=device, settings=cfg), s.get(Device, device)
    if not finish:
        return
    zone = cfg.timezone
    # The messages take from the first one: a start in quiet hours, now or scheduled, waits for their end.
    begins = after_quiet_hours(rules, start or now, zone) if cfg.send_pacing == "on" else start or now
    st.write(_estimate_words(finish, recipients=recipients, now=now, begins=begins, start=start, zone=zone))
    sent_today = sent_on_first_day(rules, now=start or now, zone=zone, sent_day=row.sent_day if row else None,
                                   sent_in_day=row.sent_in_day if row else 0)
    since_pause = row.sent_since_pause if row else 0
    pauses = pauses_among(rules, sent_since_pause=since_pause, first=ahead.messages,
                          count=recipients) if cfg.send_pacing == "on" else 0
    note = finish_note(rules, now=now, finish=finish, zone=zone, sent_today=sent_today, ahead=ahead,
                       pauses=pauses, sent_since_pause=since_pause)
    if note:
        st.info(note, icon=":material/schedule:")


def _estimate_words(
    finish: Finish, *, recipients: int, now: dt.datetime, start: dt.datetime | None,
    begins: dt.datetime | None, zone: ZoneInfo,
) -> str:
    finish_at = f"**{finish.at.astimezone(zone):%a %d %b, %H:%M}**"
    if start is None or begins is None:
        if finish.others_first:
            return (f"At this pace, {_messages(recipients)} {_s('finish', recipients)} around "
                    f"{finish_at} if sent now: "
                    f"{_about(finish.at - now)} from now, as other blasts go first.")
        if begins is not None and begins > now:  # quiet hours now: the night is not sending time
            return (f"Sent now, {_messages(recipients)} {_s('start', recipients)} when quiet hours end, "
                    f"**{begins.astimezone(zone):%a %H:%M}**, {_s('take', recipients)} "
                    f"{_about(finish.at - begins)} at this pace and {_s('finish', recipients)} around "
                    f"{finish_at}.")
        return (f"At this pace, {_messages(recipients)} {_s('take', recipients)} "
                f"{_about(finish.at - now)} and {_s('finish', recipients)} around {finish_at} if sent now.")
    scheduled = f"Scheduled for **{start.astimezone(zone):%a %d %b, %H:%M}**"
    if finish.others_first:
        return (f"{scheduled}, at this pace {_messages(recipients)} {_s('finish', recipients)} "
                f"around {finish_at}, as other blasts go first.")
    return (f"{scheduled}, at this pace {_messages(recipients)} {_s('take', recipients)} "
            f"{_about(finish.at - begins)} and {_s('finish', recipients)} around {finish_at}.")


def _messages(n: int) -> str:
    """ "**3** messages", "**1** message"."""
    return f"**{n:,}** {'message' if n == 1 else 'messages'}"


def _s(verb: str, n: int) -> str:
    """The verb for `n` things: "1 message takes", "2 messages take"."""
    return verb if n != 1 else verb + ("es" if verb.endswith(("sh", "ch", "s", "x", "o")) else "s")


def _about(took: dt.timedelta) -> str:
    return "**under a minute**" if took < dt.timedelta(minutes=1) else f"about **{duration_words(took)}**"
