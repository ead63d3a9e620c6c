"""The sending pace of a WhatsApp device, to see, change and save: on New blast before a list
goes, and on a sending blast's page."""

from __future__ import annotations

import logging
import math

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from core.config import PACING_LIMITS, PRACTICE_DEVICES, Settings
from core.errors import BlastError
from core.sending.pacing import PacingRules, parse_quiet_hours, risky, save_rules
from core.sending.progress import rules_for
from dashboard.data import reading, session, settings
from dashboard.format import and_list
from dashboard.layout import page_run

log = logging.getLogger(__name__)


# The saved pace the boxes were last set from: when the saved pace changes (saved here, or in
# another tab, or by a colleague), the boxes are set from it again.
_PACE_DRAWN = "pace_drawn_from"
# The page run the boxes were last drawn in (`layout.page_run`). Boxes left off a run (the
# list taken off New blast, say) come back with whatever the browser sends for them, which
# had been zeros and an empty quiet hours, one click from being saved: they are set again.
_PACE_RUN = "pace_drawn_in_run"
# What Save pace has to say, shown once under it: saved, or why it could not be.
_PACE_SAID, _SAVED = "pace_said", "saved"


def render_pacing(device: str) -> bool:
    """The device's pace, to change and save; True when the pace shown is the one saved (a pace
    typed but not saved is not used, so the blast must not be sent with it on the page)."""
    cfg = settings()
    with reading() as s:
        rules = rules_for(s, device=device, settings=cfg)
    saved = _boxes_for(rules)
    run = page_run()
    away = st.session_state.get(_PACE_RUN) != run - 1  # not on the page in the run before
    if away or st.session_state.get(_PACE_DRAWN) != saved or any(k not in st.session_state for k in saved):
        st.session_state.update(saved)  # before the boxes are drawn: they show it
        st.session_state[_PACE_DRAWN] = saved
    st.session_state[_PACE_RUN] = run
    if cfg.send_pacing == "off":
        st.info("Pacing is off: messages go as fast as the gateway answers.")
    unshowable = [name for name, value in (("Seconds between messages", rules.min_gap_seconds),
                                           ("Plus a random extra", rules.jitter_seconds),
                                           ("Longer pause", rules.pause_seconds))
                  if not math.isfinite(value)]
    with st.expander("Sending pace (protects your WhatsApp number from being flagged)"):
        for name in unshowable:  # no box can show it: the end of its range is, said out loud
            st.warning(f"The saved “{name}” could not be shown, so the end of its range is shown "
                       "instead: press Save pace to keep it.")
        c1, c2, c3 = st.columns(3)
        gap = _pace_input(c1, "Seconds between messages", "send_min_gap_seconds", saved["p_gap"], key="p_gap")
        jitter = _pace_input(c2, "Plus a random extra of up to (s)", "send_jitter_seconds", saved["p_jit"],
                             key="p_jit")
        cap = _pace_input(c3, "Most messages a day", "send_daily_cap", saved["p_cap"], key="p_cap")
        c4, c5, c6 = st.columns(3)
        every = _pace_input(c4, "Longer pause every … messages", "send_pause_every", saved["p_every"],
                            key="p_every")
        pause = _pace_input(c5, "Longer pause (minutes)", "send_pause_seconds", saved["p_pause"],
                            key="p_pause", per=60)
        quiet = c6.text_input(
            "Quiet hours",
            key="p_quiet",
            help="No messages between these times (team time zone), e.g. 21:00-09:00, or off.",
        )
        # Saved by Save pace's callback, before this run read the saved pace: what is drawn
        # below, the caption and the button's colour included, is already after the save.
        changed = _differs(rules, gap=gap, jitter=jitter, cap=cap, every=every, pause=pause, quiet=quiet)
        practice = device in PRACTICE_DEVICES
        if risks := _risks(gap, jitter, cap, every, pause, quiet):
            if practice:  # nothing real at risk yet: said, so that a trial learns it
                st.info(f"Fine for practice. On WhatsApp, this pace would risk your number being flagged "
                        f"as spam: {and_list(risks)}.", icon=":material/science:")
            else:
                st.warning(f"This pace risks your WhatsApp number being flagged as spam: {and_list(risks)}. "
                           f"{_CAREFUL}", icon=":material/warning:")
        st.caption(
            ("This is practice mode's pace: every practice blast uses it; your WhatsApp number keeps a "
             "pace of its own, the careful one until it is changed." if practice else
             f"The pace belongs to the WhatsApp device ({device}): every blast it sends uses it.")
            + (" **Changed: press Save pace to use it.**" if changed else "")
        )
        b1, b2 = st.columns(2)
        b1.button("Save pace", key="p_save", type="primary" if changed else "secondary",
                  on_click=_save_pacing, args=(device,))
        if changed:
            b2.button("Put the saved pace back", key="p_reset", on_click=_show_saved_pace)
        said = st.session_state.pop(_PACE_SAID, None)  # once: the next change takes it away
        if said == _SAVED:
            st.success(f"Pace saved for {'practice mode' if practice else 'this WhatsApp device'}.")
        elif said:
            st.error(said)
    return not changed


