"""Support plans: what is sold (channels, coverage, targets, billing rules)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field

from app.models.base import Entity


class Plan(Entity, table=True):
    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("code", name="uq_plans_code"),
        Index("ix_plans_level_code", "level", "code"),
        CheckConstraint("level BETWEEN 0 AND 1000", name="level"),
    )

    code: str = Field(sa_type=String(64))
    name: str = Field(max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    # Explicit rank: the effective plan of an organization is its highest-level one.
    level: int = Field(sa_type=Integer)
    # The plan a customer must also hold (the API speaks codes; the row keeps the id).
    requires_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(ForeignKey("plans.id", ondelete="RESTRICT"), nullable=True, index=True),
    )
    calendar_id: uuid.UUID = Field(
        sa_column=Column(
            ForeignKey("calendars.id", ondelete="RESTRICT"), nullable=False, index=True
        )
    )
    # Lists of vocabulary values (app.domain.vocab), stored sorted.
    channels: list[str] = Field(default_factory=list, sa_type=JSONB)
    excluded_categories: list[str] = Field(default_factory=list, sa_type=JSONB)
    pause_on: list[str] = Field(default_factory=list, sa_type=JSONB)
    # {"contact_attempts": 3, "notice_business_days": 5}; null = no auto-close.
    auto_close: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    billing: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    # {"severity", "category"} of tickets made from e-mail (an organization may override).
    email_defaults: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    # The target list exactly as app.domain.sla.Target.from_dict takes each item.
    targets: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONB)
    # Bumped on every effective edit (the ETag; running clocks re-apply from the edit).
    version: int = Field(default=1, sa_type=Integer)
    active: bool = Field(default=True)
