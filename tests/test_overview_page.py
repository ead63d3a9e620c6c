"""The Overview as a marketer meets it: filters that stay chosen, empty states in words,
opt-outs told apart from replies, and a day drawn as a day."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.db import transaction
from core.models import utcnow
from core.recipients import mark_closed
from tests.support.factories import make_blast, make_recipient
from tests.test_analytics import _opt_out_replies
from tests.test_pages import app_db, page, run_page  # noqa: F401  (app_db: the fixture, used below)

pytestmark = pytest.mark.usefixtures("app_db")

OVERVIEW = "pages/overview.py"
DAY_MS = 86_400_000


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _numbers(values: list[float] | dict[str, str]) -> list[float]:
    """A chart's numbers: Plotly sends an array of them packed, as {"dtype", "bdata"}."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def _captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def _sent_blasts(engine: Engine, *blasts: tuple[str, str, dt.datetime, int]) -> None:
    """(tag, follow-up stage, sent at, how many) for each blast: all of them received."""
    with transaction(engine) as s:
        for tag, stage, sent, n in blasts:
            blast = make_blast(s, blast_tag=tag, follow_up_stage=stage, blast_date=sent, state="completed")
            for _ in range(n):
                make_recipient(s, blast, status="DELIVERY_ACK", sent_at=sent)


NOV_2 = dt.datetime(2026, 11, 2, 3, tzinfo=dt.UTC)  # 11:00 in Kuala Lumpur


def _three_blasts(engine: Engine) -> None:
    _sent_blasts(engine, ("Raya", "Initial", NOV_2, 3),
                 ("Raya", "Follow-up 1", NOV_2 + dt.timedelta(days=4), 2),
                 ("CNY", "Initial", NOV_2 + dt.timedelta(days=8), 4))


def _leave_and_come_back(at: AppTest) -> None:
    """Replies from the sidebar, and back: the sidebar's links carry no query."""
    for path in ("pages/replies.py", OVERVIEW):
        at.query_params.clear()
        at.switch_page(path).run()
        assert not at.exception, at.exception


def test_the_overview_says_when_it_read_its_counts_and_reads_them_again_when_asked(engine: Engine) -> None:
    """It does not refresh by itself: it had called its counts "always current"."""
    _sent_blasts(engine, ("Raya", "Initial", NOV_2, 3))
    zone = get_settings().timezone
    before = dt.datetime.now(zone)
    at = run_page(OVERVIEW)
    read_at = {f"as of {moment:%H:%M}" for moment in (before, dt.datetime.now(zone))}
    assert not any("always current" in c for c in _captions(at))
    assert any(f"Counts {when}." in c for c in _captions(at) for when in read_at), _captions(at)
    assert any(f"the tags compared are {when}." in c for c in _captions(at) for when in read_at)
    _sent_blasts(engine, ("CNY", "Initial", NOV_2, 2))
    at.button(key="overview_refresh").click().run()
    assert not at.exception, at.exception
    assert _metrics(at)["Sent"] == "5"


def test_the_chosen_filters_are_still_there_after_another_page(engine: Engine) -> None:
    _three_blasts(engine)
    at = run_page(OVERVIEW)
    at.multiselect(key="flt_tags").set_value(["Raya"]).run()
    at.multiselect(key="flt_stages").set_value(["Follow-up 1"]).run()
    at.date_input(key="flt_dates").set_value((dt.date(2026, 11, 1), dt.date(2026, 11, 30))).run()
    assert _metrics(at)["Sent"] == "2"
    _leave_and_come_back(at)
    assert _metrics(at)["Sent"] == "2"
    assert at.multiselect(key="flt_tags").value == ["Raya"]
    assert at.multiselect(key="flt_stages").value == ["Follow-up 1"]
    assert at.date_input(key="flt_dates").value == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert dict(at.query_params) == {"from": "2026-11-01", "to": "2026-11-30", "tag": "Raya",
                                     "stage": "Follow-up 1"}, "the address can be shared again"


def test_filters_cleared_stay_cleared_after_another_page(engine: Engine) -> None:
    _three_blasts(engine)
    at = run_page(OVERVIEW, tag="CNY")
    at.multiselect(key="flt_tags").set_value([]).run()
    _leave_and_come_back(at)
    assert _metrics(at)["Sent"] == "9"


