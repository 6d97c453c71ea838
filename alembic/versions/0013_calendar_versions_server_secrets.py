"""calendar_versions (what tickets were timed with outlives the calendar, so sla_clocks no
longer reference calendars by foreign key); server_secrets (the key that signs cursors)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_versions",
        sa.Column("calendar_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("calendar_id", "version", name=op.f("pk_calendar_versions")),
    )
    # The calendars of today are their own current version.
    op.execute(
        "INSERT INTO calendar_versions (calendar_id, version, name, timezone, spec, created_at) "
        "SELECT id, version, name, timezone, spec, updated_at FROM calendars"
    )
    op.drop_constraint("fk_sla_clocks_calendar_id_calendars", "sla_clocks", type_="foreignkey")
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_server_secrets")),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.execute(
        "UPDATE sla_clocks SET calendar_id = NULL WHERE calendar_id IS NOT NULL "
        "AND calendar_id NOT IN (SELECT id FROM calendars)"
    )
    op.create_foreign_key(
        "fk_sla_clocks_calendar_id_calendars",
        "sla_clocks",
        "calendars",
        ["calendar_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.drop_table("calendar_versions")
