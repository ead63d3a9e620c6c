"""The tables: the plan's `blasts`, `blast_recipients` and `status_history`, and what sending needs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.statuses import Status

JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator):
    """Timezone-aware timestamps on every database.

    PostgreSQL stores `timestamptz`; SQLite has no zones, so values are stored as UTC
    and handed back as aware UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware one (UTC)")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def created_at_column() -> Mapped[dt.datetime]:
    return mapped_column(UtcDateTime, default=utcnow, server_default=func.now(), nullable=False)


def updated_at_column() -> Mapped[dt.datetime]:
    return mapped_column(
        UtcDateTime, default=utcnow, onupdate=utcnow, server_default=func.now(), nullable=False
    )


class Base(DeclarativeBase):
    pass


class BlastState:
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ALL = (DRAFT, SCHEDULED, SENDING, PAUSED, COMPLETED, CANCELLED)
    # Launched and not finished: it sends by itself, if the gateway in use sends it.
    ONGOING = (SCHEDULED, SENDING, PAUSED)
    UNFINISHED = (DRAFT, *ONGOING)


class PausedBy:
    """Who paused a paused blast (`Blast.paused_by`)."""

    PERSON = "person"  # from its page or the command line
    SCHEDULE = "schedule"  # its time passed while nothing was running
    GATEWAY = "gateway"  # the sending: a refused token, a device offline, sends not taken
    MESSAGE = "message"  # a follow-up scheduled ahead whose message could not be written for its people


class Blast(Base):
    __tablename__ = "blasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blast_tag: Mapped[str | None] = mapped_column(String(255))
    blast_date: Mapped[dt.datetime] = mapped_column(
        UtcDateTime, default=utcnow, server_default=func.now(), nullable=False
    )
    blast_time: Mapped[dt.time | None] = mapped_column(Time)
    follow_up_stage: Mapped[str | None] = mapped_column(String(100))
    total_recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime] = updated_at_column()

    # What sending needs beyond the plan.
    name: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(
        String(20), default=BlastState.DRAFT, server_default=BlastState.DRAFT, nullable=False
    )
    state_reason: Mapped[str | None] = mapped_column(Text)
    paused_by: Mapped[str | None] = mapped_column(String(16))  # PausedBy, while paused
    paused_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)  # while paused
    message_template: Mapped[str | None] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(String(64))
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    parent_blast_id: Mapped[int | None] = mapped_column(
        ForeignKey("blasts.id", ondelete="SET NULL")
    )
    source_filename: Mapped[str | None] = mapped_column(String(255))
    skipped_opted_out: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A follow-up's choice of people ("Read, no reply"), asked again as it starts: those who
    # moved on since it was drafted (replied, bought) are taken off and counted here.
    follow_up_selector: Mapped[dict | None] = mapped_column(JsonType)
    skipped_moved_on: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The uploaded list's other columns (not its numbers or names), [[key, heading], …] in the
    # file's order: a recipient's `variables` hold their cells, and the export gives them back.
    upload_columns: Mapped[list | None] = mapped_column(JsonType)

    recipients: Mapped[list[BlastRecipient]] = relationship(
        back_populates="blast", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("idx_blasts_blast_date", "blast_date"),
        Index("idx_blasts_blast_tag", "blast_tag"),
        Index("idx_blasts_state", "state"),
        Index("idx_blasts_parent", "parent_blast_id"),
        # A deleted draft's number is never another blast's (migration 0014).
        {"sqlite_autoincrement": True},
    )


def longest(field: str) -> int:
    """The most characters a blast's field (its name, tag, follow-up stage) may hold."""
    return Blast.__table__.c[field].type.length


