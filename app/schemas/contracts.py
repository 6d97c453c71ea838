"""Contracts on the wire: an organization holds a plan between two local dates."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from pydantic import Field

from app.schemas.common import DateInRange, NonBlank, Number, PatchModel, ReadModel, StrictModel

ContractDate = Annotated[
    DateInRange,
    Field(description="a local date of the plan's calendar time zone (inclusive)"),
]
Reference = Annotated[str, NonBlank(100)]
HoursBudget = Annotated[Number, Field(ge=0, le=100_000, description="budgeted hours (2 decimals)")]


class ContractCreate(StrictModel):
    organization_id: uuid.UUID
    plan_id: uuid.UUID
    starts_on: ContractDate
    ends_on: ContractDate | None = Field(default=None, description="null: open ended")
    reference: Reference | None = Field(default=None, description="license or contract number")
    hours_budget: HoursBudget | None = None


class ContractUpdate(PatchModel):
    """Change the dates, reference or budget (the organization and plan are fixed)."""

    nullable = frozenset({"ends_on", "reference", "hours_budget"})

    starts_on: ContractDate | None = None
    ends_on: ContractDate | None = None
    reference: Reference | None = None
    hours_budget: HoursBudget | None = None


class ContractRead(ReadModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    plan_id: uuid.UUID
    plan_code: str
    starts_on: date
    ends_on: date | None
    reference: str | None
    hours_budget: float | None
    created_at: datetime
    updated_at: datetime


class ContractSummary(ReadModel):
    id: uuid.UUID
    plan_code: str
    starts_on: date
    ends_on: date | None
