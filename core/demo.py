"""Demo history: weeks of blasts with tags and follow-ups, so a first look shows real charts.

Each message's fate is drawn from the gateway simulator's own behaviour model, so the demo
funnel has the same shape the sandbox produces live.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from core.config import DEMO_DEVICE
from core.models import Blast, BlastRecipient, BlastState, RecipientReply, StatusHistory
from core.opt_outs import add_opt_outs
from core.simulator.plan import REALISTIC, Proportions, Timing, plan_message
from core.statuses import RANK, STAGE_TIMESTAMP_COLUMN, Status, stages_between
from core.webhook.replies import DEFAULT_OPT_OUT_WORDS, opt_out_keyword

TAGS = {
    "Raya Promo": 1.15,
    "CNY Sale": 1.0,
    "Merdeka Deal": 0.85,
    "New Arrivals": 0.7,
    "Year-End Clearance": 1.3,
}
NAMES = (
    "Aisyah",
    "Nurul",
    "Siti",
    "Farah",
    "Hafiz",
    "Amir",
    "Wei Ling",
    "Mei Ling",
    "Jun Hao",
    "Kumar",
    "Priya",
    "Ravi",
    "Lakshmi",
    "Daniel",
    "Sarah",
    "Faizal",
    "Zul",
    "Hui Min",
)
TEMPLATES = {
    "Initial": "Hi {name}! *{tag}* is on now: up to 30% off until Sunday. Reply YES to order 🛍️",
    "Follow-up 1": "Hi {name}, just checking: still keen on our *{tag}*? Only 2 days left!",
    "Follow-up 2": "Last call {name}! *{tag}* ends tonight at midnight ⏰",
}
# Real people take hours, not the sandbox's minutes: stretch the simulator's delays.
DEMO_TIMING = Timing(
    answer=REALISTIC.answer,
    server_ack=REALISTIC.server_ack,
    delivery=REALISTIC.delivery,
    read=type(REALISTIC.read)(60.0, 3 * 3600.0, 20 * 3600.0),
    reply=type(REALISTIC.reply)(120.0, 2 * 3600.0, 24 * 3600.0),
    duplicate_gap=0.0,
    retry_base=0.0,
    retry_cap=0.0,
)
SEND_GAP_SECONDS = 12.0


@dataclass
class _Rows:
    recipients: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    opted_out: set[str] = field(default_factory=set)  # numbers later blasts leave out, as live
    # (tag, number) of each sale made: one sale a person a campaign, as `closed_under_its_tag` has it.
    sold: set[tuple[str, str]] = field(default_factory=set)


def _phone(rng: random.Random) -> str:
    prefix = rng.choice(("12", "13", "14", "16", "17", "18", "19", "11"))
    digits = 8 if prefix == "11" else 7
    return f"+60{prefix}{rng.randrange(10 ** (digits - 1), 10**digits)}"


def _fate(
    rng: random.Random, *, phone: str, sent_at: dt.datetime, proportions: Proportions, now: dt.datetime,
    may_close: bool = True,
) -> tuple[Status, dict[str, Any], list[tuple[Status, dt.datetime]]]:
    """The final status, column values and status changes of one message, as of `now`; no sale
    unless `may_close`."""
    if rng.random() < 0.015:
        return Status.FAILED, {"error": "The number is not on WhatsApp."}, [(Status.FAILED, sent_at)]
    changes = [(Status.PENDING, sent_at)]
    values: dict[str, Any] = {}
    for event in plan_message(rng=rng, to=phone.lstrip("+"), proportions=proportions, timing=DEMO_TIMING):
        at = sent_at + dt.timedelta(seconds=event.after)
        if at > now:
            break
        status = event.status or Status.REPLIED
        if RANK[status] > RANK[changes[-1][0]]:
            changes.append((status, at))
        if event.text:
            values.setdefault("reply_text", event.text)  # the first, as the webhook keeps it
            values.setdefault("replies", []).append((at, event.text))
    if changes[-1][0] is Status.REPLIED and rng.random() < 0.22 and may_close:
        changes.append((Status.CLOSED, changes[-1][1] + dt.timedelta(hours=rng.uniform(2, 72))))
        if changes[-1][1] > now:
            changes.pop()
    return changes[-1][0], values, changes


def _stage_columns(changes: list[tuple[Status, dt.datetime]]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    previous = 0
    for status, at in changes:
        for stage in stages_between(previous, RANK[status]):
            columns.setdefault(STAGE_TIMESTAMP_COLUMN[stage], at)
        previous = max(previous, RANK[status])
    if "delivered_at" in columns:
        columns["message_c2s_timestamp"] = int(columns["delivered_at"].timestamp())
    return columns


def _add_blast(
    session: Session,
    rows: _Rows,
    *,
    rng: random.Random,
    tag: str,
    stage: str,
    start: dt.datetime,
    people: list[tuple[str, str]],
    now: dt.datetime,
    parent_id: int | None,
    zone: ZoneInfo,
) -> int:
    appeal = TAGS[tag]
    proportions = Proportions(read=min(0.95, 0.62 * appeal), replied=min(0.6, 0.13 * appeal), opt_out=0.04)
    blast = Blast(
        blast_tag=tag,
        follow_up_stage=stage,
        name=f"{tag} — {stage}",
        state=BlastState.COMPLETED,
        message_template=TEMPLATES[stage],
        blast_date=start,
        started_at=start,
        blast_time=start.astimezone(zone).time().replace(microsecond=0),
        finished_at=start + dt.timedelta(seconds=SEND_GAP_SECONDS * len(people)),
        total_recipients=len(people),
        device=DEMO_DEVICE,
        parent_blast_id=parent_id,
        created_at=start - dt.timedelta(hours=1),
    )
    session.add(blast)
    session.flush()
    for i, (phone, name) in enumerate(people):
        sent_at = start + dt.timedelta(seconds=i * SEND_GAP_SECONDS + rng.uniform(0, 6))
        status, values, changes = _fate(rng, phone=phone, sent_at=sent_at, proportions=proportions, now=now,
                                        may_close=(tag, phone) not in rows.sold)
        if status is Status.CLOSED:
            rows.sold.add((tag, phone))
        replies = values.pop("replies", [])
        message_id = None if status is Status.FAILED else f"3EB0DEMO{blast.id:05d}{i:06d}"
        rows.recipients.append(
            {
                "blast_id": blast.id,
                "phone_number": phone,
                "contact_name": name,
                "variables": {"name": name, "tag": tag},
                "status": status.value,
                "message_id": message_id,
                "message_text": TEMPLATES[stage].format(name=name, tag=tag),
                "attempts": 1,
                "message_timestamp": int(sent_at.timestamp()),
                "gateway_status": "PENDING",
                "created_at": start,
                "updated_at": changes[-1][1],
                **_stage_columns(changes),
                **values,
            }
        )
        rows.history.append({"phone": phone, "blast_id": blast.id, "changes": changes, "replies": replies})
        if any(opt_out_keyword(text, words=DEFAULT_OPT_OUT_WORDS) for _, text in replies):
            rows.opted_out.add(phone)
    return blast.id


def seed_demo(
    session: Session,
    *,
    weeks: int = 6,
    seed: int = 2026,
    timezone: str = "Asia/Kuala_Lumpur",
    now: dt.datetime | None = None,
) -> int:
    """Fill an empty database with `weeks` of blasts; returns how many recipients were added."""
    rng = random.Random(seed)
    zone = ZoneInfo(timezone)
    now = now or dt.datetime.now(dt.UTC)
    rows = _Rows()
    first_day = (now.astimezone(zone) - dt.timedelta(weeks=weeks)).date()
    audience = [(_phone(rng), rng.choice(NAMES)) for _ in range(2500)]
    for week in range(weeks):
        for tag in rng.sample(list(TAGS), 3):
            day = first_day + dt.timedelta(days=week * 7 + rng.randrange(0, 5))
            start = dt.datetime.combine(
                day, dt.time(rng.choice((9, 10, 11, 14)), rng.randrange(60)), tzinfo=zone
            ).astimezone(dt.UTC)
            if start > now - dt.timedelta(hours=2):
                continue
            people = [p for p in rng.sample(audience, rng.randrange(250, 501)) if p[0] not in rows.opted_out]
            parent = _add_blast(
                session,
                rows,
                rng=rng,
                tag=tag,
                stage="Initial",
                start=start,
                people=people,
                now=now,
                parent_id=None,
                zone=zone,
            )
            _follow_ups(session, rows, rng=rng, tag=tag, parent=parent, start=start, now=now, zone=zone)
    _write(session, rows)
    return len(rows.recipients)


def _follow_ups(
    session: Session,
    rows: _Rows,
    *,
    rng: random.Random,
    tag: str,
    parent: int,
    start: dt.datetime,
    now: dt.datetime,
    zone: ZoneInfo,
) -> None:
    for stage in ("Follow-up 1", "Follow-up 2"):
        start = start + dt.timedelta(days=2)
        if start > now - dt.timedelta(hours=2):
            return
        read_no_reply = [
            (r["phone_number"], r["contact_name"])
            for r in rows.recipients
            if r["blast_id"] == parent and r["status"] == Status.READ_ACK.value
        ]
        if not read_no_reply:
            return
        parent = _add_blast(
            session,
            rows,
            rng=rng,
            tag=tag,
            stage=stage,
            start=start,
            people=read_no_reply,
            now=now,
            parent_id=parent,
            zone=zone,
        )


def _source(old: str, new: Status) -> str:
    if old == Status.SENDING.value:
        return "send"
    return "manual" if new is Status.CLOSED else "webhook"


def _write(session: Session, rows: _Rows) -> None:
    for chunk in range(0, len(rows.recipients), 2000):
        session.execute(insert(BlastRecipient), rows.recipients[chunk : chunk + 2000])
    ids: dict[int, dict[str, int]] = {}
    history = []
    for item in rows.history:
        if item["blast_id"] not in ids:
            ids[item["blast_id"]] = dict(
                session.execute(
                    select(BlastRecipient.phone_number, BlastRecipient.id).where(
                        BlastRecipient.blast_id == item["blast_id"]
                    )
                ).all()
            )
        recipient_id = ids[item["blast_id"]][item["phone"]]
        old = Status.SENDING.value
        for status, at in item["changes"]:
            history.append(
                {
                    "recipient_id": recipient_id,
                    "old_status": old,
                    "new_status": status.value,
                    "changed_at": at,
                    "source": _source(old, status),
                    "event": {"demo": True},
                }
            )
            old = status.value
    for chunk in range(0, len(history), 5000):
        session.execute(insert(StatusHistory), history[chunk : chunk + 5000])
    replies = [
        {"recipient_id": ids[item["blast_id"]][item["phone"]], "replied_at": at, "text": text}
        for item in rows.history for at, text in item["replies"]
    ]
    for chunk in range(0, len(replies), 5000):
        session.execute(insert(RecipientReply), replies[chunk : chunk + 5000])
    # As the webhook does: a reply that is only an opt-out word puts the number on the list.
    for item in rows.history:
        for _, text in item["replies"]:
            if keyword := opt_out_keyword(text, words=DEFAULT_OPT_OUT_WORDS):
                add_opt_outs(session, [item["phone"]], source="webhook", keyword=keyword)
