"""The row-by-row import report: every row of the file with its outcome, and its CSV export.

Line numbers are spreadsheet rows, as Excel numbers the file once opened (the header is
normally line 1): a cell holding a line break stays on its row. Notes about quote marks and
encodings name the lines of the file itself, as a text editor shows them. A workbook's lines
are its sheet's row numbers. Blank rows below
the header are listed with outcome `blank`; rows above the header (titles) are not contacts and
are only counted in a note.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import phones
from core.csv_import.columns import Columns
from core.exports import safe_cell

NAME_MAX_CHARS = 255  # blast_recipients.contact_name


class Outcome(enum.StrEnum):
    VALID = "valid"
    WARNING = "warning"  # usable, with something to check: not a mobile, another country…
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    SUPPRESSED = "suppressed"  # the number is on the opt-out list
    BLANK = "blank"


RECIPIENT_OUTCOMES = frozenset({Outcome.VALID, Outcome.WARNING})
OPTED_OUT_REASON = "opted out: this number asked not to be messaged"


class Records(list[Sequence[str]]):
    """A file's records with the number each is reported under (a sheet's row number; for a
    text file, the line each starts on while it is read, then the row Excel would show it
    as). `problems` (why a record cannot be used) and `warnings` (what to check in it) are
    keyed by record index."""

    def __init__(self, rows: Iterable[Sequence[str]], lines: Sequence[int]) -> None:
        super().__init__(rows)
        self.lines = lines
        self.problems: dict[int, str] = {}
        self.warnings: dict[int, str] = {}


@dataclass(slots=True)
class RowResult:
    line: int
    outcome: Outcome
    raw_phone: str = ""
    phone: str | None = None  # E.164
    name: str | None = None
    reason: str | None = None
    duplicate_of: int | None = None
    variables: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The row for JSON output (variables left out: they can be large)."""
        return {
            "line": self.line, "outcome": str(self.outcome), "phone": self.phone,
            "raw_phone": self.raw_phone, "name": self.name, "reason": self.reason,
            "duplicate_of": self.duplicate_of,
        }


