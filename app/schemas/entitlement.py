"""Entitlement decisions and SLA previews on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from app.domain.entitlement import Reason
from app.domain.vocab import Category, Channel, ClockKind, Metric, Severity, TicketStatus
from app.schemas.common import Instant, Interval, LocalTime, ReadModel, StrictModel
from app.schemas.contracts import ContractSummary
from app.schemas.plans import AutoClose, Billing, PlanSummary, TargetSpec


class PlanTargetRead(TargetSpec):
    plan: str = Field(description="code of the plan of the chain the target comes from")
    index: int = Field(description="position of the target in that plan's list")


class EntitlementRead(ReadModel):
    organization_id: uuid.UUID | None
    at: datetime
    allowed: bool
    reasons: list[Reason] = Field(
        description="stable codes: no_active_contract, contract_expired, contact_inactive, "
        "contact_not_authorized, channel_not_in_plan, category_excluded"
    )
    plan: PlanSummary | None = Field(description="the effective plan (null: none applies)")
    plans: list[str] = Field(description="the effective plan's chain: itself, then its bases")
    contract: ContractSummary | None = Field(description="the effective plan's contract")
    contracts: list[ContractSummary] = Field(description="the chain's contracts, same order")
    calendar_id: uuid.UUID | None
    timezone: str | None
    channels: list[Channel]
    excluded_categories: list[Category]
    pause_on: list[TicketStatus]
    auto_close: AutoClose | None
    billing: Billing | None
    targets: list[PlanTargetRead] = Field(
        description="the chain's targets in order of precedence (the add-on's first)"
    )


class PreviewRequest(StrictModel):
    """What would we owe for such a ticket? Give `organization_id` (its contracts decide
    the plan) or `plan_id` (as if the organization held that plan and its bases)."""

    organization_id: uuid.UUID | None = None
    plan_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = Field(
        default=None, description="with organization_id: check the contact too"
    )
    severity: Severity
    category: Category | None = None
    channel: Channel | None = None
    received_at: Instant | None = Field(default=None, description="default: now")


class WarningRead(ReadModel):
    key: str = Field(examples=["warn:50", "before:15"])
    percent: int | None
    before_minutes: int | None
    at: datetime


class PreviewTarget(ReadModel):
    metric: Metric
    plan: str = Field(description="code of the plan the target comes from")
    index: int
    minutes: int | None = Field(description="null: best effort")
    clock: ClockKind
    counting_from: datetime | None = Field(
        description="when the clock first counts (the next opening when after hours)"
    )
    due_at: datetime | None = Field(description="null for best effort")
    due_local: LocalTime | None = Field(
        description="`due_at` in the time zone of the plan's calendar (also for 24x7 targets)"
    )
    warnings: list[WarningRead]
    intervals: list[Interval] = Field(
        description="the business intervals counted, in order; they sum to `minutes`"
    )
    escalate_to_tier: int | None


class PreviewRead(ReadModel):
    received_at: datetime
    after_hours: bool = Field(description="the plan's calendar is closed at received_at")
    severity: Severity
    category: Category | None
    channel: Channel | None
    plan: PlanSummary | None
    entitlement: EntitlementRead
    targets: list[PreviewTarget]
