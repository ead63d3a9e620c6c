"""The new-blast wizard's steps: upload, report, message, pacing, test send, send."""

from __future__ import annotations

import hashlib
import logging

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError
from streamlit.delta_generator import DeltaGenerator

from core import app_state, templates, test_sends
from core.csv_import import (
    BadCsv,
    ColumnNotFound,
    ImportReport,
    Outcome,
    opted_out_among,
    parse_csv,
    workbook,
)
from core.csv_import.columns import find_name_columns
from core.csv_import.reading import check_size
from core.csv_import.storage import tag_in_use
from core.errors import BadInput, BlastError, GatewayError
from core.gateway import make_client
from core.models import utcnow
from core.phones import normalise, to_gateway
from core.sending import blasts
from core.wsapme.failures import WILL_RETRY
from dashboard.auth import identity_provider_configured, password_login
from dashboard.compose import Message, Sample, bubble_html, plain, render_template
from dashboard.data import reading, session, settings, upload_digest
from dashboard.format import plural
from dashboard.tables import no_toolbar_csv

log = logging.getLogger(__name__)

OUTCOME_WORDS = {
    Outcome.VALID: "Ready to send",
    Outcome.WARNING: "Ready, with a warning",
    Outcome.DUPLICATE: "Duplicate (skipped)",
    Outcome.INVALID: "Not a usable number",
    Outcome.HIDDEN: "Hidden in Excel",
    Outcome.SUPPRESSED: "Opted out (skipped)",
    Outcome.BLANK: "Blank line",
}


def what_row_is(row) -> str:  # type: ignore[no-untyped-def]
    """A report row's outcome in the marketer's words."""
    return OUTCOME_WORDS[row.outcome]


def report_counts(report: ImportReport) -> dict[str, int]:
    """Rows per outcome in words, those present only, in the outcomes' order."""
    return {OUTCOME_WORDS[Outcome(outcome)]: n for outcome, n in report.counts.items() if n}

# What a contact list looks like, to download and fill in: the headers the importer finds by
# itself, numbers typed the ways people type them, and a column to use in the message.
SAMPLE_CONTACTS = (
    "Name,Phone,Product\n"
    "Aisyah,012-345 6789,Kuih raya\n"
    "Wei Ling,+60 11-2345 6789,Bak kwa\n"
    "Ravi,019 876 5432,Murukku\n"
).encode("utf-8-sig")  # with the mark Excel needs to read UTF-8


@st.cache_data(max_entries=4, show_spinner="Reading the file…")
def _parsed(
    data: bytes, filename: str, phone_column: str | None, name_column: str | None, region: str,
    sheet: str | None,
) -> ImportReport:
    return parse_csv(data, filename=filename, phone_column=phone_column, name_column=name_column,
                     region=region, sheet=sheet)


@st.cache_data(max_entries=4, show_spinner=False)
def _sheets(data: bytes, max_upload_mb: float) -> workbook.Contents | None:
    """The sheets of a workbook to choose from; None when it cannot be read (reading it says why)."""
    try:
        check_size(len(data), max_upload_mb=max_upload_mb)
        return workbook.contents(
            data, max_unpacked_bytes=workbook.MAX_UNPACKED_RATIO * max_upload_mb * 1024 * 1024
        )
    except BadCsv:
        return None


NO_NAME = "(none)"
# Session state of the choices made by hand (the sheet, the phone and name columns), of the file
# they were made for, and of their widgets.
_CHOICE, _CHOICE_FILE = "columns_override", "columns_for"
_COLUMN_WIDGETS, _SHEET_WIDGET = ("col_phone", "col_name"), "sheet_pick"
_COLUMNS = frozenset({"phone", "name"})  # the keys of a column choice


