"""Numbers and times in the words a marketer reads."""

from __future__ import annotations

import datetime as dt

from core.words import and_list, plural  # noqa: F401  (the pages' words use them from here)

# A blast's state in a marketer's words, with the colour of its badge.
STATE_WORDS = {
    "draft": ("Draft", "gray"),
    "scheduled": ("Scheduled", "blue"),
    "sending": ("Sending", "green"),
    "paused": ("Paused", "orange"),
    "completed": ("Finished", "violet"),
    "cancelled": ("Cancelled", "red"),
}


def practice_left_out(blasts: int, where: str) -> str:
    """ "2 blasts made in practice mode are left out of everything below: …" """
    one = blasts == 1
    return (f"{plural(blasts, 'blast')} made in practice mode {'is' if one else 'are'} left out "
            f"{where}: the sandbox made up {'its' if one else 'their'} receipts and replies. "
            f"{'It' if one else 'Each'} still has its page, from the Blast page's list.")


def one_of_many(text: str | None, count: int) -> str:
    """One reply of a person's `count`, and how many others there are: "Ok  (+2 more)"."""
    return (text or "") + (f"  (+{count - 1:,} more)" if count > 1 else "")


def state_word(state: str) -> str:
    return STATE_WORDS.get(state, (state.capitalize(), "gray"))[0]


def duration_words(value: dt.timedelta | None) -> str:
    """A duration rounded to what matters, to the nearest minute: "45 min", "3 h 10 min",
    "2 days 4 h" (a minute and three quarters is "2 min", not "1 min")."""
    if value is None:
        return "—"
    if value < dt.timedelta(minutes=1):
        return "< 1 min"  # short enough for a metric on a laptop screen
    minutes = round(value.total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(round(value.total_seconds() / 3600), 24)  # days and hours: to the hour
    return (
        f"{days} day{'s' if days > 1 else ''} {hours} h" if hours else f"{days} day{'s' if days > 1 else ''}"
    )


def ago(moment: dt.datetime | None, *, now: dt.datetime | None = None) -> str:
    """ "just now", "5 min ago", "3 h ago", "2 days ago"."""
    if moment is None:
        return "never"
    seconds = ((now or dt.datetime.now(dt.UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    return f"{duration_words(dt.timedelta(minutes=seconds // 60))} ago"  # 90 s is still "1 min ago"


def when_words(moment: dt.datetime, *, zone: dt.tzinfo, now: dt.datetime | None = None) -> str:
    """A moment short enough for a metric: "14:05" today, "Thu 09:00" from tomorrow to a week
    on, "3 Dec" after that (a metric on a laptop had shown "tomorro…")."""
    local = moment.astimezone(zone)
    days = (local.date() - (now or dt.datetime.now(dt.UTC)).astimezone(zone).date()).days
    if days == 0:
        return f"{local:%H:%M}"
    if 0 < days < 7:
        return f"{local:%a %H:%M}"
    return f"{local.day} {local:%b}"
