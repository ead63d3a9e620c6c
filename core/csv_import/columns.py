"""Finding the header row, the phone column and the name column(s), in English and Malay."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from core import phones
from core.errors import BadCsv
from core.templates import column_key
from core.words import and_list

# The header is above the first record that holds a usable number (that record is a contact),
# and within this many records: report exports put a title and filters above it.
HEADER_SEARCH_RECORDS = 100
# Unless they are title lines: a letterhead holds the shop's phone and fax ("Tel: 07-663 1234"),
# and a report who prepared it. Past this many records holding a number, they are contacts.
TITLE_NUMBER_RECORDS = 5
SAMPLE_RECORDS = 20  # records below a header read to choose among its phone columns
MAX_HEADER_CHARS = 100  # a longer cell is a note or a title, neither a header nor one number

# Exact header names (after `header_words`). Only a tie-breaker between columns of one word
# group: the earlier name is the likelier phone column ("Phone" before "Contact").
PHONE_HEADERS = (
    "whatsapp", "whatsapp number", "whatsapp no", "no whatsapp", "nombor whatsapp",
    "wa", "wa number", "wa no", "no wa",
    "mobile", "mobile number", "mobile no", "mobile phone", "no mobile",
    "handphone", "handphone number", "handphone no", "no handphone", "nombor handphone",
    "hp", "no hp", "hp no", "nombor hp", "telefon bimbit", "no telefon bimbit",
    "cell", "cellphone", "cell phone", "cell number",
    "phone", "phone number", "phone no", "no phone", "phone 1 value",
    "telephone", "telephone number", "telephone no",
    "telefon", "no telefon", "nombor telefon", "notel", "no tel", "tel", "tel no",
    "msisdn", "contact", "contact number", "contact no", "no contact", "nombor", "number",
)
_NAME_ORDER = {name: order for order, name in enumerate(PHONE_HEADERS)}
# Words that make a header a phone column wherever they appear, in groups, best first: a
# WhatsApp column is the one to message, a mobile column most likely is, a phone column may be a
# landline. A header from PHONE_HEADERS without any of them ("Contact") is in the last group.
PHONE_WORDS = (
    ("whatsapp", "wa"),
    ("mobile", "handphone", "hp", "bimbit", "cell", "cellphone"),
    ("phone", "telefon", "telephone", "tel", "ph", "msisdn"),
)
# A header with one of these names another field ("Nama & No. HP", "Email / Phone").
OTHER_FIELD_WORDS = frozenset({"name", "nama", "email", "emel"})
# A header with one of these is about a phone, not the number itself ("Phone 1 - Type",
# "Phone Verified"), unless it also names the number ("Mobile number - please type it without
# dashes"), or they stand only in brackets ("WhatsApp No. (with country code)", "Mobile
# (verified)"): there they say how to type the number or what it is.
ABOUT_PHONE_WORDS = frozenset({
    "type", "label", "kind", "country", "code", "ext", "extension", "status", "date", "tarikh",
    "verified",
})
NUMBER_WORDS = frozenset({"number", "no", "nombor", "num", "value"})
_BRACKETED = re.compile(r"\([^)]*\)|\[[^]]*\]")
# A header with one of these names a line WhatsApp rarely reaches: it comes after the other
# columns of its word group ("Tel. Pejabat" after "Phone", but "HP Pejabat" before "Phone").
LANDLINE_WORDS = frozenset({
    "office", "home", "work", "business", "company", "syarikat", "landline", "pejabat", "rumah",
    "fax", "faks",
})
# Chinese headers have no spaces between words: each word read as its English one, so that
# "手机号码" is "mobile number" and "姓名" is "name". Longer words first ("联系人" is a name).
CHINESE_WORDS = (
    # "联系人电话" is the contact person's phone, not a name with a phone in it.
    ("联系人电话", "contact phone"), ("联系人手机", "contact mobile"), ("聯絡人電話", "contact phone"),
    ("聯絡人手機", "contact mobile"), ("联系人", "contact name"), ("聯絡人", "contact name"),
    ("手机", "mobile"), ("手機", "mobile"),
    ("手提", "mobile"), ("移动", "mobile"), ("电话", "phone"), ("電話", "phone"),
    ("号码", "number"), ("號碼", "number"), ("号", "no"), ("號", "no"), ("联系", "contact"),
    ("聯絡", "contact"), ("聯繫", "contact"), ("姓名", "name"), ("名字", "name"), ("名称", "name"),
    ("客户", "customer"), ("客戶", "customer"), ("办公", "office"), ("辦公", "office"),
    ("公司", "company"), ("住宅", "home"), ("家庭", "home"), ("座机", "landline phone"),
    ("传真", "fax"), ("傳真", "fax"), ("邮箱", "email"), ("电邮", "email"), ("電郵", "email"),
)
_CHINESE_WORD = re.compile("|".join(chinese for chinese, _ in CHINESE_WORDS))
_IN_ENGLISH = dict(CHINESE_WORDS)

NAME_HEADERS = (
    "name", "full name", "fullname", "nama", "nama penuh", "customer name", "nama pelanggan",
    "customer", "pelanggan", "client name", "client", "contact name", "nama contact",
    "display name", "recipient", "recipient name", "nama penerima",
)
FIRST_NAME_HEADERS = ("first name", "firstname", "given name", "nama pertama", "nama depan")
MIDDLE_NAME_HEADERS = ("middle name", "additional name")
LAST_NAME_HEADERS = (
    "last name", "lastname", "family name", "surname", "nama akhir", "nama keluarga",
)
_NAME_WORDS = frozenset((*NAME_HEADERS, *FIRST_NAME_HEADERS, *LAST_NAME_HEADERS))

_HANDPHONE = re.compile(r"\bh\s*[/.]\s*p(?:hone)?\b")  # "H/P", "H.P.", "H/Phone"
_DROP_CHARS = re.compile(r"['’]")
_NOT_WORD = re.compile(r"[\W_]+")
_GOOGLE_PHONE = re.compile(r"phone (\d+) (value|label|type)")  # "Phone 1 - Value", "Phone 1 - Type"
_FIVE_DIGITS = re.compile(r"(?:\D*\d){5}")  # a shortcut: no contact's number has fewer digits
# What a phone number is typed with, usable or not: "012-345 678", "+60 12 345", "(03) 1234 567".
_PHONE_CHARACTERS = re.compile(r"\+?[\d\s().-]+")


def header_words(header: str) -> str:
    """A header in comparable form: "No. H/P" → "no hp", "Tel/HP" → "tel hp", "Phone 1 - Value"
    → "phone 1 value". A slash or a dot parts words ("Phone/WhatsApp" names both, "No.HP" is
    "no hp"), once the handphone abbreviations are read as one word."""
    text = _DROP_CHARS.sub("", _HANDPHONE.sub("hp", header.casefold()))
    text = _CHINESE_WORD.sub(lambda found: f" {_IN_ENGLISH[found.group()]} ", text)
    return _NOT_WORD.sub(" ", text).strip()


@dataclass(frozen=True)
class Columns:
    """Where the contacts are in a file."""

    header_index: int | None  # record index of the header row; None: the file has none
    headers: tuple[str, ...]  # one display name per column
    phone: int
    names: tuple[int, ...]  # one column, or first/middle/last to be joined
    keys: tuple[str, ...]  # the template variable key of each column
    # Why this phone column, when other columns could be it too: the choice is a guess, and
    # the person can make another one.
    phone_note: str | None = None
    # Google Contacts' phone columns, (value, label) each, when a contact's number is taken from
    # any of them; () when it is always in `phone`.
    each_phone: tuple[tuple[int, int | None], ...] = ()

    @property
    def phone_header(self) -> str:
        return self.headers[self.phone]

    @property
    def name_header(self) -> str | None:
        return " + ".join(self.headers[i] for i in self.names) if self.names else None


class ColumnNotFound(BadCsv):
    """No phone column was found, or a chosen column is not there. `headers` are the columns
    to choose from instead: the cells of the row that looks most like the header."""

    def __init__(self, message: str, *, headers: tuple[str, ...]) -> None:
        super().__init__(message)
        self.headers = headers


class _Fit(NamedTuple):
    """How well a column fits as the phone column, compared field by field: lower is better."""

    no_numbers: bool  # no usable number in the first rows: a yes/no "WhatsApp" column, a note
    group: int  # the PHONE_WORDS group its header names
    landline: bool  # its header names an office, home or fax line
    fewer_mobiles: int  # minus the mobile numbers in the first rows
    name_order: int  # its place in PHONE_HEADERS
    position: int


# What the field that settled the choice says about the column taken.
_WHY = {
    "no_numbers": "the others have no usable phone number in the first rows",
    "landline": "it is not named for an office, home or fax line",
    "fewer_mobiles": "it has the most mobile numbers in the first rows",
}
_WHY_GROUP = ("it is named for WhatsApp", "it is named for mobile numbers")


def find_columns(
    rows: Sequence[Sequence[str]], *, phone_column: str | None = None,
    name_column: str | None = None, region: str = phones.DEFAULT_REGION,
) -> Columns:
    """Find the header row and the phone and name columns, or say what was seen instead.

    The header is searched for above the first record that holds a usable number: that record
    is a contact, and so is everything below it, whatever its cells say ("WA", "Tel"). When
    that first record is the file's first, the file has no header. Nor has it when the records
    above are contacts whose numbers are not usable: none of their cells is a header word, and
    each has something typed as a number where the numbers are ("012-345 678"). Unless no
    header is found above it and a few records down one is, with numbers below it in a column
    where the records above hold none: those records are title lines ("Tel: 07-663 1234").

    A chosen column is named as `Columns.headers` shows it: by its header, "column 3" for a
    column without one, "Phone (column 3)" for one of two with the same header (the header
    alone names the first). An empty `name_column` means: no name column.
    """
    searched, first_contact = _search(rows, region)
    if not searched and first_contact is None:
        raise BadCsv("The file is empty.")
    if phone_column is not None:
        return _explicit(rows, searched, first_contact, phone_column, name_column, region)
    choices = {index: fits for index in searched
               if (fits := _phone_columns(rows, index, region, first_contact=first_contact))}
    index = _header(rows, searched, choices, numbers_seen=first_contact is not None)
    if index is None and first_contact is not None:
        index = _header_below_titles(rows, first_contact, region)
        if index is not None:
            choices[index] = _phone_columns(rows, index, region)
    if index is not None:
        fits = choices[index]
        note = _phone_note(display_headers(rows[index]), fits)
        columns = _with_header(rows, index, fits[0].position, name_column, phone_note=note)
        return _each_contacts_phone(columns, rows[index])
    if first_contact is not None and (not searched or _contacts_above(rows, searched, first_contact, region)):
        return _headerless(rows, searched[0] if searched else first_contact, first_contact, name_column,
                           region)
    header = _padded(rows, _header_guess(rows, _offered(rows, searched, first_contact, region)))
    where = ""
    if first_contact is None and _searched_part(rows, searched):
        where = (f" in the first {HEADER_SEARCH_RECORDS} rows (if the header is further down, delete "
                 "the rows above it and upload the file again)")
    raise ColumnNotFound(
        f"No phone number column found{where}. The columns are: "
        f"{_list_headers(header)}. Name the column with the numbers “Phone”, "
        "or choose the column yourself.",
        headers=display_headers(header),
    )


def _search(rows: Sequence[Sequence[str]], region: str) -> tuple[list[int], int | None]:
    """The records that may be the header (or a title above it), and the first record that
    holds a usable number (None if none within HEADER_SEARCH_RECORDS)."""
    searched: list[int] = []
    for index, row in enumerate(rows):
        if not any(cell.strip() for cell in row):
            continue
        if _holds_number(row, region):
            return searched, index
        searched.append(index)
        if len(searched) >= HEADER_SEARCH_RECORDS:
            break
    return searched, None


def _each_contacts_phone(columns: Columns, header: Sequence[str]) -> Columns:
    """Columns that take each contact's number from whichever of Google Contacts' "Phone 1 -
    Value", "Phone 2 - Value"… columns holds their mobile, when the phone column is one of them:
    one contact's mobile is in Phone 1, another's in Phone 2 beside a work landline."""
    values, labels = {}, {}
    for i, cell in enumerate(header):
        found = _GOOGLE_PHONE.fullmatch(header_words(cell))
        if found:
            (values if found[2] == "value" else labels).setdefault(found[1], i)
    if len(values) < 2 or columns.phone not in values.values():
        return columns
    named = [f"“{columns.headers[i]}”" for i in values.values()]
    by = " (by its label)" if labels else ""
    note = (f"Each contact's number was taken from {', '.join(named[:-1])} or {named[-1]}: the one "
            f"that is a mobile{by}, else the first. Choose one column if that is wrong.")
    each = tuple((value, labels.get(n)) for n, value in values.items())
    return dataclasses.replace(columns, phone_note=note, each_phone=each)


def _searched_part(rows: Sequence[Sequence[str]], searched: list[int]) -> bool:
    """Whether the search for the header stopped before the end of the file."""
    return len(searched) >= HEADER_SEARCH_RECORDS and _next_record(rows, searched[-1]) is not None


def _title_block(
    rows: Sequence[Sequence[str]], start: int, region: str, *, limit: int | None = HEADER_SEARCH_RECORDS
) -> Iterator[tuple[int, list[Sequence[str]]]]:
    """The records from `start` on that hold no number, each with the records above it (from
    `start`) that hold one, while those are few enough to be title lines; within `limit`
    records."""
    numbered: list[Sequence[str]] = []
    records = (i for i in range(start, len(rows)) if any(cell.strip() for cell in rows[i]))
    for index in itertools.islice(records, limit):
        if not _holds_number(rows[index], region):
            yield index, numbered
        elif len(numbered) < TITLE_NUMBER_RECORDS:
            numbered.append(rows[index])
        else:
            return


def _header_below_titles(
    rows: Sequence[Sequence[str]], start: int, region: str, *, wanted: str | None = None
) -> int | None:
    """A header below title lines that hold a number, from `start` on: the first record with a
    phone column (the one `wanted`, when the person named it; else one with numbers below it),
    unless the records above it are not all title lines. Then they are contacts, and the
    record that looks like a header is one of them."""
    for index, numbered in _title_block(rows, start, region, limit=None if wanted else HEADER_SEARCH_RECORDS):
        if wanted is None:
            fits = _phone_columns(rows, index, region)
            columns = [fit.position for fit in fits] if fits and not fits[0].no_numbers else []
        else:
            found = _match_header(rows[index], wanted)
            columns = [] if found is None else [found]
        if columns:
            return index if _titles_above(rows[index], numbered, columns, region) else None
    return None


def _titles_above(
    header: Sequence[str], numbered: Sequence[Sequence[str]], columns: Sequence[int], region: str
) -> bool:
    """Whether the records holding a number above `header` are title lines, not contacts: each
    one cell merged across columns (a letterhead's "Tel: 07-663 1234"), or one cell or with its
    numbers right of the header's columns ("Prepared by,Aminah,012-999 8888" above
    "Name,Mobile") and without a number in a phone column."""
    reach = _reach(header)

    def title(record: Sequence[str]) -> bool:
        filled = [cell.strip() for cell in record if cell.strip()]
        if len(filled) > 1 and len(set(filled)) == 1:
            return True
        return ((len(filled) == 1 or not _holds_number(record[:reach], region))
                and not any(_count_numbers([record], column, region)[0] for column in columns))

    return all(map(title, numbered))


def _offered(
    rows: Sequence[Sequence[str]], searched: list[int], first_contact: int | None, region: str
) -> list[int]:
    """The records the header may be among, to choose the phone column from: those searched, and
    when they are one-cell titles, the records below title lines that hold a number."""
    if first_contact is None or not _only_titles(rows, searched):
        return searched
    below = (index for index, numbered in _title_block(rows, first_contact, region)
             if _titles_above(rows[index], numbered, (), region))
    return [*searched, *below]


def _only_titles(rows: Sequence[Sequence[str]], searched: list[int]) -> bool:
    """Whether the records searched are titles: one cell each, or one merged across columns."""
    return all(len({cell.strip() for cell in rows[i] if cell.strip()}) <= 1 for i in searched)


def _holds_number(row: Sequence[str], region: str) -> bool:
    # A long cell is a note, not a number: it is not looked at, so a long row costs little.
    return any(len(cell) <= MAX_HEADER_CHARS and _FIVE_DIGITS.match(cell)
               and phones.normalise(cell, region).ok for cell in row)


def _header_cells(row: Sequence[str]) -> int:
    """How many of a record's cells are header words: a phone column's or a name column's. A
    cell merged across columns counts once, so a merged title is one cell, as a typed one."""
    cells = {cell.strip() for cell in row if cell.strip()}
    return sum(phone_rank(cell) is not None or header_words(cell) in _NAME_WORDS for cell in cells)


def _contacts_above(
    rows: Sequence[Sequence[str]], searched: list[int], first_contact: int, region: str
) -> bool:
    """Whether the records above the first contact are contacts too, whose numbers are not
    usable ("012-345 678"): none of their cells is a header word, and each has something typed
    as a phone number (digits, spaces, dashes, dots, brackets, a leading +; seven digits or more)
    in a column where the contacts below have numbers. A header without a known word ("Customer
    ID,Contact Person") has none, nor has a title ("Report 2025", "Senarai pelanggan 01/2025")."""
    sample = [rows[first_contact], *_records_below(rows, first_contact, SAMPLE_RECORDS - 1)]
    widest = max(_reach(row) for row in sample)
    numbered = [i for i in range(widest) if _count_numbers(sample, i, region)[0]]

    def contact(row: Sequence[str]) -> bool:
        return not _header_cells(row) and any(i < len(row) and _typed_as_number(row[i]) for i in numbered)

    return all(contact(rows[i]) for i in searched)


def _typed_as_number(cell: str) -> bool:
    """Typed as a phone number, usable or not: its characters, and seven digits or more."""
    text = cell.strip()
    return (len(text) <= MAX_HEADER_CHARS and _PHONE_CHARACTERS.fullmatch(text) is not None
            and sum(c.isdigit() for c in text) >= 7)


def _header(
    rows: Sequence[Sequence[str]], searched: list[int], choices: dict[int, list[_Fit]], *,
    numbers_seen: bool,
) -> int | None:
    """Which searched record is the header, among those with a phone column (`choices`).

    A title above the header can name a phone word too ("Customer phone list"): a record right
    above another one that has numbers below it is a title, so the one nearest the contacts
    wins, unless it has more cells that are header words than that one. Then the one below is
    the first contact, without a number and with a phone word where it should be ("Ali,tiada
    hp,Kuih" below "Name,Phone,Product"). The header is then the first with numbers below it.
    When the file has numbers but none below a phone column, the person chooses. When it has
    none at all, the widest record is the header if it has a phone column (its numbers are all
    bad, and each row says why); a narrower one with a phone word ("Ali,,Prefers WhatsApp") is
    a contact without a number.
    """
    def numbers_below(index: int | None) -> bool:
        return index in choices and not choices[index][0].no_numbers

    def title(index: int) -> bool:
        below = _next_record(rows, index)
        return numbers_below(below) and _header_cells(rows[index]) <= _header_cells(rows[below])

    found = [i for i in choices if not title(i)] or list(choices)
    with_numbers = [i for i in found if numbers_below(i)]
    if with_numbers:
        return with_numbers[0]
    if numbers_seen:
        return None
    guess = _header_guess(rows, searched)
    return guess if guess in choices else None


def _phone_columns(
    rows: Sequence[Sequence[str]], index: int, region: str, *, first_contact: int | None = None
) -> list[_Fit]:
    """The columns of the record at `index` whose header names a phone, best first.

    The header words decide first (WhatsApp, then mobile, then phone; an office or home line
    after the others of its group); the numbers below decide between columns whose words do
    not, and a column with no number below at all comes last whatever its header says.

    The numbers are counted from `first_contact` on, the first record holding one, when that
    is below `index`: the records between hold none, and many contacts without a usable number
    right below the header would otherwise hide the numbers further down.
    """
    ranked = [(rank, i) for i, cell in enumerate(rows[index]) if (rank := phone_rank(cell)) is not None]
    if not ranked:
        return []
    start = index if first_contact is None or first_contact <= index else first_contact - 1
    sample = _records_below(rows, start)
    fits = []
    for (group, landline, name_order), i in ranked:
        usable, mobile = _count_numbers(sample, i, region)
        fits.append(_Fit(usable == 0, group, bool(landline), -mobile, name_order, i))
    return sorted(fits)


def _count_numbers(sample: Sequence[Sequence[str]], column: int, region: str) -> tuple[int, int]:
    """How many cells of `column` hold a usable number, and how many of those a mobile."""
    usable = mobile = 0
    for row in sample:
        if column < len(row):
            checked = phones.normalise(row[column], region)
            usable += checked.ok
            mobile += checked.ok and checked.is_mobile
    return usable, mobile


def _phone_note(headers: Sequence[str], fits: Sequence[_Fit]) -> str | None:
    """Which column was taken and why, when other columns could be the phone column too."""
    if len(fits) < 2:
        return None
    chosen, runner_up = fits[0], fits[1]
    settled = next(field for field in _Fit._fields if getattr(chosen, field) != getattr(runner_up, field))
    why = _WHY_GROUP[chosen.group] if settled == "group" else _WHY.get(settled)
    others = [f"“{headers[fit.position]}”" for fit in fits[1:]]
    if len(others) > 3:
        others[2:] = [f"{len(others) - 2} more"]
    taken = f"Numbers were taken from “{headers[chosen.position]}”" + (f" because {why}" if why else "")
    return f"{taken}; {and_list(others)} could also be the phone column. Choose another if that is wrong."


def _records_below(
    rows: Sequence[Sequence[str]], index: int, count: int = SAMPLE_RECORDS
) -> list[Sequence[str]]:
    records = (rows[i] for i in range(index + 1, len(rows)) if any(cell.strip() for cell in rows[i]))
    return list(itertools.islice(records, count))


def _next_record(rows: Sequence[Sequence[str]], index: int) -> int | None:
    return next((i for i in range(index + 1, len(rows)) if any(cell.strip() for cell in rows[i])), None)


def _reach(row: Sequence[str]) -> int:
    """How far right a record's filled cells go (a blank cell at the end is not a column)."""
    return max((i + 1 for i, cell in enumerate(row) if cell.strip()), default=0)


def _header_guess(rows: Sequence[Sequence[str]], searched: list[int]) -> int:
    """The first record that reaches as far right as any: a header, not the title above it
    (a header may leave a cell blank, so filled cells are not counted)."""
    return max(searched, key=lambda i: (_reach(rows[i]), -i))


def _padded(rows: Sequence[Sequence[str]], index: int) -> tuple[str, ...]:
    """The record at `index` as a header, with a blank cell for each column the records below
    reach past it: their numbers may be in a column without a header, and it can be chosen."""
    header = tuple(rows[index])
    width = max((_reach(row) for row in _records_below(rows, index)), default=0)
    return header + ("",) * (width - len(header))


def display_headers(header: Sequence[str]) -> tuple[str, ...]:
    """Each column's name as shown to a person, one of a kind so that any can be chosen: its
    header, "column 3" when blank, "Phone (column 3)" when two columns have the same header."""
    names = _header_names(header)
    counts = Counter(names)
    return tuple(f"{name} ({_position_name(i)})" if counts[name] > 1 and header[i].strip() else name
                 for i, name in enumerate(names))


def _header_names(header: Sequence[str]) -> tuple[str, ...]:
    """Each column's header as typed, or "column 3" when blank: what template keys come from."""
    return tuple(cell.strip() or _position_name(i) for i, cell in enumerate(header))


def _position_name(index: int) -> str:
    return f"column {index + 1}"


# How much of the columns a message names: a file that is not a list (random bytes, a long
# note) has "headers" of thousands of characters, and a report can have a hundred columns.
LISTED_HEADERS, LISTED_HEADER_CHARS = 20, 60


def _list_headers(row: Sequence[str]) -> str:
    seen = [" ".join(cell.split()) for cell in row if cell.strip()]
    if not seen:
        return "(none)"
    shown = [f"“{h if len(h) <= LISTED_HEADER_CHARS else h[:LISTED_HEADER_CHARS - 1] + '…'}”"
             for h in seen[:LISTED_HEADERS]]
    if len(seen) > LISTED_HEADERS:
        shown.append(f"and {len(seen) - LISTED_HEADERS} more")
    return ", ".join(shown)


def best_phone_column(header: Sequence[str]) -> int | None:
    """The index of the header cell that most looks like a phone number column, by its words
    alone (`find_columns` also looks at the numbers below)."""
    ranked = [(rank, i) for i, cell in enumerate(header) if (rank := phone_rank(cell)) is not None]
    return min(ranked)[1] if ranked else None


@functools.lru_cache(maxsize=4096)  # every record above the first contact is ranked, cell by cell
def phone_rank(header: str) -> tuple[int, bool, int] | None:
    """(word group, names a landline, place in PHONE_HEADERS): lower is better; None: not a
    phone column. The words come first, so "Tel/HP" beats "Phone Number" and "Tel. Pejabat"
    comes after "Phone"; the list of exact names only orders headers alike in their words."""
    if len(header) > MAX_HEADER_CHARS:
        return None
    words = header_words(header)
    tokens = set(words.split())
    name_order = _NAME_ORDER.get(words, len(PHONE_HEADERS))
    known = words in _NAME_ORDER
    if not tokens or (not known and _about_something_else(header)):
        return None
    group = next((rank for rank, group in enumerate(PHONE_WORDS) if tokens.intersection(group)),
                 len(PHONE_WORDS) - 1 if known else None)
    if group is None:
        return None
    return group, bool(tokens & LANDLINE_WORDS), name_order


def _about_something_else(header: str) -> bool:
    """Whether a header with a phone word names another field, or something about the phone
    rather than its number."""
    outside = set(header_words(_BRACKETED.sub(" ", header)).split())
    return bool(outside & OTHER_FIELD_WORDS
                or (outside & ABOUT_PHONE_WORDS and not outside & NUMBER_WORDS))


def _explicit(
    rows: Sequence[Sequence[str]], searched: list[int], first_contact: int | None,
    phone_column: str, name_column: str | None, region: str,
) -> Columns:
    """The columns the person chose. A record holding a number is a contact, never a header,
    whatever its cells say; so are the records above it when they look like contacts whose
    numbers are not usable (`_contacts_above`)."""
    headerless = first_contact is not None and (
        not searched or _contacts_above(rows, searched, first_contact, region))
    for index in [] if headerless else searched:
        phone = _match_header(rows[index], phone_column)
        if phone is not None:
            return _with_header(rows, index, phone, name_column)
    if first_contact is None or _only_titles(rows, searched):  # a header below the search
        start = searched[-1] + 1 if first_contact is None else first_contact
        index = _header_below_titles(rows, start, region, wanted=phone_column)
        if index is not None:
            return _with_header(rows, index, _match_header(rows[index], phone_column) or 0, name_column)
    if headerless:  # no header: columns by position
        first = rows[searched[0] if searched else first_contact]
        position = _position(first, phone_column)
        if position is None:
            raise ColumnNotFound(f"The file has no header row, so there is no column called "
                                 f"“{phone_column}”.",
                                 headers=tuple(_position_name(n) for n in range(len(first))))
        return _headerless_at(first, position, name_column)
    guess = _header_guess(rows, searched)
    header = _padded(rows, guess)
    position = _position(header, phone_column)
    if position is not None and not header[position].strip():  # a blank or missing header cell
        return _with_header(rows, guess, position, name_column,
                            header=header if position >= len(rows[guess]) else None)
    raise ColumnNotFound(
        f"There is no column called “{phone_column}”. The columns are: "
        f"{_list_headers(header)}.",
        headers=display_headers(header),
    )


def _match_header(header: Sequence[str], wanted: str) -> int | None:
    """The column named `wanted`: as shown ("Phone (column 3)"), else as typed (the first)."""
    for i, cell in enumerate(display_headers(header)):
        if cell.strip() and header[i].strip() and cell == wanted.strip():
            return i
    for i, cell in enumerate(header):
        if cell.strip() == wanted.strip():
            return i
    words = header_words(wanted)
    for i, cell in enumerate(header):
        if words and header_words(cell) == words:
            return i
    return None


def _position(header: Sequence[str], wanted: str) -> int | None:
    """The index that "column 3" names, if the row has that many cells."""
    for i in range(len(header)):
        if header_words(wanted) == header_words(_position_name(i)):
            return i
    return None


def _with_header(
    rows: Sequence[Sequence[str]], index: int, phone: int, name_column: str | None, *,
    header: Sequence[str] | None = None, phone_note: str | None = None,
) -> Columns:
    """The columns under the header at `index`; `header` is that record padded, when the
    chosen column is beyond its last cell."""
    if header is None:
        header = rows[index]
    if name_column is not None:
        names = _chosen_names(header, name_column)
    else:
        names = find_name_columns(header, phone=phone)
    headers = display_headers(header)
    return Columns(index, headers, phone, names, variable_keys(_header_names(header), phone, names),
                   phone_note)


def _chosen_names(header: Sequence[str], name_column: str) -> tuple[int, ...]:
    if not name_column.strip():
        return ()
    found = _match_header(header, name_column)
    if found is None:
        position = _position(header, name_column)
        found = position if position is not None and not header[position].strip() else None
    if found is None:
        raise ColumnNotFound(f"There is no column called “{name_column}”. The columns are: "
                             f"{_list_headers(header)}.", headers=display_headers(header))
    return (found,)


def find_name_columns(header: Sequence[str], *, phone: int) -> tuple[int, ...]:
    """One name column, or first (+ middle) (+ last) name columns to join; () if none."""
    words = [header_words(cell) for cell in header]

    def first_of(options: Sequence[str]) -> int | None:
        for option in options:
            for i, w in enumerate(words):
                if w == option and i != phone:
                    return i
        return None

    single = first_of(NAME_HEADERS)
    if single is not None:
        return (single,)
    first = first_of(FIRST_NAME_HEADERS)
    if first is None:
        return ()
    parts = (first, first_of(MIDDLE_NAME_HEADERS), first_of(LAST_NAME_HEADERS))
    return tuple(i for i in parts if i is not None)


def _headerless(
    rows: Sequence[Sequence[str]], first: int, first_contact: int, name_column: str | None, region: str
) -> Columns:
    """A list with no header row: the first record is already a contact, though the first to
    hold a usable number may be further down. The phone column is the one with the most mobile
    numbers in the first rows from that one on (the first of equals)."""
    sample = [rows[first_contact], *_records_below(rows, first_contact, SAMPLE_RECORDS - 1)]
    width = max(len(rows[first]), len(rows[first_contact]))
    fits = []
    for i in range(width):
        usable, mobile = _count_numbers(sample, i, region)
        if usable:
            fits.append(_Fit(False, 0, False, -mobile, 0, i))
    fits.sort()
    phone = fits[0].position
    if name_column is None:
        guessed = _names_column(sample, width=width, phone=phone)
        name_column = None if guessed is None else _position_name(guessed)
    columns = _headerless_at([*rows[first], *[""] * (width - len(rows[first]))], phone, name_column)
    note = _phone_note(columns.headers, fits)
    return dataclasses.replace(columns, phone_note=note) if note else columns


# What may stand in a person's name besides letters: "Raj a/l Kumar", "Mei-Ling", "O'Neil", "Dr. Tan".
_NAME_MARKS = frozenset(" .'-/,()")
# Words of a company's or a branch's name, not a person's; and cells that say there is none.
_NOT_PEOPLE = frozenset({"sdn", "bhd", "berhad", "enterprise", "trading", "plt", "ltd", "co", "company",
                         "holdings", "resources", "services", "cawangan", "branch", "kedai", "shop"})
_NONE_GIVEN = frozenset({"n/a", "na", "nil", "none", "-", "tiada"})


def _names_column(sample: Sequence[Sequence[str]], *, width: int, phone: int) -> int | None:
    """In a list with no header row, the one column that reads as people's names: at least
    three sampled cells, nearly every one words of letters (no digits, no company or branch
    words), and nearly all of them different, unlike a column of channels, cities or yes/no.
    None when no column does, or when more than one does: the person then chooses."""
    found = [column for column in range(width) if column != phone and _reads_as_names(sample, column)]
    return found[0] if len(found) == 1 else None


def _reads_as_names(sample: Sequence[Sequence[str]], column: int) -> bool:
    cells = [row[column].strip() for row in sample if column < len(row) and row[column].strip()]
    if len(cells) < max(3, len(sample) // 2):
        return False
    named = sum(1 for cell in cells if _reads_as_name(cell))
    return named >= 0.9 * len(cells) and len(set(cells)) >= 0.9 * len(cells)


def _reads_as_name(cell: str) -> bool:
    words = set(cell.lower().replace(".", " ").split())
    return (2 <= len(cell) <= 60 and any(ch.isalpha() for ch in cell)
            and all(ch.isalpha() or ch in _NAME_MARKS for ch in cell)
            and cell.lower() not in _NONE_GIVEN and not words & _NOT_PEOPLE)


def _headerless_at(first: Sequence[str], phone: int, name_column: str | None) -> Columns:
    headers = tuple(_position_name(n) for n in range(len(first)))
    names: tuple[int, ...] = ()
    if name_column is not None and name_column.strip():
        position = _position(headers, name_column)
        if position is None:
            raise ColumnNotFound(f"The file has no header row, so there is no column called "
                                 f"“{name_column}”.", headers=headers)
        names = (position,)
    return Columns(None, headers, phone, names, variable_keys(headers, phone, names))


def variable_keys(headers: Sequence[str], phone: int, names: Sequence[int]) -> tuple[str, ...]:
    """Each column's template key. `phone` is kept for the phone column (it will hold the
    cleaned number) and `name` for a single name column; any other column that would
    clash gets a numbered key."""
    owners = {"phone": phone, "name": names[0] if len(names) == 1 else -1}
    used: set[str] = set()
    keys = []
    for i, header in enumerate(headers):
        base = column_key(header) or f"column_{i + 1}"
        key, n = base, 2
        while key in used or owners.get(key, i) != i:
            key, n = f"{base}_{n}", n + 1
        used.add(key)
        keys.append(key)
    return tuple(keys)
