"""Exports open safely in a spreadsheet and keep every character."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from core.db import transaction
from core.exports import EXPORT_COLUMNS, safe_cell, stage_csv, stage_xlsx, to_csv
from core.models import BlastRecipient
from tests.support.factories import make_blast, make_recipient


@pytest.mark.parametrize(("value", "expected"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+60123", "'+60123"),
    ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tcmd", "'\tcmd"), ("Aisyah", "Aisyah"),
    ("", ""), (None, None), (5, 5),
])
def test_safe_cell(value, expected) -> None:
    assert safe_cell(value) == expected


@pytest.mark.parametrize(("value", "written"), [
    ("0312345678", "'0312345678"),  # an office line: Excel drops the 0
    ("01000", "'01000"),  # a postcode
    ("00", "'00"),
    (" 0123 ", "' 0123 "),
    ("900101145678", "'900101145678"),  # an IC number: 9.00101E+11
    ("60387654321", "'60387654321"),  # 6.04E+10 in a column of Excel's standard width
    ("123456789", "'123456789"),
    ("4111111111111111", "'4111111111111111"),  # past 15 digits Excel turns the rest to zeros
    ("12345678", "12345678"), ("42", "42"), ("0", "0"),  # Excel shows these as written
    ("0.5", "0.5"), ("12 345", "12 345"), ("RM 0123", "RM 0123"), ("0123-456", "0123-456"),
    ("+60123456789", "'+60123456789"), ("", ""),
    (900101145678, "900101145678"), (42, "42"), (0.5, "0.5"),  # real numbers stay numbers
])
def test_csv_keeps_text_excel_would_read_as_a_different_number_as_written(value, written) -> None:
    data = to_csv([[value]], columns=["Cell"])
    assert list(csv.reader(io.StringIO(data.decode("utf-8-sig")))) == [["Cell"], [written]]


def test_the_two_exports_say_whose_reply_their_time_is() -> None:
    """A blast's export has the time of the first reply, the Replies page's that of the latest:
    both were headed "Replied"."""
    from core.exports import REPLY_EXPORT_COLUMNS

    assert EXPORT_COLUMNS[EXPORT_COLUMNS.index("First reply") - 1] == "First replied"
    assert REPLY_EXPORT_COLUMNS[0] == "Last replied" and "Last reply" in REPLY_EXPORT_COLUMNS
    assert "Replied" not in (*EXPORT_COLUMNS, *REPLY_EXPORT_COLUMNS)


def test_csv_headings_are_formula_safe_too() -> None:
    data = to_csv([["x"]], columns=["=HYPERLINK(\"http://x\")"])
    assert next(csv.reader(io.StringIO(data.decode("utf-8-sig")))) == ["'=HYPERLINK(\"http://x\")"]


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
    assert [r["Name"] for r in rows] == ["'=cmd|' /C calc'!A0", "Siti"]
    assert rows[1]["First reply"] == "'+ok"
    assert all(r["Number"].startswith("'+60") for r in rows)
    assert [(r["Status code"], r["Status"]) for r in rows] == [
        ("READ_ACK", "Read (blue ticks)"), ("REPLIED", "Replied")]


def test_stage_export_for_excel_keeps_text_as_text(engine: Engine) -> None:
    import openpyxl

    with transaction(engine) as s:
        blast = make_blast(s)
        read_at = dt.datetime(2026, 3, 2, 2, 30, 15, 123_456, tzinfo=dt.UTC)
        make_recipient(s, blast, status="READ_ACK", contact_name="=cmd|' /C calc'!A0",
                       phone_number="+601123456789", read_timestamp=read_at)
        make_recipient(s, blast, status="QUEUED", contact_name="Not yet")
        blast_id = blast.id
    with transaction(engine) as s:
        data = stage_xlsx(s, blast_id=blast_id, selection="Read", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    header, *rows = list(sheet.iter_rows())
    assert [c.value for c in header] == list(EXPORT_COLUMNS)
    [row] = rows
    cells = dict(zip(EXPORT_COLUMNS, row, strict=True))
    assert (cells["Number"].value, cells["Number"].data_type) == ("+601123456789", "s")
    assert (cells["Name"].value, cells["Name"].data_type) == ("=cmd|' /C calc'!A0", "s"), "never a formula"
    assert cells["Status"].value == "Read (blue ticks)"
    assert cells["Read"].value == dt.datetime(2026, 3, 2, 10, 30, 15)  # Kuala Lumpur, to the second


def test_a_control_character_in_a_name_or_reply_does_not_stop_the_excel_file(engine: Engine) -> None:
    """A vertical tab pasted from Word: openpyxl refused the whole workbook for it."""
    import openpyxl

    with transaction(engine) as s:
        blast = make_blast(s)
        make_recipient(s, blast, status="REPLIED", contact_name="Ali\x0bBaba", reply_text="ok\x1b thanks")
        blast_id = blast.id
    with transaction(engine) as s:
        data = stage_xlsx(s, blast_id=blast_id, selection="Everyone", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    header, row = openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True)
    cells = dict(zip(header, row, strict=True))
    assert (cells["Name"], cells["First reply"]) == ("Ali\ufffdBaba", "ok\ufffd thanks")
    with transaction(engine) as s:  # the CSV keeps the character as it came
        assert b"Ali\x0bBaba" in stage_csv(s, blast_id=blast_id, selection="Everyone", zone=dt.UTC)


@pytest.mark.parametrize("export", [stage_csv, stage_xlsx])
def test_later_replies_are_exported_one_per_line(engine: Engine, export) -> None:
    import openpyxl

    from core.models import RecipientReply

    with transaction(engine) as s:
        blast = make_blast(s)
        person = make_recipient(s, blast, status="REPLIED", reply_text="Ok")
        make_recipient(s, blast, status="REPLIED", reply_text="Berapa?")
        for minute, text in ((3, "=2 boxes"), (1, "Ok"), (2, "to Shah Alam")):
            s.add(RecipientReply(recipient_id=person.id, text=text,
                                 replied_at=dt.datetime(2026, 3, 2, 2, minute, tzinfo=dt.UTC)))
        blast_id = blast.id
    with transaction(engine) as s:
        data = export(s, blast_id=blast_id, selection="Replied", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    if export is stage_csv:
        rows = [r["Later replies"] for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))]
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(data)).active
        column = EXPORT_COLUMNS.index("Later replies")
        rows = [row[column].value or "" for row in list(sheet.iter_rows())[1:]]
    assert rows == ["to Shah Alam\n=2 boxes", ""], "in the order written, the first left to reply_text"


@pytest.mark.parametrize("export", ["csv", "xlsx"])
def test_the_replies_list_exports_every_page_latest_first(engine: Engine, export: str) -> None:
    import openpyxl

    from core.exports import REPLY_EXPORT_COLUMNS, replies_csv, replies_xlsx
    from core.models import RecipientReply, utcnow
    from core.reply_inbox import InboxFilter

    now = utcnow().replace(microsecond=0)
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo")
        for minutes, name, said in ((90, "Aisyah", ["Ok", "=2 boxes"]), (30, "Ben", ["Berapa?"]),
                                    (10, "Chong", ["Nak"])):
            person = make_recipient(s, blast, status="REPLIED", contact_name=name, reply_text=said[0])
            for i, text in enumerate(said):
                s.add(RecipientReply(recipient_id=person.id, text=text,
                                     replied_at=now - dt.timedelta(minutes=minutes - i)))
        closed = make_recipient(s, blast, status="CLOSED", contact_name="Dina", reply_text="Done")
        s.add(RecipientReply(recipient_id=closed.id, text="Done", replied_at=now))
        blast_id = blast.id
    zone = ZoneInfo("Asia/Kuala_Lumpur")
    filters = InboxFilter(since=(now - dt.timedelta(days=1)).astimezone(zone).date(), timezone=zone.key)
    with transaction(engine) as s:
        if export == "csv":
            data = replies_csv(s, filters=filters, zone=zone)
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
        else:
            sheet = openpyxl.load_workbook(io.BytesIO(replies_xlsx(s, filters=filters, zone=zone))).active
            header, *cells = [[c.value for c in row] for row in sheet.iter_rows()]
            assert header == list(REPLY_EXPORT_COLUMNS)
            rows = [dict(zip(header, row, strict=True)) for row in cells]
    assert [r["Name"] for r in rows] == ["Chong", "Ben", "Aisyah"], "latest first; the sale left out"
    aisyah = rows[2]
    assert aisyah["Last reply"] == ("'=2 boxes" if export == "csv" else "=2 boxes"), "never a formula"
    assert aisyah["Earlier replies"] == "Ok", "her first words too, not only the count of them"
    assert rows[0]["Earlier replies"] in ("", None), "one reply: nothing earlier"
    assert str(aisyah["Replies"]) == "2" and aisyah["Blast"] == "Raya promo"
    assert str(aisyah["Blast #"]) == str(blast_id)
    assert aisyah["Status"] == "Replied"


@pytest.mark.parametrize("export", ["csv", "xlsx"])
def test_the_replies_list_carries_each_lists_own_columns_and_the_tag(engine: Engine, export: str) -> None:
    """A sales team calls from it: whose customer each one is (the list's Agent, Branch) came
    only with a blast's own export."""
    import openpyxl

    from core.exports import replies_csv, replies_xlsx
    from core.models import RecipientReply, utcnow
    from core.reply_inbox import InboxFilter

    now = utcnow().replace(microsecond=0)
    with transaction(engine) as s:
        raya = make_blast(s, name="Raya", blast_tag="Raya 2026",
                          upload_columns=[["agent", "Agent"], ["branch", "Branch"], ["status", "Status"]])
        cny = make_blast(s, name="CNY", blast_tag="CNY",
                         upload_columns=[["agent", "Agent"], ["product", "Product"]])
        plain = make_blast(s, name="Old list", blast_tag="Old")
        for minutes, blast, name, cells in (
            (30, raya, "Aisyah", {"agent": "Farid", "branch": "Ipoh", "status": "VIP"}),
            (20, cny, "Ben", {"agent": "Mei", "product": "Durian"}),
            (10, plain, "Chong", {"agent": "not a column of its list"}),
        ):
            person = make_recipient(s, blast, status="REPLIED", contact_name=name, variables=cells)
            s.add(RecipientReply(recipient_id=person.id, text="Nak",
                                 replied_at=now - dt.timedelta(minutes=minutes)))
    zone = ZoneInfo("Asia/Kuala_Lumpur")
    filters = InboxFilter(since=(now - dt.timedelta(days=1)).astimezone(zone).date(), timezone=zone.key)
    with transaction(engine) as s:
        if export == "csv":
            data = replies_csv(s, filters=filters, zone=zone)
            reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
            rows, header = list(reader), reader.fieldnames
        else:
            sheet = openpyxl.load_workbook(io.BytesIO(replies_xlsx(s, filters=filters, zone=zone))).active
            header, *cells = [[c.value or "" for c in row] for row in sheet.iter_rows()]
            rows = [dict(zip(header, row, strict=True)) for row in cells]
    assert header[-4:] == ["Agent", "Product", "Branch", "Status (your file)"]  # as they first come
    seen = ("Name", "Tag", "Agent", "Branch", "Status (your file)", "Product")
    assert [tuple(r[h] for h in seen) for r in rows] == [
        ("Chong", "Old", "", "", "", ""), ("Ben", "CNY", "Mei", "", "", "Durian"),
        ("Aisyah", "Raya 2026", "Farid", "Ipoh", "VIP", "")]


@pytest.mark.parametrize("export", [stage_csv, stage_xlsx])
def test_a_number_that_opted_out_anywhere_is_marked_in_the_export(engine: Engine, export) -> None:
    """Someone who said stop to another blast may still be in this one's "read, no reply":
    the list a team calls from must say not to."""
    import openpyxl

    from core.opt_outs import add_opt_outs

    with transaction(engine) as s:
        blast = make_blast(s)
        stopped = make_recipient(s, blast, status="READ_ACK", contact_name="Stopped").phone_number
        make_recipient(s, blast, status="READ_ACK", contact_name="Keen")
        add_opt_outs(s, [stopped, "+60111111111"], source="webhook", keyword="STOP")
        blast_id = blast.id
    with transaction(engine) as s:
        data = export(s, blast_id=blast_id, selection="Read, no reply", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    if export is stage_csv:
        rows = [(r["Name"], r["Opted out"]) for r in csv.DictReader(io.StringIO(data.decode("utf-8-sig")))]
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(data)).active
        name, flag = EXPORT_COLUMNS.index("Name"), EXPORT_COLUMNS.index("Opted out")
        rows = [(row[name].value, row[flag].value or "") for row in list(sheet.iter_rows())[1:]]
    assert rows == [("Stopped", "yes"), ("Keen", "")]


def _export_rows(data: bytes, export) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    import openpyxl

    if export in (stage_csv, "csv"):
        return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    header, *rows = openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True)
    return [{k: ("" if v is None else v) for k, v in zip(header, row, strict=True)} for row in rows]


