"""Reading an uploaded file into cells: size cap, Excel workbooks, not-a-CSV checks, encoding,
delimiter, and the line of the file each record starts on."""

from __future__ import annotations

import bisect
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

from core import phones
from core.csv_import import workbook
from core.csv_import.columns import HEADER_SEARCH_RECORDS
from core.csv_import.report import Records
from core.errors import BadCsv
from core.words import and_list

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
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
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
# The start of a web page, as Excel's and reporting tools' "Excel" (.xls) exports begin: a table,
# or the head of a page (<meta> giving its encoding, <style>). Looked for in the decoded text,
# after any byte-order mark and in any encoding.
_HTML_RE = re.compile(
    r"\s*<(?:(?:!doctype\s+html|html|head|body|meta|style|title|table|\?xml)\b|!--)", re.IGNORECASE
)
_EOF_IN_QUOTES_RE = re.compile(r"EOF inside string starting at row (\d+)")


@dataclass
class RawTable:
    """Every record of the file as cells, in file order (blank lines included): for a text
    file, `Records`."""

    rows: list[Sequence[str]]
    encoding: str  # for a workbook: WORKBOOK
    delimiter: str  # for a workbook: ""
    notes: list[str] = field(default_factory=list)
    sheet: str | None = None  # the worksheet read, for a workbook


def read_table(
    data: bytes, *, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, sheet: str | None = None,
    filename: str | None = None,
) -> RawTable:
    """Cut an uploaded file into records and cells, or raise BadCsv saying why not. `sheet`:
    a workbook's sheet to read (None: the first with contacts); a text file has none.
    `filename`, the name it was uploaded under, only words why a file cannot be read."""
    check_size(len(data), max_upload_mb=max_upload_mb)
    if workbook.looks_like_workbook(data):
        return _read_workbook(data, max_upload_mb=max_upload_mb, sheet=sheet)
    _reject_other_formats(data)
    decoded = decode(data)
    text = decoded.text
    _reject_web_page(text)
    _reject_binary_text(text, filename=filename)
    text, nul_notes = _without_stray_nuls(text)
    delimiter = sniff_delimiter(text)
    refuse_wide_records(text, delimiter)
    records, notes = place_records(tokenise(text, delimiter), text, delimiter)
    _warn_other_lines(records, decoded.other_lines)
    # Rows are reported by the number Excel shows them under, where a cell with a line break
    # stays on one row; the notes about quote marks and encodings name the lines of the file.
    records.lines = range(1, len(records) + 1)
    return RawTable(rows=records, encoding=decoded.encoding, delimiter=delimiter,
                    notes=decoded.notes + nul_notes + notes)


