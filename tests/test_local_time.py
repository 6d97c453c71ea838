"""Due times also in local time: every clock read, the SLA preview and a calendar's due
time carry `due_local` in the plan calendar's zone; a customer key's statement is in its
plan calendar's zone by default."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.security import Role
from tests.conftest import client_for, make_key
from tests.plan_factories import target
from tests.ticket_factories import act, clock, make_desk, open_ticket

MX = "America/Mexico_City"


def _same_instant_in(local: dict[str, Any], due_at: str, zone: str) -> None:
    assert local["timezone"] == zone
    at = datetime.fromisoformat(local["at"])
    assert at == datetime.fromisoformat(due_at.replace("Z", "+00:00"))
    # The wall-clock reading of the zone, with its offset (Mexico City: UTC-6 since 2022).
    assert (
        at.utcoffset()
        == datetime.fromisoformat(due_at.replace("Z", "+00:00"))
        .astimezone(ZoneInfo(zone))
        .utcoffset()
    )


async def test_clock_reads_preview_and_due_carry_local_time(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    desk = await make_desk(
        admin,
        timezone=MX,
        targets=[target("first_response", 60, clock="24x7"), target("resolution", 600)],
    )
    ticket = await open_ticket(admin, desk, received_at="2026-03-06T17:00:00Z")
    for metric in ("first_response", "resolution"):
        read = clock(ticket, metric)
        _same_instant_in(read["due_local"], read["due_at"], MX)
    assert clock(ticket, "first_response")["due_local"]["at"] == "2026-03-06T12:00:00-06:00"

    # Lists and webhooks carry it too; a stopped clock keeps the due time it was held to.
    listed = (await admin.get("/v1/tickets")).json()["items"][0]
    assert clock(listed, "resolution")["due_local"] == clock(ticket, "resolution")["due_local"]
    replied = await act(admin, ticket["id"], "reply", body="On it.")
    stopped = clock(replied, "first_response")  # answered now: long after March's deadline
    assert stopped["state"] == "breached"
    assert stopped["due_at"] == clock(ticket, "first_response")["due_at"]
    assert stopped["due_local"] == clock(ticket, "first_response")["due_local"]

    preview = await admin.post(
        "/v1/sla/preview",
        json={
            "plan_id": desk.plan["id"],
            "severity": "high",
            "received_at": "2026-03-06T17:00:00Z",
        },
    )
    assert preview.status_code == 200, preview.text
    for item in preview.json()["targets"]:
        _same_instant_in(item["due_local"], item["due_at"], MX)

    due = await admin.get(
        f"/v1/calendars/{desk.calendar['id']}/due",
        params={"start": "2026-03-06T17:00:00Z", "minutes": 60},
    )
    assert due.status_code == 200, due.text
    _same_instant_in(due.json()["due_local"], due.json()["due_at"], MX)


async def test_a_customer_statement_defaults_to_its_plan_calendar_zone(
    admin: httpx.AsyncClient, app: Any, db: AsyncEngine
) -> None:
    desk = await make_desk(admin, timezone=MX)
    key = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"])
    async with client_for(app, key) as customer:
        mine = await customer.get("/v1/reports/statement", params={"month": "2026-03"})
        assert mine.status_code == 200, mine.text
        assert mine.json()["tz"] == MX
        assert mine.json()["from"] == "2026-03-01T06:00:00Z"
        # Asked for, another zone is used.
        utc = await customer.get("/v1/reports/statement", params={"month": "2026-03", "tz": "UTC"})
        assert utc.json()["tz"] == "UTC"
    staff = await admin.get(
        "/v1/reports/statement", params={"month": "2026-03", "organization_id": desk.org["id"]}
    )
    assert staff.json()["tz"] == "UTC"
