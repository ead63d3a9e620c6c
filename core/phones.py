"""Phone numbers: what people type (and what Excel does to it) to E.164, and WhatsApp JIDs."""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

from core.config import get_settings

DEFAULT_REGION = "MY"

MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
NOT_MOBILE = "not a mobile number (WhatsApp needs a mobile)"

# What people write in the phone column to mean "no number".
NO_NUMBER_WORDS = frozenset({"-", "--", "n/a", "na", "nil", "none", "null", "tiada", "tak ada", "0"})
# Labels people put in front of a number in the same cell ("HP: 012-345 6789").
_LABEL_RE = re.compile(
    r"^\s*(?:telephone|telefon|tel|phone|mobile|handphone|h/p|hp|whatsapp|wa|nombor|no\.?)"
    r"\s*(?:no\.?)?\s*[:.\-]?\s*",
    re.IGNORECASE,
)
_EXTENSION_RE = re.compile(r"\s*(?:ext\.?|extension|x|#)\s*\d+\s*$", re.IGNORECASE)
# A note after the number ("012-345 6789 (HP)", "0123456789 - Ali"): words only, set off by a
# space, a bracket or a dash, so a letter inside a number ("+6O12...", "1-800-FLOWERS") still
# refuses the cell and a second number after a note still counts as one.
_WORDS = r"[^\W\d_]+(?:[\s.'&/\-]+[^\W\d_]+)*\.?"
_BRACKETED = rf"[(\[]\s*{_WORDS}\s*[)\]]"
_NOTE_RE = re.compile(
    rf"(?<=\d)(?:\s*[,:;]\s*|\s+[-\u2013\u2014]\s*|\s+|\s*(?=[(\[]))"
    rf"(?:{_WORDS}|{_BRACKETED})(?:\s*{_BRACKETED})*\s*$"
)
# Words a note after the number may be made of and be left out: they say what kind of line it
# is. Any other note ("STOP", "no whatsapp", "tak aktif", "wrong number", a name) may say not to
# message it, so the row is refused with the note named, for a person to judge.
LINE_WORDS = frozenset({
    "hp", "h/p", "wa", "whatsapp", "watsapp", "mobile", "handphone", "bimbit", "cell", "cellphone",
    "office", "pejabat", "home", "rumah", "work", "kerja", "personal", "peribadi", "main", "utama",
    "primary", "tel", "phone", "telefon", "line", "business", "only", "sahaja",
    "电话", "手机", "電話", "手機", "办公室", "公司", "家", "住家",
})
_NOTE_WORD_RE = re.compile(r"[^\W\d_]+(?:/[^\W\d_]+)?")
_LETTER_RE = re.compile(r"[^\W\d_]")
# Two numbers in one cell, e.g. "012-345 6789 / 013-456 7890".
# Google Contacts joins a contact's numbers with " ::: ".
_MULTI_SPLIT_RE = re.compile(r"[/,;&|\n]|:::|\s(?:or|atau|dan|and)\s", re.IGNORECASE)
_DIGIT_RE = re.compile(r"\d")
# Cells the fast path may read as they are: digits, spaces, dashes, brackets, a plus.
_PLAIN_RE = re.compile(r"\s*\+?[\d \-()]+\s*")
# Excel damage: a number stored as a float, with thousands separators, or in E notation.
_FLOAT_RE = re.compile(r"^(\+?\d+)[.,]0+$")
_THOUSANDS_RE = re.compile(r"^\d{1,3}(?:,\d{3})+$")
_SCIENTIFIC_RE = re.compile(r"^(\d)(?:[.,](\d+))?[eE]\+?(\d{1,2})$")
_EXCEL_FORMULA_RE = re.compile(r'^="(.*)"$')


