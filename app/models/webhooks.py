"""Webhook subscriptions, deliveries (event x subscription) and their attempts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from app.models.base import Entity, timestamptz, utcnow

DELIVERY_STATUSES = ("pending", "succeeded", "failed")


class WebhookSubscription(Entity, table=True):
    __tablename__ = "webhook_subscriptions"
    __table_args__ = (Index("ix_webhook_subscriptions_created_at_id", "created_at", "id"),)

    url: str = Field(sa_type=String(2048))
    # Catalogue names (app.events) or "*".
    event_types: list[str] = Field(sa_column=Column(ARRAY(String(64)), nullable=False))
    description: str | None = Field(default=None, max_length=500)
    active: bool = Field(default=True)
    # Why and when it stopped (410 Gone from the receiver, or an admin); null while active.
    disabled_reason: str | None = Field(default=None, max_length=500)
    disabled_at: datetime | None = timestamptz(nullable=True, default=None)
    # Signing secrets (``whsec_…``). HMAC needs the secret itself, so it is stored as is;
    # it leaves the service only in the create and rotate responses.
    secret: str = Field(sa_type=String(128))
    previous_secret: str | None = Field(default=None, sa_type=String(128))
    previous_secret_expires_at: datetime | None = timestamptz(nullable=True, default=None)


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription. Unique per (event, subscription): fan-out by any
    number of dispatchers makes one row. ``status`` is ``pending`` until it succeeds or
    fails for good; a pending row with ``locked_until`` in the future is being sent."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        # The dispatcher's queue.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where="status = 'pending'",
        ),
        # Per-ticket order: is an earlier delivery of this ticket still pending?
        Index(
            "ix_webhook_deliveries_pending_ticket",
            "subscription_id",
            "ticket_id",
            "event_seq",
            postgresql_where="status = 'pending' AND ticket_id IS NOT NULL",
        ),
        Index("ix_webhook_deliveries_created_at_id", "created_at", "id"),
        Index(
            "ix_webhook_deliveries_subscription_id_created_at_id",
            "subscription_id",
            "created_at",
            "id",
        ),
        Index("ix_webhook_deliveries_ticket_id", "ticket_id"),
        # Retention (app.workers.retention): the oldest succeeded deliveries first.
        Index(
            "ix_webhook_deliveries_succeeded_completed_at",
            "completed_at",
            postgresql_where="status = 'succeeded'",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    event_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("outbox_events.id", ondelete="CASCADE"), nullable=False)
    )
    subscription_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False)
    )
    # Copied from the event: the queue and the filters need no join.
    event_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    event_type: str = Field(max_length=64)
    ticket_id: uuid.UUID | None = Field(default=None)

    status: str = Field(default="pending", sa_type=String(16))
    attempt_count: int = Field(default=0, sa_type=Integer)
    next_attempt_at: datetime | None = timestamptz(nullable=True, default=None)
    # The lease of the dispatcher sending it; expired = abandoned (crash), so it is retried.
    locked_until: datetime | None = timestamptz(nullable=True, default=None)
    lease_token: uuid.UUID | None = Field(default=None)
    # Set by POST …/redeliver until the attempt it asked for is recorded.
    redeliver_requested_at: datetime | None = timestamptz(nullable=True, default=None)
    last_attempt_at: datetime | None = timestamptz(nullable=True, default=None)
    last_status_code: int | None = Field(default=None, sa_type=SmallInteger)
    last_error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = timestamptz(default_factory=utcnow)
    completed_at: datetime | None = timestamptz(nullable=True, default=None)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP request of a delivery (its id is chosen before sending, so recording the
    result twice after a lost commit acknowledgement inserts it once)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery_id_number", "delivery_id", "number"),
        CheckConstraint("outcome IN ('succeeded', 'failed')", name="outcome"),
    )

    id: uuid.UUID = Field(primary_key=True)
    delivery_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False)
    )
    number: int = Field(sa_type=Integer)
    trigger: str = Field(sa_type=String(16))  # "schedule" or "redeliver"
    started_at: datetime = timestamptz()
    duration_ms: int = Field(sa_type=Integer)
    status_code: int | None = Field(default=None, sa_type=SmallInteger)
    outcome: str = Field(sa_type=String(16))
    error: str | None = Field(default=None, sa_type=Text)
    response_excerpt: str | None = Field(default=None, sa_type=Text)