def test_a_link_with_filters_wins_over_the_ones_last_chosen(engine: Engine) -> None:
    _three_blasts(engine)
    at = run_page(OVERVIEW)
    at.multiselect(key="flt_tags").set_value(["Raya"]).run()
    at.query_params.clear()
    at.switch_page("pages/replies.py").run()
    at.query_params["tag"] = "CNY"  # a link to the overview of one tag
    at.switch_page(OVERVIEW).run()
    assert _metrics(at)["Sent"] == "4"
    assert at.multiselect(key="flt_tags").value == ["CNY"]


def test_a_link_naming_an_unknown_tag_says_so_and_keeps_the_rest_of_its_filters(engine: Engine) -> None:
    """It had shown all tags without a word, as if the link's tag were in use."""
    _three_blasts(engine)
    at = page(OVERVIEW, tag="Rayaa", stage="Follow-up 1")
    at.run()
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == ["No campaign tag called “Rayaa”: showing all tags."]
    assert at.multiselect(key="flt_stages").value == ["Follow-up 1"]
    assert _metrics(at)["Sent"] == "2", "the stage from the link still applies"

    at = page(OVERVIEW)
    at.query_params["tag"] = ["CNY", "Rayaa"]
    at.run()
    assert [w.value for w in at.warning] == ["No campaign tag called “Rayaa”: the others are shown."]
    assert _metrics(at)["Sent"] == "4"


def test_blasts_without_recipients_are_no_fault_of_filters_and_stay_reachable(engine: Engine) -> None:
    """A draft whose people all opted out: nobody to count, but its page is one click away."""
    with transaction(engine) as s:
        make_blast(s, state="draft", name="Raya for the opted out")
    at = run_page(OVERVIEW)
    said = " ".join(w.value for w in [*at.warning, *at.info])
    assert "filter" not in said.lower()
    assert "no recipients yet" in said and "New blast" in said
    assert "new_blast" in [link.proto.page for link in at.get("page_link")]
    assert list(at.dataframe[0].value["Name"]) == ["Raya for the opted out"]


def test_filters_that_match_nobody_are_named_with_what_to_loosen(engine: Engine) -> None:
    _three_blasts(engine)
    at = page(OVERVIEW, tag="CNY", stage="Follow-up 1")
    at.run()
    assert not at.exception, at.exception
    [warning] = at.warning
    assert warning.value == ("No recipients match these filters (tag CNY; follow-up stage Follow-up 1). "
                             "Clear a tag or clear a stage.")


def test_filters_that_match_only_an_empty_blast_still_show_it(engine: Engine) -> None:
    _three_blasts(engine)
    with transaction(engine) as s:
        make_blast(s, blast_tag="Merdeka", state="draft", name="Merdeka draft")
    at = page(OVERVIEW, tag="Merdeka", **{"from": "2026-01-01", "to": "2026-12-31"})
    at.run()
    assert [w.value for w in at.warning] == [
        "No recipients match these filters (dates 01/01/2026 to 31/12/2026; tag Merdeka). "
        "Widen the dates or clear a tag."
    ]
    assert list(at.dataframe[0].value["Name"]) == ["Merdeka draft"]


def test_drafts_alone_are_said_in_words_not_drawn_as_a_funnel_of_zeros(engine: Engine) -> None:
    with transaction(engine) as s:
        draft = make_blast(s, state="draft", name="Raya draft")
        for _ in range(3):
            make_recipient(s, draft)
    at = run_page(OVERVIEW)
    assert not [c for c in _charts(at) if c["data"][0]["type"] == "funnel"]
    assert "Nothing sent yet: the funnel fills in as the messages go out." in _captions(at)
    assert list(at.dataframe[0].value["Name"]) == ["Raya draft"]


def test_when_people_answer_starts_on_what_there_is(engine: Engine) -> None:
    sent = dt.datetime(2026, 11, 20, 3, tzinfo=dt.UTC)
    with transaction(engine) as s:
        blast = make_blast(s, state="completed")
        for _ in range(4):
            make_recipient(s, blast, status="READ_ACK", sent_at=sent,
                           read_timestamp=sent + dt.timedelta(hours=1))
    at = run_page(OVERVIEW)
    assert at.radio(key="hours_what").value == "read", "reads, not a grid of no replies"
    [heatmap] = [c["data"][0] for c in _charts(at) if c["data"][0]["type"] == "heatmap"]
    assert heatmap["colorbar"]["title"]["text"] == "reads"
    at.radio(key="hours_what").set_value("replied").run()
    assert not [c for c in _charts(at) if c["data"][0]["type"] == "heatmap"]
    assert "No replies yet in these blasts." in _captions(at)


