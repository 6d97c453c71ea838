"""Work log entries (seed 004's charged time) and a ticket's estimate authorizations."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from app.models.base import Entity, timestamptz


class Worklog(Entity, table=True):
    """One charged (or unbilled) entry of time on a ticket."""

    __tablename__ = "worklogs"
    __table_args__ = (
        CheckConstraint("kind IN ('follow_up', 'session', 'work')", name="kind"),
        CheckConstraint("source IN ('manual', 'auto')", name="source"),
        CheckConstraint("minutes >= 0", name="minutes"),
        CheckConstraint("consultants >= 1", name="consultants"),
        # The statement: an organization's entries of a month, in order.
        Index("ix_worklogs_organization_id_occurred_at", "organization_id", "occurred_at"),
        Index("ix_worklogs_contract_id", "contract_id"),
        Index("ix_worklogs_ticket_id_occurred_at", "ticket_id", "occurred_at"),
    )

    ticket_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    )
    organization_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("organizations.id"), nullable=False)
    )
    contract_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("contracts.id"), nullable=True)
    )
    kind: str = Field(sa_type=String(20))
    agent_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("agents.id"), nullable=True)
    )
    occurred_at: datetime = timestamptz()
    minutes: int = Field(sa_type=Integer)
    consultants: int = Field(default=1, sa_type=Integer)
    multiplier: Decimal = Field(default=Decimal(1), sa_type=Numeric(6, 3))
    after_hours_minutes: int = Field(default=0, sa_type=Integer)
    charged_minutes: int = Field(sa_type=Integer)
    billable: bool = True
    unbilled_reason: str | None = Field(default=None, sa_type=String(40))
    source: str = Field(default="manual", sa_type=String(10))
    event_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("ticket_events.id", ondelete="SET NULL"), nullable=True),
    )
    note: str | None = Field(default=None, sa_type=Text)
    # Who recorded it (the key's actor, as on the timeline); null on entries older than
    # this column that no timeline event tells about.
    actor: dict[str, Any] | None = Field(default=None, sa_type=JSONB)


class TicketAuthorization(Entity, table=True):
    """A request to the customer to authorize more time than the ticket's estimate."""

    __tablename__ = "ticket_authorizations"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'declined')", name="status"),
        Index(
            "uq_ticket_authorizations_pending",
            "ticket_id",
            unique=True,
            postgresql_where="status = 'pending'",
        ),
        Index("ix_ticket_authorizations_ticket_id_requested_at", "ticket_id", "requested_at"),
    )

    ticket_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    )
    status: str = Field(default="pending", sa_type=String(20))
    requested_at: datetime = timestamptz()
    charged_minutes: int = Field(sa_type=Integer)
    estimate_minutes: int | None = Field(default=None, sa_type=Integer)
    approved_estimate_minutes: int | None = Field(default=None, sa_type=Integer)
    decided_by: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    decided_at: datetime | None = timestamptz(nullable=True, default=None)
    note: str | None = Field(default=None, sa_type=Text)
