"""A synthetic four-year history of blasts: tags, follow-up stages, funnel statuses and timestamps.

Deterministic for a given scale and seed, so the SQLite and PostgreSQL copies hold the
same rows and the same figures can be compared across runs. Generated with numpy a
batch of blasts at a time; rows come out as tuples of text and numbers that both
databases load as they are (timestamps as ISO text in UTC).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

VERSION = 1  # bump when the rows change: cached databases are keyed by it
YEARS = 4
KL_OFFSET = np.timedelta64(8, "h")  # Asia/Kuala_Lumpur has no daylight saving
AVERAGE_BLAST = 500
DEVICE = "5850"

# (tag, weight, months it runs in; None = all year)
TAGS: tuple[tuple[str, float, tuple[int, ...] | None], ...] = (
    ("Product Launch", 8, None),
    ("Promo Campaign", 14, None),
    ("Flash Sale", 9, None),
    ("New Arrival", 7, None),
    ("Loyalty Rewards", 5, None),
    ("Reactivation", 4, None),
    ("Webinar Invite", 3, None),
    ("Payday Sale", 6, None),
    ("CNY Sale", 12, (1, 2)),
    ("Raya Promo", 14, (3, 4, 5)),
    ("Merdeka Sale", 10, (8, 9)),
    ("Deepavali", 10, (10, 11)),
    ("11.11 Sale", 16, (11,)),
    ("Year-End Sale", 12, (12,)),
)
STAGES = ("Initial", "Follow-up 1", "Follow-up 2", "Follow-up 3")
STAGE_WEIGHTS = (0.58, 0.24, 0.12, 0.06)
FIRST_NAMES = ("Ahmad", "Siti", "Nur", "Muhammad", "Tan", "Lim", "Wong", "Raj", "Priya", "Aisyah",
               "Chong", "Kumar", "Farah", "Mei Ling", "Hafiz", "Devi", "Amir", "Nurul", "Jason", "Kavitha")
LAST_NAMES = ("bin Abdullah", "binti Ismail", "Wei Ming", "Ah Kow", "a/l Muthu", "Hassan", "Kaur",
              "Yusof", "Chee Keong", "Ramasamy", "Rahman", "Lee", "Ng", "Osman")
REPLIES = ("Berapa harga?", "Nak order 2", "Still available?", "Boleh COD?", "Ok noted", "Size M ada?",
           "Terima kasih", "Can deliver to Penang?", "Interested", "STOP", "Hantar katalog", "👍")
FAILURES = ("The number is not on WhatsApp", "Invalid phone number", "Device rejected the message")
UNKNOWN_ERROR = ("The sender stopped before the gateway's answer was saved. The message may or may "
                 "not have been delivered, so it was not sent again.")

RECIPIENT_COLUMNS = (
    "id", "blast_id", "phone_number", "message_id", "message_text", "status", "message_timestamp",
    "message_c2s_timestamp", "read_timestamp", "replied_at", "closed_at", "wsapme_message_data",
    "created_at", "updated_at", "contact_name", "csv_line", "sent_at", "delivered_at", "gateway_status",
    "reply_text", "error", "attempts", "poll_failures",
)
BLAST_COLUMNS = (
    "id", "blast_tag", "blast_date", "blast_time", "follow_up_stage", "total_recipients", "created_at",
    "updated_at", "name", "state", "message_template", "device", "started_at", "finished_at",
    "parent_blast_id", "source_filename", "skipped_opted_out",
)
HISTORY_COLUMNS = ("recipient_id", "old_status", "new_status", "changed_at", "source", "metadata")


@dataclass(frozen=True)
class Blasts:
    """The blasts' own columns, as arrays indexed by blast number (id - 1)."""

    dates: np.ndarray  # datetime64[us], UTC
    tags: list[str]
    stages: list[str]
    sizes: np.ndarray
    parents: list[int | None]
    states: list[str]
    quality: np.ndarray  # how well each blast's audience responds, around 1.0

    def __len__(self) -> int:
        return len(self.sizes)


@dataclass
class Batch:
    """Rows ready to load: blasts, their recipients, and the recipients' status history."""

    blasts: list[tuple]
    recipients: list[tuple]
    history: list[tuple]


def blast_count(scale: int) -> int:
    return max(2, round(scale / AVERAGE_BLAST))


