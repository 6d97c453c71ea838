"""Business calendars: a timezone, weekly hours, holidays and closures (stored as a spec)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.models.base import Entity, utcnow


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


class CalendarVersion(SQLModel, table=True):
    """Every version a calendar's spec has had, kept when the calendar is edited or deleted
    (no foreign key: it outlives its calendar). A ticket counts its clocks on its
    calendar's current version, and on the last one once the calendar is deleted, so that
    deleting a calendar can never break a ticket that ran under it (services.clocks)."""

    __tablename__ = "calendar_versions"

    calendar_id: uuid.UUID = Field(primary_key=True)
    version: int = Field(primary_key=True, sa_type=Integer)
    name: str = Field(max_length=200)
    timezone: str = Field(max_length=64)
    spec: dict[str, Any] = Field(sa_type=JSONB)
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_type=DateTime(timezone=True),
        sa_column_kwargs={"server_default": func.now()},
        nullable=False,
    )
