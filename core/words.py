"""Small pieces of plain English shared by the core's messages and the dashboard's."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """"1 recipient", "3 recipients", "1 person", "2 people"."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def and_list(items: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def shown_percent(value: float) -> float:
    """A percentage to one decimal, never 0.0 or 100.0 unless it is exactly none or all: 1,999
    of 2,000 received is 99.9%, not 100.0%, which would say everyone; 1 of 2,500 is 0.1%."""
    shown = round(value, 1)
    if shown >= 100.0 and value < 100.0:
        return 99.9
    if shown <= 0.0 and value > 0.0:
        return 0.1
    return shown


def percent_words(value: float) -> str:
    """ "57.5%"; ">99.9%" and "<0.1%" for what would round to all or none and is not."""
    shown = shown_percent(value)
    if shown == round(value, 1):
        return f"{shown:.1f}%"
    return f"{'>' if shown > 50 else '<'}{shown:.1f}%"
