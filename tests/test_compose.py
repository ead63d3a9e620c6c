"""Writing a blast's message: the WhatsApp-like preview, empty values, and quiet hours."""

from __future__ import annotations

import datetime as dt
import html
import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as hst
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core import templates
from core.config import get_settings
from core.db import transaction
from core.sending.pacing import PacingRules, parse_quiet_hours
from dashboard.compose import Sample, gap_summary, gap_warnings, plain, quiet_hours_note
from dashboard.whatsapp_format import to_html
from tests import test_pages
from tests.support.factories import make_blast, make_recipient

app_db = test_pages.app_db  # the dashboard pointed at the test database (SQLite and PostgreSQL)
page = test_pages.page
new_blast_with = test_pages.new_blast_with

KL = ZoneInfo("Asia/Kuala_Lumpur")
MARKERS = "*_~`"
OUR_TAGS = re.compile(r'</?(strong|em|s|code)>|<span style="font-family: monospace">|</span>|<br>')


# -- WhatsApp's formatting, as the preview shows it ----------------------------------------


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("*Promo Raya*", "<strong>Promo Raya</strong>"),
        ("_Jualan Raya_", "<em>Jualan Raya</em>"),
        ("~RM200~ *RM99*", "<s>RM200</s> <strong>RM99</strong>"),
        ("```KOD: RAYA99```", '<span style="font-family: monospace">KOD: RAYA99</span>'),
        ("Use `RAYA20` today", "Use <code>RAYA20</code> today"),
        ("*_bold italic_*", "<strong><em>bold italic</em></strong>"),
        ("Hi *Ali*, jom!", "Hi <strong>Ali</strong>, jom!"),
        ("(*bold*)", "(<strong>bold</strong>)"),
        ("*a* and *b*", "<strong>a</strong> and <strong>b</strong>"),
        ("*20% off* 🎉", "<strong>20% off</strong> 🎉"),
        # the marker must hug its text
        ("* not bold *", "* not bold *"),
        ("*not bold *", "*not bold *"),
        ("* not bold*", "* not bold*"),
        ("2*3*4", "2*3*4"),
        ("5 * 3", "5 * 3"),
        ("5 * 3 * 2", "5 * 3 * 2"),
        ("Ali_Bin_Abu", "Ali_Bin_Abu"),
        ("file_name_here.txt", "file_name_here.txt"),
        ("*bold*er", "*bold*er"),
        ("un*bold*", "un*bold*"),
        ("**", "**"),
        ("*", "*"),
        ("~", "~"),
        ("``````", "``````"),
        ("*unclosed", "*unclosed"),
        ("**double**", "*<strong>double</strong>*"),
        # nothing inside code is formatted
        ("```*not bold* _nor this_```", '<span style="font-family: monospace">*not bold* _nor this_</span>'),
        ("`*x*`", "<code>*x*</code>"),
        # line breaks kept exactly; bold stays on one line, monospace may span lines
        ("Salam\nJom\n\nBye", "Salam<br>Jom<br><br>Bye"),
        ("a\r\nb", "a<br>b"),
        ("*two\nlines*", "*two<br>lines*"),
        ("```one\ntwo```", '<span style="font-family: monospace">one<br>two</span>'),
        # Markdown and HTML are shown as typed
        ("# Jom", "# Jom"),
        ("1. Pilih\n2. Bayar", "1. Pilih<br>2. Bayar"),
        ("- item\n> quote", "- item<br>&gt; quote"),
        ("**Markdown bold**", "*<strong>Markdown bold</strong>*"),
        ("[link](http://x.my)", "[link](http://x.my)"),
        ("<b>Ali</b>", "&lt;b&gt;Ali&lt;/b&gt;"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('Tom & "Jerry"', "Tom &amp; &quot;Jerry&quot;"),
        ("*<i>x</i>*", "<strong>&lt;i&gt;x&lt;/i&gt;</strong>"),
        ("$5 and $6", "$5 and $6"),
        ("  two  spaces", "  two  spaces"),
    ],
)
def test_whatsapp_formatting(typed: str, shown: str) -> None:
    assert to_html(typed) == shown


