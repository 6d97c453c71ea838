"""Tickets, their time-stamped history, and their SLA clocks."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Sequence,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import Entity, timestamptz, utcnow

TICKET_NUMBER_SEQ = Sequence("ticket_number_seq", metadata=SQLModel.metadata)


class Ticket(Entity, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(
            "status IN ('new', 'open', 'in_progress', 'waiting_on_customer', "
            "'waiting_on_vendor', 'resolved', 'closed')",
            name="status",
        ),
        CheckConstraint("tier BETWEEN 1 AND 4", name="tier"),
        # Keyset pagination by receipt, per organization and overall.
        Index("ix_tickets_received_at_id", "received_at", "id"),
        Index("ix_tickets_organization_id_received_at_id", "organization_id", "received_at", "id"),
        Index("ix_tickets_status_received_at_id", "status", "received_at", "id"),
        Index("ix_tickets_assignee_id_received_at_id", "assignee_id", "received_at", "id"),
        # "What is due next": open tickets by their earliest running due time.
        Index(
            "ix_tickets_next_due_at_id",
            "next_due_at",
            "id",
            postgresql_where="next_due_at IS NOT NULL",
        ),
        Index(
            "ix_tickets_auto_close_at",
            "auto_close_at",
            postgresql_where="auto_close_at IS NOT NULL",
        ),
    )

    number: int = Field(
        sa_column=Column(
            BigInteger,
            TICKET_NUMBER_SEQ,
            server_default=TICKET_NUMBER_SEQ.next_value(),
            nullable=False,
            unique=True,
        )
    )
    organization_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("organizations.id"), nullable=False)
    )
    contact_id: uuid.UUID = Field(sa_column=Column(ForeignKey("contacts.id"), nullable=False))
    channel: str = Field(sa_type=String(20))
    severity: str = Field(sa_type=String(20))
    category: str = Field(sa_type=String(40))
    subject: str = Field(max_length=300)
    description: str = Field(sa_type=Text)
    status: str = Field(default="new", sa_type=String(30))
    tier: int = Field(default=1, sa_type=SmallInteger)
    assignee_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("agents.id"), nullable=True)
    )
    entitled: bool = True
    override_reason: str | None = Field(default=None, sa_type=Text)
    entitlement_reasons: list[str] = Field(default_factory=list, sa_type=JSONB)
    plan_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("plans.id"), nullable=True)
    )
    contract_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("contracts.id"), nullable=True)
    )
    # The effective plan as it was when the ticket arrived (and after later plan edits).
    plan_snapshot: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    after_hours: bool = False
    received_at: datetime = timestamptz()
    contact_attempts: int = Field(default=0, sa_type=SmallInteger)
    auto_close_at: datetime | None = timestamptz(nullable=True, default=None)
    close_reason: str | None = Field(default=None, sa_type=String(20))
    resolution: str | None = Field(default=None, sa_type=String(20))
    resolved_at: datetime | None = timestamptz(nullable=True, default=None)
    closed_at: datetime | None = timestamptz(nullable=True, default=None)
    follows_up_ticket_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("tickets.id"), nullable=True)
    )
    vendor: str | None = Field(default=None, max_length=200)
    vendor_case_ref: str | None = Field(default=None, max_length=200)
    # Seed 004: the budgeted minutes; passing it needs the customer's authorization.
    estimate_minutes: int | None = Field(default=None, sa_type=Integer)
    # Earliest due instant among running timed clocks (derived; kept for sorting/filters).
    next_due_at: datetime | None = timestamptz(nullable=True, default=None)
    last_event_at: datetime = timestamptz()
    version: int = Field(default=1, sa_type=Integer)
    # While closed by the timer's auto-close: what it closed (contact attempts, the close
    # instant and event, each clock as it was), so that an action logged late and dated
    # before the close can be taken at its instant (services/reevaluation.py).
    auto_closed_from: dict[str, Any] | None = Field(default=None, sa_type=JSONB)


class TicketEvent(SQLModel, table=True):
    """One line of a ticket's timeline: what happened (occurred_at) and when we heard."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_seq", "ticket_id", "seq"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True),
    )
    ticket_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    )
    kind: str = Field(max_length=40)
    public: bool = True
    actor: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    body: str | None = Field(default=None, sa_type=Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    occurred_at: datetime = timestamptz()
    recorded_at: datetime = timestamptz(default_factory=utcnow)


class SlaClock(SQLModel, table=True):
    """A ticket x target (see app.domain.sla.Clock, which this row persists)."""

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "metric"),
        # The timer loop's queue: the exact instant of each clock's next threshold.
        Index(
            "ix_sla_clocks_next_check_at",
            "next_check_at",
            postgresql_where="next_check_at IS NOT NULL",
        ),
        # Running timed clocks by due instant (`due_before`, `breached` filters).
        Index("ix_sla_clocks_due_at", "due_at", postgresql_where="due_at IS NOT NULL"),
        Index("ix_sla_clocks_calendar_id", "calendar_id", postgresql_where="stopped_at IS NULL"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    ticket_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    )
    metric: str = Field(sa_type=String(20))
    # The plan target in force (its JSON, with its index in the plan).
    target: dict[str, Any] = Field(sa_type=JSONB)
    minutes: int | None = Field(default=None, sa_type=Integer)
    kind: str = Field(sa_type=String(10))
    # The business calendar counting it (null for 24x7 clocks). No foreign key: a deleted
    # calendar keeps counting the clocks timed with it, on its last version
    # (calendar_versions; services.clocks.calendar_set).
    calendar_id: uuid.UUID | None = Field(default=None, nullable=True)
    started_at: datetime = timestamptz()
    changed_at: datetime = timestamptz()
    running_since: datetime | None = timestamptz(nullable=True, default=None)
    elapsed_us: int = Field(default=0, sa_type=BigInteger)
    stopped_at: datetime | None = timestamptz(nullable=True, default=None)
    breached_at: datetime | None = timestamptz(nullable=True, default=None)
    thresholds: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    crossings: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    # Derived, stored for indexes: due instant while running; next unfired threshold.
    due_at: datetime | None = timestamptz(nullable=True, default=None)
    next_check_at: datetime | None = timestamptz(nullable=True, default=None)
    # History: the due instant in force when it stopped (app.domain.sla.Clock).
    final_due_at: datetime | None = timestamptz(nullable=True, default=None)


class SlaFiring(SQLModel, table=True):
    """A threshold fired by the timer: the unique key makes a second firing impossible."""

    __tablename__ = "sla_firings"
    __table_args__ = (UniqueConstraint("clock_id", "key", "cycle"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    clock_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("sla_clocks.id", ondelete="CASCADE"), nullable=False)
    )
    ticket_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    key: str = Field(max_length=40)
    cycle: int = Field(default=0, sa_type=Integer)
    # The threshold's exact instant, and when the timer fired it.
    instant: datetime = timestamptz()
    fired_at: datetime = timestamptz(default_factory=utcnow)


class IdempotencyKey(SQLModel, table=True):
    """`Idempotency-Key` of ticket intake: a retry returns the first response."""

    __tablename__ = "idempotency_keys"
    # Retention (app.workers.retention) prunes keys past their window, oldest first.
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    api_key_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    ticket_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False)
    )
    response: dict[str, Any] = Field(sa_type=JSONB)
    created_at: datetime = timestamptz(default_factory=utcnow)
