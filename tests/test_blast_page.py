"""The Blast detail page: its links, its live refresh, the follow-up guard and its words."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import Engine, func, select
from streamlit.runtime.scriptrunner import ScriptRunnerEvent
from streamlit.testing.v1 import AppTest, app_test
from streamlit.testing.v1.local_script_runner import LocalScriptRunner

from core.config import get_settings
from core.db import transaction
from core.errors import BadInput
from core.followups import create_follow_up, follow_up_placeholders, pending_follow_up
from core.models import Blast, utcnow
from core.recipients import SELECTIONS, page_of_recipients
from core.statuses import Status
from dashboard.blast_views import (
    SETTLING_EVERY_SECONDS,
    blast_to_show,
    chain_refresh_every,
    refresh_seconds,
    refresh_stopped_words,
    refresh_words,
    status_word,
)
from dashboard.format import when_words
from dashboard.recipient_views import PAGE_SIZE, history_line, table_key
from tests.support.factories import make_blast, make_recipient, messaged_last_week
from tests.test_pages import app_db, page  # noqa: F401  (app_db: the fixture, used below)

RAW_CODES = {s.value for s in Status}
pytestmark = pytest.mark.usefixtures("app_db")


def _open(blast_id: int) -> AppTest:
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    assert not at.exception, at.exception
    return at


def _heading(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("### "))


def _follow(at: AppTest, label: str) -> AppTest:
    """Do what a click on the page link does in the browser: open its page with its query."""
    link = next(link for link in at.page_link if link.value == label)
    at.query_params.clear()
    at.query_params.update(dict(parse_qsl(link.proto.query_string)))
    at.switch_page("pages/blast.py").run()
    assert not at.exception, at.exception
    return at


def _parent_and_follow_up(engine: Engine) -> tuple[int, int]:
    with transaction(engine) as s:
        parent = make_blast(s, name="Raya promo", state="completed")
        make_recipient(s, parent, status="READ_ACK", sent_at=utcnow())
        child = make_blast(s, name="Raya nudge", state="draft", parent_blast_id=parent.id,
                           follow_up_stage="Follow-up 1", message_template="Still keen, {name}?")
        make_recipient(s, child)
        return parent.id, child.id


# 1. Links inside the page open the blast they name.


def test_the_follow_up_of_link_opens_the_parent(engine: Engine) -> None:
    parent_id, child_id = _parent_and_follow_up(engine)
    at = _open(child_id)
    assert "Raya nudge" in _heading(at)
    _follow(at, f"Follow-up of blast #{parent_id}")
    assert "Raya promo" in _heading(at)
    assert at.selectbox(key="blast_pick").value == parent_id
    assert at.query_params["blast"] == str(parent_id)


def test_picking_a_blast_updates_the_address_and_links_still_win(engine: Engine) -> None:
    parent_id, child_id = _parent_and_follow_up(engine)
    at = _open(child_id)
    at.selectbox(key="blast_pick").set_value(parent_id).run()
    assert not at.exception, at.exception
    assert "Raya promo" in _heading(at)
    assert at.query_params["blast"] == str(parent_id), "the address follows the picker"
    at.run()
    assert "Raya promo" in _heading(at), "a rerun keeps the pick"
    at.query_params["blast"] = str(child_id)  # a shared URL, opened in the same session
    at.switch_page("pages/blast.py").run()
    assert "Raya nudge" in _heading(at)


def test_an_address_naming_no_blast_says_so(engine: Engine) -> None:
    _, child_id = _parent_and_follow_up(engine)
    at = _open(999)
    assert any("There is no blast #999" in w.value for w in at.warning)
    assert "Raya nudge" in _heading(at), "the newest instead"
    assert at.query_params["blast"] == str(child_id)


@pytest.mark.parametrize(
    ("asked", "picked", "shown"),
    [("2", 3, 2), (None, 3, 3), ("abc", 3, 3), ("9", None, 1), (None, 7, 1), ("", None, 1)],
)
def test_blast_to_show_prefers_the_address(asked: str | None, picked: int | None, shown: int) -> None:
    assert blast_to_show([1, 2, 3], asked=asked, picked=picked) == shown


def test_another_blast_starts_its_forms_afresh(engine: Engine) -> None:
    with transaction(engine) as s:
        first = make_blast(s, name="First", state="draft", message_template="Hi {name}, first")
        second = make_blast(s, name="Second", state="draft", message_template="Hi {name}, second",
                            follow_up_stage="Follow-up 1")
        for blast in (first, second):
            make_recipient(s, blast)
        first_id, second_id = first.id, second.id
    at = _open(first_id)
    assert at.text_area(key=f"draft_tpl_{first_id}").value == "Hi {name}, first"
    at.query_params["blast"] = str(second_id)
    at.switch_page("pages/blast.py").run()
    assert not at.exception, at.exception
    second_message = at.text_area(key=f"draft_tpl_{second_id}").value
    assert second_message == "Hi {name}, second", "not the other draft's message"
    assert at.text_input(key=f"fu_stage_{second_id}").value == "Follow-up 2"


# 2. The live sections keep refreshing while events can still arrive.


@pytest.fixture
def refreshes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The self-refresh intervals (seconds) that the last run of the page asked the browser for."""
    seen: list[float] = []

    class Recording(LocalScriptRunner):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.on_event.connect(self._record, weak=False)

        def _record(self, sender: Any, event: Any, **data: Any) -> None:
            msg = data.get("forward_msg")
            if event == ScriptRunnerEvent.SCRIPT_STARTED:
                seen.clear()  # a rerun asks again
            if msg is not None and msg.HasField("auto_rerun"):
                seen.append(msg.auto_rerun.interval)

    monkeypatch.setattr(app_test, "LocalScriptRunner", Recording)
    yield seen


@pytest.mark.parametrize(
    ("state", "sent_hours_ago", "expected"),
    [
        ("sending", 0.1, [2, 2, 2]),
        ("completed", 1, [15, 15, 15]),  # replies still arrive
        ("paused", 70, [15, 15, 15]),
        ("cancelled", 1, [15, 15, 15]),  # some went out before the cancel
        ("completed", 24 * 5, []),  # past the 72 h reply window
        ("cancelled", None, []),  # cancelled before sending
        ("draft", None, []),
    ],
)
def test_the_live_sections_refresh_while_events_can_arrive(
    engine: Engine, refreshes: list[float], state: str, sent_hours_ago: float | None,
    expected: list[int],
) -> None:
    sent = None if sent_hours_ago is None else utcnow() - dt.timedelta(hours=sent_hours_ago)
    with transaction(engine) as s:
        blast = make_blast(s, state=state, device="d1")
        make_recipient(s, blast, status="SERVER_ACK" if sent else "QUEUED", sent_at=sent)
        blast_id = blast.id
    _open(blast_id)
    assert refreshes == expected, "the progress, “Where recipients are now” and the recipients, together"


def test_refresh_seconds_follows_the_reply_window() -> None:
    now, window = utcnow(), dt.timedelta(hours=72)

    def every(state: str, hours_ago: float | None) -> int | None:
        last_sent = None if hours_ago is None else now - dt.timedelta(hours=hours_ago)
        return refresh_seconds(state, last_sent=last_sent, now=now, window=window)

    assert every("scheduled", None) == 2
    assert refresh_seconds("scheduled", last_sent=None, now=now, window=window,
                           starts_at=now + dt.timedelta(days=1)) == 15, "due tomorrow"
    assert refresh_seconds("scheduled", last_sent=None, now=now, window=window,
                           starts_at=now + dt.timedelta(minutes=2)) == 2, "about to start"
    assert every("completed", 71) == 15
    assert every("completed", 73) is None


def _live_funnel(at: AppTest) -> dict[str, int]:
    trace = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    return dict(zip(trace["y"], trace["x"], strict=True))


def _where_now(at: AppTest) -> dict[str, int]:
    table = at.dataframe[0].value
    return dict(zip(table["Status"], table["Recipients"], strict=True))


