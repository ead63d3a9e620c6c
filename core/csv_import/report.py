"""The row-by-row import report: every row of the file with its outcome, and its CSV export.

Line numbers are spreadsheet rows, as Excel numbers the file once opened (the header is
normally line 1): a cell holding a line break stays on its row. Notes about quote marks and
encodings name the lines of the file itself, as a text editor shows them. A workbook's lines
are its sheet's row numbers. Blank rows below
the header are listed with outcome `blank` (not a sheet's row whose cells only read as empty,
such as formulas whose result was not saved: it says why); rows above the header (titles) are
not contacts and are only counted in a note.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import functools
import io
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core import phones
from core.csv_import.columns import Columns, header_words, phone_rank
from core.exports import as_written, safe_cell

NAME_MAX_CHARS = 255  # blast_recipients.contact_name
# A phone's label in Google Contacts ("Mobile", "Work", "Home") that makes it the one to message.
MOBILE_LABELS = frozenset({"mobile", "cell", "handphone", "hp", "whatsapp", "bimbit"})


class Outcome(enum.StrEnum):
    VALID = "valid"
    WARNING = "warning"  # usable, with something to check: not a mobile, another country…
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    HIDDEN = "hidden"  # a row hidden in Excel (by a filter, say): left out, whatever it holds
    SUPPRESSED = "suppressed"  # the number is on the opt-out list
    BLANK = "blank"


RECIPIENT_OUTCOMES = frozenset({Outcome.VALID, Outcome.WARNING})
OPTED_OUT_REASON = "opted out: this number asked not to be messaged"


class Records(list[Sequence[str]]):
    """A file's records with the number each is reported under (a sheet's row number; for a
    text file, the line each starts on while it is read, then the row Excel would show it
    as). `problems` (why a record cannot be used) and `warnings` (what to check in it) are
    keyed by record index; `hidden` holds those of the problems that are rows hidden in Excel."""

    def __init__(self, rows: Iterable[Sequence[str]], lines: Sequence[int]) -> None:
        super().__init__(rows)
        self.lines = lines
        self.problems: dict[int, str] = {}
        self.warnings: dict[int, str] = {}
        self.hidden: set[int] = set()


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
    hidden: set[int] = set()
    if isinstance(rows, Records):
        lines, problems, cautions, hidden = rows.lines, rows.problems, rows.warnings, rows.hidden
    first_line: dict[str, int] = {}
    results = []
    normalise = phones.normalise
    for index in range(start, len(rows)):
        cells = rows[index]
        line = lines[index]
        if columns.each_phone:
            raw = _contact_phone(cells, columns.each_phone, region)
        else:
            raw = cells[columns.phone] if columns.phone < len(cells) else ""
        # Phone first: cheaper. A row whose cells read as empty but with something to say about
        # it (a sheet's formulas whose result was not saved) is not blank: it says why.
        if not raw.strip() and not any(c.strip() for c in cells) and index not in cautions:
            results.append(RowResult(line=line, outcome=Outcome.BLANK))
            continue
        name = _name(cells, columns.names)
        cut = name is not None and len(name) > NAME_MAX_CHARS
        if cut:
            name = name[:NAME_MAX_CHARS]
        problem = problems.get(index)
        extra = _extra_cells(cells, width)
        if problem:
            outcome = Outcome.HIDDEN if index in hidden else Outcome.INVALID
            result = RowResult(line, outcome, raw, None, name, problem)
        else:
            checked = normalise(raw, region)
            e164 = checked.e164
            if extra and (e164 is None or _split(cells, width, region)):
                result = RowResult(line, Outcome.INVALID, raw, None, name, _split_row(cells, width))
            elif e164 is None:
                reason = _moved(cells, columns, region) or checked.reason
                result = RowResult(line, Outcome.INVALID, raw, None, name, reason)
            elif e164 in first_line:
                result = RowResult(line, Outcome.DUPLICATE, raw, e164, name,
                                   f"same number as line {first_line[e164]}", first_line[e164])
            else:
                first_line[e164] = line
                result = _recipient(line, cells, raw, e164, name, checked, columns)
        if extra and result.outcome not in (Outcome.INVALID, Outcome.HIDDEN):
            _add_warning(result, _left_out(cells, width))
        if cautions and index in cautions:
            _add_warning(result, cautions[index])
        if cut and result.outcome in (Outcome.VALID, Outcome.WARNING):
            _add_warning(result, f"the name is over {NAME_MAX_CHARS} characters long: only its first "
                         f"{NAME_MAX_CHARS} are kept")
        results.append(result)
    return results


def _contact_phone(cells: Sequence[str], each_phone: Sequence[tuple[int, int | None]], region: str) -> str:
    """A contact's number of those in its phone columns (value, label): the one labelled as a
    mobile, else the first mobile number, else the first typed."""
    typed = [(cells[value], cells[label] if label is not None and label < len(cells) else "")
             for value, label in each_phone if value < len(cells) and cells[value].strip()]
    labelled = next((number for number, label in typed if _says_mobile(label)), None)
    if labelled is not None:
        return labelled
    mobile = next((number for number, _ in typed if phones.normalise(number, region).is_mobile), None)
    return mobile or (typed[0][0] if typed else "")


@functools.lru_cache(maxsize=256)
def _says_mobile(label: str) -> bool:
    """Whether a Google Contacts label ("Mobile", "Work") names a mobile: labels repeat down a
    file, so each is read once."""
    return bool(MOBILE_LABELS & set(header_words(label).split()))


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
    # A cell one of our CSV downloads protected from Excel comes back as it was shown.
    variables = dict(zip(columns.keys, map(as_written, cells), strict=False))
    variables["phone"] = e164
    if columns.names:
        variables["name"] = name or ""
    return RowResult(line, outcome, raw, e164, name, reason, None, variables)


def _name(cells: Sequence[str], indexes: Sequence[int]) -> str | None:
    if len(indexes) == 1 and indexes[0] < len(cells):  # the usual case, once per row
        return as_written(cells[indexes[0]].strip()) or None
    parts = [as_written(cells[i].strip()) for i in indexes if i < len(cells) and cells[i].strip()]
    return " ".join(parts) if parts else None


def _extra_cells(cells: Sequence[str], width: int) -> bool:
    """Whether a row has filled cells beyond the header's last column.

    Its number still under the phone column, and no other number beyond the header, the row is
    used, with a warning: a note typed in the next column ("called 1/3"). Otherwise a comma or
    semicolon inside a cell split it, and its cells moved.
    """
    return len(cells) > width and any(c.strip() for c in cells[width:])


def _split(cells: Sequence[str], width: int, region: str) -> bool:
    """Whether a row with cells beyond the header was split by a comma inside a cell, rather
    than given a note in the next column: a number beyond the header, or a cell that starts
    with a space, as the text after "Tan, Ah Kow" or "12 Jalan Bunga, Taman Melati" does
    (spreadsheets write no space after their own commas). Its cells moved: used, their values
    would go under the wrong columns into the message."""
    return (any(phones.normalise(cell, region).ok for cell in cells[width:])
            or any(cell[:1].isspace() and cell.strip() for cell in cells))


def _split_row(cells: Sequence[str], width: int) -> str:
    return (f"this row has {len(cells)} cells but the header has {width}; a comma or "
            "semicolon inside a name or address needs quotes around that cell")


def _left_out(cells: Sequence[str], width: int) -> str:
    beyond = " ".join(c.strip() for c in cells[width:] if c.strip())
    return (f"this row has {len(cells)} cells but the header has {width}; “{beyond}”, beyond the "
            "last column, was left out")


def _moved(cells: Sequence[str], columns: Columns, region: str) -> str | None:
    """Why a row's phone cell holds text, when its number is a cell or two to the right, under a
    column that is not for phone numbers: a comma inside the name split it ("Lim, Mr")."""
    phone = columns.phone
    if columns.header_index is None or columns.each_phone or phone >= len(cells) or not cells[phone].strip():
        return None
    for moved_to in range(phone + 1, min(phone + 3, len(cells))):
        header = columns.headers[moved_to] if moved_to < len(columns.headers) else ""
        if phone_rank(header) is None and phones.normalise(cells[moved_to], region).ok:
            return (f"the cells of this row have moved: a comma or semicolon inside a name or "
                    f"address split it, so “{cells[phone].strip()}” is under "
                    f"“{columns.phone_header}” and the number under “{header or 'no header'}”; "
                    "put quotes around that cell")
    return None
