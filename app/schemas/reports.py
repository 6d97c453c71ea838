"""Reports on the wire: SLA compliance figures and the what-if simulator."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, model_validator

from app.schemas.common import Instant, Int, StrictModel, TimeZoneName
from app.schemas.plans import PlanCreate

MAX_SPAN_DAYS = 366
MAX_SIMULATED_TICKETS = 10_000
MAX_BREACH_LIMIT = 1_000
MAX_CHANGED_LIMIT = 1_000


class GroupBy(StrEnum):
    ORGANIZATION = "organization"
    PLAN = "plan"
    SEVERITY = "severity"
    METRIC = "metric"
    MONTH = "month"


class Durations(BaseModel):
    """Business time of the stopped clocks of one metric, in seconds
    (PostgreSQL `percentile_cont`, rounded to the millisecond)."""

    count: int = Field(description="stopped clocks measured")
    median_seconds: float | None
    p90_seconds: float | None


class Figures(BaseModel):
    """Compliance of the timed clocks (finite target) of entitled tickets."""

    tickets: int = Field(description="tickets with at least one timed clock in the group")
    clocks: int
    met: int = Field(description="stopped without breach")
    breached: int = Field(description="breach recorded, or running past the due instant")
    pending: int = Field(description="running before the due instant, or paused")
    compliance_pct: float | None = Field(
        description="met / (met + breached) x 100, 2 decimals; null when both are 0"
    )
    first_response: Durations
    resolution: Durations


class Breach(BaseModel):
    ticket_id: uuid.UUID
    number: str = Field(examples=["SD-000123"])
    metric: str
    due_at: datetime
    breached_at: datetime


class Group(Figures):
    key: str | None = Field(
        description="organization id, plan id, severity, metric or YYYY-MM", examples=["2026-03"]
    )
    label: str | None = Field(description="organization name, plan code; else the key")
    breaches: list[Breach] | None = Field(
        default=None, description="with include_breaches=true: the first breach_limit, by time"
    )
    breaches_truncated: bool | None = None


class ComplianceReport(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    group_by: GroupBy
    tz: str
    organization_id: uuid.UUID | None
    as_of: datetime = Field(description="the instant running clocks were read at")
    groups: list[Group]
    total: Figures

    model_config = {"populate_by_name": True}


_FIGURES_EXAMPLE = {
    "tickets": 3,
    "clocks": 5,
    "met": 3,
    "breached": 1,
    "pending": 1,
    "compliance_pct": 75.0,
    "first_response": {"count": 3, "median_seconds": 1800.0, "p90_seconds": 4680.0},
    "resolution": {"count": 1, "median_seconds": 14400.0, "p90_seconds": 14400.0},
}
REPORT_EXAMPLE = {
    "from": "2026-03-01T00:00:00Z",
    "to": "2026-04-01T00:00:00Z",
    "group_by": "plan",
    "tz": "UTC",
    "organization_id": None,
    "as_of": "2026-04-02T08:00:00Z",
    "groups": [
        {
            "key": "5f0c6a7e-8f7d-4bb6-9f5e-0d1d2b3c4a5e",
            "label": "vitrium-standard",
            **_FIGURES_EXAMPLE,
            "breaches": [
                {
                    "ticket_id": "0b6c2f0e-3d0b-4f3e-9a55-1c3a7d9e2f10",
                    "number": "SD-000042",
                    "metric": "first_response",
                    "due_at": "2026-03-03T16:30:00Z",
                    "breached_at": "2026-03-03T16:30:00Z",
                }
            ],
            "breaches_truncated": False,
        }
    ],
    "total": _FIGURES_EXAMPLE,
}


class SimulationRequest(StrictModel):
    """Which plan to replay the period's tickets under: `plan_id` (a stored plan applied
    to every ticket), or `plan` (an inline plan, validated as `POST /v1/plans` does,
    never stored), or neither (each ticket's own plan: reproduces the actual figures)."""

    plan_id: uuid.UUID | None = None
    plan: PlanCreate | None = None
    from_: Instant = Field(alias="from")
    to: Instant
    organization_id: uuid.UUID | None = None
    group_by: GroupBy = GroupBy.METRIC
    tz: TimeZoneName = "UTC"
    changed_limit: Int = Field(default=100, ge=0, le=MAX_CHANGED_LIMIT)

    model_config = {
        "populate_by_name": True,
        "extra": "forbid",
        "json_schema_extra": {"not": {"required": ["plan_id", "plan"]}},
    }

    @model_validator(mode="after")
    def _one_plan(self) -> SimulationRequest:
        if {"plan_id", "plan"} <= self.model_fields_set:
            raise ValueError("give plan_id or plan, not both")
        return self


class FiguresSet(BaseModel):
    groups: list[Group]
    total: Figures


class ChangedOutcome(BaseModel):
    ticket_id: uuid.UUID
    number: str
    metric: str
    actual: str = Field(description="met, breached, pending, best_effort or none (no clock)")
    simulated: str


class SimulatedPlan(BaseModel):
    id: uuid.UUID | None = Field(description="null for an inline plan")
    code: str | None = Field(description="null: each ticket's own plan")
    name: str | None


class SimulationRead(BaseModel):
    from_: datetime = Field(alias="from")
    to: datetime
    organization_id: uuid.UUID | None
    group_by: GroupBy
    tz: str
    as_of: datetime
    plan: SimulatedPlan
    tickets: int = Field(description="tickets received in the period (all replayed)")
    retimed_tickets: int = Field(
        description="tickets whose real life saw a plan or calendar edit: the replay "
        "applies one set of terms to the whole life, so these may differ under any plan"
    )
    skipped_events: int
    actual: FiguresSet
    simulated: FiguresSet
    changed: list[ChangedOutcome]
    changed_total: int

    model_config = {"populate_by_name": True}


SIMULATION_EXAMPLE = {
    "from": "2026-03-01T00:00:00Z",
    "to": "2026-04-01T00:00:00Z",
    "organization_id": None,
    "group_by": "metric",
    "tz": "UTC",
    "as_of": "2026-04-02T08:00:00Z",
    "plan": {"id": "5f0c6a7e-8f7d-4bb6-9f5e-0d1d2b3c4a5e", "code": "premium", "name": "Premium"},
    "tickets": 3,
    "retimed_tickets": 0,
    "skipped_events": 0,
    "actual": {"groups": [], "total": _FIGURES_EXAMPLE},
    "simulated": {"groups": [], "total": {**_FIGURES_EXAMPLE, "met": 2, "breached": 2}},
    "changed": [
        {
            "ticket_id": "0b6c2f0e-3d0b-4f3e-9a55-1c3a7d9e2f10",
            "number": "SD-000042",
            "metric": "first_response",
            "actual": "met",
            "simulated": "breached",
        }
    ],
    "changed_total": 1,
}
SIMULATION_REQUEST_EXAMPLES = {
    "stored plan": {
        "summary": "Replay March under the Premium plan",
        "value": {
            "plan_id": "5f0c6a7e-8f7d-4bb6-9f5e-0d1d2b3c4a5e",
            "from": "2026-03-01T00:00:00Z",
            "to": "2026-04-01T00:00:00Z",
        },
    },
    "own plans": {
        "summary": "Each ticket under its own plan (reproduces the actual figures)",
        "value": {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"},
    },
    "inline plan": {
        "summary": "A plan not stored yet: first response in 30 business minutes",
        "value": {
            "from": "2026-03-01T00:00:00Z",
            "to": "2026-04-01T00:00:00Z",
            "organization_id": "9a1e3c55-6b0f-4f7e-8c1d-2e3f4a5b6c7d",
            "plan": {
                "code": "premium-draft",
                "name": "Premium (draft)",
                "level": 2,
                "calendar_id": "3c1b2a55-0d9e-4f8a-9b7c-6d5e4f3a2b1c",
                "channels": ["email", "web", "phone"],
                "targets": [
                    {"metric": "first_response", "minutes": 30},
                    {"metric": "resolution", "minutes": 480},
                ],
            },
        },
    },
}
