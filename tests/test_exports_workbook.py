"""Exports as a marketer opens them: the Replies list headed in the team's words, and every
workbook with a bold header kept in view, a filter, and columns wide enough to read."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.closing import read_sales
from core.csv_import import parse_csv
from core.db import transaction
from core.exports import EXPORT_COLUMNS, replies_csv, replies_xlsx, stage_csv, stage_xlsx
from core.models import RecipientReply
from core.reply_inbox import InboxFilter
from tests.support.factories import make_blast, make_recipient

KL = ZoneInfo("Asia/Kuala_Lumpur")
REPLIED_AT = dt.datetime(2026, 3, 2, 2, 30, 15, tzinfo=dt.UTC)  # 10:30:15 in Kuala Lumpur
FILTERS = InboxFilter(since=dt.date(2026, 3, 1), timezone=KL.key)
LONG_REPLY = "Berapa harga untuk dua kotak, dan boleh hantar ke Shah Alam minggu depan? " * 4
REPLIES_HEADINGS = ["Last replied", "Name", "Number", "Status", "Opted out", "Last reply", "Earlier replies",
                    "Replies", "Blast", "Tag", "Blast #"]


def _two_who_replied(engine: Engine) -> int:
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo")
        earlier = REPLIED_AT - dt.timedelta(hours=1)
        for phone, name, said, at in (("+601123456789", "Aisyah", "Ok", REPLIED_AT),
                                      ("+60123456780", "陈伟", LONG_REPLY, earlier)):
            person = make_recipient(s, blast, status="REPLIED", contact_name=name, phone_number=phone,
                                    reply_text=said, replied_at=at, read_timestamp=at)
            s.add(RecipientReply(recipient_id=person.id, text=said, replied_at=at))
        return blast.id


def _replies(export: Callable[..., bytes]) -> Callable[[Session, int], bytes]:
    return lambda s, _: export(s, filters=FILTERS, zone=KL)


def _stage(export: Callable[..., bytes]) -> Callable[[Session, int], bytes]:
    return lambda s, blast_id: export(s, blast_id=blast_id, selection="Replied", zone=KL)


def test_the_replies_list_is_headed_in_the_teams_words(engine: Engine) -> None:
    _two_who_replied(engine)
    with transaction(engine) as s:
        data = replies_csv(s, filters=FILTERS, zone=KL)
        book = replies_xlsx(s, filters=FILTERS, zone=KL)
    header, *rows = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    assert header == REPLIES_HEADINGS
    sheet = openpyxl.load_workbook(io.BytesIO(book)).active
    heading, first = sheet.iter_rows(max_row=2)
    assert [c.value for c in heading] == REPLIES_HEADINGS
    cells = dict(zip(REPLIES_HEADINGS, first, strict=True))
    assert (cells["Number"].value, cells["Number"].data_type) == ("+601123456789", "s"), "the +60 kept"
    assert cells["Last replied"].value == dt.datetime(2026, 3, 2, 10, 30, 15), "a real time, in Kuala Lumpur"
    assert rows[0][:3] == ["2026-03-02 10:30", "Aisyah", "'+601123456789"]


@pytest.mark.parametrize("export", [_stage(stage_xlsx), _replies(replies_xlsx)], ids=["stage", "replies"])
def test_a_workbook_keeps_its_bold_header_in_view_with_a_filter(engine: Engine, export) -> None:
    blast_id = _two_who_replied(engine)
    with transaction(engine) as s:
        sheet = openpyxl.load_workbook(io.BytesIO(export(s, blast_id))).active
    assert sheet.freeze_panes == "A2", "the header stays as the list scrolls"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}3", "over every row"
    assert all(cell.font.b for cell in sheet[1])


@pytest.mark.parametrize(("export", "time", "number", "reply"), [
    (_stage(stage_xlsx), "Read", "Number", "First reply"),
    (_replies(replies_xlsx), "Last replied", "Number", "Last reply"),
], ids=["stage", "replies"])
def test_a_workbooks_columns_are_wide_enough_to_read(engine: Engine, export, time, number, reply) -> None:
    """Excel's default width shows a date as ##### and cuts a number short."""
    blast_id = _two_who_replied(engine)
    with transaction(engine) as s:
        sheet = openpyxl.load_workbook(io.BytesIO(export(s, blast_id))).active
    width = {c.value: sheet.column_dimensions[c.column_letter].width for c in sheet[1]}
    assert width[time] >= len("2026-03-02 10:30:15")
    assert width[number] >= len("+601123456789")
    assert 40 <= width[reply] < len(LONG_REPLY), "a long reply widens its column, only so far"
    assert all(w >= len(heading) for heading, w in width.items()), "each heading reads whole"


