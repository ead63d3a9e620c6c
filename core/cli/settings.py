"""`python -m core settings`: every setting with its default and meaning, as a Markdown table."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from core.cli import SUMMARIES
from core.config import PROJECT_ROOT, Settings, get_settings


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


HIDDEN = "•••"


def in_force(settings: Settings) -> list[tuple[str, str, bool]]:
    """Each setting's name, the value this program reads, and whether it was set (in the
    environment or `.env`) rather than left at its default. Secrets say only whether they are
    set; a password or login in an address is hidden."""
    rows = []
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if not secret:
                shown = "(unset)"
            else:
                shown = _hidden_login(secret) if name == "database_url" else "(set, hidden)"
        elif value is None:
            shown = "(unset)"
        elif value == "":
            shown = "(empty)"
        elif isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = _hidden_login(str(value)) if "://" in str(value) else str(value)
        rows.append((name.upper(), shown, name in settings.model_fields_set and value != field.default))
    return rows


def _hidden_login(url: str) -> str:
    """`url` with the password of any `user:password@` hidden (the user shows: which login it
    is), and its query, which may hold one."""
    unreadable = "(set, hidden: not readable as an address)"
    try:
        parts = urlsplit(url)
    except ValueError:
        return unreadable
    if "@" in parts.path + parts.query + parts.fragment:
        return unreadable  # a password with / ? or # in it, not percent-encoded: part would show
    if parts.query:  # it may carry a password too (`?password=…`, which the driver takes)
        parts = parts._replace(query=HIDDEN)
    login, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = login.partition(":")
        parts = parts._replace(netloc=f"{user}{':' + HIDDEN if colon else ''}@{host}")
    return urlunsplit(parts)


def print_in_force() -> None:
    rows = in_force(get_settings())  # a setting that cannot be used is said in one line (core.cli)
    width = max(len(name) for name, _, _ in rows)
    print("Settings in force: those marked * are set in the environment or .env, the rest are defaults.")
    for name, shown, set_here in rows:
        print(f"{'*' if set_here else ' '} {name:<{width}}  {shown}")


def run(args: argparse.Namespace) -> int:
    if args.write_readme:
        write_readme()
    elif args.in_force:
        print_in_force()
    else:
        print(markdown_table())
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("settings", help=SUMMARIES["settings"])
    parser.add_argument("--write-readme", action="store_true", help="refresh the README's table")
    parser.add_argument("--in-force", action="store_true",
                        help="the value of each setting this program reads now (secrets hidden), "
                        "to check what the environment and .env give")
    parser.set_defaults(func=run)