class PhoneResult(NamedTuple):
    """The outcome for one typed number: E.164 when usable, else a reason in plain words.

    A named tuple rather than a dataclass: it is built once per CSV row, and tuples are
    several times cheaper to make.
    """

    e164: str | None
    reason: str | None = None
    warnings: tuple[str, ...] = ()
    region: str | None = None
    is_mobile: bool = False

    @property
    def ok(self) -> bool:
        return self.e164 is not None


def _invalid(reason: str) -> PhoneResult:
    return PhoneResult(e164=None, reason=reason)


def normalise(raw: str, region: str = DEFAULT_REGION) -> PhoneResult:
    """Turn what someone typed into an E.164 number (`+60123456789`), or say why not."""
    if not isinstance(raw, str):
        raw = "" if raw is None else str(raw)
    region = region.upper()
    # Most cells are already plain digits: answer them without cleaning or parsing.
    if raw.isascii() and _PLAIN_RE.fullmatch(raw):
        fast = _fast_path(raw.strip(), region)
        if fast is not None:
            return fast
    return _normalise_full(raw, region)


@functools.lru_cache(maxsize=65_536)
def _normalise_full(raw: str, region: str) -> PhoneResult:
    # Cached: marketing lists repeat numbers, and phonenumbers costs ~70-100 µs a number.
    text = _clean(raw)
    if not text or text.casefold() in NO_NUMBER_WORDS:
        return _invalid("no phone number")
    repaired = _repair_excel(text)
    if isinstance(repaired, PhoneResult):
        return repaired
    return _fast_path(repaired, region) or _slow_path(repaired, region)


def _clean(raw: str) -> str:
    """Drop invisible characters, spreadsheet text markers, a label in front and a note after."""
    if not raw.isascii():
        raw = "".join(_visible(ch) for ch in raw)
    text = raw.strip()
    if text.startswith("="):  # ="0123456789" keeps Excel from eating the 0
        match = _EXCEL_FORMULA_RE.match(text)
        text = match.group(1).strip() if match else text
    text = text.lstrip("'").strip()  # '0123456789 is Excel's "store as text" marker
    if text and text[0].isalpha():
        text = _LABEL_RE.sub("", text, count=1)
    if text and not text[-1].isdigit():
        text = _drop_note(text)
    return text


def _drop_note(text: str) -> str:
    """The cell without a note after the number that only says what kind of line it is."""
    note = _note(text)
    return text if note is None or not _says_the_line(note) else text[: len(text) - len(note)]


def _note(text: str) -> str | None:
    """A note after the number, as typed (with what sets it off); None when there is none."""
    note = _NOTE_RE.search(text)
    # Too few digits before it to be a number ("1 800 FLOWERS"): the letters are part of it.
    if note is None or sum(ch.isdigit() for ch in text[: note.start()]) < 7:
        return None
    return text[note.start():]


def _says_the_line(note: str) -> bool:
    words = _NOTE_WORD_RE.findall(note.casefold())
    return bool(words) and all(word in LINE_WORDS for word in words)


def _visible(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Cf":  # zero-width spaces and joiners, RTL/LTR marks, BOM
        return ""
    if category == "Zs":  # NBSP and other exotic spaces
        return " "
    return ch


def _repair_excel(text: str) -> str | PhoneResult:
    """Undo what Excel does to a number column: floats, thousands commas, E notation."""
    if "." in text or "," in text:
        match = _FLOAT_RE.match(text)
        if match:
            return match.group(1)
        if _THOUSANDS_RE.match(text):
            return text.replace(",", "")
    match = _SCIENTIFIC_RE.match(text) if ("E" in text or "e" in text) else None
    if match:
        return _from_scientific(text, match)
    return text


def _from_scientific(text: str, match: re.Match[str]) -> str | PhoneResult:
    lead, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
    # Excel shows 6.01235E+10 for 60123456789: the digits after the 6th are gone for good.
    # Only a mantissa that spells out every digit can be trusted.
    if len(fraction) < exponent:
        return _invalid(
            f"Excel shortened this number ({text}); format the phone column as text "
            "and export the file again"
        )
    try:
        value = Decimal(f"{lead}.{fraction}E{exponent}")
    except InvalidOperation:  # pragma: no cover - the regex only lets valid numbers through
        return _invalid("not a phone number")
    if value != value.to_integral_value():
        return _invalid("not a phone number")
    return str(int(value))


# --- fast path -----------------------------------------------------------------------------


_Desc = tuple[frozenset[int], re.Pattern[str]]  # possible lengths, national number pattern
# phonenumbers' own order for telling a number's type (`_number_type_helper`).
_TYPE_ORDER = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)


