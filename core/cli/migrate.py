"""`python -m core migrate`: bring the database schema up to date by hand."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from core.cli import SUMMARIES, database_engine
from core.config import get_settings
from core.db import alembic_config, current_revision, migrate
from core.errors import BadInput

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help=SUMMARIES["migrate"])
    parser.add_argument("--revision", default="head",
                        help="upgrade as far as this revision (default: head, the latest)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())  # the migrations, read once
    target = _target(script, args.revision)
    engine = database_engine(get_settings().sqlalchemy_url, shared=False)
    before = current_revision(engine)
    if _is_behind(script, before, target):
        raise BadInput(
            f"The database is at revision {before}, later than {args.revision}: migrate only "
            "moves the schema forward. Going back deletes data; if you mean it, use "
            "`alembic downgrade` after a backup."
        )
    migrate(engine, target or "base")
    print(f"database schema at revision {current_revision(engine) or 'base (no tables yet)'}")
    return 0


def _target(script: ScriptDirectory, revision: str) -> str | None:
    """The revision id `revision` names (None: base), or a BadInput listing the known ones."""
    from alembic.util import CommandError

    try:
        found = script.get_revisions(revision.strip()) if revision.strip() else None
    except CommandError:
        found = None
    if found is None or len(found) > 1:
        known = ", ".join(reversed([s.revision for s in script.walk_revisions()]))
        raise BadInput(f"{revision!r} is not a revision of this schema: use head, or one of {known}")
    return found[0].revision if found else None


def _is_behind(script: ScriptDirectory, current: str | None, target: str | None) -> bool:
    """Whether `target` is older than `current` (an upgrade to it would do nothing)."""
    if current is None or current == target:
        return False
    if target is None:
        return True
    from alembic.script.revision import RevisionError

    try:
        older = {s.revision for s in script.iterate_revisions(current, "base")}
    except RevisionError:
        raise BadInput(
            f"The database is at revision {current}, which this version of the program does not "
            "know: a newer version made it. Run that version, or restore a backup."
        ) from None
    return target in older