def _boxes_for(rules: PacingRules) -> dict[str, float | int | str]:
    """What each pace box shows for the saved rules. A value no box can show (infinite) is
    shown as the end of its range, and said out loud when drawn (`_pace_input`)."""
    def shown(value: float, setting: str, per: int = 1) -> float:
        low, high, _ = PACING_LIMITS[setting]
        value = float(value) / per
        return value if math.isfinite(value) else (high / per if value == math.inf else low / per)

    return {
        "p_gap": shown(rules.min_gap_seconds, "send_min_gap_seconds"),
        "p_jit": shown(rules.jitter_seconds, "send_jitter_seconds"),
        "p_cap": int(rules.daily_cap), "p_every": int(rules.pause_every),
        "p_pause": shown(rules.pause_seconds, "send_pause_seconds", per=60),
        "p_quiet": _quiet_text(rules),
    }


def _differs(
    rules: PacingRules, *, gap: float, jitter: float, cap: int, every: int, pause: float, quiet: str
) -> bool:
    """Whether the pace typed is another than the one saved, by what the values mean: quiet
    hours written "21-9" are the saved 21:00-09:00, and minutes turned into seconds and back
    are the same minutes."""
    try:
        quiet_hours = parse_quiet_hours(quiet)
    except ValueError:
        return True  # not saved as it is: Save says what is wrong

    def same(a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)

    return not (same(gap, rules.min_gap_seconds) and same(jitter, rules.jitter_seconds)
                and int(cap) == int(rules.daily_cap) and int(every) == int(rules.pause_every)
                and same(pause * 60, rules.pause_seconds)
                and quiet_hours == (rules.quiet_start, rules.quiet_end))


def _careful() -> str:
    """The pace a device starts with, unless the settings change it, in words."""
    field = Settings.model_fields
    gap, jitter = (field[name].default for name in ("send_min_gap_seconds", "send_jitter_seconds"))
    every, pause = (field[name].default for name in ("send_pause_every", "send_pause_seconds"))
    cap, quiet = (field[name].default for name in ("send_daily_cap", "send_quiet_hours"))
    return (f"A careful start: {gap:g} seconds plus up to {jitter:g}, a {pause / 60:g}-minute pause every "
            f"{every} messages, at most {cap} a day, quiet hours {quiet}.")


_CAREFUL = _careful()


def _risks(gap: float, jitter: float, cap: int, every: int, pause: float, quiet: str) -> list[str]:
    """What in the pace typed risks the number (`core.sending.pacing.risky`)."""
    try:
        quiet_start, quiet_end = parse_quiet_hours(quiet)
    except ValueError:
        return []  # Save says what is wrong with it
    return risky(PacingRules(min_gap_seconds=gap, jitter_seconds=jitter, pause_every=int(every),
                             pause_seconds=pause * 60, daily_cap=int(cap), quiet_start=quiet_start,
                             quiet_end=quiet_end))


def _show_saved_pace() -> None:
    """Put the saved pace back in the boxes: set, not forgotten, so the browser shows it too."""
    st.session_state.update(st.session_state.get(_PACE_DRAWN, {}))


def _pace_input(
    column: DeltaGenerator, label: str, setting: str, shown: float | int, *, key: str, per: int = 1,
) -> float:
    """A number input for one pacing rule (its value in the session, `render_pacing`), from the
    setting's range (`PACING_LIMITS`) widened to hold the device's saved value as it is:
    showing a saved pace never changes it. `per` turns seconds into minutes."""
    low, high, _ = PACING_LIMITS[setting]
    if isinstance(shown, int):
        return column.number_input(label, min(int(low), shown), max(int(high), shown), key=key)
    return column.number_input(label, min(low / per, shown), max(high / per, shown), key=key)


def _quiet_text(rules: PacingRules) -> str:
    if rules.quiet_start is None or rules.quiet_end is None:
        return "off"
    return f"{rules.quiet_start:%H:%M}-{rules.quiet_end:%H:%M}"


def _save_pacing(device: str) -> None:
    """Save the pace as typed in the boxes (Save pace's callback), leaving what to say of it
    for `render_pacing` to show in its place."""
    typed = st.session_state
    try:
        start, end = parse_quiet_hours(typed["p_quiet"])
    except ValueError:
        st.session_state[_PACE_SAID] = "Quiet hours should look like 21:00-09:00, or say off."
        return
    rules = PacingRules(
        min_gap_seconds=typed["p_gap"],
        jitter_seconds=typed["p_jit"],
        pause_every=int(typed["p_every"]),
        pause_seconds=typed["p_pause"] * 60,
        daily_cap=int(typed["p_cap"]),
        quiet_start=start,
        quiet_end=end,
    )
    try:
        with session() as s:
            save_rules(s, device=device, rules=rules, settings=settings())
    except BlastError as exc:
        st.session_state[_PACE_SAID] = f"Could not save the pace: {exc.message}"
        return
    except Exception:  # a callback runs outside the page: nothing else would say it in words
        log.exception("unexpected failure while saving the pace of %s", device)
        st.session_state[_PACE_SAID] = ("Could not save the pace because of an unexpected problem. "
                                        "It has been logged.")
        return
    st.session_state[_PACE_SAID] = _SAVED
