"""The New blast page's upload step: Excel workbooks, and column choices that follow the file."""

from __future__ import annotations

import datetime as dt
import io

import openpyxl
import pytest
from sqlalchemy import Connection, Engine, event, func, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Checkbox

from core.config import get_settings
from core.csv_import import recent_blasts_with
from core.db import READ_ONLY, transaction
from core.models import Blast, BlastRecipient, Device, utcnow
from core.sending.pacing import ensure_device
from tests.support.factories import make_blast, make_recipient, messaged_last_week
from tests.test_excel_import import ole_file, xlsx
from tests.test_pages import CONTACTS, app_db, page  # noqa: F401  (app_db: the fixture used below)

pytestmark = pytest.mark.usefixtures("app_db")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def upload(at: AppTest, name: str, data: bytes, mime: str = "text/csv") -> AppTest:
    at.file_uploader(key="upload").set_value((name, data, mime))
    at.run()
    assert not at.exception, at.exception
    return at


def new_blast() -> AppTest:
    at = page("pages/new_blast.py")
    at.run()
    return at


SEND_AGAIN = "Send to them again anyway"


def send_again(at: AppTest) -> Checkbox:
    [tick] = [c for c in at.checkbox if c.label == SEND_AGAIN]
    return tick


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_an_excel_workbook_is_read_and_sent(engine: Engine) -> None:
    workbook = xlsx(
        ("Notes", []),
        ("Contacts", [["Nama", "No. Telefon", "Produk"], ["Aisyah", 123456789, "Kuih"],
                      ["Wei Ling", 601123456789.0, "Bak kwa"], None, ["Nobody", 12345, "Kuih"]]),
    )
    at = upload(new_blast(), "Senarai Raya.xlsx", workbook, XLSX_MIME)
    assert not at.error, [e.value for e in at.error]
    assert metrics(at) == {"Ready to send": "2", "Not a usable number": "1", "Blank line": "1"}
    assert "read from the sheet **Contacts** of the Excel workbook" in captions(at)
    assert "The workbook has 2 sheets; the contacts were read from “Contacts”" in captions(at)
    assert at.text_input(key="blast_name").value.startswith("Senarai Raya · ")
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}, {produk} is back").run()
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        sent = sorted(s.scalars(select(BlastRecipient.phone_number)))
        texts = sorted(s.scalars(select(BlastRecipient.message_text)))
    assert sent == ["+601123456789", "+60123456789"]
    assert texts == ["Hi Aisyah, Kuih is back", "Hi Wei Ling, Bak kwa is back"]


def test_an_old_xls_and_a_password_are_explained_in_words() -> None:
    at = upload(new_blast(), "list.xls", ole_file("Root Entry", "Workbook"), "application/vnd.ms-excel")
    assert at.error and "old Excel workbook (.xls)" in at.error[0].value
    assert "save it as “Excel Workbook (.xlsx)” or as CSV" in at.error[0].value
    locked = ole_file("Root Entry", "EncryptionInfo", "EncryptedPackage")
    at = upload(at, "locked.xlsx", locked, XLSX_MIME)
    assert at.error and "protected with a password" in at.error[0].value


def test_column_choices_are_forgotten_when_another_file_is_uploaded() -> None:
    first = b"Name,Mobile,Mobile 2\r\nAli,0123456789,0134567890\r\n"
    at = upload(new_blast(), "first.csv", first)
    at.selectbox(key="col_phone").set_value("Mobile 2")
    at.selectbox(key="col_name").set_value("(none)")
    at.button(key="col_apply").click().run()
    assert not at.exception, at.exception
    assert "Numbers from column **Mobile 2**, no name column found" in captions(at)

    at.file_uploader(key="upload").set_value(None).run()  # the file removed…
    at = upload(at, "contacts.csv", CONTACTS)  # …and another uploaded
    assert not at.error, [e.value for e in at.error]
    assert metrics(at)["Ready to send"] == "2"
    assert "Numbers from column **No. Telefon**, names from **Nama**" in captions(at)
    assert at.selectbox(key="col_phone").value == "No. Telefon"
    assert at.selectbox(key="col_name").value == "Nama"


def test_choices_made_for_one_file_survive_reruns_of_the_same_file() -> None:
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.selectbox(key="col_phone").set_value("Produk")
    at.button(key="col_apply").click().run()
    assert metrics(at)["Not a usable number"] == "4"
    at.run()  # as any other click does
    assert metrics(at)["Not a usable number"] == "4"
    assert at.selectbox(key="col_phone").value == "Produk"


def test_a_file_without_a_phone_column_offers_the_column_choice() -> None:
    data = b"Nama,Nombor Pelanggan,Produk\r\nAli,012-345 6789,Kuih\r\nAbu,013-456 7890,Kopi\r\n"
    at = upload(new_blast(), "contacts.csv", data)
    assert at.error and "or choose the column yourself" in at.error[0].value
    chooser = at.selectbox(key="col_phone")
    assert chooser.options == ["Nama", "Nombor Pelanggan", "Produk"]
    assert chooser.value is None
    assert at.button(key="col_apply").disabled, "nothing chosen yet"
    assert at.selectbox(key="col_name").value == "Nama"
    chooser.set_value("Nombor Pelanggan").run()
    at.button(key="col_apply").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert metrics(at)["Ready to send"] == "2"
    assert "Numbers from column **Nombor Pelanggan**, names from **Nama**" in captions(at)


def test_a_file_without_a_header_row_can_use_its_second_column() -> None:
    data = b"0123456789,0134567890\r\n0145678901,0167890123\r\n"
    at = upload(new_blast(), "numbers.csv", data)
    assert at.selectbox(key="col_phone").options == ["column 1", "column 2"]
    at.selectbox(key="col_phone").set_value("column 2")
    at.button(key="col_apply").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert "Numbers from column **column 2**" in captions(at)
    assert metrics(at)["Ready to send"] == "2"


