"""Charged time on the wire: work log entries, estimates, authorizations, contract usage."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from app.domain.billing import EntryKind
from app.schemas.common import Bool, Instant, Int, NonBlank, ReadModel, StrictModel

# A single entry covers at most a day: longer work is logged day by day, which is also
# how after-hours time is told apart.
MAX_ENTRY_MINUTES = 24 * 60
MAX_CONSULTANTS = 50
MAX_ESTIMATE_MINUTES = 1_000_000

Note = Annotated[str, NonBlank(2000)]


class WorklogCreate(StrictModel):
    # Said in the schema as well as checked (services.worklogs): minutes for a session or
    # work, consultants only for a session.
    model_config = {
        "json_schema_extra": {
            "allOf": [
                {
                    "if": {"properties": {"kind": {"enum": ["session", "work"]}}},
                    "then": {
                        "required": ["minutes"],
                        "properties": {"minutes": {"type": "integer"}},
                    },
                },
                {
                    "if": {"properties": {"kind": {"enum": ["follow_up", "work"]}}},
                    "then": {"properties": {"consultants": {"const": 1}}},
                },
            ]
        }
    }

    kind: EntryKind = Field(
        description="`follow_up` (charged the plan's follow-up minutes, 15 by default, "
        "whatever its length), `session` (minutes x consultants) or `work` (minutes)"
    )
    minutes: Int | None = Field(
        default=None,
        ge=0,
        le=MAX_ENTRY_MINUTES,
        description="length as worked; required for `session` and `work`",
    )
    consultants: Int = Field(
        default=1, ge=1, le=MAX_CONSULTANTS, description="consultants in a `session`"
    )
    occurred_at: Instant | None = Field(
        default=None,
        description="when it started (a follow-up: when it happened); never before the "
        "ticket was received, and it must end by now. Without it (and without `ended_at`) "
        "the entry ends now: it started `minutes` ago",
    )
    ended_at: Instant | None = Field(
        default=None,
        description="instead of `occurred_at`: when it ended (never in the future); it started "
        "`minutes` before",
    )
    agent_id: uuid.UUID | None = Field(
        default=None, description="who did it (default: the key's agent)"
    )
    note: Note | None = Field(default=None, description="internal; never shown to customers")
    billable: Bool = Field(default=True, description="false: recorded, charged nothing")


class WorklogRead(ReadModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    contract_id: uuid.UUID | None
    kind: EntryKind
    source: str = Field(description="`manual`, or `auto` (written by a ticket action)")
    agent_id: uuid.UUID | None
    occurred_at: datetime = Field(description="when it started")
    minutes: int = Field(description="length as entered (a follow-up's charge ignores it)")
    consultants: int
    after_hours_minutes: int = Field(description="minutes outside the plan's hours")
    unrequested_minutes: int = Field(
        description="of those, the minutes outside every window the client requested: "
        "charged as business time"
    )
    multiplier: float = Field(
        description="applied to the after-hours minutes inside a requested window"
    )
    after_hours_request_id: uuid.UUID | None = Field(
        description="the client's after-hours request the multiplied minutes rely on"
    )
    charged_minutes: int = Field(description="0 when not billable")
    billable: bool
    unbilled_reason: str | None = Field(
        description="why an automatic follow-up was not billed: `after_hours_not_allowed`, "
        "`after_hours_not_requested`, `authorization_pending`, `authorization_declined`; "
        "`not_billable` when entered so"
    )
    event_id: uuid.UUID | None = Field(description="the timeline event that wrote it (auto)")
    note: str | None
    actor: dict[str, Any] | None = Field(
        description="who recorded it, as on the timeline (an automatic follow-up: the "
        "actor of the action that caused it); null on entries older than this field"
    )
    created_at: datetime


class EstimateUpdate(StrictModel):
    minutes: Int | None = Field(
        ge=0,
        le=MAX_ESTIMATE_MINUTES,
        description="charged minutes the solution is expected to take; null removes it",
    )


class AuthorizationRead(ReadModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    status: str = Field(description="`pending`, `approved` or `declined`")
    requested_at: datetime
    charged_minutes: int = Field(description="the ticket's charged minutes when requested")
    estimate_minutes: int | None = Field(description="the estimate that was passed")
    approved_estimate_minutes: int | None
    decided_by: dict[str, Any] | None
    decided_at: datetime | None
    note: str | None


class EstimateRead(StrictModel):
    ticket_id: uuid.UUID
    estimate_minutes: int | None
    charged_minutes: int = Field(description="billable minutes charged on the ticket so far")
    remaining_minutes: int | None = Field(description="estimate - charged (may be negative)")
    pending_authorization: AuthorizationRead | None


class ApproveBody(StrictModel):
    estimate_minutes: Int = Field(
        ge=1,
        le=MAX_ESTIMATE_MINUTES,
        description="the new estimate the customer authorizes (at least what is charged)",
    )
    note: Note | None = Field(
        default=None,
        description="required for staff keys: the customer's e-mail that authorizes it",
    )


class DeclineBody(StrictModel):
    note: Note | None = Field(
        default=None, description="required for staff keys: the customer's e-mail"
    )


class ContractUsage(StrictModel):
    contract_id: uuid.UUID
    hours_budget: float | None
    used_minutes: int = Field(description="billable charged minutes on the contract's tickets")
    used_hours: float
    remaining_hours: float | None = Field(description="null without a budget; never below 0")
    overage_hours: float = Field(description="hours charged past the budget")
    entries: int


WORKLOG_EXAMPLES: dict[str, Any] = {
    "session": {
        "summary": "A 2-hour session with 3 consultants (charged 6 hours)",
        "value": {
            "kind": "session",
            "minutes": 120,
            "consultants": 3,
            "occurred_at": "2026-11-10T10:00:00-06:00",
            "note": "Migration walkthrough with the customer's DBA",
        },
    },
    "follow_up": {
        "summary": "A follow-up e-mail (charged the plan's 15 minutes)",
        "value": {"kind": "follow_up"},
    },
    "just_worked": {
        "summary": "45 minutes of work that ended now (started 45 minutes ago)",
        "value": {"kind": "work", "minutes": 45},
    },
    "work": {
        "summary": "An hour of work after hours (x 1.5 inside a window the client requested)",
        "value": {"kind": "work", "minutes": 60, "occurred_at": "2026-11-10T19:00:00-06:00"},
    },
}