@dataclass
class ImportReport:
    rows: list[RowResult]
    columns: Columns
    encoding: str
    delimiter: str
    filename: str | None = None
    notes: list[str] = field(default_factory=list)
    sheet: str | None = None  # the worksheet read, when the upload is an Excel workbook

    @property
    def counts(self) -> dict[str, int]:
        """Rows per outcome, every outcome present, in a fixed order."""
        counts = dict.fromkeys((str(o) for o in Outcome), 0)
        for row in self.rows:
            counts[row.outcome] += 1
        return counts

    @property
    def recipients(self) -> list[RowResult]:
        """The rows that become recipients: one per number, valid or with a warning."""
        return [row for row in self.rows if row.outcome in RECIPIENT_OUTCOMES]

    @property
    def problems(self) -> list[RowResult]:
        return [row for row in self.rows if row.outcome is not Outcome.VALID]

    @property
    def variable_names(self) -> list[str]:
        """The placeholders a message template can use for this file."""
        names = set(self.columns.keys) | {"phone"}
        if self.columns.names:
            names.add("name")
        return sorted(names)

    @property
    def phone_column(self) -> str:
        return self.columns.phone_header

    @property
    def name_column(self) -> str | None:
        return self.columns.name_header

    def with_opt_outs(self, opted_out: Collection[str]) -> ImportReport:
        """The same report with numbers on the opt-out list marked `suppressed`."""
        if not opted_out:
            return self
        rows = [
            dataclasses.replace(row, outcome=Outcome.SUPPRESSED, reason=OPTED_OUT_REASON)
            if row.outcome in RECIPIENT_OUTCOMES and row.phone in opted_out
            else row
            for row in self.rows
        ]
        return dataclasses.replace(self, rows=rows)

    def to_csv(self) -> str:
        """The report as CSV, safe to open in a spreadsheet (no cell runs as a formula)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["line", "outcome", "phone", "phone as typed", "name", "reason",
                         "duplicate of line"])
        for row in self.rows:
            writer.writerow([safe_cell(v) for v in (
                row.line, row.outcome, row.phone, row.raw_phone, row.name, row.reason,
                row.duplicate_of,
            )])
        return out.getvalue()




def classify(
    rows: Sequence[Sequence[str]], columns: Columns, *, region: str = phones.DEFAULT_REGION
) -> list[RowResult]:
    """One result per record below the header, each with exactly one outcome.

    Lines are record numbers unless `rows` are `Records`, which also say why some cannot be
    used and what to check in others.
    """
    start = 0 if columns.header_index is None else columns.header_index + 1
    width = len(columns.headers)
    lines: Sequence[int] = range(1, len(rows) + 1)
    problems: dict[int, str] = {}
    cautions: dict[int, str] = {}
    if isinstance(rows, Records):
        lines, problems, cautions = rows.lines, rows.problems, rows.warnings
    first_line: dict[str, int] = {}
    results = []
    normalise = phones.normalise
    for index in range(start, len(rows)):
        cells = rows[index]
        line = lines[index]
        raw = cells[columns.phone] if columns.phone < len(cells) else ""
        if not raw.strip() and not any(c.strip() for c in cells):  # phone first: cheaper
            results.append(RowResult(line=line, outcome=Outcome.BLANK))
            continue
        name = _name(cells, columns.names)
        problem = problems.get(index) or _extra_cells(cells, width)
        if problem:
            result = RowResult(line, Outcome.INVALID, raw, None, name, problem)
        else:
            checked = normalise(raw, region)
            e164 = checked.e164
            if e164 is None:
                result = RowResult(line, Outcome.INVALID, raw, None, name, checked.reason)
            elif e164 in first_line:
                result = RowResult(line, Outcome.DUPLICATE, raw, e164, name,
                                   f"same number as line {first_line[e164]}", first_line[e164])
            else:
                first_line[e164] = line
                result = _recipient(line, cells, raw, e164, name, checked, columns)
        if cautions and index in cautions:
            _add_warning(result, cautions[index])
        results.append(result)
    return results


def _add_warning(result: RowResult, warning: str) -> None:
    """A usable row stays usable, with the warning; any other keeps its outcome."""
    if result.outcome is Outcome.VALID:
        result.outcome = Outcome.WARNING
    result.reason = f"{result.reason}; {warning}" if result.reason else warning


def _recipient(
    line: int, cells: Sequence[str], raw: str, e164: str, name: str | None,
    checked: phones.PhoneResult, columns: Columns,
) -> RowResult:
    outcome, reason = Outcome.VALID, None
    if checked.warnings:
        outcome, reason = Outcome.WARNING, "; ".join(checked.warnings)
    variables = dict(zip(columns.keys, cells, strict=False))
    variables["phone"] = e164
    if columns.names:
        variables["name"] = name or ""
    return RowResult(line, outcome, raw, e164, name, reason, None, variables)


def _name(cells: Sequence[str], indexes: Sequence[int]) -> str | None:
    if len(indexes) == 1 and indexes[0] < len(cells):  # the usual case, once per row
        return cells[indexes[0]].strip()[:NAME_MAX_CHARS] or None
    parts = [cells[i].strip() for i in indexes if i < len(cells) and cells[i].strip()]
    return " ".join(parts)[:NAME_MAX_CHARS] if parts else None


def _extra_cells(cells: Sequence[str], width: int) -> str | None:
    """Why a row with more cells than the header cannot be trusted, or None."""
    if len(cells) <= width or not any(c.strip() for c in cells[width:]):
        return None
    return (f"this row has {len(cells)} cells but the header has {width}; a comma or "
            "semicolon inside a name or address needs quotes around that cell")
