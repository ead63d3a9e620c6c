"""Small pieces of plain English shared by the core's messages and the dashboard's."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """"1 recipient", "3 recipients", "1 person", "2 people"."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def and_list(items: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
