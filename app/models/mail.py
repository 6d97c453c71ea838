"""The e-mail channel: every message received (kept whole, deduplicated by Message-ID),
its attachments, every message composed for a customer, and each attempt to send one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import Entity, timestamptz

INBOUND_STATUSES = ("ticket", "reply", "rejected")
OUTBOUND_STATUSES = ("held", "pending", "sent", "failed", "suppressed")


class InboundMail(Entity, table=True):
    """A message that reached us, stored before anything else happens. ``status``:
    ``ticket`` (it made one), ``reply`` (added to one), ``rejected`` (kept with its
    ``reason``; staff may accept it)."""

    __tablename__ = "mail_inbound"
    __table_args__ = (
        CheckConstraint("status IN ('ticket', 'reply', 'rejected')", name="status"),
        CheckConstraint("source IN ('smtp', 'lmtp', 'http')", name="source"),
        # The rejected list, newest first; a ticket's conversation.
        Index("ix_mail_inbound_status_received_at_id", "status", "received_at", "id"),
        Index("ix_mail_inbound_ticket_id_received_at", "ticket_id", "received_at"),
        Index("ix_mail_inbound_reason_received_at", "reason", "received_at"),
    )

    # With its brackets, as sent (or made from the content's hash when missing).
    message_id: str = Field(sa_type=String(998), unique=True)
    received_at: datetime = timestamptz()
    source: str = Field(sa_type=String(10))
    envelope_from: str | None = Field(default=None, sa_type=String(998))
    envelope_to: list[str] = Field(default_factory=list, sa_type=JSONB)
    from_address: str | None = Field(default=None, sa_type=String(998))
    from_name: str | None = Field(default=None, sa_type=Text)
    subject: str = Field(default="", sa_type=Text)
    in_reply_to: list[str] = Field(default_factory=list, sa_type=JSONB)
    references: list[str] = Field(default_factory=list, sa_type=JSONB)
    # The message exactly as received.
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int = Field(sa_type=Integer)
    # The text part, its newest reply (quoted history cut), the HTML part sanitized.
    text: str = Field(default="", sa_type=Text)
    reply_text: str = Field(default="", sa_type=Text)
    html: str | None = Field(default=None, sa_type=Text)

    status: str = Field(sa_type=String(20))
    reason: str | None = Field(default=None, sa_type=String(30))
    detail: str | None = Field(default=None, sa_type=Text)
    entitlement_reasons: list[str] = Field(default_factory=list, sa_type=JSONB)
    organization_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("organizations.id"), nullable=True, index=True)
    )
    contact_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("contacts.id"), nullable=True)
    )
    ticket_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("tickets.id"), nullable=True)
    )
    # The timeline event it made (created, customer_replied, reopened, confirmed).
    ticket_event_id: uuid.UUID | None = Field(default=None)
    processed_at: datetime | None = timestamptz(nullable=True, default=None)
    # A rejected message staff turned into a ticket: who, and why (as override_reason).
    accepted_by: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    override_reason: str | None = Field(default=None, sa_type=Text)


class MailAttachment(SQLModel, table=True):
    """An attachment of a received message; its bytes stay in the message's ``raw``
    (``part`` is its index in the MIME walk)."""

    __tablename__ = "mail_attachments"
    __table_args__ = (Index("ix_mail_attachments_inbound_id_part", "inbound_id", "part"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    inbound_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("mail_inbound.id", ondelete="CASCADE"), nullable=False)
    )
    part: int = Field(sa_type=Integer)
    filename: str = Field(sa_type=String(255))
    content_type: str = Field(sa_type=String(255))
    size: int = Field(sa_type=Integer)
    sha256: str = Field(sa_type=String(64))
    inline: bool = False


class OutboundMail(Entity, table=True):
    """A message composed for a customer from an outbox event (one per event), sent at
    least once with its own Message-ID. ``status``: ``held`` (no relay configured; sent
    once one is), ``pending`` (due at ``next_attempt_at``), ``sent``, ``failed`` (retries
    exhausted, refused for good, or bounced), ``suppressed`` (an answer that loop
    protection withheld; ``reason`` says why)."""

    __tablename__ = "mail_outbound"
    __table_args__ = (
        CheckConstraint(
            "status IN ('held', 'pending', 'sent', 'failed', 'suppressed')", name="status"
        ),
        # The sender's queue.
        Index(
            "ix_mail_outbound_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_mail_outbound_status_created_at_id", "status", "created_at", "id"),
        Index("ix_mail_outbound_created_at_id", "created_at", "id"),
        Index("ix_mail_outbound_ticket_id_created_at", "ticket_id", "created_at"),
        # Automatic answers per recipient and hour (loop protection).
        Index(
            "ix_mail_outbound_answers",
            "to_address",
            "created_at",
            postgresql_where=text("auto_submitted = 'auto-replied'"),
        ),
    )

    message_id: str = Field(sa_type=String(998), unique=True)
    kind: str = Field(sa_type=String(30))
    # The outbox event it answers (unique: composing an event twice makes one message).
    source_event_id: uuid.UUID | None = Field(default=None, unique=True)
    ticket_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("tickets.id"), nullable=True)
    )
    organization_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("organizations.id"), nullable=True, index=True)
    )
    contact_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("contacts.id"), nullable=True)
    )
    # The received message it answers (refusals).
    inbound_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("mail_inbound.id"), nullable=True)
    )
    from_address: str = Field(sa_type=String(998))
    to_address: str = Field(sa_type=String(998))
    to_name: str | None = Field(default=None, sa_type=Text)
    subject: str = Field(sa_type=Text)
    language: str = Field(sa_type=String(10))
    auto_submitted: str | None = Field(default=None, sa_type=String(20))
    in_reply_to: str | None = Field(default=None, sa_type=String(998))
    references: list[str] = Field(default_factory=list, sa_type=JSONB)
    text: str = Field(sa_type=Text)
    html: str = Field(sa_type=Text)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))

    status: str = Field(sa_type=String(20))
    reason: str | None = Field(default=None, sa_type=String(40))
    attempt_count: int = Field(default=0, sa_type=Integer)
    next_attempt_at: datetime | None = timestamptz(nullable=True, default=None)
    # The lease of the worker sending it; expired = abandoned, so it is sent again.
    locked_until: datetime | None = timestamptz(nullable=True, default=None)
    lease_token: uuid.UUID | None = Field(default=None)
    last_attempt_at: datetime | None = timestamptz(nullable=True, default=None)
    last_error: str | None = Field(default=None, sa_type=Text)
    sent_at: datetime | None = timestamptz(nullable=True, default=None)
    resend_requested_at: datetime | None = timestamptz(nullable=True, default=None)


class MailAttempt(SQLModel, table=True):
    """One hand-over of an outbound message to the relay (its id is chosen before
    sending, so recording it twice inserts it once)."""

    __tablename__ = "mail_attempts"
    __table_args__ = (
        Index("ix_mail_attempts_outbound_id_number", "outbound_id", "number"),
        CheckConstraint("outcome IN ('sent', 'failed')", name="outcome"),
    )

    id: uuid.UUID = Field(primary_key=True)
    outbound_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("mail_outbound.id", ondelete="CASCADE"), nullable=False)
    )
    number: int = Field(sa_type=Integer)
    trigger: str = Field(sa_type=String(16))  # "schedule" or "resend"
    started_at: datetime = timestamptz()
    duration_ms: int = Field(sa_type=Integer)
    outcome: str = Field(sa_type=String(16))
    smtp_code: int | None = Field(default=None, sa_type=SmallInteger)
    error: str | None = Field(default=None, sa_type=Text)
