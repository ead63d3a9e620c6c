"""The opt-out list: once a number asks to stop, no blast sends to it, whatever its state."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from core.db import transaction
from core.models import Blast, BlastRecipient, OptOut, StatusHistory, utcnow
from core.opt_outs import NOT_SENT_AGAIN, add_opt_outs, listed, remove_opt_out, withdraw_from_queues
from core.recipients import resend
from core.sending.queue import expire_leases
from core.webhook.inbox import WebhookRules, process_entry, store_raw
from dashboard.opt_out_views import KEY, read_numbers
from dashboard.recipient_views import table_key
from tests import test_pages
from tests.support.factories import make_blast, make_recipient

PHONE = "+60123456789"


def _blast_with(engine: Engine, state: str, *, status: str = "QUEUED") -> int:
    """A blast in `state` holding PHONE (with `status`) and one other number, still queued."""
    with transaction(engine) as s:
        blast = make_blast(s, state=state)
        make_recipient(s, blast, phone_number=PHONE, status=status)
        make_recipient(s, blast, status="QUEUED")
        return blast.id


def _holds_phone(engine: Engine, blast_id: int) -> tuple[bool, int, int]:
    """Whether the blast still holds PHONE, its recipient total and its opted-out count."""
    with transaction(engine) as s:
        query = select(BlastRecipient.phone_number).where(BlastRecipient.blast_id == blast_id)
        phones = set(s.scalars(query))
        blast = s.get(Blast, blast_id)
        return PHONE in phones, blast.total_recipients, blast.skipped_opted_out


def _stop_by_webhook(engine: Engine) -> None:
    """PHONE replies STOP, through the webhook as the gateway posts it."""
    body = json.dumps({"type": "text", "message": "STOP", "from": PHONE.lstrip("+") + "@c.us"}).encode()
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=body, content_type="application/json")
    with transaction(engine) as s:
        outcome = process_entry(s, inbox_id=inbox_id, rules=WebhookRules())
    assert outcome is not None and outcome.state == "applied"


@pytest.mark.parametrize("state", ["draft", "scheduled", "sending", "paused"])
def test_an_opt_out_takes_the_number_out_of_every_blast_that_could_still_send(
    engine: Engine, state: str
) -> None:
    blast_id = _blast_with(engine, state)
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE], source="manual") == (1, 1)
    assert _holds_phone(engine, blast_id) == (False, 1, 1)


@pytest.mark.parametrize(("state", "status"), [
    ("completed", "QUEUED"),  # what a finished blast did not send is its record
    ("cancelled", "QUEUED"),
    ("sending", "SENDING"),  # already with the gateway: past stopping
    ("sending", "DELIVERY_ACK"),  # sent: its funnel keeps it
])
def test_what_was_sent_or_is_over_stays_as_it_was(engine: Engine, state: str, status: str) -> None:
    blast_id = _blast_with(engine, state, status=status)
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE], source="manual") == (1, 0)
    assert _holds_phone(engine, blast_id) == (True, 2, 0)


def test_a_number_listed_twice_keeps_its_first_entry(engine: Engine) -> None:
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE, PHONE], source="webhook", keyword="STOP") == (1, 0)
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE, "+60111111111"], source="manual") == (1, 0)
    with transaction(engine) as s:
        entries, total = listed(s)
    assert total == 2
    assert {(e.phone_number, e.source, e.keyword) for e in entries} == {
        (PHONE, "webhook", "STOP"), ("+60111111111", "manual", None)}


def test_a_stop_reply_clears_the_queues_too(engine: Engine) -> None:
    """The webhook path: STOP to an earlier blast, while another waits to go tomorrow."""
    with transaction(engine) as s:
        earlier = make_blast(s, state="completed")
        make_recipient(s, earlier, phone_number=PHONE, status="READ_ACK", message_id="3EB0A",
                       sent_at=utcnow())
    tomorrow = _blast_with(engine, "scheduled")
    _stop_by_webhook(engine)
    assert _holds_phone(engine, tomorrow) == (False, 1, 1)


def test_taking_a_number_off_the_list_puts_nobody_back(engine: Engine) -> None:
    blast_id = _blast_with(engine, "scheduled")
    with transaction(engine) as s:
        add_opt_outs(s, [PHONE], source="manual")
    with transaction(engine) as s:
        assert remove_opt_out(s, phone=PHONE)
        assert not remove_opt_out(s, phone=PHONE), "no longer listed"
        assert s.scalar(select(OptOut.phone_number)) is None
    assert _holds_phone(engine, blast_id) == (False, 1, 1)


def test_the_list_is_searched_by_any_part_of_the_number(engine: Engine) -> None:
    with transaction(engine) as s:
        add_opt_outs(s, [PHONE, "+60198765432", "+6581234567"], source="manual")
    with transaction(engine) as s:
        assert [e.phone_number for e in listed(s, search="012-345")[0]] == [PHONE]
        assert {e.phone_number for e in listed(s, search="+60")[0]} == {PHONE, "+60198765432"}
        assert listed(s, search="999")[1] == 0


@pytest.mark.parametrize(("region", "typed", "phone"), [
    ("ID", "0812-3456-7890", "+6281234567890"),
    ("PH", "0917 123 4567", "+639171234567"),
    ("MY", "012-345 6789", PHONE),
])
def test_a_local_number_is_found_as_it_is_typed_in_the_region(
    engine: Engine, region: str, typed: str, phone: str
) -> None:
    with transaction(engine) as s:
        add_opt_outs(s, ["+6281234567890", "+639171234567", PHONE], source="manual")
    with transaction(engine) as s:
        assert [e.phone_number for e in listed(s, search=typed, region=region)[0]] == [phone]
        # Part of a number is still found by its digits, even when they read as a whole number
        # ("123456789" is +60123456789 in Malaysia).
        assert {e.phone_number for e in listed(s, search="123456789", region="MY")[0]} == {
            PHONE, "+6281234567890"}
        assert listed(s, search="+63", region=region)[1] == 1


def _sent_again(engine: Engine) -> tuple[int, int]:
    """A sending blast where PHONE's message went to a worker that vanished (its lease ran out,
    so the row is unknown) and a person sent it again; and a scheduled blast where PHONE waits,
    never tried. Returns the row sent again and the scheduled blast."""
    with transaction(engine) as s:
        blast = make_blast(s, state="sending")
        row = make_recipient(s, blast, phone_number=PHONE, status="SENDING", attempts=1, claimed_by="gone",
                             lease_expires_at=utcnow() - dt.timedelta(minutes=1))
        make_recipient(s, blast, status="QUEUED")
        recipient_id = row.id
    with transaction(engine) as s:
        assert expire_leases(s, now=utcnow()) == [recipient_id]
        assert resend(s, recipient_ids=[recipient_id]).queued == 1
    return recipient_id, _blast_with(engine, "scheduled")


def _history(engine: Engine, recipient_id: int) -> list[tuple[str, str, str]]:
    with transaction(engine) as s:
        rows = s.scalars(select(StatusHistory).where(StatusHistory.recipient_id == recipient_id)
                         .order_by(StatusHistory.id))
        return [(h.old_status, h.new_status, h.source) for h in rows]


def test_a_stop_to_a_message_sent_again_keeps_its_row_and_history_and_fails_it(engine: Engine) -> None:
    """The first send may have reached them: its row and history are the only record of it.
    It leaves the queue failed, saying why; a message never tried is taken off as before."""
    again, scheduled = _sent_again(engine)
    before = _history(engine, again)
    assert [new for _, new, _ in before] == ["UNKNOWN", "QUEUED"]
    _stop_by_webhook(engine)
    with transaction(engine) as s:
        row = s.get(BlastRecipient, again)
        assert (row.status, row.error) == ("FAILED", NOT_SENT_AGAIN)
        blast = s.get(Blast, row.blast_id)
        assert (blast.total_recipients, blast.skipped_opted_out) == (2, 0)
    assert _history(engine, again) == [*before, ("QUEUED", "FAILED", "webhook")]
    assert _holds_phone(engine, scheduled) == (False, 1, 1)


def test_numbers_added_by_hand_count_both_kinds_as_withdrawn(engine: Engine) -> None:
    again, scheduled = _sent_again(engine)
    with transaction(engine) as s:
        assert add_opt_outs(s, [PHONE], source="manual") == (1, 2)
    with transaction(engine) as s:
        assert s.get(BlastRecipient, again).status == "FAILED"
    assert _history(engine, again)[-1] == ("QUEUED", "FAILED", "manual")
    assert _holds_phone(engine, scheduled) == (False, 1, 1)


def test_nothing_to_withdraw(engine: Engine) -> None:
    with transaction(engine) as s:
        assert withdraw_from_queues(s, []) == 0
        assert add_opt_outs(s, [], source="manual") == (0, 0)


# --- the Opt-outs page ---------------------------------------------------------------------

app_db = test_pages.app_db  # the dashboard pointed at the test database (SQLite and PostgreSQL)
run_page = test_pages.run_page


def test_typed_numbers_are_read_in_the_usual_ways() -> None:
    typed = read_numbers("012-345 6789\n+65 8123 4567, 0123456789;\n\n12\nabc", region="MY")
    assert typed.numbers == [PHONE, "+6581234567"], "one of each, in order"
    assert [raw for raw, _ in typed.unusable] == ["12", "abc"]
    assert all(reason for _, reason in typed.unusable)


def _add(at: AppTest, text: str) -> AppTest:
    at.text_area(key="opt_out_numbers").set_value(text)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_numbers_added_by_hand_leave_the_queues_and_show_in_the_list(app_db: str, engine: Engine) -> None:
    scheduled = _blast_with(engine, "scheduled")
    at = run_page("pages/opt_outs.py")
    assert any("No one has opted out yet" in i.value for i in at.info)
    at = _add(at, "012-345 6789\n12")
    assert any("“12” was not added" in e.value for e in at.error)
    assert any("1 number added to the opt-out list. 1 message waiting to go to them is no longer sent"
               in m.value for m in at.success), [m.value for m in at.success]
    assert _holds_phone(engine, scheduled) == (False, 1, 1)
    table = at.dataframe[0].value
    assert list(table["Number"]) == [PHONE] and list(table["How"]) == ["Added by hand"]

    at = _add(at, "+60 12-345 6789")
    assert any("0 numbers added to the opt-out list. 1 number was already on it." in m.value
               for m in at.success)


def _tick(at: AppTest, row: int, *, shown: list[str], search: str = "", generation: int = 0) -> AppTest:
    """Tick a row of the list showing `shown` (newest first), as the page keys it."""
    key = table_key(KEY, generation=generation, view=(search,), shown=shown)
    at.session_state[key] = {"selection": {"rows": [row], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    return at


def _on_the_list(engine: Engine) -> list[str]:
    with transaction(engine) as s:
        return [e.phone_number for e in listed(s)[0]]


def test_a_number_is_found_and_taken_off_the_list(app_db: str, engine: Engine) -> None:
    with transaction(engine) as s:
        add_opt_outs(s, [PHONE], source="webhook", keyword="STOP")
        add_opt_outs(s, ["+60198765432"], source="manual")
    at = run_page("pages/opt_outs.py")
    assert sorted(at.dataframe[0].value["How"]) == ["Added by hand", "Replied asking to stop (stop)"]
    at.text_input(key="opt_out_q").set_value("012 345").run()
    assert list(at.dataframe[0].value["Number"]) == [PHONE]
    at = _tick(at, 0, shown=[PHONE], search="012 345")
    at.button(key="opt_out_remove").click().run()
    assert not at.exception, at.exception
    assert any(f"{PHONE} was taken off the opt-out list." in m.value for m in at.success)
    assert _on_the_list(engine) == ["+60198765432"]


def test_the_page_searches_in_the_configured_region(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.config import get_settings

    monkeypatch.setenv("PHONE_REGION", "ID")
    get_settings.cache_clear()
    with transaction(engine) as s:
        add_opt_outs(s, ["+6281234567890", PHONE], source="manual")
    at = run_page("pages/opt_outs.py")
    at.text_input(key="opt_out_q").set_value("0812-3456-7890").run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["Number"]) == ["+6281234567890"]


def test_a_stop_arriving_before_the_click_takes_no_one_else_off(app_db: str, engine: Engine) -> None:
    """Newest first: a STOP between the tick and the click moves the ticked number down a row."""
    for phone in (PHONE, "+60198765432"):
        with transaction(engine) as s:
            add_opt_outs(s, [phone], source="manual")
    at = _tick(run_page("pages/opt_outs.py"), 0, shown=["+60198765432", PHONE])
    assert "opt_out_remove" in {b.key for b in at.button}
    with transaction(engine) as s:
        add_opt_outs(s, ["+6581234567"], source="webhook", keyword="STOP")
    at.button(key="opt_out_remove").click().run()
    assert not at.exception, at.exception
    assert sorted(_on_the_list(engine)) == sorted([PHONE, "+60198765432", "+6581234567"]), "none taken off"
    assert not at.success
    assert "opt_out_remove" not in {b.key for b in at.button}, "nothing ticked on the new list"
    assert "The list changed since you ticked, so the ticks were cleared: tick again." in [
        c.value for c in at.caption]


def test_after_taking_one_off_the_next_is_not_ticked(app_db: str, engine: Engine) -> None:
    for phone in (PHONE, "+60198765432", "+6581234567"):
        with transaction(engine) as s:
            add_opt_outs(s, [phone], source="manual")
    at = _tick(run_page("pages/opt_outs.py"), 0, shown=["+6581234567", "+60198765432", PHONE])
    at.button(key="opt_out_remove").click().run()
    assert not at.exception, at.exception
    assert any("+6581234567 was taken off the opt-out list." in m.value for m in at.success)
    assert "opt_out_remove" not in {b.key for b in at.button}, "+60198765432 is not ticked in its place"
    assert not any("The list changed" in c.value for c in at.caption), "the person changed it"
    at.run()
    assert "opt_out_remove" not in {b.key for b in at.button}, "nor after a rerun"
    assert _on_the_list(engine) == ["+60198765432", PHONE]


def test_the_download_holds_every_number_not_only_those_shown(app_db: str, engine: Engine) -> None:
    from dashboard.opt_out_views import SHOWN, list_csv

    numbers = [f"+6012{n:07d}" for n in range(SHOWN + 5)]
    with transaction(engine) as s:
        add_opt_outs(s, numbers, source="manual")
    at = run_page("pages/opt_outs.py")
    assert len(at.dataframe[0].value) == SHOWN
    assert [b.proto.label for b in at.get("download_button")] == ["Download the list (CSV)"]
    with transaction(engine) as s:
        everyone = list_csv(s, search="").decode("utf-8-sig").splitlines()
        found = list_csv(s, search="12000001").decode("utf-8-sig").splitlines()
    assert everyone[0] == "Number,Since,How,Name", "in the list's words, as the page heads it"
    assert sorted(line.split(",")[0] for line in everyone[1:]) == sorted(f"'{n}" for n in numbers)
    assert sorted(line.split(",")[0] for line in found[1:]) == [f"'{n}" for n in numbers[10:20]]
    at.text_input(key="opt_out_q").set_value("12000001").run()
    assert [b.proto.label for b in at.get("download_button")] == ["Download these 10 numbers (CSV)"]


def test_the_download_goes_back_in_by_its_number_column(app_db: str, engine: Engine) -> None:
    """Headed in words as the page's list is; the numbers under "Number", as the other exports,
    which is what a list uploaded again is read by."""
    from core.csv_import import parse_csv
    from dashboard.opt_out_views import list_csv

    with transaction(engine) as s:
        add_opt_outs(s, [PHONE], source="manual")
        data = list_csv(s, search="")
    again = parse_csv(data, filename="opt-outs.csv", region="MY")
    assert (again.phone_column, [r.phone for r in again.recipients]) == ("Number", [PHONE])
    assert list(again.columns.headers) == ["Number", "Since", "How", "Name"]


def test_the_download_of_one_found_number_says_so_in_the_singular(app_db: str, engine: Engine) -> None:
    with transaction(engine) as s:
        add_opt_outs(s, [PHONE, "+60198765432"], source="manual")
    at = run_page("pages/opt_outs.py")
    at.text_input(key="opt_out_q").set_value("0198765432").run()
    assert not at.exception, at.exception
    assert list(at.dataframe[0].value["Number"]) == ["+60198765432"]
    assert [b.proto.label for b in at.get("download_button")] == ["Download this number (CSV)"]


def _stop_reply(engine: Engine, phone: str, text: str) -> None:
    """`text` from `phone`, posted to the webhook and applied as the server does."""
    body = json.dumps({"type": "text", "message": text, "from": phone.lstrip("+") + "@c.us"}).encode()
    with transaction(engine) as s:
        inbox_id = store_raw(s, body=body, content_type="application/json")
    with transaction(engine) as s:
        process_entry(s, inbox_id=inbox_id, rules=WebhookRules())


def test_the_list_says_in_words_what_they_wrote_and_who_they_are(app_db: str, engine: Engine) -> None:
    """Not the keyword as matched ("BERHENTI LAH TERIMA KASIH"): their reply as written, and
    the name a blast knew them by."""
    with transaction(engine) as s:
        older = make_blast(s, state="completed")
        make_recipient(s, older, phone_number=PHONE, contact_name="Aisyah binti Ali", status="READ_ACK")
        raya = make_blast(s, state="completed")
        make_recipient(s, raya, phone_number=PHONE, contact_name="Aisyah", status="READ_ACK",
                       message_id="3EB0A", sent_at=utcnow())
        # Opted out before replies were kept one by one: the first reply, on the recipient.
        make_recipient(s, raya, phone_number="+60198765432", contact_name="Ben", status="REPLIED",
                       reply_text="STOP!!", replied_at=utcnow())
        add_opt_outs(s, ["+60198765432"], source="webhook", keyword="STOP")
    _stop_reply(engine, PHONE, "Berhenti lah,  terima kasih!")
    _stop_reply(engine, "+6581234567", "Stop")  # no blast ever messaged them: their words not kept
    with transaction(engine) as s:
        add_opt_outs(s, ["+60111111111"], source="manual")
    at = test_pages.run_page("pages/opt_outs.py")
    table = at.dataframe[0].value
    assert list(table.columns) == ["Number", "Name", "Since", "How"]
    rows = {n: (name, how) for n, name, how in zip(table["Number"], table["Name"], table["How"], strict=True)}
    assert rows == {
        PHONE: ("Aisyah", "Replied “Berhenti lah, terima kasih!”"),
        "+60198765432": ("Ben", "Replied “STOP!!”"),
        "+6581234567": ("", "Replied asking to stop (stop)"),
        "+60111111111": ("", "Added by hand"),
    }


def test_numbers_that_could_not_be_added_stay_in_the_box_to_be_mended(app_db: str, engine: Engine) -> None:
    at = _add(test_pages.run_page("pages/opt_outs.py"), "012-345 6789\nabc\n0123")
    assert any("1 number added to the opt-out list." in m.value for m in at.success)
    assert {e.value.split(" was not added")[0] for e in at.error} == {"“abc”", "“0123”"}
    assert at.text_area(key="opt_out_numbers").value == "abc\n0123", "only the refused ones are left"
    assert _on_the_list(engine) == [PHONE]
    at = _add(at, "0198 765 432")  # mended
    assert at.text_area(key="opt_out_numbers").value == "", "everything added: the box is empty"
    assert not at.error
    assert sorted(_on_the_list(engine)) == [PHONE, "+60198765432"]
