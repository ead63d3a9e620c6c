"""Storing an import: a draft blast and one queued recipient per usable number."""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session

from core import bulk, templates
from core.csv_import.report import ImportReport, Outcome, RowResult
from core.errors import BadInput
from core.models import Blast, BlastRecipient, BlastState, OptOut, longest
from core.statuses import Status

INSERT_CHUNK = 5_000  # rows per executemany: bounded memory, few round trips
LOOKUP_CHUNK = 1_000  # numbers per IN (...) when checking the opt-out list


def opted_out_among(session: Session, numbers: Iterable[str]) -> set[str]:
    """The numbers, of those given, that are on the opt-out list."""
    wanted = set(numbers)
    if not wanted:
        return set()
    listed = session.scalar(select(func.count()).select_from(OptOut)) or 0
    if listed <= len(wanted):
        # A short list (the usual case) is cheaper to read whole than to probe.
        return wanted.intersection(session.scalars(select(OptOut.phone_number)))
    found: set[str] = set()
    for chunk in _chunks(sorted(wanted), LOOKUP_CHUNK):
        query = select(OptOut.phone_number).where(OptOut.phone_number.in_(chunk))
        found.update(session.scalars(query))
    return found


@dataclass(frozen=True)
class Overlap:
    """A recent blast that already holds many of a new list's numbers."""

    blast_id: int
    name: str | None
    state: str
    created_at: dt.datetime
    shared: int


# How far back a list sent again is worth a word, and how much of it must be shared.
RECENT = dt.timedelta(days=7)
MOSTLY = 0.5
SAMPLE = 2_000


@dataclass(frozen=True)
class ListSample:
    """A long list judged by a sample of it, spread over the whole list (its lowest numbers
    alone would miss a recent blast holding the rest): one statement, whatever its length."""

    size: int  # distinct numbers in the list
    step: int  # each number of the sample stands for this many of the list
    numbers: list[str]

    @property
    def most(self) -> int:
        """How many of the sample are "most" of the list (MOSTLY, rounded up: 1 of a list of 3
        had been taken for a list sent again)."""
        return max(1, math.ceil(len(self.numbers) * MOSTLY))

    def scaled(self, counted: int) -> int:
        """A count in the sample, as many again for each number it stands for, at most the list."""
        return min(self.size, counted * self.step)


