"""API keys, roles and scoping.

``Authorization: Bearer <key>``. Keys are random, stored as SHA-256 (they carry 256 bits of
entropy, so a slow hash adds nothing), shown once. Roles: ``admin`` (everything),
``agent`` (the support desk's staff), ``customer`` (bound to one organization, optionally
one contact), ``mail`` (a cloud relay: it may only deliver raw messages to
``POST /v1/mail/inbound``; every other endpoint refuses it). A customer key sees only its
own organization: another organization's resource is a 404, so existence does not leak.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlmodel import col

from app.db import SessionDep
from app.errors import Forbidden, NotFound, Unauthorized
from app.models import ApiKey

KEY_PREFIX = "sld_"
VISIBLE_PREFIX_LENGTH = 12  # "sld_" + 8 characters: enough to tell keys apart in a list


class Role(StrEnum):
    ADMIN = "admin"
    AGENT = "agent"
    CUSTOMER = "customer"
    MAIL = "mail"


STAFF = (Role.ADMIN, Role.AGENT)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def visible_prefix(key: str) -> str:
    return key[:VISIBLE_PREFIX_LENGTH]


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, role and scope."""

    key_id: uuid.UUID
    role: Role
    organization_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None

    @property
    def is_customer(self) -> bool:
        return self.role is Role.CUSTOMER

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF

    def can_see_organization(self, organization_id: uuid.UUID) -> bool:
        return not self.is_customer or self.organization_id == organization_id

    def ensure_organization(self, organization_id: uuid.UUID, what: str = "organization") -> None:
        """404 (not 403) for a customer key asking about another organization."""
        if not self.can_see_organization(organization_id):
            raise NotFound(f"No {what} with that id.")

    def actor(self) -> dict[str, str | None]:
        """How events record who acted."""
        return {
            "role": self.role.value,
            "api_key_id": str(self.key_id),
            "agent_id": str(self.agent_id) if self.agent_id else None,
            "contact_id": str(self.contact_id) if self.contact_id else None,
        }


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sld_…`")


async def _authenticated(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The key's principal, whatever its role."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send an API key as 'Authorization: Bearer <key>'.")
    row = (
        await session.execute(
            select(ApiKey).where(col(ApiKey.key_hash) == hash_key(credentials.credentials))
        )
    ).scalar_one_or_none()
    now = datetime.now(UTC)
    if row is None:
        raise Unauthorized("This API key is not valid.")
    if row.revoked_at is not None:
        raise Unauthorized("This API key was revoked.")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("This API key has expired.")
    principal = Principal(
        key_id=row.id,
        role=Role(row.role),
        organization_id=row.organization_id,
        contact_id=row.contact_id,
        agent_id=row.agent_id,
    )
    request.state.principal = principal
    return principal


async def current_principal(
    principal: Annotated[Principal, Depends(_authenticated)],
) -> Principal:
    """The caller of every endpoint but the mail intake: a mail key may do nothing else."""
    if principal.role is Role.MAIL:
        raise Forbidden("A mail key may only deliver messages to POST /v1/mail/inbound.")
    return principal


async def mail_principal(
    principal: Annotated[Principal, Depends(_authenticated)],
) -> Principal:
    """The caller of the mail intake: a mail key (a cloud relay) or an admin."""
    if principal.role not in (Role.MAIL, Role.ADMIN):
        raise Forbidden(f"This needs a key with role mail or admin; yours is {principal.role}.")
    return principal


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that admits only the given roles (403 for the others)."""
    allowed = frozenset(roles)

    async def dependency(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> Principal:
        if principal.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"This needs a key with role {names}; yours is {principal.role.value}.")
        return principal

    return dependency


AnyKey = Annotated[Principal, Depends(current_principal)]
StaffKey = Annotated[Principal, Depends(require(Role.ADMIN, Role.AGENT))]
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
MailKey = Annotated[Principal, Depends(mail_principal)]