def test_a_choice_that_leaves_nothing_to_read_can_be_undone() -> None:
    # A header with no contacts below it: choosing one of its columns leaves no one to read.
    data = b"Nama,Alamat\r\n"
    at = upload(new_blast(), "contacts.csv", data)
    at.selectbox(key="col_phone").set_value("Alamat").run()
    at.button(key="col_apply").click().run()
    assert at.error and "no contacts below it" in at.error[0].value
    at.button(key="col_reset").click().run()
    assert not at.exception, at.exception
    assert at.error and "No phone number column found" in at.error[0].value
    assert at.selectbox(key="col_phone").value is None


def test_a_changed_pace_says_it_is_not_used_until_saved() -> None:
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    assert "every practice blast uses it" in captions(at) and "Changed" not in captions(at)
    at.number_input(key="p_gap").set_value(45.0).run()
    assert "Changed: press Save pace to use it." in captions(at)
    assert at.button(key="p_save").proto.type == "primary"
    at.button(key="p_save").click().run()
    assert any("Pace saved" in m.value for m in at.success)
    # Said as it is saved: it had still said "Changed", with Save highlighted, until the next change.
    assert "Changed" not in captions(at), "the saved pace is the one shown"
    assert at.button(key="p_save").proto.type == "secondary"
    assert not [b for b in at.button if b.key == "p_reset"]
    at.run()
    assert "Changed" not in captions(at) and not at.success, "said once"


def test_quiet_hours_that_cannot_be_read_are_not_saved_and_say_why(engine: Engine) -> None:
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_input(key="p_quiet").set_value("after dinner").run()
    at.button(key="p_save").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["Quiet hours should look like 21:00-09:00, or say off."]
    assert "Changed: press Save pace to use it." in captions(at)
    assert at.button(key="send_blast").disabled


def test_a_pace_that_cannot_be_saved_says_so_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    """Save pace runs as the button's callback, outside the page: its failure is said in the
    page's words, not in Streamlit's error box."""
    import dashboard.pacing_views

    def locked(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(dashboard.pacing_views, "save_rules", locked)
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.number_input(key="p_gap").set_value(45.0).run()
    at.button(key="p_save").click().run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [
        "Could not save the pace because of an unexpected problem. It has been logged."]
    assert "Changed: press Save pace to use it." in captions(at)


def test_a_list_sent_recently_needs_a_tick_before_it_goes_again(engine: Engine) -> None:
    first = ready_to_send()
    assert not first.button(key="send_blast").disabled and not first.warning
    first.button(key="send_blast").click().run()
    with transaction(engine) as s:
        sent = s.scalar(select(Blast.id))

    again = ready_to_send()  # the same file, in a new visit to the page
    [warning] = [w.value for w in again.warning if "looks like one sent recently" in w.value]
    assert f"Blast #{sent}" in warning and "is sending to 2 of these people" in warning
    assert again.button(key="send_blast").disabled
    assert "Send to them again anyway" in captions(again)
    send_again(again).check().run()
    assert not again.button(key="send_blast").disabled


def ready_to_send() -> AppTest:
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}").run()
    return at


def blast_ids(engine: Engine) -> list[int]:
    with transaction(engine) as s:
        return list(s.scalars(select(Blast.id).order_by(Blast.id)))


def sent_last_week(engine: Engine) -> int:
    """A blast to the people of CONTACTS, made a few days ago."""
    with transaction(engine) as s:
        blast = make_blast(s, name="Last week", state="completed", created_at=utcnow() - dt.timedelta(days=3))
        for phone in ("+60123456789", "+601123456789"):
            make_recipient(s, blast, phone_number=phone)
        return blast.id