@pytest.mark.parametrize("export", [stage_csv, stage_xlsx])
def test_a_first_reply_that_came_in_second_is_exported_first_and_once(engine: Engine, export) -> None:
    """The gateway delivered the person's second message first: the recipient row was given it.
    The export takes the replies as written, by time, each once."""
    from core.models import RecipientReply

    first, second = (dt.datetime(2026, 3, 2, 2, minute, tzinfo=dt.UTC) for minute in (1, 2))
    with transaction(engine) as s:
        blast = make_blast(s)
        person = make_recipient(s, blast, status="REPLIED", reply_text="2 boxes", replied_at=second)
        s.add(RecipientReply(recipient_id=person.id, text="2 boxes", replied_at=second))
        s.add(RecipientReply(recipient_id=person.id, text="Berapa?", replied_at=first))
        blast_id = blast.id
    with transaction(engine) as s:
        data = export(s, blast_id=blast_id, selection="Replied", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    [row] = _export_rows(data, export)
    assert (row["First reply"], row["Later replies"]) == ("Berapa?", "2 boxes")
    assert str(row["First replied"]).startswith("2026-03-02 10:01"), "the first reply's time"


@pytest.mark.parametrize("export", [stage_csv, stage_xlsx])
def test_a_photo_or_voice_reply_is_exported_in_words(engine: Engine, export) -> None:
    from core.models import RecipientReply
    from core.reply_inbox import NO_TEXT_REPLY

    with transaction(engine) as s:
        blast = make_blast(s)
        person = make_recipient(s, blast, status="REPLIED", reply_text="",
                                replied_at=dt.datetime(2026, 3, 2, 2, 1, tzinfo=dt.UTC))
        for minute, text in ((1, ""), (2, "Ok"), (3, "")):
            s.add(RecipientReply(recipient_id=person.id, text=text,
                                 replied_at=dt.datetime(2026, 3, 2, 2, minute, tzinfo=dt.UTC)))
        make_recipient(s, blast, status="REPLIED", reply_text="")  # before replies were kept one by one
        make_recipient(s, blast, status="CLOSED")  # closed by hand: no reply
        blast_id = blast.id
    with transaction(engine) as s:
        data = export(s, blast_id=blast_id, selection="Everyone", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    rows = [(r["First reply"], r["Later replies"]) for r in _export_rows(data, export)]
    assert rows == [(NO_TEXT_REPLY, f"Ok\n{NO_TEXT_REPLY}"), (NO_TEXT_REPLY, ""), ("", "")]
    assert "photo" in NO_TEXT_REPLY and "WhatsApp" in NO_TEXT_REPLY
    with transaction(engine) as s:
        assert s.get(RecipientReply, 1).text == "", "the stored reply stays as it came"


@pytest.mark.parametrize("export", ["csv", "xlsx"])
def test_a_photo_reply_in_the_replies_list_is_exported_in_words(engine: Engine, export: str) -> None:
    from core.exports import replies_csv, replies_xlsx
    from core.models import RecipientReply, utcnow
    from core.reply_inbox import NO_TEXT_REPLY, InboxFilter

    now = utcnow().replace(microsecond=0)
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo")
        person = make_recipient(s, blast, status="REPLIED", reply_text="", replied_at=now)
        s.add(RecipientReply(recipient_id=person.id, text="", replied_at=now))
    zone = ZoneInfo("Asia/Kuala_Lumpur")
    filters = InboxFilter(since=(now - dt.timedelta(days=1)).astimezone(zone).date(), timezone=zone.key)
    with transaction(engine) as s:
        data = (replies_csv if export == "csv" else replies_xlsx)(s, filters=filters, zone=zone)
    [row] = _export_rows(data, export)
    assert row["Last reply"] == NO_TEXT_REPLY


@pytest.mark.parametrize("export", [stage_csv, stage_xlsx])
@pytest.mark.parametrize(("state", "unsent"), [
    ("cancelled", "Not sent (cancelled)"),  # nothing more goes from it
    ("paused", "Waiting to be sent"),
])
def test_who_was_never_sent_a_cancelled_blast_is_exported_as_not_sent(
    engine: Engine, export, state: str, unsent: str,
) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state=state)
        for status in ("READ_ACK", "QUEUED", "SENDING"):
            make_recipient(s, blast, status=status)
        blast_id = blast.id
    with transaction(engine) as s:
        data = export(s, blast_id=blast_id, selection="Everyone", zone=ZoneInfo("Asia/Kuala_Lumpur"))
    rows = [(r["Status code"], r["Status"]) for r in _export_rows(data, export)]
    # One with the gateway as the blast was cancelled may still have gone: it keeps its words.
    assert rows == [("READ_ACK", "Read (blue ticks)"), ("QUEUED", unsent), ("SENDING", "Being sent now")], (
        "the code stays what it is")


def test_the_lists_own_columns_come_back_in_the_export_under_its_headings(engine: Engine) -> None:
    """A team's "Branch" and "Agent" go out with the results, as uploaded; a heading that is
    also ours is said as the file's; the numbers and names are not given twice, nor columns
    empty in every row."""
    import openpyxl

    from core.csv_import import create_draft_blast_from_import, parse_csv
    from core.followups import StageSelector, create_follow_up
    from core.statuses import Stage

    upload = (b"Nama,No. Telefon,Branch,Agent,Status,Notes\n"
              b"Aisyah,012-345 6789,Shah Alam,Farid,VIP,\n"
              b"Wei Ming,013-222 3333,Ipoh,,new,\n")
    zone = ZoneInfo("Asia/Kuala_Lumpur")
    with transaction(engine) as s:
        blast = create_draft_blast_from_import(s, report=parse_csv(upload, filename="list.csv"), tag="CNY")
        blast_id = blast.id
        assert blast.upload_columns == [["branch", "Branch"], ["agent", "Agent"], ["status", "Status"]]
    with transaction(engine) as s:
        rows = list(csv.DictReader(io.StringIO(
            stage_csv(s, blast_id=blast_id, selection="Everyone", zone=zone).decode("utf-8-sig"))))
        sheet = openpyxl.load_workbook(io.BytesIO(
            stage_xlsx(s, blast_id=blast_id, selection="Everyone", zone=zone))).active
    assert list(rows[0]) == [*EXPORT_COLUMNS, "Branch", "Agent", "Status (your file)"]
    assert [(r["Name"], r["Branch"], r["Agent"], r["Status (your file)"], r["Status"]) for r in rows] == [
        ("Aisyah", "Shah Alam", "Farid", "VIP", "Waiting to be sent"),
        ("Wei Ming", "Ipoh", "", "new", "Waiting to be sent")]
    header, *cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert header[len(EXPORT_COLUMNS):] == ["Branch", "Agent", "Status (your file)"]
    assert [row[len(EXPORT_COLUMNS):] for row in cells] == [
        ["Shah Alam", "Farid", "VIP"], ["Ipoh", None, "new"]]

    # A follow-up's export keeps them: its people's cells came along.
    with transaction(engine) as s:
        s.execute(BlastRecipient.__table__.update().where(BlastRecipient.blast_id == blast_id)
                  .values(status="READ_ACK", sent_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC)))
        follow = create_follow_up(s, parent_id=blast_id, message_template="Hi {name}",
                                  selector=StageSelector(stage=Stage.READ, not_stage=Stage.REPLIED))
        follow_id = follow.id
    with transaction(engine) as s:
        again = list(csv.DictReader(io.StringIO(
            stage_csv(s, blast_id=follow_id, selection="Everyone", zone=zone).decode("utf-8-sig"))))
    assert [(r["Branch"], r["Agent"]) for r in again] == [("Shah Alam", "Farid"), ("Ipoh", "")]

    # The export uploaded again as a new list: its people's own columns carry on, ours do not.
    with transaction(engine) as s:
        exported = stage_csv(s, blast_id=follow_id, selection="Everyone", zone=zone)
        anew = create_draft_blast_from_import(s, report=parse_csv(exported, filename="again.csv"), tag="CNY")
        assert anew.upload_columns == [["branch", "Branch"], ["agent", "Agent"],
                                       ["status_your_file", "Status (your file)"]]