class BlastRecipient(Base):
    __tablename__ = "blast_recipients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    blast_id: Mapped[int] = mapped_column(
        ForeignKey("blasts.id", ondelete="CASCADE"), nullable=False
    )
    phone_number: Mapped[str] = mapped_column(String(20), nullable=False)
    # Null until the gateway has accepted the message and given it an id.
    message_id: Mapped[str | None] = mapped_column(String(255))
    message_text: Mapped[str | None] = mapped_column(Text)

    status: Mapped[str] = mapped_column(
        String(50), default=Status.QUEUED, server_default=Status.QUEUED.value, nullable=False
    )
    message_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    message_c2s_timestamp: Mapped[int | None] = mapped_column(BigInteger)
    read_timestamp: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    replied_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    wsapme_message_data: Mapped[dict[str, Any] | None] = mapped_column(JsonType)

    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime] = updated_at_column()

    # Beyond the plan.
    contact_name: Mapped[str | None] = mapped_column(String(255))
    variables: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    csv_line: Mapped[int | None] = mapped_column(Integer)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    gateway_status: Mapped[str | None] = mapped_column(String(32))
    reply_text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    poll_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    blast: Mapped[Blast] = relationship(back_populates="recipients")
    history: Mapped[list[StatusHistory]] = relationship(
        back_populates="recipient",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="StatusHistory.id",
    )

    __table_args__ = (
        UniqueConstraint("blast_id", "phone_number", name="uq_blast_recipients_blast_phone"),
        Index("idx_message_id", "message_id", unique=True),
        Index("idx_blast_id_status", "blast_id", "status"),
        Index("idx_status", "status"),
        Index("idx_phone", "phone_number", "sent_at"),
        # The send queue: only queued rows, in claim order (migration 0002).
        Index("idx_blast_recipients_queue", "blast_id", "id",
              postgresql_where=text("status = 'QUEUED'"), sqlite_where=text("status = 'QUEUED'")),
        # A number's sales, for one sale a person a campaign (migration 0018).
        Index("idx_blast_recipients_closed_phone", "phone_number",
              postgresql_where=text("status = 'CLOSED'"), sqlite_where=text("status = 'CLOSED'")),
    )


class StatusHistory(Base):
    __tablename__ = "status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("blast_recipients.id", ondelete="CASCADE"), nullable=False
    )
    old_status: Mapped[str | None] = mapped_column(String(50))
    new_status: Mapped[str] = mapped_column(String(50), nullable=False)
    changed_at: Mapped[dt.datetime] = mapped_column(
        UtcDateTime, default=utcnow, server_default=func.now(), nullable=False
    )
    source: Mapped[str | None] = mapped_column(String(50))
    # `metadata` is the plan's column name; the attribute cannot be, SQLAlchemy owns it.
    event: Mapped[dict[str, Any] | None] = mapped_column("metadata", JsonType)

    recipient: Mapped[BlastRecipient] = relationship(back_populates="history")

    __table_args__ = (Index("idx_status_history_recipient", "recipient_id"),)


class RecipientReply(Base):
    """Every message a recipient sent back, in the order written: `blast_recipients.reply_text`
    keeps the first (the plan's column), and a person's later messages, often the ones that
    say what they want, would otherwise be seen only in the raw webhook bodies."""

    __tablename__ = "recipient_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipient_id: Mapped[int] = mapped_column(
        ForeignKey("blast_recipients.id", ondelete="CASCADE"), nullable=False
    )
    replied_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    # The webhook body it came in and its place there: applying a body again adds nothing.
    inbox_id: Mapped[int | None] = mapped_column(Integer)
    inbox_position: Mapped[int | None] = mapped_column(Integer)
    # WhatsApp's id of the person's message, when the gateway sends it: the same message posted
    # twice is kept once, and two alike sent within one second are both kept (migration 0015).
    message_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("idx_recipient_replies_recipient", "recipient_id", "replied_at"),
        # The replies inbox: the replies of the last days across all blasts (migration 0007).
        Index("idx_recipient_replies_replied_at", "replied_at", "recipient_id"),
        UniqueConstraint("inbox_id", "inbox_position", name="uq_recipient_replies_inbox"),
    )


class BlastStatusCount(Base):
    """Recipients per blast and status, kept exact by database triggers (migration 0002).

    No foreign key: the triggers clear a deleted blast's rows themselves, after its
    recipients' cascade has written to them.
    """

    __tablename__ = "blast_status_counts"

    blast_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(50), primary_key=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)


class BlastStatusDelta(Base):
    """PostgreSQL's +1/-1 journal of status moves, added to the counts by readers and folded
    into them now and then; writers only append, so they never wait on each other."""

    __tablename__ = "blast_status_deltas"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    blast_id: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    delta: Mapped[int] = mapped_column(Integer, nullable=False)

    # The deltas of a few blasts, for a narrow funnel (migration 0003).
    __table_args__ = (Index("idx_blast_status_deltas_blast", "blast_id"),)