@dataclass(frozen=True)
class _RegionRules:
    country_code: str
    national_prefix: str
    international_prefix: str
    general: _Desc
    special: tuple[tuple[PhoneNumberType, _Desc], ...]
    fixed_line: _Desc | None
    mobile: _Desc | None
    same_mobile_and_fixed_line: bool
    # One regex for the common answer, "a mobile and nothing else"; a miss falls back to
    # the type-by-type check.
    only_mobile: re.Pattern[str] | None


def _desc(desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length or ()), re.compile(desc.national_number_pattern)


@functools.cache
def _region_rules(region: str) -> _RegionRules | None:
    """The region's number patterns, compiled once; None where the fast path cannot be
    exact: no metadata, a country code shared by several regions (+1, +44), or a trunk
    prefix with rewriting rules (carrier codes) that only phonenumbers applies."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if (
        metadata is None
        or len(phonenumbers.region_codes_for_country_code(metadata.country_code)) != 1
        or metadata.national_prefix_transform_rule is not None
        or metadata.national_prefix_for_parsing not in (None, metadata.national_prefix)
    ):
        return None
    general = _desc(metadata.general_desc)
    if general is None:
        return None
    special = tuple(
        (kind, desc) for name, kind in _TYPE_ORDER
        if (desc := _desc(getattr(metadata, name))) is not None
    )
    fixed_line, mobile = _desc(metadata.fixed_line), _desc(metadata.mobile)
    only_mobile = None
    if mobile is not None:
        others = [d[1].pattern for _, d in special] + ([fixed_line[1].pattern] if fixed_line else [])
        not_other = "".join(f"(?!(?:{p})$)" for p in others)
        only_mobile = re.compile(f"{not_other}(?=(?:{general[1].pattern})$)(?:{mobile[1].pattern})")
    return _RegionRules(
        country_code=str(metadata.country_code),
        national_prefix=metadata.national_prefix or "",
        international_prefix=metadata.international_prefix or "",
        general=general,
        special=special,
        fixed_line=fixed_line,
        mobile=mobile,
        same_mobile_and_fixed_line=bool(metadata.same_mobile_and_fixed_line_pattern),
        only_mobile=only_mobile,
    )


def _fast_path(text: str, region: str) -> PhoneResult | None:
    """A clean number of the home country, typed in digits, without phonenumbers' parser.

    Answers only valid numbers (an invalid one needs phonenumbers for its reason), with
    the type phonenumbers would give: a property test holds the two paths together.
    """
    rules = _region_rules(region)
    if rules is None or not text.isascii():
        return None
    national = _national_number(_strip_separators(text), rules)
    if not national or national[0] == "0":  # leading zeros are kept in E.164: leave those
        return None
    kind = (
        PhoneNumberType.MOBILE if _only_mobile(national, rules) else _number_type(national, rules)
    )
    if kind is None:
        return None
    e164 = f"+{rules.country_code}{national}"
    if kind in MOBILE_TYPES:
        return PhoneResult(e164=e164, region=region, is_mobile=True)
    return PhoneResult(e164=e164, warnings=(NOT_MOBILE,), region=region, is_mobile=False)


def _only_mobile(national: str, rules: _RegionRules) -> bool:
    if rules.only_mobile is None or rules.same_mobile_and_fixed_line or rules.mobile is None:
        return False
    length = len(national)
    return (
        length in rules.mobile[0]
        and (not rules.general[0] or length in rules.general[0])
        and rules.only_mobile.fullmatch(national) is not None
    )


def _matches(national: str, desc: _Desc | None) -> bool:
    if desc is None:
        return False
    lengths, pattern = desc
    return (not lengths or len(national) in lengths) and pattern.fullmatch(national) is not None


def _number_type(national: str, rules: _RegionRules) -> PhoneNumberType | None:
    """phonenumbers' `_number_type_helper` on compiled patterns; None for UNKNOWN."""
    if not _matches(national, rules.general):
        return None
    for kind, desc in rules.special:
        if _matches(national, desc):
            return kind
    if _matches(national, rules.fixed_line):
        if rules.same_mobile_and_fixed_line or _matches(national, rules.mobile):
            return PhoneNumberType.FIXED_LINE_OR_MOBILE
        return PhoneNumberType.FIXED_LINE
    if not rules.same_mobile_and_fixed_line and _matches(national, rules.mobile):
        return PhoneNumberType.MOBILE
    return None