def test_a_second_file_added_to_a_draft_adds_its_own_columns_once() -> None:
    from core.csv_import.storage import with_columns

    assert with_columns(None, [["branch", "Branch"]]) == [["branch", "Branch"]]
    assert with_columns([["branch", "Branch"]], [["branch", "BRANCH"], ["agent", "Agent"]]) == [
        ["branch", "Branch"], ["agent", "Agent"]]


@pytest.mark.parametrize("headings", [
    [h for h in EXPORT_COLUMNS if h != "Problem"] + ["Branch"],  # a column taken out in Excel
    ["phone_number", "name", "status", "status_in_words", "opted_out", "sent_at", "delivered_at",
     "read_at", "replied_at", "reply_text", "later_replies", "closed_at", "error", "Branch"],  # as before
    ["Replied", "Name", "Number", "Status", "Opted out", "Last reply", "Replies", "Blast", "Blast #",
     "Branch"],  # the Replies page's, from before its time was headed "Last replied"
    ["Last replied", "Name", "Number", "Status", "Opted out", "Last reply", "Earlier replies", "Replies",
     "Blast", "Blast #", "Branch"],  # the Replies page's as now, its tag taken out
    [h if h != "First replied" else "Replied" for h in EXPORT_COLUMNS] + ["Branch"],  # a blast's before
])
def test_one_of_our_exports_uploaded_again_carries_on_only_the_persons_own_columns(headings) -> None:
    from core.csv_import import parse_csv
    from core.csv_import.storage import upload_columns

    number = headings.index("Number") if "Number" in headings else 0
    row = ["x"] * len(headings)
    row[number], row[headings.index("Branch")] = "012-345 6789", "Ipoh"
    report = parse_csv(to_csv([row], columns=headings), filename="again.csv")
    assert upload_columns(report, report.recipients) == [["branch", "Branch"]]


