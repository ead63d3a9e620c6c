"""The Replies page's pieces: the filters, the list of people who wrote back, their conversations."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from urllib.parse import quote

import pandas as pd
import streamlit as st
from sqlalchemy import exists, select

from core.exports import replies_csv, replies_xlsx
from core.funnel import filter_options
from core.models import Blast, utcnow
from core.recipients import mark_closed, undo_sales
from core.reply_inbox import (
    DEFAULT_DAYS,
    UNMATCHED_SHOWN,
    Conversation,
    InboxFilter,
    InboxMark,
    InboxPage,
    InboxRow,
    NewSince,
    UnmatchedMessage,
    as_they_stand,
    conversation,
    default_since,
    inbox_mark,
    inbox_page,
    new_since,
    reply_words,
    sale_elsewhere,
    unmatched_messages,
    who_replied,
)
from core.statuses import Status
from dashboard.blast_views import local, status_word
from dashboard.compose import bubble_html, plain
from dashboard.data import on_download, reading, session, settings
from dashboard.format import one_of_many, plural
from dashboard.layout import friendly_errors
from dashboard.recipient_views import (
    after_action,
    closed_words,
    held_while_ticked,
    hold,
    live_table_key,
    render_done,
    render_opt_out,
    render_replies,
    table_key,
    undone_words,
)
from dashboard.tables import height_for, no_toolbar_csv

KEY = "rpl"
OPTED_OUT = "Opted out"  # their status when they asked not to be messaged
SHOWN_CONVERSATIONS = 10  # ticking a whole page must not lay out fifty conversations
CHECK_EVERY = 30  # seconds between two looks for replies that came in after the list was read
TABLE_BOX = f"{KEY}_table"

INBOX_COLUMNS = {
    # On a 1366 px laptop the table shows 904 px, 32 of them the ticks' column and 6 a scroll
    # bar: every column but Reply is as wide as its longest usual words in the table's 14 px
    # font with 8 px either side, and Reply takes what is left (ticking a row shows it whole).
    # Wide enough for "yesterday 23:59"; a reply from an earlier year adds its year and is cut.
    "When": st.column_config.TextColumn(width=110, help="When their latest reply came, in your time zone."),
    "Name": st.column_config.TextColumn(width=105),
    # Before the reply: on a phone only the first columns fit, and the number is who to call. It
    # starts 247 px in, so that a phone's 356 px show "+601112345678" whole.
    "Number": st.column_config.TextColumn(width=110),
    "Reply": st.column_config.TextColumn(
        width=220, help="Their latest reply. Tick the row to read the whole conversation."
    ),
    # "Closed: a sale", "Opted out", "Sale on #52" (another blast of the campaign).
    "Status": st.column_config.TextColumn(width=100),
    # The link carries the blast's name after a #, which the table shows in place of the address.
    # Wide enough for "Year-End Clearance — Follow-up 2".
    "Blast": st.column_config.LinkColumn(
        width=220, display_text=r"#(.+)$", help="Opens the blast they replied to."
    ),
}


def has_blasts() -> bool:
    with reading() as s:
        return bool(s.scalar(select(exists().where(Blast.id.is_not(None)))))


def render_no_blasts() -> None:
    st.subheader("No blasts yet")
    st.write("When a blast has gone out and people write back, their replies show here.")
    st.page_link("pages/new_blast.py", label="Start a new blast", icon=":material/add_circle:")


def render_waiting_replies() -> None:
    """On the Overview: how many people wrote back this week and still wait for an answer,
    with the way to them. Nothing when no one waits."""
    zone = settings().app_timezone
    with reading() as s:
        _, waiting = who_replied(s, filters=InboxFilter(since=default_since(timezone=zone), timezone=zone,
                                                        leave_out_practice=not settings().sandbox))
    if not waiting:
        return
    with st.container(border=True, horizontal=True, vertical_alignment="center"):
        st.markdown(f"**{plural(waiting, 'person', 'people')}** replied in the last "
                    f"{DEFAULT_DAYS} days and {'is' if waiting == 1 else 'are'} waiting to be followed up.")
        st.page_link("pages/replies.py", label="Open Replies", icon=":material/forum:")


def render_filters() -> InboxFilter:
    zone = settings().app_timezone
    today = utcnow().astimezone(settings().timezone).date()
    with reading() as s:
        tags, _ = filter_options(s, leave_out_practice=not settings().sandbox)
    cols = st.columns([2, 3, 3, 3], vertical_alignment="bottom")  # room for the toggle's words
    since = cols[0].date_input(
        "Replied since", value=default_since(timezone=zone), max_value=today, format="DD/MM/YYYY",
        key=f"{KEY}_since", on_change=_first_page,
    )
    chosen = cols[1].multiselect(
        "Campaign tags", tags, key=f"{KEY}_tags", placeholder="All tags", on_change=_first_page
    )
    search = cols[2].text_input("Search name, number or reply", key=f"{KEY}_q", on_change=_first_page)
    only_open = cols[3].toggle(
        "Only people to follow up", value=True, key=f"{KEY}_open", on_change=_first_page,
        help="Leaves out sales already closed and people who asked not to be messaged.",
    )
    return InboxFilter(
        since=since if isinstance(since, dt.date) else default_since(timezone=zone),
        timezone=zone, tags=tuple(chosen), only_open=only_open, search=search.strip() or None,
        leave_out_practice=not settings().sandbox,
    )


def _first_page() -> None:
    """Other filters, another list: it starts again at its first page."""
    st.session_state.pop(f"{KEY}_page", None)


@dataclass(frozen=True)
class Listed:
    """What the page read together: where the replies stood just before (what comes after it is
    announced), a page of the list, and the messages no recent blast explains."""

    mark: InboxMark
    found: InboxPage
    unmatched: list[UnmatchedMessage]


def read_replies(filters: InboxFilter) -> Listed:
    """The list to show. While rows are ticked it is the one they were ticked on, statuses read
    again: Streamlit keeps ticks as row positions, so a reply arriving in between would otherwise
    move a tick onto someone else, or clear it under the person's hand. What came since is
    announced, and shown once they ask for it, untick everything, or change the filters or the page."""
    page_number = int(st.session_state.get(f"{KEY}_page", 1))
    read_again = st.session_state.pop(f"{KEY}_read_again", False)
    held = None if read_again else _held_while_ticked((filters, page_number))
    if held is not None:
        return held
    mark = take_mark()  # before the list is read: what comes in after it is announced
    with st.spinner("Finding the replies…"), reading() as s:
        found = inbox_page(s, filters=filters, page=page_number)
    listed = Listed(mark=mark, found=found, unmatched=find_unmatched(filters))
    hold(KEY, (filters, found.page), listed)
    return listed


def _held_while_ticked(view: tuple[object, ...]) -> Listed | None:
    """The list as last shown, when it is the same view and had rows ticked, with where each of
    its people stands now (an undo, or a sale closed in another tab, shows). None when one of
    them can no longer be found: the list is read again and the ticks cleared, saying so."""
    listed: Listed | None = held_while_ticked(KEY, view)
    if listed is None:
        return None
    with reading() as s:
        rows = as_they_stand(s, listed.found.rows)
    return None if rows is None else replace(listed, found=replace(listed.found, rows=rows))


def render_inbox(filters: InboxFilter, listed: Listed) -> None:
    """The count, the list and, for the people ticked, their conversations and the sale button;
    the messages no recent blast explains are said with the count, as they wait below."""
    render_done(KEY)
    found, unmatched = listed.found, len(listed.unmatched)
    today = utcnow().astimezone(settings().timezone).date()
    period = period_words(filters.since, today=today)
    waiting_below = f" {unmatched_words(unmatched)}" if unmatched else ""
    if found.replied == 0:
        narrowed = " match the tags or the search" if filters.tags or filters.search else ""
        st.info(f"No replies {period}{narrowed}.{waiting_below}")
        return
    st.markdown(count_words(found, filters=filters, period=period) + waiting_below)
    if found.total == 0:
        st.info(f"Everyone who replied {period} is marked closed or asked not to be messaged. Switch "
                "off “Only people to follow up” to see them.")
        return
    _render_downloads(filters)
    if found.pages > 1:
        # The list may have shrunk since the page was picked (sales closed): never past its end.
        st.session_state[f"{KEY}_page"] = found.page
        st.columns([1, 5])[0].number_input(f"Page (of {found.pages})", 1, found.pages, key=f"{KEY}_page")
    _render_table(found, filters)


def _render_downloads(filters: InboxFilter) -> None:
    """The whole list (every page) for a spreadsheet, as a sales team often works from one."""
    zone = settings().timezone
    workbook = on_download(lambda s: replies_xlsx(s, filters=filters, zone=zone))
    data = on_download(lambda s: replies_csv(s, filters=filters, zone=zone))
    excel, csv, _ = st.columns([1, 1, 2])
    excel.download_button("Download for Excel", workbook, file_name="replies.xlsx",
                          mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                          key=f"{KEY}_xlsx", icon=":material/table_view:", on_click="ignore")
    csv.download_button("Download as CSV", data, file_name="replies.csv", mime="text/csv",
                        key=f"{KEY}_csv", icon=":material/download:", on_click="ignore")


def _render_table(found: InboxPage, filters: InboxFilter) -> None:
    now, zone = utcnow(), settings().timezone
    frame = pd.DataFrame({
        "When": [when_replied(r.last_reply_at, zone=zone, now=now) for r in found.rows],
        "Name": [r.contact_name or "" for r in found.rows],
        "Number": [r.phone_number for r in found.rows],
        "Reply": [one_of_many(reply_words(r.last_reply), r.replies) for r in found.rows],  # their latest
        "Status": [inbox_status(r) for r in found.rows],
        "Blast": [blast_link(r.blast_id, label) for r, label in zip(found.rows, blast_labels(found.rows),
                                                                     strict=True)],
    })
    ids = [r.recipient_id for r in found.rows]
    with no_toolbar_csv(TABLE_BOX):
        event = st.dataframe(
            frame, hide_index=True, width="stretch", height=height_for(len(frame)),
            column_config=INBOX_COLUMNS, on_select="rerun",
            selection_mode="multi-row",
            key=live_table_key(KEY, view=(filters, found.page), shown=ids),
        )
    chosen = [found.rows[i] for i in event.selection.rows if i < len(found.rows)]
    if not chosen:
        st.caption("Tick people to read everything they wrote, to mark sales closed, or to opt out "
                   "someone who asked not to be messaged.")
        return
    _render_chosen(chosen)


def _render_chosen(chosen: list[InboxRow]) -> None:
    sales = [r.recipient_id for r in chosen if r.status == Status.CLOSED.value]
    # One sale a person a campaign: one recorded on another of its blasts is not recorded again.
    open_ = [r.recipient_id for r in chosen if r.status != Status.CLOSED.value and r.sale_on is None]
    if open_ and st.button(f"Mark {len(open_):,} as closed (sale)", key=f"{KEY}_close", type="primary"):
        with friendly_errors("mark the sales") as done, st.spinner("Recording the sales…"), session() as s:
            recorded = mark_closed(s, recipient_ids=open_)
        if done.ok:
            after_action(KEY, closed_words(recorded, one="person", many="people"), did=recorded.closed > 0)
    if sales and st.button(f"Not a sale: undo {len(sales):,}", key=f"{KEY}_unclose",
                           help="For a sale marked by mistake: back to where they were before it."):
        with friendly_errors("undo the sales") as done, session() as s:
            undone = undo_sales(s, recipient_ids=sales)
        if done.ok:
            after_action(KEY, undone_words(undone, len(sales)))
    render_opt_out(st, [r.phone_number for r in chosen if not r.opted_out], KEY)
    if len(chosen) > SHOWN_CONVERSATIONS:
        st.caption(f"The first {SHOWN_CONVERSATIONS} conversations are shown; the buttons act on all "
                   f"{len(chosen):,} ticked.")
    with reading() as s:
        chats = {row.recipient_id: conversation(s, recipient_id=row.recipient_id)
                 for row in chosen[:SHOWN_CONVERSATIONS]}
    for row in chosen[:SHOWN_CONVERSATIONS]:
        with st.expander(person_label(row), expanded=True):
            st.page_link(
                "pages/blast.py", label=f"Open the blast “{plain(row.blast_name or 'Untitled')}”",
                query_params={"blast": str(row.blast_id)}, icon=":material/campaign:",
            )
            if row.opted_out:
                st.warning("They asked not to be messaged: no blast will send to them.",
                           icon=":material/block:")
            if about := about_words(row):
                st.caption(about)
            digits = "".join(c for c in row.phone_number if c.isdigit())
            # Both open on a phone: its dialer, or WhatsApp.
            st.markdown(f"[Call {plain(row.phone_number)}](tel:+{digits}) or "
                        f"[chat on WhatsApp](https://wa.me/{digits}).")
            render_conversation(chats[row.recipient_id])


def render_conversation(chat: Conversation) -> None:
    """The chat in the order it happened: the message the blast sent them, then their replies."""
    st.write("**What you sent them**")
    if chat.sent_text is None:
        st.caption("The message sent to them was not kept.")
    else:
        if chat.sent_at is not None:
            st.caption(local(chat.sent_at, "%d %b %H:%M"))
        st.html(bubble_html(chat.sent_text))
    render_replies(chat.replies, theirs=True)


def take_mark() -> InboxMark:
    """Where the replies stand as the page reads its list; taken before the list, so a reply
    arriving in between is announced rather than missed."""
    with reading() as s:
        return inbox_mark(s)


def render_new_arrivals(filters: InboxFilter, mark: InboxMark) -> None:
    """Run as a fragment every CHECK_EVERY seconds: says what came in since the list was read,
    with a button that reads it again. Only this small part reruns, so ticked rows, the search
    and open conversations stay as they are until the person asks."""
    with reading() as s:
        new = new_since(s, mark=mark, filters=filters)
    if not (new.replies or new.unmatched):
        return
    with st.container(border=True, horizontal=True, vertical_alignment="center"):
        st.markdown(new_words(new))
        if st.button("Show them", key=f"{KEY}_show_new", icon=":material/refresh:", type="primary",
                     help="Shows the list as it is now. Rows you ticked are unticked if it has changed."):
            st.session_state[f"{KEY}_read_again"] = True  # even with rows ticked
            st.rerun(scope="app")


UNMATCHED_COLUMNS = {
    "When": st.column_config.TextColumn(width=100, help="When the message came, in your time zone."),
    "Name": st.column_config.TextColumn(width=115, help="The name they gave WhatsApp, when it says."),
    "Number": st.column_config.TextColumn(width=115),
    "Message": st.column_config.TextColumn(width=280),
    # Text, not a link: a link column shows a grey "None" for someone no blast ever messaged.
    "Last blast to them": st.column_config.TextColumn(
        width=210, help="The last blast that messaged this number; — when none ever did."
    ),
}


def find_unmatched(filters: InboxFilter) -> list[UnmatchedMessage]:
    """Messages from people no recent blast messaged: a new lead who found the number, or an
    answer to an older blast. Kept by the webhook, matched to no one, so listed apart."""
    if filters.tags:
        return []  # no blast is theirs, so no tag either
    with reading() as s:
        return unmatched_messages(s, filters=filters, numbering=settings().wsapme_ack_numbering)


def render_unmatched(found: list[UnmatchedMessage]) -> None:
    if not found:
        return
    cfg = settings()
    now, zone = utcnow(), cfg.timezone
    with st.expander(f"{_messages(len(found))} from people no recent blast messaged",
                     icon=":material/mark_unread_chat_alt:"):
        st.caption(f"They wrote to your WhatsApp number, but no blast had messaged them in the "
                   f"{cfg.reply_window_hours:g} hours before: someone new who found the number, or an "
                   "answer to an older blast. They are not counted as replies to any blast.")
        frame = pd.DataFrame({
            "When": [when_replied(m.at, zone=zone, now=now) for m in found],
            "Name": [m.name or "" for m in found],
            "Number": [m.phone_number for m in found],
            "Message": [reply_words(m.text) for m in found],
            "Last blast to them": [
                (m.last_blast_name or f"Blast #{m.last_blast_id}") if m.last_blast_id is not None else "—"
                for m in found
            ],
        })
        with no_toolbar_csv(f"{KEY}_unmatched_box"):
            st.dataframe(frame, hide_index=True, width="stretch", column_config=UNMATCHED_COLUMNS,
                         key=f"{KEY}_unmatched")


def inbox_table_key(*, generation: int, filters: InboxFilter, page: int, ids: list[int]) -> str:
    """The table's key (see `table_key`). The list is newest first, so a reply arriving between
    two clicks moves everyone down one row: the people shown are in the key."""
    return table_key(KEY, generation=generation, view=(filters, page), shown=ids)


def blast_labels(rows: list[InboxRow]) -> list[str | None]:
    """Each row's blast by its name, with its day when another blast listed has the same name
    (the same campaign sent again: "Raya promo · 16 Nov")."""
    ids_by_name: dict[str | None, set[int]] = {}
    for r in rows:
        ids_by_name.setdefault(r.blast_name, set()).add(r.blast_id)
    return [
        f"{r.blast_name or f'Blast #{r.blast_id}'} · {local(r.blast_date, '%d %b')}"
        if len(ids_by_name[r.blast_name]) > 1 and r.blast_date is not None else r.blast_name
        for r in rows
    ]


def blast_link(blast_id: int, name: str | None) -> str:
    return f"/blast?blast={blast_id}#{quote(name or f'Blast #{blast_id}', safe='')}"


def inbox_status(row: InboxRow) -> str:
    """Where a row's person stands, in the list's Status column."""
    if row.opted_out:
        return OPTED_OUT
    return sale_elsewhere(row) or status_word(row.status)


def about_words(row: InboxRow) -> str:
    """ "Campaign **CNY** · Agent: Farid · Branch: Ipoh": their campaign, and their cells in the
    uploaded list's own columns (whose customer they are, where); and where their sale is
    recorded, when on another blast of the campaign."""
    parts = [f"Campaign **{plain(row.blast_tag)}**"] if row.blast_tag else []
    if sale_elsewhere(row):
        parts.append(f"Sale recorded on blast #{row.sale_on}")
    parts += [f"{plain(heading)}: {plain(value)}" for heading, value in row.own]
    return " · ".join(parts)


def person_label(row: InboxRow) -> str:
    name = plain(row.contact_name) if row.contact_name else ""
    return f"{name} · {row.phone_number}" if name else row.phone_number


def when_replied(moment: dt.datetime, *, zone: dt.tzinfo, now: dt.datetime) -> str:
    """"just now", "25 min ago", "2 h ago" within a day; then "yesterday 14:05", "3 Mar, 14:05"."""
    seconds = (now - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    local, today = moment.astimezone(zone), now.astimezone(zone).date()
    if local.date() == today - dt.timedelta(days=1):
        return f"yesterday {local:%H:%M}"
    year = f" {local.year}" if local.year != today.year else ""
    return f"{local.day} {local:%b}{year}, {local:%H:%M}"


def period_words(since: dt.date, *, today: dt.date) -> str:
    days = (today - since).days + 1
    if days <= 1:
        return "today"
    if days <= 31:
        return f"in the last {days} days"
    return f"since {since.day} {since:%b %Y}"


def count_words(found: InboxPage, *, filters: InboxFilter, period: str) -> str:
    """"12 people replied in the last 7 days, 9 to follow up.", with what narrows it."""
    who = plural(found.replied, "person", "people")
    if filters.search:
        who += f" matching “{plain(filters.search)}”"
    to = f" to blasts tagged {' or '.join(plain(t) for t in filters.tags)}" if filters.tags else ""
    said = f"**{who}** replied{to} {period}, **{found.to_follow_up:,} to follow up**."
    # The list and its downloads have a row a message answered: say so when that is more rows
    # than people, or the two numbers cannot be matched.
    listed = found.to_follow_up if filters.only_open else found.replied
    if found.total > listed:
        said += (f" Someone who answered more than one blast has a row for each: "
                 f"{plural(found.total, 'row', 'rows')} below.")
    return said


def _messages(count: int) -> str:
    more = "+" if count >= UNMATCHED_SHOWN else ""
    return f"{count:,}{more} {'message' if count == 1 else 'messages'}"


def unmatched_words(count: int) -> str:
    """Said beside the count, as these are not in it: "**1 message** from someone no recent
    blast messaged is waiting below." """
    who, waits = ("someone", "is") if count == 1 else ("people", "are")
    return f"**{_messages(count)}** from {who} no recent blast messaged {waits} waiting below."


def new_words(new: NewSince) -> str:
    """ "**2 new replies** since this list was loaded.", with the messages no blast explains."""
    parts = []
    if new.replies:
        parts.append(f"**{plural(new.replies, 'new reply', 'new replies')}**")
    if new.unmatched:
        parts.append(f"**{plural(new.unmatched, 'new message')}** from "
                     f"{'someone' if new.unmatched == 1 else 'people'} no recent blast messaged")
    return " and ".join(parts) + " since this list was loaded."
