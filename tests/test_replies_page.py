"""The Replies page: who wrote back across all blasts, their conversations, and closing sales."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from core.db import transaction
from core.models import Blast, BlastRecipient, OptOut, RecipientReply, utcnow
from core.recipients import mark_closed
from core.reply_inbox import InboxFilter, default_since
from dashboard.blast_views import status_word
from dashboard.reply_views import inbox_table_key
from tests.support.factories import make_blast, make_recipient
from tests.test_blast_page import _follow, _heading
from tests.test_pages import app_db, run_page  # noqa: F401  (app_db: the fixture, used below)

pytestmark = pytest.mark.usefixtures("app_db")

REPLIES = "pages/replies.py"
KL = "Asia/Kuala_Lumpur"
SENT_TO_AISYAH = "Salam Aisyah! Kuih raya 20% off this week."


def _replied(
    session: Session, blast: Blast, *said: tuple[dt.timedelta, str], **fields: object
) -> BlastRecipient:
    """A recipient who wrote back, each reply `ago` before now, kept as the webhook keeps it."""
    now = utcnow()
    fields.setdefault("status", "REPLIED")
    person = make_recipient(session, blast, replied_at=now - said[0][0], reply_text=said[0][1], **fields)
    session.add_all(
        RecipientReply(recipient_id=person.id, replied_at=now - ago, text=text) for ago, text in said
    )
    session.flush()
    return person


def _three_people(engine: Engine) -> dict[str, int]:
    """Aisyah wrote twice (latest 30 min ago), Ben once (2 h ago), Chong bought already."""
    with transaction(engine) as s:
        raya = make_blast(s, name="Raya promo", blast_tag="Raya", state="completed")
        cny = make_blast(s, name="CNY promo", blast_tag="CNY", state="completed")
        aisyah = _replied(s, raya, (dt.timedelta(hours=3), "Berapa harga?"),
                          (dt.timedelta(minutes=30), "2 boxes please, to Shah Alam"),
                          contact_name="Aisyah", phone_number="+60123456781",
                          message_text=SENT_TO_AISYAH, sent_at=utcnow() - dt.timedelta(hours=4))
        ben = _replied(s, cny, (dt.timedelta(hours=2, minutes=5), "Ada stok?"),
                       contact_name="Ben", phone_number="+60123456782")
        chong = _replied(s, raya, (dt.timedelta(hours=1), "I'll take it"),
                         contact_name="Chong", phone_number="+60123456783")
        mark_closed(s, recipient_ids=[chong.id])
        make_recipient(s, raya, status="READ_ACK", contact_name="Dina")  # read, never wrote back
        return {"aisyah": aisyah.id, "ben": ben.id, "chong": chong.id, "raya": raya.id, "cny": cny.id}


def _table(at: AppTest):  # type: ignore[no-untyped-def]
    return next(d for d in at.dataframe if "Reply" in d.value.columns)


def _tick(at: AppTest, ids: list[int], rows: list[int], *, generation: int = 0) -> AppTest:
    """Tick rows of the table as the page keys it: the default filters, "Only people to follow
    up" as the toggle stands, the first page."""
    filters = InboxFilter(since=default_since(timezone=KL), timezone=KL,
                          only_open=at.toggle(key="rpl_open").value)
    at.session_state[inbox_table_key(generation=generation, filters=filters, page=1, ids=ids)] = {
        "selection": {"rows": rows, "columns": []}
    }
    at.run()
    assert not at.exception, at.exception
    return at


def test_with_no_blasts_it_points_to_a_new_blast() -> None:
    at = run_page(REPLIES)
    assert at.title[0].value == "Replies"
    assert any("No blasts yet" in h.value for h in at.subheader)
    assert [link.proto.page for link in at.get("page_link")] == ["new_blast"]
    assert not at.dataframe