def test_a_second_file_that_adds_no_one_adds_no_columns(engine: Engine) -> None:
    from core.csv_import import add_recipients, create_draft_blast_from_import, parse_csv

    with transaction(engine) as s:
        blast = create_draft_blast_from_import(
            s, report=parse_csv(b"Name,Phone\nAisyah,012-345 6789\n", filename="a.csv"), tag="CNY")
        again = parse_csv(b"Name,Phone,Branch\nAisyah,012-345 6789,Ipoh\n", filename="b.csv")
        assert add_recipients(s, blast=blast, report=again) == 0
        assert blast.upload_columns is None, "her row, and its cells, are the first file's"
        more = parse_csv(b"Name,Phone,Branch\nSiti,013-456 7890,Klang\n", filename="c.csv")
        assert add_recipients(s, blast=blast, report=more) == 1
        assert blast.upload_columns == [["branch", "Branch"]]


# An uploaded list's own columns holding numbers Excel would change: IC, an office line, a
# postcode, a number without its +, and a quantity it shows as written.
NUMBER_LIKE_COLUMNS = [["ic", "IC"], ["office", "Office"], ["postcode", "Postcode"], ["home", "Home"],
                       ["boxes", "Boxes"]]
NUMBER_LIKE_CELLS = {"ic": "900101145678", "office": "0312345678", "postcode": "01000",
                     "home": "60387654321", "boxes": "42"}