def test_a_list_mostly_sent_recently_can_go_to_the_others_only(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The only ways on had been to message them all twice, or to mend the file and upload it again."""
    monkeypatch.setenv("SEND_PACING", "on")  # for the finish estimate
    get_settings.cache_clear()
    phones = [f"+6012345{k:04d}" for k in range(6)]
    with transaction(engine) as s:
        earlier = make_blast(s, name="This morning", state="completed", device="sandbox")
        went = ("READ_ACK", "DELIVERY_ACK", "REPLIED", "SERVER_ACK")
        for phone, status in zip(phones[:4], went, strict=True):
            make_recipient(s, earlier, phone_number=phone, status=status, sent_at=utcnow())
        earlier_id = earlier.id
    listed = "Name,Phone\n" + "".join(f"P{k},{phone}\n" for k, phone in enumerate(phones))
    at = upload(new_blast(), "leads.csv", listed.encode())
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}").run()
    assert at.button(key="send_blast").disabled
    [leave_out] = [c for c in at.checkbox if c.label.startswith("Leave them out")]
    assert leave_out.label == "Leave them out: send only to the 2 others"
    leave_out.check().run()
    assert not at.exception, at.exception
    assert not [c for c in at.checkbox if c.label == SEND_AGAIN], "one choice or the other"
    send = at.button(key="send_blast")
    assert (send.disabled, send.label) == (False, "Send to 2 people")
    said = " ".join(e.value for e in (*at.caption, *at.markdown, *at.info))
    assert "At this pace, **2** messages take" in said, "the finish is the 2's, not the list's 6"
    send.click().run()
    assert not at.exception, at.exception
    [_, made] = blast_ids(engine)
    with transaction(engine) as s:
        sent_to = s.scalars(select(BlastRecipient.phone_number).where(BlastRecipient.blast_id == made))
        assert sorted(sent_to) == phones[4:]
        assert s.get(Blast, made).total_recipients == 2
    assert earlier_id != made


def test_a_tick_given_for_last_weeks_blast_does_not_send_the_list_from_two_tabs(engine: Engine) -> None:
    """Both tabs ticked "Send to them again anyway" because of last week's blast: the second
    Send, seconds after the first tab's, had messaged the same people a second time."""
    earlier = sent_last_week(engine)
    tabs = [ready_to_send(), ready_to_send()]
    for tab in tabs:
        send_again(tab).check().run()
    first, second = tabs
    first.button(key="send_blast").click().run()
    assert not first.exception, first.exception
    [_, made] = blast_ids(engine)

    second.button(key="send_blast").click().run()
    assert not second.exception, second.exception
    assert blast_ids(engine) == [earlier, made], "nothing more was made"
    [error] = [e.value for e in second.error]
    assert error.startswith(f"Nothing was sent: blast #{made} “contacts · ")
    assert "made while you were setting up this one" in error
    assert f"blast #{earlier}" not in error, "the one the tick was for is not news"
    [warning] = [w.value for w in second.warning if "looks like one sent recently" in w.value]
    assert f"Blast #{made}" in warning and f"Blast #{earlier}" in warning
    assert not send_again(second).value, "asked again, for both blasts"
    assert second.button(key="send_blast").disabled
    send_again(second).check().run()
    second.button(key="send_blast").click().run()
    assert len(blast_ids(engine)) == 3, "sent once the marketer says so, knowing of both"


def test_a_list_sent_from_another_tab_is_not_sent_again_from_this_one(engine: Engine) -> None:
    tabs = [ready_to_send(), ready_to_send()]
    for tab in tabs:
        assert not tab.button(key="send_blast").disabled
        tab.button(key="send_blast").click().run()
        assert not tab.exception, tab.exception
    [made] = blast_ids(engine)
    assert not [s.value for s in tabs[1].success if "is sending now" in s.value]
    assert [e.value for e in tabs[1].error][0].startswith(f"Nothing was sent: blast #{made} ")


def test_a_blast_made_from_the_list_as_send_is_pressed_stops_it(engine: Engine) -> None:
    """Looked for again as the blast is made: one committed by another tab after this page was
    drawn again for the click, and before its blast is made, is found too."""
    at = ready_to_send()
    waiting = [True]

    def another_tab_sends(session: Session, transaction: object, connection: Connection) -> None:
        if waiting and not connection.get_execution_options().get(READ_ONLY):  # Send's, the first to write
            waiting.clear()
            with Session(bind=connection) as other:
                blast = make_blast(other, name="From another tab", state="sending")
                for phone in ("+60123456789", "+601123456789"):
                    make_recipient(other, blast, phone_number=phone)

    event.listen(Session, "after_begin", another_tab_sends)
    try:
        at.button(key="send_blast").click().run()
    finally:
        event.remove(Session, "after_begin", another_tab_sends)
    assert not at.exception, at.exception
    [other] = blast_ids(engine)
    assert [e.value for e in at.error][0].startswith(f"Nothing was sent: blast #{other} “From another tab”")
    assert not [s.value for s in at.success if "is sending now" in s.value]


def test_send_waits_for_a_changed_pace_to_be_saved_or_put_back(engine: Engine) -> None:
    """"Most messages a day" set to 2 without Save pace: Send had sent at the old pace."""
    at = ready_to_send()
    saved = at.number_input(key="p_cap").value
    at.number_input(key="p_cap").set_value(2).run()
    assert at.button(key="send_blast").disabled
    assert "Before sending: save the changed pace in step 4, or put it back." in captions(at)
    at.button(key="p_reset").click().run()
    assert at.number_input(key="p_cap").value == saved
    assert not at.button(key="send_blast").disabled and "Before sending" not in captions(at)

    at.number_input(key="p_cap").set_value(2).run()
    at.button(key="p_save").click().run()
    assert not at.button(key="send_blast").disabled
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        assert s.get(Device, get_settings().wsapme_device).daily_cap == 2
        assert s.scalar(select(Blast.state)) == "sending"


@pytest.mark.parametrize("typed", ["21-9", "21:00 - 09:00", "21:00-9:00"])
def test_quiet_hours_written_another_way_are_saved_and_send_goes(engine: Engine, typed: str) -> None:
    """Saved, the pace still read as changed (the text was compared, not the hours), and Send
    stayed blocked for good."""
    at = ready_to_send()
    at.text_input(key="p_quiet").set_value(typed).run()
    at.button(key="p_save").click().run()
    at.run()
    assert not at.button(key="send_blast").disabled, captions(at)
    assert at.text_input(key="p_quiet").value == "21:00-09:00", "shown as it was saved"


def test_a_pace_saved_in_another_tab_is_shown_not_called_a_change(engine: Engine) -> None:
    """Saved by a colleague: this tab had called its old boxes a change, blocked Send, and its
    Save button would have written the old pace back."""
    from core.sending.pacing import PacingRules, save_rules

    at = ready_to_send()
    settings = get_settings()
    with transaction(engine) as s:
        rules = PacingRules(min_gap_seconds=20, jitter_seconds=5, pause_every=0, pause_seconds=0,
                            daily_cap=2, quiet_start=None, quiet_end=None)
        save_rules(s, device=settings.wsapme_device, rules=rules, settings=settings)
    at.run()
    assert at.number_input(key="p_cap").value == 2 and at.number_input(key="p_gap").value == 20
    assert not at.button(key="send_blast").disabled, captions(at)


TYPED = {"blast_name": "Raya list A", "blast_tag": "Raya", "blast_stage": "Second", "test_to": "012-999 8888"}
AFRESH = {"blast_tag": "", "blast_stage": "Initial", "tpl": ""}  # and the name suggested for the file


def typed_in(at: AppTest) -> dict[str, str]:
    boxes = {t.key: t.value for t in at.text_input if t.key in TYPED}
    return {**boxes, "tpl": at.text_area(key="tpl").value}


def type_a_blast(at: AppTest) -> AppTest:
    at.text_area(key="tpl").set_value("Hi {name}, {produk} is back").run()  # then a test can be sent
    for key, value in TYPED.items():
        at.text_input(key=key).set_value(value)
    return at.run()


def away_and_back(at: AppTest) -> AppTest:
    at.switch_page("pages/overview.py").run()
    at.switch_page("pages/new_blast.py").run()
    assert not at.exception, at.exception
    return at


def test_the_file_and_what_was_typed_are_kept_when_another_page_is_opened(engine: Engine) -> None:
    at = away_and_back(type_a_blast(upload(new_blast(), "contacts.csv", CONTACTS)))
    assert any("You were setting up a blast from **contacts\\.csv**" in i.value for i in at.info)
    at.button(key="continue_upload").click().run()
    assert not at.exception, at.exception
    assert typed_in(at) == {**TYPED, "tpl": "Hi {name}, {produk} is back"}
    assert metrics(at)["Ready to send"] == "2"
    assert "Contacts from **contacts\\.csv**, uploaded earlier." in captions(at)

    at = away_and_back(at)  # going on with it is remembered
    assert typed_in(at) == {**TYPED, "tpl": "Hi {name}, {produk} is back"}
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        blast = s.scalars(select(Blast)).one()
        assert (blast.name, blast.blast_tag, blast.follow_up_stage) == ("Raya list A", "Raya", "Second")
    at = away_and_back(at)  # its blast made, the file is done with
    assert not [b for b in at.button if b.key == "continue_upload"]


def test_starting_over_forgets_the_file_and_what_was_typed() -> None:
    at = away_and_back(type_a_blast(upload(new_blast(), "contacts.csv", CONTACTS)))
    at.button(key="start_over").click().run()
    assert not [b for b in at.button if b.key == "continue_upload"]
    assert any("Upload your contact list" in i.value for i in at.info)
    at = upload(at, "contacts.csv", CONTACTS)
    assert typed_in(at) == {"blast_name": at.text_input(key="blast_name").value, **AFRESH}
    assert at.text_input(key="blast_name").value.startswith("contacts · ")


def test_another_file_uploaded_on_coming_back_starts_afresh() -> None:
    at = away_and_back(type_a_blast(upload(new_blast(), "contacts.csv", CONTACTS)))
    at = upload(at, "others.csv", b"Nama,No. Telefon\nSiti,013-456 7890\n")
    assert typed_in(at) == {"blast_name": at.text_input(key="blast_name").value, **AFRESH}
    assert at.text_input(key="blast_name").value.startswith("others · ")
    at = away_and_back(at)
    assert [b.label for b in at.button if b.key == "continue_upload"] == ["Continue with others\\.csv"]


def test_another_file_dropped_on_the_page_does_not_take_the_first_ones_name_along() -> None:
    """Typed for contacts.csv, then others.csv dropped on the page: after another page and
    Continue, the name typed for contacts.csv had come back for others.csv."""
    at = upload(type_a_blast(upload(new_blast(), "contacts.csv", CONTACTS)), "others.csv",
                b"Nama,No. Telefon\nSiti,013-456 7890\n")
    assert typed_in(at) == {"blast_name": at.text_input(key="blast_name").value, **AFRESH}
    at = away_and_back(at)
    at.button(key="continue_upload").click().run()
    assert at.text_input(key="blast_name").value.startswith("others · ")
    assert typed_in(at) == {"blast_name": at.text_input(key="blast_name").value, **AFRESH}


def test_a_blast_chosen_to_be_scheduled_is_still_scheduled_after_continue() -> None:
    """It had come back as "Send now", one click from sending at once."""
    at = ready_to_send()
    at.radio(key="when").set_value("Schedule for later").run()
    at.date_input(key="when_day").set_value(dt.date(2031, 1, 5))
    at.time_input(key="when_time").set_value(dt.time(15, 30)).run()
    at = away_and_back(at)
    at.button(key="continue_upload").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="when").value == "Schedule for later"
    assert (at.date_input(key="when_day").value, at.time_input(key="when_time").value) == (
        dt.date(2031, 1, 5), dt.time(15, 30)), "not back to tomorrow at 10:00"
    assert at.button(key="send_blast").label == "Schedule the blast"