def list_sample(numbers: Iterable[str]) -> ListSample:
    distinct = sorted(set(numbers))
    step = max(1, -(-len(distinct) // SAMPLE))
    return ListSample(size=len(distinct), step=step, numbers=distinct[::step])


def recent_blasts_with(
    session: Session, numbers: Sequence[str], *, now: dt.datetime
) -> list[Overlap]:
    """Blasts made in the last week, not cancelled, that hold at least half of `numbers`
    (the same list uploaded again, say after the page was left mid-send): newest first."""
    sample = list_sample(numbers)
    wanted = sample.numbers
    if not wanted:
        return []
    dialect = session.get_bind().dialect
    shared = func.count().label("shared")
    rows = session.execute(
        select(Blast.id, Blast.name, Blast.state, Blast.created_at, shared)
        .join(BlastRecipient, BlastRecipient.blast_id == Blast.id)
        .where(Blast.created_at >= now - RECENT, Blast.state != BlastState.CANCELLED,
               bulk.one_of(BlastRecipient.phone_number, wanted, dialect))
        .group_by(Blast.id, Blast.name, Blast.state, Blast.created_at)
        .having(shared >= sample.most)
        .order_by(Blast.created_at.desc())
    ).all()
    return [Overlap(*row[:4], shared=sample.scaled(row.shared)) for row in rows]


def spelled_as_before(session: Session, column: InstrumentedAttribute[str | None], typed: str) -> str:
    """`typed` with its spaces tidied, or the spelling a blast already uses for it whatever the
    case ("raya  promo" → "Raya Promo"): one campaign, one line on the Overview."""
    return _spelled(_in_use(session, column), " ".join(typed.split()))


def _in_use(session: Session, column: InstrumentedAttribute[str | None]) -> dict[str, int]:
    """Each value the blasts have in `column`, and how many have it."""
    query = select(column, func.count()).where(column.is_not(None)).group_by(column)
    return dict(session.execute(query).all())


def _same_as(counts: dict[str, int], tidy: str) -> dict[str, int]:
    """The values in use that are `tidy` (spaces tidied) whatever their case and spacing."""
    return {value: n for value, n in counts.items() if " ".join(value.split()).casefold() == tidy.casefold()}


def _spelled(counts: dict[str, int], tidy: str) -> str:
    """`tidy`, or the spelling most blasts use for it (`tidy` itself on a tie)."""
    same = _same_as(counts, tidy)
    return max(same, key=lambda value: (same[value], value == tidy)) if same else tidy


@dataclass(frozen=True)
class TagInUse:
    """What a campaign tag typed for a new blast joins: the tag in use it is spelled as, and
    how many blasts have it; or, for a new tag, one in use it looks like a variant of."""

    same: str | None = None
    blasts: int = 0
    like: str | None = None


def _letters(tag: str) -> str:
    return "".join(c for c in tag.casefold() if c.isalnum())


def _digits(tag: str) -> str:
    return "".join(c for c in tag if c.isdigit())


def tag_in_use(session: Session, typed: str) -> TagInUse:
    """`typed` against the tags blasts have: the same one however it is spaced or cased (as
    `spelled_as_before` stores it), or a new one close to one in use ("Year-End Sale" beside
    "Year End Sale"), which would start a campaign of its own on the Overview."""
    tidy = " ".join(typed.split())
    if not tidy:
        return TagInUse()
    counts = _in_use(session, Blast.blast_tag)
    if same := _same_as(counts, tidy):
        return TagInUse(same=_spelled(counts, tidy), blasts=sum(same.values()))
    by_letters: dict[str, str] = {}
    for tag in sorted(counts, key=lambda t: -counts[t]):  # the spelling most blasts have
        if _letters(tag):
            by_letters.setdefault(_letters(tag), tag)
    # "CNY 2026" beside "CNY 2025", "Week 1" beside "Week 2": other campaigns, told by their numbers.
    alike = [key for key, tag in by_letters.items() if _digits(tag) == _digits(tidy)]
    close = difflib.get_close_matches(_letters(tidy), alike, n=1, cutoff=0.8)
    return TagInUse(like=by_letters[close[0]] if close else None)


_SAID = {"name": "The blast name", "blast_tag": "The campaign tag", "follow_up_stage": "The follow-up stage"}


def check_blast_words(**typed: str | None) -> None:
    """Refuse, in words, a name, tag or stage (`Blast`'s fields) longer than the database keeps:
    PostgreSQL refuses the row (which had been said as the database not answering), SQLite
    would keep it whole."""
    for field, value in typed.items():
        if value is not None and len(value) > longest(field):
            raise BadInput(f"{_SAID[field]} is {len(value):,} characters long; it can be at most "
                           f"{longest(field)}.")


def create_draft_blast_from_import(
    session: Session, *, report: ImportReport, tag: str, follow_up_stage: str | None = None,
    message_template: str | None = None, name: str | None = None,
    source_filename: str | None = None, check_message: bool = True, leave_out: Collection[str] = (),
) -> Blast:
    """A new draft blast holding the report's usable rows, but for the numbers in `leave_out`
    (ones recent blasts have: the marketer chose to leave them out). Raises TemplateError when the
    message uses a column the file does not have, unless `check_message` is off (a draft
    saved to finish later keeps the message as typed; launching checks it). The tag and the
    follow-up stage take the spelling other blasts use (`spelled_as_before`)."""
    if message_template is not None and check_message:
        templates.check(message_template, report.variable_names)
    check_blast_words(name=name, blast_tag=tag, follow_up_stage=follow_up_stage)
    tag = spelled_as_before(session, Blast.blast_tag, tag)
    if follow_up_stage is not None:
        follow_up_stage = spelled_as_before(session, Blast.follow_up_stage, follow_up_stage) or None
    filename = (source_filename or report.filename or "")[:longest("source_filename")] or None
    blast = Blast(
        blast_tag=tag, follow_up_stage=follow_up_stage, message_template=message_template,
        name=name or filename or tag, source_filename=filename, state=BlastState.DRAFT,
        total_recipients=0, skipped_opted_out=0,
    )
    session.add(blast)
    session.flush()  # the blast needs its id before recipients can point at it
    add_recipients(session, blast=blast, report=report, leave_out=leave_out)
    return blast


def add_recipients(
    session: Session, *, blast: Blast, report: ImportReport, leave_out: Collection[str] = ()
) -> int:
    """Queue the report's usable numbers on the blast; returns how many were new.

    The opt-out list is checked again here: it may have grown since the preview. A
    number already on the blast is left as it is, so importing a file twice adds nothing.
    `skipped_opted_out` grows by this report's suppressed rows on every call: the skipped
    numbers themselves are not stored, so a file imported twice counts them twice.
    """
    numbers = [row.phone for row in report.recipients if row.phone]
    report = report.with_opt_outs(opted_out_among(session, numbers))
    before = _recipient_count(session, blast.id)
    statement = _insert_ignoring_duplicates(session)
    left_out = set(leave_out)
    kept = [row for row in report.recipients if row.phone not in left_out]
    # A number already on the blast keeps its row (and its cells): only the new rows' count.
    there = set(session.scalars(select(BlastRecipient.phone_number).where(
        BlastRecipient.blast_id == blast.id))) if before else set()
    added = [row for row in kept if row.phone not in there]
    for chunk in _chunks(kept, INSERT_CHUNK):
        session.execute(statement, [_recipient_values(blast.id, row) for row in chunk])
    total = _recipient_count(session, blast.id)
    blast.upload_columns = with_columns(blast.upload_columns, upload_columns(report, added)) or None
    blast.total_recipients = total
    blast.skipped_opted_out = (blast.skipped_opted_out or 0) + report.counts[Outcome.SUPPRESSED]
    session.flush()
    return total - before


def upload_columns(report: ImportReport, rows: Sequence[RowResult]) -> list[list[str]]:
    """The file's columns other than its numbers and names, [key, heading] each, in the file's
    order; left out, a column empty in every row kept (a contacts export's many unused ones),
    and, in one of our own exports uploaded again, our columns (what became of another blast's
    message is not the person's to carry on; the file's own columns are)."""
    from core.exports import our_columns

    columns = report.columns
    labelled = (i for pair in columns.each_phone for i in pair if i is not None)
    taken = {columns.phone, *columns.names, *labelled, *our_columns(columns.headers)}
    kept = []
    for index, (key, heading) in enumerate(zip(columns.keys, columns.headers, strict=False)):
        if index in taken or key in ("phone", "name"):
            continue
        if any(str(row.variables.get(key) or "").strip() for row in rows):
            kept.append([key, heading])
    return kept


def with_columns(before: Sequence[Sequence[str]] | None, added: Sequence[Sequence[str]]) -> list[list[str]]:
    """A blast's upload columns once another file's are added: each key once, first heading kept."""
    merged = [list(pair) for pair in before or ()]
    known = {key for key, _ in merged}
    merged += [list(pair) for pair in added if pair[0] not in known]
    return merged


def _insert_ignoring_duplicates(session: Session) -> Insert:
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
    if insert is None:
        raise NotImplementedError(f"recipient import is not written for {dialect}")
    # The table, not the mapped class: a Core executemany, without ORM bookkeeping per row.
    # Values shared by every row go in the statement, not in 100,000 parameter sets;
    # the database stamps the times (as the columns' server defaults do).
    shared = insert(BlastRecipient.__table__).values(
        status=Status.QUEUED.value, attempts=0, poll_failures=0,
        created_at=func.now(), updated_at=func.now(),
    )
    return shared.on_conflict_do_nothing(index_elements=["blast_id", "phone_number"])


def _recipient_values(blast_id: int, row: RowResult) -> dict[str, Any]:
    return {
        "blast_id": blast_id, "phone_number": row.phone, "contact_name": row.name,
        "variables": row.variables, "csv_line": row.line,
    }


def _recipient_count(session: Session, blast_id: int) -> int:
    query = select(func.count()).select_from(BlastRecipient).where(
        BlastRecipient.blast_id == blast_id
    )
    return int(session.scalar(query) or 0)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
