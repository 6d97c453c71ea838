"""API keys: stored as a SHA-256 hash; the key itself is shown once, at creation."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String
from sqlmodel import Field, SQLModel

from app.models.base import Entity, timestamptz, utcnow


class ApiKey(Entity, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'agent', 'customer', 'mail')", name="role"),
        # A customer key is bound to exactly one organization; staff keys to none.
        CheckConstraint(
            "(role = 'customer') = (organization_id IS NOT NULL)", name="customer_organization"
        ),
        CheckConstraint("contact_id IS NULL OR role = 'customer'", name="contact_customer_only"),
    )

    name: str = Field(max_length=200)
    prefix: str = Field(max_length=16, index=True)
    key_hash: str = Field(max_length=64, unique=True)
    role: str = Field(sa_type=String(20))
    organization_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True),
    )
    contact_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("contacts.id", ondelete="CASCADE"), nullable=True),
    )
    agent_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
    )
    expires_at: datetime | None = timestamptz(nullable=True, default=None)
    revoked_at: datetime | None = timestamptz(nullable=True, default=None)


class StreamToken(SQLModel, table=True):
    """A short-lived credential for `GET /v1/events/stream` only, for clients that cannot
    send an Authorization header (a browser's EventSource): it rides in the URL, so it
    opens nothing else, expires quickly, and dies with its API key. Stored as SHA-256."""

    __tablename__ = "stream_tokens"
    __table_args__ = (Index("ix_stream_tokens_expires_at", "expires_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    api_key_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False)
    )
    expires_at: datetime = timestamptz()
    created_at: datetime = timestamptz(default_factory=utcnow)