def _text_of(shown: str) -> str:
    return html.unescape(OUR_TAGS.sub("", shown.replace("<br>", "\n")))


def _is_subsequence(small: str, big: str) -> bool:
    rest = iter(big)
    return all(ch in rest for ch in small)


@given(hst.text(max_size=300))
@hsettings(max_examples=500)
def test_any_message_renders_losing_only_markers(text: str) -> None:
    shown = to_html(text)
    assert not re.search(r"[<>\"'\n]", OUR_TAGS.sub("", shown)), "only our own tags are markup"
    typed = text.replace("\r\n", "\n").replace("\r", "\n")
    visible = _text_of(shown)
    assert _is_subsequence(visible, typed)
    dropped = len(typed) - len(visible)
    assert dropped >= 0
    assert sorted(c for c in typed if c not in MARKERS) == sorted(c for c in visible if c not in MARKERS)


@given(hst.text(alphabet=hst.characters(blacklist_characters=MARKERS + "\r"), max_size=300))
def test_text_without_markers_comes_out_whole_and_escaped(text: str) -> None:
    assert to_html(text) == html.escape(text).replace("\n", "<br>")


@given(hst.text(alphabet="*_~` ab1\n", max_size=60))
@hsettings(max_examples=500)
def test_marker_soup_never_raises(text: str) -> None:
    assert isinstance(to_html(text), str)


def test_long_and_deeply_nested_messages_render() -> None:
    assert to_html("*a " * 4000 + "_b " * 4000).startswith("*a *a")
    nested = "*_~" * 2000 + "x" + "~_*" * 2000  # a style never nests in itself: no deep recursion
    assert "x" in to_html(nested)
    assert to_html("*_~`a`~_*") == "<strong><em><s><code>a</code></s></em></strong>"


def test_text_from_a_file_is_plain_in_markdown() -> None:
    assert plain("*Ali* <b>x</b> $5") == r"\*Ali\* \<b\>x\</b\> \$5"


# -- empty values: which placeholder, for whom -------------------------------------------------


def test_gaps_name_each_placeholder_and_the_rows_left_empty() -> None:
    rows = [{"name": "Ali", "kod": ""}, {"name": " "}, {"name": None, "kod": "X"},
            {"name": "Siti", "kod": "Y"}]
    assert templates.gaps("Hi {Name}, code {kod} {name}", rows) == {"Name": [1, 2], "kod": [0, 1]}
    assert templates.gaps("Hi {name}", [{"name": "Ali"}]) == {}
    assert templates.gaps("No placeholders", rows) == {}


def _samples(count: int) -> list[Sample]:
    return [Sample(f"+6012000000{i}", {"name": ""}, line=i + 2) for i in range(count)]


@pytest.mark.parametrize(
    ("blank", "words"),
    [
        (1, "1 recipient has no value for {name}: line 2 (\\+60120000000)."),
        (3, "3 recipients have no value for {name}: line 2 (\\+60120000000), line 3 (\\+60120000001), "
            "line 4 (\\+60120000002)."),
        (5, "5 recipients have no value for {name}: line 2 (\\+60120000000), line 3 (\\+60120000001), "
            "line 4 (\\+60120000002) and 2 more."),
    ],
)
def test_gap_warning_counts_and_names_the_first_few(blank: int, words: str) -> None:
    samples = _samples(blank)
    gaps = templates.gaps("Hi {name}", [s.variables for s in samples])
    assert gap_warnings(gaps, samples) == [words]


def test_gap_summary_counts_each_recipient_once() -> None:
    assert gap_summary({"name": [0]}) == "1 recipient has no {name}"
    assert gap_summary({"name": [0, 1, 2]}) == "3 recipients have no {name}"
    assert gap_summary({"name": [0, 1], "kod": [1, 2]}) == "3 recipients have no {name} or {kod}"


def test_a_sample_without_a_line_is_named_by_its_label() -> None:
    assert Sample("Aisyah", {}).where == "Aisyah"
    assert Sample("", {}, line=7).where == "line 7"


