"""Retention: indexes that find the oldest prunable rows without a scan

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_events_dispatched_at",
        "outbox_events",
        ["dispatched_at"],
        postgresql_where=sa.text("dispatched_at IS NOT NULL"),
    )
    op.create_index(
        "ix_webhook_deliveries_succeeded_completed_at",
        "webhook_deliveries",
        ["completed_at"],
        postgresql_where=sa.text("status = 'succeeded'"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_index("ix_webhook_deliveries_succeeded_completed_at", table_name="webhook_deliveries")
    op.drop_index("ix_outbox_events_dispatched_at", table_name="outbox_events")