NUMBER_LIKE_HEADINGS = ["IC", "Office", "Postcode", "Home", "Boxes"]


def _one_with_number_like_cells(engine: Engine) -> int:
    from core.models import RecipientReply, utcnow

    with transaction(engine) as s:
        blast = make_blast(s, name="Raya", upload_columns=NUMBER_LIKE_COLUMNS)
        person = make_recipient(s, blast, status="REPLIED", contact_name="Aisyah", reply_text="Nak",
                                phone_number="+60123456789", variables=NUMBER_LIKE_CELLS)
        s.add(RecipientReply(recipient_id=person.id, text="Nak", replied_at=utcnow()))
        return blast.id


def _number_like_export(engine: Engine, export: str, kind: str) -> bytes:
    from core.exports import replies_csv, replies_xlsx
    from core.models import utcnow
    from core.reply_inbox import InboxFilter

    blast_id = _one_with_number_like_cells(engine)
    zone = ZoneInfo("Asia/Kuala_Lumpur")
    with transaction(engine) as s:
        if export == "stage":
            make = stage_csv if kind == "csv" else stage_xlsx
            return make(s, blast_id=blast_id, selection="Everyone", zone=zone)
        since = utcnow().astimezone(zone).date() - dt.timedelta(days=1)
        filters = InboxFilter(since=since, timezone=zone.key)
        return (replies_csv if kind == "csv" else replies_xlsx)(s, filters=filters, zone=zone)


