"""The health page's facts: whether WSAPME can reach the webhook address, the device in words."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from core.config import Settings
from core.health import _notes, device_state, unreachable_reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://tracker.example.com", None),
        ("http://175.136.0.10:8501", None),
        ("http://localhost:8501", "localhost is this computer's own name"),
        ("http://127.0.0.1:8501", "127.0.0.1 is this computer's own address"),
        ("http://[::1]:8501", "::1 is this computer's own address"),
        ("http://0.0.0.0:8501", "0.0.0.0 is this computer's own address"),
        ("http://192.168.1.20:8501", "192.168.1.20 is an address inside this network"),
        ("http://10.0.0.5", "10.0.0.5 is an address inside this network"),
        ("http://office-pc:8501", "office-pc is a name only this network knows"),
        ("http://tracker.local", "tracker.local is this computer's own name"),
        ("tracker.example.com", "it is not a web address"),
        ("", "it is not a web address"),
    ],
)
def test_an_address_the_gateway_cannot_reach_is_named(url: str, reason: str | None) -> None:
    assert unreachable_reason(url) == reason


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_a_local_webhook_address_is_a_note_only_when_sending_for_real() -> None:
    real = _settings(wsapme_token="t0ken-for-the-test", wsapme_device="5850", public_url="http://localhost:8501")
    notes = _notes(real, workers=[object()])  # type: ignore[list-item]
    assert any("WSAPME cannot deliver receipts" in n.words and "localhost" in n.fix for n in notes)
    assert not any("t0ken" in n.words + n.fix for n in notes)
    sandbox = _settings(public_url="http://localhost:8501")
    assert not any("WSAPME cannot deliver" in n.words for n in _notes(sandbox, workers=[object()]))  # type: ignore[list-item]
    public = _settings(wsapme_token="t0ken-for-the-test", wsapme_device="5850",
                       public_url="https://tracker.example.com")
    assert not any("WSAPME cannot deliver" in n.words for n in _notes(public, workers=[object()]))  # type: ignore[list-item]


def test_each_note_says_the_problem_plainly_and_leaves_the_settings_to_the_fix() -> None:
    everything_wrong = _settings(wsapme_token="t0ken-for-the-test", wsapme_device="5850", send_pacing="off",
                                 public_url="http://192.168.1.20:8501")
    notes = _notes(everything_wrong, workers=[])
    assert len(notes) == 3
    for note, setting in zip(notes, ("RUN_WORKER", "SEND_PACING", "PUBLIC_URL"), strict=True):
        assert setting in note.fix
        assert not re.search(r"[A-Z]+_[A-Z]+|`|python|worker", note.words), note.words


@dataclass
class _Status:
    connected: bool
    state: str | None


class _Client:
    def __init__(self, status: _Status) -> None:
        self.status = status

    def device_status(self) -> _Status:
        return self.status


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (_Status(True, "connected"), "Connected"),
        (_Status(True, "CONNECTED"), "Connected"),
        (_Status(True, None), "Connected"),
        (_Status(True, "open"), "Connected (open)"),
        (_Status(False, "disconnected"), "Not connected: open WSAPME and reconnect the WhatsApp device."),
        (_Status(False, "qr"), "Not connected (qr): open WSAPME and reconnect the WhatsApp device."),
    ],
)
def test_the_device_in_words_without_repeating_itself(status: _Status, words: str) -> None:
    assert device_state(_Client(status))[1] == words
