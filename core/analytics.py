"""Beyond the funnel: trends by day, tags compared fairly, response times, when people answer."""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import BigInteger, Integer, and_, any_, case, cast, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from core.funnel import (
    READ,
    REPLIED,
    FunnelFilter,
    apply_filter,
    funnel_of,
    hour_counts,
    of_selected_blasts,
    sent_by_hour,
    status_counts_by_tag,
    statuses_reaching,
)
from core.models import Blast, BlastRecipient, OptOut, RecipientReply
from core.statuses import Stage
from core.webhook.replies import normalise_words

Z_95 = 1.959964
# Recent behaviour, and plenty for a median: the median of 10,000 lies within one percentile
# of the whole's 19 times in 20. 50,000 took five times as long to find and sort at a
# million recipients (0.6-1 s), for no figure a person would read differently.
RESPONSE_SAMPLE = 10_000


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval for a rate: honest for small blasts, unlike ± on the raw rate."""
    if trials == 0:
        return 0.0, 0.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def _to_local(buckets: pd.Series, zone: str) -> pd.Series:
    # The hour rollups' UTC 'YYYY-MM-DD HH' text.
    return pd.to_datetime(buckets, format="ISO8601", utc=True).dt.tz_convert(zone)


def daily_trend(session: Session, *, filters: FunnelFilter) -> pd.DataFrame:
    """Per local day of sending: messages sent, and how many of them were read and replied to.

    From the hour rollups (migration 0004), summed by hour in the database
    (`core.funnel.sent_by_hour`); here the hours become the team's days.
    """
    frame = pd.DataFrame(sent_by_hour(session, filters=filters), columns=["hour", "sent", "read", "replied"])
    if frame.empty:
        return pd.DataFrame(columns=["day", "sent", "read", "replied", "read_rate", "reply_rate"])
    frame["day"] = _to_local(frame["hour"], filters.timezone).dt.date
    daily = frame.groupby("day", as_index=False)[["sent", "read", "replied"]].sum()
    daily["read_rate"] = 100.0 * daily["read"] / daily["sent"]
    daily["reply_rate"] = 100.0 * daily["replied"] / daily["sent"]
    return daily


def activity_by_hour(session: Session, *, filters: FunnelFilter) -> pd.DataFrame:
    """Reads and replies by local weekday and hour of day: when people answer (from the hour
    rollups, like the trend)."""
    frame = pd.DataFrame(hour_counts(session, filters=filters, what=(READ, REPLIED)),
                         columns=["what", "hour", "status", "n"])
    if frame.empty:
        return pd.DataFrame(columns=["what", "weekday", "hour_of_day", "n"])
    local = _to_local(frame["hour"], filters.timezone)
    frame["weekday"] = local.dt.day_name().str[:3]
    frame["hour_of_day"] = local.dt.hour
    return frame.groupby(["what", "weekday", "hour_of_day"], as_index=False)["n"].sum()


@dataclass(frozen=True)
class ResponseTimes:
    read_median: dt.timedelta | None
    read_p90: dt.timedelta | None
    reply_median: dt.timedelta | None
    reply_p90: dt.timedelta | None
    sampled: bool


def _microseconds_between(
    session: Session, earlier: ColumnElement, later: ColumnElement
) -> ColumnElement[int]:
    """`later - earlier` in whole microseconds, worked out by the database.

    Exact, as the timedelta arithmetic it replaces was: turning 100,000 timestamps into
    Python datetimes cost more than finding the rows. SQLite's text holds whole seconds
    in the first 19 characters and six digits of fraction after the dot.
    """
    if session.get_bind().dialect.name == "postgresql":
        seconds = func.extract("epoch", later) - func.extract("epoch", earlier)
        return cast(seconds * 1_000_000, BigInteger)
    # The fraction is cut off before strftime, which would round .9995 up to the next second.
    whole = cast(func.strftime("%s", func.substr(later, 1, 19)), Integer) - cast(
        func.strftime("%s", func.substr(earlier, 1, 19)), Integer
    )
    fraction = cast(func.substr(later, 21), Integer) - cast(func.substr(earlier, 21), Integer)
    return whole * 1_000_000 + fraction


# Linear interpolation between the two nearest sorted values, as pandas' and numpy's default
# quantile does; in tenths, so that the positions are whole-number arithmetic in SQL and Python.
_MEDIAN, _P90 = 5, 9


def _sorted_gaps_needed(
    session: Session, column: ColumnElement, filters: FunnelFilter
) -> tuple[int, int, dict[int, int]]:
    """From the sample of gaps between sending and `column`: its size, how many of its gaps
    are not negative (n), and the few of those n gaps, by ascending position from 0, that
    the median and 90th percentile lie between.

    One statement of window functions, the same on SQLite and PostgreSQL: SQLite has no
    percentile_cont, and one code path is one path to test. The database numbers the
    sample's gaps in ascending order and counts the negative ones, which all come first; a
    gap's position among the others is its number less that count. Besides the wanted
    positions the first row always comes back, so that the sample's size is known even when
    no gap is kept (a full sample of negative gaps is still a full sample).
    """
    sample = of_selected_blasts(
        select(_microseconds_between(session, BlastRecipient.sent_at, column).label("gap"))
        .select_from(BlastRecipient)
        .where(BlastRecipient.sent_at.is_not(None), column.is_not(None), _their_own_time(column))
        .order_by(BlastRecipient.id.desc())
        .limit(RESPONSE_SAMPLE),
        BlastRecipient.blast_id, filters, session.get_bind().dialect.name,
    ).subquery()
    numbered = select(
        sample.c.gap,
        func.row_number().over(order_by=sample.c.gap).label("number"),
        func.count().over().label("size"),
        func.count(case((sample.c.gap < 0, 1))).over().label("negatives"),
    ).subquery()
    kept = numbered.c.size - numbered.c.negatives
    position = numbered.c.number - numbered.c.negatives - 1
    wanted = [(kept - 1) * tenths // 10 + step for tenths in (_MEDIAN, _P90) for step in (0, 1)]
    query = select(numbered.c.gap, position.label("position"), numbered.c.size, kept.label("kept")).where(
        or_(numbered.c.number == 1, position.in_(wanted))
    )
    rows = session.execute(query).all()
    if not rows:
        return 0, 0, {}
    gaps = {row.position: row.gap for row in rows if row.position >= 0}
    return rows[0].size, rows[0].kept, gaps


def _their_own_time(column: ColumnElement) -> ColumnElement[bool]:
    """The stage's time is the person's, not one a later event stamped it with (a skipped
    stage takes the later event's time): closing someone who never read or replied stamps
    those stages with the close's time, and a reply from someone whose read receipts are
    off stamps the read with the reply's. They had read it by then, but when is not known,
    and counting the reply's time would make reading look slower than it is."""
    own = or_(BlastRecipient.closed_at.is_(None), column != BlastRecipient.closed_at)
    if column is BlastRecipient.read_timestamp:
        own = and_(own, or_(BlastRecipient.replied_at.is_(None), column != BlastRecipient.replied_at))
    return own


def _interpolated(gaps: dict[int, int], n: int, tenths: int) -> float:
    """The quantile at tenths/10 of n sorted values: x[lo] + (h - lo) * (x[lo + 1] - x[lo]),
    where h = (n - 1) * tenths / 10 and lo is h rounded down."""
    lo, rest = divmod((n - 1) * tenths, 10)
    value = float(gaps[lo])
    if lo + 1 < n:
        value += rest / 10 * (gaps[lo + 1] - gaps[lo])
    return value


def response_times(session: Session, *, filters: FunnelFilter) -> ResponseTimes:
    """Median and 90th percentile of time from sending to reading, and to replying, over
    the most recent RESPONSE_SAMPLE messages whose person got that far (a sale closed by hand
    reads and replies for no one, nor does a reply read for someone whose receipts are off:
    see `_their_own_time`); negative gaps (a clock
    that put the read or reply before the send) are dropped after sampling, and `sampled`
    says whether either sample was full.

    The database works out the gaps, sorts them and sends back only the few on either side
    of the median and the 90th percentile, with the counts; the linear interpolation between
    them (pandas' default) is done here. Moving every gap of both samples into Python for
    pandas had taken about half of the call's time.
    """
    results: dict[str, tuple[dt.timedelta | None, dt.timedelta | None]] = {}
    sampled = False
    for label, column in (("read", BlastRecipient.read_timestamp), ("reply", BlastRecipient.replied_at)):
        size, n, gaps = _sorted_gaps_needed(session, column, filters)
        sampled = sampled or size == RESPONSE_SAMPLE
        if n == 0:
            results[label] = (None, None)
        else:
            median, p90 = (_interpolated(gaps, n, tenths) / 1e6 for tenths in (_MEDIAN, _P90))
            results[label] = (dt.timedelta(seconds=median), dt.timedelta(seconds=p90))
    return ResponseTimes(*results["read"], *results["reply"], sampled=sampled)


# The tag comparison's name for opting out by reply, beside the stages' names.
OPTED_OUT = "opted_out"
# How the webhook lists a number whose reply was an opt-out word (core.webhook.inbox).
_LISTED_BY_REPLY = "webhook"
_REPLIED_OR_LATER = frozenset(statuses_reaching(Stage.REPLIED.min_rank))


def _full_width(text: str) -> str:
    """ASCII letters and digits as a full-width keyboard types them: "stop" → "ｓｔｏｐ"."""
    return "".join(chr(ord(ch) + 0xFEE0) if ch.isascii() and ch.isalnum() else ch for ch in text)


def opted_out_by_reply(session: Session, *, filters: FunnelFilter) -> dict[str | None, int]:
    """Recipients of the selected blasts whose reply was an opt-out word ("STOP", "BERHENTI"),
    by campaign tag. Each is counted as replied in the funnel too.

    The webhook lists the number with the word said (`OptOut.keyword`: the reply as
    `normalise_words` leaves it, upper-cased); the recipient's reply that reads as that word is
    the one that opted them out, not an earlier "Berapa harga?" to another blast. The words
    are compared here as the webhook compared them, punctuation and emoji aside.

    No rollup counts these, so the cost grows with the replies, never with every recipient:
    the database keeps the replies holding a part of a listed word (a reply that reads as
    "TAK NAK" holds "tak") and fetches only their recipients, by id; SQLite, for a few
    blasts, reads those blasts' recipients by `idx_blast_id_status` instead. At a million
    recipients, 105,000 replies and 11,000 numbers listed by reply, on a busy two-core
    machine: for all time 0.25-0.4 s on SQLite and 0.4 s on PostgreSQL; for a month of
    blasts 20-50 ms on SQLite, 0.3 s on PostgreSQL, which reads the same replies either way.
    """
    listed = select(OptOut.keyword).where(OptOut.source == _LISTED_BY_REPLY, OptOut.keyword.is_not(None))
    words = {keyword for keyword in session.scalars(listed.distinct()) if keyword.strip()}
    if not words:
        return {}
    # SQLite lower-cases only A-Z: a reply typing another letter in capitals ("ARRÊT") is
    # missed. The default words are all A-Z.
    parts = {max(word.lower().split(), key=len) for word in words}
    # A phone's Chinese keyboard types "ＳＴＯＰ" (full width), which the webhook reads as STOP,
    # and capitalises the first letter ("Ｓｔｏｐ"). Neither database lower-cases those letters.
    parts |= {_full_width(spelled) for part in parts for spelled in (part, part.upper(), part.capitalize())}
    may_say = or_(*(RecipientReply.text.icontains(part, autoescape=True) for part in sorted(parts)))
    query = (
        select(BlastRecipient.id, BlastRecipient.status, Blast.blast_tag, OptOut.keyword, RecipientReply.text)
        .select_from(RecipientReply)
        .join(BlastRecipient, BlastRecipient.id == RecipientReply.recipient_id)
        .join(OptOut, OptOut.phone_number == BlastRecipient.phone_number)
        .join(Blast, Blast.id == BlastRecipient.blast_id)
        .where(may_say, OptOut.source == _LISTED_BY_REPLY)
    )
    if session.get_bind().dialect.name == "postgresql":
        # Joined, PostgreSQL read every recipient to hash them (1.4 s for all time); handed
        # the ids as an array, as core.funnel hands it blast ids, it fetches just those.
        ids = select(RecipientReply.recipient_id).where(may_say).scalar_subquery()
        query = query.where(BlastRecipient.id == any_(func.array(ids)))
    opted_out: dict[int, str | None] = {}
    # The status is checked here: in SQL, SQLite with no statistics read every replied
    # recipient through idx_status to find these few.
    for recipient_id, status, tag, keyword, text in session.execute(apply_filter(query, filters)):
        if status in _REPLIED_OR_LATER and normalise_words(text).upper() == keyword:
            opted_out[recipient_id] = tag
    return dict(Counter(opted_out.values()))


def tag_comparison(
    session: Session, *, filters: FunnelFilter, opted_out: Mapping[str | None, int] | None = None
) -> pd.DataFrame:
    """Each tag's read, reply, close and opt-out rates of sent messages, with 95% Wilson
    intervals, and how many opted out by replying (`opted_out`).

    A reply that was an opt-out word counts as opted out, not as replied: a campaign that
    made people send STOP has not done well. (The funnel counts it as a reply: it is one.)
    The rest from the per-blast status rollups, like the funnel: a few rows per blast, not
    one per recipient. Tags with equal numbers sent are listed by name. `opted_out`: the
    counts `opted_out_by_reply` gives, when the caller has them already.
    """
    if opted_out is None:
        opted_out = opted_out_by_reply(session, filters=filters)
    records = []
    for tag, counts in status_counts_by_tag(session, filters=filters).items():
        totals = funnel_of(counts)
        out = opted_out.get(tag, 0)
        record: dict[str, object] = {"tag": tag or "(no tag)", "sent": totals.sent, OPTED_OUT: out}
        reached = {Stage.READ.value: totals.read, Stage.REPLIED.value: max(0, totals.replied - out),
                   Stage.CLOSED.value: totals.closed, OPTED_OUT: out}
        for name, n in reached.items():
            low, high = wilson_interval(n, totals.sent)
            record[f"{name}_rate"] = 100.0 * n / totals.sent if totals.sent else 0.0
            record[f"{name}_low"], record[f"{name}_high"] = 100.0 * low, 100.0 * high
        records.append(record)
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(records).sort_values(["sent", "tag"], ascending=[False, True])
    return frame.reset_index(drop=True)
