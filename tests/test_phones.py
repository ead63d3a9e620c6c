"""Phone numbers as people type them, Excel's damage to them, and WhatsApp JIDs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import phones
from core.phones import NOT_MOBILE, JidKind, from_jid, jid_kind, normalise, to_gateway, to_jid


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        # the forms people type
        ("012-345 6789", "+60123456789"),
        ("0123456789", "+60123456789"),
        ("012 345 6789", "+60123456789"),
        ("012.345.6789", "+60123456789"),
        ("(012) 345-6789", "+60123456789"),
        ("+60123456789", "+60123456789"),
        ("+60 12-345 6789", "+60123456789"),
        ("+6012-3456789", "+60123456789"),
        ("60123456789", "+60123456789"),
        ("60 12 345 6789", "+60123456789"),
        ("0060123456789", "+60123456789"),
        ("0060 12 345 6789", "+60123456789"),
        ("011-2345 6789", "+601123456789"),
        ("+60 11 2345 6789", "+601123456789"),
        ("019-876 5432", "+60198765432"),
        ("  0123456789  ", "+60123456789"),
        ("+60 (0)12-345 6789", "+60123456789"),
        ("HP: 012-345 6789", "+60123456789"),
        ("Tel. 012-345 6789", "+60123456789"),
        ("nombor: 0123456789", "+60123456789"),
        ("012-345 6789 ext 12", "+60123456789"),
        # Excel's damage
        ("123456789", "+60123456789"),  # the leading zero dropped
        ("1123456789", "+601123456789"),
        ("60123456789.0", "+60123456789"),
        ("123456789.0", "+60123456789"),
        ("60123456789,0", "+60123456789"),  # decimal comma locales
        ("6.0123456789E+10", "+60123456789"),
        ("6.0123456789e10", "+60123456789"),
        ("6,0123456789E+10", "+60123456789"),
        ("6.01123456789E+11", "+601123456789"),
        ("60,123,456,789", "+60123456789"),
        ("'0123456789", "+60123456789"),
        ('="0123456789"', "+60123456789"),
        # invisible and exotic characters
        ("\u00a0012\u00a0345\u00a06789", "+60123456789"),  # NBSP
        ("012\u200b345\u200b6789", "+60123456789"),  # zero-width space
        ("\u200e+60 12-345 6789\u200f", "+60123456789"),  # LTR / RTL marks
        ("\u202b0123456789\u202c", "+60123456789"),  # RTL embedding
        ("\ufeff0123456789", "+60123456789"),  # a BOM stuck to the cell
        ("012\u2009345\u20096789", "+60123456789"),  # thin spaces
        ("０１２３４５６７８９", "+60123456789"),  # full-width digits
        ("٠١٢٣٤٥٦٧٨٩", "+60123456789"),  # Arabic-Indic digits
        ("＋60123456789", "+60123456789"),  # full-width plus
    ],
)
def test_malaysian_mobiles_in_the_forms_people_type(typed: str, e164: str) -> None:
    result = normalise(typed)
    assert result.ok, result.reason
    assert result.e164 == e164
    assert result.warnings == ()
    assert result.is_mobile
    assert result.region == "MY"
    assert result.reason is None


@pytest.mark.parametrize(
    ("typed", "e164", "warning"),
    [
        ("03-2345 6789", "+60323456789", NOT_MOBILE),  # KL landline
        ("+60 3-2345 6789", "+60323456789", NOT_MOBILE),
        ("323456789", "+60323456789", NOT_MOBILE),  # landline, zero lost
        ("04-222 3344", "+6042223344", NOT_MOBILE),  # Penang landline
        ("1-800-88-8888", "+601800888888", NOT_MOBILE),  # toll-free
        ("+65 9123 4567", "+6591234567", "foreign number (Singapore, +65)"),
        ("006591234567", "+6591234567", "foreign number (Singapore, +65)"),
        ("+62 812-3456-7890", "+6281234567890", "foreign number (Indonesia, +62)"),
    ],
)
def test_usable_numbers_with_a_warning(typed: str, e164: str, warning: str) -> None:
    result = normalise(typed)
    assert result.ok
    assert result.e164 == e164
    assert result.warnings == (warning,)


def test_a_foreign_landline_gets_both_warnings() -> None:
    result = normalise("+65 6123 4567")  # a Singapore landline
    assert result.e164 == "+6561234567"
    assert result.warnings == (NOT_MOBILE, "foreign number (Singapore, +65)")
    assert not result.is_mobile
    assert result.region == "SG"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "no phone number"),
        ("   ", "no phone number"),
        ("-", "no phone number"),
        ("N/A", "no phone number"),
        ("tiada", "no phone number"),
        ("abc", "not a phone number"),
        ("ali@example.com", "not a phone number"),
        ("12345", "too short"),
        ("0123", "too short"),
        ("012345678901234567", "too long"),
        ("+999 1234 5678", "unknown country code"),
        ("91234567", "not a valid number in Malaysia"),
        ("0104756789", "not a valid number in Malaysia"),
        ("+65 1234 5678", "not a valid number in Singapore"),
        ("1-800-FLOWERS", "not a phone number (it has letters in it)"),
        ("012-345 6789 / 013-456 7890", "more than one number in this cell; keep one number per row"),
        ("0123456789, 0134567890", "more than one number in this cell; keep one number per row"),
        ("+60 12-345 6789 ::: +60 13-456 7890",
         "more than one number in this cell; keep one number per row"),
        ("03-2345 6789 / 03-8765 4321", "more than one number in this cell; keep one number per row"),
        ("012-3456789 / 012-345678", "more than one number in this cell; keep one number per row"),
        ("0123456789 atau 0134567890", "more than one number in this cell; keep one number per row"),
    ],
)
def test_unusable_numbers_say_why(typed: str, reason: str) -> None:
    result = normalise(typed)
    assert not result.ok
    assert result.e164 is None
    assert result.reason == reason


@pytest.mark.parametrize(
    "typed",
    [
        "012-345 6789 (HP)",
        "012-345 6789 (office)",
        "012-345 6789 (pejabat)",
        "012-345 6789 (WA)",
        "012 345 6789 whatsapp",
        "012-345 6789 WhatsApp only",
        "012-345 6789 (HP) (WA)",
        "0123456789(HP)",
        "012-345 6789 (电话)",
        "HP: 012-345 6789 (WhatsApp)",
        "012-345 6789 ext 12 (office)",
    ],
)
def test_a_note_after_the_number_is_left_out(typed: str) -> None:
    result = normalise(typed)
    assert result.reason is None
    assert result.e164 == "+60123456789"
    assert result.warnings == ()
    assert result.is_mobile


def test_a_note_says_landline_only_when_the_number_is_one() -> None:
    assert normalise("03-2345 6789 (office)").warnings == (NOT_MOBILE,)
    assert normalise("012-345 6789 (rumah)").warnings == ()


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("0123456789 ali@example.com", "not a phone number (it has letters in it)"),
        ("0123456789Ali", "not a phone number (it has letters in it)"),
        ("+6O123456789", "not a phone number (it has letters in it)"),
        ("1-800-FLOWERS", "not a phone number (it has letters in it)"),
        ("1 800 FLOWERS", "not a phone number (it has letters in it)"),  # the words are the number
        ("Ali 0123456789", "not a phone number (it has letters in it)"),
        ("012-345 6789 (HP 2)", "not a phone number (it has letters in it)"),
        ("012-345 6789 (HP) 013-456 7890", "not a phone number (it has letters in it)"),
        ("012-345 6789 / 013-456 7890 (HP)",
         "more than one number in this cell; keep one number per row"),
        ("0123456789 0134567890 (HP)", "too long"),  # two numbers run together stay refused
        ("012-34567890 (HP)", "not a valid number in Malaysia"),
    ],
)
def test_a_note_never_hides_what_is_wrong(typed: str, reason: str) -> None:
    assert normalise(typed).reason == reason


@pytest.mark.parametrize(("typed", "note"), [
    ("0123456789 STOP", "STOP"),
    ("0123456789 (no whatsapp)", "no whatsapp"),
    ("0123456789 NO WA", "NO WA"),
    ("0123456789 (tak aktif)", "tak aktif"),
    ("0123456789 - dah tak guna", "dah tak guna"),
    ("012-345 6789 (wrong number)", "wrong number"),
    ("0123456789 - Ali", "Ali"),  # a name, or anything else a person should read first
    ("0123456789, Ali", "Ali"),
    ("HP: 012-345 6789 (Ali)", "Ali"),
])
def test_a_note_that_may_say_not_to_message_refuses_the_row_and_names_the_note(typed: str, note: str) -> None:
    """Only a note that says what kind of line it is ("HP", "office") is left out: one that may
    say not to message the number keeps the row out, with the note, for a person to judge."""
    result = normalise(typed)
    assert result.e164 is None
    assert result.reason == f"a note after the number (“{note}”): take it out if this number may be messaged"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("6591234567", "looks like a number in Singapore: write it with + in front, +65 9123 4567"),
        ("65 9123 4567 (HP)", "looks like a number in Singapore: write it with + in front, +65 9123 4567"),
        ("6737123456", "looks like a number in Brunei: write it with + in front, +673 712 3456"),
        ("6281234567890",
         "looks like a number in Indonesia: write it with + in front, +62 812-3456-7890"),
    ],
)
def test_a_foreign_mobile_without_its_plus_is_named(typed: str, reason: str) -> None:
    # Refused rather than read as foreign: a mistyped Malaysian number can look like one.
    result = normalise(typed)
    assert result.e164 is None
    assert result.reason == reason


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("6012345678", "not a valid number in Malaysia"),  # 60...: Malaysian, one digit short
        ("01234567890", "not a valid number in Malaysia"),  # a local number with its 0
        ("0812-3456-7890", "too long"),  # Indonesian written the local way, from Malaysia
        ("12345678901", "too long"),  # a mobile with its 0 lost and a digit too many, not +1
        ("6561234567", "not a valid number in Malaysia"),  # a Singapore landline: not for WhatsApp
    ],
)
def test_digits_that_may_be_malaysian_keep_their_reason(typed: str, reason: str) -> None:
    assert normalise(typed).reason == reason


def test_a_foreign_reading_never_replaces_a_malaysian_one() -> None:
    assert normalise("60123456789").e164 == "+60123456789"
    assert normalise("6042223344").e164 == "+6042223344"  # Penang landline, not +604...
    assert normalise("60123456789", "SG").reason == (
        "looks like a number in Malaysia: write it with + in front, +60 12-345 6789"
    )


@pytest.mark.parametrize("typed", ["6.01235E+10", "6.0123E+10", "6E+10", "6.012345678E+10"])
def test_numbers_excel_shortened_are_refused_not_guessed(typed: str) -> None:
    # 6.01235E+10 is what Excel shows for 60123456789: the lost digits would be zeros,
    # which is somebody else's number.
    result = normalise(typed)
    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith(f"Excel shortened this number ({typed})")


def test_region_changes_what_a_local_number_means() -> None:
    singapore = normalise("9123 4567", "SG")
    assert singapore.e164 == "+6591234567"
    assert singapore.warnings == ()
    malaysian_from_sg = normalise("+60 12-345 6789", "sg")
    assert malaysian_from_sg.warnings == ("foreign number (Malaysia, +60)",)


def test_region_with_a_shared_country_code_still_works() -> None:
    # +1 is shared by the US and Canada: the fast path stays out, phonenumbers decides.
    result = normalise("(650) 253-0000", "US")
    assert result.e164 == "+16502530000"
    assert result.region == "US"


def test_non_string_cells_do_not_crash() -> None:
    assert normalise(None).reason == "no phone number"  # type: ignore[arg-type]
    assert normalise(60123456789).e164 == "+60123456789"  # type: ignore[arg-type]


def test_results_are_stable_across_the_cache() -> None:
    first = normalise("6.0123456789E+10")
    second = normalise("6.0123456789E+10")
    assert first == second
    assert first.e164 == "+60123456789"


# The fast path must give exactly what phonenumbers gives, for every digit string.
_prefixes = st.sampled_from(["", "0", "+60", "60", "0060", "+", "00", "+65", "6"])
_separators = st.sampled_from(["", " ", "-", ".", " - ", "(", ")"])


@st.composite
def typed_digits(draw: st.DrawFn) -> str:
    prefix = draw(_prefixes)
    groups = draw(st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=1,
                           max_size=4))
    out = prefix
    for group in groups:
        out += draw(_separators) + group
    return out


@st.composite
def near_numbers(draw: st.DrawFn) -> str:
    """Mostly plausible numbers (mobiles, landlines, toll-free), so the fast path answers."""
    prefix = draw(st.sampled_from(["", "0", "+60", "60", "0060", "+65", "65", "+62", "0"]))
    national = draw(st.from_regex(r"1[0-9]{8,9}|[3-9][0-9]{7,8}|8[0-9]{7}|1[38]00[0-9]{6}",
                                  fullmatch=True))
    cut = draw(st.integers(0, len(national)))
    return prefix + national[:cut] + draw(_separators) + national[cut:]


@given(typed=st.one_of(typed_digits(), near_numbers()),
       region=st.sampled_from(["MY", "SG", "ID", "US", "TH", "IN"]))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(typed="60123456789", region="MY")
@example(typed="0323456789", region="MY")
@example(typed="601800888888", region="MY")
@example(typed="6012345678", region="MY")
@example(typed="1154667890", region="MY")
def test_fast_path_agrees_with_phonenumbers(typed: str, region: str) -> None:
    fast = phones._fast_path(typed, region)
    if fast is not None:
        assert fast == phones._slow_path(typed, region)


def test_the_fast_path_answers_the_common_forms() -> None:
    # Guards the property test above: it only proves something if the fast path answers.
    for typed in ("012-345 6789", "+60 12-345 6789", "60123456789", "0060123456789",
                  "123456789", "03-2345 6789"):
        assert phones._fast_path(typed, "MY") == phones._slow_path(typed, "MY")
        assert phones._fast_path(typed, "MY") is not None


@given(st.text(max_size=40))
@settings(max_examples=500, deadline=None)
def test_any_text_gives_a_result_never_a_crash(text: str) -> None:
    result = normalise(text)
    if result.ok:
        assert result.reason is None
        assert result.e164 is not None
        assert result.e164.startswith("+")
        assert result.e164[1:].isdigit()
        assert 8 <= len(result.e164) <= 16
    else:
        assert result.reason


@given(st.sampled_from(["012-345 6789", "+60 13-456 7890", "011-2345 6789"]),
       st.sampled_from(["\u00a0", "\u200b", "\u200e", "\u200f", "\ufeff", "\u2060"]))
def test_invisible_characters_anywhere_are_ignored(typed: str, invisible: str) -> None:
    clean = normalise(typed)
    for at in range(len(typed) + 1):
        damaged = typed[:at] + invisible + typed[at:]
        assert normalise(damaged).e164 == clean.e164


# --- gateway forms and JIDs ----------------------------------------------------------------


def test_gateway_and_jid_forms() -> None:
    assert to_gateway("+60123456789") == "60123456789"
    assert to_jid("+60123456789") == "60123456789@s.whatsapp.net"
    assert to_gateway(normalise("012-345 6789").e164 or "") == "60123456789"


@pytest.mark.parametrize("bad", ["", "+", "+60 12", "0123-456", "abc"])
def test_to_gateway_refuses_what_is_not_e164(bad: str) -> None:
    with pytest.raises(ValueError, match="not an E.164 number"):
        to_gateway(bad)


@pytest.mark.parametrize(
    ("jid", "kind"),
    [
        ("60123456789@s.whatsapp.net", JidKind.PERSON),
        ("601133428730@c.us", JidKind.PERSON),
        ("60123456789:12@s.whatsapp.net", JidKind.PERSON),
        ("60123456789@S.WHATSAPP.NET", JidKind.PERSON),
        ("60123456789", JidKind.PERSON),
        ("120363025246125888@g.us", JidKind.GROUP),
        ("60123456789-1617690369@g.us", JidKind.GROUP),
        ("status@broadcast", JidKind.BROADCAST),
        ("1234567890@broadcast", JidKind.BROADCAST),
        ("123456789012345@lid", JidKind.LID),
        ("123@newsletter", JidKind.UNKNOWN),
        ("", JidKind.UNKNOWN),
        ("hello", JidKind.UNKNOWN),
    ],
)
def test_jid_kind(jid: str, kind: JidKind) -> None:
    assert jid_kind(jid) is kind


@pytest.mark.parametrize(
    ("jid", "alt", "e164"),
    [
        ("60123456789@s.whatsapp.net", None, "+60123456789"),
        ("601133428730@c.us", None, "+601133428730"),
        ("60123456789:12@s.whatsapp.net", None, "+60123456789"),
        ("60123456789_1@s.whatsapp.net", None, "+60123456789"),
        (" 60123456789@s.whatsapp.net ", None, "+60123456789"),
        ("60123456789", None, "+60123456789"),
        ("123456789012345@lid", "60123456789@s.whatsapp.net", "+60123456789"),
        ("123456789012345@lid", "60123456789:3@s.whatsapp.net", "+60123456789"),
        ("123456789012345@lid", None, None),
        ("123456789012345@lid", "98765@lid", None),
        ("120363025246125888@g.us", None, None),
        ("status@broadcast", None, None),
        ("abc@s.whatsapp.net", None, None),
        ("123@s.whatsapp.net", None, None),  # too short to be a number
        ("", None, None),
    ],
)
def test_from_jid(jid: str, alt: str | None, e164: str | None) -> None:
    assert from_jid(jid, alt) == e164


@pytest.mark.parametrize(
    ("sender", "e164"),
    [
        ("0123456789", "+60123456789"),
        ("0123456789@c.us", "+60123456789"),
        ("0123456789:3@s.whatsapp.net", "+60123456789"),
        ("+60 12-345 6789", "+60123456789"),
        ("012-345 6789", "+60123456789"),
        ("123456789", "+60123456789"),  # too short for +1: the trunk 0 lost
        ("0060123456789", "+60123456789"),  # the international prefix typed out
        ("0000000000@c.us", None),  # no number in Malaysia: no junk "+0000000000"
        ("+0123456789", "+60123456789"),
        ("123456789012345@lid", None),
    ],
)
@pytest.mark.usefixtures("in_malaysia")
def test_a_sender_written_the_local_way_is_read_in_the_region(sender: str, e164: str | None) -> None:
    assert from_jid(sender) == e164


def test_a_local_sender_is_read_in_the_region_given_or_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.config import get_settings

    assert from_jid("0812-3456-7890@c.us", region="ID") == "+6281234567890"
    assert from_jid("123456789012345@lid", "0812-3456-7890@c.us", region="ID") == "+6281234567890"
    monkeypatch.setenv("PHONE_REGION", "ID")
    get_settings.cache_clear()
    try:
        assert from_jid("081234567890@c.us") == "+6281234567890"
        assert from_jid("60123456789@s.whatsapp.net") == "+60123456789"  # international: any region
    finally:
        get_settings.cache_clear()


def test_from_jid_matches_what_an_import_stores() -> None:
    stored = normalise("012-345 6789").e164
    assert from_jid(to_jid(stored or "")) == stored


@pytest.mark.parametrize("cell", [
    "+60 3-2345 6789 ::: +60 12-345 6789",  # Google Contacts: a work line, then the mobile
    "012-345 6789 / 03-2345 6789",
    "Tel 03-2345 6789, HP 012-345 6789",
    "012-345 6789 ::: 012 345 6789",  # the same mobile twice
])
def test_of_several_numbers_in_a_cell_the_one_mobile_is_taken(cell: str) -> None:
    result = normalise(cell)
    assert (result.e164, result.is_mobile) == ("+60123456789", True)
    assert "the mobile of the numbers in this cell was taken" in result.warnings
