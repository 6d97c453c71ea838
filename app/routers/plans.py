"""/v1/plans: what is sold — channels, coverage, targets, pause and billing rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Header, Query, Response

from app.db import SessionDep
from app.models import Plan
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import problems
from app.schemas.plans import PlanCreate, PlanRead, PlanUpdate
from app.security import AdminKey, AnyKey
from app.services import plans

router = APIRouter(prefix="/v1/plans", tags=["plans"])

_PLAN_RULES = """
**Targets.** Each target promises a duration (`minutes`; `null` = best effort, never due)
for one `metric` (`first_response`, `resolution`, `callback`) to the tickets matching its
conditions (`severities`, `categories`, `channels`; empty = any), counted on the plan's
calendar (`clock: business`) or around the clock (`24x7`). For a ticket, the most specific
matching target wins (more condition lists set), then the earliest in the list. Two equally
specific targets of one metric that can match the same ticket are refused (422 naming them).

**Add-ons.** A plan that `requires` another is an add-on: it applies on top of its base.
An organization's effective plan is the highest `level` among its active contracts (an
add-on counts only while its base is held); it offers the channels of the add-on and its
bases together, excludes only the categories all of them exclude, and for each ticket and
metric uses the add-on's best matching target, falling back to the base's when the add-on
has none that matches. Calendar, `pause_on`, `auto_close` and `billing` are the add-on's.

Categories: `how_to`, `technical`, `technical_urgent`, `maintenance`,
`research_debugging`, `bug`, `installation`, `upgrade`, `customization`, `training`,
`pre_sales`, `other`. Severities: `critical`, `high`, `medium`, `low`.
"""


def _tagged(response: Response, row: Plan) -> None:
    response.headers["ETag"] = plans.etag(row)


@router.get("", response_model=Page[PlanRead])
async def list_plans(
    session: SessionDep,
    principal: AnyKey,
    active: bool | None = Query(default=None, description="only active (or inactive) plans"),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[PlanRead]:
    """Plans, by level then code. Plans are not secret: every key may read them."""
    rows, next_cursor = await plans.list_plans(session, active=active, cursor=cursor, limit=limit)
    codes = await plans.codes_of(session, [r.requires_id for r in rows])
    items = [plans.read_plan(r, codes.get(r.requires_id) if r.requires_id else None) for r in rows]
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=PlanRead,
    responses=problems(409),
    description="Create a plan. A `requires` cycle, an unknown calendar, plan, category "
    "or channel, a `pause_on` status that is not a waiting status, a bad target or two "
    "ambiguous targets is a 422 naming the field.\n" + _PLAN_RULES,
)
async def create_plan(
    data: PlanCreate, response: Response, session: SessionDep, principal: AdminKey
) -> PlanRead:
    row = await plans.create_plan(session, data, now=datetime.now(UTC))
    _tagged(response, row)
    return await plans.read(session, row)


@router.get("/{plan_id}", response_model=PlanRead, responses=problems(404))
async def get_plan(
    plan_id: uuid.UUID, response: Response, session: SessionDep, principal: AnyKey
) -> PlanRead:
    """A plan; its `ETag` is its version (send it as `If-Match` when editing)."""
    row = await plans.get_plan(session, plan_id)
    _tagged(response, row)
    return await plans.read(session, row)


@router.patch(
    "/{plan_id}",
    response_model=PlanRead,
    responses=problems(404, 409, 412),
    description="Change a plan (send only what changes; `code` is fixed). The version "
    "is bumped when something really changes. Open tickets keep the time already counted "
    "and count the rest under the new targets from the moment of the edit. Making a plan "
    "require another is a 409 while an organization holds it without that plan.\n" + _PLAN_RULES,
)
async def update_plan(
    plan_id: uuid.UUID,
    data: PlanUpdate,
    response: Response,
    session: SessionDep,
    principal: AdminKey,
    if_match: str | None = Header(
        default=None, max_length=200, description="the plan's ETag, to refuse a lost update"
    ),
) -> PlanRead:
    row = await plans.update_plan(session, plan_id, data, now=datetime.now(UTC), if_match=if_match)
    _tagged(response, row)
    return await plans.read(session, row)


@router.delete("/{plan_id}", status_code=204, responses=problems(404, 409))
async def delete_plan(plan_id: uuid.UUID, session: SessionDep, principal: AdminKey) -> Response:
    """Delete a plan that no contract holds and no plan requires (409 otherwise: prefer
    `active: false`, which keeps existing contracts and refuses new ones)."""
    await plans.delete_plan(session, plan_id)
    return Response(status_code=204)
