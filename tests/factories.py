"""Small helpers that create resources through the API, as a user would."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_seq = itertools.count(1)


def _unique(prefix: str) -> str:
    return f"{prefix} {next(_seq)}"


async def create_org(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": _unique("Org"), **fields}
    response = await api.post("/v1/organizations", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_contact(api: httpx.AsyncClient, org_id: str, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {"name": f"Contact {n}", "email": f"contact{n}@example.com", **fields}
    response = await api.post(f"/v1/organizations/{org_id}/contacts", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def create_agent(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    n = next(_seq)
    body = {"name": f"Agent {n}", "email": f"agent{n}@vendor.example", **fields}
    response = await api.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())