def make_blasts(scale: int, *, end: dt.date, seed: int = 2026) -> Blasts:
    """When each blast went out, under which tag and stage, and to how many people."""
    rng = np.random.default_rng(seed)
    n = blast_count(scale)
    start = np.datetime64(end - dt.timedelta(days=365 * YEARS), "D")
    days = np.sort(start + rng.integers(0, 365 * YEARS, n).astype("timedelta64[D]"))
    # Office hours in Kuala Lumpur: 09:00-17:00 local, stored in UTC.
    minutes = rng.integers(9 * 60, 17 * 60, n).astype("timedelta64[m]")
    dates = (days.astype("datetime64[m]") + minutes - KL_OFFSET).astype("datetime64[us]")
    months = dates.astype("datetime64[M]").astype(int) % 12 + 1
    tags = [_tag_for(int(m), rng) for m in months]
    parents, stages = _follow_ups(tags, [str(s) for s in rng.choice(STAGES, size=n, p=STAGE_WEIGHTS)])
    shrink = np.array([0.6 ** STAGES.index(s) for s in stages])
    sizes = _exact_sizes(rng.lognormal(0.0, 0.45, n) * shrink, scale)
    states = ["completed"] * n
    for i in rng.choice(n - 1, size=max(1, n // 100), replace=False):
        states[int(i)] = "cancelled"
    states[-1] = "sending"
    quality = rng.lognormal(0.0, 0.25, n)
    return Blasts(dates, tags, stages, sizes, parents, states, quality)


def _tag_for(month: int, rng: np.random.Generator) -> str:
    names = [t for t, _, months in TAGS if months is None or month in months]
    weights = np.array([w for t, w, months in TAGS if months is None or month in months])
    return str(rng.choice(names, p=weights / weights.sum()))


def _follow_ups(tags: list[str], stages: list[str]) -> tuple[list[int | None], list[str]]:
    """Each follow-up's parent, the latest earlier blast of its tag one stage before; a
    follow-up with no such blast becomes an initial blast."""
    latest: dict[tuple[str, str], int] = {}
    parents: list[int | None] = []
    final: list[str] = []
    for i, (tag, stage) in enumerate(zip(tags, stages, strict=True)):
        level = STAGES.index(stage)
        parent = latest.get((tag, STAGES[level - 1])) if level else None
        stage = stage if parent is not None else "Initial"
        parents.append(None if parent is None else parent + 1)  # ids start at 1
        final.append(stage)
        latest[tag, stage] = i
    return parents, final


def _exact_sizes(weights: np.ndarray, scale: int) -> np.ndarray:
    """Sizes in proportion to `weights` that add up to exactly `scale`."""
    exact = weights / weights.sum() * (scale - len(weights))
    sizes = 1 + np.floor(exact).astype(np.int64)
    short = scale - int(sizes.sum())
    sizes[np.argsort(exact - np.floor(exact))[::-1][:short]] += 1
    return sizes


def batches(blasts: Blasts, *, per_batch: int = 100, seed: int = 2026) -> Iterator[Batch]:
    """Every row of the history, a few blasts at a time, recipient ids counting from 1."""
    first_id = 1
    for start in range(0, len(blasts), per_batch):
        batch = Batch([], [], [])
        for b in range(start, min(start + per_batch, len(blasts))):
            rng = np.random.default_rng([seed, b])
            _blast_rows(blasts, b, first_id, rng, batch)
            first_id += int(blasts.sizes[b])
        yield batch


def _blast_rows(blasts: Blasts, b: int, first_id: int, rng: np.random.Generator, batch: Batch) -> None:
    size, date, tag = int(blasts.sizes[b]), blasts.dates[b], blasts.tags[b]
    fates = _fates(size, blasts.states[b], float(blasts.quality[b]), rng)
    times = _times(size, date, fates, rng)
    template = f"Hi {{name}}! {tag}: up to 50% off this week only. Reply to order 🛍️"
    batch.recipients.extend(_recipient_rows(b, first_id, size, template, fates, times, rng))
    batch.history.extend(_history_rows(first_id, fates, times))
    finished = _iso(times["last"].max()) if blasts.states[b] == "completed" else None
    stage = blasts.stages[b]
    local = (date + KL_OFFSET).astype(dt.datetime)
    batch.blasts.append((
        b + 1, tag, _iso(date), f"{local:%H:%M}:00.000000", stage, size,
        _iso(date - np.timedelta64(40, "m")), finished or _iso(date), f"{tag} {local:%b %Y} · {stage}",
        blasts.states[b], template, DEVICE, _iso(date), finished, blasts.parents[b],
        f"{tag.lower().replace(' ', '-')}-{local:%Y%m%d}.csv", int(rng.integers(0, 4)),
    ))


# Where each recipient's message got to: an index into FATES, from the first status to the last.
FATES = ("QUEUED", "SENDING", "FAILED", "UNKNOWN", "PENDING", "SERVER_ACK", "DELIVERY_ACK", "READ_ACK",
         "REPLIED", "CLOSED")
_RANK_OF_FATE = np.array([0, 0, 0, 0, 1, 2, 3, 4, 5, 6])


def _fates(size: int, state: str, quality: float, rng: np.random.Generator) -> np.ndarray:
    """Final statuses, as a real funnel thins out: most delivered, most of those read, few reply."""
    u = rng.random((5, size))
    q = quality
    fate = np.full(size, FATES.index("SERVER_ACK"))
    fate[u[0] < 0.004] = FATES.index("PENDING")
    delivered = u[0] >= 0.07
    fate[delivered] = FATES.index("DELIVERY_ACK")
    read = delivered & (u[1] < min(0.95, 0.68 * q))
    fate[read] = FATES.index("READ_ACK")
    replied = read & (u[2] < min(0.6, 0.14 * q))
    fate[replied] = FATES.index("REPLIED")
    fate[replied & (u[3] < min(0.7, 0.22 * q))] = FATES.index("CLOSED")
    fate[u[4] < 0.025] = FATES.index("FAILED")
    fate[(u[4] >= 0.025) & (u[4] < 0.028)] = FATES.index("UNKNOWN")
    if state == "sending":  # still going out: the tail is queued, one in flight
        unsent = size // 3
        fate[size - unsent:] = FATES.index("QUEUED")
        fate[size - unsent] = FATES.index("SENDING")
    elif state == "cancelled":
        fate[size // 2:] = FATES.index("QUEUED")
    return fate


def _times(
    size: int, date: np.datetime64, fate: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """When each stage was reached; NaT where it was not. A reply with read receipts off
    gives the read stage the reply's time, as the status engine does."""
    rank = _RANK_OF_FATE[fate]
    sent_ok = rank >= 1
    gaps = rng.uniform(8, 15, size) + np.where(np.arange(size) % 50 == 49, 300, 0)
    sent = date + (np.cumsum(gaps) * 1e6).astype("timedelta64[us]")
    delivered = sent + (rng.exponential(20, size) * 1e6).astype("timedelta64[us]")
    read = delivered + (rng.lognormal(np.log(1800), 1.4, size) * 1e6).astype("timedelta64[us]")
    receipts_off = rng.random(size) < 0.08
    replied = read + (rng.lognormal(np.log(900), 1.2, size) * 1e6).astype("timedelta64[us]")
    read = np.where(receipts_off & (rank >= 5), replied, read)
    closed = replied + (rng.lognormal(np.log(2 * 86400), 0.8, size) * 1e6).astype("timedelta64[us]")
    nat = np.datetime64("NaT", "us")
    times = {
        "sent": np.where(sent_ok, sent, nat),
        "delivered": np.where(rank >= 3, delivered, nat),
        "read": np.where(rank >= 4, read, nat),
        "replied": np.where(rank >= 5, replied, nat),
        "closed": np.where(rank >= 6, closed, nat),
        "tried": sent,  # failures and unknowns were tried at their turn too
    }
    last = times["tried"].copy()
    for key in ("delivered", "read", "replied", "closed"):
        last = np.where(np.isnat(times[key]), last, times[key])
    times["last"] = np.where(rank == 0, sent, last)
    times["last"] = np.where(fate <= FATES.index("SENDING"), np.datetime64(date, "us"), times["last"])
    return times


def _recipient_rows(b: int, first_id: int, size: int, template: str, fate: np.ndarray,
                    times: dict[str, np.ndarray], rng: np.random.Generator) -> Iterator[tuple]:
    """The rows, built a column at a time: a million per-row calls would take a minute."""
    customers = _customers(b, size, rng).tolist()
    ids = list(range(first_id, first_id + size))
    statuses = [FATES[f] for f in fate.tolist()]
    phones = [_phone(c) for c in customers]
    names = [_name(c) for c in customers]
    iso = {key: _iso_array(values) for key, values in times.items()}
    sent_epoch = _epoch_array(times["sent"])
    message_ids = [f"3EB0{(rid * 0x9E3779B97F4A7C15) % 2**64:016X}" if at else None
                   for rid, at in zip(ids, iso["sent"], strict=True)]
    replies = [REPLIES[i] for i in rng.integers(0, len(REPLIES), size).tolist()]
    failures = [FAILURES[i] for i in rng.integers(0, len(FAILURES), size).tolist()]
    created = _iso(times["tried"][0] - np.timedelta64(40, "m"))
    texts = [None if st == "QUEUED" else template.replace("{name}", n)
             for st, n in zip(statuses, names, strict=True)]
    return zip(
        ids, [b + 1] * size, phones, message_ids, texts,
        statuses, sent_epoch, _epoch_array(times["delivered"]), iso["read"], iso["replied"], iso["closed"],
        [_message_data(m, p, e) for m, p, e in zip(message_ids, phones, sent_epoch, strict=True)],
        [created] * size, iso["last"], names, list(range(2, size + 2)), iso["sent"], iso["delivered"],
        ["SERVER_ACK" if m else None for m in message_ids],
        [r if st in ("REPLIED", "CLOSED") else None for r, st in zip(replies, statuses, strict=True)],
        [f if st == "FAILED" else UNKNOWN_ERROR if st == "UNKNOWN" else None
         for f, st in zip(failures, statuses, strict=True)],
        [0 if st == "QUEUED" else 1 for st in statuses], [0] * size,
        strict=True,
    )


_WEBHOOK_EVENT = {status: json.dumps({"status": status}) for status in FATES}


def _history_rows(first_id: int, fate: np.ndarray, times: dict[str, np.ndarray]) -> Iterator[tuple]:
    """The send's own change, then the webhook's change to the final status."""
    tried = _iso_array(times["tried"])
    last = _iso_array(times["last"])
    for i, f in enumerate(fate.tolist()):
        status = FATES[f]
        if status in ("QUEUED", "SENDING"):
            continue
        first = status if status in ("FAILED", "UNKNOWN", "PENDING") else "SERVER_ACK"
        yield (first_id + i, "SENDING", first, tried[i], "send", None)
        if first != status:
            yield (first_id + i, first, status, last[i], "webhook", _WEBHOOK_EVENT[status])


def _customers(b: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct customers for one blast, from a pool that many blasts share (people get
    several campaigns): a random walk with a stride coprime to the pool size."""
    pool = 250_007  # prime, so any stride below it visits every customer once
    stride = int(rng.integers(1, pool))
    return (int(rng.integers(0, pool)) + np.arange(size, dtype=np.int64) * stride) % pool


def _phone(customer: int) -> str:
    prefix = ("12", "13", "16", "17", "18", "19", "11")[customer % 7]
    digits = 8 if prefix == "11" else 7
    return f"+60{prefix}{(customer * 7_919) % 10**digits:0{digits}d}"


def _name(customer: int) -> str:
    return f"{FIRST_NAMES[customer % len(FIRST_NAMES)]} {LAST_NAMES[(customer // 7) % len(LAST_NAMES)]}"


def _message_data(message_id: str | None, phone: str, sent: int | None) -> str | None:
    # Formatted by hand: json.dumps a million times is most of a build.
    if message_id is None:
        return None
    return (f'{{"key": {{"remoteJid": "{phone[1:]}@s.whatsapp.net", "fromMe": true, "id": "{message_id}"}}, '
            f'"messageTimestamp": {sent}, "status": "PENDING"}}')


def _epoch_array(values: np.ndarray) -> list[int | None]:
    seconds = values.astype("datetime64[s]").astype(np.int64).astype(object)
    seconds[np.isnat(values)] = None
    return seconds.tolist()


def _iso(value: np.datetime64) -> str:
    return str(np.datetime_as_string(value.astype("datetime64[us]"), unit="us")).replace("T", " ")


def _iso_array(values: np.ndarray) -> list[str | None]:
    text = np.char.replace(np.datetime_as_string(values, unit="us"), "T", " ").astype(object)
    text[np.isnat(values)] = None
    return text.tolist()


def build_end_date() -> dt.date:
    """The history ends today (UTC), so "the last 30 days" holds recent blasts."""
    return dt.datetime.now(dt.UTC).date()


def describe(blasts: Blasts) -> str:
    span = blasts.dates[-1] - blasts.dates[0]
    years = span.astype("timedelta64[D]").astype(int) / 365
    return (f"{int(blasts.sizes.sum()):,} recipients in {len(blasts):,} blasts over {years:.1f} years, "
            f"{len(set(blasts.tags))} tags, {len(set(blasts.stages))} follow-up stages")