def test_no_replies_in_the_last_seven_days_says_so(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        _replied(s, blast, (dt.timedelta(days=8), "Too long ago"))
        make_recipient(s, blast, status="READ_ACK")
    at = run_page(REPLIES)
    assert [i.value for i in at.info][-1] == "No replies in the last 7 days."
    assert not at.dataframe


def test_the_list_newest_first_with_the_count_and_only_those_not_closed(engine: Engine) -> None:
    ids = _three_people(engine)
    at = run_page(REPLIES)
    assert "**3 people** replied in the last 7 days, **2 to follow up**." in [m.value for m in at.markdown]
    table = _table(at).value
    assert list(table.columns) == ["When", "Name", "Number", "Reply", "Status", "Blast"]
    # Said to the minute as the page ran: a slow first run of the page (a loaded machine) may
    # come a minute past the replies made above.
    first = table.columns.get_loc("When")
    assert re.fullmatch(r"3[01] min ago", table.iloc[0, first]), table.iloc[0, first]
    table.iloc[0, first] = "30 min ago"
    assert table.to_dict("records") == [
        {"When": "30 min ago", "Name": "Aisyah", "Number": "+60123456781",
         "Blast": f"/blast?blast={ids['raya']}#Raya%20promo",
         "Reply": "2 boxes please, to Shah Alam  (+1 more)", "Status": status_word("REPLIED")},
        {"When": "2 h ago", "Name": "Ben", "Number": "+60123456782",
         "Blast": f"/blast?blast={ids['cny']}#CNY%20promo", "Reply": "Ada stok?",
         "Status": status_word("REPLIED")},
    ]
    at.toggle(key="rpl_open").set_value(False).run()
    assert not at.exception, at.exception
    assert list(_table(at).value["Name"]) == ["Aisyah", "Chong", "Ben"]
    assert list(_table(at).value["Status"])[1] == status_word("CLOSED")


def test_two_blasts_of_one_name_are_told_apart_by_their_day(engine: Engine) -> None:
    """The same campaign sent again this week: which one each reply answers."""
    with transaction(engine) as s:
        monday, thursday = (utcnow() - dt.timedelta(days=d) for d in (3, 0))
        first = make_blast(s, name="Raya promo", state="completed", blast_date=monday)
        again = make_blast(s, name="Raya promo", state="completed", blast_date=thursday)
        other = make_blast(s, name="CNY promo", state="completed", blast_date=thursday)
        for blast, phone in ((first, "+60123456781"), (again, "+60123456782"), (other, "+60123456783")):
            _replied(s, blast, (dt.timedelta(minutes=5), "Berapa?"), phone_number=phone)
        days = {b.id: b.blast_date.astimezone(ZoneInfo(KL)) for b in (first, again)}
    shown = {unquote(link.split("#")[1]) for link in _table(run_page(REPLIES)).value["Blast"]}
    assert shown == {f"Raya promo · {d:%d %b}" for d in days.values()} | {"CNY promo"}


def test_the_filters_narrow_the_list(engine: Engine) -> None:
    _three_people(engine)
    at = run_page(REPLIES)
    at.multiselect(key="rpl_tags").select("CNY").run()
    assert list(_table(at).value["Name"]) == ["Ben"]
    assert "**1 person** replied to blasts tagged CNY in the last 7 days, **1 to follow up**." in [
        m.value for m in at.markdown]
    at.multiselect(key="rpl_tags").unselect("CNY").run()
    at.text_input(key="rpl_q").set_value("berapa").run()  # Aisyah's first reply, not her latest
    assert list(_table(at).value["Name"]) == ["Aisyah"]
    at.text_input(key="rpl_q").set_value("nobody said this").run()
    assert not at.exception, at.exception
    assert [i.value for i in at.info][-1] == "No replies in the last 7 days match the tags or the search."


def test_the_blast_column_links_to_the_blast_by_its_name(engine: Engine) -> None:
    ids = _three_people(engine)
    at = run_page(REPLIES)
    table = _table(at)
    column = json.loads(table.proto.columns)["Blast"]
    assert column["type_config"]["type"] == "link"
    link = table.value["Blast"][0]
    assert link.startswith(f"/blast?blast={ids['raya']}#")
    # What the table shows in the cell, as the browser works it out from the link.
    shown = re.search(column["type_config"]["display_text"], link)
    assert shown is not None and unquote(shown.group(1)) == "Raya promo"


def test_ticking_shows_every_reply_and_a_link_that_opens_the_blast(engine: Engine) -> None:
    ids = _three_people(engine)
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [0])
    [conversation] = [e for e in at.expander if e.label == "Aisyah · +60123456781"]
    assert "**What they replied** (2 messages)" in [m.value for m in conversation.markdown]
    bubbles = [b.value for b in conversation.get("html")]
    assert len(bubbles) == 3
    assert "Berapa harga?" in bubbles[1] and "2 boxes please, to Shah Alam" in bubbles[2]
    assert len(conversation.caption) == 4, "the campaign, the message sent and each reply with its time"
    assert at.button(key="rpl_close").label == "Mark 1 as closed (sale)"
    _follow(at, "Open the blast “Raya promo”")
    assert "Raya promo" in _heading(at)


