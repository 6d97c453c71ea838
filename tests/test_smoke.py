from __future__ import annotations

import httpx

from tests.factories import create_org


async def test_create_and_read_organization(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin, name="Acme")
    response = await admin.get(f"/v1/organizations/{org['id']}")
    assert response.status_code == 200
    assert response.json()["name"] == "Acme"