def read_upload(upload) -> ImportReport | None:  # type: ignore[no-untyped-def]
    """The uploaded file's row-by-row report, from the sheet and with the columns chosen for
    this file if any, or None after saying why it cannot be read (and offering the column
    choice when no phone column was found). A workbook with several sheets with data offers
    the sheet choice first.

    Parsing is cached per file; the opt-out list is checked fresh on every run.
    """
    choice = column_choice(upload)
    data = upload.getvalue()
    if workbook.looks_like_workbook(data):
        render_sheet_choice(_sheets(data, settings().max_upload_mb), chosen=choice.get("sheet"))
    try:
        report = _parsed(data, upload.name, choice.get("phone"), choice.get("name"),
                         settings().phone_region, choice.get("sheet"))
    except ColumnNotFound as exc:
        st.error(exc.message, icon=":material/error:")
        names = find_name_columns(exc.headers, phone=-1)
        render_column_choice(exc.headers, phone=None, names=names, expanded=True)
        return None
    except BadInput as exc:
        st.error(exc.message, icon=":material/error:")
        if _COLUMNS.intersection(choice) and st.button("Go back to the columns found automatically",
                                                        key="col_reset"):
            _find_columns_again(on_sheet=choice.get("sheet"))
            st.rerun()
        return None
    with reading() as s:
        numbers = [row.phone for row in report.recipients if row.phone]
        return report.with_opt_outs(opted_out_among(s, numbers))


def column_choice(upload) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    """The sheet and columns chosen by hand for this file, {} if none: a choice made for another
    file is forgotten, widgets included, so that it cannot stop this one being read."""
    file = upload_digest(upload)
    if st.session_state.get(_CHOICE_FILE) != file:
        for key in (_CHOICE, *_COLUMN_WIDGETS, _SHEET_WIDGET):
            st.session_state.pop(key, None)
        st.session_state[_CHOICE_FILE] = file
    return st.session_state.get(_CHOICE, {})


def _find_columns_again(*, on_sheet: str | None) -> None:
    """Forget the columns chosen by hand, widgets included, keeping the sheet chosen if any."""
    st.session_state[_CHOICE] = {"sheet": on_sheet} if on_sheet else {}
    for key in _COLUMN_WIDGETS:
        st.session_state.pop(key, None)


def render_sheet_choice(contents: workbook.Contents | None, *, chosen: str | None) -> None:
    """Pick the sheet to read, when a workbook has several with data; choosing one reads it."""
    if contents is None or len(contents.sheets) < 2:
        return
    shown = chosen if chosen in contents.sheets else contents.first_choice
    st.selectbox(
        "Sheet",
        contents.sheets,
        index=contents.sheets.index(shown),
        key=_SHEET_WIDGET,
        format_func=lambda sheet: f"{sheet} (hidden in Excel)" if sheet in contents.hidden else sheet,
        on_change=_choose_sheet,
        help="The workbook has several sheets with data: the first with phone numbers is read "
        "unless you choose another.",
    )


def _choose_sheet() -> None:
    # Columns chosen on one sheet mean nothing on another: the new sheet's are found again.
    _find_columns_again(on_sheet=st.session_state[_SHEET_WIDGET])


def render_column_choice(
    headers: tuple[str, ...], *, phone: int | None, names: tuple[int, ...], expanded: bool = False
) -> None:
    """Pick the phone and name columns by hand; the file is read again with them."""
    joined = " + ".join(headers[i] for i in names) if len(names) > 1 else None
    name_options = [*([joined] if joined else []), NO_NAME, *headers]
    name_index = name_options.index(joined or (headers[names[0]] if names else NO_NAME))
    title = "Choose the columns yourself" if expanded else "Use other columns"
    with st.expander(title, expanded=expanded):
        phone_pick = st.selectbox("Phone number column", headers, index=phone, key="col_phone",
                                  placeholder="Choose the column with the numbers")
        name_pick = st.selectbox("Name column", name_options, index=name_index, key="col_name")
        if st.button("Re-read with these columns", key="col_apply", disabled=phone_pick is None):
            st.session_state[_CHOICE] = {
                **st.session_state.get(_CHOICE, {}),  # the sheet, if one was chosen
                "phone": phone_pick,
                # The joined first + last names are found again by their headers.
                "name": None if name_pick == joined else "" if name_pick == NO_NAME else name_pick,
            }
            st.rerun()


