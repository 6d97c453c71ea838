"""Organizations, contacts and agents on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import EmailStr, Field, StringConstraints

from app.domain.vocab import DEFAULT_LOCALE, LOCALE_PATTERN, ContactRole
from app.schemas.common import EmailDefaults, EmailDomains, PatchModel, ReadModel, StrictModel

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=50)]
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
    int, Field(ge=1, le=4, description="1 support team, 2 senior, 3 development, 4 vendor")
]


class OrganizationCreate(StrictModel):
    name: Name
    external_ref: str | None = Field(default=None, max_length=100)
    notes: str | None = Field(default=None, max_length=4000)
    active: bool = True
    locale: Locale = DEFAULT_LOCALE
    email_domains: EmailDomains = Field(default_factory=list)
    email_defaults: EmailDefaults | None = Field(
        default=None, description="overrides the plan's e-mail defaults"
    )


class OrganizationUpdate(PatchModel):
    nullable = frozenset({"external_ref", "notes", "email_defaults"})

    name: Name | None = None
    external_ref: str | None = Field(default=None, max_length=100)
    notes: str | None = Field(default=None, max_length=4000)
    active: bool | None = None
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
    email: EmailStr
    phone: Phone | None = None
    role: ContactRole = ContactRole.AUTHORIZED


class ContactUpdate(PatchModel):
    nullable = frozenset({"phone"})

    name: Name | None = None
    email: EmailStr | None = None
    phone: Phone | None = None
    role: ContactRole | None = None
    active: bool | None = Field(
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
    email: EmailStr
    tier: Tier = 1
    active: bool = True


class AgentUpdate(PatchModel):
    name: Name | None = None
    email: EmailStr | None = None
    tier: Tier | None = None
    active: bool | None = None


class AgentRead(ReadModel):
    id: uuid.UUID
    name: str
    email: str
    tier: int
    active: bool
    created_at: datetime
    updated_at: datetime
