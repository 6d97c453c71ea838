"""/v1/reports/statement: an organization's monthly statement of charged time."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from app.db import SessionDep
from app.pagination import CursorQuery
from app.schemas.common import MONTH_PATTERN, TimeZoneName, problems
from app.schemas.statements import (
    DEFAULT_LINE_LIMIT,
    MAX_LINE_LIMIT,
    STATEMENT_CSV_EXAMPLE,
    STATEMENT_EXAMPLE,
    Statement,
)
from app.security import AnyKey
from app.services import statements

router = APIRouter(prefix="/v1/reports", tags=["reports"])

CSV = "text/csv"


@router.get(
    "/statement",
    response_model=Statement,
    response_model_exclude_unset=True,
    responses={
        200: {
            "content": {
                "application/json": {"example": STATEMENT_EXAMPLE},
                CSV: {"schema": {"type": "string"}, "example": STATEMENT_CSV_EXAMPLE},
            }
        },
        **problems(404),
    },
)
async def statement(
    session: SessionDep,
    principal: AnyKey,
    month: Annotated[
        str,
        Query(pattern=MONTH_PATTERN, description="the month, YYYY-MM", examples=["2026-03"]),
    ],
    organization_id: Annotated[
        uuid.UUID | None,
        Query(description="required with a staff key; a customer key's own by default"),
    ] = None,
    tz: Annotated[
        TimeZoneName | None,
        Query(
            description="IANA zone whose local midnights bound the month; default: a "
            "customer key's plan calendar zone, UTC for staff keys",
            examples=["America/Mexico_City"],
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LINE_LIMIT, description=f"lines per page (max {MAX_LINE_LIMIT})")
    ] = DEFAULT_LINE_LIMIT,
    cursor: CursorQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Statement | Response:
    """The monthly statement of an organization: its **billable** work log entries whose
    `occurred_at` falls in `month`, from local midnight of the 1st to local midnight of
    the next month's 1st in `tz`, ordered by `(occurred_at, id)`. Without `tz`, a customer
    key's statement is in the time zone of its plan's calendar (the zone its contract's
    dates are in), a staff key's in `UTC`.

    Each line carries the entry, its ticket (number and subject), contract, kind, source,
    raw `minutes`, consultants, after-hours minutes, multiplier and `charged_minutes`;
    staff keys also get `agent_id` and `note` (customer keys never do).

    `totals` are always of the **whole month**, whatever page of lines is returned:
    billable entries, raw, charged and after-hours minutes, charged hours (2 decimals),
    per kind (every kind, zeros included) and per contract, and the month's non-billable
    entries as `unbilled` (count and raw minutes; they are not lines).

    Lines come `limit` at a time (default 1000, max 5000); pass `next_cursor` as `cursor`
    for the next page. A staff key must give `organization_id`; a customer key sees its
    own organization only (another one is a 404). `Accept: text/csv` returns one CSV row
    per line of the page and a `total` row with the month's figures (text cells that
    could run as spreadsheet formulas are prefixed with `'`)."""
    report = await statements.statement(
        session,
        principal,
        organization_id=organization_id,
        month=month,
        tz=tz,
        cursor=cursor,
        limit=limit,
    )
    if accept is not None and CSV in accept and "application/json" not in accept:
        return Response(
            statements.to_csv(report, staff=principal.is_staff),
            media_type=f"{CSV}; charset=utf-8",
        )
    return report
