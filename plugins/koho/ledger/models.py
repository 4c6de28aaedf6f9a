"""The ledger's tables as SQLAlchemy 2 typed declarative models.

The ledger is Koho's own memory: which accounts exist, what the calendar asked for, which post
went (or must go) where, what came back (metrics, comments) and what a person must look at
(alerts). Airflow's metadata DB is not used for any of it: tasks cannot reach that DB in
Airflow 3, and Koho's history must outlive DAG run clean-ups.

Design choices worth knowing before changing anything here:

* Every instant is stored in UTC and read back timezone-aware (:class:`UTCDateTime`), on SQLite
  too, so comparisons in SQL and in Python agree. Naive datetimes are refused: a naive 09:00
  meant in Tokyo would silently become 09:00 UTC, nine hours late.
* Statuses and kinds are plain strings guarded by CHECK constraints; the allowed values are the
  ``StrEnum`` classes below, which compare equal to the strings.
* Constraint and index names come from one naming convention so that later migrations (SQLite
  batch mode included) can refer to them by name.
* JSON columns (``settings``, ``payload``, ``detail``, ``extra``) are not mutation-tracked:
  assign a new dict to change one, in-place edits are not saved.
* The migrations (``migrations/versions/``) together build exactly this file's schema; a test
  compares the two, so change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Alembic's bookkeeping table. Not ``alembic_version``: the ledger may share a Postgres
#: database with other software (even Airflow's metadata), and their versions must not collide.
VERSION_TABLE = "koho_alembic_version"


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC (the only kind of datetime the ledger stores)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware (UTC).

    Postgres keeps ``timestamptz`` natively; SQLite has no timezone support, so the value is
    stored as naive UTC text in a fixed format (which also sorts correctly as text) and the UTC
    zone is re-attached when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: the ledger stores instants, "
                "attach a timezone (Asia/Tokyo for local times, UTC otherwise)"
            )
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON everywhere; JSONB on Postgres (compact, comparable, indexable if ever needed).
JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute as is
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class AccountKind(StrEnum):
    GENERAL = "general"
    SPECIAL = "special"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"


class EntryOrigin(StrEnum):
    CALENDAR = "calendar"
    ADHOC = "adhoc"
    EMERGENCY = "emergency"


class EntryStatus(StrEnum):
    PLANNED = "planned"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    PUBLISHED = "published"
    PARTIALLY_PUBLISHED = "partially_published"
    FAILED = "failed"
    CHANGED_AFTER_PUBLISH = "changed_after_publish"


class DeliveryStatus(StrEnum):
    PLANNED = "planned"
    AWAITING_APPROVAL = "awaiting_approval"
    SENDING = "sending"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    NEEDS_ATTENTION = "needs_attention"


class AlertKind(StrEnum):
    TOKEN_INVALID = "token_invalid"  # noqa: S105 - an alert kind, not a secret
    TOKEN_EXPIRING = "token_expiring"  # noqa: S105 - an alert kind, not a secret
    DELIVERY_FAILED = "delivery_failed"
    FLAMING = "flaming"
    IMPERSONATION = "impersonation"
    CONFIG_ERROR = "config_error"
    APPROVAL_TIMEOUT = "approval_timeout"
    REVIEW = "review"


class AlertSeverity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


def one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    """A CHECK constraint named after ``column`` allowing exactly the enum's values."""
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=column)


class Account(Base):
    """An official account (policy P5); the registry in accounts.yaml is the source of truth."""

    __tablename__ = "accounts"
    __table_args__ = (
        one_of("kind", AccountKind),
        one_of("status", AccountStatus),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default=AccountKind.GENERAL.value)
    topic: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.ACTIVE.value)
    connection_id: Mapped[str | None] = mapped_column(String(255))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    token_expires_at: Mapped[datetime | None]
    last_verified_at: Mapped[datetime | None]
    verify_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"Account({self.id!r}, {self.platform}, {self.status})"


class CalendarEntry(Base):
    """One thing to publish, from the calendar, an ad-hoc form or an emergency trigger.

    ``revision`` grows when the content (``content_hash``) changes, which gives new deliveries
    new idempotency keys: a corrected post is a new post, never a silent retry of the old one.
    """

    __tablename__ = "calendar_entries"
    __table_args__ = (
        one_of("origin", EntryOrigin),
        one_of("status", EntryStatus),
        Index("ix_calendar_entries_status_publish_at", "status", "publish_at"),
    )

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(255))
    source_line: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    publish_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    approval_required: Mapped[bool] = mapped_column(Boolean, default=False)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    content_hash: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32), default=EntryStatus.PLANNED.value)
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"CalendarEntry({self.id!r}, rev {self.revision}, {self.status})"