def test_a_file_taken_off_the_page_is_not_offered_back() -> None:
    at = type_a_blast(upload(new_blast(), "contacts.csv", CONTACTS))
    at.file_uploader(key="upload").set_value(None).run()
    at = away_and_back(at)
    assert not [b for b in at.button if b.key == "continue_upload"]
    at = upload(at, "contacts.csv", CONTACTS)
    assert at.text_input(key="blast_tag").value == "" and at.text_area(key="tpl").value == ""


def send_contacts(engine: Engine) -> tuple[AppTest, int]:
    """CONTACTS sent as a "Raya" blast from the page; the page, and the blast made."""
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}").run()
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        return at, s.scalar(select(func.max(Blast.id)))


def test_a_blast_behind_another_on_the_same_number_says_it_waits(engine: Engine) -> None:
    """The worker sends a number's blasts oldest first: a new one is not "sending now"."""
    from core.sending import gateways

    with transaction(engine) as s:
        device = gateways.launch_device(get_settings())
        older = make_blast(s, state="sending", name="Raya promo", device=device)
        for k in range(40):
            make_recipient(s, older, phone_number=f"+6011{k:08d}", status="QUEUED")
    at, made = send_contacts(engine)
    assert [m.value for m in at.success if f"Blast #{made}" in m.value] == [
        f"Blast #{made} is in line to send: it waits for “Raya promo” to finish first "
        "(40 messages to go from the same WhatsApp number)."]


