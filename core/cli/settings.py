"""`python -m core settings`: every setting with its default and meaning, as a Markdown table."""

from __future__ import annotations

import argparse

from core.cli import SUMMARIES
from core.config import PROJECT_ROOT, Settings


def settings_rows() -> list[tuple[str, str, str]]:
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if default is None:
            shown = "(unset)"
        elif hasattr(default, "relative_to") and str(default).startswith(str(PROJECT_ROOT)):
            shown = f"`{default.relative_to(PROJECT_ROOT)}`"
        elif isinstance(default, bool):
            shown = f"`{str(default).lower()}`"
        else:
            shown = f"`{default}`"
        rows.append((name.upper(), shown, field.description or ""))
    return rows


def markdown_table() -> str:
    lines = ["| Setting | Default | Meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {default} | {meaning} |" for name, default, meaning in settings_rows()]
    return "\n".join(lines)


README_START = "<!-- settings:start (python -m core settings --write-readme) -->"
README_END = "<!-- settings:end -->"


def write_readme() -> None:
    path = PROJECT_ROOT / "README.md"
    text = path.read_text()
    head, _, rest = text.partition(README_START)
    _, _, tail = rest.partition(README_END)
    path.write_text(f"{head}{README_START}\n{markdown_table()}\n{README_END}{tail}")


def run(args: argparse.Namespace) -> int:
    if args.write_readme:
        write_readme()
    else:
        print(markdown_table())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("settings", help=SUMMARIES["settings"])
    parser.add_argument("--write-readme", action="store_true", help="refresh the README's table")
    parser.set_defaults(func=run)
