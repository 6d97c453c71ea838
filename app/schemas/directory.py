"""Organizations, contacts and agents on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from app.domain.vocab import DEFAULT_LOCALE, LOCALE_PATTERN, ContactRole
from app.schemas.common import (
    Bool,
    Email,
    EmailDefaults,
    EmailDomains,
    Int,
    NonBlank,
    PatchModel,
    ReadModel,
    StrictModel,
    Text,
)

Name = Annotated[str, NonBlank(200)]
Phone = Annotated[str, NonBlank(50, min_length=3)]
Locale = Annotated[
    str,
    Field(
        pattern=LOCALE_PATTERN,
        max_length=10,
        description="Language (and region) to write to the organization in: en, es, es-MX…",
        examples=["es-MX"],
    ),
]
Tier = Annotated[
    Int, Field(ge=1, le=4, description="1 support team, 2 senior, 3 development, 4 vendor")
]


class OrganizationCreate(StrictModel):
    name: Name
    external_ref: Annotated[str, Text(100)] | None = None
    notes: Annotated[str, Text(4000)] | None = None
    active: Bool = True
    locale: Locale = DEFAULT_LOCALE
    email_domains: EmailDomains = Field(default_factory=list)
    email_defaults: EmailDefaults | None = Field(
        default=None, description="overrides the plan's e-mail defaults"
    )


class OrganizationUpdate(PatchModel):
    nullable = frozenset({"external_ref", "notes", "email_defaults"})

    name: Name | None = None
    external_ref: Annotated[str, Text(100)] | None = None
    notes: Annotated[str, Text(4000)] | None = None
    active: Bool | None = None
    locale: Locale | None = None
    email_domains: EmailDomains | None = None
    email_defaults: EmailDefaults | None = None


class OrganizationRead(ReadModel):
    id: uuid.UUID
    name: str
    external_ref: str | None
    notes: str | None
    active: bool
    locale: str
    email_domains: list[str]
    email_defaults: EmailDefaults | None
    created_at: datetime
    updated_at: datetime


class ContactCreate(StrictModel):
    name: Name
    email: Email
    phone: Phone | None = None
    role: ContactRole = ContactRole.AUTHORIZED


class ContactUpdate(PatchModel):
    nullable = frozenset({"phone"})

    name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    role: ContactRole | None = None
    active: Bool | None = Field(
        default=None, description="false deactivates (personnel change); history is kept"
    )


class ContactRead(ReadModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    email: str
    phone: str | None
    role: ContactRole
    active: bool
    deactivated_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AgentCreate(StrictModel):
    name: Name
    email: Email
    tier: Tier = 1
    active: Bool = True


class AgentUpdate(PatchModel):
    name: Name | None = None
    email: Email | None = None
    tier: Tier | None = None
    active: Bool | None = None


class AgentRead(ReadModel):
    id: uuid.UUID
    name: str
    email: str
    tier: int
    active: bool
    created_at: datetime
    updated_at: datetime
