"""Every page renders from the database, with real data and in its empty state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import streamlit as st
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from core import test_sends
from core.analytics import response_times
from core.config import PROJECT_ROOT, get_settings
from core.db import transaction
from core.funnel import FunnelFilter, funnel
from dashboard.format import duration_words
from tests.support.factories import make_blast, make_recipient


@pytest.fixture
def app_db(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Point the dashboard at the test database. Quiet hours are off unless a test sets them:
    otherwise what a page shows would depend on the hour the test runs. The data folder is
    the test's own: the one beside the project may hold a database of its own."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.delenv("WSAPME_TOKEN", raising=False)
    monkeypatch.setenv("SEND_QUIET_HOURS", "off")
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()
    yield db_url
    get_settings.cache_clear()
    st.cache_resource.clear()
    st.cache_data.clear()


def page(path: str, **query: str) -> AppTest:
    """A page as the app serves it: through the router, so links between pages resolve."""
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    return at.switch_page(path)


def run_page(path: str, **query: str) -> AppTest:
    at = page(path, **query)
    at.run()
    assert not at.exception, at.exception
    return at


def _markdown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown) + "\n".join(i.value for i in at.info)


def test_overview_empty_state_tells_a_new_user_what_to_do(app_db: str) -> None:
    at = run_page("pages/overview.py")
    assert any("No blasts yet" in h.value for h in at.subheader)
    assert "New blast" in _markdown(at)
    assert "practice mode" in _markdown(at)
    assert [link.proto.page for link in at.get("page_link")] == ["new_blast"]
    assert "python -m" not in _markdown(at), "no command a marketer cannot run"


def test_the_empty_overview_fills_with_demo_data_in_practice_mode(app_db: str, engine: Engine) -> None:
    from sqlalchemy import func, select

    from core.models import Blast

    at = run_page("pages/overview.py")
    at.button(key="fill_demo").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        assert s.scalar(select(func.count()).select_from(Blast)) > 10
        expected = funnel(s)
    assert not any("No blasts yet" in h.value for h in at.subheader)
    assert {m.label: m.value for m in at.metric}["Sent"] == f"{expected.sent:,}"
    assert not [b for b in at.button if b.key == "fill_demo"]


def test_demo_data_is_offered_only_in_practice_mode(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    get_settings.cache_clear()
    at = run_page("pages/overview.py")
    assert any("No blasts yet" in h.value for h in at.subheader)
    assert not [b for b in at.button if b.key == "fill_demo"], "demo blasts would mix with real ones"
    assert "practice mode" not in _markdown(at)


# The width the blast table gets on a 1366 px laptop screen with the sidebar open (measured
# in Chromium: 1366 - 300 px of sidebar - the page's margins).
TABLE_WIDTH_AT_1366 = 906
SMALL, MEDIUM, LARGE = 75, 200, 400  # Streamlit's named column widths, in pixels


def test_the_blast_table_shows_name_state_and_rates_without_scrolling_on_a_laptop(
    app_db: str, engine: Engine
) -> None:
    import json

    _sent_blast(engine)
    at = run_page("pages/overview.py")
    table = at.dataframe[0]
    config = json.loads(table.proto.columns)
    order = list(table.proto.column_order) or list(table.value.columns)
    named = {"small": SMALL, "medium": MEDIUM, "large": LARGE}
    shown, used = [], 0
    for column in order:
        width = config.get(column, {}).get("width")
        used += named.get(width, width) if width else LARGE  # an unsized column takes what it likes
        if used > TABLE_WIDTH_AT_1366:
            break
        shown.append(column)
    assert {"Open", "Name", "State", "Sent", "Received %", "Read %", "Replied %", "Closed %"} <= set(shown)
    assert shown[:3] == ["Open", "Name", "State"], "is it still sending? seen next to its name"
    assert list(table.value["State"]) == ["Sending"]


def test_a_stage_nobody_reached_shows_its_zero_on_the_overview_and_the_blast_page(
    app_db: str, engine: Engine
) -> None:
    import json

    blast_id = _sent_blast(engine)  # nobody closed
    for at in (run_page("pages/overview.py"), run_page("pages/blast.py", blast=str(blast_id))):
        [spec] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
                  if json.loads(c.proto.spec)["data"][0]["type"] == "funnel"]
        trace = spec["data"][0]
        closed = trace["y"].index("Closed")
        assert trace["x"][closed] == 0
        # A bar of no width has nowhere to show it: the count stands under the stage's name.
        assert spec["layout"]["yaxis"]["ticktext"][closed] == "Closed<br><b>0</b>"


def test_overview_numbers_equal_the_funnel_query(app_db: str, engine: Engine) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag="Raya", name="Raya promo")
        for status in ["PENDING", "DELIVERY_ACK", "READ_ACK", "REPLIED", "CLOSED", "FAILED"]:
            make_recipient(s, blast, status=status)
    with transaction(engine) as s:
        expected = funnel(s)
    at = run_page("pages/overview.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sent"] == f"{expected.sent:,}" == "5"
    assert metrics["Received"] == "4"
    assert metrics["Read"] == "3"
    assert metrics["Replied"] == "2"
    assert metrics["Closed"] == "1"
    assert metrics["Failed"] == "1"
    table = at.dataframe[0].value
    assert list(table["Tag"]) == ["Raya"]
    assert list(table["Read %"]) == [60.0]


def test_overview_filter_by_tag_from_the_url(app_db: str, engine: Engine) -> None:
    with transaction(engine) as s:
        for tag, n in (("Raya", 3), ("CNY", 2)):
            blast = make_blast(s, blast_tag=tag)
            for _ in range(n):
                make_recipient(s, blast, status="DELIVERY_ACK")
    at = page("pages/overview.py", tag="CNY")
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Sent"] == "2"
    at.multiselect(key="flt_tags").set_value([]).run()
    assert {m.label: m.value for m in at.metric}["Sent"] == "5"


def _answered_blast(engine: Engine, *, tag: str, replies: int, day: int = 2) -> None:
    sent = dt.datetime(2026, 3, day, 2, tzinfo=dt.UTC)
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag=tag, blast_date=sent)
        for i in range(replies):
            make_recipient(s, blast, status="REPLIED", sent_at=sent,
                           read_timestamp=sent + dt.timedelta(minutes=20 + i),
                           replied_at=sent + dt.timedelta(hours=2, minutes=i))
        make_recipient(s, blast, status="DELIVERY_ACK", sent_at=sent)


def test_overview_analytics_equal_the_core_queries(app_db: str, engine: Engine) -> None:
    _answered_blast(engine, tag="Raya", replies=3)
    _answered_blast(engine, tag="CNY", replies=1, day=5)
    with transaction(engine) as s:
        times = response_times(s, filters=FunnelFilter())
    at = run_page("pages/overview.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Typical time to read"] == duration_words(times.read_median) == "20 min"
    assert metrics["9 in 10 replied within"] == duration_words(times.reply_p90)
    assert len(at.get("plotly_chart")) == 4, "the funnel, the trend, the tags and the hours"
    assert any("Updated at most a minute ago" in c.value for c in at.caption)


def test_overview_reruns_reuse_the_slow_analytics_but_not_the_counts(app_db: str, engine: Engine) -> None:
    _answered_blast(engine, tag="Raya", replies=2)
    at = run_page("pages/overview.py")
    read_before = {m.label: m.value for m in at.metric}["Typical time to read"]
    _answered_blast(engine, tag="CNY", replies=3)  # reads after 20-22 min: the median moves
    at.radio(key="tag_stage").set_value("read").run()  # a click reruns the whole page
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sent"] == "7", "the funnel is live"
    assert metrics["Typical time to read"] == read_before, "the response times come from the cache"
    st.cache_data.clear()  # as the TTL does
    at.run()
    assert {m.label: m.value for m in at.metric}["Typical time to read"] != read_before


def test_health_page_renders(app_db: str) -> None:
    at = run_page("pages/health.py")
    assert any("Database" in h.value for h in at.subheader)


def _sent_blast(engine: Engine, state: str = "sending") -> int:
    with transaction(engine) as s:
        blast = make_blast(s, blast_tag="Raya", name="Raya promo", state=state, device="sandbox")
        for status in ["QUEUED", "PENDING", "DELIVERY_ACK", "READ_ACK", "REPLIED", "UNKNOWN", "FAILED"]:
            make_recipient(s, blast, status=status, contact_name=f"Name {status}")
        return blast.id


def test_blast_detail_shows_progress_equal_to_the_funnel(app_db: str, engine: Engine) -> None:
    blast_id = _sent_blast(engine)
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Sent"] == "4"
    assert metrics["Still to send"] == "1"
    assert metrics["Failed"] == "1" and metrics["Unknown"] == "1"
    assert metrics["Expected to finish"] != "—"
    assert at.button(key="pause")
    stuck = at.dataframe[0].value
    assert dict(zip(stuck["Status"], stuck["Recipients"], strict=True))["Replied"] == 1


def test_blast_detail_pause_then_resume(app_db: str, engine: Engine) -> None:
    blast_id = _sent_blast(engine)
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    at.button(key="pause").click().run()
    assert not at.exception
    assert any("Paused by you" in w.value for w in at.warning)
    at.button(key="resume").click().run()
    assert not at.exception
    assert not any("Paused by you" in w.value for w in at.warning)


def test_a_pause_that_would_end_by_itself_can_be_kept_for_a_person(app_db: str, engine: Engine) -> None:
    """Messages not getting through to WSAPME: the pause ends by itself in a few minutes, unless
    the marketer keeps it (before, to hold such a blast they could only cancel it)."""
    from core.models import Blast, utcnow
    from core.sending import blasts, trouble

    blast_id = _sent_blast(engine)
    reason = f"{trouble.NOT_TAKEN_HEAD} Nothing was lost: the messages wait in the queue. {trouble.BY_ITSELF}"
    with transaction(engine) as s:
        blasts.change_state(s, blast_id=blast_id, from_states=("sending",), to_state="paused",
                            reason=reason, paused_by="gateway")
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    assert reason in [w.value for w in at.warning]
    at.button(key="keep_paused").click().run()
    assert not at.exception, at.exception
    assert any("Paused by you" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "keep_paused"], "kept: nothing more to keep"
    with transaction(engine) as s:
        assert blasts.try_again_by_itself(s, after=dt.timedelta(0), now=utcnow()) == []
        assert (s.get(Blast, blast_id).state, s.get(Blast, blast_id).paused_by) == ("paused", "person")
    with transaction(engine) as s:  # one that tried again by itself as the button was pressed
        blasts.resume(s, blast_id=blast_id)
        blasts.keep_paused(s, blast_id=blast_id)
        kept = s.get(Blast, blast_id)
        assert (kept.state, kept.state_reason) == ("paused", "Paused by you.")


def test_blast_detail_recipient_search_and_filter(app_db: str, engine: Engine) -> None:
    blast_id = _sent_blast(engine, state="completed")
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    at.selectbox(key="rcp_sel").set_value("Read").run()
    table = at.dataframe[1].value
    assert sorted(table["Status"]) == ["Read (blue ticks)", "Replied"]
    at.text_input(key="rcp_q").set_value("Name REPLIED").run()
    assert list(at.dataframe[1].value["Status"]) == ["Replied"]


def test_blast_detail_creates_a_follow_up(app_db: str, engine: Engine) -> None:
    blast_id = _sent_blast(engine, state="completed")
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    at.number_input(key="fu_hours").set_value(24 * 30).run()
    assert "No one matches “Read, no reply” (reached at least 720 hours ago) yet" in _markdown(at)
    assert "fu_create" not in {b.key for b in at.button}, "no draft to make: it can be scheduled ahead"
    assert "fu_schedule" in {b.key for b in at.button}

    at.number_input(key="fu_hours").set_value(0)
    at.selectbox(key="fu_sel").set_value("Sent, no reply")
    at.text_area(key=f"fu_text_{blast_id}").set_value("Still keen, {name}?").run()
    assert "**3** people match “Sent, no reply” and will get this follow-up." in _markdown(at)
    assert not at.button(key="fu_create").disabled
    at.button(key="fu_create").click().run()
    assert not at.exception, at.exception
    assert any("created for 3 recipients" in m.value for m in at.success)


def test_blast_detail_empty_state(app_db: str) -> None:
    at = run_page("pages/blast.py")
    assert any("No blasts yet" in i.value for i in at.info)


CONTACTS = (
    "Nama,No. Telefon,Produk\n"
    "Aisyah,012-345 6789,Kuih\n"
    "Wei Ling,+60 11-2345 6789,Bak kwa\n"
    "Aisyah again,0123456789,Kuih\n"
    "Nobody,12345,Kuih\n"
).encode("utf-8-sig")


def new_blast_with(data: bytes = CONTACTS) -> AppTest:
    """The New blast page with `data` uploaded as contacts.csv."""
    at = page("pages/new_blast.py")
    at.run()
    at.file_uploader(key="upload").set_value(("contacts.csv", data, "text/csv"))
    at.run()
    assert not at.exception, at.exception
    return at


def test_new_blast_without_a_file_explains_what_to_upload(app_db: str) -> None:
    at = run_page("pages/new_blast.py")
    assert any("Upload your contact list (Excel or CSV) to begin" in i.value for i in at.info)
    assert at.get("download_button"), "a sample list to start from"


def test_the_sample_list_is_read_as_it_promises(app_db: str) -> None:
    from dashboard.new_blast_views import SAMPLE_CONTACTS

    at = new_blast_with(SAMPLE_CONTACTS)
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ready to send"] == "3" and metrics.get("Not a usable number", "0") == "0"
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}, {product} is back").run()
    assert not at.error, [e.value for e in at.error]


def test_new_blast_reports_rows_and_sends(app_db: str, engine: Engine) -> None:
    from sqlalchemy import select

    from core.models import Blast, BlastRecipient

    at = new_blast_with()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Ready to send"] == "2"
    assert metrics["Duplicate (skipped)"] == "1"
    assert metrics["Not a usable number"] == "1"
    assert at.button(key="send_blast").disabled
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}, *{produk}* is on sale 🎉").run()
    assert not at.exception, at.exception
    assert not at.button(key="send_blast").disabled
    at.button(key="send_blast").click().run()
    assert not at.exception, at.exception
    assert any("is sending now" in m.value for m in at.success)
    assert not [b for b in at.button if b.key == "send_blast"], "no second send of the same upload"
    with transaction(engine) as s:
        blast = s.scalars(select(Blast)).one()
        texts = sorted(s.scalars(select(BlastRecipient.message_text)))
    assert (blast.state, blast.blast_tag, blast.total_recipients) == ("sending", "Raya", 2)
    assert texts == ["Hi Aisyah, *Kuih* is on sale 🎉", "Hi Wei Ling, *Bak kwa* is on sale 🎉"]


def test_new_blast_refuses_an_unknown_placeholder_and_a_bad_file(app_db: str) -> None:
    at = new_blast_with()
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {nmae}").run()
    assert at.error and "nmae" in at.error[0].value
    assert at.button(key="send_blast").disabled
    bad = new_blast_with(b"PK\x03\x04" + bytes(200))
    assert not bad.exception
    assert bad.error and "Excel" in bad.error[0].value


def test_health_page_shows_the_webhook_masked_until_revealed(app_db: str, engine: Engine) -> None:
    from core.webhook.secret import current_secret

    at = run_page("pages/health.py")
    with transaction(engine) as s:
        secret = current_secret(s, settings=get_settings())
    shown = at.text[0].value
    assert not at.code, "nothing to copy while the address is hidden"
    assert "/webhooks/wsapme/" in shown and secret not in shown
    assert any("Blasts will not go out" in w.value for w in at.warning)
    at.toggle(key="reveal_webhook").set_value(True).run()
    assert secret in at.code[0].value


def test_health_page_after_events_and_a_worker(app_db: str, engine: Engine) -> None:
    from core import app_state
    from core.models import WebhookInbox

    with transaction(engine) as s:
        s.add(WebhookInbox(body=b"{}", state="applied"))
        s.add(WebhookInbox(body=b"not json", state="unparseable"))
        app_state.put(s, key="worker:host:1:abc", value={"sent": 12})
    at = run_page("pages/health.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Applied"] == "1" and metrics["Set aside"] == "1"
    assert not any("Blasts will not go out" in w.value for w in at.warning)
    assert any("Messages can go out" in m.value and "12 sent" in m.value for m in at.markdown)
    assert any("host:1:abc" in m.value for m in at.expander[0].markdown), "its name, for the server's keeper"


def test_whoever_runs_the_server_can_apply_set_aside_events_again(app_db: str, engine: Engine) -> None:
    from core.models import WebhookInbox

    with transaction(engine) as s:
        s.add(WebhookInbox(body=b"not json", state="unparseable"))
    at = run_page("pages/health.py")
    [details] = at.expander
    assert any("Webhook events set aside" in t for t in _texts(details))
    at.button(key="replay_set_aside").click().run()
    assert not at.exception, at.exception
    said = "1 set-aside event tried again: 0 applied, 1 still could not be used."
    assert [m.value for m in at.success] == [said]
    with transaction(engine) as s:
        assert s.scalars(select(WebhookInbox.state)).all() == ["unparseable"], "kept, never deleted"


def _texts(node: object) -> list[str]:
    """The words of every element under `node`, in order."""
    value = getattr(node, "value", None)
    texts = [value] if isinstance(value, str) else []
    for child in getattr(node, "children", {}).values():
        texts += _texts(child)
    return texts


def test_health_page_speaks_plainly_and_keeps_the_technical_detail_folded_away(
    app_db: str, engine: Engine
) -> None:
    from core import app_state
    from core.polling import POLLING_STATE_KEY

    with transaction(engine) as s:
        app_state.put(s, key="worker:host:1:abc", value={"sent": 3})
        app_state.put(s, key=POLLING_STATE_KEY, value={"active": False, "mode": "auto", "last_round": None})
    at = run_page("pages/health.py")
    [details] = at.expander
    assert details.label == "For whoever runs the server" and not details.proto.expanded
    inside = _texts(details)
    outside = [t for t in _texts(at.main) if t not in inside]
    assert any("practice mode" in t for t in outside)
    technical = ("WSAPME_TOKEN", "WSAPME_DEVICE", "schema revision", "host:1:abc", "STATUS_POLLING",
                 "RUN_WORKER", "SEND_PACING")
    for words in technical:
        assert any(words in t for t in inside), words
    for words in (*technical, "Mode", "SQLite", "PostgreSQL", "sandbox", "Sandbox", "worker"):
        assert not any(words in t for t in outside), (words, [t for t in outside if words in t])


def test_blast_detail_closes_sales_from_a_file(app_db: str, engine: Engine) -> None:
    import datetime as dt

    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        make_recipient(
            s,
            blast,
            phone_number="+60123456789",
            status="REPLIED",
            sent_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        )
        blast_id = blast.id
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    at.file_uploader(key="close_upload").set_value(
        ("sales.csv", b"phone\n0123456789\n0199999999\nabc\n012-345 6789\n", "text/csv")
    )
    at.run()
    at.button(key="close_apply").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Closed"] == "1" and metrics["Never messaged"] == "1"
    # The rows that closed nothing, on the page by their line: not only in the download.
    assert "**Rows to look at** (3): no sale was recorded for them." in [m.value for m in at.markdown]
    [table] = [d.value for d in at.dataframe if "What happened" in d.value.columns]
    assert [(r["Line"], r["Number"], r["What happened"].split(":")[0]) for r in table.to_dict("records")] == [
        (3, "+60199999999", "Never messaged"), (4, "", "Not a number"), (5, "+60123456789", "Listed twice")]
    assert "“abc”" in table["What happened"][1] and "line 2" in table["What happened"][2]


def test_new_blast_test_send_reaches_the_sandbox_gateway(app_db: str) -> None:
    from core.config import get_settings
    from core.gateway import sandbox_simulator

    at = new_blast_with()
    at.text_area(key="tpl").set_value("Hi {name}!").run()
    at.text_input(key="test_to").set_value("017-222 3333")
    at.button(key="test_send").click().run()
    assert not at.exception, at.exception
    assert any("Test sent to +60172223333" in m.value for m in at.success)
    sent = [m for m in sandbox_simulator(get_settings()).sent_messages() if m.to == "60172223333"]
    assert [m.message for m in sent][-1] == "Hi Aisyah!"
    at.text_input(key="blast_tag").set_value("Raya").run()  # the next click elsewhere
    assert any("Test sent to +60172223333" in m.value for m in at.success), "still there"
    assert not any("changed since that test" in w.value for w in at.warning)
    at.text_area(key="tpl").set_value("Hi {name}, jom!").run()
    assert any("changed since that test" in w.value for w in at.warning)
    at.text_input(key="test_to").set_value("12").run()
    at.button(key="test_send").click().run()
    assert any("cannot be used" in e.value for e in at.error)
    at.text_input(key="test_to").set_value("").run()
    at.button(key="test_send").click().run()
    assert any("Type your WhatsApp number first" in w.value for w in at.warning)


def test_a_follow_up_draft_is_sent_from_its_page(app_db: str, engine: Engine) -> None:
    from core.models import Blast

    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Still keen, {name}?", device="sandbox")
        make_recipient(s, draft, contact_name="Aisyah")
        make_recipient(s, draft, contact_name="")
        draft_id = draft.id
    at = page("pages/blast.py", blast=str(draft_id))
    at.run()
    assert not at.exception, at.exception
    assert any("This blast is a draft" in i.value for i in at.info)
    assert any("would have a gap" in w.value for w in at.warning)
    assert at.button(key="draft_send").disabled, "an empty name is refused unless accepted"
    at.checkbox(key=f"draft_tpl_{draft_id}_blanks").check().run()
    assert not at.button(key="draft_send").disabled
    at.button(key="draft_send").click().run()
    assert not at.exception, at.exception
    with transaction(engine) as s:
        assert s.get(Blast, draft_id).state == "sending"


def test_a_follow_up_draft_can_be_tested_on_your_own_number_first(app_db: str, engine: Engine) -> None:
    from core.config import get_settings
    from core.gateway import sandbox_simulator

    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Still keen, {name}?", device="sandbox")
        make_recipient(s, draft, contact_name="Aisyah")
        draft_id = draft.id
    at = page("pages/blast.py", blast=str(draft_id))
    at.run()
    at.text_input(key=f"draft_test_{draft_id}_to").set_value("017-222 4444")
    at.button(key=f"draft_test_{draft_id}_send").click().run()
    assert not at.exception, at.exception
    assert any("Test sent to +60172224444" in m.value for m in at.success)
    sent = [m for m in sandbox_simulator(get_settings()).sent_messages() if m.to == "60172224444"]
    assert [m.message for m in sent][-1] == "Still keen, Aisyah?", "filled in for the first recipient"
    with transaction(engine) as s:  # its receipts are known as a test's
        assert test_sends.among(s, [sent[-1].message_id]) == {sent[-1].message_id}


def test_overview_a_start_alone_is_from_that_day_on_and_one_day_is_picked_twice(
    app_db: str, engine: Engine
) -> None:
    """The box reads "20/11/2026 – dd/mm/yyyy" with the end left empty: it had counted the
    20th alone."""
    day = dt.datetime(2026, 11, 20, 3, tzinfo=dt.UTC)  # 11:00 in Kuala Lumpur
    with transaction(engine) as s:
        for when, n in ((day - dt.timedelta(days=3), 5), (day, 2), (day + dt.timedelta(days=2), 3)):
            blast = make_blast(s, blast_date=when)
            for _ in range(n):
                make_recipient(s, blast, status="DELIVERY_ACK")
    at = run_page("pages/overview.py")
    assert {m.label: m.value for m in at.metric}["Sent"] == "10"
    at.date_input(key="flt_dates").set_value((dt.date(2026, 11, 20),)).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Sent"] == "5"
    assert "From 20/11/2026 on." in [c.value for c in at.caption]
    assert dict(at.query_params) == {"from": "2026-11-20"}
    at.date_input(key="flt_dates").set_value((dt.date(2026, 11, 20), dt.date(2026, 11, 20))).run()
    assert {m.label: m.value for m in at.metric}["Sent"] == "2"
    shared = run_page("pages/overview.py", **{"from": "2026-11-20"})  # the address, shared or bookmarked
    assert shared.date_input(key="flt_dates").value == (dt.date(2026, 11, 20),)
    assert {m.label: m.value for m in shared.metric}["Sent"] == "5"


def test_overview_counts_as_waiting_only_what_will_still_go_out(app_db: str, engine: Engine) -> None:
    with transaction(engine) as s:
        for state, queued in (("sending", 3), ("cancelled", 4), ("draft", 2)):
            blast = make_blast(s, state=state)
            make_recipient(s, blast, status="DELIVERY_ACK")
            for _ in range(queued):
                make_recipient(s, blast)
    at = run_page("pages/overview.py")
    assert any(c.value == "3 recipients still to be sent · 2 recipients in drafts." for c in at.caption)


def test_once_live_the_overview_leaves_out_practice_blasts_and_says_so(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Demo data, or a practice blast left sending when the token was set: the sandbox made up
    their reads and replies, so once live they are not the team's results, and a practice
    queue never goes out."""
    with transaction(engine) as s:
        for device, tag, queued, read in (("sandbox", "Practice", 4, 6), ("demo", "Demo", 0, 9),
                                          ("5850", "Raya", 3, 1)):
            blast = make_blast(s, state="sending", device=device, blast_tag=tag)
            make_recipient(s, blast, status="DELIVERY_ACK")
            for _ in range(read):
                make_recipient(s, blast, status="READ_ACK")
            for _ in range(queued):
                make_recipient(s, blast)
    at = run_page("pages/overview.py")
    assert _metric_values(at)["Sent"] == "19", "in practice mode everything counts"

    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    get_settings.cache_clear()
    at = run_page("pages/overview.py")
    metrics = _metric_values(at)
    assert (metrics["Sent"], metrics["Read"]) == ("2", "1")
    captions = [c.value for c in at.caption]
    assert "3 recipients still to be sent." in captions
    assert any(c.startswith("2 blasts made in practice mode are left out") for c in captions)
    assert at.multiselect(key="flt_tags").options == ["Raya"]
    assert list(at.dataframe[0].value["Tag"]) == ["Raya"]


