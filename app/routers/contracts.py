"""/v1/contracts: which organization holds which plan, from when to when."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query, Response

from app.db import SessionDep
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import problems
from app.schemas.contracts import ContractCreate, ContractRead, ContractUpdate
from app.security import AdminKey, AnyKey
from app.services import contracts

router = APIRouter(prefix="/v1/contracts", tags=["contracts"])


@router.get("", response_model=Page[ContractRead])
async def list_contracts(
    session: SessionDep,
    principal: AnyKey,
    organization_id: uuid.UUID | None = Query(default=None),
    plan_id: uuid.UUID | None = Query(default=None),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ContractRead]:
    """Contracts (a customer key sees only its organization's)."""
    rows, next_cursor = await contracts.list_contracts(
        session,
        principal,
        organization_id=organization_id,
        plan_id=plan_id,
        cursor=cursor,
        limit=limit,
    )
    return Page(items=await contracts.read_many(session, rows), next_cursor=next_cursor)


@router.post("", status_code=201, response_model=ContractRead, responses=problems(409))
async def create_contract(
    data: ContractCreate, session: SessionDep, principal: AdminKey
) -> ContractRead:
    """An organization starts holding a plan. `starts_on`/`ends_on` are inclusive local
    dates of the plan's calendar time zone (`ends_on: null` = open ended).

    Refused: an inactive plan (422); an add-on whose required plan the organization does
    not hold on every day of the period (422 with `reason: requires_plan`); a period
    overlapping another contract for the same plan (409 naming it)."""
    return await contracts.read(session, await contracts.create_contract(session, data))


@router.get("/{contract_id}", response_model=ContractRead, responses=problems(404))
async def get_contract(
    contract_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> ContractRead:
    row = await contracts.get_contract(session, principal, contract_id)
    return await contracts.read(session, row)


@router.patch("/{contract_id}", response_model=ContractRead, responses=problems(404, 409))
async def update_contract(
    contract_id: uuid.UUID, data: ContractUpdate, session: SessionDep, principal: AdminKey
) -> ContractRead:
    """Change the dates (e.g. end a contract), reference or hours budget. Moving or
    shortening a base contract that an add-on contract still needs is a 409 naming it."""
    row = await contracts.update_contract(session, principal, contract_id, data)
    return await contracts.read(session, row)


@router.delete("/{contract_id}", status_code=204, responses=problems(404, 409))
async def delete_contract(
    contract_id: uuid.UUID, session: SessionDep, principal: AdminKey
) -> Response:
    """Delete a contract entered by mistake (to end one, set `ends_on`). Refused (409)
    while an add-on contract needs it."""
    await contracts.delete_contract(session, principal, contract_id)
    return Response(status_code=204)