def render_report(report: ImportReport) -> None:
    counts = report_counts(report)
    cols = st.columns(max(len(counts), 1))
    for col, (what, count) in zip(cols, counts.items(), strict=False):
        col.metric(what, f"{count:,}")
    read = f"read from the sheet **{report.sheet}** of the Excel workbook" if report.sheet else (
        f"read as {report.encoding}"
    )
    st.caption(
        f"Numbers from column **{report.phone_column}**"
        + (f", names from **{report.name_column}**" if report.name_column else ", no name column found")
        + f" · {read}."
    )
    for note in report.notes:
        st.caption(note)
    problems = report.problems
    if problems:
        frame = pd.DataFrame(
            [
                {  # the reason before the cells: at 1366 px the last column is cut off
                    "Line": r.line,
                    "What": what_row_is(r),
                    "Why": r.reason or (f"same number as line {r.duplicate_of}" if r.duplicate_of else ""),
                    "As typed": r.raw_phone,
                    "Number": r.phone or "",
                    "Name": r.name or "",
                }
                for r in problems
            ]
        )
        need = "needs" if len(problems) == 1 else "need"
        title = f"{plural(len(problems), 'row')} {need} a look"
        # The file's own cells: no toolbar download of them as typed.
        with st.expander(title, expanded=len(problems) <= 20), no_toolbar_csv("report_table_box"):
            st.dataframe(frame, hide_index=True, width="stretch", key="report_table",
                         column_config=REPORT_COLUMNS)
    st.download_button(
        "Download the full report (CSV)",
        report.to_csv().encode("utf-8-sig"),
        file_name="import-report.csv",
        mime="text/csv",
        key="report_dl",
        icon=":material/download:",
    )


# Room for the reason, which says what to do ("format the phone column as Text…"), over the cells.
REPORT_COLUMNS = {
    "Line": st.column_config.NumberColumn(width=50),
    "What": st.column_config.TextColumn(width=150),
    "Why": st.column_config.TextColumn(width=460),
    "As typed": st.column_config.TextColumn(width=140),
    "Number": st.column_config.TextColumn(width=120),
}


def render_message(report: ImportReport) -> Message:
    """The message box, previewed for the file's first recipients, with its length."""
    samples = [
        Sample(row.name or row.phone or "", _row_variables(row), line=row.line) for row in report.recipients
    ]
    return render_template(names=report.variable_names, samples=samples)


def _row_variables(row) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return blasts.recipient_variables(row.name, row.variables)


# The New blast page's test: `render_test`'s key there, and what its boxes' keys start with.
TEST = "test"
# The number last typed for a test, outside any one box: it is the marketer's own phone, the same
# for every blast and draft, while a box's own value goes when its page or list does.
_OWN_NUMBER = "own_test_number"
# The number the last test went to, kept in the database for whoever sent it: a page reloaded,
# or opened the next day, starts with it rather than an empty box.
LAST_TEST_NUMBER = "last_test_number"


def render_test_send(text: str, report: ImportReport, *, file: str) -> None:
    """The New blast page's test, of `text` filled in for the first recipient of `file`'s list."""
    first = report.recipients[0] if report.recipients else None
    render_test(templates.render(text, _row_variables(first) if first else {}).text, key=TEST, owner=file)


def render_tag_in_use(container: DeltaGenerator, tag: str) -> None:
    """Under the campaign tag: the campaign it joins, or one in use that a new tag looks like a
    variant of (it would be a campaign of its own on the Overview)."""
    with reading() as s:
        found = tag_in_use(s, tag)
    if found.same:
        container.caption(f"Joins the campaign “{plain(found.same)}” "
                          f"({plural(found.blasts, 'blast')} so far).")
    elif found.like:
        container.warning(f"A new campaign tag. If this is the same campaign as “{plain(found.like)}”, type "
                          "it that way: the Overview counts each tag apart.", icon=":material/sell:")


def forget_test() -> None:
    """Forget the New blast page's last test: it was for a list, or a blast, that is gone."""
    st.session_state.pop(f"{TEST}_sent", None)


def render_test(body: str, *, key: str = TEST, owner: str | None = None) -> None:
    """Send `body` (the message filled in for the first recipient) to the marketer's own number,
    and keep what was tested on the page; `key` tells the New blast page's from a draft's, and
    `owner` is what the test is for there (its list): a test for another is not shown."""
    practice = settings().sandbox
    where = " In practice mode it goes to the built-in test gateway, not to a phone." if practice else ""
    st.caption("Send the message, filled in for the first recipient, to your own number first." + where)
    c1, c2 = st.columns([3, 1])
    box = f"{key}_to"
    if box not in st.session_state:  # set before the box is drawn, so the browser shows it too
        st.session_state[box] = st.session_state.get(_OWN_NUMBER) or _last_test_number()
    number = c1.text_input("Your WhatsApp number", key=box, placeholder="012-345 6789")
    st.session_state[_OWN_NUMBER] = number
    c2.write("")
    if c2.button("Send test", key=f"{key}_send", icon=":material/send:"):
        _send_test(number, body, practice=practice, key=key, owner=owner)
    _render_last_test(body, key=key, owner=owner)


