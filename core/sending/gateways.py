"""Which gateway sends a blast: practice mode's sandbox or WSAPME, told apart by the blast's device."""

from __future__ import annotations

from sqlalchemy.sql.elements import ColumnElement

from core.config import PRACTICE_DEVICES, SANDBOX_DEVICE, Settings
from core.models import Blast


def launch_device(settings: Settings) -> str:
    """The device a blast launched now is sent from. In practice mode it is the sandbox's,
    whatever WSAPME_DEVICE says: a practice blast must not reach WhatsApp once a token is set."""
    return SANDBOX_DEVICE if settings.sandbox else settings.wsapme_device


def sends(device: str | None, *, settings: Settings) -> bool:
    """Whether the gateway these settings talk to sends a blast made for `device` (a draft with
    none yet gets `launch_device`'s). WSAPME sends from every device but the sandbox's; the
    sandbox never sends a blast made for a WhatsApp device."""
    return ((device or launch_device(settings)) in PRACTICE_DEVICES) == settings.sandbox


def sent_here(settings: Settings) -> ColumnElement[bool]:
    """`sends` as a condition on the blast, for queries."""
    if settings.sandbox:
        return Blast.device.in_(PRACTICE_DEVICES)
    return Blast.device.not_in(PRACTICE_DEVICES)


def held_words(device: str | None) -> str:
    """A short state for an unfinished blast that the other gateway would send (`sends`)."""
    return "Practice only" if device in PRACTICE_DEVICES else "Waits for WhatsApp"


def crosses(device: str | None, to: str) -> bool:
    """Whether moving a blast from `device` to `to` would take it from practice mode to
    WhatsApp or back."""
    return device is not None and (device in PRACTICE_DEVICES) != (to in PRACTICE_DEVICES)


def not_sent_words(device: str | None) -> str:
    """Why a blast made for `device` is not sent by the other gateway (`sends`), in the
    marketer's words."""
    if device in PRACTICE_DEVICES:
        return "Made in practice mode: it is not sent to WhatsApp. Make a new blast from the same list."
    return (f"Made for WhatsApp device {device}: practice mode does not send it. It goes out once the "
            "dashboard sends to WhatsApp again.")
