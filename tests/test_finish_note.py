"""Saying when quiet hours, the daily cap or other blasts sent first from the same number push a
blast's finish later, as the worker does."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.db import transaction
from core.sending.pacing import (
    Finish,
    PacingRules,
    ensure_device,
    estimate_finish,
    parse_quiet_hours,
    pauses_among,
)
from core.sending.progress import Ahead
from dashboard.finish_note import finish_note, sent_on_first_day
from tests import test_pages
from tests.support.factories import make_blast, make_recipient

app_db = test_pages.app_db  # the dashboard pointed at the test database (SQLite and PostgreSQL)
page = test_pages.page
new_blast_with = test_pages.new_blast_with

KL = ZoneInfo("Asia/Kuala_Lumpur")


def _rules(quiet: str = "off", *, gap: float = 60, cap: int = 0) -> PacingRules:
    start, end = parse_quiet_hours(quiet)
    return PacingRules(min_gap_seconds=gap, jitter_seconds=0, pause_every=0, pause_seconds=0,
                       daily_cap=cap, quiet_start=start, quiet_end=end)


def _kl(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=KL).astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("quiet", "start", "minutes", "held"),
    [
        ("22:00-08:00", _kl(26, 20), 119, False),  # the last one at 21:59
        ("22:00-08:00", _kl(26, 20), 121, True),
        ("22:00-08:00", _kl(27, 1), 1, True),  # begun inside last night's window
        ("22:00-08:00", _kl(27, 8), 600, False),
        ("22:00-08:00", _kl(26, 9), 3 * 24 * 60, True),
        ("12:00-14:00", _kl(26, 9), 179, False),
        ("12:00-14:00", _kl(26, 9), 181, True),
        ("12:00-14:00", _kl(26, 15), 19 * 60, False),
        ("off", _kl(26, 9), 3 * 24 * 60, False),
        ("09:00-09:00", _kl(26, 8), 120, False),  # an empty window, as the worker reads it
    ],
)
def test_the_estimate_says_when_quiet_hours_held_a_send_back(
    quiet: str, start: dt.datetime, minutes: int, held: bool
) -> None:
    finish = estimate_finish(_rules(quiet), remaining=minutes + 1, start=start, zone=KL)  # one a minute
    assert finish.quiet_hours is held
    assert not finish.daily_cap


def test_the_estimate_says_when_the_daily_cap_held_a_send_back() -> None:
    assert not estimate_finish(_rules(cap=10), remaining=10, start=_kl(26, 10), zone=KL).daily_cap
    assert estimate_finish(_rules(cap=10), remaining=11, start=_kl(26, 10), zone=KL).daily_cap
    assert estimate_finish(_rules(cap=10), remaining=4, start=_kl(26, 10), zone=KL, sent_today=7).daily_cap
    # The cap sends the rest to the next midnight, inside quiet hours: both held them back.
    both = estimate_finish(_rules("22:00-08:00", cap=10), remaining=11, start=_kl(26, 10), zone=KL)
    assert (both.quiet_hours, both.daily_cap, both.at) == (True, True, _kl(27, 8))


@pytest.mark.parametrize(
    ("rules", "now", "recipients", "sent_today", "note"),
    [
        (_rules("22:00-08:00", gap=600), _kl(26, 20), 30, 0,
         "Sending pauses during quiet hours (22:00–08:00), so it would finish tomorrow around 10:50."),
        (_rules("22:00-08:00", gap=60), _kl(26, 10), 30, 0, None),
        (_rules("12:00-14:00", gap=600), _kl(26, 11), 12, 0,
         "Sending pauses during quiet hours (12:00–14:00), so it would finish today around 14:50."),
        (_rules(cap=10), _kl(26, 10), 25, 0,
         "At most 10 messages go out a day, so it would finish on Sat 28 Nov around 00:04."),
        (_rules(cap=10), _kl(26, 10), 5, 7,
         "At most 10 messages go out a day (7 already went out today), so it would finish "
         "tomorrow around 00:01."),
        (_rules("22:00-08:00", cap=10), _kl(26, 10), 15, 0,
         "Sending pauses during quiet hours (22:00–08:00) and at most 10 messages go out a day, "
         "so it would finish tomorrow around 08:04."),
        (_rules(cap=1), _kl(26, 10), 2, 0,  # it had said "at most 1 messages go out"
         "At most 1 message goes out a day, so it would finish tomorrow around 00:00."),
    ],
)
def test_finish_note_names_what_the_worker_waits_for(
    rules: PacingRules, now: dt.datetime, recipients: int, sent_today: int, note: str | None
) -> None:
    # The finish as the worker's pacing works it out, from where the count of the day stands.
    finish = estimate_finish(rules, remaining=recipients, start=now, zone=KL, sent_today=sent_today)
    assert finish_note(rules, now=now, finish=finish, zone=KL, sent_today=sent_today) == note


def test_the_day_count_starts_again_when_quiet_hours_hold_the_start_past_midnight() -> None:
    rules = _rules("22:00-08:00", cap=10)
    sent_day = dt.date(2026, 11, 26)
    assert sent_on_first_day(rules, now=_kl(26, 20), zone=KL, sent_day=sent_day, sent_in_day=7) == 7
    assert sent_on_first_day(rules, now=_kl(26, 23), zone=KL, sent_day=sent_day, sent_in_day=7) == 0


# -- on the New blast page ---------------------------------------------------------------------

THREE = b"Nama,No. Telefon\nAli,012-345 6789\nAbu,011-2345 6789\nSiti,013-456 7890\n"


def _pace(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """One message an hour, unless told otherwise, and nothing else (no longer pauses)."""
    values = {"SEND_MIN_GAP_SECONDS": "3600", "SEND_JITTER_SECONDS": "0", "SEND_PAUSE_EVERY": "0",
              "SEND_PAUSE_SECONDS": "0", "SEND_DAILY_CAP": "0", "SEND_QUIET_HOURS": "off",
              "SEND_PACING": "on", **env}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def _device_has(engine: Engine, **counts: object) -> None:
    """The configured device's pacing row, with what it has sent so far."""
    settings = get_settings()
    with transaction(engine) as s:
        device = ensure_device(s, device=settings.wsapme_device, settings=settings)
        for name, value in counts.items():
            setattr(device, name, value)