def test_someone_closed_already_is_offered_the_undo_not_a_second_sale(engine: Engine) -> None:
    ids = _three_people(engine)
    at = run_page(REPLIES)
    at.toggle(key="rpl_open").set_value(False).run()  # Aisyah, Chong (closed), Ben
    at = _tick(at, [ids["aisyah"], ids["chong"], ids["ben"]], [1])
    assert not [b for b in at.button if b.key == "rpl_close"]
    assert at.button(key="rpl_unclose").label == "Not a sale: undo 1"


def test_a_sale_marked_by_mistake_can_be_undone_from_the_list(engine: Engine) -> None:
    ids = _three_people(engine)
    at = run_page(REPLIES)
    at.toggle(key="rpl_open").set_value(False).run()  # Chong, closed, is listed too
    at = _tick(at, [ids["aisyah"], ids["chong"], ids["ben"]], [0, 1])
    assert at.button(key="rpl_unclose").label == "Not a sale: undo 1", "Chong's sale only"
    assert at.button(key="rpl_close").label == "Mark 1 as closed (sale)", "Aisyah's: Chong's is closed"
    at.button(key="rpl_unclose").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.success] == ["1 sale undone: back to where they were before the sale."]
    with transaction(engine) as s:
        assert s.get(BlastRecipient, ids["chong"]).status == "REPLIED"


def test_someone_who_asked_in_words_no_keyword_catches_is_opted_out_from_the_list(engine: Engine) -> None:
    """ "Tolong jangan hantar lagi": the number had to be copied to the Opt-outs page."""
    ids = _three_people(engine)
    with transaction(engine) as s:
        later = make_blast(s, name="Next week", state="sending")
        queued = make_recipient(s, later, phone_number="+60123456782", status="QUEUED").id
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [1])
    assert at.button(key="rpl_opt_out").label == "Yes, opt out 1"  # in "Opt out 1", asked first
    at.button(key="rpl_opt_out").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.success] == [
        "1 number added to the opt-out list. 1 message waiting to go to them is no longer sent."]
    with transaction(engine) as s:
        assert [o.phone_number for o in s.scalars(select(OptOut))] == ["+60123456782"]
        assert s.get(BlastRecipient, queued) is None
    at = _tick(at, [ids["aisyah"], ids["ben"]], [1], generation=1)
    assert not [b for b in at.button if b.key == "rpl_opt_out"], "on the list already"


def test_marking_closed_says_so_and_they_leave_the_not_closed_list(engine: Engine) -> None:
    ids = _three_people(engine)
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [0, 1])
    assert at.button(key="rpl_close").label == "Mark 2 as closed (sale)"
    at.button(key="rpl_close").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.success] == ["2 people marked as closed (a sale)."]
    assert not at.dataframe, "nobody left to follow up"
    assert "**3 people** replied in the last 7 days, **0 to follow up**." in [m.value for m in at.markdown]
    assert any("Everyone who replied in the last 7 days is marked closed" in i.value for i in at.info)
    with transaction(engine) as s:
        statuses = s.scalars(select(BlastRecipient.status).where(
            BlastRecipient.id.in_([ids["aisyah"], ids["ben"]]))).all()
    assert statuses == ["CLOSED", "CLOSED"]


def test_after_marking_with_everyone_shown_no_row_stays_ticked(engine: Engine) -> None:
    ids = _three_people(engine)
    at = run_page(REPLIES)
    at.toggle(key="rpl_open").set_value(False).run()
    everyone = [ids["aisyah"], ids["chong"], ids["ben"]]
    at = _tick(at, everyone, [0, 1])
    at.button(key="rpl_close").click().run()
    assert [m.value for m in at.success] == ["1 person marked as closed (a sale)."]  # Chong was already
    assert "rpl_close" not in {b.key for b in at.button}, "nothing to click twice"
    _tick(at, everyone, [2], generation=1)
    assert at.button(key="rpl_close").label == "Mark 1 as closed (sale)", "the fresh table can be ticked"


# While rows are ticked the list stays as it was: Streamlit keeps ticks as row positions, and
# the list is newest first, so each reply arriving would otherwise move everyone down a row.

CHANGED = "The list changed since you ticked, so the ticks were cleared: tick again."


def _newcomer(engine: Engine, ids: dict[str, int]) -> int:
    """Eddie, who had not written, replies now: he goes to the top of the list."""
    with transaction(engine) as s:
        raya = s.get(Blast, ids["raya"])
        assert raya is not None
        return _replied(s, raya, (dt.timedelta(0), "Still available?"), contact_name="Eddie",
                        phone_number="+60123456785").id


def _statuses(engine: Engine, *people: int) -> list[str]:
    with transaction(engine) as s:
        return [s.get(BlastRecipient, person).status for person in people]


