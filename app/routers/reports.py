"""/v1/reports: SLA compliance figures and the what-if simulator."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response

from app.db import SessionDep
from app.schemas.common import Instant, TimeZoneName, problems
from app.schemas.reports import (
    MAX_BREACH_LIMIT,
    REPORT_EXAMPLE,
    SIMULATION_EXAMPLE,
    SIMULATION_REQUEST_EXAMPLES,
    ComplianceReport,
    GroupBy,
    SimulationRead,
    SimulationRequest,
)
from app.security import AnyKey, StaffKey
from app.services import reports

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CSV = "text/csv"


def _now() -> datetime:
    return datetime.now(UTC)


@router.get(
    "/sla-compliance",
    response_model=ComplianceReport,
    responses={
        200: {
            "content": {
                "application/json": {"example": REPORT_EXAMPLE},
                CSV: {
                    "schema": {"type": "string"},
                    "example": "group_by,key,label,tickets,clocks,met,breached,pending,"
                    "compliance_pct,...\r\nplan,5f0c...,vitrium-standard,3,5,3,1,1,75.0,...\r\n",
                },
            }
        },
        **problems(404),
    },
)
async def sla_compliance(
    session: SessionDep,
    principal: AnyKey,
    from_: Annotated[Instant, Query(alias="from", description="tickets received from (inclusive)")],
    to: Annotated[Instant, Query(description="tickets received before (exclusive); <= 366 days")],
    group_by: GroupBy = GroupBy.METRIC,
    organization_id: uuid.UUID | None = None,
    tz: Annotated[TimeZoneName, Query(description="IANA zone of `month` groups")] = "UTC",
    include_breaches: bool = False,
    breach_limit: Annotated[int, Query(ge=1, le=MAX_BREACH_LIMIT)] = 100,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ComplianceReport | Response:
    """SLA compliance of the tickets received in `[from, to)`, per group: tickets, timed
    clocks met / breached / pending, compliance % (met / (met + breached)), and the median
    and 90th percentile business time to first response and to resolution (seconds, stopped
    clocks). Only entitled tickets' clocks with a finite target count. A clock is
    `breached` when a breach was recorded or it is running past its due instant now.
    A customer key sees its own organization only. `Accept: text/csv` returns one CSV row
    per group and a `*` total row (text cells that could run as spreadsheet formulas are
    prefixed with `'`)."""
    report = await reports.sla_compliance(
        session,
        principal,
        from_=from_,
        to=to,
        group_by=group_by,
        organization_id=organization_id,
        tz=tz,
        include_breaches=include_breaches,
        breach_limit=breach_limit,
        now=_now(),
    )
    if accept is not None and CSV in accept and "application/json" not in accept:
        return Response(reports.to_csv(report), media_type=f"{CSV}; charset=utf-8")
    return report


@router.post(
    "/simulate",
    response_model=SimulationRead,
    responses={
        200: {"content": {"application/json": {"example": SIMULATION_EXAMPLE}}},
        **problems(404),
    },
)
async def simulate(
    session: SessionDep,
    principal: StaffKey,
    body: Annotated[SimulationRequest, Body(openapi_examples=SIMULATION_REQUEST_EXAMPLES)],
) -> SimulationRead:
    """What a plan would have done: the real timelines of the tickets received in
    `[from, to)` (at most 10,000) replayed through the clock rules under `plan_id` (one
    stored plan for every ticket), an inline `plan` (validated like `POST /v1/plans`,
    not stored), or, with neither, each ticket's own plan, which reproduces the actual
    figures. Returns the actual and simulated figures (same computation as
    `sla-compliance`) and the clocks whose outcome would change. Runs in a read-only
    transaction: it writes nothing. Staff keys only."""
    return await reports.simulate(session, principal, body, now=_now())
