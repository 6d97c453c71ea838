"""Creating, listing and revoking API keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import NotFound, invalid_field
from app.models import Agent, ApiKey, Contact, Organization
from app.pagination import keyset, page_of
from app.schemas.api_keys import ApiKeyCreate, ApiKeyRead, ApiKeyUpdate, MeRead
from app.schemas.directory import AgentRead, ContactRead, OrganizationRead
from app.security import Principal, Role, hash_key, new_key, visible_prefix
from app.services.common import apply_changes


async def create_api_key(session: AsyncSession, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    """Returns the row and the key itself, which is never stored and never shown again."""
    if data.role is Role.CUSTOMER:
        if data.organization_id is None:
            raise invalid_field("body.organization_id", "a customer key needs its organization")
        if await session.get(Organization, data.organization_id) is None:
            raise invalid_field("body.organization_id", "no organization with this id")
        if data.contact_id is not None:
            contact = await session.get(Contact, data.contact_id)
            if contact is None or contact.organization_id != data.organization_id:
                raise invalid_field(
                    "body.contact_id", "no contact with this id in the organization"
                )
        if data.agent_id is not None:
            raise invalid_field("body.agent_id", "only staff keys act as an agent")
    else:
        if data.organization_id is not None:
            raise invalid_field("body.organization_id", "only customer keys are bound to one")
        if data.contact_id is not None:
            raise invalid_field("body.contact_id", "only customer keys are bound to a contact")
        if data.agent_id is not None and data.role is Role.MAIL:
            raise invalid_field("body.agent_id", "a mail key delivers messages; it is no agent")
        if data.agent_id is not None and await session.get(Agent, data.agent_id) is None:
            raise invalid_field("body.agent_id", "no agent with this id")
    if data.expires_at is not None and data.expires_at <= datetime.now(UTC):
        raise invalid_field("body.expires_at", "must be in the future")
    key = new_key()
    row = ApiKey(
        name=data.name,
        role=data.role.value,
        prefix=visible_prefix(key),
        key_hash=hash_key(key),
        organization_id=data.organization_id,
        contact_id=data.contact_id,
        agent_id=data.agent_id,
        expires_at=data.expires_at,
    )
    session.add(row)
    await session.flush()
    return row, key


async def list_api_keys(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    prefix: str | None = None,
    include_revoked: bool = False,
) -> tuple[list[ApiKey], str | None]:
    stmt = select(ApiKey)
    if prefix:
        stmt = stmt.where(col(ApiKey.prefix).startswith(prefix, autoescape=True))
    if not include_revoked:
        stmt = stmt.where(col(ApiKey.revoked_at).is_(None))
    stmt = keyset(stmt, [col(ApiKey.created_at), col(ApiKey.id)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def update_api_key(session: AsyncSession, key_id: uuid.UUID, data: ApiKeyUpdate) -> ApiKey:
    """Rename a key, or bind a staff key to an agent (or unbind it)."""
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound("No API key with that id.")
    changes = data.changes()
    agent_id = changes.get("agent_id")
    if agent_id is not None:
        if row.role == Role.CUSTOMER.value:
            raise invalid_field("body.agent_id", "only staff keys act as an agent")
        if await session.get(Agent, agent_id) is None:
            raise invalid_field("body.agent_id", "no agent with this id")
    apply_changes(row, changes)
    await session.flush()
    return row


async def whoami(session: AsyncSession, principal: Principal) -> MeRead:
    row = await session.get(ApiKey, principal.key_id)
    assert row is not None  # it authenticated this request
    agent = await session.get(Agent, row.agent_id) if row.agent_id else None
    org = await session.get(Organization, row.organization_id) if row.organization_id else None
    contact = await session.get(Contact, row.contact_id) if row.contact_id else None
    return MeRead.model_validate(
        {
            **ApiKeyRead.model_validate(row).model_dump(),
            "actor": principal.actor(),
            "agent": AgentRead.model_validate(agent) if agent else None,
            "organization": OrganizationRead.model_validate(org) if org else None,
            "contact": ContactRead.model_validate(contact) if contact else None,
        }
    )


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound("No API key with that id.")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.flush()
    return row


async def count_active_admin_keys(session: AsyncSession) -> int:
    stmt = select(func.count()).where(
        col(ApiKey.role) == Role.ADMIN.value, col(ApiKey.revoked_at).is_(None)
    )
    return int((await session.execute(stmt)).scalar_one())


async def bootstrap_admin_key(session: AsyncSession, key: str | None = None) -> str | None:
    """On the very first start (no admin key yet), create an admin key and return it once.
    Customer keys made earlier (``sladesk load`` before the first ``serve``) do not count:
    without an admin key nobody could use them."""
    await session.execute(select(func.pg_advisory_xact_lock(0x5D_E5C0)))  # one replica wins
    stmt = select(col(ApiKey.id)).where(col(ApiKey.role) == Role.ADMIN.value).limit(1)
    if (await session.execute(stmt)).first() is not None:
        return None
    key = key or new_key()
    session.add(
        ApiKey(
            name="bootstrap admin",
            role=Role.ADMIN.value,
            prefix=visible_prefix(key),
            key_hash=hash_key(key),
        )
    )
    await session.flush()
    return key
