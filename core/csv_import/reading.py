"""Reading an uploaded file into cells: size cap, Excel workbooks, not-a-CSV checks, encoding,
delimiter."""

from __future__ import annotations

import csv
import io
import itertools
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from core.csv_import import workbook
from core.errors import BadCsv

DEFAULT_MAX_UPLOAD_MB = 10.0
DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
SNIFF_RECORDS = 50
# No contact list comes near this (Google and Outlook exports have under 100 columns), and
# pandas spends time and memory per column: a line of a million commas took many minutes.
MAX_COLUMNS = 1_000
_BLANK_CHARS = " \t\r\n" + "".join(DELIMITERS)
_SNIFF_CHARS = 64_000

WORKBOOK = "Excel workbook"  # RawTable.encoding of an .xlsx upload
SAVE_AS_CSV = "open it in Excel or Google Sheets and save or download it as CSV"
# (magic bytes, what the file is) for files people upload by mistake. Zipped and old Office
# files are Excel's: `workbook` reads them or says why it cannot.
_NOT_CSV_SIGNATURES = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a compressed (gzip) file"),
    (b"Rar!", "a compressed (RAR) file"),
    (b"7z\xbc\xaf", "a compressed (7-Zip) file"),
)
_HTML_RE = re.compile(rb"^\s*<(?:!doctype\s+html|html|table|\?xml)", re.IGNORECASE)
_EOF_IN_QUOTES_RE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass
class RawTable:
    """Every record of the file as cells, in file order (blank lines included)."""

    rows: list[Sequence[str]]
    encoding: str  # for a workbook: WORKBOOK
    delimiter: str  # for a workbook: ""
    notes: list[str] = field(default_factory=list)
    sheet: str | None = None  # the worksheet read, for a workbook


