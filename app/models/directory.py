"""Organizations (the customers), their contacts, and the vendor's agents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field

from app.domain.vocab import DEFAULT_LOCALE
from app.models.base import Entity, timestamptz


class Organization(Entity, table=True):
    __tablename__ = "organizations"
    __table_args__ = (
        Index("ux_organizations_name_lower", text("lower(name)"), unique=True),
        Index("ix_organizations_created_at_id", "created_at", "id"),
        Index("ix_organizations_external_ref", "external_ref"),
        # `GET /v1/organizations?q=`: words of the name (services.directory.NAME_DOCUMENT).
        Index(
            "ix_organizations_name_search",
            text("to_tsvector('simple'::regconfig, name)"),
            postgresql_using="gin",
        ),
        # Which organization an unknown sender's domain belongs to (e-mail routing).
        Index("ix_organizations_email_domains", "email_domains", postgresql_using="gin"),
    )

    name: str = Field(max_length=200)
    external_ref: str | None = Field(default=None, max_length=100)
    notes: str | None = Field(default=None, max_length=4000)
    active: bool = Field(default=True)
    # The language (and region) the organization is written to in, e.g. "es-MX".
    locale: str = Field(
        default=DEFAULT_LOCALE,
        max_length=10,
        sa_column_kwargs={"server_default": DEFAULT_LOCALE},
    )
    # Domains whose unknown senders are this organization's people (lower-case).
    email_domains: list[str] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(String(255)), nullable=False, server_default="{}"),
    )
    # {"severity", "category"} of tickets made from its e-mail (overrides the plan's).
    email_defaults: dict[str, Any] | None = Field(default=None, sa_type=JSONB)


class Contact(Entity, table=True):
    __tablename__ = "contacts"
    __table_args__ = (
        Index(
            "ux_contacts_organization_id_email_lower",
            "organization_id",
            text("lower(email)"),
            unique=True,
        ),
        Index("ix_contacts_organization_id_created_at_id", "organization_id", "created_at", "id"),
        # `GET /v1/contacts?email=`: a person across organizations.
        Index("ix_contacts_email_lower", text("lower(email)")),
        CheckConstraint("role IN ('authorized', 'end_user')", name="role"),
    )

    organization_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False)
    )
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    phone: str | None = Field(default=None, max_length=50)
    role: str = Field(default="authorized", sa_type=String(20))
    active: bool = Field(default=True)
    deactivated_at: datetime | None = timestamptz(nullable=True, default=None)


class Agent(Entity, table=True):
    __tablename__ = "agents"
    __table_args__ = (
        Index("ux_agents_email_lower", text("lower(email)"), unique=True),
        Index("ix_agents_created_at_id", "created_at", "id"),
        CheckConstraint("tier BETWEEN 1 AND 4", name="tier"),
    )

    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    tier: int = Field(default=1, sa_type=SmallInteger)
    active: bool = Field(default=True)
