"""API keys on the wire. The key itself appears only in the creation response."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from app.schemas.common import Instant, NonBlank, PatchModel, ReadModel, StrictModel
from app.schemas.directory import AgentRead, ContactRead, OrganizationRead
from app.security import Role


class ApiKeyCreate(StrictModel):
    name: Annotated[str, NonBlank(200)]
    role: Role
    organization_id: uuid.UUID | None = Field(default=None, description="required for customer")
    contact_id: uuid.UUID | None = Field(default=None, description="customer keys only")
    agent_id: uuid.UUID | None = Field(
        default=None,
        description="staff keys: the agent this key acts as (its actions and their automatic "
        "follow-ups are that agent's)",
    )
    expires_at: Instant | None = None


class ApiKeyUpdate(PatchModel):
    nullable = frozenset({"agent_id"})

    name: Annotated[str, NonBlank(200)] | None = None
    agent_id: uuid.UUID | None = Field(
        default=None,
        description="staff keys: bind to this agent (null unbinds; an unbound key's actions "
        "are recorded as the key, by its name)",
    )


class ApiKeyRead(ReadModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="first characters of the key, to recognise it")
    role: Role
    organization_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="the API key; shown only this once, store it now")


class MeRead(ApiKeyRead):
    """Who a key is: the key, what it is bound to, and how its actions are recorded."""

    actor: dict[str, Any] = Field(
        description="what the timeline, work logs and webhooks record for this key's actions"
    )
    agent: AgentRead | None = Field(description="the agent a staff key acts as")
    organization: OrganizationRead | None = Field(description="a customer key's organization")
    contact: ContactRead | None = Field(description="a customer key's contact")
