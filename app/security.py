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
from typing import Annotated, NamedTuple

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlmodel import col

from app import db
from app.db import SessionDep
from app.errors import Forbidden, NotFound, Unauthorized
from app.http_contract import authenticates, check_request
from app.models import ApiKey, StreamToken

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
    key_name: str | None = None

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

    def actor(self, *, contact_id: uuid.UUID | None = None) -> dict[str, str | None]:
        """How events record who acted: the key (its id and name), the agent a staff key is
        bound to, the contact a customer key is bound to, or ``contact_id`` (the customer
        whose message staff are logging)."""
        contact = contact_id or self.contact_id
        return {
            "role": self.role.value,
            "api_key_id": str(self.key_id),
            "api_key_name": self.key_name,
            "agent_id": str(self.agent_id) if self.agent_id else None,
            "contact_id": str(contact) if contact else None,
        }


SYSTEM_ACTOR: dict[str, str | None] = {"role": "system"}


def actor_of(principal: Principal | None) -> dict[str, str | None]:
    """The actor of a change: the key's, or the system's (timers, no key at all)."""
    return principal.actor() if principal is not None else dict(SYSTEM_ACTOR)


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sld_…`")


@authenticates
async def _authenticated(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The key's principal, whatever its role."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send an API key as 'Authorization: Bearer <key>'.")
    # Every request asks this: a plain statement of the columns a principal is made of,
    # not an ORM entity (whose loading cost more than the rest of a ticket read).
    row = await db.fetch_row(session, _KEY_BY_HASH, hash_key(credentials.credentials))
    if row is None:
        raise Unauthorized("This API key is not valid.")
    return _principal(request, _KeyRow(*row))


class _KeyRow(NamedTuple):
    """The columns a principal is made of."""

    id: uuid.UUID
    role: str
    organization_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    agent_id: uuid.UUID | None
    name: str
    revoked_at: datetime | None
    expires_at: datetime | None


_KEY_BY_HASH = f"SELECT {', '.join(_KeyRow._fields)} FROM api_keys WHERE key_hash = $1"


def _principal(request: Request, row: ApiKey | _KeyRow) -> Principal:
    """The key's principal once it is known valid; then the request's own contract
    (undeclared query parameters, body types: app.http_contract) is checked."""
    if row.revoked_at is not None:
        raise Unauthorized("This API key was revoked.")
    if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
        raise Unauthorized("This API key has expired.")
    principal = Principal(
        key_id=row.id,
        role=Role(row.role),
        organization_id=row.organization_id,
        contact_id=row.contact_id,
        agent_id=row.agent_id,
        key_name=row.name,
    )
    request.state.principal = principal
    check_request(request)
    return principal


def _not_mail(principal: Principal) -> Principal:
    """A mail key may deliver messages (POST /v1/mail/inbound) and do nothing else."""
    if principal.role is Role.MAIL:
        raise Forbidden("A mail key may only deliver messages to POST /v1/mail/inbound.")
    return principal


async def current_principal(
    principal: Annotated[Principal, Depends(_authenticated)],
) -> Principal:
    """The caller of every endpoint but the mail intake."""
    return _not_mail(principal)


async def mail_principal(
    principal: Annotated[Principal, Depends(_authenticated)],
) -> Principal:
    """The caller of the mail intake: a mail key (a cloud relay) or an admin."""
    if principal.role not in (Role.MAIL, Role.ADMIN):
        raise Forbidden(f"This needs a key with role mail or admin; yours is {principal.role}.")
    return principal


STREAM_TOKEN_PREFIX = "sst_"


@authenticates
async def stream_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[A-Za-z0-9_-]{1,200}$",
            description="a stream token (`POST /v1/events/stream-tokens`), for clients that "
            "cannot send an Authorization header, such as a browser's EventSource",
        ),
    ] = None,
) -> Principal:
    """The event stream's key: an API key in the header, or a stream token in the URL."""
    if credentials is not None or access_token is None:
        return _not_mail(await _authenticated(request, session, credentials))
    row = (
        await session.execute(
            select(ApiKey)
            .join(StreamToken, col(StreamToken.api_key_id) == col(ApiKey.id))
            .where(
                col(StreamToken.token_hash) == hash_key(access_token),
                col(StreamToken.expires_at) > datetime.now(UTC),
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise Unauthorized(
            "This stream token is not valid or has expired; get a new one from "
            "POST /v1/events/stream-tokens."
        )
    return _not_mail(_principal(request, row))


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
StreamKey = Annotated[Principal, Depends(stream_principal)]
AdminKey = Annotated[Principal, Depends(require(Role.ADMIN))]
MailKey = Annotated[Principal, Depends(mail_principal)]