class BlastCountChange(Base):
    """PostgreSQL's log of which blasts' counts moved, by transaction (migration 0017): what
    `core.rollup_cache` reads to drop the funnel answers it keeps. `blasts` is a comma-separated
    list of blast ids, or `*` for every blast; `xid` the writing transaction's id, compared
    with snapshots. Unlogged; as the deltas are folded, entries committed ten minutes ago or
    more are deleted (`core.rollup_cache.trim_log`)."""

    __tablename__ = "blast_count_changes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    xid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    blasts: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (Index("idx_blast_count_changes_xid", "xid"),)


class BlastHourCount(Base):
    """Recipients per blast, measure and UTC hour, kept exact by triggers (migrations 0004, 0005).

    `what` 'sent' counts by the hour of `sent_at` and the recipient's status now; 'read' and
    'replied' by the hour of `read_timestamp` and `replied_at`, with status '', leaving out a
    time equal to `closed_at` (given by a sale closed by hand, not by the person). `hour` is
    'YYYY-MM-DD HH' in UTC. Like the status counts, no foreign key.
    """

    __tablename__ = "blast_hour_counts"

    blast_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    what: Mapped[str] = mapped_column(String(10), primary_key=True)
    hour: Mapped[str] = mapped_column(String(13), primary_key=True)
    status: Mapped[str] = mapped_column(String(50), primary_key=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)


class BlastHourDelta(Base):
    """PostgreSQL's +1/-1 journal for the hour counts, like `BlastStatusDelta`."""

    __tablename__ = "blast_hour_deltas"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    blast_id: Mapped[int] = mapped_column(Integer, nullable=False)
    what: Mapped[str] = mapped_column(String(10), nullable=False)
    hour: Mapped[str] = mapped_column(String(13), nullable=False)
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    delta: Mapped[int] = mapped_column(Integer, nullable=False)

    __table_args__ = (Index("idx_blast_hour_deltas_blast", "blast_id"),)


# The inbox entries that hold a message from a person (`kind` as the webhook inbox writes it),
# as the messages' partial index states it.
WITH_MESSAGES = "kind IN ('message', 'mixed')"


class WebhookInbox(Base):
    """Every webhook body, stored before it is read, so nothing the gateway sends is lost."""

    __tablename__ = "webhook_inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[dt.datetime] = created_at_column()
    content_type: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # new → applied | ignored | waiting (id not known yet) → unmatched | unparseable |
    # unrecognised (about a message, but not readable by this version) | failed (applying
    # failed at every try); the last four are replayed when a person asks
    state: Mapped[str] = mapped_column(String(20), default="new", server_default="new")
    kind: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    processed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("idx_webhook_inbox_state", "state", "id"),
        # Messages from people by arrival, alone or posted with receipts: the ones no recipient
        # matched are found by it (0009, 0011).
        Index("idx_webhook_inbox_messages", "received_at",
              postgresql_where=text(WITH_MESSAGES), sqlite_where=text(WITH_MESSAGES)),
    )


class WebhookWaiting(Base):
    """What a waiting inbox entry waits for: a message id, or the number a reply came from, not
    stored yet. Found by key when a send stores its id (0012); the entry's `detail` says the
    same in words, cut to a readable length."""

    __tablename__ = "webhook_waiting"

    inbox_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_inbox.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (Index("idx_webhook_waiting_key", "key"),)


class OptOut(Base):
    """Numbers that asked not to be messaged; imports and sends honour the list."""

    __tablename__ = "opt_outs"

    phone_number: Mapped[str] = mapped_column(String(20), primary_key=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    source: Mapped[str | None] = mapped_column(String(50))
    keyword: Mapped[str | None] = mapped_column(Text)


class Device(Base):
    """Per-device pacing state, shared by every worker through the database."""

    __tablename__ = "devices"

    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    min_gap_seconds: Mapped[float] = mapped_column(Float, default=8.0, server_default="8")
    jitter_seconds: Mapped[float] = mapped_column(Float, default=7.0, server_default="7")
    pause_every: Mapped[int] = mapped_column(Integer, default=50, server_default="50")
    pause_seconds: Mapped[float] = mapped_column(Float, default=300.0, server_default="300")
    daily_cap: Mapped[int] = mapped_column(Integer, default=500, server_default="500")
    quiet_start: Mapped[dt.time | None] = mapped_column(Time)
    quiet_end: Mapped[dt.time | None] = mapped_column(Time)
    next_send_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime)
    sent_day: Mapped[dt.date | None] = mapped_column(Date)
    sent_in_day: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_since_pause: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    online: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = updated_at_column()


class AppState(Base):
    """Small values the app keeps for itself (the generated webhook secret, heartbeats)."""

    __tablename__ = "app_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = updated_at_column()
