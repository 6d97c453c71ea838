"""Contracts: an organization holds a plan from one local date to another."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, Index, Numeric
from sqlmodel import Field

from app.models.base import Entity


class Contract(Entity, table=True):
    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="dates"),
        CheckConstraint("hours_budget IS NULL OR hours_budget >= 0", name="hours_budget"),
        Index("ix_contracts_organization_id_plan_id", "organization_id", "plan_id"),
        Index("ix_contracts_plan_id", "plan_id"),
        Index("ix_contracts_created_at_id", "created_at", "id"),
    )

    organization_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("organizations.id", ondelete="RESTRICT"), nullable=False)
    )
    plan_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("plans.id", ondelete="RESTRICT"), nullable=False)
    )
    # Inclusive local dates of the plan's calendar time zone; ends_on null = open ended.
    starts_on: date = Field(sa_type=Date)
    ends_on: date | None = Field(default=None, sa_type=Date, nullable=True)
    reference: str | None = Field(default=None, max_length=100)
    hours_budget: float | None = Field(
        default=None, sa_type=Numeric(10, 2, asdecimal=False), nullable=True
    )