def _said(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown] + [c.value for c in at.caption]


def test_a_reply_arriving_just_before_a_tick_leaves_the_tick_on_the_person_ticked(engine: Engine) -> None:
    ids = _three_people(engine)
    at = run_page(REPLIES)
    eddie = _newcomer(engine, ids)  # a few seconds before the marketer ticks Aisyah, at the top
    at = _tick(at, [ids["aisyah"], ids["ben"]], [0])
    assert list(_table(at).value["Name"]) == ["Aisyah", "Ben"], "the list as it was ticked"
    assert CHANGED not in _said(at)
    assert [e.label for e in at.expander] == ["Aisyah · +60123456781"]
    assert "**1 new reply** since this list was loaded." in _said(at), "Eddie is announced"
    at.button(key="rpl_close").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.success] == ["1 person marked as closed (a sale)."]
    assert _statuses(engine, ids["aisyah"], eddie) == ["CLOSED", "REPLIED"]
    assert list(_table(at).value["Name"]) == ["Eddie", "Ben"], "the latest once the sale is marked"


def test_a_reply_arriving_between_two_clicks_leaves_the_tick_on_the_person_ticked(engine: Engine) -> None:
    ids = _three_people(engine)
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [0])  # Aisyah, at the top
    assert at.button(key="rpl_close").label == "Mark 1 as closed (sale)"
    with transaction(engine) as s:  # Ben writes again: the newest, so at the top once read again
        s.add(RecipientReply(recipient_id=ids["ben"], replied_at=utcnow(), text="Hello?"))
    at.run()
    assert not at.exception, at.exception
    assert list(_table(at).value["Name"]) == ["Aisyah", "Ben"]
    assert [e.label for e in at.expander] == ["Aisyah · +60123456781"], "Ben was never ticked"
    at.button(key="rpl_close").click().run()
    assert not at.exception, at.exception
    assert _statuses(engine, ids["aisyah"], ids["ben"]) == ["CLOSED", "REPLIED"]


def test_undoing_a_sale_while_replies_come_in_undoes_the_one_ticked(engine: Engine) -> None:
    ids = _three_people(engine)
    at = run_page(REPLIES)
    at.toggle(key="rpl_open").set_value(False).run()  # Aisyah, Chong (closed), Ben
    at = _tick(at, [ids["aisyah"], ids["chong"], ids["ben"]], [1])
    eddie = _newcomer(engine, ids)
    at.run()
    assert list(_table(at).value["Name"]) == ["Aisyah", "Chong", "Ben"]
    assert at.button(key="rpl_unclose").label == "Not a sale: undo 1"
    at.button(key="rpl_unclose").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.success] == ["1 sale undone: back to where they were before the sale."]
    assert _statuses(engine, ids["chong"], eddie, ids["aisyah"]) == ["REPLIED", "REPLIED", "REPLIED"]


def test_the_rows_kept_while_ticked_show_where_their_people_stand_now(engine: Engine) -> None:
    ids = _three_people(engine)
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [0])
    _newcomer(engine, ids)
    with transaction(engine) as s:  # a colleague records Aisyah's sale from another tab
        mark_closed(s, recipient_ids=[ids["aisyah"]])
    at.run()
    assert not at.exception, at.exception
    table = _table(at).value
    assert list(table["Name"]) == ["Aisyah", "Ben"], "kept in its place, not dropped from the list"
    assert list(table["Status"]) == [status_word("CLOSED"), status_word("REPLIED")]
    assert at.button(key="rpl_unclose").label == "Not a sale: undo 1"


@pytest.mark.parametrize("how", ["show them", "untick", "another filter"])
def test_the_new_reply_shows_once_asked_for(engine: Engine, how: str) -> None:
    ids = _three_people(engine)
    shown = [ids["aisyah"], ids["ben"]]
    at = _tick(run_page(REPLIES), shown, [0])
    _newcomer(engine, ids)
    at.run()
    assert list(_table(at).value["Name"]) == ["Aisyah", "Ben"]
    if how == "show them":
        at.button(key="rpl_show_new").click().run()
    elif how == "untick":
        _tick(at, shown, [])
    else:
        at.toggle(key="rpl_open").set_value(False).run()
    assert not at.exception, at.exception
    assert list(_table(at).value["Name"])[0] == "Eddie"
    assert "rpl_close" not in {b.key for b in at.button}, "no tick lands on whoever took the row"
    assert not [m for m in _said(at) if "since this list was loaded" in m]
    assert (CHANGED in _said(at)) == (how == "show them"), "said only when the ticks went unasked"