# -- quiet hours, by the worker's own rule ---------------------------------------------------


def _rules(quiet: str) -> PacingRules:
    start, end = parse_quiet_hours(quiet)
    return PacingRules(min_gap_seconds=1, jitter_seconds=0, pause_every=0, pause_seconds=0,
                       daily_cap=0, quiet_start=start, quiet_end=end)


@pytest.mark.parametrize(
    ("quiet", "local", "note"),
    [
        ("21:00-09:00", dt.datetime(2026, 11, 26, 23, 30),
         "23:30 is inside quiet hours (21:00–09:00): sending will start at 09:00 on 27 Nov."),
        ("21:00-09:00", dt.datetime(2026, 11, 27, 2, 0),
         "02:00 is inside quiet hours (21:00–09:00): sending will start at 09:00 on 27 Nov."),
        ("21:00-09:00", dt.datetime(2026, 11, 26, 21, 0),
         "21:00 is inside quiet hours (21:00–09:00): sending will start at 09:00 on 27 Nov."),
        ("21:00-09:00", dt.datetime(2026, 12, 31, 22, 0),
         "22:00 is inside quiet hours (21:00–09:00): sending will start at 09:00 on 1 Jan."),
        ("12:00-14:00", dt.datetime(2026, 11, 26, 13, 15),
         "13:15 is inside quiet hours (12:00–14:00): sending will start at 14:00 on 26 Nov."),
        ("21:00-09:00", dt.datetime(2026, 11, 26, 9, 0), None),
        ("21:00-09:00", dt.datetime(2026, 11, 26, 20, 59), None),
        ("off", dt.datetime(2026, 11, 26, 23, 30), None),
    ],
)
def test_quiet_hours_note(quiet: str, local: dt.datetime, note: str | None) -> None:
    when = local.replace(tzinfo=KL).astimezone(dt.UTC)
    assert quiet_hours_note(_rules(quiet), when=when, zone=KL) == note


def test_quiet_hours_note_for_sending_now() -> None:
    when = dt.datetime(2026, 11, 26, 22, 5, tzinfo=KL)
    assert quiet_hours_note(_rules("21:00-09:00"), when=when, zone=KL, now=True) == (
        "It is 22:05 now, inside quiet hours (21:00–09:00): sending will start at 09:00 on 27 Nov."
    )


# -- on the New blast page ---------------------------------------------------------------------

ONE_BLANK_NAME = (
    b"Nama,No. Telefon,Produk\n"
    b",012-345 6789,Kuih\n"
    b"Wei Ling,+60 11-2345 6789,Bak kwa\n"
)


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_the_preview_looks_like_whatsapp(app_db: str) -> None:
    at = new_blast_with(b"Nama,No. Telefon\n<b>Ali</b>,012-345 6789\nAli_Bin_Abu,011-2345 6789\n")
    at.text_area(key="tpl").set_value("*Promo Raya* {name}\n# Jom\n1. Pilih 5 * 3").run()
    assert not at.exception, at.exception
    bubbles = [h.value for h in at.get("html")]
    assert len(bubbles) == 2
    assert "<strong>Promo Raya</strong> &lt;b&gt;Ali&lt;/b&gt;<br># Jom<br>1. Pilih 5 * 3" in bubbles[0]
    assert "<strong>Promo Raya</strong> Ali_Bin_Abu<br>" in bubbles[1]
    assert not any("Promo Raya" in m.value for m in at.markdown), "not read as Markdown"
    assert "To \\<b\\>Ali\\</b\\>" in _captions(at)


def test_one_blank_name_says_who_and_does_not_block_the_test(app_db: str) -> None:
    at = new_blast_with(ONE_BLANK_NAME)
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {name}, {produk} is on sale").run()
    assert not at.exception, at.exception
    warnings = "\n".join(w.value for w in at.warning)
    assert "1 recipient has no value for {name}: line 2 (\\+60123456789)." in warnings
    assert "recipients have" not in warnings
    assert at.button(key="test_send"), "a test to your own number is still possible"
    captions = _captions(at)
    assert "write a message that works" not in captions.casefold()
    assert 'Before sending: 1 recipient has no {name}: fix the file or tick "Send anyway" above.' in captions
    assert at.button(key="send_blast").disabled
    at.checkbox(key="tpl_blanks").check().run()
    assert not at.button(key="send_blast").disabled
    assert "Before sending" not in _captions(at)


