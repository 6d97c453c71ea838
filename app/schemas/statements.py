"""The monthly statement of an organization's charged time (`GET /v1/reports/statement`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

DEFAULT_LINE_LIMIT = 1_000
MAX_LINE_LIMIT = 5_000


class AfterHoursRequestRef(BaseModel):
    """The client's after-hours request an entry's multiplied minutes rely on."""

    id: uuid.UUID
    scope: str = Field(description="`ticket`, or `contract` (a standing agreement)")
    contact_id: uuid.UUID = Field(description="who asked")
    requested_at: datetime = Field(description="when the client asked")
    starts_at: datetime
    ends_at: datetime
    reference: str | None = Field(description="e.g. the e-mail's subject")


class StatementLine(BaseModel):
    """One billable work log entry. `agent_id` and `note` are present for staff keys only."""

    id: uuid.UUID = Field(description="the work log entry")
    ticket_id: uuid.UUID
    ticket_number: str = Field(examples=["SD-000123"])
    ticket_subject: str
    contract_id: uuid.UUID | None
    kind: str = Field(description="follow_up, session or work")
    source: str = Field(description="manual or auto")
    occurred_at: datetime
    minutes: int = Field(description="as entered (raw)")
    consultants: int
    after_hours_minutes: int = Field(description="base minutes that fell after hours")
    unrequested_minutes: int = Field(
        description="of those, minutes outside every window the client requested (charged "
        "as business time)"
    )
    multiplier: float = Field(
        description="the after-hours multiplier applied (to the requested after-hours minutes)"
    )
    charged_minutes: int
    after_hours_request: AfterHoursRequestRef | None = Field(
        description="the request the multiplied minutes rely on (null: none were multiplied)"
    )
    agent_id: uuid.UUID | None = Field(default=None, description="staff keys only")
    note: str | None = Field(default=None, description="staff keys only")


class KindTotal(BaseModel):
    kind: str
    entries: int
    charged_minutes: int


class ContractTotal(BaseModel):
    contract_id: uuid.UUID | None = Field(description="null: entries under no contract")
    entries: int
    charged_minutes: int


class Unbilled(BaseModel):
    """The month's non-billable entries (charged 0): not in the lines."""

    entries: int
    minutes: int = Field(description="raw minutes entered")


class StatementTotals(BaseModel):
    """Of the whole month's billable entries, whatever page of lines is returned."""

    entries: int
    minutes: int = Field(description="raw minutes entered")
    charged_minutes: int
    charged_hours: float = Field(description="charged_minutes / 60, 2 decimals (half up)")
    after_hours_minutes: int
    unrequested_minutes: int = Field(
        description="after-hours minutes outside every requested window (business rate)"
    )
    by_kind: list[KindTotal] = Field(description="every kind, zeros included")
    by_contract: list[ContractTotal] = Field(description="contracts with billable entries")
    unbilled: Unbilled


class Statement(BaseModel):
    organization_id: uuid.UUID
    organization_name: str
    month: str = Field(examples=["2026-03"])
    tz: str
    from_: datetime = Field(alias="from", description="local midnight of the 1st (inclusive)")
    to: datetime = Field(description="local midnight of the next month's 1st (exclusive)")
    totals: StatementTotals
    lines: list[StatementLine] = Field(description="billable entries by (occurred_at, id)")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page of lines; null on the last page."
    )

    model_config = {"populate_by_name": True}


_LINE_EXAMPLE = {
    "id": "7d1e9a40-2b3c-4d5e-8f90-a1b2c3d4e5f6",
    "ticket_id": "0b6c2f0e-3d0b-4f3e-9a55-1c3a7d9e2f10",
    "ticket_number": "SD-000042",
    "ticket_subject": "VPN drops every hour",
    "contract_id": "5f0c6a7e-8f7d-4bb6-9f5e-0d1d2b3c4a5e",
    "kind": "session",
    "source": "manual",
    "occurred_at": "2026-03-03T16:00:00Z",
    "minutes": 120,
    "consultants": 3,
    "after_hours_minutes": 0,
    "unrequested_minutes": 0,
    "multiplier": 1.0,
    "charged_minutes": 360,
    "after_hours_request": None,
    "agent_id": "3c1b2a55-0d9e-4f8a-9b7c-6d5e4f3a2b1c",
    "note": "remote session with the network team",
}
_AFTER_HOURS_LINE = {
    **_LINE_EXAMPLE,
    "id": "8e2f0b51-3c4d-4e6f-9a01-b2c3d4e5f607",
    "kind": "work",
    "occurred_at": "2026-03-04T02:00:00Z",
    "minutes": 60,
    "consultants": 1,
    "after_hours_minutes": 60,
    "multiplier": 1.5,
    "charged_minutes": 90,
    "after_hours_request": {
        "id": "4a5b6c7d-8e9f-4a0b-9c1d-2e3f4a5b6c7d",
        "scope": "ticket",
        "contact_id": "a3b4c5d6-e7f8-4091-a2b3-c4d5e6f70812",
        "requested_at": "2026-03-03T18:05:00Z",
        "starts_at": "2026-03-04T00:00:00Z",
        "ends_at": "2026-03-04T04:00:00Z",
        "reference": "RE: VPN drops - please stay on it tonight",
    },
    "note": "evening migration, as the client asked",
}
STATEMENT_EXAMPLE = {
    "organization_id": "9a1e3c55-6b0f-4f7e-8c1d-2e3f4a5b6c7d",
    "organization_name": "Vitrium",
    "month": "2026-03",
    "tz": "America/Mexico_City",
    "from": "2026-03-01T06:00:00Z",
    "to": "2026-04-01T06:00:00Z",
    "totals": {
        "entries": 5,
        "minutes": 225,
        "charged_minutes": 495,
        "charged_hours": 8.25,
        "after_hours_minutes": 60,
        "unrequested_minutes": 0,
        "by_kind": [
            {"kind": "follow_up", "entries": 3, "charged_minutes": 45},
            {"kind": "session", "entries": 1, "charged_minutes": 360},
            {"kind": "work", "entries": 1, "charged_minutes": 90},
        ],
        "by_contract": [
            {
                "contract_id": "5f0c6a7e-8f7d-4bb6-9f5e-0d1d2b3c4a5e",
                "entries": 5,
                "charged_minutes": 495,
            }
        ],
        "unbilled": {"entries": 1, "minutes": 30},
    },
    "lines": [_LINE_EXAMPLE, _AFTER_HOURS_LINE],
    "next_cursor": None,
}
STATEMENT_CSV_EXAMPLE = (
    "record,entries,id,occurred_at,ticket_number,ticket_subject,ticket_id,contract_id,kind,"
    "source,minutes,consultants,after_hours_minutes,unrequested_minutes,multiplier,"
    "charged_minutes,after_hours_request_id,after_hours_requested_at,"
    "after_hours_request_reference,charged_hours,agent_id,note\r\n"
    "line,1,7d1e9a40-...,2026-03-03T16:00:00+00:00,SD-000042,VPN drops every hour,0b6c2f0e-...,"
    "5f0c6a7e-...,session,manual,120,3,0,0,1.000,360,,,,,3c1b2a55-...,remote session\r\n"
    "total,5,,,,,,,,,225,,60,0,,495,,,,8.25,,\r\n"
)
