"""One metric snapshot per post (or account) and instant: unique keys for the upserts.

Collection tasks overlap and are retried; ``INSERT ... ON CONFLICT`` needs a unique index to
make a repeated snapshot one row instead of two. Rows that already repeat a key are reduced to
the latest one first (the index could not be built otherwise).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _keep_latest(table: str, key: str) -> None:
    op.execute(f"DELETE FROM {table} WHERE id NOT IN (SELECT MAX(id) FROM {table} GROUP BY {key})")  # noqa: S608 - fixed names


def upgrade() -> None:
    _keep_latest("post_metrics", "account_id, remote_id, collected_at")
    op.create_index(
        "uq_post_metrics_account_id_remote_id_collected_at",
        "post_metrics",
        ["account_id", "remote_id", "collected_at"],
        unique=True,
    )
    _keep_latest("account_metrics", "account_id, collected_at")
    op.drop_index("ix_account_metrics_account_id_collected_at", table_name="account_metrics")
    op.create_index(
        "uq_account_metrics_account_id_collected_at", "account_metrics", ["account_id", "collected_at"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_account_metrics_account_id_collected_at", table_name="account_metrics")
    op.create_index(
        "ix_account_metrics_account_id_collected_at", "account_metrics", ["account_id", "collected_at"], unique=False
    )
    op.drop_index("uq_post_metrics_account_id_remote_id_collected_at", table_name="post_metrics")
