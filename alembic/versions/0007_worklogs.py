"""worklogs, ticket authorizations and ticket estimates (seed 004 billing)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_authorizations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("charged_minutes", sa.Integer(), nullable=False),
        sa.Column("estimate_minutes", sa.Integer(), nullable=True),
        sa.Column("approved_estimate_minutes", sa.Integer(), nullable=True),
        sa.Column("decided_by", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'declined')",
            name=op.f("ck_ticket_authorizations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_authorizations_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_authorizations")),
    )
    op.create_index(
        "ix_ticket_authorizations_ticket_id_requested_at",
        "ticket_authorizations",
        ["ticket_id", "requested_at"],
        unique=False,
    )
    op.create_index(
        "uq_ticket_authorizations_pending",
        "ticket_authorizations",
        ["ticket_id"],
        unique=True,
        postgresql_where="status = 'pending'",
    )
    op.create_table(
        "worklogs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("consultants", sa.Integer(), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=6, scale=3), nullable=False),
        sa.Column("after_hours_minutes", sa.Integer(), nullable=False),
        sa.Column("charged_minutes", sa.Integer(), nullable=False),
        sa.Column("billable", sa.Boolean(), nullable=False),
        sa.Column("unbilled_reason", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('follow_up', 'session', 'work')", name=op.f("ck_worklogs_kind")
        ),
        sa.CheckConstraint("source IN ('manual', 'auto')", name=op.f("ck_worklogs_source")),
        sa.CheckConstraint("consultants >= 1", name=op.f("ck_worklogs_consultants")),
        sa.CheckConstraint("minutes >= 0", name=op.f("ck_worklogs_minutes")),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_worklogs_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_worklogs_contract_id_contracts")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["ticket_events.id"],
            name=op.f("fk_worklogs_event_id_ticket_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_worklogs_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_worklogs_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worklogs")),
    )
    op.create_index("ix_worklogs_contract_id", "worklogs", ["contract_id"], unique=False)
    op.create_index(
        "ix_worklogs_organization_id_occurred_at",
        "worklogs",
        ["organization_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_worklogs_ticket_id_occurred_at", "worklogs", ["ticket_id", "occurred_at"], unique=False
    )
    op.add_column("tickets", sa.Column("estimate_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "estimate_minutes")
    op.drop_index("ix_worklogs_ticket_id_occurred_at", table_name="worklogs")
    op.drop_index("ix_worklogs_organization_id_occurred_at", table_name="worklogs")
    op.drop_index("ix_worklogs_contract_id", table_name="worklogs")
    op.drop_table("worklogs")
    op.drop_index(
        "uq_ticket_authorizations_pending",
        table_name="ticket_authorizations",
        postgresql_where="status = 'pending'",
    )
    op.drop_index(
        "ix_ticket_authorizations_ticket_id_requested_at", table_name="ticket_authorizations"
    )
    op.drop_table("ticket_authorizations")
