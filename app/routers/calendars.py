"""/v1/calendars: business hours, holidays and closures, and what they make of a deadline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.db import SessionDep
from app.models.calendar import CalendarRow
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.calendars import (
    CalendarCreate,
    CalendarRead,
    CalendarUpdate,
    DueRead,
    HolidayRead,
    HolidaysRead,
)
from app.schemas.common import Instant, local_time, problems
from app.security import AdminKey, AnyKey
from app.services import calendars

router = APIRouter(prefix="/v1/calendars", tags=["calendars"])

MAX_DUE_MINUTES = 366 * 24 * 60


def _read(row: CalendarRow) -> CalendarRead:
    spec = row.spec
    return CalendarRead(
        id=row.id,
        name=row.name,
        timezone=row.timezone,
        weekly_hours=spec["weekly_hours"],
        holidays=spec.get("holidays"),
        extra_holidays=spec.get("extra_holidays", []),
        closures=spec.get("closures", []),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("", response_model=Page[CalendarRead])
async def list_calendars(
    session: SessionDep, principal: AnyKey, cursor: CursorQuery = None, limit: LimitQuery = 50
) -> Page[CalendarRead]:
    rows, next_cursor = await calendars.list_calendars(session, cursor=cursor, limit=limit)
    return Page(items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=CalendarRead, responses=problems(409))
async def create_calendar(
    data: CalendarCreate, session: SessionDep, principal: AdminKey
) -> CalendarRead:
    """Create a calendar. An unknown timezone or holiday country/subdivision, a malformed
    or overlapping interval, an empty week or a closure ending before it starts is a 422
    naming the field."""
    return _read(await calendars.create_calendar(session, data))


@router.get("/{calendar_id}", response_model=CalendarRead, responses=problems(404))
async def get_calendar(
    calendar_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> CalendarRead:
    return _read(await calendars.get_calendar(session, calendar_id))


@router.patch("/{calendar_id}", response_model=CalendarRead, responses=problems(404, 409))
async def update_calendar(
    calendar_id: uuid.UUID, data: CalendarUpdate, session: SessionDep, principal: AdminKey
) -> CalendarRead:
    """Change a calendar. Running SLA clocks keep the business time already counted and
    count the remaining time under the new hours from now on."""
    row = await calendars.update_calendar(session, calendar_id, data, now=datetime.now(UTC))
    return _read(row)


@router.delete("/{calendar_id}", status_code=204, responses=problems(404, 409))
async def delete_calendar(
    calendar_id: uuid.UUID, session: SessionDep, principal: AdminKey
) -> Response:
    """Delete a calendar; refused (409) while a plan uses it."""
    await calendars.delete_calendar(session, calendar_id)
    return Response(status_code=204)


@router.get("/{calendar_id}/due", response_model=DueRead, responses=problems(404))
async def due(
    calendar_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    start: Annotated[Instant, Query(description="where to count from")],
    minutes: Annotated[int, Query(ge=0, le=MAX_DUE_MINUTES, description="business minutes to add")],
) -> DueRead:
    """When `minutes` of business time have passed since `start`, and which intervals counted."""
    calendar = await calendars.get_compiled(session, calendar_id)
    due_at, intervals = calendars.due(calendar, start, minutes)
    return DueRead(
        start=start.astimezone(UTC),
        minutes=minutes,
        due_at=due_at,
        due_local=local_time(due_at, calendar.timezone),
        intervals=intervals,
    )


@router.get("/{calendar_id}/holidays", response_model=HolidaysRead, responses=problems(404))
async def holidays(
    calendar_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    year: Annotated[int, Query(ge=1970, le=2100)],
) -> HolidaysRead:
    """The closed dates of a year: public holidays of the calendar's country and subdivision
    plus its extra holidays, with their names."""
    calendar = await calendars.get_compiled(session, calendar_id)
    days = [HolidayRead(date=d, name=n) for d, n in calendar.holidays_in(year)]
    return HolidaysRead(year=year, holidays=days)
