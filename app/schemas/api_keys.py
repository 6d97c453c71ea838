"""API keys on the wire. The key itself appears only in the creation response."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field

from app.schemas.common import Instant, NonBlank, ReadModel, StrictModel
from app.security import Role


class ApiKeyCreate(StrictModel):
    name: Annotated[str, NonBlank(200)]
    role: Role
    organization_id: uuid.UUID | None = Field(default=None, description="required for customer")
    contact_id: uuid.UUID | None = Field(default=None, description="customer keys only")
    agent_id: uuid.UUID | None = Field(default=None, description="staff keys acting as an agent")
    expires_at: Instant | None = None


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
