"""Plans on the wire: channels, coverage, targets, pause/auto-close and billing rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from app.domain.lifecycle import DEFAULT_PAUSE_ON
from app.domain.vocab import Category, Channel, ClockKind, Metric, Severity, TicketStatus
from app.schemas.common import (
    Bool,
    EmailDefaults,
    Int,
    NonBlank,
    Number,
    PatchModel,
    ReadModel,
    StrictModel,
    Text,
)

MAX_TARGET_MINUTES = 366 * 24 * 60  # a year of around-the-clock time

PlanCode = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$"),
    Field(
        description="A slug: lowercase letters, digits, `-` and `_` (max 64).",
        examples=["vitrium-standard"],
    ),
]
Name = Annotated[str, NonBlank(200)]
Description = Annotated[str, Text(4000)]


Percent = Annotated[Int, Field(ge=1, le=99)]
BeforeMinutes = Annotated[Int, Field(ge=1, le=MAX_TARGET_MINUTES)]


class OnBreach(StrictModel):
    escalate_to_tier: Int | None = Field(
        default=None, ge=1, le=4, description="raise the ticket to this tier at the breach"
    )


class TargetSpec(StrictModel):
    """One promise of a plan. Empty condition lists match every ticket."""

    metric: Metric = Field(
        description="`first_response`, `resolution`, or `callback` (after a voicemail)"
    )
    severities: list[Severity] = Field(default_factory=list, max_length=len(Severity))
    categories: list[Category] = Field(default_factory=list, max_length=len(Category))
    channels: list[Channel] = Field(default_factory=list, max_length=len(Channel))
    minutes: Int | None = Field(
        ge=1,
        le=MAX_TARGET_MINUTES,
        description="the promised duration; null = best effort (no due time, never breached)",
    )
    clock: ClockKind = Field(
        default=ClockKind.BUSINESS,
        description="`business`: the plan's calendar; `24x7`: around the clock",
    )
    warn_at_percent: list[Percent] = Field(
        default_factory=list, max_length=10, examples=[[50, 75, 90]]
    )
    warn_before_minutes: list[BeforeMinutes] = Field(
        default_factory=list,
        max_length=10,
        description="T-minus warnings: this many minutes before the due time",
        examples=[[15]],
    )
    on_breach: OnBreach | None = None


class AutoClose(StrictModel):
    """Seed 004: close for lack of response after `contact_attempts` attempts to reach
    the customer, `notice_business_days` business days after the last one."""

    contact_attempts: Int = Field(default=3, ge=1, le=20)
    notice_business_days: Int = Field(default=5, ge=0, le=60)


class AfterHours(StrictModel):
    allowed: Bool = Field(default=False, description="attention after hours, on request")
    multiplier: Number = Field(
        default=1.5,
        ge=1,
        le=10,
        description="billed time factor of after-hours time inside a window the client "
        "requested (`/after-hours-requests`)",
    )
    unrequested: Literal["business_rate", "refuse"] = Field(
        default="business_rate",
        description="after-hours time outside every requested window: `business_rate` "
        "charges it as business time; `refuse` refuses manual entries (422 "
        "`after-hours-not-requested`) and records automatic follow-ups unbilled",
    )


class Billing(StrictModel):
    follow_up_minutes: Int = Field(
        default=15, ge=0, le=1440, description="time charged for each follow-up (seed 004)"
    )
    sessions_per_consultant: Bool = Field(
        default=True, description="session time is multiplied by each consultant involved"
    )
    after_hours: AfterHours = Field(default_factory=AfterHours)


_DEFAULT_PAUSE_ON = sorted(DEFAULT_PAUSE_ON)


class PlanFields(StrictModel):
    name: Name
    description: Description | None = None
    level: Int = Field(
        ge=0,
        le=1000,
        description="rank: an organization's effective plan is its highest-level one; an "
        "add-on's level is at least its base's",
    )
    requires: PlanCode | None = Field(
        default=None,
        description="code of a plan the customer must also hold (this plan is an add-on)",
    )
    calendar_id: uuid.UUID = Field(description="the plan's business hours")
    channels: list[Channel] = Field(min_length=1, max_length=len(Channel))
    excluded_categories: list[Category] = Field(
        default_factory=list,
        max_length=len(Category),
        description="categories the plan does not cover (an add-on widens its base's)",
    )
    pause_on: list[TicketStatus] = Field(
        default_factory=lambda: list(_DEFAULT_PAUSE_ON),
        max_length=len(TicketStatus),
        description="waiting statuses that pause the SLA clocks "
        "(`waiting_on_customer`, `waiting_on_vendor`)",
    )
    auto_close: AutoClose | None = Field(default=None, description="null: never auto-close")
    billing: Billing = Field(default_factory=Billing)
    targets: list[TargetSpec] = Field(default_factory=list, max_length=100)
    active: Bool = Field(default=True, description="an inactive plan gets no new contracts")
    email_defaults: EmailDefaults | None = Field(
        default=None,
        description="severity and category of tickets made from e-mail (an organization "
        "may override them); null: medium / other",
    )


class PlanCreate(PlanFields):
    code: PlanCode


class PlanUpdate(PatchModel):
    """Send only what changes (`code` is the plan's identity and cannot change)."""

    nullable = frozenset({"description", "requires", "auto_close", "email_defaults"})

    name: Name | None = None
    description: Description | None = None
    level: Int | None = Field(default=None, ge=0, le=1000)
    requires: PlanCode | None = None
    calendar_id: uuid.UUID | None = None
    channels: list[Channel] | None = Field(default=None, min_length=1, max_length=len(Channel))
    excluded_categories: list[Category] | None = Field(default=None, max_length=len(Category))
    pause_on: list[TicketStatus] | None = Field(default=None, max_length=len(TicketStatus))
    auto_close: AutoClose | None = None
    billing: Billing | None = None
    targets: list[TargetSpec] | None = Field(default=None, max_length=100)
    active: Bool | None = None
    email_defaults: EmailDefaults | None = None


class PlanRead(ReadModel):
    id: uuid.UUID
    code: str
    name: str
    description: str | None
    level: int
    requires: str | None
    calendar_id: uuid.UUID
    channels: list[Channel]
    excluded_categories: list[Category]
    pause_on: list[TicketStatus]
    auto_close: AutoClose | None
    billing: Billing
    targets: list[TargetSpec]
    version: int
    active: bool
    email_defaults: EmailDefaults | None
    created_at: datetime
    updated_at: datetime


class PlanSummary(ReadModel):
    id: uuid.UUID
    code: str
    name: str
    level: int
    version: int
