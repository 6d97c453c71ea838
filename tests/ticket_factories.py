"""Setting up a customer with a plan, and driving tickets through the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from tests.factories import create_contact, create_org
from tests.plan_factories import create_calendar, create_contract, create_plan


@dataclass
class Desk:
    """An organization under a plan: what most ticket tests start from."""

    calendar: dict[str, Any]
    plan: dict[str, Any]
    org: dict[str, Any]
    contact: dict[str, Any]
    contract: dict[str, Any]


async def make_desk(
    api: httpx.AsyncClient,
    *,
    timezone: str = "America/Mexico_City",
    hours: str = "08:30-18:00",
    calendar_fields: dict[str, Any] | None = None,
    **plan_fields: Any,
) -> Desk:
    calendar = await create_calendar(api, timezone=timezone, hours=hours, **(calendar_fields or {}))
    plan = await create_plan(api, calendar["id"], **plan_fields)
    org = await create_org(api)
    contact = await create_contact(api, org["id"])
    contract = await create_contract(api, org["id"], plan["id"], starts_on="2025-01-01")
    return Desk(calendar, plan, org, contact, contract)


def ticket_body(desk: Desk, **fields: Any) -> dict[str, Any]:
    """A request for a ticket at the desk (``fields`` override or add)."""
    return {
        "organization_id": desk.org["id"],
        "contact_id": desk.contact["id"],
        "channel": "email",
        "severity": "high",
        "category": "technical",
        "subject": "The export fails",
        "description": "Since this morning every export ends with error 500.",
        **fields,
    }


async def open_ticket(api: httpx.AsyncClient, desk: Desk, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/tickets", json=ticket_body(desk, **fields))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def act(
    api: httpx.AsyncClient, ticket_id: str, action: str, expect: int = 200, **body: Any
) -> dict[str, Any]:
    response = await api.post(f"/v1/tickets/{ticket_id}/actions/{action}", json=body)
    assert response.status_code == expect, response.text
    return dict(response.json())


def clock(ticket: dict[str, Any], metric: str) -> dict[str, Any]:
    found = [c for c in ticket["sla"] if c["metric"] == metric]
    assert found, f"no {metric} clock in {ticket['sla']}"
    return dict(found[0])
