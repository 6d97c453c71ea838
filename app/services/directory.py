"""Organizations, contacts and agents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import false, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import Conflict, NotFound
from app.models import Agent, Contact, Organization
from app.pagination import keyset, page_of
from app.schemas.directory import (
    AgentCreate,
    AgentUpdate,
    ContactCreate,
    ContactUpdate,
    OrganizationCreate,
    OrganizationUpdate,
)
from app.security import Principal
from app.services import search
from app.services.common import apply_changes, flush_or_conflict

ORG_CONFLICTS = {"ux_organizations_name_lower": "An organization with this name already exists."}
CONTACT_CONFLICTS = {
    "ux_contacts_organization_id_email_lower": (
        "This organization already has a contact with this email (emails are case-insensitive)."
    )
}
AGENT_CONFLICTS = {"ux_agents_email_lower": "An agent with this email already exists."}


# Organizations ------------------------------------------------------------------------


async def get_organization(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID
) -> Organization:
    principal.ensure_organization(organization_id)
    row = await session.get(Organization, organization_id)
    if row is None:
        raise NotFound("No organization with that id.")
    return row


async def list_organizations(
    session: AsyncSession,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    q: str | None = None,
    external_ref: str | None = None,
) -> tuple[list[Organization], str | None]:
    """Oldest first; ``q``: every word of it in the name (the last one as a prefix);
    ``external_ref``: exactly that reference (the customer's id in another system)."""
    stmt = select(Organization)
    if principal.is_customer:
        stmt = stmt.where(col(Organization.id) == principal.organization_id)
    if q is not None:
        found = search.organization_match(q)
        stmt = stmt.where(found if found is not None else false())
    if external_ref is not None:
        stmt = stmt.where(col(Organization.external_ref) == external_ref)
    stmt = keyset(stmt, [col(Organization.created_at), col(Organization.id)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


_EMAIL_DOMAINS_LOCK = 7193560  # pg advisory lock key: one writer of e-mail domains at a time


async def _ensure_domains_free(
    session: AsyncSession, domains: list[str], organization_id: uuid.UUID | None
) -> None:
    """An e-mail domain names one organization (else its senders would be ambiguous)."""
    if not domains:
        return
    await session.execute(select(func.pg_advisory_xact_lock(_EMAIL_DOMAINS_LOCK)))
    column: Any = col(Organization.email_domains)
    stmt = select(Organization).where(column.overlap(domains))
    if organization_id is not None:
        stmt = stmt.where(col(Organization.id) != organization_id)
    other = (await session.execute(stmt.limit(1))).scalar_one_or_none()
    if other is not None:
        taken = sorted(set(domains) & set(other.email_domains))
        raise Conflict(
            f"The e-mail domain {', '.join(taken)} already belongs to organization "
            f"{other.name!r}; a domain names one organization.",
            domains=taken,
            organization_id=str(other.id),
        )


async def create_organization(session: AsyncSession, data: OrganizationCreate) -> Organization:
    await _ensure_domains_free(session, data.email_domains, None)
    row = Organization(**data.model_dump())
    session.add(row)
    await flush_or_conflict(session, ORG_CONFLICTS)
    return row


async def update_organization(
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    data: OrganizationUpdate,
) -> Organization:
    row = await get_organization(session, principal, organization_id)
    changes = data.changes()
    if changes.get("email_domains"):
        await _ensure_domains_free(session, changes["email_domains"], row.id)
    apply_changes(row, changes)
    await flush_or_conflict(session, ORG_CONFLICTS)
    return row


# Contacts ------------------------------------------------------------------------------


async def get_contact(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact:
    await get_organization(session, principal, organization_id)
    row = await session.get(Contact, contact_id)
    if row is None or row.organization_id != organization_id:
        raise NotFound("No contact with that id in this organization.")
    return row


async def list_contacts(
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
    active: bool | None = None,
) -> tuple[list[Contact], str | None]:
    await get_organization(session, principal, organization_id)
    stmt = select(Contact).where(col(Contact.organization_id) == organization_id)
    if active is not None:
        stmt = stmt.where(col(Contact.active) == active)
    stmt = keyset(stmt, [col(Contact.created_at), col(Contact.id)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def find_contacts(
    session: AsyncSession, *, email: str | None, cursor: str | None, limit: int
) -> tuple[list[Contact], str | None]:
    """Contacts of every organization (staff), by e-mail (case-insensitive, exact)."""
    stmt = select(Contact)
    if email is not None:
        stmt = stmt.where(func.lower(col(Contact.email)) == email.strip().lower())
    stmt = keyset(stmt, [col(Contact.created_at), col(Contact.id)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def create_contact(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, data: ContactCreate
) -> Contact:
    await get_organization(session, principal, organization_id)
    row = Contact(organization_id=organization_id, **data.model_dump())
    session.add(row)
    await flush_or_conflict(session, CONTACT_CONFLICTS)
    return row


async def update_contact(
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    contact_id: uuid.UUID,
    data: ContactUpdate,
) -> Contact:
    row = await get_contact(session, principal, organization_id, contact_id)
    changes = data.changes()
    if "active" in changes and changes["active"] != row.active:
        # A personnel change (seed 004): the contact keeps its history but may no longer
        # raise tickets; reactivating clears the mark.
        row.deactivated_at = None if changes["active"] else datetime.now(UTC)
    apply_changes(row, changes)
    await flush_or_conflict(session, CONTACT_CONFLICTS)
    return row


# Agents --------------------------------------------------------------------------------


async def get_agent(session: AsyncSession, agent_id: uuid.UUID) -> Agent:
    row = await session.get(Agent, agent_id)
    if row is None:
        raise NotFound("No agent with that id.")
    return row


async def list_agents(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    active: bool | None = None,
    tier: int | None = None,
) -> tuple[list[Agent], str | None]:
    stmt = select(Agent)
    if active is not None:
        stmt = stmt.where(col(Agent.active) == active)
    if tier is not None:
        stmt = stmt.where(col(Agent.tier) == tier)
    stmt = keyset(stmt, [col(Agent.created_at), col(Agent.id)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def create_agent(session: AsyncSession, data: AgentCreate) -> Agent:
    row = Agent(**data.model_dump())
    session.add(row)
    await flush_or_conflict(session, AGENT_CONFLICTS)
    return row


async def update_agent(session: AsyncSession, agent_id: uuid.UUID, data: AgentUpdate) -> Agent:
    row = await get_agent(session, agent_id)
    apply_changes(row, data.changes())
    await flush_or_conflict(session, AGENT_CONFLICTS)
    return row