def test_a_ticked_person_no_longer_found_is_not_acted_on_and_it_says_so(engine: Engine) -> None:
    ids = _three_people(engine)
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [1])  # Ben
    with transaction(engine) as s:
        s.delete(s.get(BlastRecipient, ids["ben"]))
    at.run()
    assert not at.exception, at.exception
    assert list(_table(at).value["Name"]) == ["Aisyah"]
    assert CHANGED in _said(at)
    assert "rpl_close" not in {b.key for b in at.button}


def test_the_overview_says_who_waits_for_an_answer_and_leads_to_them(engine: Engine) -> None:
    people = _three_people(engine)
    at = run_page("pages/overview.py")
    said = [m.value for m in at.markdown if "waiting to be followed up" in m.value]
    assert said == ["**2 people** replied in the last 7 days and are waiting to be followed up."]
    assert "replies" in [link.proto.page for link in at.get("page_link")]
    with transaction(engine) as s:
        mark_closed(s, recipient_ids=[people["aisyah"], people["ben"]])
    at = run_page("pages/overview.py")
    assert not [m for m in at.markdown if "waiting to be followed up" in m.value], "no one waits"


def test_the_list_can_be_downloaded_for_a_spreadsheet(engine: Engine) -> None:
    _three_people(engine)
    at = run_page(REPLIES)
    labels = {b.proto.label for b in at.get("download_button")}
    assert labels == {"Download for Excel", "Download as CSV"}


def test_a_download_is_built_when_clicked_with_what_the_database_holds_then(engine: Engine) -> None:
    """Download buttons get `on_download`: a rerun builds no file, and the click (on a thread
    of the server's, with no Streamlit context) reads the list as it is at that moment."""
    import threading

    from core.exports import replies_csv
    from core.reply_inbox import InboxFilter
    from dashboard.data import on_download

    people = _three_people(engine)
    filters = InboxFilter(since=(utcnow() - dt.timedelta(days=7)).date(), timezone="Asia/Kuala_Lumpur")
    build = on_download(lambda s: replies_csv(s, filters=filters, zone=dt.UTC))
    with transaction(engine) as s:
        mark_closed(s, recipient_ids=[people["ben"]])  # after the page was drawn
    built: list[bytes] = []
    clicked = threading.Thread(target=lambda: built.append(build()))
    clicked.start()
    clicked.join()
    names = [line.split(",")[1] for line in built[0].decode("utf-8-sig").splitlines()[1:]]
    assert names == ["Aisyah"], "Ben's sale, closed after the page was drawn, takes him off the list"


def test_a_buyer_closed_on_another_blast_of_the_campaign_is_shown_where_the_sale_is(engine: Engine) -> None:
    """One sale a person a campaign: Chong bought on the Raya promo, and his reply to its
    follow-up is no lead, nor a sale to record again."""
    people = _three_people(engine)
    with transaction(engine) as s:
        again = make_blast(s, name="Raya promo, follow-up", blast_tag="Raya", state="completed",
                           parent_blast_id=people["raya"], follow_up_stage="Follow-up 1")
        later = _replied(s, again, (dt.timedelta(minutes=10), "Boleh hantar esok?"),
                         contact_name="Chong", phone_number="+60123456783").id
    at = run_page(REPLIES)
    assert "**3 people** replied in the last 7 days, **2 to follow up**." in [m.value for m in at.markdown]
    assert list(_table(at).value["Name"]) == ["Aisyah", "Ben"]
    at.toggle(key="rpl_open").set_value(False).run()
    assert ("**3 people** replied in the last 7 days, **2 to follow up**. Someone who answered more than "
            "one blast has a row for each: 4 rows below.") in [m.value for m in at.markdown]
    table = _table(at).value
    assert list(table["Status"])[0] == f"Sale on #{people['raya']}"
    ids = [later, people["aisyah"], people["chong"], people["ben"]]
    at = _tick(at, ids, [0])
    assert not [b for b in at.button if b.label.startswith("Mark ")], "recording it again is refused"
    assert any(f"Sale recorded on blast #{people['raya']}" in c.value for c in at.caption)
    # Downloaded, the list says so too.
    from core.exports import replies_csv

    with transaction(engine) as s:
        data = replies_csv(s, filters=InboxFilter(since=default_since(timezone=KL), timezone=KL,
                                                  only_open=False), zone=ZoneInfo(KL))
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0]["Status"] == f"Sale on #{people['raya']}"