def _metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_overview_compares_only_tags_that_have_sent(app_db: str, engine: Engine) -> None:
    import json

    with transaction(engine) as s:
        sent = make_blast(s, blast_tag="Raya", state="completed")
        for _ in range(3):
            make_recipient(s, sent, status="REPLIED", sent_at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
        draft = make_blast(s, blast_tag="Merdeka", state="draft")
        make_recipient(s, draft)
    at = run_page("pages/overview.py")
    charts = [json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")]
    [tags] = [c for c in charts if c.get("orientation") == "h"]
    assert tags["y"] == ["Raya (3 sent)"]


def test_closing_from_a_file_whose_number_column_has_an_unknown_name(app_db: str, engine: Engine) -> None:
    """The column is called "Buyer": the page asks which column holds the numbers, then closes."""
    import datetime as dt

    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        make_recipient(s, blast, phone_number="+60123456789", status="REPLIED",
                       sent_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        blast_id = blast.id
    at = page("pages/blast.py", blast=str(blast_id))
    at.run()
    at.file_uploader(key="close_upload").set_value(("sales.csv", b"Buyer,Amount\n012-345 6789,RM50\n",
                                                    "text/csv"))
    at.run()
    at.button(key="close_apply").click().run()
    assert not at.exception, at.exception
    assert any("No phone number column found" in e.value for e in at.error)
    assert at.button(key="close_apply").disabled, "a column first"
    at.selectbox(key="close_phone_column").set_value("Buyer").run()
    at.button(key="close_apply").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Closed"] == "1"
    assert not any("No phone number column found" in e.value for e in at.error)


def test_a_page_that_fails_says_so_in_words_not_a_stack_trace(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import core.health

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no such column: blasts.paused_by")

    monkeypatch.setattr(core.health, "collect", broken)
    at = page("pages/health.py").run()
    assert not at.exception, "Streamlit's own error box, with its links to search the error"
    [error] = at.error
    assert "could not be shown because of an unexpected problem" in error.value
    assert "paused_by" not in error.value


def test_once_live_a_dashboard_holding_only_practice_blasts_starts_afresh(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", device="demo")
        make_recipient(s, blast, status="READ_ACK")
    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    get_settings.cache_clear()
    at = run_page("pages/overview.py")
    assert any("No blasts yet" in h.value for h in at.subheader)


def test_a_part_of_a_page_that_fails_says_so_in_words(
    app_db: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parts that refresh themselves (st.fragment) do not pass through the page's catch-all."""
    import dashboard.blast_views

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no such table: blast_status_counts")

    monkeypatch.setattr(dashboard.blast_views, "render_stuck_table", broken)
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        make_recipient(s, blast, status="READ_ACK", sent_at=dt.datetime.now(dt.UTC))
        blast_id = blast.id
    at = run_page("pages/blast.py", blast=str(blast_id))
    errors = [e.value for e in at.error]
    assert errors == ["This part of the page could not be brought up to date because of an unexpected "
                      "problem. It has been logged, and it tries again by itself."]
    assert any(m.label == "Sent" for m in at.metric), "the rest of the page is drawn"
