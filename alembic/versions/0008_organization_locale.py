"""organizations.locale: the language (and region) customers are written to in

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "organizations",
        sa.Column("locale", sa.String(length=10), server_default="en", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("organizations", "locale")
