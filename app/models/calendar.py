"""Business calendars: a timezone, weekly hours, holidays and closures (stored as a spec)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Index, Integer, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from app.models.base import Entity


class CalendarRow(Entity, table=True):
    __tablename__ = "calendars"
    __table_args__ = (
        Index("ux_calendars_name_lower", text("lower(name)"), unique=True),
        Index("ix_calendars_created_at_id", "created_at", "id"),
    )

    name: str = Field(max_length=200)
    timezone: str = Field(max_length=64)
    # The spec exactly as app.domain.calendar.Calendar.from_spec takes it.
    spec: dict[str, Any] = Field(sa_type=JSONB)
    # Bumped on every edit: part of the compiled-calendar cache key and of the ETag.
    version: int = Field(default=1, sa_type=Integer)