def test_someone_who_asked_to_stop_is_left_out_and_marked_when_shown(engine: Engine) -> None:
    from core.opt_outs import add_opt_outs

    people = _three_people(engine)
    with transaction(engine) as s:
        add_opt_outs(s, ["+60123456782"], source="webhook", keyword="STOP")  # Ben
    at = run_page(REPLIES)
    assert "**3 people** replied in the last 7 days, **1 to follow up**." in [m.value for m in at.markdown]
    assert list(_table(at).value["Name"]) == ["Aisyah"]
    at.toggle(key="rpl_open").set_value(False).run()
    table = _table(at).value
    assert dict(zip(table["Name"], table["Status"], strict=True))["Ben"] == "Opted out"
    ids = [people["aisyah"], people["chong"], people["ben"]]
    at = _tick(at, ids, [list(table["Name"]).index("Ben")])
    assert any("asked not to be messaged" in w.value for w in at.warning)


def test_a_photo_sticker_or_voice_reply_is_shown_in_words(engine: Engine) -> None:
    """WhatsApp sends no text with them: the list and the conversation say what it was."""
    from core.reply_inbox import NO_TEXT_REPLY

    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo", state="completed")
        person = _replied(s, blast, (dt.timedelta(minutes=40), "Berapa harga?"),
                          (dt.timedelta(minutes=30), ""), contact_name="Aisyah", phone_number="+60123456781")
        ids = [person.id]
    at = run_page(REPLIES)
    assert list(_table(at).value["Reply"]) == [f"{NO_TEXT_REPLY}  (+1 more)"]
    at = _tick(at, ids, [0])
    [conversation] = [e for e in at.expander if e.label == "Aisyah · +60123456781"]
    bubbles = [b.value for b in conversation.get("html")]
    assert "Berapa harga?" in bubbles[-2] and "open WhatsApp to see it" in bubbles[-1]


# Messages no recent blast explains: kept by the webhook, listed apart.


def _message(phone_digits: str, text: str, *, name: str | None = None, ago: dt.timedelta) -> dict:
    at = int((utcnow() - ago).timestamp())
    key = {"remoteJid": f"{phone_digits}@s.whatsapp.net", "fromMe": False, "id": f"IN{phone_digits}"}
    body = {"key": key, "message": {"conversation": text}, "messageTimestamp": at}
    return {**body, "pushName": name} if name else body


def _arrives(engine: Engine, payload: dict) -> None:
    """A message posted to the webhook, stored and applied as the server does."""
    from core.webhook.inbox import WebhookRules, process_entry, store_raw

    with transaction(engine) as s:
        inbox_id = store_raw(s, body=json.dumps(payload).encode(), content_type="application/json")
    with transaction(engine) as s:
        process_entry(s, inbox_id=inbox_id, rules=WebhookRules())


def test_a_message_no_recent_blast_explains_is_listed_not_lost(engine: Engine) -> None:
    """A new lead who found the number, and an answer four days after a blast (past the 72 h
    reply window): both had been kept in the inbox only, where no marketer looks."""
    ids = _three_people(engine)
    with transaction(engine) as s:
        old = make_blast(s, name="Merdeka promo", blast_tag="Merdeka", state="completed")
        make_recipient(s, old, phone_number="+60129990001", status="READ_ACK",
                       sent_at=utcnow() - dt.timedelta(days=4))
    _arrives(engine, _message("60129990001", "Masih ada promo?", ago=dt.timedelta(hours=1)))
    _arrives(engine, _message("60137770002", "Hi, saw your ad. Price?", name="Farah",
                              ago=dt.timedelta(minutes=10)))
    with transaction(engine) as s:
        make_recipient(s, old, phone_number="+60126660004", status="READ_ACK",
                       sent_at=utcnow() - dt.timedelta(hours=5))
    _arrives(engine, _message("60126660004", "Ada warna lain?", ago=dt.timedelta(minutes=5)))  # a reply
    _arrives(engine, _message("60135550003", "STOP", ago=dt.timedelta(minutes=3)))  # opted out, not a lead
    at = run_page(REPLIES)
    [expander] = [e for e in at.expander if "no recent blast messaged" in e.label]
    assert expander.label.startswith("2 messages")
    [table] = [d.value for d in at.dataframe if "Last blast to them" in d.value.columns]
    assert list(table["Message"]) == ["Hi, saw your ad. Price?", "Masih ada promo?"]
    assert list(table["Name"]) == ["Farah", ""]
    assert list(table["Number"]) == ["+60137770002", "+60129990001"]
    assert list(table["Last blast to them"]) == ["—", "Merdeka promo"], "a dash, not a grey None"
    said = [m.value for m in at.markdown]
    assert ("**4 people** replied in the last 7 days, **3 to follow up**. **2 messages** from people no "
            "recent blast messaged are waiting below.") in said, "counted at the top, not only when unfolded"
    # The search reaches them; a tag leaves them out (no blast is theirs).
    at.text_input(key="rpl_q").input("saw your ad").run()
    [table] = [d.value for d in at.dataframe if "Last blast to them" in d.value.columns]
    assert list(table["Number"]) == ["+60137770002"]
    at.text_input(key="rpl_q").input("").run()
    at.multiselect(key="rpl_tags").select("Raya").run()
    assert not [e for e in at.expander if "no recent blast messaged" in e.label]
    assert ids  # the matched replies are listed as before


