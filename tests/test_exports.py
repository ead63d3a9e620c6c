"""Exports open safely in a spreadsheet and keep every character."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from core.db import transaction
from core.exports import safe_cell, stage_csv, to_csv
from tests.support.factories import make_blast, make_recipient


@pytest.mark.parametrize(("value", "expected"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+60123", "'+60123"),
    ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tcmd", "'\tcmd"), ("Aisyah", "Aisyah"),
    ("", ""), (None, None), (5, 5),
])
def test_safe_cell(value, expected) -> None:
    assert safe_cell(value) == expected


def test_csv_keeps_unicode_and_sql_metacharacters_verbatim() -> None:
    data = to_csv([["Robert'); DROP TABLE blasts;--", "陈伟 🎉"]], columns=["a", "b"])
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows == [["a", "b"], ["Robert'); DROP TABLE blasts;--", "陈伟 🎉"]]


def test_stage_export_is_formula_safe(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s)
        make_recipient(s, blast, status="READ_ACK", contact_name="=cmd|' /C calc'!A0")
        make_recipient(s, blast, status="REPLIED", contact_name="Siti", reply_text="+ok")
        make_recipient(s, blast, status="QUEUED", contact_name="Not yet")
        blast_id = blast.id
    with transaction(engine) as s:
        data = stage_csv(s, blast_id=blast_id, selection="Read", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["name"] for r in rows] == ["'=cmd|' /C calc'!A0", "Siti"]
    assert rows[1]["reply_text"] == "'+ok"
    assert all(r["phone_number"].startswith("'+60") for r in rows)
    assert [(r["status"], r["status_in_words"]) for r in rows] == [
        ("READ_ACK", "Read (blue ticks)"), ("REPLIED", "Replied")]
