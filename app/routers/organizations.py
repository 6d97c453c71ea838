"""/v1/organizations and their contacts."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import NO_NUL, problems
from app.schemas.directory import (
    ContactCreate,
    ContactRead,
    ContactUpdate,
    OrganizationCreate,
    OrganizationRead,
    OrganizationUpdate,
)
from app.security import AdminKey, AnyKey, StaffKey
from app.services import directory

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])


@router.get("", response_model=Page[OrganizationRead])
async def list_organizations(
    session: SessionDep,
    principal: AnyKey,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NO_NUL,
            description="words of the name, the last one as a prefix (`acm` finds Acme "
            "Corp); case-insensitive",
        ),
    ] = None,
    external_ref: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            pattern=NO_NUL,
            description="exactly this reference (the organization's id in your CRM)",
        ),
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[OrganizationRead]:
    """Organizations, oldest first (a customer key sees only its own)."""
    rows, next_cursor = await directory.list_organizations(
        session, principal, cursor=cursor, limit=limit, q=q, external_ref=external_ref
    )
    return Page(items=[OrganizationRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=OrganizationRead,
    responses=problems(409),
)
async def create_organization(
    data: OrganizationCreate, session: SessionDep, principal: AdminKey
) -> OrganizationRead:
    """Create a customer organization (admin keys: a customer account goes with its
    contracts and billing). Names are unique (case-insensitive)."""
    return OrganizationRead.model_validate(await directory.create_organization(session, data))


@router.get("/{organization_id}", response_model=OrganizationRead, responses=problems(404))
async def get_organization(
    organization_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> OrganizationRead:
    row = await directory.get_organization(session, principal, organization_id)
    return OrganizationRead.model_validate(row)


@router.patch(
    "/{organization_id}",
    response_model=OrganizationRead,
    responses=problems(404, 409),
)
async def update_organization(
    organization_id: uuid.UUID, data: OrganizationUpdate, session: SessionDep, principal: AdminKey
) -> OrganizationRead:
    """Rename, deactivate or annotate an organization (admin keys)."""
    row = await directory.update_organization(session, principal, organization_id, data)
    return OrganizationRead.model_validate(row)


@router.get(
    "/{organization_id}/contacts",
    response_model=Page[ContactRead],
    responses=problems(404),
)
async def list_contacts(
    organization_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    active: bool | None = Query(default=None, description="only active (or inactive) contacts"),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ContactRead]:
    rows, next_cursor = await directory.list_contacts(
        session, principal, organization_id, cursor=cursor, limit=limit, active=active
    )
    return Page(items=[ContactRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post(
    "/{organization_id}/contacts",
    status_code=201,
    response_model=ContactRead,
    responses=problems(404, 409),
)
async def create_contact(
    organization_id: uuid.UUID, data: ContactCreate, session: SessionDep, principal: StaffKey
) -> ContactRead:
    """Add a person of the customer. `authorized` contacts may raise tickets (seed 004)."""
    row = await directory.create_contact(session, principal, organization_id, data)
    return ContactRead.model_validate(row)


@router.get(
    "/{organization_id}/contacts/{contact_id}",
    response_model=ContactRead,
    responses=problems(404),
)
async def get_contact(
    organization_id: uuid.UUID, contact_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> ContactRead:
    row = await directory.get_contact(session, principal, organization_id, contact_id)
    return ContactRead.model_validate(row)


@router.patch(
    "/{organization_id}/contacts/{contact_id}",
    response_model=ContactRead,
    responses=problems(404, 409),
)
async def update_contact(
    organization_id: uuid.UUID,
    contact_id: uuid.UUID,
    data: ContactUpdate,
    session: SessionDep,
    principal: StaffKey,
) -> ContactRead:
    """Update a contact; `active: false` deactivates it (its history stays)."""
    row = await directory.update_contact(session, principal, organization_id, contact_id, data)
    return ContactRead.model_validate(row)
