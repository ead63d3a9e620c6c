"""Why a blast would finish later than its pace alone says: quiet hours and the daily cap."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import streamlit as st

from core.models import Device, utcnow
from core.sending.pacing import Finish, PacingRules, after_quiet_hours
from core.sending.progress import finish_estimate, rules_for
from dashboard.data import reading, settings
from dashboard.format import duration_words


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


def finish_note(
    rules: PacingRules, *, now: dt.datetime, finish: Finish, zone: ZoneInfo, sent_today: int = 0,
) -> str | None:
    """ "Sending pauses during quiet hours (22:00–08:00), so it would finish tomorrow around
    10:30.", naming the daily cap too when it holds the blast back; None when neither does.
    What held it back is the pacing's own estimate's (`estimate_finish`).

    `sent_today`: what the device has sent on the day the blast can begin (`sent_on_first_day`).
    """
    reasons = []
    if finish.quiet_hours:
        window = f"{rules.quiet_start:%H:%M}–{rules.quiet_end:%H:%M}"
        reasons.append(f"sending pauses during quiet hours ({window})")
    if finish.daily_cap:
        already = f" ({sent_today:,} already went out today)" if sent_today else ""
        reasons.append(f"at most {rules.daily_cap:,} messages go out a day{already}")
    if not reasons:
        return None
    because = " and ".join(reasons)
    when = day_words(finish.at, now=now, zone=zone)
    return f"{because[0].upper()}{because[1:]}, so it would finish {when}."


def render_finish(*, device: str, recipients: int) -> None:
    """How long `recipients` messages take at the device's saved pace if sent now, when they
    would finish, and what holds them back (quiet hours, the daily cap)."""
    cfg, now = settings(), utcnow()
    with reading() as s:
        finish = finish_estimate(s, device=device, remaining=recipients, settings=cfg)
        rules, row = rules_for(s, device=device, settings=cfg), s.get(Device, device)
    if not finish:
        return
    zone = cfg.timezone
    st.write(
        f"At this pace, **{recipients:,}** messages take {_about(finish.at - now)} "
        f"and finish around **{finish.at.astimezone(zone):%a %d %b, %H:%M}** if sent now."
    )
    sent_today = sent_on_first_day(rules, now=now, zone=zone, sent_day=row.sent_day if row else None,
                                   sent_in_day=row.sent_in_day if row else 0)
    note = finish_note(rules, now=now, finish=finish, zone=zone, sent_today=sent_today)
    if note:
        st.info(note, icon=":material/schedule:")


def _about(took: dt.timedelta) -> str:
    words = duration_words(took)
    return "**under a minute**" if words == "< 1 min" else f"about **{words}**"