def test_marking_closed_updates_every_number_and_says_so(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        for _ in range(2):
            make_recipient(s, blast, status="REPLIED", sent_at=utcnow())
        blast_id = blast.id
    at = _open(blast_id)
    assert _live_funnel(at)["Closed"] == 0
    with transaction(engine) as s:
        shown = [r.id for r in page_of_recipients(s, blast_id=blast_id, page_size=PAGE_SIZE)[0]]
    at.session_state[table_key("rcp", generation=0, view=(blast_id, "Everyone", "", 1), shown=shown)] = {
        "selection": {"rows": [0], "columns": []}
    }
    at.run()
    at.button(key="rcp_close").click().run()
    assert not at.exception, at.exception
    assert any("1 recipient marked as closed" in m.value for m in at.success)
    assert _live_funnel(at)["Closed"] == 1, "the funnel above the table"
    assert _where_now(at)["Closed: a sale"] == 1


def _sales_workbook() -> tuple[str, bytes, str]:
    from tests.test_excel_import import xlsx

    book = xlsx(("Sales", [["Phone", "Amount"], [60123456789, 250]]))  # Excel keeps the number a number
    return "sales.xlsx", book, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.mark.parametrize("upload", [
    pytest.param(lambda: ("sales.csv", b"phone\n0123456789\n", "text/csv"), id="csv"),
    pytest.param(_sales_workbook, id="excel"),
])
def test_closing_from_a_file_updates_every_number_and_keeps_the_report(engine: Engine, upload) -> None:  # type: ignore[no-untyped-def]
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        make_recipient(s, blast, phone_number="+60123456789", status="REPLIED", sent_at=utcnow())
        make_recipient(s, blast, status="REPLIED", sent_at=utcnow())
        blast_id = blast.id
    at = _open(blast_id)
    at.file_uploader(key="close_upload").set_value(upload())
    at.run()
    at.button(key="close_apply").click().run()
    assert not at.exception, at.exception
    assert _live_funnel(at)["Closed"] == 1
    assert _where_now(at) == {"Closed: a sale": 1, "Replied": 1}
    assert any("1 sale marked as closed" in m.value for m in at.success)
    assert {m.label: m.value for m in at.metric}["Closed"] == "1"
    assert at.get("download_button"), "the matching report survives the rerun"


# 3. The same follow-up is not made twice by accident.


def _sent_two_days_ago(engine: Engine, people: int, **fields: object) -> int:
    """A finished blast whose messages went to `people` two days ago, none answered."""
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", **fields)
        for _ in range(people):
            make_recipient(s, blast, status="SERVER_ACK", sent_at=utcnow() - dt.timedelta(days=2))
        return blast.id


def test_a_second_follow_up_for_the_same_people_needs_a_confirmation(engine: Engine) -> None:
    blast_id = _sent_two_days_ago(engine, 3, name="Raya promo")
    at = _open(blast_id)
    at.selectbox(key="fu_sel").set_value("Sent, no reply").run()
    at.text_area(key=f"fu_text_{blast_id}").input("Still keen, {name}?").run()
    assert not at.warning and not at.button(key="fu_create").disabled
    at.button(key="fu_create").click().run()
    assert not at.exception, at.exception

    with transaction(engine) as s:
        first = s.scalar(select(func.max(Blast.id)))
    assert any(f"Draft blast #{first} created for 3 recipients" in m.value for m in at.success)
    assert f"Open blast #{first}" in [link.value for link in at.page_link]
    guard = [w.value for w in at.warning if "already follows up" in w.value]
    assert guard == [
        f"**Draft blast #{first}** (“Follow-up 1”) already follows up this blast with 3 people, "
        "including everyone chosen here. Another draft would message them twice."
    ]
    assert at.button(key="fu_create").disabled, "not without the confirmation"

    at.checkbox(key=f"fu_again_{blast_id}").check().run()
    assert not at.button(key="fu_create").disabled
    at.button(key="fu_create").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        drafts = s.scalar(select(func.count()).select_from(Blast).where(Blast.parent_blast_id == blast_id))
    assert drafts == 2, "made when asked for explicitly"
    assert at.button(key="fu_create").disabled, "and the next one asks again"


def test_a_follow_up_with_the_message_they_were_sent_asks_first(engine: Engine) -> None:
    """The box starts with the first blast's words, to build on: sent as they are, the same
    promo twice reads as spam, and reports get a WhatsApp number banned."""
    blast_id = _sent_two_days_ago(engine, 2, message_template="Raya promo: 20% off, {name}!")
    at = _open(blast_id)
    at.selectbox(key="fu_sel").set_value("Sent, no reply").run()
    assert any("the message they were sent already" in w.value for w in at.warning)
    assert at.button(key="fu_create").disabled
    at.checkbox(key=f"fu_same_{blast_id}").check().run()
    assert not at.button(key="fu_create").disabled, "when it is meant"
    at.checkbox(key=f"fu_same_{blast_id}").uncheck().run()
    at.text_area(key=f"fu_text_{blast_id}").input("raya promo:  20% off, {Name}").run()
    assert any("the message they were sent already" in w.value for w in at.warning), "spacing, case aside"
    at.text_area(key=f"fu_text_{blast_id}").input("Last day of the Raya promo, {name}!").run()
    assert not any("the message they were sent already" in w.value for w in at.warning)
    assert not at.button(key="fu_create").disabled


def test_a_second_draft_with_the_same_words_asks_both_questions(engine: Engine) -> None:
    """Ticking "Create another draft anyway" had answered the same-words question too."""
    from core.followups import create_follow_up

    blast_id = _sent_two_days_ago(engine, 2, message_template="Raya promo: 20% off, {name}!")
    with transaction(engine) as s:
        create_follow_up(s, parent_id=blast_id, selector=SELECTIONS["Sent, no reply"], message_template="Hi")
    at = _open(blast_id)
    at.selectbox(key="fu_sel").set_value("Sent, no reply").run()
    at.checkbox(key=f"fu_again_{blast_id}").check().run()
    assert at.button(key="fu_create").disabled, "the same words are still to be answered"
    at.checkbox(key=f"fu_same_{blast_id}").check().run()
    assert not at.button(key="fu_create").disabled


def test_pending_follow_up_only_counts_unsent_drafts_with_these_people(engine: Engine) -> None:
    from core.followups import create_follow_up

    read_no_reply = SELECTIONS["Read, no reply"]
    with transaction(engine) as s:
        parent = make_blast(s, state="completed")
        for status in ("READ_ACK", "READ_ACK", "DELIVERY_ACK"):
            make_recipient(s, parent, status=status, sent_at=utcnow())
        assert pending_follow_up(s, parent_id=parent.id, selector=read_no_reply) is None
        child = create_follow_up(s, parent_id=parent.id, selector=read_no_reply, message_template="Hi")
        found = pending_follow_up(s, parent_id=parent.id, selector=SELECTIONS["Sent, no reply"])
        assert (found.blast_id, found.state, found.recipients, found.overlap) == (child.id, "draft", 2, 2)
        assert pending_follow_up(s, parent_id=parent.id, selector=SELECTIONS["Received, not read"]) is None
        child.state = "paused"  # paused before it started (its time missed): still unsent
        s.flush()
        assert pending_follow_up(s, parent_id=parent.id, selector=read_no_reply).state == "paused"
        child.started_at = utcnow()  # paused halfway: they have been messaged, or are being
        s.flush()
        assert pending_follow_up(s, parent_id=parent.id, selector=read_no_reply) is None
        child.state = "sending"
        s.flush()
        assert pending_follow_up(s, parent_id=parent.id, selector=read_no_reply) is None


def test_across_the_chain_counts_people_once_however_many_blasts_reached_them(engine: Engine) -> None:
    """Ten messaged, five replied; the follow-up went to those five, who replied again: five
    people replied, not ten, and ten were messaged, not fifteen."""
    with transaction(engine) as s:
        parent = make_blast(s, state="completed")
        child = make_blast(s, state="completed", parent_blast_id=parent.id, follow_up_stage="Follow-up 1")
        for i in range(10):
            phone = f"+60135{i:06d}"
            make_recipient(s, parent, phone_number=phone, status="REPLIED" if i < 5 else "READ_ACK",
                           replied_at=utcnow() if i < 5 else None)
            if i < 5:
                make_recipient(s, child, phone_number=phone, status="CLOSED" if i == 0 else "REPLIED",
                               replied_at=utcnow())
        parent_id = parent.id
    at = _open(parent_id)
    chain = "Across the chain: **10 people** messaged, **5** of them wrote back on WhatsApp, **1** bought."
    assert chain in [m.value for m in at.markdown]


def test_a_follow_up_scheduled_ahead_shows_when_in_the_chain(engine: Engine) -> None:
    at_nine = dt.datetime(2026, 11, 28, 1, 0, tzinfo=dt.UTC)  # 09:00 in Kuala Lumpur
    with transaction(engine) as s:
        parent = make_blast(s, state="completed")
        make_recipient(s, parent, status="READ_ACK", sent_at=utcnow())
        make_blast(s, state="scheduled", parent_blast_id=parent.id, follow_up_stage="Follow-up 1",
                   scheduled_at=at_nine)
        parent_id = parent.id
    at = _open(parent_id)
    chain = next(d.value for d in at.dataframe if "Stage" in d.value.columns)
    assert list(chain["State"]) == ["Finished", "Scheduled for 28 Nov, 09:00"]


def test_the_next_follow_up_is_proposed_past_the_ones_the_chain_has(engine: Engine) -> None:
    with transaction(engine) as s:
        parent = make_blast(s, state="completed", follow_up_stage="Initial")
        make_recipient(s, parent, status="READ_ACK", sent_at=utcnow())
        make_blast(s, state="completed", parent_blast_id=parent.id, follow_up_stage="Follow-up 1")
        parent_id = parent.id
    at = _open(parent_id)
    assert at.text_input(key=f"fu_stage_{parent_id}").value == "Follow-up 2"


def test_the_chain_refreshes_while_any_of_its_blasts_can_move(engine: Engine) -> None:
    """A parent sent last month shows its follow-up sending now: the chain's counts move (at
    the settling pace: counting its people reads all of them)."""
    month_ago = utcnow() - dt.timedelta(days=30)
    with transaction(engine) as s:
        parent = make_blast(s, state="completed")
        make_recipient(s, parent, status="READ_ACK", sent_at=month_ago)
        alone = make_blast(s, state="sending")
        child = make_blast(s, state="sending", parent_blast_id=parent.id, follow_up_stage="Follow-up 1")
        make_recipient(s, child, status="QUEUED")
        ids = (parent.id, child.id, alone.id)
    assert [chain_refresh_every(i) for i in ids] == [SETTLING_EVERY_SECONDS, SETTLING_EVERY_SECONDS, None]
    with transaction(engine) as s:
        s.get(Blast, ids[1]).state = "completed"
    assert chain_refresh_every(ids[0]) is None  # nothing was sent lately: nothing more moves


# 4. A marketer's words, not system codes.


def test_the_page_shows_words_not_status_codes(engine: Engine) -> None:
    with transaction(engine) as s:
        parent = make_blast(s, state="completed", name="Raya promo")
        make_recipient(s, parent, status="SERVER_ACK", sent_at=utcnow())
        child = make_blast(s, state="completed", parent_blast_id=parent.id, follow_up_stage="Follow-up 1")
        make_recipient(s, child, status="QUEUED")
        parent_id = parent.id
    at = _open(parent_id)
    assert "· 1 recipient ·" in _heading(at)
    where_now = at.dataframe[0].value
    assert list(where_now["Status"]) == ["Sent (one tick)"]
    assert list(at.dataframe[1].value["State"]) == ["Finished", "Finished"], "the follow-up chain"
    recipients = at.dataframe[2].value
    assert list(recipients["Status"]) == ["Sent (one tick)"]
    shown = {str(v) for frame in (where_now, recipients) for v in frame.to_numpy().ravel()}
    assert not shown & RAW_CODES
    assert any(c.value.startswith("1 recipient · page 1 of 1") for c in at.caption)


def test_history_lines_read_in_words() -> None:
    at = dt.datetime(2026, 3, 2, 2, 5, 9, tzinfo=dt.UTC)
    assert history_line(at, "PENDING", "SERVER_ACK", "webhook") == (
        "02 Mar 10:05:09 — Sent, on its way → **Sent (one tick)** (update from WhatsApp)"
    )
    assert history_line(at, None, "QUEUED", "send") == (
        "02 Mar 10:05:09 — **Waiting to be sent** (while sending)"
    )
    late = history_line(at, "SENDING", "SENDING", "send",
                        event={"late_answer": "PENDING", "message_id": "3EB0A"})
    assert late == ("02 Mar 10:05:09 — an earlier try's answer came after it was sent again: "
                    f"**{status_word('PENDING')}** (message id 3EB0A). Both messages may have reached them.")
    refused = history_line(at, "SENDING", "SENDING", "send",
                           event={"late_answer": "FAILED", "message_id": None})
    assert refused.endswith(f"**{status_word('FAILED')}** (message id none).")


def test_a_scheduled_start_inside_quiet_hours_says_when_sending_really_begins(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEND_PACING", "on")
    monkeypatch.setenv("SEND_QUIET_HOURS", "21:00-09:00")
    get_settings.cache_clear()
    start = dt.datetime(2026, 12, 1, 15, 30, tzinfo=dt.UTC)  # 23:30 in Kuala Lumpur
    with transaction(engine) as s:
        blast = make_blast(s, state="scheduled", scheduled_at=start, device="sandbox")  # practice mode's
        make_recipient(s, blast)
        blast_id = blast.id
    at = _open(blast_id)
    assert any("23:30 is inside quiet hours (21:00–09:00): sending will start at 09:00 on 2 Dec" in w.value
               for w in at.warning), [w.value for w in at.warning]


def test_a_draft_for_one_person_says_person(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state="draft")
        make_recipient(s, blast, contact_name="Aisyah")
        blast_id = blast.id
    at = _open(blast_id)
    assert any("It will go to 1 person in practice mode" in i.value for i in at.info)


def test_a_follow_up_draft_leaves_out_who_has_moved_on_since_it_was_made(engine: Engine) -> None:
    """Made for "Sent, no reply": one has bought since, one has replied. Sending leaves them out
    (`drop_moved_on`); the draft's count, its previews and its button say so before."""
    from core.recipients import mark_closed
    from core.status_engine import apply_status

    with transaction(engine) as s:
        parent = make_blast(s, state="completed", blast_tag="Raya")
        rows = [make_recipient(s, parent, status="SERVER_ACK", contact_name=name,
                               sent_at=utcnow() - dt.timedelta(days=2))
                for name in ("Aisyah", "Ben", "Chong")]
        draft = create_follow_up(s, parent_id=parent.id, selector=SELECTIONS["Sent, no reply"],
                                 message_template="Still keen, {name}?")
        draft_id, (bought, replied, _) = draft.id, [r.id for r in rows]
    with transaction(engine) as s:
        mark_closed(s, recipient_ids=[bought])
        apply_status(s, recipient_id=replied, status=Status.REPLIED, source="webhook")
    at = _open(draft_id)
    assert not at.exception, at.exception
    assert any("It will go to 1 person in practice mode" in i.value for i in at.info)
    assert ("2 people on this list no longer match whom the follow-up is for (since it was made they "
            "replied or bought, say, or another follow-up reached them), so they will be left out."
            ) in [c.value for c in at.caption]
    assert at.button(key="draft_send").label == "Send to 1 person"
    shown = " ".join(e.value for e in (*at.markdown, *at.caption) if isinstance(e.value, str))
    assert "Chong" in shown and "Aisyah" not in shown and "Ben" not in shown, "previewed for whom it goes to"


def test_a_draft_says_when_it_would_finish_once_from_the_time_chosen(engine: Engine) -> None:
    """Its launch says it, from now or from the time picked; the progress row beside it had
    said "Done by, if sent now" even once a later time was picked."""
    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Hi {name}")
        for _ in range(3):
            make_recipient(s, draft)
        draft_id = draft.id
    at = _open(draft_id)
    assert sum("if sent now" in m.value for m in at.markdown) == 1
    key = f"draft_when_{draft_id}"
    at.radio(key=key).set_value("Schedule for later").run()
    at.date_input(key=f"{key}_day").set_value(dt.date.today() + dt.timedelta(days=3))
    at.time_input(key=f"{key}_time").set_value(dt.time(10, 0)).run()
    assert not at.exception, at.exception
    assert any(m.value.startswith("Scheduled for **") for m in at.markdown)
    assert not any("if sent now" in m.value for m in at.markdown)
    assert not at.metric and not at.get("progress"), "a draft's counts are said with its Send button"


@pytest.mark.parametrize("kept", [True, False], ids=["its finish time", "its last send"])
def test_a_finished_blast_says_when_it_finished(engine: Engine, kept: bool) -> None:
    last_send, finished = utcnow() - dt.timedelta(hours=2), utcnow() - dt.timedelta(hours=1)
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", finished_at=finished if kept else None)
        make_recipient(s, blast, status="READ_ACK", sent_at=last_send - dt.timedelta(minutes=5))
        make_recipient(s, blast, status="DELIVERY_ACK", sent_at=last_send)
        blast_id = blast.id
    metrics = {m.label: m for m in _open(blast_id).metric}
    shown, zone = (finished if kept else last_send), get_settings().timezone
    assert "Expected to finish" not in metrics
    assert metrics["Finished"].value == when_words(shown, zone=zone)
    assert f"{shown.astimezone(zone):%d %b %Y, %H:%M}" in metrics["Finished"].help


@pytest.mark.parametrize(
    ("asked", "changed", "unknown", "words"),
    [
        (0, 0, 0, "Nothing to ask about: every message of this blast has been read, or has not been sent, "
                  "or is too old to change."),
        (1, 1, 0, "Asked the gateway about 1 message: 1 had news, shown now."),
        (25, 0, 0, "Asked the gateway about 25 messages: none had news."),
        (12, 3, 2, "Asked the gateway about 12 messages: 3 had news, shown now; the gateway could not say "
                   "for 2."),
    ],
)
def test_refreshing_statuses_says_what_it_did(asked: int, changed: int, unknown: int, words: str) -> None:
    assert refresh_words(asked, changed, unknown) == words


@pytest.mark.parametrize(
    ("asked", "changed", "words"),
    [
        (0, 0, "The WhatsApp device is offline: open WSAPME and reconnect it."),
        (3, 1, "Stopped early after asking the gateway about 3 messages (1 had news): The WhatsApp device "
               "is offline: open WSAPME and reconnect it."),
    ],
)
def test_a_stopped_refresh_says_why_not_nothing_to_ask(asked: int, changed: int, words: str) -> None:
    offline = "The WhatsApp device is offline: open WSAPME and reconnect it."
    assert refresh_stopped_words(asked, changed, offline) == words


def test_a_sent_blast_shows_its_message_and_a_cancelled_one_what_was_not_sent(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state="cancelled", message_template="Salam {name}!\n*Raya* sale")
        make_recipient(s, blast, status="SERVER_ACK", sent_at=utcnow())
        make_recipient(s, blast)  # still queued when it was cancelled
        blast_id = blast.id
    at = _open(blast_id)
    [preview] = [h.proto.body for h in at.get("html") if not h.proto.body.startswith("<style>")]
    assert "<strong>Raya</strong>" in preview and "Salam {name}!<br>" in preview
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Not sent (cancelled)"] == "1" and "Still to send" not in metrics


def test_a_follow_up_message_with_a_placeholder_typo_is_not_made(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", message_template="Hi {name}, {produk} is back")
        for _ in range(2):
            make_recipient(s, blast, status="SERVER_ACK", sent_at=utcnow() - dt.timedelta(days=2),
                           variables={"produk": "Kuih"})
        blast_id = blast.id
    at = _open(blast_id)
    at.selectbox(key="fu_sel").set_value("Sent, no reply").run()
    at.text_area(key=f"fu_text_{blast_id}").set_value("Hai {name}, {produk} masih ada").run()
    assert not at.error and not at.button(key="fu_create").disabled, "{name} and the file's columns"
    at.text_area(key=f"fu_text_{blast_id}").set_value("Hai {nmae}, {produk} masih ada").run()
    assert any("nmae" in e.value for e in at.error)
    assert at.button(key="fu_create").disabled
    with pytest.raises(BadInput, match="nmae"), transaction(engine) as s:  # and not around the page
        create_follow_up(s, parent_id=blast_id, selector=SELECTIONS["Sent, no reply"],
                         message_template="Hai {nmae}")
    with transaction(engine) as s:
        assert follow_up_placeholders(s, parent_id=blast_id) == ["name", "produk"]


def test_a_draft_message_can_be_saved_without_sending(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state="draft", message_template="Hai {nmae}")
        make_recipient(s, blast, contact_name="Aisyah")
        blast_id = blast.id
    at = _open(blast_id)
    assert "draft_save" not in [b.key for b in at.button], "nothing to save yet"
    at.text_area(key=f"draft_tpl_{blast_id}").set_value("Hai {name}, jom!").run()
    at.button(key="draft_save").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        assert s.get(Blast, blast_id).message_template == "Hai {name}, jom!"
        assert s.get(Blast, blast_id).state == "draft"
    again = _open(blast_id)
    assert again.text_area(key=f"draft_tpl_{blast_id}").value == "Hai {name}, jom!"


def test_a_saved_draft_of_a_list_sent_recently_asks_before_it_goes(engine: Engine) -> None:
    """New blast asks before a list goes again; a draft saved there, sent from its own page,
    asks too. A follow-up, meant for people its blast messaged, does not."""
    phones = [f"+6012300{k:04d}" for k in range(4)]
    with transaction(engine) as s:
        sent = make_blast(s, state="completed", name="Raya promo")
        draft = make_blast(s, state="draft", message_template="Hai {name}, jom!")
        follow_up = make_blast(s, state="draft", message_template="Hai {name}, jom!", parent_blast_id=sent.id)
        for phone in phones:
            make_recipient(s, sent, phone_number=phone, status="SERVER_ACK", sent_at=utcnow())
            make_recipient(s, draft, phone_number=phone)
            make_recipient(s, follow_up, phone_number=phone)
        ids = sent.id, draft.id, follow_up.id
    at = _open(ids[1])
    assert any("looks like one sent recently" in w.value and f"Blast #{ids[0]}" in w.value
               for w in at.warning), [w.value for w in at.warning]
    assert at.button(key="draft_send").disabled
    [tick] = [c for c in at.checkbox if c.label == "Send to them again anyway"]
    tick.check().run()
    assert not at.button(key="draft_send").disabled
    at.button(key="draft_send").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        assert s.get(Blast, ids[1]).state == "sending"
    other = _open(ids[2])
    assert not [w for w in other.warning if "looks like one sent recently" in w.value]
    assert not other.button(key="draft_send").disabled


def test_the_heading_says_how_many_were_left_out_for_opting_out(engine: Engine) -> None:
    from core.opt_outs import add_opt_outs

    with transaction(engine) as s:
        blast = make_blast(s, state="scheduled", scheduled_at=utcnow() + dt.timedelta(days=1))
        make_recipient(s, blast)
        gone = make_recipient(s, blast).phone_number
        blast_id = blast.id
    assert "left out" not in _heading(_open(blast_id))
    with transaction(engine) as s:
        add_opt_outs(s, [gone], source="webhook", keyword="STOP")  # before the blast's day comes
    heading = _heading(_open(blast_id))
    assert "1 recipient · 1 left out (they asked not to be messaged)" in heading


def _sending_for_real(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "NEW-PHONE")
    get_settings.cache_clear()


def test_a_paused_blast_from_a_device_no_longer_set_up_can_move_to_the_current_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sending_for_real(monkeypatch)
    with transaction(engine) as s:
        blast = make_blast(s, state="paused", device="OLD-PHONE", state_reason="WSAPME does not know the "
                           "WhatsApp device 'OLD-PHONE'.")
        make_recipient(s, blast, status="QUEUED")
        same = make_blast(s, state="paused", device="NEW-PHONE")
        ids = (blast.id, same.id)
    assert "move_device" not in {b.key for b in _open(ids[1]).button}, "nothing to move"
    assert "refresh" in {b.key for b in _open(ids[1]).button}, "a WhatsApp blast can be asked about"
    at = _open(ids[0])
    at.button(key="move_device").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        assert s.get(Blast, ids[0]).device == "NEW-PHONE"
    assert "move_device" not in {b.key for b in at.button}


@pytest.mark.parametrize("state", ["sending", "paused"])
def test_a_blast_made_in_practice_says_it_is_not_sent_once_sending_for_real(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    _sending_for_real(monkeypatch)
    with transaction(engine) as s:
        blast = make_blast(s, state=state, device="sandbox")
        make_recipient(s, blast, status="SERVER_ACK", sent_at=utcnow())
        for _ in range(2):
            make_recipient(s, blast)
        blast_id = blast.id
    at = _open(blast_id)
    assert [w.value for w in at.warning if "practice" in w.value] == [
        "Made in practice mode: it is not sent to WhatsApp. Make a new blast from the same list."]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Not sent (practice)"] == "2" and "Still to send" not in metrics
    assert metrics["Expected to finish"] == "—"
    assert not {"resume", "move_device"} & {b.key for b in at.button}, "nothing that would send it here"
    assert "refresh" not in {b.key for b in at.button}, "WSAPME knows nothing of the sandbox's messages"


def test_resume_says_what_it_will_do() -> None:
    """A blast paused before its scheduled time goes back to waiting for it (blasts.resume)."""
    import datetime as dt

    from core.models import Blast
    from dashboard.blast_views import resume_help

    now = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
    friday = Blast(state="paused", scheduled_at=now + dt.timedelta(days=2), started_at=None)
    assert resume_help(friday, now=now) == "It goes back to waiting for its time, 04 Mar 2026, 09:00."
    halfway = Blast(state="paused", scheduled_at=None, started_at=now - dt.timedelta(hours=1))
    assert resume_help(halfway, now=now) == "Sending carries on from where it stopped."
    missed = Blast(state="paused", scheduled_at=now - dt.timedelta(hours=3), started_at=None)
    assert resume_help(missed, now=now) == "It starts sending now."


# 5. A cancelled blast, and one that had no one to send to.


def _cancelled_with_unknown(engine: Engine) -> int:
    with transaction(engine) as s:
        blast = make_blast(s, state="cancelled", started_at=utcnow())
        make_recipient(s, blast, status="READ_ACK", sent_at=utcnow())
        make_recipient(s, blast, status="UNKNOWN", error="The gateway's answer was lost.")
        for status in ("QUEUED", "QUEUED", "SENDING"):
            make_recipient(s, blast, status=status)
        return blast.id


def test_a_cancelled_blast_shows_who_was_never_sent_as_not_sent(engine: Engine) -> None:
    """Those still queued will never go; the one with the gateway as it was cancelled may have."""
    at = _open(_cancelled_with_unknown(engine))
    assert _where_now(at) == {"Not sent (cancelled)": 2, "Being sent now": 1, "Read (blue ticks)": 1,
                              "Unknown: may or may not have gone": 1}
    statuses = list(next(d for d in at.dataframe if "Reply" in d.value.columns).value["Status"])
    assert statuses == ["Read (blue ticks)", "Unknown: may or may not have gone",
                        "Not sent (cancelled)", "Not sent (cancelled)", "Being sent now"]
    shown = " ".join(str(v) for d in at.dataframe for v in d.value.to_numpy().ravel())
    assert "Waiting to be sent" not in shown


@pytest.mark.parametrize(("sent", "says"), [
    (0, "Cancelled before any message was sent"),
    (1, "Cancelled after 1 of 5 was sent"),
    (3, "Cancelled after 3 of 5 were sent"),
])
def test_a_cancelled_blast_says_how_far_it_got_in_words(engine: Engine, sent: int, says: str) -> None:
    """Not "2 of 5 done": a failed message counted as done, though it never went."""
    cancelled_at = utcnow() - dt.timedelta(minutes=30)
    with transaction(engine) as s:
        blast = make_blast(s, state="cancelled", finished_at=cancelled_at)
        make_recipient(s, blast, status="FAILED")
        for n in range(4):
            make_recipient(s, blast, status="SERVER_ACK" if n < sent else "QUEUED",
                           sent_at=utcnow() if n < sent else None)
        blast_id = blast.id
    at = _open(blast_id)
    assert [p.proto.text for p in at.get("progress")] == [says]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cancelled"] == when_words(cancelled_at, zone=get_settings().timezone)
    assert "Expected to finish" not in metrics


@pytest.mark.parametrize(("state", "says"), [
    ("cancelled", "Nothing more is sent from a cancelled blast; a receipt from WhatsApp naming the number, "
                  "or a reply from the person, settles one. Open **Recipients → Unknown** to mark it as "
                  "failed, or as closed for a sale."),
    ("completed", "It will not be sent again by itself; a receipt from WhatsApp naming the number, or a "
                  "reply from the person, settles one. Open **Recipients → Unknown** to send again or mark "
                  "as failed."),
])
def test_the_unknown_sends_warning_offers_only_what_the_blast_allows(
    engine: Engine, state: str, says: str
) -> None:
    """A cancelled blast refuses to send again: the warning does not point there."""
    blast_id = _cancelled_with_unknown(engine)
    with transaction(engine) as s:
        s.get(Blast, blast_id).state = state
    [warning] = [w.value for w in _open(blast_id).warning if "unknown outcome" in w.value]
    assert warning == ("1 send has an unknown outcome: the gateway's answer was lost, so it may or may not "
                       "have arrived. " + says)


@pytest.mark.parametrize("state", ["completed", "cancelled"])
def test_a_finished_blast_that_had_no_one_to_send_to_says_so(engine: Engine, state: str) -> None:
    with transaction(engine) as s:
        blast_id = make_blast(s, state=state).id
    at = _open(blast_id)
    captions = [c.value for c in at.caption]
    assert "This blast had no one to send to." in captions
    assert not any(c.startswith("Nothing sent yet") for c in captions)
    assert not [d for d in at.dataframe if "Share %" in d.value.columns], "no empty table"
    assert "No recipients to show." in captions, "where they are now says why there is none"


def test_a_sale_for_someone_who_never_replied_is_explained_under_the_funnel(engine: Engine) -> None:
    """Closed by hand or from a sales file, with no reply: the funnel counts them as replied (each
    stage counts whoever got that far), and the page says so; the chain counts who wrote back."""
    from core.recipients import mark_closed

    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        child = make_blast(s, state="completed", parent_blast_id=blast.id, follow_up_stage="Follow-up 1")
        bought = make_recipient(s, blast, status="READ_ACK", sent_at=utcnow())
        make_recipient(s, blast, status="REPLIED", sent_at=utcnow(), replied_at=utcnow())
        make_recipient(s, child, phone_number=bought.phone_number, status="READ_ACK", sent_at=utcnow())
        blast_id, bought_id = blast.id, bought.id
    with transaction(engine) as s:
        mark_closed(s, recipient_ids=[bought_id])
    at = _open(blast_id)
    assert "Replied includes 1 sale recorded for people who did not reply on WhatsApp: each stage " \
        "counts everyone who got at least that far." in [c.value for c in at.caption]
    # More bought than wrote back read like a mistake: who bought without a word is said.
    chain = ("Across the chain: **2 people** messaged, **1** of them wrote back on WhatsApp, **1** bought "
             "(1 without writing back).")
    assert chain in [m.value for m in at.markdown]


def test_refresh_statuses_says_which_gateway_it_asks(engine: Engine) -> None:
    """In practice mode the test gateway is asked, and it forgets what it was sent before a
    restart: "WSAPME" would promise an answer it cannot give."""
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", device="sandbox")
        make_recipient(s, blast, status="SERVER_ACK", sent_at=utcnow())
        blast_id = blast.id
    at = _open(blast_id)
    help_text = at.button(key="refresh").help
    assert "practice gateway" in help_text and "WSAPME" not in help_text
    at.button(key="refresh").click().run()
    assert not at.exception, at.exception
    # What it did stays on the page (a toast had gone in seconds, and was taken for nothing).
    assert refresh_words(0, 0, 0) in [i.value for i in at.info]


# 6. Nothing sending messages: the page says so where the marketer looks, and no finish moves.

NOT_GOING_OUT = "not going out: nothing that sends messages is running right now"
FOR_WHOEVER_RUNS_IT = ("For whoever runs the dashboard: start it with `RUN_WORKER=true`, or run "
                       "`python -m core worker` against the same database.")


def _no_worker(monkeypatch: pytest.MonkeyPatch, *, up_for: dt.timedelta = dt.timedelta(hours=1)) -> None:
    """RUN_WORKER=false, the server up for `up_for`, and (unless a test adds one) no worker's heartbeat."""
    from core import uptime

    monkeypatch.setenv("RUN_WORKER", "false")
    get_settings.cache_clear()
    monkeypatch.setattr(uptime, "STARTED_AT", utcnow() - up_for, raising=False)


def _worker_checks_in(engine: Engine) -> None:
    from core import app_state
    from core.sending.worker import HEARTBEAT_PREFIX

    with transaction(engine) as s:
        app_state.put(s, key=HEARTBEAT_PREFIX + "worker-host:4242:abcd", value={"sent": 0, "pacing": "on"})


def _half_sent(engine: Engine, state: str = "sending", **fields: Any) -> int:
    with transaction(engine) as s:
        blast = make_blast(s, name="Raya promo", state=state, device="sandbox", **fields)
        make_recipient(s, blast, status="DELIVERY_ACK", sent_at=utcnow())
        for _ in range(3):
            make_recipient(s, blast)
        return blast.id


def _finish(at: AppTest) -> str:
    return {m.label: m.value for m in at.metric}["Expected to finish"]


def _held_up_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "nothing that sends messages is running" in w.value]


def test_a_sending_blast_says_its_messages_are_not_going_out_while_nothing_sends(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RUN_WORKER=false and no `python -m core worker`: the page said "Sending", with a finish
    time that moved later on every refresh, and only Settings & health said why."""
    blast_id = _half_sent(engine)
    _no_worker(monkeypatch)
    at = _open(blast_id)
    assert _held_up_warnings(at) == [
        "This blast's messages are " + NOT_GOING_OUT + ". Its messages wait, and none is lost. Ask "
        "whoever runs the dashboard to start sending."]
    assert any(c.value.startswith(FOR_WHOEVER_RUNS_IT) for c in at.caption)
    assert ":orange-badge[Not going out]" in _heading(at) and "Sending" not in _heading(at)
    assert _finish(at) == "—", "no estimate from now that only moves later"
    assert not [i for i in at.info if "so it would finish" in i.value]

    _worker_checks_in(engine)
    at = _open(blast_id)
    assert _held_up_warnings(at) == []
    assert ":green-badge[Sending]" in _heading(at)
    assert _finish(at) != "—"


def test_a_scheduled_blast_says_it_will_not_start_while_nothing_sends(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    blast_id = _half_sent(engine, state="scheduled", scheduled_at=utcnow() + dt.timedelta(days=1))
    _no_worker(monkeypatch)
    at = _open(blast_id)
    assert _held_up_warnings(at) == [
        "This blast is scheduled, but it will not start at its time unless sending is started before then: "
        "nothing that sends messages is running right now. Its messages wait, and none is lost. Ask "
        "whoever runs the dashboard to start sending."]
    assert ":blue-badge[Scheduled]" in _heading(at)
    assert _finish(at) == "—"


@pytest.mark.parametrize("state", ["paused", "completed", "draft"])
def test_a_blast_that_is_not_meant_to_be_sending_says_nothing_of_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    blast_id = _half_sent(engine, state=state)
    _no_worker(monkeypatch)
    assert _held_up_warnings(_open(blast_id)) == []


def test_nothing_is_said_in_the_first_moments_after_the_server_starts(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker started with the server checks in within seconds."""
    blast_id = _half_sent(engine)
    _no_worker(monkeypatch, up_for=dt.timedelta(seconds=3))
    at = _open(blast_id)
    assert _held_up_warnings(at) == []
    assert ":green-badge[Sending]" in _heading(at) and _finish(at) != "—"


def test_a_practice_blast_once_live_says_only_that_it_is_not_sent_from_here(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    blast_id = _half_sent(engine)
    _no_worker(monkeypatch)
    _sending_for_real(monkeypatch)
    at = _open(blast_id)
    assert _held_up_warnings(at) == []
    assert [w.value for w in at.warning if "practice" in w.value]


@pytest.mark.parametrize("live", [False, True])
def test_a_draft_says_whose_phones_it_would_reach(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, live: bool
) -> None:
    """A draft saved in practice mode belongs to no gateway: once the token is set, it goes to
    real phones, which its page had not said."""
    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Hai {name}, jom!")
        make_recipient(s, draft)
        draft_id = draft.id
    if live:
        _sending_for_real(monkeypatch)
    [said] = [i.value for i in _open(draft_id).info if i.value.startswith("This blast is a draft")]
    assert said.endswith("It will go to 1 person on WhatsApp, from device NEW-PHONE: real phones get it."
                         if live else "It will go to 1 person in practice mode: no real phone gets it. Once "
                         "WhatsApp is connected, sending this draft reaches real phones.")


# 7. A draft whose people another blast holds unsent.


@pytest.mark.parametrize(("state", "instead"), [
    ("paused", "resume it rather than sending a second blast"),
    ("scheduled", "it sends to them at its time, so check it rather than sending a second blast"),
])
def test_a_draft_whose_people_another_blast_holds_unsent_says_so(
    engine: Engine, state: str, instead: str
) -> None:
    """A blast paused (or waiting for its time) before it sent to them had been called "sent
    recently": "sending it again messages the same people twice"."""
    phones = [f"+6012300{k:04d}" for k in range(4)]
    with transaction(engine) as s:
        holding = make_blast(s, state=state, name="Raya promo", device="sandbox",
                             scheduled_at=utcnow() + dt.timedelta(days=1))
        draft = make_blast(s, state="draft", message_template="Hai {name}, jom!")
        for phone in phones:
            make_recipient(s, holding, phone_number=phone)
            make_recipient(s, draft, phone_number=phone)
        ids = holding.id, draft.id
    at = _open(ids[1])
    assert not [w for w in at.warning if "looks like one sent recently" in w.value]
    [warning] = [w.value for w in at.warning if f"Blast #{ids[0]}" in w.value]
    assert f"still holds 4 of these numbers, not sent yet: {instead}." in warning
    assert at.button(key="draft_send").disabled
    assert "tick “Send a second blast anyway” or cancel this draft" in " ".join(c.value for c in at.caption)
    [tick] = [c for c in at.checkbox if c.label == "Send a second blast anyway"]
    tick.check().run()
    assert not at.button(key="draft_send").disabled


def test_a_draft_made_by_mistake_can_be_deleted_from_its_page(engine: Engine) -> None:
    """A mistaken follow-up draft could only be cancelled, and stayed in every list."""
    with transaction(engine) as s:
        kept = make_blast(s, name="Raya promo", state="completed")
        make_recipient(s, kept, status="READ_ACK", sent_at=utcnow())
        draft = make_blast(s, name="Raya promo — Follow-up 1", state="draft", parent_blast_id=kept.id)
        make_recipient(s, draft, status="QUEUED")
        make_blast(s, name="A newer blast", state="completed")
        kept_id, draft_id = kept.id, draft.id
    at = _open(draft_id)
    made = {"its list": (draft_id, "draft"), "another": (kept_id, "sending")}
    at.session_state["blasts_from_upload"] = made  # as New blast keeps what each upload became
    assert not [b for b in at.button if b.key == "cancel_confirm"], "a draft is deleted, not cancelled"
    at.button(key="delete_confirm").click().run()
    assert not at.exception, at.exception
    assert [m.value for m in at.success] == [f"Draft #{draft_id} “Raya promo — Follow-up 1” was deleted."]
    # A follow-up's draft: back to the blast it follows.
    assert _heading(at).startswith("### Raya promo :") and at.query_params["blast"] == str(kept_id)
    assert not [w.value for w in at.warning if "There is no blast" in w.value]
    with transaction(engine) as s:
        assert s.get(Blast, draft_id) is None
    # New blast no longer links its list to the deleted draft.
    assert at.session_state["blasts_from_upload"] == {"another": (kept_id, "sending")}
    kept_page = _open(kept_id)
    assert "delete_confirm" not in {b.key for b in kept_page.button}, "a blast that sent keeps its record"


def test_the_pace_of_a_sending_blast_can_be_changed_from_its_page(engine: Engine) -> None:
    """The page said "at most 500 messages go out a day" with no way to change it: the pace
    was only on New blast, once a list was uploaded."""
    from core.models import Device

    with transaction(engine) as s:
        blast = make_blast(s, state="sending", device="sandbox")
        for _ in range(3):
            make_recipient(s, blast, status="QUEUED")
        finished = make_blast(s, state="completed", device="sandbox")
        make_recipient(s, finished, status="READ_ACK", sent_at=utcnow())
        blast_id, finished_id = blast.id, finished.id
    at = _open(blast_id)
    at.number_input(key="p_cap").set_value(800).run()
    at.button(key="p_save").click().run()
    assert not at.exception, at.exception
    assert any("Pace saved" in m.value for m in at.success)
    with transaction(engine) as s:
        assert s.get(Device, "sandbox").daily_cap == 800
    assert "p_save" not in {b.key for b in _open(finished_id).button}, "nothing left to pace"


def test_a_sending_blast_on_its_planned_break_says_so_and_when_it_goes_on(engine: Engine) -> None:
    """It stood at "28 of 267 done" for five minutes with nothing to say why: it looked stuck."""
    from core.models import Device
    from core.sending.pacing import ensure_device

    now = utcnow()
    with transaction(engine) as s:
        blast = make_blast(s, state="sending", device="sandbox")
        for status in ("READ_ACK", "QUEUED"):
            make_recipient(s, blast, status=status, sent_at=now if status != "QUEUED" else None)
        ensure_device(s, device="sandbox", settings=get_settings())
        s.execute(Device.__table__.update().values(
            quiet_start=None, quiet_end=None, pause_every=50, next_send_at=now + dt.timedelta(minutes=4),
            sent_since_pause=0, sent_in_day=50, sent_day=now.astimezone(get_settings().timezone).date()))
        blast_id = blast.id
    said = [i.value for i in _open(blast_id).info if "planned break" in i.value]
    assert len(said) == 1 and said[0].startswith(
        "On a planned break: this number pauses after every 50 messages it sends, which protects it. The "
        "next goes "), said
    with transaction(engine) as s:
        s.execute(Device.__table__.update().values(next_send_at=now + dt.timedelta(seconds=5)))
    assert not [i for i in _open(blast_id).info if "planned break" in i.value], "at its pace: nothing to say"


def test_a_pace_typed_that_risks_the_number_is_warned_of_before_it_is_saved(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2 seconds apart and no quiet hours had been saved without a word."""
    monkeypatch.setenv("SEND_QUIET_HOURS", "21:00-09:00")  # the default, which these tests turn off
    _sending_for_real(monkeypatch)
    with transaction(engine) as s:
        blast = make_blast(s, state="sending", device="NEW-PHONE")
        make_recipient(s, blast, status="QUEUED")
        blast_id = blast.id
    at = _open(blast_id)
    assert not [w for w in at.warning if "flagged as spam" in w.value], "the careful default pace"
    at.number_input(key="p_gap").set_value(2).run()
    at.number_input(key="p_jit").set_value(0).run()
    at.text_input(key="p_quiet").set_value("off").run()
    [warning] = [w.value for w in at.warning if "flagged as spam" in w.value]
    assert warning.startswith("This pace risks your WhatsApp number being flagged as spam: under 5 seconds "
                              "between messages on average and no quiet hours (messages at night). A "
                              "careful start: 8 seconds plus up to 7")


def test_a_risky_pace_in_practice_mode_is_said_for_later_not_warned_of(engine: Engine) -> None:
    """A trial typing quiet hours off learnt nothing of the risk, and was told the pace was saved
    "for this WhatsApp device", which was practice mode's."""
    with transaction(engine) as s:
        blast = make_blast(s, state="sending", device="sandbox")
        make_recipient(s, blast, status="QUEUED")
        blast_id = blast.id
    at = _open(blast_id)
    at.text_input(key="p_quiet").set_value("off").run()
    assert not [w for w in at.warning if "flagged as spam" in w.value]
    assert [i.value for i in at.info if "flagged" in i.value] == [
        "Fine for practice. On WhatsApp, this pace would risk your number being flagged as spam: no quiet "
        "hours (messages at night)."]
    assert any(c.value.startswith("This is practice mode's pace") for c in at.caption)
    at.button(key="p_save").click().run()
    assert "Pace saved for practice mode." in [s.value for s in at.success]


def test_the_blast_picker_says_what_each_blasts_day_is(engine: Engine) -> None:
    """"cny_list · 27 Nov · CNY Sale · 28 Nov 2026": two days side by side, unsaid which is what."""
    day = dt.datetime(2026, 11, 27, 16, 30, tzinfo=dt.UTC)  # 28 Nov 00:30 in Kuala Lumpur
    with transaction(engine) as s:
        for state in ("completed", "scheduled", "draft"):
            blast = make_blast(s, name=f"cny_list · 27 Nov {state}", blast_tag="CNY Sale", state=state,
                               blast_date=day)
            make_recipient(s, blast)
        newest = make_blast(s, name=None, blast_tag=None, state="completed", blast_date=day).id
    at = _open(newest)
    assert at.selectbox(key="blast_pick").options == [
        f"#{newest} · Untitled · no tag · sent 28 Nov 2026",
        f"#{newest - 1} · cny_list · 27 Nov draft · CNY Sale · draft of 28 Nov 2026",
        f"#{newest - 2} · cny_list · 27 Nov scheduled · CNY Sale · for 28 Nov 2026",
        f"#{newest - 3} · cny_list · 27 Nov completed · CNY Sale · sent 28 Nov 2026",
    ]


def test_a_blast_cancelled_before_it_sent_anything_says_so(engine: Engine) -> None:
    """It had said "Nothing sent yet: the funnel fills in as the messages go out." """
    with transaction(engine) as s:
        blast = make_blast(s, state="cancelled", device="sandbox")
        make_recipient(s, blast, status="QUEUED")
        blast_id = blast.id
    captions = [c.value for c in _open(blast_id).caption]
    assert "Nothing was sent before it was cancelled." in captions
    assert not [c for c in captions if c.startswith("Nothing sent yet")]


def test_a_drafts_list_sharing_some_people_with_last_weeks_blasts_says_how_many(engine: Engine) -> None:
    listed = [f"+6012{k:07d}" for k in range(1, 11)]
    with transaction(engine) as s:
        last_week = messaged_last_week(s, listed[:3])
        draft = make_blast(s, name="Leads", state="draft", message_template="Hi {name}")
        for phone in listed:
            make_recipient(s, draft, phone_number=phone, status="QUEUED")
        week_id, draft_id = last_week.id, draft.id
    said = [i.value for i in _open(draft_id).info if "in the past week" in i.value]
    assert said == [f"**3 of these 10 people** were messaged in the past week, by blast #{week_id} “Year "
                    "end · 20 Nov”. This blast messages them again."]


def test_a_draft_everyone_on_has_opted_out_says_so_not_that_a_placeholder_is_missing(engine: Engine) -> None:
    from core.opt_outs import add_opt_outs

    with transaction(engine) as s:
        draft = make_blast(s, name="Leads", state="draft", message_template="Hi {name}")
        make_recipient(s, draft, phone_number="+60123456789", status="QUEUED", contact_name="Ali")
        draft_id = draft.id
    with transaction(engine) as s:
        add_opt_outs(s, ["+60123456789"], source="webhook", keyword="STOP")
    at = _open(draft_id)
    assert not at.error, [e.value for e in at.error]
    assert [w.value for w in at.warning if "no one left" in w.value] == [
        "This draft has no one left to send to: everyone on its list has asked not to be messaged, or "
        "was taken off it, or no longer matches whom the follow-up is for. Delete it, or make a new "
        "blast."]
    assert "draft_send" not in {b.key for b in at.button}
    assert "delete_confirm" in {b.key for b in at.button}


def test_a_scheduled_blast_is_given_another_time_or_sent_now(engine: Engine) -> None:
    zone = get_settings().timezone
    tomorrow = dt.datetime.now(zone).date() + dt.timedelta(days=1)
    at_ten = dt.datetime.combine(tomorrow, dt.time(10, 0), tzinfo=zone)
    with transaction(engine) as s:
        blast = make_blast(s, state="scheduled", scheduled_at=at_ten, device="sandbox")
        make_recipient(s, blast)
        started = make_blast(s, state="paused", device="sandbox", started_at=utcnow())
        make_recipient(s, started)
        blast_id, started_id = blast.id, started.id
    key = f"reschedule_{blast_id}"
    at = _open(blast_id)
    # It opens on the blast's own time.
    assert (at.date_input(key=f"{key}_day").value, at.time_input(key=f"{key}_time").value) == (
        tomorrow, dt.time(10, 0))
    assert at.button(key=f"{key}_go").label == f"Send at {at_ten:%a %d %b}, 10:00"
    at.date_input(key=f"{key}_day").set_value(tomorrow + dt.timedelta(days=1))
    at.time_input(key=f"{key}_time").set_value(dt.time(14, 30)).run()
    at.button(key=f"{key}_go").click().run()
    assert not at.exception, at.exception
    moved = dt.datetime.combine(tomorrow + dt.timedelta(days=1), dt.time(14, 30), tzinfo=zone)
    with transaction(engine) as s:
        assert (s.get(Blast, blast_id).state, s.get(Blast, blast_id).scheduled_at) == ("scheduled", moved)
    assert [i.value for i in at.info if i.value.startswith("Scheduled for")] == [
        f"Scheduled for {moved:%d %b %Y, %H:%M}."]
    # A toast: a message above would change the page, and close the popover opened again.
    assert f"Blast #{blast_id} is scheduled for {moved:%a %d %b}, 14:30." in [s.value for s in at.toast]

    # A time gone by is refused before it is sent for.
    at.date_input(key=f"{key}_day").set_value(dt.datetime.now(zone).date() - dt.timedelta(days=1)).run()
    assert at.button(key=f"{key}_go").disabled
    assert "That time has passed: pick a later time, or send now." in [e.value for e in at.error]

    at.radio(key=key).set_value("Send now").run()
    at.button(key=f"{key}_go").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        blast = s.get(Blast, blast_id)
        assert (blast.state, blast.scheduled_at) == ("sending", None) and blast.started_at is not None
    assert f"Blast #{blast_id} is sending now." in [s.value for s in at.toast]
    assert at.selectbox(key="blast_pick").options[-1].endswith(
        f"sent {dt.datetime.now(zone):%d %b %Y}"), "the picker says what it is now"
    assert f"{key}_go" not in {b.key for b in at.button}, "it has started: Pause and Resume from here"
    assert f"reschedule_{started_id}_go" not in {b.key for b in _open(started_id).button}


def test_the_export_says_it_gives_back_the_lists_own_columns(engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, upload_columns=[["branch", "Branch"], ["status", "Status"]])
        make_recipient(s, blast, variables={"branch": "Ipoh", "status": "VIP"})
        plain = make_blast(s)
        make_recipient(s, plain)
        ids = blast.id, plain.id
    at = _open(ids[0])
    said = [c.value for c in at.caption if "your list's own columns" in c.value]
    assert said == ["Each file holds every person's status, times and replies, and your list's own columns: "
                    "Branch and Status \\(your file\\)."]  # as Markdown: shown as typed
    [people] = [d.value for d in at.dataframe if "Phone" in d.value.columns]
    assert list(people.columns[-2:]) == ["Branch", "Status (your file)"], "on the Recipients tab too"
    assert (people["Branch"].tolist(), people["Status (your file)"].tolist()) == (["Ipoh"], ["VIP"])
    assert not [c.value for c in _open(ids[1]).caption if "your list's own columns" in c.value]
    with transaction(engine) as s:  # a contacts export's dozens
        s.get(Blast, ids[0]).upload_columns = [[f"c{i}", f"Field {i}"] for i in range(40)]
    said = [c.value for c in _open(ids[0]).caption if "your list's own columns" in c.value]
    assert said[0].endswith("columns: Field 0, Field 1, Field 2, Field 3, Field 4 and 35 more.")


def test_a_follow_up_is_scheduled_ahead_when_no_one_has_waited_the_hours_yet(engine: Engine) -> None:
    """Right after the blast, "Read, no reply" for 24 hours matched no one, and the only button
    was greyed out: tomorrow's follow-up could not be set up today."""
    hour_ago = utcnow() - dt.timedelta(hours=1)
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", device="sandbox", message_template="Raya sale, {name}!")
        for name in ("Aisyah", "Ben", None):
            make_recipient(s, blast, status="READ_ACK", contact_name=name, sent_at=hour_ago,
                           read_timestamp=hour_ago)
        blast_id = blast.id
    at = _open(blast_id)
    assert "No one matches “Read, no reply” (reached at least 24 hours ago) yet" in " ".join(
        m.value for m in at.markdown)
    assert at.radio(key=f"fu_ahead_{blast_id}").value is True, "scheduling is what is left to do"
    zone = get_settings().timezone
    day = dt.datetime.now(zone).date() + dt.timedelta(days=2)
    at.date_input(key=f"fu_at_{blast_id}_day").set_value(day)
    at.text_area(key=f"fu_text_{blast_id}").set_value("Still keen, {name}?").run()
    assert any("As things stand, that would be **3 people**" in m.value for m in at.markdown)
    assert at.button(key="fu_schedule").disabled, "the one without a name would get a gap"
    at.checkbox(key=f"fu_blanks_{blast_id}").check().run()
    at.button(key="fu_schedule").click().run()
    assert not at.exception, at.exception
    when = dt.datetime.combine(day, dt.time(10, 0), tzinfo=zone)
    # The next one is proposed past it: the box had kept "Follow-up 1", and a second took it too.
    assert at.text_input(key=f"fu_stage_{blast_id}").value == "Follow-up 2"
    with transaction(engine) as s:
        child = s.scalars(select(Blast).where(Blast.parent_blast_id == blast_id)).one()
        assert (child.state, child.scheduled_at, child.total_recipients) == ("scheduled", when, 0)
        child_id = child.id
    assert (f"Blast #{child_id}, “Blast {blast_id} — Follow\\-up 1”, is scheduled for "
            f"{when:%a %d %b}, 10:00: it goes to whoever matches then.") in [m.value for m in at.success]
    page_of_it = _open(child_id)
    assert any(i.value.startswith("Its people are chosen as it starts: whoever then matches “Read, no reply” "
                                  f"(reached at least 24 hours before) of blast #{blast_id}") and
               "that would be **3 people**" in i.value for i in page_of_it.info)
    assert "recipients chosen as it starts" in _heading(page_of_it), "not “0 recipients”"
    assert "No one yet: its people are chosen as it starts." in [c.value for c in page_of_it.caption], (
        "not a full bar of “0 of 0 done”")
    page_of_it.radio(key=f"reschedule_{child_id}").set_value("Send now").run()
    assert [w.value for w in page_of_it.warning if w.value.startswith("Sent now")] == [
        "Sent now, it takes whoever matches now: 0 people. It would finish having sent nothing."]

    # Another one for the same blast is asked about: it holds no one yet for the usual check to see.
    again = _open(blast_id)
    assert any(w.value.startswith(f"**Blast #{child_id}**, “Blast {blast_id} — Follow\\-up 1”, is scheduled "
                                  f"for {when:%a %d %b}, 10:00 and takes whoever matches as it starts.")
               for w in again.warning)
    assert any("This is the message they were sent already" in w.value for w in again.warning), (
        "the same words again are asked about here too")
    again.checkbox(key=f"fu_blanks_{blast_id}").check().run()
    assert again.button(key="fu_schedule").disabled
    again.checkbox(key=f"fu_also_{blast_id}").check()
    again.checkbox(key=f"fu_same_{blast_id}").check().run()
    assert not again.button(key="fu_schedule").disabled

    # Sent now anyway, it took no one: said so, not that it waits in line to send.
    page_of_it.button(key=f"reschedule_{child_id}_go").click().run()
    assert not page_of_it.exception, page_of_it.exception
    said = [m.value for m in page_of_it.toast]
    assert f"Blast #{child_id} had no one to send to: it sends nothing." in said


def test_the_follow_up_when_keeps_the_marketers_pick_across_blasts(engine: Engine) -> None:
    days_ago = utcnow() - dt.timedelta(days=2)
    with transaction(engine) as s:
        blasts = [make_blast(s, state="completed", device="sandbox") for _ in range(2)]
        for blast in blasts:
            make_recipient(s, blast, status="READ_ACK", sent_at=days_ago, read_timestamp=days_ago)
        first, other = (b.id for b in blasts)
    at = _open(first)
    assert at.radio(key=f"fu_ahead_{first}").value is False  # someone matches now: a draft for them
    at.radio(key=f"fu_ahead_{first}").set_value(True).run()
    at.query_params["blast"] = str(other)
    at.run()
    at.query_params["blast"] = str(first)
    at.run()
    assert not at.exception, at.exception
    assert at.radio(key=f"fu_ahead_{first}").value is True, "as the marketer left it"


@pytest.mark.parametrize(("state", "said"), [("completed", True), ("cancelled", False)])
def test_a_follow_up_ahead_that_took_no_one_says_why_it_sent_nothing(
    engine: Engine, state: str, said: bool
) -> None:
    with transaction(engine) as s:
        parent = make_blast(s, state="completed")
        make_recipient(s, parent, status="REPLIED")
        chosen = {**SELECTIONS["Read, no reply"].as_json(), "chosen_at_start": True}
        child = make_blast(s, state=state, parent_blast_id=parent.id, total_recipients=0,
                           follow_up_selector=chosen)
        ids = parent.id, child.id
    infos = [i.value for i in _open(ids[1]).info]
    assert (f"As it started, no one matched “Read, no reply” of blast #{ids[0]} who had not opted out or had "
            "another follow-up of it: it sent nothing." in infos) is said, "a cancelled one never started"


def _a_pick_arriving_after_the_picker_was_dropped() -> None:
    import streamlit as st

    from dashboard.blast_views import PICK_KEY, _address_follows_pick

    st.session_state.pop(PICK_KEY, None)  # as `redraw_picker` does after Cancel or Pause
    _address_follows_pick()  # what the browser's last change to the picker still calls
    st.write("Cancelled")


def test_a_change_to_the_picker_after_an_action_dropped_it_shows_no_error() -> None:
    """Cancel, then the page's self-refreshing part sending the picker's old value: the whole
    page had been replaced by Streamlit's error box, though the cancel had worked."""
    at = AppTest.from_function(_a_pick_arriving_after_the_picker_was_dropped, default_timeout=30).run()
    assert not at.exception
    assert [m.value for m in at.markdown] == ["Cancelled"]
