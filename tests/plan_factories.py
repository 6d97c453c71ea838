"""Helpers that create calendars, plans and contracts through the API, as a user would."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_seq = itertools.count(1)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


async def create_calendar(
    api: httpx.AsyncClient,
    timezone: str = "Etc/GMT-1",
    hours: str = "09:00-18:00",
    **fields: Any,
) -> dict[str, Any]:
    body = {
        "name": f"Calendar {next(_seq)}",
        "timezone": timezone,
        "weekly_hours": {d: [hours] for d in WEEKDAYS},
        **fields,
    }
    response = await api.post("/v1/calendars", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def target(
    metric: str = "first_response", minutes: int | None = 60, **fields: Any
) -> dict[str, Any]:
    return {"metric": metric, "minutes": minutes, **fields}


async def create_plan(api: httpx.AsyncClient, calendar_id: str, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {
        "code": f"plan-{n}",
        "name": f"Plan {n}",
        "level": 1,
        "calendar_id": calendar_id,
        "channels": ["email", "web"],
        "targets": [target()],
        **fields,
    }
    response = await api.post("/v1/plans", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_contract(
    api: httpx.AsyncClient, organization_id: str, plan_id: str, **fields: Any
) -> dict[str, Any]:
    body = {
        "organization_id": organization_id,
        "plan_id": plan_id,
        "starts_on": "2026-01-01",
        **fields,
    }
    response = await api.post("/v1/contracts", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())
