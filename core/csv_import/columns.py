"""Finding the header row, the phone column and the name column(s), in English and Malay."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core import phones
from core.errors import BadCsv
from core.templates import column_key

HEADER_SEARCH_RECORDS = 10  # title rows above the header are skipped, up to this many

# Exact header names (after `header_words`), best first: WhatsApp and mobile columns win
# over a general "phone" column, which wins over vague ones like "contact" or "number".
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
# Words that make a header a phone column wherever they appear, best first.
PHONE_WORDS = (
    ("whatsapp", "wa"),
    ("mobile", "handphone", "hp", "bimbit", "cell", "cellphone"),
    ("phone", "telefon", "telephone", "tel", "msisdn"),
)
# A header with one of these is about a phone, not the number itself ("Phone 1 - Type").
NOT_PHONE_WORDS = frozenset({
    "type", "label", "kind", "name", "nama", "country", "code", "ext", "extension",
    "status", "date", "tarikh", "email", "emel", "verified",
})
LANDLINE_WORDS = frozenset({"office", "home", "work", "pejabat", "rumah", "fax", "faks"})

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

_DROP_CHARS = re.compile(r"[./'’]")
_NOT_WORD = re.compile(r"[\W_]+")


def header_words(header: str) -> str:
    """A header in comparable form: "No. H/P" → "no hp", "Phone 1 - Value" → "phone 1 value"."""
    text = _DROP_CHARS.sub("", header.casefold())
    return _NOT_WORD.sub(" ", text).strip()


@dataclass(frozen=True)
class Columns:
    """Where the contacts are in a file."""

    header_index: int | None  # record index of the header row; None: the file has none
    headers: tuple[str, ...]  # one display name per column
    phone: int
    names: tuple[int, ...]  # one column, or first/middle/last to be joined
    keys: tuple[str, ...]  # the template variable key of each column

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


def find_columns(
    rows: Sequence[Sequence[str]], *, phone_column: str | None = None,
    name_column: str | None = None, region: str = phones.DEFAULT_REGION,
) -> Columns:
    """Find the header row and the phone and name columns, or say what was seen instead.

    A chosen column is named as `Columns.headers` shows it: by its header, "column 3" for a
    column without one, "Phone (column 3)" for one of two with the same header (the header
    alone names the first). An empty `name_column` means: no name column.
    """
    candidates = _first_records(rows)
    if not candidates:
        raise BadCsv("The file is empty.")
    if phone_column is not None:
        return _explicit(rows, candidates, phone_column, name_column, region)
    # A title above the header can name a phone word too ("Customer phone list"): a candidate
    # right above another candidate that has numbers below it is a title, so the one nearest the
    # contacts wins (a first contact with no number and a note "Prefers WhatsApp" is not a
    # header: no numbers below it in that column). The header is then the first candidate with
    # numbers below it in its phone column, else the first found.
    found = [(index, phone) for index in candidates if (phone := best_phone_column(rows[index])) is not None]
    phone_of = dict(found)

    def title(index: int) -> bool:
        below = _next_record(rows, index)
        return below in phone_of and _numbers_below(rows, below, phone_of[below], region)

    found = [(i, p) for i, p in found if not title(i)] or found
    if found:
        index, phone = next(((i, p) for i, p in found if _numbers_below(rows, i, p, region)), found[0])
        return _with_header(rows, index, phone, name_column)
    headerless = _headerless(rows, candidates[0], region)
    if headerless is not None:
        if name_column is None:
            return headerless
        return _headerless_at(rows[candidates[0]], headerless.phone, name_column)
    header = rows[_header_guess(rows, candidates)]
    raise ColumnNotFound(
        "No phone number column found. The columns are: "
        f"{_list_headers(header)}. Name the column with the numbers “Phone”, "
        "or choose the column yourself.",
        headers=display_headers(header),
    )


def _numbers_below(
    rows: Sequence[Sequence[str]], index: int, column: int, region: str, *, look: int = 5
) -> bool:
    """Whether any of the few records below `index` holds a usable number in `column`."""
    records = (rows[i] for i in range(index + 1, len(rows)) if any(cell.strip() for cell in rows[i]))
    return any(column < len(row) and phones.normalise(row[column], region).ok
               for row in itertools.islice(records, look))


def _next_record(rows: Sequence[Sequence[str]], index: int) -> int | None:
    return next((i for i in range(index + 1, len(rows)) if any(cell.strip() for cell in rows[i])), None)


def _first_records(rows: Sequence[Sequence[str]]) -> list[int]:
    found = []
    for index, row in enumerate(rows):
        if any(cell.strip() for cell in row):
            found.append(index)
            if len(found) >= HEADER_SEARCH_RECORDS:
                break
    return found


def _header_guess(rows: Sequence[Sequence[str]], candidates: list[int]) -> int:
    """The first record that reaches as far right as any: a header, not the title above it
    (a header may leave a cell blank, so filled cells are not counted)."""
    def reach(index: int) -> int:
        return max((i + 1 for i, cell in enumerate(rows[index]) if cell.strip()), default=0)

    return max(candidates, key=lambda i: (reach(i), -i))


def display_headers(header: Sequence[str]) -> tuple[str, ...]:
    """Each column's name as shown to a person, one of a kind so that any can be chosen: its
    header, "column 3" when blank, "Phone (column 3)" when two columns have the same header."""
    names = _header_names(header)
    counts = {name: names.count(name) for name in names}
    return tuple(f"{name} ({_position_name(i)})" if counts[name] > 1 and header[i].strip() else name
                 for i, name in enumerate(names))


def _header_names(header: Sequence[str]) -> tuple[str, ...]:
    """Each column's header as typed, or "column 3" when blank: what template keys come from."""
    return tuple(cell.strip() or _position_name(i) for i, cell in enumerate(header))