def _strip_separators(text: str) -> str:
    # Chained replace: several times faster than str.translate for this handful.
    return (
        text.replace(" ", "").replace("-", "").replace(".", "").replace("(", "")
        .replace(")", "").replace("/", "").replace("\t", "")
    )


def _national_number(digits: str, rules: _RegionRules) -> str | None:
    cc = rules.country_code
    if digits.startswith("+"):
        rest = digits[1:]
        return rest[len(cc):] if rest.isdigit() and rest.startswith(cc) else None
    if not digits.isdigit():
        return None
    idd = rules.international_prefix
    if idd.isdigit() and digits.startswith(idd + cc):
        return digits[len(idd) + len(cc):]
    if rules.national_prefix and digits.startswith(rules.national_prefix):
        return digits[len(rules.national_prefix):]
    if digits.startswith(cc) and not rules.general[1].fullmatch(digits):
        return digits[len(cc):]  # the country code typed without its plus
    return digits  # the trunk 0 lost (Excel drops leading zeros)


# --- slow path -----------------------------------------------------------------------------


_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
}


def _slow_path(text: str, region: str) -> PhoneResult:
    if not _DIGIT_RE.search(text):
        return _invalid("not a phone number")
    numbers = _numbers_in(text)
    if len(numbers) >= 2:
        return _the_one_mobile(numbers, region) or _invalid(
            "more than one number in this cell; keep one number per row")
    extension = _EXTENSION_RE.search(text)
    core = text[: extension.start()] if extension else text
    # phonenumbers reads letters as a keypad ("1-800-FLOWERS"): a name next to a
    # number would silently become extra digits.
    if _LETTER_RE.search(core):
        note = _note(core)
        if note is not None:
            said = note.strip(" \t,:;-\u2013\u2014()[]")
            return _invalid(f"a note after the number (“{said}”): take it out if this number may be "
                            "messaged")
        return _invalid("not a phone number (it has letters in it)")
    try:
        result = _judge(phonenumbers.parse(core, region), region)
    except NumberParseException as exc:
        result = _invalid(_PARSE_REASONS.get(exc.error_type, "not a phone number"))
    return result if result.ok else _foreign_without_plus(core, region) or result


def _numbers_in(text: str) -> list[str]:
    """The parts of a cell split at "/", ",", " ::: ", " or "… that hold a number's digits."""
    return [part for part in _MULTI_SPLIT_RE.split(text) if len(_DIGIT_RE.findall(part)) >= 7]


