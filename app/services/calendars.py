"""Business calendars: stored specs (compiled and cached by app.services.compiled)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.calendar import Calendar
from app.errors import Conflict, NotFound, invalid_field
from app.models.calendar import CalendarRow, CalendarVersion
from app.models.plan import Plan
from app.models.tickets import SlaClock
from app.pagination import keyset, page_of
from app.schemas.calendars import CalendarCreate, CalendarSpec, CalendarUpdate
from app.services import compiled
from app.services.clock_edits import calendar_changed
from app.services.clocks import hold_timing
from app.services.common import flush_or_conflict

CONFLICTS = {"ux_calendars_name_lower": "A calendar with this name already exists."}
SPEC_FIELDS = ("timezone", "weekly_hours", "holidays", "extra_holidays", "closures")


def _archive(session: AsyncSession, row: CalendarRow) -> None:
    """Keep this version of the spec for good (tickets may be timed with it after the
    calendar is edited again or deleted)."""
    session.add(
        CalendarVersion(
            calendar_id=row.id,
            version=row.version,
            name=row.name,
            timezone=row.timezone,
            spec=row.spec,
        )
    )


async def get_calendar(session: AsyncSession, calendar_id: uuid.UUID) -> CalendarRow:
    row = await session.get(CalendarRow, calendar_id)
    if row is None:
        raise NotFound("No calendar with that id.")
    return row


async def get_compiled(session: AsyncSession, calendar_id: uuid.UUID) -> Calendar:
    """The calendar compiled (from the per-process cache, by id and version)."""
    return compiled.calendar(await get_calendar(session, calendar_id))


async def list_calendars(
    session: AsyncSession, *, cursor: str | None, limit: int
) -> tuple[list[CalendarRow], str | None]:
    stmt = keyset(
        select(CalendarRow), [col(CalendarRow.created_at), col(CalendarRow.id)], cursor, limit
    )
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def create_calendar(session: AsyncSession, data: CalendarCreate) -> CalendarRow:
    spec = data.to_spec()
    compiled.compile_spec(spec)
    row = CalendarRow(name=data.name, timezone=data.timezone, spec=spec)
    session.add(row)
    await flush_or_conflict(session, CONFLICTS)
    _archive(session, row)
    await session.flush()
    return row


async def update_calendar(
    session: AsyncSession, calendar_id: uuid.UUID, data: CalendarUpdate, *, now: datetime
) -> CalendarRow:
    """Edit a calendar. Running SLA clocks keep what elapsed under the old hours and count
    the rest under the new ones from ``now`` (services.clock_edits)."""
    changes = data.changes()
    name = changes.pop("name", None)
    if changes:
        await hold_timing(session)  # before reading the row: edits are serialized
    row = await get_calendar(session, calendar_id)
    if changes:
        merged = {
            **row.spec,
            **CalendarUpdate.model_validate(changes).model_dump(mode="json", include=set(changes)),
        }
        spec = CalendarSpec.model_validate(merged).to_spec()
        await _ensure_targets_fit(session, row, compiled.compile_spec(spec), now)
        old = compiled.calendar(row)
        row.spec = spec
        row.timezone = spec["timezone"]
        row.version += 1
    if name is not None:
        row.name = name
    await flush_or_conflict(session, CONFLICTS)
    if changes:
        _archive(session, row)
        await session.flush()
        await compiled.changed(session, "calendar", row.id, row.version)
        await calendar_changed(session, row, old, now)
    return row


async def delete_calendar(session: AsyncSession, calendar_id: uuid.UUID) -> None:
    row = await get_calendar(session, calendar_id)
    await _ensure_unused(session, row)
    await session.delete(row)
    await session.flush()
    await compiled.changed(session, "calendar", row.id, 0)


async def _ensure_targets_fit(
    session: AsyncSession, row: CalendarRow, new: Calendar, now: datetime
) -> None:
    """An edit may not leave a plan's business-time target unable to come due (422)."""
    plans = (await session.execute(select(Plan).where(col(Plan.calendar_id) == row.id))).scalars()
    available: timedelta | None = None
    for plan in plans:
        for index, target in enumerate(plan.targets):
            minutes = target.get("minutes")
            if not isinstance(minutes, int) or target.get("clock", "business") != "business":
                continue
            if available is None:
                available = new.between(now, now + compiled.HORIZON)
            if timedelta(minutes=minutes) > available:
                raise invalid_field(
                    "body.weekly_hours",
                    f"plan {plan.code} target {index} needs {minutes} business minutes, more "
                    f"than these hours open in 5 years ({available // timedelta(minutes=1)})",
                )


async def _ensure_unused(session: AsyncSession, row: CalendarRow) -> None:
    """Refuse (409) to delete a calendar that a plan counts its targets on."""
    codes = (
        (await session.execute(select(col(Plan.code)).where(col(Plan.calendar_id) == row.id)))
        .scalars()
        .all()
    )
    if codes:
        raise Conflict(
            f"Plans {', '.join(sorted(codes))} use this calendar; move them to another "
            "calendar first.",
            used_by=sorted(codes),
        )
    # Tickets still running on the plan terms they were taken under may count on it.
    counting = (
        await session.execute(
            select(func.count())
            .select_from(SlaClock)
            .where(col(SlaClock.calendar_id) == row.id, col(SlaClock.stopped_at).is_(None))
        )
    ).scalar_one()
    if counting:
        raise Conflict(
            f"{counting} running SLA clock(s) of open tickets count on this calendar; "
            "delete it once those tickets are resolved.",
            clocks=counting,
        )


def fits(calendar: Calendar, start: datetime, duration: timedelta) -> bool:
    """Whether `duration` of open time comes within HORIZON of `start`."""
    return calendar.is_always_open or calendar.between(start, start + compiled.HORIZON) >= duration


def due(calendar: Calendar, start: datetime, minutes: int) -> tuple[datetime, list[Any]]:
    duration = timedelta(minutes=minutes)
    if not fits(calendar, start, duration):
        raise invalid_field(
            "query.minutes",
            f"{minutes} business minutes do not fit in the 5 years after start on this calendar",
        )
    return calendar.add(start, duration), calendar.explain(start, duration)
