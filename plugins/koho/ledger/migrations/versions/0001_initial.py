"""The ledger's first schema: accounts, calendar entries, deliveries, metrics, feedback,
cursors and alerts.

Written by hand to be exactly what ``alembic revision --autogenerate`` produces from
``koho.ledger.models`` (a test compares the migrated schema with the models). Types are spelled
out rather than imported from the models: a migration is a snapshot and must not change when
the models do.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIMESTAMP = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("handle", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("connection_id", sa.String(length=255), nullable=True),
        sa.Column("settings", JSON, nullable=False),
        sa.Column("token_expires_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("last_verified_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("verify_error", sa.Text(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("kind IN ('general', 'special')", name=op.f("ck_accounts_kind")),
        sa.CheckConstraint("status IN ('active', 'suspended', 'retired')", name=op.f("ck_accounts_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )

    op.create_table(
        "calendar_entries",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("publish_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("approval_required", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("origin IN ('calendar', 'adhoc', 'emergency')", name=op.f("ck_calendar_entries_origin")),
        sa.CheckConstraint(
            "status IN ('planned', 'awaiting_approval', 'approved', 'rejected', 'cancelled', "
            "'published', 'partially_published', 'failed', 'changed_after_publish')",
            name=op.f("ck_calendar_entries_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_entries")),
    )
    op.create_index("ix_calendar_entries_status_publish_at", "calendar_entries", ["status", "publish_at"], unique=False)

    op.create_table(
        "account_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("collected_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("followers", sa.BigInteger(), nullable=True),
        sa.Column("posts", sa.BigInteger(), nullable=True),
        sa.Column("views", sa.BigInteger(), nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_account_metrics_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_metrics")),
    )
    op.create_index(
        "ix_account_metrics_account_id_collected_at",
        "account_metrics",
        ["account_id", "collected_at"],
        unique=False,
    )

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("notified_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("resolved_at", UTC_TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "kind IN ('token_invalid', 'token_expiring', 'delivery_failed', 'flaming', "
            "'impersonation', 'config_error', 'approval_timeout', 'review')",
            name=op.f("ck_alerts_kind"),
        ),
        sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name=op.f("ck_alerts_severity")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_alerts_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_alerts_dedup_key")),
    )
    op.create_index("ix_alerts_kind_created_at", "alerts", ["kind", "created_at"], unique=False)

    op.create_table(
        "cursors",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.String(length=64), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=False),
        sa.Column("updated_at", UTC_TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_cursors_account_id_accounts")),
        sa.PrimaryKeyConstraint("account_id", "stream", name=op.f("pk_cursors")),
    )

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.String(length=128), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("parent_delivery_id", sa.Integer(), nullable=True),
        sa.Column("due_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("planned_created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sending_since", UTC_TIMESTAMP, nullable=True),
        sa.Column("remote_id", sa.String(length=255), nullable=True),
        sa.Column("remote_url", sa.Text(), nullable=True),
        sa.Column("published_at", UTC_TIMESTAMP, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dag_run_id", sa.String(length=255), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('planned', 'awaiting_approval', 'sending', 'published', 'failed', "
            "'cancelled', 'needs_attention')",
            name=op.f("ck_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_deliveries_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["calendar_entries.id"], name=op.f("fk_deliveries_entry_id_calendar_entries")
        ),
        sa.ForeignKeyConstraint(
            ["parent_delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_deliveries_parent_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "entry_id",
            "account_id",
            "revision",
            "part_index",
            name=op.f("uq_deliveries_entry_id_account_id_revision_part_index"),
        ),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_deliveries_idempotency_key")),
    )
    op.create_index("ix_deliveries_account_id_due_at", "deliveries", ["account_id", "due_at"], unique=False)
    op.create_index("ix_deliveries_entry_id", "deliveries", ["entry_id"], unique=False)
    op.create_index("ix_deliveries_status_due_at", "deliveries", ["status", "due_at"], unique=False)

    op.create_table(
        "feedback_items",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=False),
        sa.Column("post_remote_id", sa.String(length=255), nullable=True),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("collected_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("route_reason", sa.Text(), nullable=True),
        sa.Column("hostile", sa.Boolean(), nullable=False),
        sa.Column("digest_sent_at", UTC_TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_feedback_items_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_items")),
        sa.UniqueConstraint(
            "platform",
            "account_id",
            "remote_id",
            name=op.f("uq_feedback_items_platform_account_id_remote_id"),
        ),
    )
    op.create_index(
        "ix_feedback_items_account_id_created_at", "feedback_items", ["account_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_feedback_items_department_digest_sent_at",
        "feedback_items",
        ["department", "digest_sent_at"],
        unique=False,
    )

    op.create_table(
        "post_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("remote_id", sa.String(length=255), nullable=False),
        sa.Column("collected_at", UTC_TIMESTAMP, nullable=False),
        sa.Column("impressions", sa.BigInteger(), nullable=True),
        sa.Column("likes", sa.Integer(), nullable=False),
        sa.Column("reposts", sa.Integer(), nullable=False),
        sa.Column("replies", sa.Integer(), nullable=False),
        sa.Column("quotes", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.BigInteger(), nullable=True),
        sa.Column("extra", JSON, nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_post_metrics_account_id_accounts")),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name=op.f("fk_post_metrics_delivery_id_deliveries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_post_metrics")),
    )
    op.create_index(
        "ix_post_metrics_account_id_collected_at", "post_metrics", ["account_id", "collected_at"], unique=False
    )
    op.create_index(
        "ix_post_metrics_remote_id_collected_at", "post_metrics", ["remote_id", "collected_at"], unique=False
    )


def downgrade() -> None:
    for table in (
        "post_metrics",
        "feedback_items",
        "deliveries",
        "cursors",
        "alerts",
        "account_metrics",
        "calendar_entries",
        "accounts",
    ):
        op.drop_table(table)
