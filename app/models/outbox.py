"""The transactional outbox: every change others may care about, written in the same
transaction as the change (DESIGN rule 5). Webhooks are delivered from here."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Identity, Index
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz, utcnow


class OutboxEvent(SQLModel, table=True):
    __tablename__ = "outbox_events"
    __table_args__ = (
        # The dispatcher's queue: events not yet fanned out to subscriptions, in order.
        Index(
            "ix_outbox_events_pending_seq",
            "seq",
            postgresql_where="dispatched_at IS NULL",
        ),
        Index("ix_outbox_events_ticket_id_seq", "ticket_id", "seq"),
        # Retention (app.workers.retention): the oldest dispatched events first.
        Index(
            "ix_outbox_events_dispatched_at",
            "dispatched_at",
            postgresql_where="dispatched_at IS NOT NULL",
        ),
        # The mail composer's queue: events not yet looked at for customer e-mail.
        Index("ix_outbox_events_mail_pending_seq", "seq", postgresql_where="mailed_at IS NULL"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    # Commit order is not id order; a sequence gives a total order for per-ticket delivery.
    seq: int | None = Field(
        default=None,
        sa_column=Column(BigInteger, Identity(always=True), nullable=False, unique=True),
    )
    type: str = Field(max_length=64)
    organization_id: uuid.UUID | None = Field(default=None)
    ticket_id: uuid.UUID | None = Field(default=None)
    # When the thing happened in business terms (e.g. a threshold's exact instant).
    occurred_at: datetime = timestamptz()
    created_at: datetime = timestamptz(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    dispatched_at: datetime | None = timestamptz(nullable=True, default=None)
    # When the mail composer handled it (app.workers.mail_sender); null = not yet.
    mailed_at: datetime | None = timestamptz(nullable=True, default=None)
    # The timeline event it reports (its body is what an e-mail to the customer says).
    ticket_event_id: uuid.UUID | None = Field(default=None)
