"""After-hours requests (seed 004): on a ticket, or on a contract as a standing agreement."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Response

from app.db import SessionDep
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.after_hours import (
    AFTER_HOURS_EXAMPLES,
    AfterHoursRequestCreate,
    AfterHoursRequestRead,
)
from app.schemas.common import problems
from app.security import AdminKey, AnyKey, StaffKey
from app.services import after_hours

router = APIRouter(tags=["billing"])


def _now() -> datetime:
    return datetime.now(UTC)


@router.post(
    "/v1/tickets/{ticket_id}/after-hours-requests",
    status_code=201,
    response_model=AfterHoursRequestRead,
    responses=problems(404, 422),
)
async def request_for_ticket(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    data: Annotated[AfterHoursRequestCreate, Body(openapi_examples=AFTER_HOURS_EXAMPLES)],
) -> AfterHoursRequestRead:
    """Record the client's request for after-hours attention on this ticket (seed 004: "they
    must request it in advance and via email"): a customer key asks now, as its contact;
    staff record the client's e-mail (`contact_id`, `requested_at`, `reference`).

    The plan must offer after-hours attention (`billing.after_hours.allowed`); the request
    comes in advance (`requested_at` at or before `starts_at`) from an active authorized
    contact. Work and automatic follow-ups outside business hours are charged the plan's
    multiplier only inside a requested window; outside one, as business time, or refused
    for manual entries when the plan says `after_hours.unrequested: refuse`."""
    return await after_hours.create_for_ticket(session, principal, ticket_id, data, now=_now())


@router.get(
    "/v1/tickets/{ticket_id}/after-hours-requests",
    response_model=Page[AfterHoursRequestRead],
    responses=problems(404),
)
async def list_for_ticket(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[AfterHoursRequestRead]:
    """The requests that apply to the ticket, by window start: its own (`scope: ticket`)
    and its contract's standing ones (`scope: contract`)."""
    items, next_cursor = await after_hours.list_for_ticket(
        session, principal, ticket_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/v1/contracts/{contract_id}/after-hours-requests",
    status_code=201,
    response_model=AfterHoursRequestRead,
    responses=problems(404, 422),
)
async def request_for_contract(
    contract_id: uuid.UUID,
    session: SessionDep,
    principal: AdminKey,
    data: Annotated[AfterHoursRequestCreate, Body(openapi_examples=AFTER_HOURS_EXAMPLES)],
) -> AfterHoursRequestRead:
    """Record a standing agreement: the client's request for after-hours attention over a
    window, for every ticket taken under this contract (same rules as on a ticket)."""
    return await after_hours.create_for_contract(session, principal, contract_id, data, now=_now())


@router.get(
    "/v1/contracts/{contract_id}/after-hours-requests",
    response_model=Page[AfterHoursRequestRead],
    responses=problems(404),
)
async def list_for_contract(
    contract_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[AfterHoursRequestRead]:
    """The contract's standing after-hours agreements, by window start."""
    items, next_cursor = await after_hours.list_for_contract(
        session, principal, contract_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.delete(
    "/v1/after-hours-requests/{after_hours_request_id}",
    status_code=204,
    responses=problems(404, 409),
)
async def delete_request(
    after_hours_request_id: uuid.UUID, session: SessionDep, principal: StaffKey
) -> Response:
    """Delete a request recorded by mistake; 409 when a work log entry's charge relies on
    it (it is part of the billing record)."""
    await after_hours.delete(session, principal, after_hours_request_id)
    return Response(status_code=204)