def test_recent_blasts_with_most_of_a_list(engine: Engine) -> None:
    now = utcnow()
    with transaction(engine) as s:
        recent = make_blast(s, state="sending")
        old = make_blast(s, state="completed", created_at=now - dt.timedelta(days=8))
        cancelled = make_blast(s, state="cancelled")
        few = make_blast(s, state="completed")
        for blast in (recent, old, cancelled):
            for phone in ("+60120000001", "+60120000002", "+60120000003"):
                make_recipient(s, blast, phone_number=phone)
        make_recipient(s, few, phone_number="+60120000001")
        ids = recent.id
    with transaction(engine) as s:
        found = recent_blasts_with(s, ["+60120000001", "+60120000002", "+60120000003", "+60129999999"],
                                   now=now)
    assert [(o.blast_id, o.shared) for o in found] == [(ids, 3)]
    with transaction(engine) as s:  # 1 of 3 is not most of them; 2 of 3 and 1 of 2 are
        assert recent_blasts_with(s, ["+60120000001", "+60129999998", "+60129999999"], now=now) == []
        assert {o.blast_id for o in recent_blasts_with(
            s, ["+60120000001", "+60120000002", "+60129999999"], now=now)} == {ids}
        assert len(recent_blasts_with(s, ["+60120000001", "+60129999999"], now=now)) == 2


def test_the_blast_just_made_is_not_taken_for_a_list_sent_before(engine: Engine) -> None:
    at, made = send_contacts(engine)
    assert [m.value for m in at.success if "is sending now" in m.value] == [f"Blast #{made} is sending now."]
    assert not [w.value for w in at.warning if "looks like one sent recently" in w.value]
    assert not [c for c in at.checkbox if c.label == SEND_AGAIN]
    assert "Before sending" not in captions(at)


def test_the_second_of_two_columns_with_one_name_can_be_chosen() -> None:
    data = b"Name,Phone,Phone\r\nAli,03-2123 4567,012-345 6789\r\nSiti,,013-456 7890\r\n"
    at = upload(new_blast(), "contacts.csv", data)
    chooser = at.selectbox(key="col_phone")
    assert chooser.options == ["Name", "Phone (column 2)", "Phone (column 3)"]
    assert chooser.value == "Phone (column 3)", "the one holding mobile numbers"
    chooser.set_value("Phone (column 2)")
    at.button(key="col_apply").click().run()
    assert not at.exception, at.exception
    assert "Numbers from column **Phone (column 2)**, names from **Name**" in captions(at)
    assert at.selectbox(key="col_phone").value == "Phone (column 2)"


@pytest.mark.parametrize("env", [
    {"SEND_DAILY_CAP": "6000"}, {"SEND_DAILY_CAP": "100000"}, {"SEND_MIN_GAP_SECONDS": "0"},
    {"SEND_MIN_GAP_SECONDS": "0.05"}, {"SEND_MIN_GAP_SECONDS": "3600"}, {"SEND_JITTER_SECONDS": "3600"},
    {"SEND_PAUSE_SECONDS": "86400"}, {"SEND_PAUSE_EVERY": "100000"},
])
def test_the_pace_step_shows_every_pace_the_settings_allow(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    assert "every practice blast uses it" in captions(at) and "Changed" not in captions(at)


def test_a_saved_pace_beyond_the_usual_limits_is_shown_and_kept_as_saved(engine: Engine) -> None:
    settings = get_settings()
    saved = {"min_gap_seconds": 0.01, "jitter_seconds": 7200.0, "pause_every": 250_000,
             "pause_seconds": 2 * 86_400.0, "daily_cap": 250_000}
    with transaction(engine) as s:
        device = ensure_device(s, device=settings.wsapme_device, settings=settings)
        for field, value in saved.items():
            setattr(device, field, value)
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    shown = {key: at.number_input(key=key).value for key in ("p_gap", "p_jit", "p_every", "p_pause", "p_cap")}
    assert shown == {"p_gap": 0.01, "p_jit": 7200.0, "p_every": 250_000, "p_pause": 2 * 1440.0,
                     "p_cap": 250_000}
    assert "Changed" not in captions(at)
    at.button(key="p_save").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        row = s.get(Device, settings.wsapme_device)
        assert {field: getattr(row, field) for field in saved} == saved


def test_a_draft_keeps_a_message_with_a_mistake_and_the_campaigns_spelling(engine: Engine) -> None:
    """"Save as draft" with a placeholder typo had stored no message at all, saying it was saved;
    "raya  promo" had started a second campaign beside "Raya Promo" on the Overview."""
    with transaction(engine) as s:
        make_blast(s, blast_tag="Raya Promo", follow_up_stage="Initial", state="completed")
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_input(key="blast_tag").set_value("raya  promo ")
    at.text_input(key="blast_stage").set_value("initial")
    at.text_area(key="tpl").set_value("Salam {nmae}! Our *Raya promo* is on").run()
    at.button(key="save_draft").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        draft = s.scalars(select(Blast).where(Blast.state == "draft")).one()
        assert draft.message_template == "Salam {nmae}! Our *Raya promo* is on"
        assert (draft.blast_tag, draft.follow_up_stage) == ("Raya Promo", "Initial")
    # Nothing to follow yet: the way on is to its page, to send it.
    assert [link.value for link in at.page_link] == [f"Open the draft (blast #{draft.id}) to send it"]
    assert "upload it again as a new blast" not in captions(at)


def test_a_list_mostly_sent_this_week_is_flagged_however_long(engine: Engine) -> None:
    """Judged by a sample spread over the list: its lowest numbers alone were all new."""
    sent = [f"+60123{i:06d}" for i in range(3_000)]
    new = [f"+60112{i:07d}" for i in range(2_000)]
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        s.add_all(BlastRecipient(blast_id=blast.id, phone_number=p) for p in sent)
    with transaction(engine) as s:
        [overlap] = recent_blasts_with(s, sent + new, now=utcnow())
    assert overlap.blast_id == blast.id and abs(overlap.shared - 3_000) <= 10, "counted for the whole list"


ONE_BLANK_NAME = b"Nama,No. Telefon\n,012-345 6789\nWei Ling,+60 11-2345 6789\n"


def gaps_ticked() -> AppTest:
    at = upload(new_blast(), "contacts.csv", ONE_BLANK_NAME)
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}").run()
    assert at.button(key="send_blast").disabled
    at.checkbox(key="tpl_blanks").check().run()
    assert not at.button(key="send_blast").disabled
    return at