def test_the_stage_export_keeps_the_headings_files_are_read_back_by(engine: Engine) -> None:
    """A stage's list goes back in as a list of sales, or a new blast's people: its headings
    are what those find the number by."""
    blast_id = _two_who_replied(engine)
    with transaction(engine) as s:
        data = stage_csv(s, blast_id=blast_id, selection="Replied", zone=KL)
        book = stage_xlsx(s, blast_id=blast_id, selection="Replied", zone=KL)
    assert next(csv.reader(io.StringIO(data.decode("utf-8-sig")))) == list(EXPORT_COLUMNS)
    assert read_sales(book, region="MY", filename="replied.xlsx").phone_column == "Number"
    again = parse_csv(data, filename="replied.csv", region="MY")
    assert (again.phone_column, again.name_column, len(again.recipients)) == ("Number", "Name", 2)


@pytest.mark.parametrize("export", [replies_csv, replies_xlsx])
def test_the_replies_list_goes_back_in_as_a_list_of_sales(engine: Engine, export) -> None:
    _two_who_replied(engine)
    with transaction(engine) as s:
        data = export(s, filters=FILTERS, zone=KL)
    name = "replies.csv" if export is replies_csv else "replies.xlsx"
    sales = read_sales(data, region="MY", filename=name)
    assert sales.phone_column == "Number"
    assert sorted(line.phone for line in sales.lines) == ["+601123456789", "+60123456780"]


@pytest.mark.parametrize(("export", "column", "several"), [
    (_stage(stage_xlsx), "Later replies", "Berapa?\n2 boxes"),
    (_replies(replies_xlsx), "Earlier replies", "Ok\nBerapa?"),
], ids=["stage", "replies"])
def test_replies_over_several_lines_wrap_in_a_row_a_few_lines_tall(
    engine: Engine, export, column: str, several: str,
) -> None:
    """Earlier or later replies, one a line, showed run together: no cell wrapped its text."""
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo")
        for name, said, hour in (("Aisyah", ["Ok", "Berapa?", "2 boxes"], 5),
                                 ("Ben", ["Nak"], 4),
                                 ("Chong", [f"Soalan {n}" for n in range(20)], 3)):
            person = make_recipient(s, blast, status="REPLIED", contact_name=name, reply_text=said[0])
            for minute, text in enumerate(said):
                s.add(RecipientReply(recipient_id=person.id, text=text,
                                     replied_at=REPLIED_AT + dt.timedelta(hours=hour, minutes=minute)))
        blast_id = blast.id
    with transaction(engine) as s:
        sheet = openpyxl.load_workbook(io.BytesIO(export(s, blast_id))).active
    header, *rows = sheet.iter_rows()
    headings = [c.value for c in header]
    at, name = headings.index(column), headings.index("Name")
    named = {row[name].value: row for row in rows}
    aisyah, ben, chong = named["Aisyah"], named["Ben"], named["Chong"]
    assert aisyah[at].value == several and aisyah[at].alignment.wrap_text, "its lines one under another"
    assert not any(c.alignment.wrap_text for c in ben), "nothing over several lines: nothing wraps"
    assert not any(c.alignment.wrap_text for c in header)
    height = {name: sheet.row_dimensions[r[0].row].height for name, r in named.items()}
    assert height["Aisyah"] == 30, "two lines tall"
    assert height["Ben"] is None, "an ordinary row"
    assert chong[at].value.count("\n") == 18 and 30 < height["Chong"] <= 90, "a few lines, not nineteen"