class Delivery(Base):
    """One post (or one part of a thread) of one entry revision on one account.

    The row exists *before* the platform is called, with a stable ``idempotency_key``; the
    state machine in :mod:`koho.ledger.deliveries` moves it to ``sending`` atomically so that two
    workers can never both post it.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        one_of("status", DeliveryStatus),
        UniqueConstraint("entry_id", "account_id", "revision", "part_index"),
        Index("ix_deliveries_status_due_at", "status", "due_at"),
        Index("ix_deliveries_account_id_due_at", "account_id", "due_at"),
        Index("ix_deliveries_entry_id", "entry_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("calendar_entries.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    revision: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    part_index: Mapped[int] = mapped_column(Integer, default=0)
    parent_delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(32), default=DeliveryStatus.PLANNED.value)
    text: Mapped[str] = mapped_column(Text)
    planned_created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sending_since: Mapped[datetime | None]
    remote_id: Mapped[str | None] = mapped_column(String(255))
    remote_url: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    dag_run_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return (
            f"Delivery({self.id}, {self.entry_id!r}@{self.account_id!r} rev {self.revision}"
            f" part {self.part_index}, {self.status})"
        )


class PostMetric(Base):
    """A snapshot of one post's counters at ``collected_at``: one per post and instant, so a
    retried collection rewrites its snapshot instead of adding a second one."""

    __tablename__ = "post_metrics"
    __table_args__ = (
        Index("ix_post_metrics_account_id_collected_at", "account_id", "collected_at"),
        Index(
            "uq_post_metrics_account_id_remote_id_collected_at", "account_id", "remote_id", "collected_at", unique=True
        ),
        Index("ix_post_metrics_remote_id_collected_at", "remote_id", "collected_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    remote_id: Mapped[str] = mapped_column(String(255))
    collected_at: Mapped[datetime]
    impressions: Mapped[int | None] = mapped_column(BigInteger)
    likes: Mapped[int] = mapped_column(Integer, default=0)
    reposts: Mapped[int] = mapped_column(Integer, default=0)
    replies: Mapped[int] = mapped_column(Integer, default=0)
    quotes: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int | None] = mapped_column(BigInteger)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AccountMetric(Base):
    """A snapshot of one account's audience figures (followers, posts, views), one per instant."""

    __tablename__ = "account_metrics"
    __table_args__ = (Index("uq_account_metrics_account_id_collected_at", "account_id", "collected_at", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    collected_at: Mapped[datetime]
    followers: Mapped[int | None] = mapped_column(BigInteger)
    posts: Mapped[int | None] = mapped_column(BigInteger)
    views: Mapped[int | None] = mapped_column(BigInteger)
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class FeedbackItem(Base):
    """A resident's comment, reply or mention (untrusted text), routed to a department."""

    __tablename__ = "feedback_items"
    __table_args__ = (
        UniqueConstraint("platform", "account_id", "remote_id"),
        Index("ix_feedback_items_department_digest_sent_at", "department", "digest_sent_at"),
        Index("ix_feedback_items_account_id_created_at", "account_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    platform: Mapped[str] = mapped_column(String(32))
    remote_id: Mapped[str] = mapped_column(String(255))
    post_remote_id: Mapped[str | None] = mapped_column(String(255))
    author: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    collected_at: Mapped[datetime]
    department: Mapped[str | None] = mapped_column(String(64))
    route_reason: Mapped[str | None] = mapped_column(Text)
    hostile: Mapped[bool] = mapped_column(Boolean, default=False)
    digest_sent_at: Mapped[datetime | None]


class Cursor(Base):
    """Where incremental collection of one stream of one account stopped last time."""

    __tablename__ = "cursors"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Alert(Base):
    """Something a person must know; ``dedup_key`` makes raising it again a no-op."""

    __tablename__ = "alerts"
    __table_args__ = (
        one_of("kind", AlertKind),
        one_of("severity", AlertSeverity),
        Index("ix_alerts_kind_created_at", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"))
    subject: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    notified_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"Alert({self.id}, {self.kind}, {self.dedup_key!r})"


class OutboxStatus(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    MAYBE_SENT = "maybe_sent"


class OutboxMail(Base):
    """One mail to one recipient (one part of a split message): the exactly-once record.

    The row is claimed (``sending``) before the SMTP call and marked ``sent`` after it, so a
    retry skips what was sent. ``mail_message_id`` is the Message-ID header, the same on every
    attempt, so that a resend after an unknown outcome can be recognised by mail systems.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        one_of("status", OutboxStatus),
        UniqueConstraint("message_id", "recipient", "part"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(255))
    recipient: Mapped[str] = mapped_column(String(320))
    part: Mapped[int] = mapped_column(Integer, default=0)
    parts: Mapped[int] = mapped_column(Integer, default=1)
    subject: Mapped[str] = mapped_column(Text)
    mail_message_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.SENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_try: Mapped[int | None] = mapped_column(Integer)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    maybe_sent_before: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"OutboxMail({self.id}, {self.message_id!r} to {self.recipient!r} part {self.part}, {self.status})"
