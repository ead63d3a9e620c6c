"""CSV import: an uploaded contact list to a row-by-row report, and the report to a draft blast.

`parse_csv` reads and checks a file (CSV, or an Excel .xlsx workbook) without a database;
`import_report` also marks numbers on the opt-out list; `create_draft_blast_from_import` and
`add_recipients` store the usable rows. Template variables per recipient: every column under its
`core.templates.column_key`, plus `name` (the contact's name) and `phone` (E.164).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy.orm import Session

from core import phones
from core.config import get_settings
from core.csv_import.columns import ColumnNotFound, Columns, find_columns
from core.csv_import.reading import DEFAULT_MAX_UPLOAD_MB, DELIMITER_NAMES, read_table
from core.csv_import.report import (
    ImportReport,
    Outcome,
    RowResult,
    classify,
    safe_cell,
)
from core.csv_import.sheet_layout import UnreadCellsNote
from core.csv_import.storage import (
    Overlap,
    add_recipients,
    create_draft_blast_from_import,
    opted_out_among,
    recent_blasts_with,
)
from core.errors import BadCsv

# What an uploader takes: workbooks and text tables (.xls only to say how to convert it).
UPLOAD_TYPES = ("xlsx", "xlsm", "xls", "csv", "txt", "tsv")

__all__ = [
    "DEFAULT_MAX_UPLOAD_MB",
    "DELIMITER_NAMES",
    "BadCsv",
    "ColumnNotFound",
    "Columns",
    "ImportReport",
    "Outcome",
    "Overlap",
    "RowResult",
    "UPLOAD_TYPES",
    "add_recipients",
    "create_draft_blast_from_import",
    "import_report",
    "opted_out_among",
    "parse_csv",
    "recent_blasts_with",
    "safe_cell",
]


def parse_csv(
    data: bytes, *, filename: str | None = None, phone_column: str | None = None,
    name_column: str | None = None, region: str = phones.DEFAULT_REGION,
    max_upload_mb: float | None = None, opted_out: Collection[str] = (), sheet: str | None = None,
) -> ImportReport:
    """Read an uploaded file and judge every row; raises BadCsv when it cannot be read.

    `max_upload_mb` None means the MAX_UPLOAD_MB setting: a caller that forgets the limit
    still gets it. `sheet` is a workbook's sheet a person chose (None: the first with contacts).
    """
    if max_upload_mb is None:
        max_upload_mb = get_settings().max_upload_mb
    table = read_table(data, max_upload_mb=max_upload_mb, sheet=sheet, filename=filename)
    try:
        columns = find_columns(table.rows, phone_column=phone_column, name_column=name_column,
                               region=region)
    except ColumnNotFound as not_found:
        raise _with_unread_cells(not_found, table.notes) from None
    rows = classify(table.rows, columns, region=region)
    if not any(row.outcome != Outcome.BLANK for row in rows):
        raise BadCsv("The file has a header row but no contacts below it.")
    report = ImportReport(rows=rows, columns=columns, encoding=table.encoding,
                          delimiter=table.delimiter, filename=filename,
                          notes=table.notes + _column_notes(columns, rows), sheet=table.sheet)
    return report.with_opt_outs(opted_out)


def import_report(
    session: Session, data: bytes, *, filename: str | None = None,
    phone_column: str | None = None, name_column: str | None = None,
    region: str = phones.DEFAULT_REGION, max_upload_mb: float | None = None, sheet: str | None = None,
) -> ImportReport:
    """`parse_csv`, with the numbers on the opt-out list marked `suppressed`."""
    report = parse_csv(data, filename=filename, phone_column=phone_column, name_column=name_column,
                       region=region, max_upload_mb=max_upload_mb, sheet=sheet)
    numbers = [row.phone for row in report.recipients if row.phone]
    return report.with_opt_outs(opted_out_among(session, numbers))


def _with_unread_cells(not_found: ColumnNotFound, notes: Sequence[str]) -> ColumnNotFound:
    """The error, saying which of a sheet's cells read as empty (formulas whose result was not
    saved, errors): the phone numbers may be those cells, and the page shows no notes with it."""
    unread = [note for note in notes if isinstance(note, UnreadCellsNote)]
    if not unread:
        return not_found
    return ColumnNotFound(" ".join([not_found.message, *unread]), headers=not_found.headers)


def _column_notes(columns: Columns, rows: Sequence[RowResult]) -> list[str]:
    notes = []
    if columns.header_index is None:
        # Guessed with no header to go by: the first few shown, so a wrong column is seen before
        # {name} goes out.
        first = [row.name for row in rows if row.name][:3]
        names = (f", names from {columns.name_header} ({', '.join(first)}…)" if columns.name_header and first
                 else "")
        notes.append(f"The file has no header row; numbers were taken from "
                     f"{columns.phone_header}{names}.")
    elif columns.header_index > 0:
        notes.append(f"The header is on line {columns.header_index + 1}; the lines above it "
                     "were skipped.")
    if columns.phone_note:
        notes.append(columns.phone_note)
    return notes