def test_the_overview_says_how_many_replied_only_by_buying(engine: Engine) -> None:
    """A sale recorded for someone who never wrote back counts as replied: the page says so."""
    sent = utcnow() - dt.timedelta(days=1)
    with transaction(engine) as s:
        blast = make_blast(s, state="completed", blast_tag="Raya")
        wrote = make_recipient(s, blast, status="REPLIED", sent_at=sent, replied_at=sent)
        silent = make_recipient(s, blast, status="READ_ACK", sent_at=sent, read_timestamp=sent)
        make_recipient(s, blast, status="READ_ACK", sent_at=sent, read_timestamp=sent)
        mark_closed(s, recipient_ids=[wrote.id, silent.id])
    at = run_page(OVERVIEW)
    assert _metrics(at)["Replied"] == "2"
    assert "1 of them bought without replying" in _captions(at)
    assert any("1 sale recorded for people who never replied counts as replied" in c for c in _captions(at))


def _tag_rates(at: AppTest) -> dict[str, float]:
    [tags] = [c["data"][0] for c in _charts(at) if c["data"][0].get("orientation") == "h"]
    return dict(zip(tags["y"], _numbers(tags["x"]), strict=True))


def test_the_overview_says_how_many_replies_opted_out(engine: Engine) -> None:
    _opt_out_replies(engine)  # six replies; three of them to CNY were opt-out words
    at = run_page(OVERVIEW)
    assert _metrics(at)["Replied"] == "6", "an opt-out is a reply all the same"
    assert "3 of them opted out" in _captions(at)
    at.radio(key="tag_stage").set_value("replied").run()
    assert _tag_rates(at) == {"CNY (5 sent)": 20.0, "Raya (4 sent)": 50.0}, "STOP is no success"
    assert "opted out" in at.radio(key="tag_stage").options, "in words"
    # Not the funnel's "Replied" (which counts the STOPs): the choice says so.
    assert "replied, not to opt out" in at.radio(key="tag_stage").options
    at.radio(key="tag_stage").set_value("opted_out").run()
    assert _tag_rates(at) == {"CNY (5 sent)": 60.0, "Raya (4 sent)": 0.0}
    at.multiselect(key="flt_tags").set_value(["Raya"]).run()
    assert not [c for c in _captions(at) if "of them opted out" in c]


def _trend(at: AppTest) -> dict[str, Any]:
    [trend] = [c for c in _charts(at) if any(t.get("name") == "Sent" for t in c["data"])]
    return trend


def test_day_by_day_draws_each_day_a_day_wide_over_the_chosen_dates(engine: Engine) -> None:
    """Blasts four days apart: each was drawn as a bar four days wide."""
    _three_blasts(engine)
    at = page(OVERVIEW, tag="Raya", **{"from": "2026-11-01", "to": "2026-11-15"})
    at.run()
    trend = _trend(at)
    [bars] = [t for t in trend["data"] if t["type"] == "bar"]
    assert bars["width"] == pytest.approx(0.8 * DAY_MS)
    first, last = (dt.datetime.fromisoformat(x) for x in trend["layout"]["xaxis"]["range"])
    assert first < dt.datetime(2026, 11, 1) and dt.datetime(2026, 11, 15) < last < dt.datetime(2026, 11, 16)


@pytest.mark.parametrize(("devices", "says"), [
    (("sandbox", "demo"), "2 blasts made in practice mode are left out here now that messages go out on "
                          "WhatsApp: the sandbox made up their receipts and replies. Each still has its "
                          "page, from the Blast page's list."),
    (("sandbox",), "1 blast made in practice mode is left out here now that messages go out on WhatsApp: the "
                   "sandbox made up its receipts and replies. It still has its page, from the Blast page's "
                   "list."),
])
def test_once_live_an_overview_of_practice_blasts_only_says_they_are_left_out(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, devices: tuple[str, ...], says: str
) -> None:
    """Practice blasts left over after going live: the page said a bare "No blasts yet", though
    the README promises it says how many it leaves out."""
    with transaction(engine) as s:
        for device in devices:
            blast = make_blast(s, state="completed", device=device)
            make_recipient(s, blast, status="READ_ACK", sent_at=utcnow())
    monkeypatch.setenv("WSAPME_TOKEN", "t0ken-for-the-test")
    monkeypatch.setenv("WSAPME_DEVICE", "5850")
    get_settings.cache_clear()
    at = run_page(OVERVIEW)
    assert [h.value for h in at.subheader] == ["No blasts yet on WhatsApp"]
    assert [i.value for i in at.info if "practice mode" in i.value] == [says]
    assert not at.metric, "no funnel of made-up reads"
