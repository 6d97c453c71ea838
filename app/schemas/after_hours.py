"""After-hours requests on the wire: the client's request for attention outside business
hours (seed 004), on a ticket or, as a standing agreement, on a contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from app.domain.vocab import Channel
from app.schemas.common import Instant, NonBlank, ReadModel, StrictModel

# A standing agreement may cover a contract's year; a longer window is a typo.
MAX_WINDOW_DAYS = 366

Reference = Annotated[str, NonBlank(500)]


class AfterHoursRequestCreate(StrictModel):
    contact_id: uuid.UUID | None = Field(
        default=None,
        description="who asked: an active, authorized contact of the organization (default: "
        "the customer key's contact)",
    )
    requested_at: Instant | None = Field(
        default=None,
        description="when the client asked (default now; staff record an earlier e-mail); "
        "in advance: at or before `starts_at`; never in the future",
    )
    starts_at: Instant = Field(description="the window's start (inclusive)")
    ends_at: Instant = Field(
        description=f"the window's end (exclusive); at most {MAX_WINDOW_DAYS} days after "
        "`starts_at`"
    )
    channel: Channel = Field(
        default=Channel.EMAIL, description="how the client asked (seed 004: by e-mail)"
    )
    reference: Reference | None = Field(
        default=None, description="e.g. the e-mail's subject or message id"
    )


class AfterHoursRequestRead(ReadModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    scope: Literal["ticket", "contract"] = Field(
        description="`ticket`: for that ticket; `contract`: a standing agreement for every "
        "ticket taken under the contract"
    )
    ticket_id: uuid.UUID | None
    contract_id: uuid.UUID | None
    contact_id: uuid.UUID = Field(description="who asked")
    requested_at: datetime = Field(description="when the client asked")
    starts_at: datetime
    ends_at: datetime
    channel: Channel
    reference: str | None
    recorded_by: dict[str, Any] = Field(description="who recorded it (customers see the role)")
    created_at: datetime


AFTER_HOURS_EXAMPLES: dict[str, Any] = {
    "evening": {
        "summary": "The client's e-mail asking for an engineer on Tuesday evening",
        "value": {
            "contact_id": "a3b4c5d6-e7f8-4091-a2b3-c4d5e6f70812",
            "requested_at": "2026-11-09T12:05:00-06:00",
            "starts_at": "2026-11-10T18:00:00-06:00",
            "ends_at": "2026-11-10T22:00:00-06:00",
            "reference": "RE: Payroll export fails - please stay on it tonight",
        },
    },
}