def read_table(data: bytes, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> RawTable:
    """Cut an uploaded file into records and cells, or raise BadCsv saying why not."""
    check_size(len(data), max_upload_mb=max_upload_mb)
    if workbook.looks_like_workbook(data):
        return _read_workbook(data, max_upload_mb=max_upload_mb)
    _reject_other_formats(data)
    text, encoding, notes = decode(data)
    _reject_binary_text(text)
    delimiter = sniff_delimiter(text)
    refuse_wide_records(text, delimiter)
    rows = tokenise(text, delimiter)
    return RawTable(rows=rows, encoding=encoding, delimiter=delimiter, notes=notes)


def _read_workbook(data: bytes, *, max_upload_mb: float) -> RawTable:
    sheet = workbook.read_sheet(
        data, max_unpacked_bytes=workbook.MAX_UNPACKED_RATIO * max_upload_mb * 1024 * 1024
    )
    widest = max(map(len, sheet.rows), default=0)
    if widest > MAX_COLUMNS:
        raise BadCsv(f"The sheet “{sheet.name}” has {widest:,} columns; a contact list has at most "
                     f"{MAX_COLUMNS:,}. Check that this is the right file.")
    return RawTable(rows=sheet.rows, encoding=WORKBOOK, delimiter="", notes=sheet.notes,
                    sheet=sheet.name)


def check_size(size: int, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB) -> None:
    if size > max_upload_mb * 1024 * 1024:
        raise BadCsv(
            f"The file is {_file_size(size)}; the limit is {max_upload_mb:g} MB. "
            "Split it into smaller files."
        )
    if size == 0:
        raise BadCsv("The file is empty.")


def _file_size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def _reject_other_formats(data: bytes) -> None:
    head = data[:16]
    for signature, what in _NOT_CSV_SIGNATURES:
        if head.startswith(signature):
            raise BadCsv(f"This looks like {what}, not a CSV file: {SAVE_AS_CSV}.")
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        raise BadCsv(f"This looks like a WebP image, not a CSV file: {SAVE_AS_CSV}.")
    if _HTML_RE.match(data[:200]):
        raise BadCsv(f"This looks like a web page (HTML), not a CSV file: {SAVE_AS_CSV}.")


# --- encoding ------------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str, list[str]]:
    """The file's text, the encoding it was read with, and notes for the report.

    Order: a byte-order mark decides; then UTF-16 without a mark (spotted by its zero
    bytes); then UTF-8; then GB2312 when the whole file reads as GB2312 and holds Chinese
    characters (Excel's "CSV" on Chinese Windows); then Windows-1252 (Excel's "CSV" on English
    Windows); then Latin-1, which reads any byte. charset-normalizer is not used: on short
    contact lists it guessed cp1250 for cp1252 and a Korean code page for GBK.

    GB2312 is tried strictly (both bytes of each character from its table): Western text in
    Windows-1252 ("Müller") pairs an accented letter with a plain one and fails it, where
    GBK's wider table would read it as Chinese.
    """
    for bom, codec, label in (
        (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
        (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
        (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"),
        (b"\xff\xfe", "utf-16", "UTF-16 LE"),
        (b"\xfe\xff", "utf-16", "UTF-16 BE"),
    ):
        if data.startswith(bom):
            return _decode_lenient(data, codec, label)
    utf16 = _utf16_without_bom(data)
    if utf16:
        return _decode_lenient(data, utf16, _UTF16_LABELS[utf16])
    for codec, label in (("utf-8", "UTF-8"), ("gb2312", "GB2312 (Chinese Windows)"),
                         ("cp1252", "Windows-1252")):
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec == "gb2312" and len(_CJK_RE.findall(text)) < 2:  # a name has two characters or more
            continue
        return text, label, [] if codec == "utf-8" else [_not_utf8_note(label)]
    return data.decode("latin-1"), "Latin-1", [_not_utf8_note("Latin-1")]


_CJK_RE = re.compile("[\u4e00-\u9fff]")


def _not_utf8_note(label: str) -> str:
    return (f"The file is not UTF-8; it was read as {label}. If names look garbled, save it "
            "from Excel as “CSV UTF-8” and upload it again.")


def _decode_lenient(data: bytes, codec: str, label: str) -> tuple[str, str, list[str]]:
    try:
        return data.decode(codec), label, []
    except UnicodeDecodeError:
        # A damaged character should cost that cell, not the whole file.
        return data.decode(codec, errors="replace"), label, [
            f"Some characters could not be read as {label} and show as �."
        ]


_UTF16_LABELS = {"utf-16-le": "UTF-16 LE", "utf-16-be": "UTF-16 BE"}


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text with no byte-order mark: mostly-ASCII text has a zero in every pair."""
    sample = data[:4000]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    zero_even = sum(1 for b in sample[0 : pairs * 2 : 2] if b == 0)
    zero_odd = sum(1 for b in sample[1 : pairs * 2 : 2] if b == 0)
    if zero_odd > 0.6 * pairs and zero_even < 0.05 * pairs:
        return "utf-16-le"
    if zero_even > 0.6 * pairs and zero_odd < 0.05 * pairs:
        return "utf-16-be"
    return None


def _reject_binary_text(text: str) -> None:
    if not text.strip():
        raise BadCsv("The file is empty.")
    sample = text[:_SNIFF_CHARS]
    controls = sum(
        1 for ch in sample if ch not in "\t\r\n\f\v" and unicodedata.category(ch) == "Cc"
    )
    if "\x00" in text or controls > max(2, len(sample) // 100):
        raise BadCsv(f"This file is not text, so it cannot be a CSV file: {SAVE_AS_CSV}.")


# --- delimiter -----------------------------------------------------------------------------


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first records into the same number of cells.

    Scored on consistency rather than on counts, so commas inside names in a
    semicolon file (or a title row above the header) do not win.
    """
    sample = _sample(text)
    best, best_score = ",", (False, 0.0, False, 0)
    for delimiter in DELIMITERS:
        score = _delimiter_score(sample, delimiter)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _sample(text: str) -> str:
    if len(text) <= _SNIFF_CHARS:
        return text
    cut = text.rfind("\n", 0, _SNIFF_CHARS)
    return text[: cut if cut > 0 else _SNIFF_CHARS]


def _delimiter_score(sample: str, delimiter: str) -> tuple[bool, float, bool, int]:
    try:
        reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
        counts = []
        for row in reader:
            # A line of nothing but delimiters (Excel's empty row) says nothing either way.
            if "".join(row).strip(_BLANK_CHARS):
                counts.append(len(row))
            if len(counts) >= SNIFF_RECORDS:
                break
    except csv.Error:
        return (False, 0.0, False, 0)
    if not counts:
        return (False, 0.0, False, 0)
    mode, freq = Counter(counts).most_common(1)[0]
    # (splits at all, share of records agreeing, first record agrees, cells per record)
    return (mode > 1, freq / len(counts), counts[0] == mode, mode)


# --- records -------------------------------------------------------------------------------


def refuse_wide_records(text: str, delimiter: str) -> None:
    """Raise BadCsv for a record of more than MAX_COLUMNS cells, before pandas sees it."""
    if text.count(delimiter) < MAX_COLUMNS:
        return  # most files: cheaper than looking line by line
    if max(map(str.count, text.splitlines(), itertools.repeat(delimiter))) < MAX_COLUMNS:
        return
    # A quoted cell may hold delimiters: count real cells before refusing.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if len(row) > MAX_COLUMNS:
                raise BadCsv(
                    f"Line {reader.line_num} has {len(row):,} columns; a contact list has at most "
                    f"{MAX_COLUMNS:,}. Check that this is the right file, saved as CSV."
                )
    except csv.Error:
        return  # reading it properly reports this with its reason


def tokenise(text: str, delimiter: str) -> list[Sequence[str]]:
    """Every record as its cells. pandas reads the usual file; the standard csv module
    reads a file with rows longer than the first, which pandas refuses, so such a row
    can be reported instead of lost."""
    try:
        return _tokenise_pandas(text, delimiter)
    except pd.errors.ParserError as exc:
        _raise_if_unclosed_quote(str(exc))
    except Exception:  # any other refusal by pandas: the csv module reads it below
        pass
    _check_quotes_closed(text, delimiter)
    return _tokenise_stdlib(text, delimiter)


def _tokenise_pandas(text: str, delimiter: str) -> list[Sequence[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            header=None,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
        )
    columns = [frame[c].tolist() for c in frame.columns]
    return list(zip(*columns, strict=True))


def _raise_if_unclosed_quote(message: str) -> None:
    match = _EOF_IN_QUOTES_RE.search(message)
    if match:
        line = int(match.group(1)) + 1
        raise BadCsv(
            f"A quote mark (\") on line {line} is never closed, so the rest of the file "
            "cannot be read. Fix that cell and save the file again."
        )


def _check_quotes_closed(text: str, delimiter: str) -> None:
    # The csv module would silently read everything after an unclosed quote as one
    # cell; pandas, skipping the long rows, still notices.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=str,
                        na_filter=False, skip_blank_lines=False, on_bad_lines="skip",
                        engine="c")
    except pd.errors.ParserError as exc:
        _raise_if_unclosed_quote(str(exc))
    except Exception:  # only an unclosed quote matters here
        pass


def _tokenise_stdlib(text: str, delimiter: str) -> list[Sequence[str]]:
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise BadCsv(
                f"One cell is longer than {csv.field_size_limit():,} characters, which no "
                "contact list has: check the file is the right one and its quote marks close."
            ) from None
        raise BadCsv(f"The file cannot be read as CSV ({exc}).") from None