def test_the_conversation_starts_with_the_message_they_were_sent(engine: Engine) -> None:
    """What they replied to comes first, with when it went, so the conversation reads in order."""
    ids = _three_people(engine)
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [0, 1])
    [aisyah] = [e for e in at.expander if e.label == "Aisyah · +60123456781"]
    said = [m.value for m in aisyah.markdown]
    assert said.index("**What you sent them**") < said.index("**What they replied** (2 messages)")
    bubbles = [b.value for b in aisyah.get("html")]
    assert SENT_TO_AISYAH in bubbles[0] and "Berapa harga?" in bubbles[1]
    with transaction(engine) as s:  # as stored, not "4 h ago" again: the minute may have turned since
        sent = s.get(BlastRecipient, ids["aisyah"]).sent_at.astimezone(ZoneInfo(KL))
    assert [c.value for c in aisyah.caption][:2] == ["Campaign **Raya**", f"{sent:%d %b %H:%M}"]
    [ben] = [e for e in at.expander if e.label == "Ben · +60123456782"]
    assert "The message sent to them was not kept." in [c.value for c in ben.caption]
    [reach] = [m.value for m in aisyah.markdown if "tel:" in m.value]  # on a phone, a tap away
    assert "](tel:+60123456781)" in reach and "](https://wa.me/60123456781)" in reach
    assert "Ada stok?" in ben.get("html")[0].value


def test_a_ticked_person_shows_their_cells_in_the_lists_own_columns(engine: Engine) -> None:
    """Whose customer they are (the list's Agent, Branch) had been only in the blast's export."""
    ids = _three_people(engine)
    with transaction(engine) as s:
        s.get(Blast, ids["raya"]).upload_columns = [
            ["agent", "Agent"], ["branch", "Branch"], ["notes", "Notes"]]
        s.get(BlastRecipient, ids["aisyah"]).variables = {
            "agent": "Farid", "branch": "Shah Alam", "notes": ""}
    at = _tick(run_page(REPLIES), [ids["aisyah"], ids["ben"]], [0])
    [aisyah] = [e for e in at.expander if e.label == "Aisyah · +60123456781"]
    assert aisyah.caption[0].value == "Campaign **Raya** · Agent: Farid · Branch: Shah Alam"


def test_a_lone_stranger_is_counted_even_when_no_one_replied(engine: Engine) -> None:
    with transaction(engine) as s:
        make_blast(s, state="completed")
    _arrives(engine, _message("60199990000", "Hi, saw your ad on FB, still got stock?",
                              ago=dt.timedelta(minutes=2)))
    at = run_page(REPLIES)
    assert [i.value for i in at.info][-1] == ("No replies in the last 7 days. **1 message** from someone "
                                             "no recent blast messaged is waiting below.")
    [table] = [d.value for d in at.dataframe if "Last blast to them" in d.value.columns]
    assert list(table["Last blast to them"]) == ["—"]


# New replies while the page is open: a fragment checks and says so, leaving the list alone.


def _arrivals(filters, mark):  # type: ignore[no-untyped-def]  (its source runs alone: no imports)
    from dashboard.reply_views import render_new_arrivals

    render_new_arrivals(filters, mark)


