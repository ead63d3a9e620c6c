"""Small pieces of plain English shared by the core's messages and the dashboard's."""

from __future__ import annotations


def and_list(items: list[str]) -> str:
    """ "A", "A and B", "A, B and C"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
