"""Calendars on the wire: the same spec that app.domain.calendar.Calendar.from_spec takes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from app.schemas.common import (
    DateInRange,
    Instant,
    Interval,
    LocalTime,
    NonBlank,
    PatchModel,
    ReadModel,
    StrictModel,
    Text,
    TimeZoneName,
)

# Documented precisely, validated loosely: the domain checks every interval and weekday
# and names the exact field ("weekly_hours.mon[1]") in its error.
_WEEKLY_HOURS_SCHEMA = {
    "anyOf": [
        {
            "type": "object",
            "propertyNames": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
            "additionalProperties": {
                "type": "array",
                "maxItems": 12,
                "items": {"type": "string", "pattern": r"^\d{2}:\d{2}-\d{2}:\d{2}$"},
            },
            "examples": [{"mon": ["08:30-13:00", "14:00-18:00"], "tue": ["08:30-18:00"]}],
        },
        {"type": "string", "enum": ["24x7"]},
    ],
    "description": 'Opening intervals per weekday (missing day = closed), or "24x7".',
}
WeeklyHours = Annotated[
    dict[str, Annotated[list[str], Field(max_length=12)]] | str,
    WithJsonSchema(_WEEKLY_HOURS_SCHEMA),
]
Name = Annotated[str, NonBlank(200)]
Timezone = TimeZoneName


class HolidaySource(StrictModel):
    country: str = Field(pattern=r"^[A-Za-z]{2,3}$", examples=["CA"])
    subdivision: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,10}$", examples=["BC"])


class Closure(StrictModel):
    start: Instant
    end: Instant
    reason: Annotated[str, Text(500)] | None = None


class CalendarSpec(StrictModel):
    timezone: Timezone
    weekly_hours: WeeklyHours
    holidays: HolidaySource | None = Field(
        default=None, description="Public holidays from the `holidays` package."
    )
    extra_holidays: list[DateInRange] = Field(default_factory=list, max_length=1000)
    closures: list[Closure] = Field(default_factory=list, max_length=1000)

    def to_spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class CalendarCreate(CalendarSpec):
    name: Name

    def to_spec(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True, exclude={"name"})


class CalendarUpdate(PatchModel):
    """Send only what changes; the resulting spec is validated as a whole."""

    nullable = frozenset({"holidays"})

    name: Name | None = None
    timezone: Timezone | None = None
    weekly_hours: WeeklyHours | None = None
    holidays: HolidaySource | None = None
    extra_holidays: list[DateInRange] | None = Field(default=None, max_length=1000)
    closures: list[Closure] | None = Field(default=None, max_length=1000)


class CalendarRead(ReadModel):
    id: uuid.UUID
    name: str
    timezone: str
    weekly_hours: WeeklyHours
    holidays: HolidaySource | None
    extra_holidays: list[date]
    closures: list[Closure]
    version: int
    created_at: datetime
    updated_at: datetime


class DueRead(ReadModel):
    start: datetime
    minutes: int
    due_at: datetime
    due_local: LocalTime = Field(description="`due_at` in the calendar's time zone")
    intervals: list[Interval] = Field(
        description="the business intervals counted, in order; their lengths sum to `minutes`"
    )


class HolidayRead(ReadModel):
    date: date
    name: str


class HolidaysRead(ReadModel):
    year: int
    holidays: list[HolidayRead]
