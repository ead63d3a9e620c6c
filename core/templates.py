"""Message templates: `{name}` and `{column}` placeholders, checking them, filling them per row.

Placeholder rule: a placeholder names a column after `column_key` — case does not
matter, and every run of spaces or punctuation counts as one underscore — so
`{First Name}`, `{first name}` and `{first_name}` all name the column "First Name".
`{{` and `}}` write a literal brace. Everything else (WhatsApp's `*bold*`, `_italic_`,
`~strike~`, ```mono```, emoji, line breaks) passes through untouched.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.errors import BadInput

_NOT_KEY_CHARS = re.compile(r"[\W_]+")
PREVIEW_ROWS = 3


class TemplateError(BadInput):
    """The template itself cannot be used (unknown column, unmatched brace)."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


def column_key(column: str) -> str:
    """The key a column is known by in templates: "No. Telefon" → "no_telefon"."""
    return _NOT_KEY_CHARS.sub("_", column.strip().casefold()).strip("_")


@dataclass(frozen=True, slots=True)
class Placeholder:
    key: str
    written: str  # as typed between the braces, for messages


@dataclass(frozen=True, slots=True)
class Parsed:
    """A template cut into literal text and placeholders, with any syntax problems."""

    parts: tuple[str | Placeholder, ...]
    problems: tuple[str, ...] = ()


def parse(template: str) -> Parsed:
    """Cut a template into text and placeholders; never raises, problems are listed."""
    parts: list[str | Placeholder] = []
    problems: list[str] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch in "{}" and template.startswith(ch * 2, i):
            literal.append(ch)
            i += 2
        elif ch == "}":
            problems.append(_brace_problem("}", template, i))
            literal.append(ch)
            i += 1
        elif ch == "{":
            i = _read_placeholder(template, i, parts, literal, problems)
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return Parsed(parts=tuple(parts), problems=tuple(problems))


def _read_placeholder(
    template: str, start: int, parts: list[str | Placeholder], literal: list[str],
    problems: list[str],
) -> int:
    end = template.find("}", start + 1)
    inner = template[start + 1 : end] if end != -1 else ""
    if end == -1 or "{" in inner:
        problems.append(_brace_problem("{", template, start))
        literal.append("{")
        return start + 1
    if not column_key(inner):
        problems.append("an empty placeholder {} — put a column name inside, or write {{}} "
                        "to show braces")
        literal.append(template[start : end + 1])
        return end + 1
    if literal:
        parts.append("".join(literal))
        literal.clear()
    parts.append(Placeholder(key=column_key(inner), written=inner))
    return end + 1


def _brace_problem(brace: str, template: str, index: int) -> str:
    snippet = template[max(0, index - 15) : index + 15].replace("\n", " ")
    return (f"a lone {brace} near “{snippet}” — write {brace * 2} to show a brace, "
            "or close the placeholder")


def placeholders(template: str) -> list[str]:
    """The column keys a template uses, in order of first use, each once."""
    keys: dict[str, None] = {}
    for part in parse(template).parts:
        if isinstance(part, Placeholder):
            keys.setdefault(part.key)
    return list(keys)


def validate(template: str, available_columns: Iterable[str]) -> list[str]:
    """Every problem with a template for a file with these columns; empty when it is fine."""
    parsed = parse(template)
    known = {column_key(c) for c in available_columns} - {""}
    problems = list(parsed.problems)
    unknown: dict[str, Placeholder] = {}  # each unknown placeholder once, as first written
    for part in parsed.parts:
        if isinstance(part, Placeholder) and part.key not in known:
            unknown.setdefault(part.key, part)
    return (problems + [_unknown_problem(part, known) for part in unknown.values()]
            + _doubled(template, known))


# `{{name}}`, as WhatsApp Business templates write `{{1}}`: the doubled braces print it as typed.
_DOUBLED = re.compile(r"(?<!\{)\{\{([^{}]+)\}\}(?!\})")


def _doubled(template: str, known: set[str]) -> list[str]:
    """A column written in double braces would reach every recipient as "{name}", not their
    name: almost surely meant as a placeholder, so it is a problem to fix."""
    seen: dict[str, None] = {}
    for match in _DOUBLED.finditer(template):
        if column_key(match.group(1)) in known:
            seen.setdefault(match.group(1).strip())
    return [f"{{{{{written}}}}} would send “{{{written}}}” as typed, braces and all: write "
            f"{{{written}}} with single braces to fill in each person's {written}" for written in seen]


def check(template: str, available_columns: Iterable[str]) -> None:
    """Like `validate`, but raises TemplateError listing every problem."""
    problems = validate(template, available_columns)
    if problems:
        raise TemplateError(problems)


def _unknown_problem(placeholder: Placeholder, known: set[str]) -> str:
    message = f"{{{placeholder.written}}} is not a column in the file"
    close = difflib.get_close_matches(placeholder.key, sorted(known), n=3, cutoff=0.6)
    if close:
        return message + ". Did you mean " + " or ".join(f"{{{c}}}" for c in close) + "?"
    if known:
        return message + ". Columns you can use: " + ", ".join(f"{{{c}}}" for c in sorted(known))
    return message


@dataclass(frozen=True, slots=True)
class Rendered:
    """One row's message, and what was wrong with filling it (empty or missing values)."""

    text: str
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def render(template: str | Parsed, variables: Mapping[str, object]) -> Rendered:
    """Fill a template for one row. An empty or missing value is left blank and reported."""
    parsed = parse(template) if isinstance(template, str) else template
    values = {column_key(str(k)): "" if v is None else str(v) for k, v in variables.items()}
    out: list[str] = []
    problems = list(parsed.problems)
    for part in parsed.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        value = values.get(part.key)
        if value is None:
            problems.append(f"{{{part.written}}} is not a column in the file")
        elif not value.strip():
            problems.append(f"{{{part.written}}} is empty for this row")
        out.append(value or "")
    return Rendered(text="".join(out), problems=tuple(dict.fromkeys(problems)))


def gaps(template: str | Parsed, rows: Iterable[Mapping[str, object]]) -> dict[str, list[int]]:
    """Which rows would get a gap: each placeholder (as first written) that some rows leave
    empty or lack, with those rows' positions in order. Empty when every row fills every one."""
    parsed = parse(template) if isinstance(template, str) else template
    used: dict[str, str] = {}
    for part in parsed.parts:
        if isinstance(part, Placeholder):
            used.setdefault(part.key, part.written)
    found: dict[str, list[int]] = {}
    for position, row in enumerate(rows):
        values = {column_key(str(k)): "" if v is None else str(v) for k, v in row.items()}
        for key, written in used.items():
            if not values.get(key, "").strip():
                found.setdefault(written, []).append(position)
    return found


def preview(
    template: str, rows: Iterable[Mapping[str, object]], *, limit: int = PREVIEW_ROWS
) -> list[Rendered]:
    """The message as the first few recipients would get it."""
    parsed = parse(template)
    previews = []
    for row in rows:
        if len(previews) >= limit:
            break
        previews.append(render(parsed, row))
    return previews