def continue_after_another_page(at: AppTest) -> AppTest:
    at = away_and_back(at)
    at.button(key="continue_upload").click().run()
    assert not at.exception, at.exception
    return at


def test_send_anyway_is_still_ticked_after_another_page(engine: Engine) -> None:
    """The boxes came back, the tick did not: Send was blocked again."""
    at = continue_after_another_page(gaps_ticked())
    assert at.checkbox(key="tpl_blanks").value
    assert not at.button(key="send_blast").disabled, captions(at)
    at.button(key="send_blast").click().run()
    with transaction(engine) as s:
        assert s.scalar(select(Blast.state)) == "sending"


def test_send_anyway_answers_for_its_file_and_its_message_only(engine: Engine) -> None:
    at = upload(gaps_ticked(), "others.csv", b"Nama,No. Telefon\n,013-456 7890\n")
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}").run()
    assert not at.checkbox(key="tpl_blanks").value, "another list asks again"
    assert at.button(key="send_blast").disabled

    at = gaps_ticked()
    at.text_area(key="tpl").set_value("Hello all").run()  # no gaps: nothing to answer for
    at.text_area(key="tpl").set_value("Hello all").run()
    at.text_area(key="tpl").set_value("Hello {name}").run()
    assert not at.checkbox(key="tpl_blanks").value, "a message with gaps again asks again"
    assert at.button(key="send_blast").disabled


def test_send_to_them_again_is_still_ticked_after_another_page(engine: Engine) -> None:
    earlier = sent_last_week(engine)
    at = ready_to_send()
    send_again(at).check().run()
    at = continue_after_another_page(at)
    assert send_again(at).value and not at.button(key="send_blast").disabled, captions(at)
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    assert len(blast_ids(engine)) == 2 and blast_ids(engine)[0] == earlier


def test_send_to_them_again_is_asked_again_for_another_file(engine: Engine) -> None:
    sent_last_week(engine)
    at = ready_to_send()
    send_again(at).check().run()
    at = upload(at, "same people.csv", CONTACTS + b"Siti,013-456 7890,Kuih\n")
    assert not send_again(at).value, "the tick was for contacts.csv"


def filtered_workbook() -> bytes:
    """Three contacts, the second hidden by an Excel filter on the Branch column."""
    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["Nama", "No. Telefon", "Branch"], ["Aisyah", "012-345 6789", "KL"],
                ["Wei Ling", "011-2345 6789", "Penang"], ["Ravi", "019-876 5432", "KL"]):
        sheet.append(row)
    sheet.auto_filter.ref = "A1:C4"
    sheet.row_dimensions[3].hidden = True
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_row_hidden_by_a_filter_is_counted_as_hidden_not_as_a_bad_number() -> None:
    """It was counted as "Not a usable number", under "1 rows need a look"."""
    at = upload(new_blast(), "Branches.xlsx", filtered_workbook(), XLSX_MIME)
    assert metrics(at) == {"Ready to send": "2", "Hidden in Excel": "1"}
    [expander] = [e for e in at.expander if "need" in e.label]
    assert expander.label == "1 row needs a look"
    [table] = at.dataframe
    assert table.value[["Line", "What", "Why"]].values.tolist() == [
        [3, "Hidden in Excel", "hidden in Excel by a filter, so left out"]]


def test_rows_that_need_a_look_are_counted_in_words() -> None:
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    assert metrics(at) == {"Ready to send": "2", "Duplicate (skipped)": "1", "Not a usable number": "1"}
    assert [e.label for e in at.expander if "need" in e.label] == ["2 rows need a look"]


# A blast sent while nothing is sending messages.


def _nothing_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """RUN_WORKER=false, no `python -m core worker`, and the server up long enough for one to have
    checked in."""
    from core import uptime

    monkeypatch.setenv("RUN_WORKER", "false")
    get_settings.cache_clear()
    monkeypatch.setattr(uptime, "STARTED_AT", utcnow() - dt.timedelta(hours=1), raising=False)


