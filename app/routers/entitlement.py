"""Entitlement (is this request covered, under which plan?) and the SLA preview."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.domain.vocab import Category, Channel
from app.schemas.common import Instant, problems
from app.schemas.entitlement import EntitlementRead, PreviewRead, PreviewRequest
from app.security import AnyKey
from app.services import entitlement

router = APIRouter(tags=["entitlement"])


@router.get(
    "/v1/organizations/{organization_id}/entitlement",
    response_model=EntitlementRead,
    responses=problems(404),
)
async def get_entitlement(
    organization_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    at: Annotated[
        Instant | None, Query(description="the instant to decide at; default now")
    ] = None,
    contact_id: uuid.UUID | None = Query(default=None, description="who asks (a contact)"),
    channel: Channel | None = Query(default=None, description="how they ask"),
    category: Category | None = Query(default=None, description="what about"),
) -> EntitlementRead:
    """Is a request from this organization covered, and under which plan? This is the
    decision ticket intake applies. `reasons` (empty when `allowed`) are stable codes:
    `no_active_contract`, `contract_expired`, `contact_inactive`,
    `contact_not_authorized` (an `end_user` contact), `channel_not_in_plan`,
    `category_excluded`. The effective plan is the highest-level plan among the contracts
    active at `at` (contract dates are local dates of the plan's calendar); an add-on
    applies on top of its base (see `/v1/plans`)."""
    decision = await entitlement.decide_for(
        session,
        principal,
        organization_id,
        at=at or datetime.now(UTC),
        contact_id=contact_id,
        channel=channel,
        category=category,
    )
    return entitlement.entitlement_read(decision)


@router.post("/v1/sla/preview", response_model=PreviewRead, responses=problems(404, 409))
async def preview(data: PreviewRequest, session: SessionDep, principal: AnyKey) -> PreviewRead:
    """If such a ticket came in at `received_at`, when would we owe a response (and a
    resolution, a callback)? Every due time comes with its warning instants and the
    business intervals that produced it; a ticket received after hours counts from the
    next opening (`after_hours: true`). Give `organization_id` (its contracts decide the
    plan, and the entitlement says whether the request is covered at all) or `plan_id`
    (as if the organization held that plan). 409: a target that its calendar cannot
    bring due within 5 years (a calendar edited to almost never open)."""
    return await entitlement.preview(session, principal, data, now=datetime.now(UTC))
