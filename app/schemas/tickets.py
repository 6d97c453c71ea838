"""Tickets on the wire: intake, actions, the ticket with its SLA clocks, the timeline."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from app.domain.lifecycle import Action, CloseReason
from app.domain.vocab import Category, Channel, Metric, Severity, TicketStatus
from app.schemas.common import (
    Instant,
    Int,
    LocalTime,
    NonBlank,
    PatchModel,
    ReadModel,
    StrictModel,
    Text,
)

Subject = Annotated[str, NonBlank(300)]
Body = Annotated[str, NonBlank(50_000)]
Reason = Annotated[str, NonBlank(2000)]
Description = Annotated[str, Text(50_000)]
Tier = Annotated[Int, Field(ge=1, le=4)]

OCCURRED_AT = Field(
    default=None,
    description=(
        "When it happened (default: now). Never in the future, never before the ticket's "
        "receipt or its latest event recorded by a person; it may precede the system's own "
        "events (SLA warnings and breaches, an auto-close), which are then re-evaluated. "
        "Customer keys cannot back-date."
    ),
)


class TicketCreate(StrictModel):
    organization_id: uuid.UUID
    contact_id: uuid.UUID | None = Field(
        default=None, description="the requester; defaults to the customer key's contact"
    )
    channel: Channel
    severity: Severity
    category: Category
    subject: Subject
    description: Description = ""
    received_at: Instant | None = Field(
        default=None,
        description="when the request arrived (default now): targets count from receipt",
    )
    follows_up_ticket_id: uuid.UUID | None = None
    override_reason: Reason | None = Field(
        default=None, description="staff only: accept a request that entitlement refuses"
    )


class TicketUpdate(PatchModel):
    subject: Subject | None = None
    description: Description | None = None


# ----------------------------------------------------------------------- actions


class ActionBase(StrictModel):
    occurred_at: Instant | None = OCCURRED_AT


class AssignBody(ActionBase):
    agent_id: uuid.UUID


class MessageBody(ActionBase):
    body: Body


class CustomerReplyBody(MessageBody):
    contact_id: uuid.UUID | None = Field(
        default=None,
        description="who wrote it: a contact of the ticket's organization. Default: the "
        "key's own contact, else the ticket's requester (staff logging an e-mail or a call "
        "from someone else name them)",
    )


class ContactAttemptBody(ActionBase):
    channel: Channel
    body: Body


class EscalateBody(ActionBase):
    to_tier: Tier
    reason: Reason | None = Field(default=None, description="required when going down a tier")
    vendor: Annotated[str, NonBlank(200)] | None = Field(
        default=None, description="required for tier 4 (the product vendor)"
    )
    vendor_case_ref: Annotated[str, NonBlank(200)] | None = None


class ChangeBody(ActionBase):
    severity: Severity | None = None
    category: Category | None = None
    reason: Reason | None = None


class CallbackBody(ActionBase):
    body: Body | None = None


class ResolveBody(ActionBase):
    resolution: Literal["fix", "workaround", "other"]
    body: Body


class EmptyBody(ActionBase):
    pass


class CloseBody(ActionBase):
    reason: Literal["duplicate", "out_of_scope", "no_response", "other"]
    body: Body | None = None


ACTION_BODIES: dict[Action, type[ActionBase]] = {
    Action.ASSIGN: AssignBody,
    Action.REPLY: MessageBody,
    Action.NOTE: MessageBody,
    Action.REQUEST_INFO: MessageBody,
    Action.CONTACT_ATTEMPT: ContactAttemptBody,
    Action.CUSTOMER_REPLY: CustomerReplyBody,
    Action.ESCALATE: EscalateBody,
    Action.CHANGE: ChangeBody,
    Action.CALLBACK: CallbackBody,
    Action.RESOLVE: ResolveBody,
    Action.CONFIRM: EmptyBody,
    Action.REOPEN: MessageBody,
    Action.CLOSE: CloseBody,
}


# ------------------------------------------------------------------------ reading


class ClockRead(ReadModel):
    metric: Metric
    minutes: int | None = Field(description="the target; null = best effort")
    clock: Literal["business", "24x7"]
    state: Literal["running", "paused", "met", "breached", "best_effort"]
    running: bool
    started_at: datetime
    due_at: datetime | None = Field(
        description="the due instant: while running, and on a met or breached clock the one "
        "in force when it stopped (for a clock stopped while paused, when it would have been "
        "due had it run on from the stop); null only while paused and for best effort"
    )
    due_local: LocalTime | None = Field(
        default=None,
        description="`due_at` in the time zone of the ticket's plan calendar (also for 24x7 "
        "clocks): the local time to tell the customer",
    )
    elapsed_seconds: int = Field(description="business time counted (seconds)")
    remaining_seconds: int | None = Field(description="business time left, never below 0")
    overdue_seconds: int | None = Field(
        description="business time beyond the target (0 when not overdue; null: best effort)"
    )
    met_by_seconds: int | None = Field(
        default=None,
        description="on a met clock, the business time it had left when it stopped (the "
        "margin by which it was met); null otherwise",
    )
    stopped_at: datetime | None
    breached_at: datetime | None = Field(
        description="the due instant at which it breached (set even if nobody looked)"
    )
    next_threshold: dict[str, Any] | None = Field(
        default=None, description="the next warning or breach not fired yet: key and instant"
    )


class PlanSummary(ReadModel):
    id: uuid.UUID
    code: str
    name: str
    version: int


class TicketRead(ReadModel):
    id: uuid.UUID
    number: str = Field(examples=["SD-000123"])
    organization_id: uuid.UUID
    contact_id: uuid.UUID
    channel: Channel
    severity: Severity
    category: Category
    subject: str
    description: str
    status: TicketStatus
    tier: int
    assignee_id: uuid.UUID | None
    entitled: bool
    entitlement_reasons: list[str]
    override_reason: str | None
    plan: PlanSummary | None
    after_hours: bool
    received_at: datetime
    contact_attempts: int
    auto_close_at: datetime | None
    close_reason: CloseReason | None
    resolution: str | None
    resolved_at: datetime | None
    closed_at: datetime | None
    follows_up_ticket_id: uuid.UUID | None
    vendor: str | None
    vendor_case_ref: str | None
    next_due_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    sla: list[ClockRead]
    allowed_actions: list[Action] = Field(description="what this key may do now")


class TicketEventRead(ReadModel):
    id: uuid.UUID
    kind: str
    public: bool
    actor: dict[str, Any]
    body: str | None
    data: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime
