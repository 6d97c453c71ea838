"""truthful time: finished clocks keep their due instant, an auto-close can be undone by
an action logged late, and after-hours time is billed as the client requested

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "after_hours_requests",
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
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=True),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("recorded_by", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.CheckConstraint(
            "(ticket_id IS NULL) <> (contract_id IS NULL)",
            name=op.f("ck_after_hours_requests_scope"),
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_after_hours_requests_window")),
        sa.CheckConstraint(
            "requested_at <= starts_at", name=op.f("ck_after_hours_requests_in_advance")
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
            name=op.f("fk_after_hours_requests_contact_id_contacts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_after_hours_requests_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_after_hours_requests_organization_id_organizations"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_after_hours_requests_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_after_hours_requests")),
    )
    op.create_index(
        "ix_after_hours_requests_contract_id_starts_at",
        "after_hours_requests",
        ["contract_id", "starts_at"],
        unique=False,
    )
    op.create_index(
        "ix_after_hours_requests_ticket_id_starts_at",
        "after_hours_requests",
        ["ticket_id", "starts_at"],
        unique=False,
    )
    op.add_column(
        "sla_clocks", sa.Column("final_due_at", sa.DateTime(timezone=True), nullable=True)
    )
    # A breached clock's due instant is its breach instant; the others stopped before this
    # column existed are derived when read (app.domain.sla.read).
    op.execute(
        "UPDATE sla_clocks SET final_due_at = breached_at "
        "WHERE stopped_at IS NOT NULL AND breached_at IS NOT NULL AND minutes IS NOT NULL"
    )
    op.add_column(
        "tickets",
        sa.Column("auto_closed_from", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column(
        "worklogs",
        sa.Column("unrequested_minutes", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("worklogs", sa.Column("after_hours_request_id", sa.Uuid(), nullable=True))
    op.create_index(
        op.f("ix_worklogs_after_hours_request_id"),
        "worklogs",
        ["after_hours_request_id"],
        unique=False,
    )
    op.create_foreign_key(
        op.f("fk_worklogs_after_hours_request_id_after_hours_requests"),
        "worklogs",
        "after_hours_requests",
        ["after_hours_request_id"],
        ["id"],
        ondelete="RESTRICT",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_worklogs_after_hours_request_id_after_hours_requests"),
        "worklogs",
        type_="foreignkey",
    )
    op.drop_index(op.f("ix_worklogs_after_hours_request_id"), table_name="worklogs")
    op.drop_column("worklogs", "after_hours_request_id")
    op.drop_column("worklogs", "unrequested_minutes")
    op.drop_column("tickets", "auto_closed_from")
    op.drop_column("sla_clocks", "final_due_at")
    op.drop_index("ix_after_hours_requests_ticket_id_starts_at", table_name="after_hours_requests")
    op.drop_index(
        "ix_after_hours_requests_contract_id_starts_at", table_name="after_hours_requests"
    )
    op.drop_table("after_hours_requests")