def test_a_broken_message_says_what_to_do_before_a_test(app_db: str) -> None:
    at = new_blast_with(ONE_BLANK_NAME)
    at.text_area(key="tpl").set_value("Hi {nmae}").run()
    assert "To send a test, first fix what is marked in red in the message." in _captions(at)
    assert not [b for b in at.button if b.key == "test_send"]


def test_scheduling_inside_quiet_hours_says_when_sending_starts(
    app_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEND_QUIET_HOURS", "21:00-09:00")
    get_settings.cache_clear()
    at = new_blast_with(ONE_BLANK_NAME)
    at.radio(key="when").set_value("Schedule for later").run()
    day = dt.datetime.now(KL).date() + dt.timedelta(days=3)
    at.date_input(key="when_day").set_value(day)
    at.time_input(key="when_time").set_value(dt.time(23, 30)).run()
    assert not at.exception, at.exception
    next_day = day + dt.timedelta(days=1)
    expected = (f"23:30 is inside quiet hours (21:00–09:00): sending will start at 09:00 on "
                f"{next_day.day} {next_day:%b}.")
    assert expected in [w.value for w in at.warning]
    at.time_input(key="when_time").set_value(dt.time(10, 0)).run()
    assert not any("quiet hours" in w.value for w in at.warning)


def test_a_draft_with_a_blank_name_says_to_change_the_message(app_db: str, engine: Engine) -> None:
    with transaction(engine) as s:
        draft = make_blast(s, state="draft", message_template="Still keen, {name}?", device="sandbox")
        make_recipient(s, draft, contact_name="Aisyah")
        make_recipient(s, draft, contact_name="", phone_number="+60129998888")
        draft_id = draft.id
    at = page("pages/blast.py", blast=str(draft_id))
    at.run()
    assert not at.exception, at.exception
    warnings = "\n".join(w.value for w in at.warning)
    assert "1 recipient has no value for {name}: \\+60129998888" in warnings
    assert ('Before sending: 1 recipient has no {name}: take that placeholder out of the message or '
            'tick "Send anyway" above.') in _captions(at)
    assert [h.value for h in at.get("html")][0].count("Still keen, Aisyah?") == 1


def test_a_time_gone_by_is_said_first_and_alone(app_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Today 08:00 chosen at 10:06 had said "08:00 is inside quiet hours (21:00–09:00): sending
    will start at 09:00", a time gone by too, then a finish "if sent now"."""
    passed = (dt.datetime.now(KL) - dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    quiet = f"{passed - dt.timedelta(hours=1):%H:%M}-{passed + dt.timedelta(hours=1):%H:%M}"
    monkeypatch.setenv("SEND_QUIET_HOURS", quiet)
    get_settings.cache_clear()
    at = new_blast_with(ONE_BLANK_NAME)
    at.text_input(key="blast_tag").set_value("Raya")
    at.text_area(key="tpl").set_value("Hi {produk}").run()
    at.radio(key="when").set_value("Schedule for later").run()
    at.date_input(key="when_day").set_value(passed.date())
    at.time_input(key="when_time").set_value(passed.time()).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == ["That time has passed: pick a later time, or send now."]
    assert not any("quiet hours" in w.value for w in at.warning)
    assert not any("if sent now" in m.value or "messages take" in m.value for m in at.markdown)
    assert "Before sending: pick a later time, or send now." in _captions(at)
    assert at.button(key="send_blast").disabled

    at.date_input(key="when_day").set_value(passed.date() + dt.timedelta(days=2)).run()
    assert not at.error and at.button(key="send_blast").label == "Schedule the blast"
    assert not at.button(key="send_blast").disabled
