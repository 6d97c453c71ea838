"""tickets and sla clocks

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Human ticket numbers (SD-000123): unique, not necessarily gap-free.
    op.execute(sa.schema.CreateSequence(sa.Sequence("ticket_number_seq")))
    op.create_table(
        "tickets",
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
        sa.Column(
            "number",
            sa.BigInteger(),
            server_default=sa.text("nextval('ticket_number_seq')"),
            nullable=False,
        ),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("entitled", sa.Boolean(), nullable=False),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("entitlement_reasons", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("plan_id", sa.Uuid(), nullable=True),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("plan_snapshot", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after_hours", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("contact_attempts", sa.SmallInteger(), nullable=False),
        sa.Column("auto_close_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(length=20), nullable=True),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("follows_up_ticket_id", sa.Uuid(), nullable=True),
        sa.Column("vendor", sa.String(length=200), nullable=True),
        sa.Column("vendor_case_ref", sa.String(length=200), nullable=True),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('new', 'open', 'in_progress', 'waiting_on_customer', "
            "'waiting_on_vendor', 'resolved', 'closed')",
            name=op.f("ck_tickets_status"),
        ),
        sa.CheckConstraint("tier BETWEEN 1 AND 4", name=op.f("ck_tickets_tier")),
        sa.ForeignKeyConstraint(
            ["assignee_id"], ["agents.id"], name=op.f("fk_tickets_assignee_id_agents")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_tickets_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_tickets_contract_id_contracts")
        ),
        sa.ForeignKeyConstraint(
            ["follows_up_ticket_id"],
            ["tickets.id"],
            name=op.f("fk_tickets_follows_up_ticket_id_tickets"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_tickets_organization_id_organizations"),
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_tickets_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("number", name=op.f("uq_tickets_number")),
    )
    op.create_index(
        "ix_tickets_assignee_id_received_at_id",
        "tickets",
        ["assignee_id", "received_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_tickets_auto_close_at",
        "tickets",
        ["auto_close_at"],
        unique=False,
        postgresql_where="auto_close_at IS NOT NULL",
    )
    op.create_index(
        "ix_tickets_next_due_at_id",
        "tickets",
        ["next_due_at", "id"],
        unique=False,
        postgresql_where="next_due_at IS NOT NULL",
    )
    op.create_index(
        "ix_tickets_organization_id_received_at_id",
        "tickets",
        ["organization_id", "received_at", "id"],
        unique=False,
    )
    op.create_index("ix_tickets_received_at_id", "tickets", ["received_at", "id"], unique=False)
    op.create_index(
        "ix_tickets_status_received_at_id", "tickets", ["status", "received_at", "id"], unique=False
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_idempotency_keys_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_idempotency_keys_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("api_key_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("target", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("calendar_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("running_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("elapsed_us", sa.BigInteger(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("thresholds", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("crossings", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendars.id"],
            name=op.f("fk_sla_clocks_calendar_id_calendars"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_sla_clocks_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_clocks")),
        sa.UniqueConstraint("ticket_id", "metric", name=op.f("uq_sla_clocks_ticket_id_metric")),
    )
    op.create_index(
        "ix_sla_clocks_calendar_id",
        "sla_clocks",
        ["calendar_id"],
        unique=False,
        postgresql_where="stopped_at IS NULL",
    )
    op.create_index(
        "ix_sla_clocks_due_at",
        "sla_clocks",
        ["due_at"],
        unique=False,
        postgresql_where="due_at IS NOT NULL",
    )
    op.create_index(
        "ix_sla_clocks_next_check_at",
        "sla_clocks",
        ["next_check_at"],
        unique=False,
        postgresql_where="next_check_at IS NOT NULL",
    )
    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("actor", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_events_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
        sa.UniqueConstraint("seq", name=op.f("uq_ticket_events_seq")),
    )
    op.create_index(
        "ix_ticket_events_ticket_id_seq", "ticket_events", ["ticket_id", "seq"], unique=False
    )
    op.create_table(
        "sla_firings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("clock_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("instant", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clock_id"],
            ["sla_clocks.id"],
            name=op.f("fk_sla_firings_clock_id_sla_clocks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_sla_firings_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_firings")),
        sa.UniqueConstraint(
            "clock_id", "key", "cycle", name=op.f("uq_sla_firings_clock_id_key_cycle")
        ),
    )
    op.create_index(op.f("ix_sla_firings_ticket_id"), "sla_firings", ["ticket_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_sla_firings_ticket_id"), table_name="sla_firings")
    op.drop_table("sla_firings")
    op.drop_index("ix_ticket_events_ticket_id_seq", table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index(
        "ix_sla_clocks_next_check_at",
        table_name="sla_clocks",
        postgresql_where="next_check_at IS NOT NULL",
    )
    op.drop_index(
        "ix_sla_clocks_due_at", table_name="sla_clocks", postgresql_where="due_at IS NOT NULL"
    )
    op.drop_index(
        "ix_sla_clocks_calendar_id", table_name="sla_clocks", postgresql_where="stopped_at IS NULL"
    )
    op.drop_table("sla_clocks")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_tickets_status_received_at_id", table_name="tickets")
    op.drop_index("ix_tickets_received_at_id", table_name="tickets")
    op.drop_index("ix_tickets_organization_id_received_at_id", table_name="tickets")
    op.drop_index(
        "ix_tickets_next_due_at_id",
        table_name="tickets",
        postgresql_where="next_due_at IS NOT NULL",
    )
    op.drop_index(
        "ix_tickets_auto_close_at",
        table_name="tickets",
        postgresql_where="auto_close_at IS NOT NULL",
    )
    op.drop_index("ix_tickets_assignee_id_received_at_id", table_name="tickets")
    op.drop_table("tickets")
    op.execute(sa.schema.DropSequence(sa.Sequence("ticket_number_seq")))
