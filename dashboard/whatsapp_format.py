"""WhatsApp's own text formatting, turned into safe HTML for the message preview.

Only what WhatsApp formats is formatted: *bold*, _italic_, ~strikethrough~, ```monospace```
and `inline code`. Everything else — Markdown, HTML, lists, quotes — is escaped and shown
as typed, with its line breaks. A marker formats only when it hugs its text: the opening
one does not follow a letter or digit and is followed by a non-space; the closing one
follows a non-space and is not followed by a letter or digit (`2*3*4`, `* a *` and
`Ali_Bin_Abu` stay as typed). Bold, italic, strikethrough and inline code stay on one line;
monospace may span lines.
"""

from __future__ import annotations

import bisect
import html

_STYLES = {"*": "strong", "_": "em", "~": "s"}
_CODE = "`"
_BLOCK = "```"
_MONOSPACE = '<span style="font-family: monospace">{}</span>'


def to_html(text: str) -> str:
    """The message as WhatsApp shows it, as HTML in which nothing else is markup."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _format(text, frozenset()).replace("\n", "<br>")


def _format(text: str, open_styles: frozenset[str]) -> str:
    closers = _Closers(text)
    out: list[str] = []
    plain_from = i = 0
    while i < len(text):
        span = _span_at(text, i, open_styles, closers)
        if span is None:
            i += 1
            continue
        end, piece = span
        out += [html.escape(text[plain_from:i]), piece]
        i = plain_from = end
    out.append(html.escape(text[plain_from:]))
    return "".join(out)


def _span_at(
    text: str, i: int, open_styles: frozenset[str], closers: _Closers
) -> tuple[int, str] | None:
    """The formatted span opening at `i`, as (where it ends, its HTML); None if none does."""
    if i > 0 and text[i - 1].isalnum():
        return None
    if text.startswith(_BLOCK, i):
        close = closers.first(_BLOCK, after=i + 3, before=len(text))
        if close is None or not text[i + 3 : close].strip():
            return None
        return close + 3, _MONOSPACE.format(html.escape(text[i + 3 : close]))
    marker = text[i]
    if (marker not in _STYLES and marker != _CODE) or marker in open_styles:
        return None
    if i + 1 >= len(text) or text[i + 1].isspace() or text[i + 1] == marker:
        return None  # in "**x**" only the inner pair formats; the outer one shows
    line_end = text.find("\n", i)
    close = closers.first(marker, after=i + 1, before=len(text) if line_end == -1 else line_end)
    if close is None:
        return None
    inner = text[i + 1 : close]
    if marker == _CODE:
        return close + 1, f"<code>{html.escape(inner)}</code>"
    tag = _STYLES[marker]
    return close + 1, f"<{tag}>{_format(inner, open_styles | {marker})}</{tag}>"


class _Closers:
    """Where each marker may close a span in one text, found once so scanning stays linear."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._found: dict[str, list[int]] = {}

    def first(self, marker: str, *, after: int, before: int) -> int | None:
        """The first closing `marker` that leaves at least one character after `after`."""
        spots = self._found.get(marker)
        if spots is None:
            spots = self._found[marker] = self._find(marker)
        k = bisect.bisect_right(spots, after)
        return spots[k] if k < len(spots) and spots[k] < before else None

    def _find(self, marker: str) -> list[int]:
        text, width = self._text, len(marker)
        spots = []
        j = text.find(marker, 1)
        while j != -1:
            after = j + width
            hugs = marker == _BLOCK or not text[j - 1].isspace()
            if hugs and (after >= len(text) or not text[after].isalnum()):
                spots.append(j)
            j = text.find(marker, j + 1)
        return spots
