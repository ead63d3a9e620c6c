"""`python -m core import-csv`: a contact list to a draft blast, with the row-by-row report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from core import templates
from core.cli import SUMMARIES, database_engine
from core.config import get_settings
from core.csv_import import (
    DEFAULT_MAX_UPLOAD_MB,
    DELIMITER_NAMES,
    ImportReport,
    Outcome,
    RowResult,
    create_draft_blast_from_import,
    import_report,
)
from core.csv_import.reading import check_size
from core.db import migrate, transaction
from core.errors import BadCsv
from core.funnel import INITIAL_STAGE
from core.models import Blast
from core.words import plural

# As the New blast page says it: a list with no one to send to makes no blast.
NO_ONE_TO_SEND = "There is no usable number in this file, so there is no one to send to."


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-csv", help=SUMMARIES["import-csv"],
        description="Read a CSV of contacts, report every row, and store the usable "
        "numbers as a draft blast.",
    )
    parser.add_argument("file", type=Path, help="the CSV file or Excel workbook (.xlsx)")
    parser.add_argument("--tag", required=True, help="the blast's tag, for filtering")
    parser.add_argument("--follow-up-stage", default=INITIAL_STAGE,
                        help=f"the follow-up stage, e.g. 'Follow-up 1' (default: {INITIAL_STAGE}, as "
                        "the New blast page has it: the Overview's stage filter finds it there)")
    parser.add_argument("--message", help="the message template, e.g. 'Hi {name}'")
    parser.add_argument("--name", help="the blast's name (default: the file name)")
    parser.add_argument("--phone-column", help="the column holding the numbers")
    parser.add_argument("--name-column", help="the column holding the names")
    parser.add_argument("--sheet", help="the sheet of an Excel workbook to read (default: the "
                        "first with phone numbers)")
    parser.add_argument("--max-upload-mb", type=float, default=None,
                        help="largest file accepted (default: the MAX_UPLOAD_MB setting, "
                        f"{DEFAULT_MAX_UPLOAD_MB:g} MB unless set)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.max_upload_mb is None:
        args.max_upload_mb = get_settings().max_upload_mb
    data = _read_file(args.file, args.max_upload_mb)
    settings = get_settings()
    engine = database_engine(settings.sqlalchemy_url, shared=False)
    try:
        migrate(engine)
        with transaction(engine) as session:
            report = import_report(
                session, data, filename=args.file.name, phone_column=args.phone_column,
                name_column=args.name_column, region=settings.phone_region,
                max_upload_mb=args.max_upload_mb, sheet=args.sheet,
            )
            if not report.recipients:
                if not args.json:  # every row with its reason, then the refusal
                    print("\n".join(_report_lines(_report_summary(report, args.message), report)))
                raise BadCsv(NO_ONE_TO_SEND)
            blast = create_draft_blast_from_import(
                session, report=report, tag=args.tag, follow_up_stage=args.follow_up_stage,
                message_template=args.message, name=args.name,
            )
    finally:
        engine.dispose()
    summary = _summary(blast, report, args.message)
    print(json.dumps(summary, ensure_ascii=False) if args.json else _human(summary, report))
    return 0


def _read_file(path: Path, max_upload_mb: float) -> bytes:
    try:
        if not path.is_file():
            raise BadCsv(f"There is no file at {path}.")
        check_size(path.stat().st_size, max_upload_mb=max_upload_mb)  # before reading it all
        return path.read_bytes()
    except OSError as exc:
        raise BadCsv(f"{path} cannot be read: {exc.strerror or exc}.") from None


def _summary(blast: Blast, report: ImportReport, message: str | None) -> dict[str, Any]:
    return {
        "blast_id": blast.id,
        "blast_name": blast.name,
        "recipients": blast.total_recipients,
        "skipped_opted_out": blast.skipped_opted_out,
        **_report_summary(report, message),
    }


def _report_summary(report: ImportReport, message: str | None) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "phone_column": report.phone_column,
        "name_column": report.name_column,
        "encoding": report.encoding,
        "delimiter": DELIMITER_NAMES.get(report.delimiter, report.delimiter),
        "sheet": report.sheet,
        "notes": report.notes,
        "counts": report.counts,
        "rows": [_row(row) for row in report.rows],
    }
    if message is not None:
        summary["message_problems"] = _message_problems(message, report.recipients)
    return summary


def _row(row: RowResult) -> dict[str, Any]:
    out = row.as_dict()
    if row.outcome is not Outcome.DUPLICATE:
        out.pop("duplicate_of")
    return out


def _message_problems(message: str, rows: list[RowResult]) -> list[dict[str, Any]]:
    """Recipients whose message would go out with a blank where a value should be."""
    parsed = templates.parse(message)
    found = []
    for row in rows:
        rendered = templates.render(parsed, row.variables)
        if not rendered.ok:
            found.append({"line": row.line, "problems": list(rendered.problems)})
    return found


def _human(summary: dict[str, Any], report: ImportReport) -> str:
    return "\n".join([
        f"Draft blast #{summary['blast_id']} “{summary['blast_name']}”: "
        f"{plural(summary['recipients'], 'recipient')}.",
        *_report_lines(summary, report),
    ])


def _report_lines(summary: dict[str, Any], report: ImportReport) -> list[str]:
    lines = [
        f"Numbers from column “{summary['phone_column']}”"
        + (f", names from “{summary['name_column']}”" if summary["name_column"] else "")
        + (f"; read from the sheet “{report.sheet}” of an Excel workbook." if report.sheet
           else f"; read as {summary['encoding']}, {summary['delimiter']}-separated."),
        *summary["notes"],
        "",
        *(f"  {outcome:<11}{count:>7}" for outcome, count in summary["counts"].items()),
        f"  {'rows':<11}{len(report.rows):>7}",
    ]
    problems = report.problems
    if problems:
        lines += ["", "Rows to check:"]
        lines += [f"  line {row.line}: {_describe(row)}" for row in problems]
    message_problems = summary.get("message_problems", [])
    if message_problems:
        lines += ["", "Messages that would go out with a blank:"]
        lines += [f"  line {p['line']}: {'; '.join(p['problems'])}" for p in message_problems]
    return lines


def _describe(row: RowResult) -> str:
    if row.outcome is Outcome.BLANK:
        return "blank"
    shown = row.phone or (f"“{row.raw_phone}”" if row.raw_phone else "")
    return f"{row.outcome} — {row.reason}" + (f" ({shown})" if shown else "")