@pytest.mark.parametrize("export", ["stage", "replies"])
def test_the_lists_own_number_like_columns_open_in_excel_as_written(engine: Engine, export: str) -> None:
    """Excel showed an IC number as 9.00101E+11, an office line as 312345678 and a postcode as
    1000: in the CSV they start with the apostrophe the Number does; a quantity stays a number."""
    [row] = _export_rows(_number_like_export(engine, export, "csv"), stage_csv)
    assert [row[h] for h in ("Number", *NUMBER_LIKE_HEADINGS)] == [
        "'+60123456789", "'900101145678", "'0312345678", "'01000", "'60387654321", "42"]


@pytest.mark.parametrize("export", ["stage", "replies"])
def test_the_workbook_holds_the_lists_number_like_columns_as_text(engine: Engine, export: str) -> None:
    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(_number_like_export(engine, export, "xlsx"))).active
    header, row = sheet.iter_rows()
    cells = {h.value: c for h, c in zip(header, row, strict=True)}
    assert [(cells[h].value, cells[h].data_type) for h in NUMBER_LIKE_HEADINGS] == [
        (NUMBER_LIKE_CELLS[key], "s") for key, _ in NUMBER_LIKE_COLUMNS], "text, with no apostrophe"


@pytest.mark.parametrize(("cell", "written"), [
    ("'01000", "01000"), ("'900101145678", "900101145678"), ("'+60123456789", "+60123456789"),
    ("'=1+1", "=1+1"),
    # Apostrophes the download does not give stay: typed by a person, they are theirs.
    ("'42", "'42"), ("'Tis the season", "'Tis the season"), ("''01000", "''01000"), ("01000", "01000"),
])
def test_a_cell_of_our_csv_comes_back_as_it_was_before_its_apostrophe(cell: str, written: str) -> None:
    from core.exports import as_written, csv_cell

    assert as_written(cell) == written
    assert csv_cell(written) == cell or written == cell


@pytest.mark.parametrize("export", ["stage", "replies"])
def test_an_export_with_number_like_columns_is_read_again(engine: Engine, export: str) -> None:
    """Uploaded again as a new list, or as a list of sales: its numbers are read from Number."""
    from core.closing import read_sales
    from core.csv_import import parse_csv

    data = _number_like_export(engine, export, "csv")
    again = parse_csv(data, filename="again.csv", region="MY")
    assert (again.phone_column, [r.phone for r in again.recipients]) == ("Number", ["+60123456789"])
    [person] = again.recipients
    own = {v for k, v in person.variables.items() if k not in ("phone", "name")}
    assert set(NUMBER_LIKE_CELLS.values()) <= own, "the apostrophe the download gave them is gone"
    assert not any(v.startswith("'") for v in own), own
    sales = read_sales(data, region="MY", filename="again.csv")
    assert (sales.phone_column, [line.phone for line in sales.lines]) == ("Number", ["+60123456789"])