def test_a_blast_sent_while_nothing_sends_says_it_is_not_going_out(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The confirmation said "Blast #1 is sending now." with nothing running to send it."""
    _nothing_sends(monkeypatch)
    at, made = send_contacts(engine)
    assert not [m.value for m in at.success if "is sending now" in m.value]
    assert [w.value for w in at.warning if f"Blast #{made}" in w.value] == [
        f"Blast #{made} is saved, but its messages are not going out: nothing that sends messages is "
        "running right now. Its messages wait, and none is lost. Ask whoever runs the dashboard to start "
        "sending."]
    assert "start it with `RUN_WORKER=true`, or run `python -m core worker`" in captions(at)
    assert [link.value for link in at.page_link] == [f"Follow blast #{made}"]


def test_before_send_a_page_with_nothing_sending_says_so_instead_of_a_finish_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It promised "30 messages finish around 18:53 if sent now" with nothing running to send them."""
    _nothing_sends(monkeypatch)
    at = ready_to_send()
    assert not at.exception, at.exception
    said = [w.value for w in at.warning if "Nothing that sends messages is running" in w.value]
    assert said == ["Nothing that sends messages is running right now: a blast sent now waits until "
                    "sending starts, and none of it is lost. Ask whoever runs the dashboard to start "
                    "sending."]
    shown = [m.value for m in (*at.markdown, *at.info, *at.caption)]
    assert not [words for words in shown if "if sent now" in words or "finish around" in words], shown


def test_a_blast_scheduled_while_nothing_sends_says_it_will_not_start(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _nothing_sends(monkeypatch)
    at = ready_to_send()
    at.radio(key="when").set_value("Schedule for later").run()
    at.date_input(key="when_day").set_value(dt.date(2031, 1, 5)).run()
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    [made] = blast_ids(engine)
    [warning] = [w.value for w in at.warning if f"Blast #{made}" in w.value]
    assert warning.startswith(f"Blast #{made} is scheduled, but it will not start at its time unless "
                              "sending is started before then")


def test_a_blast_sent_while_a_worker_checks_in_is_sending_now(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import app_state
    from core.sending.worker import HEARTBEAT_PREFIX

    _nothing_sends(monkeypatch)
    with transaction(engine) as s:
        app_state.put(s, key=HEARTBEAT_PREFIX + "worker-host:4242:abcd", value={"sent": 0})
    at, made = send_contacts(engine)
    assert [m.value for m in at.success if "is sending now" in m.value] == [f"Blast #{made} is sending now."]
    assert not [w.value for w in at.warning if "not going out" in w.value]


# A list whose earlier blast sent it nothing.

SEND_SECOND = "Send a second blast anyway"
CONTACT_PHONES = ("+60123456789", "+601123456789")


def _holding(engine: Engine, *, state: str, statuses: tuple[str, ...] = ("QUEUED", "QUEUED"),
             device: str = "sandbox") -> int:
    """A recent blast to the people of CONTACTS, in `state`, their messages at `statuses`."""
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo", state=state, device=device,
                           scheduled_at=utcnow() + dt.timedelta(days=1) if state == "scheduled" else None)
        for phone, status in zip(CONTACT_PHONES, statuses, strict=True):
            make_recipient(s, blast, phone_number=phone, status=status)
        return blast.id


@pytest.mark.parametrize(("state", "instead"), [
    ("paused", "resume it rather than sending a second blast"),
    ("scheduled", "it sends to them at its time, so check it rather than sending a second blast"),
    ("draft", "send it from its page rather than sending a second blast"),
])
def test_a_list_an_earlier_blast_holds_unsent_says_so_not_sent_twice(
    engine: Engine, state: str, instead: str
) -> None:
    """A list whose earlier blast was paused with 0 sent was told "Sending it again messages the
    same people twice"."""
    earlier = _holding(engine, state=state)
    at = ready_to_send()
    assert not [w.value for w in at.warning if "looks like one sent recently" in w.value]
    [warning] = [w.value for w in at.warning if f"Blast #{earlier}" in w.value]
    assert warning.startswith("Most of this list is in a recent blast that has not messaged them yet.")
    assert f"still holds 2 of these numbers, not sent yet: {instead}." in warning
    assert f"Open blast #{earlier}" in [link.value for link in at.page_link]
    assert at.button(key="send_blast").disabled
    assert f"tick “{SEND_SECOND}” or change the list" in captions(at)
    [tick] = [c for c in at.checkbox if c.label == SEND_SECOND]
    tick.check().run()
    assert not at.button(key="send_blast").disabled
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    assert len(blast_ids(engine)) == 2, "sent once the marketer says so"


@pytest.mark.parametrize("state", ["completed", "paused"])
def test_a_list_whose_earlier_messages_were_all_refused_is_not_called_sent(
    engine: Engine, state: str
) -> None:
    """The gateway refused them: nobody got the message, and nothing of it is left to send."""
    _holding(engine, state=state, statuses=("FAILED", "FAILED"))
    at = ready_to_send()
    # Beside the pace's own warning (these tests turn quiet hours off), none.
    assert not [w.value for w in at.warning if "flagged as spam" not in w.value]
    assert not at.button(key="send_blast").disabled


def test_a_list_whose_earlier_messages_may_have_gone_is_called_sent(engine: Engine) -> None:
    earlier = _holding(engine, state="completed", statuses=("UNKNOWN", "FAILED"))
    at = ready_to_send()
    [warning] = [w.value for w in at.warning if "looks like one sent recently" in w.value]
    assert f"Blast #{earlier}" in warning and "already sent to 1 of these people" in warning
    # The one refused (FAILED) never got it: leaving out the other sends it to them alone.
    assert [c.label for c in at.checkbox] == ["Leave them out: send only to the 1 other person", SEND_AGAIN]


def test_a_list_sent_in_practice_is_not_called_sent_once_sending_for_real(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _holding(engine, state="completed", statuses=("READ_ACK", "DELIVERY_ACK"))
    assert [w.value for w in ready_to_send().warning if "looks like one sent recently" in w.value], \
        "in practice mode it was practice too"
    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    get_settings.cache_clear()
    at = ready_to_send()
    # Beside the pace's own warning (these tests turn quiet hours off), none.
    assert not [w.value for w in at.warning if "flagged as spam" not in w.value]
    assert not at.button(key="send_blast").disabled


def test_a_list_an_earlier_blast_half_sent_says_both_what_went_and_what_it_holds(engine: Engine) -> None:
    """Paused halfway: who got it would get it twice, and the rest wait in that blast. Counting only
    the waiting ones had told the marketer the earlier blast "has not messaged them yet"."""
    earlier = _holding(engine, state="paused", statuses=("READ_ACK", "QUEUED"))
    at = ready_to_send()
    [warning] = [w.value for w in at.warning if f"Blast #{earlier}" in w.value]
    assert warning.startswith("This list looks like one sent recently.")
    assert ("already sent to 1 of these people, and still holds 1 not sent yet: resume it rather than "
            "sending a second blast.") in warning
    assert not [w.value for w in at.warning if "has not messaged them yet" in w.value]
    assert [c.label for c in at.checkbox] == [SEND_AGAIN]


def test_a_new_list_sharing_some_people_with_last_weeks_blasts_says_how_many(engine: Engine) -> None:
    """98 of a new list of 248 had been messaged a quarter of an hour before, and nothing said so:
    only a blast holding half a list or more was named."""
    listed = [f"+6012{k:07d}" for k in range(1, 11)]
    with transaction(engine) as s:
        last_week = messaged_last_week(s, listed[:3])
        unsent = make_blast(s, name="Paused one", state="paused")
        make_recipient(s, unsent, phone_number=listed[3], status="QUEUED")
        older = make_blast(s, name="Last month", state="completed",
                           created_at=utcnow() - dt.timedelta(days=9))
        make_recipient(s, older, phone_number=listed[4], status="READ_ACK", sent_at=utcnow())
        week_id = last_week.id
    data = ("Name,Phone\n" + "".join(f"P{k},{p}\n" for k, p in enumerate(listed))).encode()
    at = upload(new_blast(), "leads.csv", data)
    assert not [w.value for w in at.warning if "looks like one sent recently" in w.value]
    said = [i.value for i in at.info if "in the past week" in i.value]
    assert said == [f"**3 of these 10 people** were messaged in the past week, by blast #{week_id} “Year "
                    "end · 20 Nov”. This blast messages them again."]
    # To leave them out, they had to be taken out of the file and the file uploaded again.
    [leave_out] = [c for c in at.checkbox if c.label.startswith("Leave them out")]
    assert leave_out.label == "Leave them out: send only to the 7 others"
    at.text_input(key="blast_tag").set_value("Leads")
    at.text_area(key="tpl").set_value("Hi {name}").run()
    assert at.button(key="send_blast").label == "Send to 10 people"
    leave_out.check().run()
    assert not at.exception, at.exception
    assert [i.value for i in at.info if "in the past week" in i.value] == [
        f"**3 of these 10 people** were messaged in the past week, by blast #{week_id} “Year end · 20 Nov”. "
        "They are left out of this blast."]
    send = at.button(key="send_blast")
    assert (send.disabled, send.label) == (False, "Send to 7 people")
    send.click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        made = s.scalar(select(func.max(Blast.id)))
        sent_to = s.scalars(select(BlastRecipient.phone_number).where(BlastRecipient.blast_id == made))
        assert sorted(sent_to) == listed[3:], "the one a paused blast holds unsent is not left out"
    # One of forty (under one in twenty) is a regular among new leads: no news.
    many = listed[2:3] + [f"+6013{k:07d}" for k in range(1, 40)]
    data = ("Name,Phone\n" + "".join(f"P{k},{p}\n" for k, p in enumerate(many))).encode()
    assert not [i.value for i in upload(new_blast(), "many.csv", data).info if "in the past week" in i.value]


def test_the_tag_box_says_which_campaign_it_joins_or_which_one_it_looks_like(engine: Engine) -> None:
    with transaction(engine) as s:
        make_blast(s, blast_tag="Year End Sale", state="completed")
        make_blast(s, blast_tag="Year End Sale", state="completed")
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    at.text_input(key="blast_tag").set_value("year end sale").run()
    assert "Joins the campaign “Year End Sale” (2 blasts so far)." in captions(at)
    at.text_input(key="blast_tag").set_value("Year-End Sale").run()
    assert [w.value for w in at.warning if "new campaign tag" in w.value] == [
        "A new campaign tag. If this is the same campaign as “Year End Sale”, type it that way: the "
        "Overview counts each tag apart."]
    at.text_input(key="blast_tag").set_value("Merdeka").run()
    assert "Joins the campaign" not in captions(at)
    assert not [w.value for w in at.warning if "new campaign tag" in w.value]


def test_the_pace_boxes_come_back_with_the_saved_pace_after_the_list_was_taken_off() -> None:
    """Seen in Chromium: with the list taken off (✕) and another uploaded, the browser sent the
    boxes back as zeros and an empty quiet hours, with "Changed: press Save pace" one click
    from saving no pace at all. Here the browser's zeros are put in by hand."""
    at = upload(new_blast(), "contacts.csv", CONTACTS)
    assert at.number_input(key="p_gap").value == 8.0
    at.file_uploader(key="upload").set_value(None).run()
    assert not [n for n in at.number_input if n.key == "p_gap"], "no list: no pace boxes"
    for key, empty in (("p_gap", 0.0), ("p_jit", 0.0), ("p_cap", 0), ("p_every", 0), ("p_pause", 0.0),
                       ("p_quiet", "")):
        at.session_state[key] = empty
    at = upload(at, "cny.csv", b"Nama,Phone\nTan,013-456 7890\n")
    assert (at.number_input(key="p_gap").value, at.number_input(key="p_cap").value) == (8.0, 500)
    assert at.text_input(key="p_quiet").value == "off"  # as the tests set it, not the browser's ""
    assert "Changed" not in captions(at)