def _the_one_mobile(parts: list[str], region: str) -> PhoneResult | None:
    """Of several numbers in one cell ("+60 3-2345 6789 ::: +60 12-345 6789", as Google Contacts
    joins a contact's work line and mobile), the mobile, when the others are all landlines:
    WhatsApp reaches no other. Two mobiles, or a second number that is no number at all (a
    mobile mistyped, say), stay a question only the person can answer."""
    read = [_normalise_full(part, region) for part in parts]
    mobiles = {result.e164: result for result in read if result.ok and result.is_mobile}
    if len(mobiles) != 1 or not all(result.ok for result in read):
        return None
    [mobile] = mobiles.values()
    return mobile._replace(warnings=(*mobile.warnings, "the mobile of the numbers in this cell was taken"))


def _foreign_without_plus(core: str, region: str) -> PhoneResult | None:
    """The reason for a foreign mobile typed with its country code but no plus ("6591234567"),
    which the region reads as a wrong number of its own; None when it reads as no such number.

    Refused, not read: a home number mistyped can look like a foreign one, and a guess would
    message a stranger abroad. Digits that start with 0, with the home country code, or the
    way a home mobile starts once Excel drops its 0 stay the home country's."""
    if "+" in core or "\uff0b" in core:  # its country code was read: the plus adds nothing
        return None
    digits = phonenumbers.normalize_digits_only(core)
    if digits.startswith(("0", *_home_starts(region))):
        return None
    try:
        number = phonenumbers.parse(f"+{digits}")
    except NumberParseException:
        return None
    number_region = phonenumbers.region_code_for_number(number)
    place = _country_name(number_region)
    if (
        not place
        or number_region == region
        or not phonenumbers.is_valid_number(number)
        or phonenumbers.number_type(number) not in MOBILE_TYPES
    ):
        return None
    written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return _invalid(f"looks like a number in {place}: write it with + in front, {written}")


@functools.cache
def _home_starts(region: str) -> tuple[str, ...]:
    """The region's country code and, where a trunk 0 can be lost, the digit its mobiles then
    start with ("12345678901" is a Malaysian mobile mistyped sooner than a US number)."""
    starts = [str(phonenumbers.country_code_for_region(region))]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if metadata is not None and metadata.national_prefix and example is not None:
        starts.append(str(example.national_number)[0])
    return tuple(starts)


def _judge(number: phonenumbers.PhoneNumber, region: str) -> PhoneResult:
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        return _invalid(_POSSIBLE_REASONS[possible])
    number_region = phonenumbers.region_code_for_number(number)
    if not phonenumbers.is_valid_number(number):
        place = _country_name(number_region or region)
        return _invalid(f"not a valid number in {place}" if place else "not a valid number")
    number_type = phonenumbers.number_type(number)
    warnings = []
    if number_type not in MOBILE_TYPES:
        warnings.append(NOT_MOBILE)
    if number_region != region:
        place = _country_name(number_region) or number_region
        warnings.append(f"foreign number ({place}, +{number.country_code})")
    return PhoneResult(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        warnings=tuple(warnings),
        region=number_region,
        is_mobile=number_type in MOBILE_TYPES,
    )


def _country_name(region: str | None) -> str:
    if not region or region == "001":
        return ""
    from phonenumbers import geocoder  # its data takes half a second to load: only when needed

    return geocoder._region_display_name(region, "en") or region


# --- gateway forms and JIDs ----------------------------------------------------------------


class JidKind(enum.StrEnum):
    PERSON = "person"
    GROUP = "group"
    BROADCAST = "broadcast"
    LID = "lid"  # WhatsApp's privacy id: the phone number is not in it
    UNKNOWN = "unknown"


_JID_SEPARATORS_RE = re.compile(r"[\s\-]")
_JID_DOMAINS = {
    "s.whatsapp.net": JidKind.PERSON,
    "c.us": JidKind.PERSON,
    "g.us": JidKind.GROUP,
    "broadcast": JidKind.BROADCAST,
    "lid": JidKind.LID,
}


