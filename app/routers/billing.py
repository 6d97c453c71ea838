"""Charged time: a ticket's work log, estimate and authorizations; a contract's usage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body

from app.db import SessionDep
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.billing import (
    WORKLOG_EXAMPLES,
    ApproveBody,
    AuthorizationRead,
    ContractUsage,
    DeclineBody,
    EstimateRead,
    EstimateUpdate,
    WorklogCreate,
    WorklogRead,
)
from app.schemas.common import problems
from app.security import AnyKey, StaffKey
from app.services import authorizations, worklogs

router = APIRouter(tags=["billing"])

_TICKET = "/v1/tickets/{ticket_id}"


def _now() -> datetime:
    return datetime.now(UTC)


@router.get(f"{_TICKET}/worklogs", response_model=Page[WorklogRead], responses=problems(404))
async def list_worklogs(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[WorklogRead]:
    """The ticket's time entries in the order they happened, with what each is charged.
    Customer keys see their organization's tickets, without agents or internal notes."""
    items, next_cursor = await worklogs.list_entries(
        session, principal, ticket_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    f"{_TICKET}/worklogs",
    status_code=201,
    response_model=WorklogRead,
    responses=problems(404, 409, 422),
)
async def add_worklog(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: StaffKey,
    data: Annotated[WorklogCreate, Body(openapi_examples=WORKLOG_EXAMPLES)],
) -> WorklogRead:
    """Log time (seed 004). A `follow_up` is charged the plan's `follow_up_minutes`
    (15 by default) whatever its length; a `session` its minutes x `consultants`; `work`
    its minutes. The part outside the plan's calendar is after hours: charged x the
    plan's `after_hours_multiplier`, or refused (422 `after-hours-not-allowed`) when the
    plan does not allow after-hours work. Totals round half up to whole minutes.

    With an estimate (`PUT .../estimate`), the entry that takes the charged total past it
    is recorded and opens a pending authorization (`authorization.required`); until the
    customer decides, billable entries are refused (409 `authorization-pending`), and
    after a decline, those that would pass the estimate (409 `authorization-declined`).
    `billable: false` entries are always accepted and charge nothing.

    Public replies, `request_info` and `contact_attempt` actions log their follow-up
    themselves (`source: auto`)."""
    return await worklogs.add_entry(session, principal, ticket_id, data, now=_now())


@router.get(f"{_TICKET}/estimate", response_model=EstimateRead, responses=problems(404))
async def get_estimate(
    ticket_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> EstimateRead:
    """The estimate, what is charged so far, and the pending authorization if any."""
    return await authorizations.estimate(session, principal, ticket_id)


@router.put(f"{_TICKET}/estimate", response_model=EstimateRead, responses=problems(404, 409, 422))
async def set_estimate(
    ticket_id: uuid.UUID, data: EstimateUpdate, session: SessionDep, principal: StaffKey
) -> EstimateRead:
    """Set the charged minutes the solution is expected to take (seed 004: "if more
    budgeted time is required, the client will be notified for authorization"); `null`
    removes it. Not below what is already charged (422); not while an authorization is
    pending (409): the customer decides first."""
    return await authorizations.set_estimate(session, principal, ticket_id, data, now=_now())


@router.get(
    f"{_TICKET}/authorizations",
    response_model=Page[AuthorizationRead],
    responses=problems(404),
)
async def list_authorizations(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[AuthorizationRead]:
    """Every request for more time on the ticket, oldest first, with its decision."""
    items, next_cursor = await authorizations.list_authorizations(
        session, principal, ticket_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    f"{_TICKET}/authorizations/{{authorization_id}}/approve",
    response_model=AuthorizationRead,
    responses=problems(404, 409, 422),
)
async def approve(
    ticket_id: uuid.UUID,
    authorization_id: uuid.UUID,
    data: ApproveBody,
    session: SessionDep,
    principal: AnyKey,
) -> AuthorizationRead:
    """The customer authorizes a new estimate (at least what is charged): billable time
    can be logged again up to it. A customer key decides for its organization; a staff
    key records the customer's e-mail and must cite it in `note`."""
    return await authorizations.decide(
        session, principal, ticket_id, authorization_id, data, now=_now()
    )


@router.post(
    f"{_TICKET}/authorizations/{{authorization_id}}/decline",
    response_model=AuthorizationRead,
    responses=problems(404, 409, 422),
)
async def decline(
    ticket_id: uuid.UUID,
    authorization_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    data: Annotated[DeclineBody | None, Body()] = None,
) -> AuthorizationRead:
    """The customer declines more time: the estimate stays, and billable entries that
    would pass it are refused (409 `authorization-declined`). A staff key must cite the
    customer's e-mail in `note`."""
    return await authorizations.decide(
        session, principal, ticket_id, authorization_id, data or DeclineBody(), now=_now()
    )


@router.get(
    "/v1/contracts/{contract_id}/usage", response_model=ContractUsage, responses=problems(404)
)
async def contract_usage(
    contract_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> ContractUsage:
    """The contract's `hours_budget` burnt down by the billable time charged on its
    tickets: used, remaining (never below 0) and overage hours."""
    return await worklogs.contract_usage(session, principal, contract_id)