def _test_number_key() -> str | None:
    """Where this person's last test number is kept: by their account when they logged in with
    one, once for the dashboard when it has no login (one computer); not kept when everyone
    shares a password, or one person's phone would be filled in for the next."""
    if identity_provider_configured():
        email = st.user.get("email") if st.user.is_logged_in else None
        if not isinstance(email, str) or not email:
            return None
        return LAST_TEST_NUMBER + ":" + hashlib.sha256(email.casefold().encode()).hexdigest()[:32]
    return None if password_login() else LAST_TEST_NUMBER


def _last_test_number() -> str:
    key = _test_number_key()
    if key is None:
        return ""
    with reading() as s:
        kept = app_state.get(s, key=key)
    number = kept[0].get("number") if kept else None
    return number if isinstance(number, str) else ""


def _send_test(number: str, body: str, *, practice: bool, key: str, owner: str | None) -> None:
    if not number.strip():
        st.warning("Type your WhatsApp number first.")
        return
    phone = normalise(number, settings().phone_region)
    if not phone.ok:
        st.error(f"That number cannot be used: {phone.reason}.")
        return
    with reading() as s:
        listed = bool(opted_out_among(s, [phone.e164]))
    if listed:  # nobody on the list is messaged, a test included
        st.error(f"No test was sent: {phone.e164} is on the opt-out list, so nothing is sent to it. If it "
                 "is your own number, take it off the list on the Opt-outs page first.")
        return
    try:
        result = make_client(settings()).send_text(to=to_gateway(phone.e164), message=body)
    except GatewayError as exc:
        if exc.accepted is None:  # it may have gone: say so, never "not sent"
            st.warning("WSAPME did not confirm the test message, so it may or may not have arrived: "
                       "check your phone before trying again.")
        else:
            # The words of a blast's send promise it is tried again; a test is sent once, by hand.
            said = exc.message
            if said.endswith(WILL_RETRY):
                said = said.removesuffix(WILL_RETRY) + " Try again in a moment."
            st.error(f"The test was not sent: {said}")
        return
    except BlastError as exc:  # a setting is wrong (the WSAPME address, say): nothing left
        st.error(f"The test was not sent: {exc.message}")
        return
    sent_at = utcnow()
    try:
        with session() as s:
            if result.message_id:  # its receipts are then a test's, not a blast message's to wait for
                test_sends.remember(s, message_id=result.message_id, to=phone.e164, at=sent_at)
            if (kept_as := _test_number_key()) is not None:
                app_state.put(s, key=kept_as, value={"number": number.strip()})
    except SQLAlchemyError as exc:  # the test went: say so all the same, or it would be sent twice
        log.warning("the test message's id was not kept (%s)", type(exc).__name__)
    st.session_state[f"{key}_sent"] = {"to": phone.e164, "body": body, "at": sent_at,
                                        "id": result.message_id, "practice": practice, "for": owner}


def _render_last_test(body: str, *, key: str, owner: str | None) -> None:
    """What was tested stays on the page while the blast is set up: the next click would
    otherwise take the confirmation away. A test for another list says nothing of this one."""
    sent = st.session_state.get(f"{key}_sent")  # the last test sent from this page
    if sent and sent.get("for") != owner:  # another list is on the page now: that test is done with
        st.session_state.pop(f"{key}_sent", None)
        return
    if not sent:
        return
    when = sent["at"].astimezone(settings().timezone)
    if sent.get("practice"):
        # Nothing reaches a phone: what would have arrived is shown here instead.
        st.success(f"Test sent to {sent['to']} at {when:%H:%M}, in practice mode: it went to the built-in "
                   "test gateway, not to a phone, so nothing arrives. On WhatsApp it would look like this:",
                   icon=":material/science:")
        st.html(bubble_html(sent["body"]))
    else:
        st.success(f"Test sent to {sent['to']} at {when:%H:%M}. Check your phone before sending the blast.")
    if sent["body"] != body:
        st.warning("The message has changed since that test: send another to see it as they will.")
    if not sent.get("practice"):
        st.caption(f"WSAPME's reference for this message, if support asks: {sent['id']}")
