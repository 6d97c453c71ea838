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
    # Of after_hours_minutes, the part outside every window the client requested (charged
    # as business time), and the request the rest (charged x multiplier) relies on.
    unrequested_minutes: int = Field(
        default=0, sa_type=Integer, sa_column_kwargs={"server_default": "0"}
    )
    after_hours_request_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(
            ForeignKey("after_hours_requests.id", ondelete="RESTRICT"), nullable=True, index=True
        ),
    )
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


class AfterHoursRequest(Entity, table=True):
    """The client's request for after-hours attention (seed 004: "they must request it in
    advance and via email"): who asked, when, for which window. On a ticket, or on a
    contract as a standing agreement for all its tickets."""

    __tablename__ = "after_hours_requests"
    __table_args__ = (
        CheckConstraint("(ticket_id IS NULL) <> (contract_id IS NULL)", name="scope"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("requested_at <= starts_at", name="in_advance"),
        Index("ix_after_hours_requests_ticket_id_starts_at", "ticket_id", "starts_at"),
        Index("ix_after_hours_requests_contract_id_starts_at", "contract_id", "starts_at"),
    )

    organization_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False)
    )
    ticket_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=True)
    )
    contract_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("contracts.id", ondelete="CASCADE"), nullable=True),
    )
    contact_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("contacts.id", ondelete="RESTRICT"), nullable=False)
    )
    requested_at: datetime = timestamptz()
    starts_at: datetime = timestamptz()
    ends_at: datetime = timestamptz()
    channel: str = Field(default="email", sa_type=String(20))
    reference: str | None = Field(default=None, sa_type=Text)
    recorded_by: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