def to_gateway(e164: str) -> str:
    """The number as WSAPME's `to` field wants it: international digits, no plus."""
    digits = e164.strip().removeprefix("+")
    if not digits.isdigit():
        raise ValueError(f"not an E.164 number: {e164!r}")
    return digits


def to_jid(e164: str) -> str:
    return f"{to_gateway(e164)}@s.whatsapp.net"


def _split_jid(jid: str) -> tuple[str, str]:
    user, _, domain = jid.strip().partition("@")
    # "60123456789@s.whatsapp.net/phone": a resource after the domain, as XMPP writes one.
    return user, domain.partition("/")[0].strip().lower()


def jid_kind(jid: str) -> JidKind:
    """Who a JID names: a person, a group, a status/broadcast list, a privacy id."""
    user, domain = _split_jid(jid)
    if not domain:
        return JidKind.PERSON if _jid_digits(user) else JidKind.UNKNOWN
    return _JID_DOMAINS.get(domain, JidKind.UNKNOWN)


def _jid_digits(user: str) -> str | None:
    # "60123456789:12" carries a device number; "60123456789_1" an old agent suffix. A gateway
    # may pass the sender on as typed, "+60 12-345 6789".
    number = user.split(":", 1)[0].split("_", 1)[0]
    digits = _JID_SEPARATORS_RE.sub("", number).removeprefix("+")
    return digits if digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15 else None


def from_jid(jid: str, alt: str | None = None, *, region: str | None = None) -> str | None:
    """The E.164 number of a person's JID; None for groups, broadcasts, unknown ids and
    digits that read as no phone number.

    A privacy id (`...@lid`) hides the number: the phone JID the gateway sends beside
    it (`remoteJidAlt`, `participantAlt`) is passed as `alt`. `region` reads a number
    written the local way ("0123456789"); the configured one when not given.
    """
    kind = jid_kind(jid)
    if kind is JidKind.LID:
        return from_jid(alt, region=region) if alt and jid_kind(alt) is JidKind.PERSON else None
    if kind is not JidKind.PERSON:
        return None
    digits = _jid_digits(_split_jid(jid)[0])
    return _sender_number(digits, region) if digits else None


def _sender_number(digits: str, region: str | None) -> str | None:
    """WhatsApp writes a JID's number with its country code, but a gateway may pass on the
    number the local way ("0123456789"). No country code starts with 0: such digits, or any
    too long or short for the country they would start with, are read as a number of the
    region, as an import reads them, and kept only when valid. An invalid one matches no
    recipient (imports refuse it), and listing it as an opt-out would protect no one."""
    if _reads_as_international(digits):
        return f"+{digits}"
    return normalise(digits, region or get_settings().phone_region).e164


@functools.lru_cache(maxsize=65_536)
def _reads_as_international(digits: str) -> bool:
    # Cached: acks name a chat each, and phonenumbers' parser costs tens of µs a number.
    if digits.startswith("0"):
        return False
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(f"+{digits}"))
    except NumberParseException:
        return False


@dataclass(frozen=True)
class TypedNumber:
    """A search term that reads as a phone number ("012-345 6789"): its digits, which a stored
    number holds in order when typed with its country code or, in Malaysia, with its leading 0;
    and the whole number it is in the region, when it is one."""

    digits: str
    e164: str | None


_TYPED_NUMBER = re.compile(r"[\d\s()+\-.]*\d[\d\s()+\-.]*")


def typed_number(term: str, region: str = DEFAULT_REGION) -> TypedNumber | None:
    """The number in a search term, or None when the term is other text (a name, words).

    Both are needed: the digits find part of a number ("6789"), the whole number finds a local
    form the digits miss outside Malaysia ("0812-3456-7890" typed in Indonesia is
    +6281234567890, which does not hold "081234567890")."""
    term = term.strip()
    if not _TYPED_NUMBER.fullmatch(term):
        return None
    return TypedNumber("".join(ch for ch in term if ch.isdigit()), normalise(term, region).e164)

