"""`python -m core import-csv`, run as a marketer would run it, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core.db import make_engine, transaction
from core.models import Blast, BlastRecipient
from tests.test_csv_import import EXPECTED_COUNTS, PNG, contact_rows, write_file, xlsx_bytes

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "DATA_DIR": str(tmp_path),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    return subprocess.run(
        [sys.executable, "-m", "core", "import-csv", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def stored(tmp_path: Path, blast_id: int) -> tuple[Blast, list[BlastRecipient]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        with transaction(engine) as s:
            blast = s.get(Blast, blast_id)
            assert blast is not None
            query = select(BlastRecipient).where(BlastRecipient.blast_id == blast_id)
            return blast, list(s.scalars(query.order_by(BlastRecipient.id)))
    finally:
        engine.dispose()


def test_a_tag_too_long_to_keep_is_refused_in_words(tmp_path: Path) -> None:
    """On PostgreSQL it had said "cannot use the database: check DATABASE_URL"."""
    path = write_file(tmp_path / "raya.csv", contact_rows("Siti"))
    result = run_cli(tmp_path, str(path), "--tag", "R" * 300)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: The campaign tag is 300 characters long; it can be at most 255."


def test_json_output_is_one_object_with_every_row(tmp_path: Path) -> None:
    path = write_file(tmp_path / "raya.csv", contact_rows("Siti"), delimiter=";",
                      encoding="utf-16-le", bom=b"\xff\xfe")
    result = run_cli(tmp_path, str(path), "--tag", "raya", "--follow-up-stage", "FU1",
                     "--message", "Salam {name} dari {bandar}", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["counts"] == EXPECTED_COUNTS
    assert out["recipients"] == 7
    assert (out["encoding"], out["delimiter"]) == ("UTF-16 LE", "semicolon")
    rows = {row["line"]: row for row in out["rows"]}
    assert sorted(rows) == list(range(2, 15))
    assert rows[6] == {"line": 6, "outcome": "duplicate", "phone": "+60123456789",
                       "raw_phone": "0123456789", "name": "Raj Kumar",
                       "reason": "same number as line 2", "duplicate_of": 2}
    assert rows[9]["outcome"] == "invalid"
    assert rows[9]["reason"] == "too short"
    assert "duplicate_of" not in rows[9]
    assert rows[10]["outcome"] == "blank"
    assert out["message_problems"] == []

    blast, recipients = stored(tmp_path, out["blast_id"])
    assert (blast.blast_tag, blast.follow_up_stage, blast.state) == ("raya", "FU1", "draft")
    assert blast.name == "raya.csv"
    assert blast.message_template == "Salam {name} dari {bandar}"
    assert [r.csv_line for r in recipients] == [2, 3, 4, 5, 7, 8, 11]
    assert recipients[0].contact_name == "Ahmad bin Ali"


def test_human_report_counts_then_problem_rows(tmp_path: Path) -> None:
    path = write_file(tmp_path / "contacts.csv", contact_rows("Siti"))
    result = run_cli(tmp_path, str(path), "--tag", "promo", "--name", "March promo",
                     "--message", "Hi {name}, from {alamat}")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Draft blast #1 “March promo”: 7 recipients." in out
    assert "Numbers from column “No. Telefon”, names from “Nama”" in out
    for outcome, count in EXPECTED_COUNTS.items():
        assert f"  {outcome:<11}{count:>7}" in out
    assert "  line 6: duplicate — same number as line 2 (+60123456789)" in out
    assert "  line 7: warning — not a mobile number (WhatsApp needs a mobile) (+60323456789)" in out
    assert "  line 9: invalid — too short (“12345”)" in out
    assert "  line 10: blank" in out
    assert "  line 14: invalid — no phone number" in out
    assert "line 4: {alamat} is empty for this row" in out  # the message would have a gap
    assert out.index("Rows to check:") < out.index("line 6:")
    blast, _ = stored(tmp_path, 1)
    assert blast.follow_up_stage == "Initial", "as the New blast page has it: the stage filter finds it"


def test_columns_chosen_on_the_command_line(tmp_path: Path) -> None:
    rows = [["Nama", "HP", "HP Suami"], ["Siti", "012-345 6789", "013-456 7890"]]
    path = write_file(tmp_path / "c.csv", rows)
    result = run_cli(tmp_path, str(path), "--tag", "t", "--phone-column", "HP Suami", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["phone_column"] == "HP Suami"
    assert out["rows"][0]["phone"] == "+60134567890"


def test_importing_the_same_file_twice_makes_two_drafts(tmp_path: Path) -> None:
    path = write_file(tmp_path / "c.csv", contact_rows("Siti"))
    first = json.loads(run_cli(tmp_path, str(path), "--tag", "t", "--json").stdout)
    second = json.loads(run_cli(tmp_path, str(path), "--tag", "t", "--json").stdout)
    assert second["blast_id"] == first["blast_id"] + 1
    assert len(stored(tmp_path, second["blast_id"])[1]) == 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (PNG, "error: This looks like a PNG image, not a CSV or Excel file"),
        (xlsx_bytes(), "error: This looks like an Excel workbook (.xlsx)"),
        (b"", "error: The file is empty."),
        (b"Name,Phone\r\n", "error: The file has a header row but no contacts below it."),
        (b"Nama,Alamat\r\nAli,KL\r\n", "error: No phone number column found. The columns are: "
                                       "“Nama”, “Alamat”."),
    ],
    ids=["png", "xlsx", "empty", "header-only", "no-phone-column"],
)
def test_a_file_that_cannot_be_read_exits_2_with_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    result = run_cli(tmp_path, str(path), "--tag", "t", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message)
    assert "Traceback" not in result.stderr


def test_a_list_with_no_one_to_send_to_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    path = write_file(tmp_path / "allbad.csv", [["Name", "Phone"], ["Ali", "12"], ["Siti", "abc"]])
    result = run_cli(tmp_path, str(path), "--tag", "t")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: There is no usable number in this file, so there is no one to send to."
    )
    assert "Draft blast" not in result.stdout
    assert "  line 2: invalid — too short (“12”)" in result.stdout, "the reason of every row"
    assert "  line 3: invalid — not a phone number (“abc”)" in result.stdout
    assert blasts(tmp_path) == []


def blasts(tmp_path: Path) -> list[Blast]:
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    try:
        with transaction(engine) as s:
            return list(s.scalars(select(Blast)))
    finally:
        engine.dispose()


def test_a_missing_file(tmp_path: Path) -> None:
    result = run_cli(tmp_path, str(tmp_path / "nope.csv"), "--tag", "t")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: There is no file at {tmp_path / 'nope.csv'}."


def test_a_file_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    path = write_file(tmp_path / "big.csv", [["Name", "Phone"]] + [["A", "0123456789"]] * 1000)
    result = run_cli(tmp_path, str(path), "--tag", "t", "--max-upload-mb", "0.01")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: The file is 14 KB; the limit is 0.01 MB. Split it into smaller files."
    )


def test_an_unknown_placeholder_stores_nothing(tmp_path: Path) -> None:
    path = write_file(tmp_path / "c.csv", contact_rows("Siti"))
    result = run_cli(tmp_path, str(path), "--tag", "t", "--message", "Hi {nmae}")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: {nmae} is not a column in the file. Did you mean {name} or {nama}?"
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with transaction(engine) as s:
        assert s.scalars(select(Blast)).all() == []
    engine.dispose()