def _watching(engine: Engine, filters: InboxFilter) -> AppTest:
    """The page's check for new replies, as its fragment runs on its own, against where the
    replies stood when the list was read (now)."""
    from core.reply_inbox import inbox_mark

    with transaction(engine) as s:
        mark = inbox_mark(s)
    at = AppTest.from_function(_arrivals, args=(filters, mark), default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def test_replies_arriving_after_the_list_was_read_are_announced(engine: Engine) -> None:
    ids = _three_people(engine)
    at = _watching(engine, InboxFilter(since=default_since(timezone=KL), timezone=KL))
    assert not at.markdown and not at.button, "nothing new: nothing said"
    with transaction(engine) as s:
        s.add(RecipientReply(recipient_id=ids["ben"], replied_at=utcnow(), text="Hello?"))
        s.add(RecipientReply(recipient_id=ids["chong"], replied_at=utcnow(), text="Thanks!"))  # closed
    _arrives(engine, _message("60199990000", "Hi, saw your ad on FB, still got stock?", ago=dt.timedelta(0)))
    at.run()
    assert not at.exception, at.exception
    assert [m.value for m in at.markdown] == [
        "**1 new reply** and **1 new message** from someone no recent blast messaged since this list "
        "was loaded."], "Chong's sale is closed: not someone the list shows"
    at.button(key="rpl_show_new").click().run()
    assert not at.exception, at.exception


def test_the_check_for_new_replies_follows_the_lists_filters(engine: Engine) -> None:
    ids = _three_people(engine)
    everyone = InboxFilter(since=default_since(timezone=KL), timezone=KL, only_open=False)
    cny = InboxFilter(since=default_since(timezone=KL), timezone=KL, tags=("CNY",))
    all_of_them, only_cny = _watching(engine, everyone), _watching(engine, cny)
    with transaction(engine) as s:
        s.add(RecipientReply(recipient_id=ids["chong"], replied_at=utcnow(), text="Thanks!"))  # Raya
    _arrives(engine, _message("60199990000", "Hi, still got stock?", ago=dt.timedelta(0)))
    assert [m.value for m in all_of_them.run().markdown] == [
        "**1 new reply** and **1 new message** from someone no recent blast messaged since this list "
        "was loaded."]
    assert not only_cny.run().markdown, "neither is on a list of CNY blasts"


def test_the_page_says_nothing_new_when_it_has_just_read_the_list(engine: Engine) -> None:
    _three_people(engine)
    at = run_page(REPLIES)
    assert not [m for m in at.markdown if "since this list was loaded" in m.value]
    assert "rpl_show_new" not in {b.key for b in at.button}


def test_the_check_counts_each_new_lead_and_leaves_them_out_of_a_search(engine: Engine) -> None:
    """A STOP posted with another stranger's question: the question is a lead, counted; the STOP
    is not. A search reads the words, which the check does not: it counts replies only then."""
    _three_people(engine)
    everyone = InboxFilter(since=default_since(timezone=KL), timezone=KL)
    searching = InboxFilter(since=default_since(timezone=KL), timezone=KL, search="stock")
    watching, searched = _watching(engine, everyone), _watching(engine, searching)
    _arrives(engine, [_message("60199990001", "STOP", ago=dt.timedelta(0)),  # type: ignore[arg-type]
                      _message("60199990002", "Still got stock?", ago=dt.timedelta(0))])
    assert [m.value for m in watching.run().markdown] == [
        "**1 new message** from someone no recent blast messaged since this list was loaded."]
    assert not searched.run().markdown


def test_once_live_replies_to_practice_blasts_are_left_out(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox made them up: once the dashboard sends to WhatsApp they are nobody to call,
    on the Replies page as on the Overview."""
    from core.config import get_settings

    _three_people(engine)  # blasts with no device: the team's own
    with transaction(engine) as s:
        practice = make_blast(s, name="Sandbox try", blast_tag="Try", state="completed", device="sandbox")
        _replied(s, practice, (dt.timedelta(minutes=10), "Nak!"), contact_name="Sim",
                 phone_number="+60129990000")
    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    get_settings.cache_clear()
    at = run_page(REPLIES)
    assert "Sim" not in list(_table(at).value["Name"])
    assert "Try" not in at.multiselect(key="rpl_tags").options
    overview = run_page("pages/overview.py")
    assert any(m.value.startswith("**2 people** replied") for m in overview.markdown)


def test_a_long_page_of_replies_shows_twenty_rows_before_it_scrolls(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten rows in a small box had left half a laptop screen empty below the list."""
    from dashboard import reply_views
    from dashboard.tables import ROW_PX, height_for

    assert height_for(3) == "auto" and height_for(10) == "auto"
    assert height_for(20) == ROW_PX * 21 + 3
    assert height_for(21) == height_for(50) == ROW_PX * 21 + ROW_PX // 2 + 3, "half of the next row shows"
    asked: list[int] = []
    monkeypatch.setattr(reply_views, "height_for", lambda rows: asked.append(rows) or height_for(rows))
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        for i in range(30):
            _replied(s, blast, (dt.timedelta(minutes=i + 1), f"Reply {i}"), phone_number=f"+6012300{i:04d}")
    assert len(_table(run_page(REPLIES)).value) == 30 and asked == [30]