def _position_name(index: int) -> str:
    return f"column {index + 1}"


def _list_headers(row: Sequence[str]) -> str:
    seen = [cell.strip() for cell in row if cell.strip()]
    return ", ".join(f"“{h}”" for h in seen) if seen else "(none)"


def best_phone_column(header: Sequence[str]) -> int | None:
    """The index of the header cell that most looks like a phone number column."""
    ranked = [(rank, i) for i, cell in enumerate(header) if (rank := phone_rank(cell)) is not None]
    return min(ranked)[1] if ranked else None


def phone_rank(header: str) -> int | None:
    """Lower is better; None: not a phone column."""
    words = header_words(header)
    if words in PHONE_HEADERS:
        return PHONE_HEADERS.index(words)
    tokens = set(words.split())
    if not tokens or tokens & NOT_PHONE_WORDS:
        return None
    for rank, group in enumerate(PHONE_WORDS):
        if tokens.intersection(group):
            penalty = 10 if tokens & LANDLINE_WORDS else 0
            return len(PHONE_HEADERS) + rank + penalty
    return None


def _explicit(
    rows: Sequence[Sequence[str]], candidates: list[int], phone_column: str,
    name_column: str | None, region: str,
) -> Columns:
    for index in candidates:
        phone = _match_header(rows[index], phone_column)
        if phone is not None:
            return _with_header(rows, index, phone, name_column)
    guess = _header_guess(rows, candidates)
    if _headerless(rows, candidates[0], region) is not None:
        position = _position(rows[candidates[0]], phone_column)
        if position is not None:
            return _headerless_at(rows[candidates[0]], position, name_column)
    else:
        position = _position(rows[guess], phone_column)
        if position is not None and not rows[guess][position].strip():  # a blank header cell
            return _with_header(rows, guess, position, name_column)
    raise ColumnNotFound(
        f"There is no column called “{phone_column}”. The columns are: "
        f"{_list_headers(rows[guess])}.",
        headers=display_headers(rows[guess]),
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
    rows: Sequence[Sequence[str]], index: int, phone: int, name_column: str | None
) -> Columns:
    header = rows[index]
    if name_column is not None:
        names = _chosen_names(header, name_column)
    else:
        names = find_name_columns(header, phone=phone)
    headers = display_headers(header)
    return Columns(index, headers, phone, names, variable_keys(_header_names(header), phone, names))


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


def _headerless(rows: Sequence[Sequence[str]], index: int, region: str) -> Columns | None:
    """A bare list of numbers with no header row: the first record is already a contact."""
    row = rows[index]
    for i, cell in enumerate(row):
        if cell.strip() and phones.normalise(cell, region).ok:
            return _headerless_at(row, i, None)
    return None


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