def _read_workbook(data: bytes, *, max_upload_mb: float, sheet: str | None) -> RawTable:
    sheet = workbook.read_sheet(
        data, max_unpacked_bytes=workbook.MAX_UNPACKED_RATIO * max_upload_mb * 1024 * 1024, sheet=sheet
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
            raise BadCsv(f"This looks like {what}, not a CSV or Excel file: {SAVE_AS_CSV}.")
    if head.startswith(b"RIFF") and data[8:12] == b"WEBP":
        raise BadCsv(f"This looks like a WebP image, not a CSV or Excel file: {SAVE_AS_CSV}.")


def _reject_web_page(text: str) -> None:
    if _HTML_RE.match(text, 0, 1000):
        raise BadCsv(f"This looks like a web page (HTML), not a CSV or Excel file: {SAVE_AS_CSV}.")


# --- encoding ------------------------------------------------------------------------------


@dataclass
class DecodedText:
    """A file's text, the encoding it was read with, notes for the report, and the lines that
    were read in another encoding than the rest."""

    text: str
    encoding: str
    notes: list[str] = field(default_factory=list)
    other_lines: list[int] = field(default_factory=list)


def decode(data: bytes) -> DecodedText:
    """The file's text and how it was read.

    Order: a byte-order mark decides; then UTF-16 without a mark (spotted by its zero
    bytes); then UTF-8; then UTF-8 line by line when the bytes that are not UTF-8 are few
    beside the UTF-8 letters (a row pasted in from another file); then, for the whole file,
    `_decode_legacy`. charset-normalizer is not used: on short contact lists it guessed
    cp1250 for cp1252 and a Korean code page for GBK.
    """
    for bom, codec, label in (
        (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
        (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
        (b"\xef\xbb\xbf", "utf-8", "UTF-8"),
        (b"\xff\xfe", "utf-16", "UTF-16 LE"),
        (b"\xfe\xff", "utf-16", "UTF-16 BE"),
    ):
        if not data.startswith(bom):
            continue
        if codec == "utf-8":  # the mark says UTF-8, so any other line is a stray
            body = data[len(bom):]
            return _decode_utf8(body) or _utf8_by_line(body)
        return _decode_lenient(data, codec, label)
    utf16 = _utf16_without_bom(data)
    if utf16:
        return _decode_lenient(data, utf16, _UTF16_LABELS[utf16])
    decoded = _decode_utf8(data)
    if decoded:
        return decoded
    if _mostly_utf8(data):
        return _utf8_by_line(data)
    text, label = _decode_legacy(data)
    return DecodedText(text, label, [_not_utf8_note(label)])


def _decode_utf8(data: bytes) -> DecodedText | None:
    try:
        return DecodedText(data.decode("utf-8"), "UTF-8")
    except UnicodeDecodeError:
        return None


def _decode_legacy(data: bytes) -> tuple[str, str]:
    """Text that is not UTF-8, and its encoding: GB2312, then GBK, when it reads as Chinese
    (Excel's "CSV" on Chinese Windows); then Windows-1252 (Excel's "CSV" on English Windows);
    then Latin-1, which reads any byte.

    GBK (read as GB18030, which holds it) has characters common in Malaysian Chinese names
    that GB2312 lacks (燊, 玥, 喆, 堃, 昇). Its table also turns Western text in Windows-1252
    into Chinese when an accented letter is followed by a letter ("Müller"), hence
    `_looks_chinese`.
    """
    for codec, label in _LEGACY_ENCODINGS:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if codec in ("gb2312", "gb18030") and not _looks_chinese(text):
            continue
        return text, label
    return data.decode("latin-1"), "Latin-1"


_LEGACY_ENCODINGS = (
    ("gb2312", "GB2312 (Chinese Windows)"),
    ("gb18030", "GBK (Chinese Windows)"),
    ("cp1252", "Windows-1252"),
)
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
# Beyond ASCII, and neither a Chinese character nor CJK or full-width punctuation.
_NOT_CHINESE_RE = re.compile(f"[^\x00-\x7f{_CJK}\u3000-\u303f\uff00-\uffef]")
_CJK_IN_A_WORD_RE = re.compile(f"(?<=[A-Za-z])[{_CJK}]|[{_CJK}](?=[A-Za-z])")


def _looks_chinese(text: str) -> bool:
    """Whether text read with a Chinese table is Chinese: two characters or more (a name has
    two or more), hardly anything else beyond ASCII, and the characters not inside Latin words,
    where an accented letter read together with the letter after it lands ("M黮ler")."""
    sample = text[:_SNIFF_CHARS]  # some thousand contacts tell; all of a long file is slow
    cjk = len(_CJK_RE.findall(sample))
    if cjk < 2:
        return False
    return (len(_NOT_CHINESE_RE.findall(sample)) * 20 <= cjk
            and len(_CJK_IN_A_WORD_RE.findall(sample)) * 4 <= cjk)


def _mostly_utf8(data: bytes) -> bool:
    """Whether the bytes that are not UTF-8 are few beside the letters that are: a UTF-8 file
    with a row pasted in from another file, not a Windows-1252 or GBK file, whose bytes read as
    UTF-8 letters only here and there, by chance."""
    text = data.decode("utf-8", errors="replace")
    strays = text.count("\ufffd") - data.count("\ufffd".encode())  # one for each bad sequence
    ascii_chars = len(data) - len(data.translate(None, _ASCII_BYTES))
    letters = len(text) - ascii_chars - strays - len(_CHANCE_UTF8_RE.findall(text))
    return strays * 2 <= letters


_ASCII_BYTES = bytes(range(128))
# What a GBK character's two bytes read as when they happen to be UTF-8, and what the names in
# these lists rarely hold: C1 control characters, combining marks, Greek to Arabic and on.
_CHANCE_UTF8_RE = re.compile("[\x80-\x9f\u0300-\u07ff]")


def _utf8_by_line(data: bytes) -> DecodedText:
    """UTF-8 text with each line that is not UTF-8 read on its own by `_decode_legacy`. Read
    whole in another encoding, one row pasted from a Windows-1252 file would turn every other
    name into mojibake ("MÃ¼ller"), or a Chinese list into control characters refused as not
    text."""
    texts, other_lines, labels = [], [], set()
    # \r\n, \r and \n, as pandas and the csv module end lines: line numbers agree with theirs.
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        try:
            texts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            text, label = _decode_legacy(line)
            texts.append(text)
            other_lines.append(number)
            labels.add(label)
    notes = [_other_lines_note(other_lines, sorted(labels))] if other_lines else []
    return DecodedText("".join(texts), "UTF-8", notes, other_lines)


def _other_lines_note(numbers: Sequence[int], labels: Sequence[str]) -> str:
    shown = ", ".join(map(str, numbers[:5]))
    if len(numbers) > 5:
        shown += f" and {len(numbers) - 5:,} more"
    which = f"Line {shown} of the file is" if len(numbers) == 1 else f"Lines {shown} of the file are"
    each = "it was" if len(numbers) == 1 else "each was"
    return (f"{which} not in UTF-8 like the rest of the file, so {each} read on its own as "
            f"{' or '.join(labels)}: check the names there.")


def _not_utf8_note(label: str) -> str:
    return (f"The file is not UTF-8; it was read as {label}. If names look garbled, save it "
            "from Excel as “CSV UTF-8” and upload it again.")


def _decode_lenient(data: bytes, codec: str, label: str) -> DecodedText:
    try:
        return DecodedText(data.decode(codec), label)
    except UnicodeDecodeError:
        # A damaged character should cost that cell, not the whole file.
        return DecodedText(data.decode(codec, errors="replace"), label, [
            f"Some characters could not be read as {label} and show as �."
        ])


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


def _reject_binary_text(text: str, *, filename: str | None = None) -> None:
    if not text.strip():
        raise BadCsv("The file is empty.")
    sample = text[:_SNIFF_CHARS]
    controls = sum(
        1 for ch in sample if ch not in "\t\r\n\f\v" and unicodedata.category(ch) == "Cc"
    )
    nuls = text.count("\x00")
    if controls > max(2, len(sample) // 100) or nuls > max(2, len(text) // 1000):
        if (filename or "").lower().endswith(EXCEL_SUFFIXES):
            # Named as a workbook, but not the start of one: cut short, or damaged on the way.
            raise BadCsv("This file is named as an Excel workbook, but it cannot be opened as one: it "
                         "may be damaged, or not fully downloaded. Open it in Excel; if it opens, save "
                         "it again as “Excel Workbook (.xlsx)” and upload the new file.")
        raise BadCsv(f"This file is not text, so it cannot be a CSV file: {SAVE_AS_CSV}.")


# Lines named in a note about invisible characters taken out, before "and N more".
NUL_LINES_LISTED = 10


def _without_stray_nuls(text: str) -> tuple[str, list[str]]:
    """The text without the few NUL characters left in it (a program that padded a cell, a file
    cut short and saved again), and a note naming their lines: the rest of the list is read as
    it is, and nothing in a cell is lost but an invisible character that no database keeps."""
    if "\x00" not in text:
        return text, []
    lines = [number for number, line in enumerate(text.split("\n"), 1) if "\x00" in line]
    named = [str(line) for line in lines[:NUL_LINES_LISTED]]
    if len(lines) > NUL_LINES_LISTED:
        named.append(f"{len(lines) - NUL_LINES_LISTED:,} more")
    where = f"line{'s' if len(lines) > 1 else ''} {and_list(named)}"
    return text.replace("\x00", ""), [
        f"An invisible character (NUL) on {where} of the file was taken out; check those rows."]


# --- delimiter -----------------------------------------------------------------------------


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header and the records below it into the same number of
    cells.

    Scored on consistency rather than on counts, so commas inside names in a semicolon
    file do not win; and from the header down, where a delimiter finds one (the record above
    the first that holds a usable phone number), so title lines above it do not either,
    however many they are.
    """
    sample = _sample(text)
    best, best_score = ",", (False, False, 0.0, False, 0)
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


def _delimiter_score(sample: str, delimiter: str) -> tuple[bool, bool, float, bool, int]:
    """(finds a phone number, splits at all, share of records agreeing, first record agrees,
    cells per record), over SNIFF_RECORDS records from the header down, or from the top."""
    counts: list[int] = []
    first_contact = None
    try:
        for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter):
            # A line of nothing but delimiters (Excel's empty row) says nothing either way.
            if not "".join(row).strip(_BLANK_CHARS):
                continue
            if first_contact is None and any(map(_usable_phone, row)):
                first_contact = len(counts)
            counts.append(len(row))
            header_search = HEADER_SEARCH_RECORDS if first_contact is None else first_contact
            if len(counts) >= header_search + SNIFF_RECORDS:
                break
    except csv.Error:
        return (False, False, 0.0, False, 0)
    counts = counts[max(0, first_contact - 1):] if first_contact is not None else counts[:SNIFF_RECORDS]
    if not counts:
        return (False, False, 0.0, False, 0)
    mode, freq = Counter(counts).most_common(1)[0]
    return (first_contact is not None, mode > 1, freq / len(counts), counts[0] == mode, mode)


def _usable_phone(cell: str) -> bool:
    return _reads_as_phone(cell) and phones.normalise(cell).ok


# --- records -------------------------------------------------------------------------------


def refuse_wide_records(text: str, delimiter: str) -> None:
    """Raise BadCsv for a record of more than MAX_COLUMNS cells, before pandas sees it."""
    if text.count(delimiter) < MAX_COLUMNS:
        return  # most files: cheaper than looking line by line
    if max(map(str.count, text.splitlines(), itertools.repeat(delimiter))) < MAX_COLUMNS:
        return
    # A quoted cell may hold delimiters: count real cells before refusing.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for row in reader:
            if len(row) > MAX_COLUMNS:
                raise BadCsv(
                    f"Line {start} has {len(row):,} columns; a contact list has at most "
                    f"{MAX_COLUMNS:,}. Check that this is the right file, saved as CSV."
                )
            start = reader.line_num + 1
    except csv.Error:
        return  # reading it properly reports this with its reason


def tokenise(text: str, delimiter: str) -> list[Sequence[str]]:
    """Every record as its cells. pandas reads the usual file; the standard csv module
    reads a file with rows longer than the first, which pandas refuses, so such a row
    can be reported instead of lost."""
    try:
        return _tokenise_pandas(text, delimiter)
    except pd.errors.ParserError as exc:
        _raise_if_unclosed_quote(str(exc), text, delimiter)
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


def _raise_if_unclosed_quote(message: str, text: str, delimiter: str) -> None:
    match = _EOF_IN_QUOTES_RE.search(message)
    if match:
        line = _unclosed_quote_line(text, delimiter, record=int(match.group(1)))
        raise BadCsv(
            f"A quote mark (\") on line {line} of the file is never closed, so the rest of it "
            "cannot be read. Fix that cell and save the file again."
        )


def _unclosed_quote_line(text: str, delimiter: str, *, record: int) -> int:
    """The line of the file with the quote mark that pandas found open at the end of the file,
    which it gives as the index of the record it is in. That cell is the record's last."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = record + 1  # in case the csv module cannot read that far
    try:
        for _ in itertools.islice(reader, record):
            pass
        line = reader.line_num + 1
        line += sum(map(_line_breaks, next(reader)[:-1]))
    except (csv.Error, StopIteration):
        pass
    return line


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
        _raise_if_unclosed_quote(str(exc), text, delimiter)
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


# --- lines of the file ---------------------------------------------------------------------

_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # the line ends pandas and the csv module read
# A number as typed in a contact list: digits and the usual separators, 7 digits or more.
_PHONE_LIKE_RE = re.compile(r"\+?[\d ().-]{7,}")
_PHONE_START_RE = re.compile(r"[\d ().-]{7}")  # in any text that holds such a number: a quick look
_JOINED = ('a quote mark (") at the start of a cell joined lines {start}–{end} of the file into one '
           "row; check the quote marks on line {quote}")
_UNJOINED_ROW = ('a quote mark (") at the start of a cell on line {start} was not closed on that line, '
                 "so it was left out: check this row")
_UNJOINED_NOTE = ('A quote mark (") at the start of a cell on line {start} is not closed on that line; '
                  "lines {start}–{end} were read as separate rows without it. Check the quote marks "
                  "on line {start}.")


def place_records(
    rows: list[Sequence[str]], text: str, delimiter: str
) -> tuple[Records, list[str]]:
    """The records with the line of the file each starts on, and notes for the report.

    A quote mark at the start of a cell keeps the cell open, as in Excel, until the next quote
    mark, however many lines later: a stray one (`"Ali (VIP`) joins the contacts below it into
    one name, and a message to one of them would list the others. Such a record, with a cell
    that spans lines and has a line holding the delimiter and a phone number, is read again
    without that quote mark when each of its lines then reads as a row like the others;
    otherwise it is marked unusable, naming its lines. A name or address typed over two lines
    stays one cell.
    """
    lines, spanning = _start_lines(rows, text)
    joined = [(i, cell) for i in spanning if (cell := _joined_cell(rows[i], delimiter)) is not None]
    if not joined:
        return Records(rows, lines), []
    physical = _LINE_BREAK_RE.split(text)
    width = max(map(len, rows))
    kept: list[Sequence[str]] = []
    kept_lines: list[int] = []
    problems, cautions, notes = {}, {}, []
    done = 0
    for i, cell in joined:
        kept += rows[done:i]
        kept_lines += lines[done:i]
        done = i + 1
        cells, start = rows[i], lines[i]
        end = start + _record_breaks(cells)
        quote = start + sum(map(_line_breaks, cells[:cell]))  # the line the joined cell opens on
        split = None
        if quote == start:
            split = _reread_without_quote(cells, cell, physical[start - 1 : end], delimiter, width)
        if split is None:
            problems[len(kept)] = _JOINED.format(start=start, end=end, quote=quote)
            kept.append(cells)
            kept_lines.append(start)
        else:
            cautions[len(kept)] = _UNJOINED_ROW.format(start=start)
            notes.append(_UNJOINED_NOTE.format(start=start, end=end))
            kept += split
            kept_lines += range(start, end + 1)
    kept += rows[done:]
    kept_lines += lines[done:]
    records = Records(kept, kept_lines)
    records.problems, records.warnings = problems, cautions
    return records, notes


def _start_lines(rows: Sequence[Sequence[str]], text: str) -> tuple[Sequence[int], list[int]]:
    """The line of the file each record starts on, and the indexes of the records that span
    lines: a record ends one line further on for each line break inside its quoted cells."""
    if _line_breaks(text) + (not text.endswith(("\n", "\r"))) == len(rows):
        return range(1, len(rows) + 1), []  # one line per record: most files
    lines, spanning, line = [], [], 1
    for index, cells in enumerate(rows):
        lines.append(line)
        breaks = _record_breaks(cells)
        if breaks:
            spanning.append(index)
        line += 1 + breaks
    return lines, spanning


def _record_breaks(cells: Sequence[str]) -> int:
    return _line_breaks("\x1f".join(cells))  # a separator, lest "\r" + "\n" read as one break


def _line_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _joined_cell(cells: Sequence[str], delimiter: str) -> int | None:
    """The first cell that spans lines with a line holding the delimiter and a phone number:
    lines of the file joined by a stray quote mark, not a name or address typed over lines.
    The line may be the first: a quote closed on the next line joins just the two."""
    for index, cell in enumerate(cells):
        if ("\n" not in cell and "\r" not in cell) or delimiter not in cell:
            continue  # most cells, more cheaply than line by line
        if not _PHONE_START_RE.search(cell):
            continue
        for line in _LINE_BREAK_RE.split(cell):
            parts = line.split(delimiter)
            if len(parts) > 1 and any(map(_reads_as_phone, parts)):
                return index
    return None


def _reads_as_phone(text: str) -> bool:
    text = text.strip()
    return _PHONE_LIKE_RE.fullmatch(text) is not None and sum(map(str.isdigit, text)) >= 7


def _reread_without_quote(
    cells: Sequence[str], cell: int, lines: list[str], delimiter: str, width: int
) -> list[list[str]] | None:
    """The lines of a joined record read again without the quote mark that opened `cell` on
    the first of them: one row per line, all with the same number of cells (two or more, no
    more than the widest record). None when they do not read so cleanly."""
    head = _LINE_BREAK_RE.split(cells[cell], maxsplit=1)[0]
    first = lines[0]
    if not first.endswith('"' + head):
        return None  # the cell's first line holds doubled quote marks: no guessing
    lines = [first[: len(first) - len(head) - 1] + head, *lines[1:]]
    try:
        split = list(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error:
        return None
    counts = {len(row) for row in split if row}
    if len(split) != len(lines) or len(counts) != 1 or not 1 < min(counts) <= width:
        return None
    return [row + [""] * (len(cells) - len(row)) for row in split]


def _warn_other_lines(records: Records, other_lines: Sequence[int]) -> None:
    """Warn on each record holding a line that was read in another encoding than the rest."""
    for number in other_lines:
        index = max(0, bisect.bisect_right(records.lines, number) - 1)
        warning = (f"line {number} of the file was not saved as UTF-8 like the rest: check the "
                   "letters in this row")
        records.warnings[index] = "; ".join(filter(None, (records.warnings.get(index), warning)))