def _notes(at: AppTest) -> list[str]:
    return [i.value for i in at.info if "so it would finish" in i.value]


def _window(now: dt.datetime) -> tuple[str, dt.datetime]:
    """Quiet hours from 30 to 90 minutes from now: the second message of three falls in them."""
    begins = (now + dt.timedelta(minutes=30)).replace(second=0, microsecond=0)
    ends = begins + dt.timedelta(hours=1)
    return f"{begins:%H:%M}-{ends:%H:%M}", ends


def test_quiet_hours_inside_the_send_are_said_with_the_finish(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = dt.datetime.now(KL)
    quiet, ends = _window(now)
    _pace(monkeypatch, SEND_QUIET_HOURS=quiet)
    at = new_blast_with(THREE)
    finish = ends + dt.timedelta(hours=1)  # the second message at the end of them, the third an hour on
    day = "today" if finish.date() == now.date() else "tomorrow"
    expected = (f"Sending pauses during quiet hours ({quiet.replace('-', '–')}), so it would finish "
                f"{day} around {finish:%H:%M}.")
    assert expected in _notes(at)
    assert any(f"finish around **{finish:%a %d %b, %H:%M}**" in m.value for m in at.markdown)


def test_sent_now_inside_quiet_hours_the_night_is_not_counted_as_sending_time(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 01:25 it had said "25 messages take about 7 h 39 min": the wait until 09:00 as if sending."""
    begins = (dt.datetime.now(KL) - dt.timedelta(minutes=30)).replace(second=0, microsecond=0)
    ends = begins + dt.timedelta(hours=2)
    _pace(monkeypatch, SEND_QUIET_HOURS=f"{begins:%H:%M}-{ends:%H:%M}")
    at = new_blast_with(THREE)
    finish = ends + dt.timedelta(hours=2)  # one an hour from their end
    assert [m.value for m in at.markdown if m.value.startswith("Sent now")] == [
        f"Sent now, **3** messages start when quiet hours end, **{ends:%a %H:%M}**, take about **2 h** at "
        f"this pace and finish around **{finish:%a %d %b, %H:%M}**."]


def _schedule(at: AppTest, day: dt.date, clock: dt.time) -> AppTest:
    at.radio(key="when").set_value("Schedule for later").run()
    at.date_input(key="when_day").set_value(day)
    at.time_input(key="when_time").set_value(clock).run()
    assert not at.exception, at.exception
    return at


def test_a_scheduled_blast_is_estimated_from_its_time(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scheduled for 23:30 inside quiet hours of 21:00–09:00, it had said "it would finish today
    around 09:00", counting from the moment the page was drawn."""
    _pace(monkeypatch, SEND_QUIET_HOURS="21:00-09:00")  # one message an hour
    day = dt.datetime.now(KL).date() + dt.timedelta(days=3)
    at = _schedule(new_blast_with(THREE), day, dt.time(23, 30))
    done = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(11, 0))  # from 09:00, one an hour
    assert _notes(at) == [f"Sending pauses during quiet hours (21:00–09:00), so it would finish on "
                          f"{done:%a} {done.day} {done:%b} around 11:00."]
    assert (f"Scheduled for **{day:%a %d %b}, 23:30**, at this pace **3** messages take about **2 h** and "
            f"finish around **{done:%a %d %b, %H:%M}**.") in [m.value for m in at.markdown]

    at = _schedule(at, day, dt.time(10, 0))
    assert _notes(at) == []
    assert (f"Scheduled for **{day:%a %d %b}, 10:00**, at this pace **3** messages take about **2 h** and "
            f"finish around **{day:%a %d %b}, 12:00**.") in [m.value for m in at.markdown]
    assert not any("if sent now" in m.value for m in at.markdown)


def test_a_scheduled_draft_is_estimated_from_its_time(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A draft's page drew its estimate before its time was chosen: as if sent now."""
    _pace(monkeypatch, SEND_QUIET_HOURS="21:00-09:00")
    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Hi {name}")
        for _ in range(3):
            make_recipient(s, draft)
        draft_id = draft.id
    day = dt.datetime.now(KL).date() + dt.timedelta(days=3)
    at = test_pages.page("pages/blast.py", blast=str(draft_id))
    at.run()
    key = f"draft_when_{draft_id}"
    at.radio(key=key).set_value("Schedule for later").run()
    at.date_input(key=f"{key}_day").set_value(day)
    at.time_input(key=f"{key}_time").set_value(dt.time(10, 0)).run()
    assert not at.exception, at.exception
    assert (f"Scheduled for **{day:%a %d %b}, 10:00**, at this pace **3** messages take about **2 h** and "
            f"finish around **{day:%a %d %b}, 12:00**.") in [m.value for m in at.markdown]


def test_saving_quiet_hours_off_takes_the_note_away(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    quiet, _ = _window(dt.datetime.now(KL))
    _pace(monkeypatch, SEND_QUIET_HOURS=quiet)
    at = new_blast_with(THREE)
    assert any("quiet hours" in n for n in _notes(at))
    at.text_input(key="p_quiet").set_value("off")
    at.button(key="p_save").click().run()
    assert not at.exception, at.exception
    assert not any("quiet hours" in n for n in _notes(at))


def test_the_daily_cap_is_said_with_what_already_went_out(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pace(monkeypatch, SEND_MIN_GAP_SECONDS="60", SEND_PAUSE_EVERY="0", SEND_DAILY_CAP="4")
    _device_has(engine, sent_day=dt.datetime.now(KL).date(), sent_in_day=2)
    at = new_blast_with(THREE)
    assert any(n.startswith("At most 4 messages go out a day (2 already went out today), so it would "
                            "finish tomorrow around 00:0") for n in _notes(at)), _notes(at)


def test_nothing_is_said_when_the_pace_holds_nothing_back(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pace(monkeypatch)
    at = new_blast_with(THREE)
    assert any("messages take about **2 h**" in m.value for m in at.markdown)
    assert _notes(at) == []


def test_nothing_is_said_with_pacing_off(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    quiet, _ = _window(dt.datetime.now(KL))
    _pace(monkeypatch, SEND_QUIET_HOURS=quiet, SEND_PACING="off")
    at = new_blast_with(THREE)
    assert not any("quiet hours" in n or "a day" in n for n in _notes(at))


def test_a_drafts_page_says_the_same_of_its_finish_and_length(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A saved draft or a follow-up is sent from its own page, with the same estimate and notes."""
    quiet, ends = _window(dt.datetime.now(KL))
    _pace(monkeypatch, SEND_QUIET_HOURS=quiet)
    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Hai {name}, jom!")
        for name in ("Ali", "Abu", "Siti Nurhaliza"):
            make_recipient(s, draft, contact_name=name)
        draft_id = draft.id
    at = page("pages/blast.py", blast=str(draft_id))
    at.run()
    assert not at.exception, at.exception
    finish = ends + dt.timedelta(hours=1)
    assert any("**3** messages take about **" in m.value and f"{finish:%a %d %b, %H:%M}" in m.value
               for m in at.markdown)
    assert any(n.startswith("Sending pauses during quiet hours") for n in _notes(at)), _notes(at)
    assert "13 to 24 characters, depending on each person's values." in [c.value for c in at.caption]


# -- other blasts sent first from the same number ----------------------------------------------


def _waiting(names: tuple[str, ...], messages: int) -> tuple[Finish, Ahead]:
    rules = _rules("22:00-08:00", gap=60)
    finish = estimate_finish(rules, remaining=10, start=_kl(26, 10), zone=KL, ahead=messages)
    return finish, Ahead(messages=messages, names=names)


@pytest.mark.parametrize(
    ("names", "messages", "note"),
    [
        (("Raya promo",), 800,
         "It waits for “Raya promo” to finish first (800 messages to go from the same WhatsApp number) "
         "and sending pauses during quiet hours (22:00–08:00), so it would finish tomorrow around 09:29."),
        (("Raya promo", "Blast #7"), 800,
         "It waits for 2 other blasts to finish first (“Raya promo” and “Blast \\#7”: 800 messages to go "
         "from the same WhatsApp number) and sending pauses during quiet hours (22:00–08:00), so it would "
         "finish tomorrow around 09:29."),
        (("A", "B", "C", "D", "E"), 1_250,
         "It waits for 5 other blasts to finish first (“A”, “B”, “C” and 2 more: 1,250 messages to go "
         "from the same WhatsApp number) and sending pauses during quiet hours (22:00–08:00), so it "
         "would finish tomorrow around 16:59."),
        (("Raya promo",), 100,
         "It waits for “Raya promo” to finish first (100 messages to go from the same WhatsApp number), "
         "so it would finish today around 11:49."),
    ],
)
def test_finish_note_names_the_blasts_that_go_first(names: tuple[str, ...], messages: int, note: str) -> None:
    finish, ahead = _waiting(names, messages)
    assert finish.others_first
    rules = _rules("22:00-08:00", gap=60)
    assert finish_note(rules, now=_kl(26, 10), finish=finish, zone=KL, ahead=ahead) == note


def test_three_reasons_read_as_a_list() -> None:
    rules = _rules("22:00-08:00", gap=60, cap=300)
    finish = estimate_finish(rules, remaining=10, start=_kl(26, 10), zone=KL, sent_today=50, ahead=400)
    note = finish_note(rules, now=_kl(26, 10), finish=finish, zone=KL, sent_today=50,
                       ahead=Ahead(messages=400, names=("Raya promo",)))
    assert note == (
        "It waits for “Raya promo” to finish first (400 messages to go from the same WhatsApp number), "
        "sending pauses during quiet hours (22:00–08:00) and at most 300 messages go out a day (50 already "
        "went out today), so it would finish tomorrow around 10:39."
    )


def test_nothing_is_said_of_blasts_that_do_not_make_it_later() -> None:
    rules = _rules(gap=60)
    # Gone long before a blast scheduled for the afternoon begins.
    finish = estimate_finish(rules, remaining=10, start=_kl(26, 10), zone=KL, ahead=5, not_before=_kl(26, 15))
    assert not finish.others_first
    ahead = Ahead(messages=5, names=("Raya promo",))
    assert finish_note(rules, now=_kl(26, 10), finish=finish, zone=KL, ahead=ahead) is None


def _sending(engine: Engine, device: str, *, name: str, queued: int, state: str = "sending") -> int:
    with transaction(engine) as s:
        blast = make_blast(s, name=name, state=state, device=device)
        for _ in range(queued):
            make_recipient(s, blast)
        return blast.id


WAITS = "It waits for “Raya promo” to finish first (2 messages to go from the same WhatsApp number), "


def test_the_new_blast_page_counts_the_blasts_already_sending_from_the_number(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pace(monkeypatch)  # one message an hour
    _sending(engine, get_settings().wsapme_device, name="Raya promo", queued=2)
    at = new_blast_with(THREE)
    finish = dt.datetime.now(KL) + dt.timedelta(hours=4)  # 2 of the other blast's, then these 3
    assert any(n.startswith(WAITS + "so it would finish ") for n in _notes(at)), _notes(at)
    assert any("as other blasts go first" in m.value and "about **4 h** from now" in m.value
               and f"{finish:%a %d %b}" in m.value for m in at.markdown), [m.value for m in at.markdown]


@pytest.mark.parametrize("state", ["paused", "scheduled", "draft", "cancelled"])
def test_the_new_blast_page_leaves_out_blasts_that_are_not_sending(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    _pace(monkeypatch)
    _sending(engine, get_settings().wsapme_device, name="Raya promo", queued=2, state=state)
    _sending(engine, "another-number", name="Elsewhere", queued=2)
    at = new_blast_with(THREE)
    assert any("messages take about **2 h**" in m.value for m in at.markdown)
    assert _notes(at) == []


def test_a_sending_blasts_page_says_which_blast_it_waits_for(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pace(monkeypatch)
    device = get_settings().wsapme_device
    first = _sending(engine, device, name="Raya promo", queued=2)
    second = _sending(engine, device, name="Merdeka sale", queued=3)
    at = page("pages/blast.py", blast=str(second))
    at.run()
    assert not at.exception, at.exception
    assert any(n.startswith(WAITS + "so it would finish ") for n in _notes(at)), _notes(at)
    at = page("pages/blast.py", blast=str(first))  # the one being sent waits for nobody
    at.run()
    assert not at.exception, at.exception
    assert not any("It waits for" in i.value for i in at.info)


def test_a_draft_older_than_the_sending_blast_goes_first(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker goes by age: a draft made before a sending blast is sent before it."""
    _pace(monkeypatch)
    device = get_settings().wsapme_device
    older = _sending(engine, device, name="Older draft", queued=3, state="draft")
    _sending(engine, device, name="Raya promo", queued=2)
    newer = _sending(engine, device, name="Newer draft", queued=3, state="draft")
    at = page("pages/blast.py", blast=str(newer))
    at.run()
    assert not at.exception, at.exception
    assert any(n.startswith(WAITS) for n in _notes(at)), _notes(at)
    at = page("pages/blast.py", blast=str(older))
    at.run()
    assert not at.exception, at.exception
    assert _notes(at) == []


# -- the longer pause every so many messages -----------------------------------------------------


def _pausing(every: int, *, pause: float = 300, gap: float = 4) -> PacingRules:
    return PacingRules(min_gap_seconds=gap, jitter_seconds=0, pause_every=every, pause_seconds=pause,
                       daily_cap=0, quiet_start=None, quiet_end=None)


@pytest.mark.parametrize("every", [0, 1, 2, 3, 7, 50])
@pytest.mark.parametrize("since", [0, 1, 6, 44, 60])
@pytest.mark.parametrize(("ahead", "count"), [(0, 1), (0, 2), (0, 10), (0, 120), (5, 10), (48, 3)])
def test_the_pauses_counted_are_those_the_estimate_takes(
    every: int, since: int, ahead: int, count: int
) -> None:
    """Each pause among a blast's messages makes it finish one pause later, as the worker would."""
    rules, start = _pausing(every), _kl(26, 10)
    counted = {"start": start, "zone": KL, "sent_since_pause": since, "ahead": ahead}
    paused = estimate_finish(rules, remaining=count, **counted)
    before = estimate_finish(rules, remaining=1, **counted)
    took = (paused.at - before.at).total_seconds() - rules.min_gap_seconds * (count - 1)
    assert pauses_among(rules, sent_since_pause=since, first=ahead, count=count) * 300 == took


@pytest.mark.parametrize(
    ("rules", "recipients", "since", "note"),
    [
        (_pausing(50), 10, 44,
         "The WhatsApp number takes a 5-minute break after every 50 messages (it has sent 44 since its "
         "last break), so it would finish today around 10:05."),
        (_pausing(50), 120, 0,
         "The WhatsApp number takes a 5-minute break after every 50 messages (2 breaks for this blast), "
         "so it would finish today around 10:17."),
        (_pausing(1, pause=3600, gap=0), 3, 0,
         "The WhatsApp number takes a 1-hour break after each message (2 breaks for this blast), so it "
         "would finish today around 12:00."),
        (_pausing(50), 10, 0, None),  # no break among them
        (_pausing(50, pause=0), 10, 44, None),
    ],
)
def test_finish_note_says_the_longer_pauses_among_the_messages(
    rules: PacingRules, recipients: int, since: int, note: str | None
) -> None:
    """A 10-person follow-up said "10 messages take about 5 min" (after a 44-message blast took
    3), and sat at 6 of 9 for 5 minutes as it went: the break was never said."""
    now = _kl(26, 10)
    finish = estimate_finish(rules, remaining=recipients, start=now, zone=KL, sent_since_pause=since)
    pauses = pauses_among(rules, sent_since_pause=since, first=0, count=recipients)
    assert finish_note(rules, now=now, finish=finish, zone=KL, pauses=pauses, sent_since_pause=since) == note


def test_the_new_blast_page_says_the_break_a_short_list_waits_for(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pace(monkeypatch, SEND_MIN_GAP_SECONDS="4", SEND_PAUSE_EVERY="50", SEND_PAUSE_SECONDS="300")
    _device_has(engine, sent_since_pause=48)
    at = new_blast_with(THREE)
    assert any("messages take about **5 min**" in m.value for m in at.markdown)
    [note] = _notes(at)
    assert note.startswith("The WhatsApp number takes a 5-minute break after every 50 messages (it has "
                           "sent 48 since its last break), so it would finish "), note


@pytest.mark.parametrize(("n", "words"), [
    (1, "**1** message takes, finishes, goes"), (2, "**2** messages take, finish, go"),
    (0, "**0** messages take, finish, go"),
])
def test_one_message_is_said_in_the_singular(n: int, words: str) -> None:
    """ "1 messages take about 12 h" had been said of a list of one."""
    from dashboard.finish_note import _messages, _s

    assert f"{_messages(n)} {_s('take', n)}, {_s('finish', n)}, {_s('go', n)}" == words


@pytest.mark.parametrize(("why", "until", "words"), [
    ("cap", _kl(28, 9), "Today's limit of 1 message from this number is reached. Sending goes on tomorrow "
                        "around 09:00."),
    ("quiet", _kl(28, 8), "Quiet hours (22:00–08:00): nothing is sent to anyone now. Sending goes on "
                          "tomorrow around 08:00."),
    ("break", _kl(27, 22, 49), "On a planned break: this number pauses after every 3 messages it sends, "
                               "which protects it. The next goes today around 22:49."),
])
def test_a_sending_blast_standing_still_says_why_in_words(why: str, until: dt.datetime, words: str) -> None:
    """The cap's had read "Today's most of 1 message from this number have gone out"."""
    from core.sending.pacing import Held, Waiting
    from dashboard.finish_note import held_words

    rules = PacingRules(min_gap_seconds=8, jitter_seconds=7, pause_every=3, pause_seconds=120, daily_cap=1,
                        quiet_start=dt.time(22), quiet_end=dt.time(8))
    assert held_words(Waiting(until, Held(why)), rules=rules, now=_kl(27, 22, 45), zone=KL) == words
