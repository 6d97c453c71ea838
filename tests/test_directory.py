"""Organizations, contacts, agents: CRUD, pagination and customer scoping."""

from __future__ import annotations

from typing import Any

import httpx

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_agent, create_contact, create_org


async def test_organization_crud(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin, name="Vitrium Systems", external_ref="CRM-17")
    assert org["active"] is True and org["external_ref"] == "CRM-17"
    patched = await admin.patch(f"/v1/organizations/{org['id']}", json={"notes": "BC, Canada"})
    assert patched.status_code == 200 and patched.json()["notes"] == "BC, Canada"
    assert patched.json()["name"] == "Vitrium Systems"  # untouched fields stay
    again = await admin.get(f"/v1/organizations/{org['id']}")
    assert again.json()["notes"] == "BC, Canada"
    duplicate = await admin.post("/v1/organizations", json={"name": "VITRIUM systems"})
    assert duplicate.status_code == 409


async def test_contact_deactivation_keeps_history(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin)
    contact = await create_contact(admin, org["id"], role="end_user")
    assert contact["role"] == "end_user" and contact["deactivated_at"] is None
    url = f"/v1/organizations/{org['id']}/contacts/{contact['id']}"
    off = (await admin.patch(url, json={"active": False})).json()
    assert off["active"] is False and off["deactivated_at"] is not None
    # Still readable and listed (history), filterable by state.
    assert (await admin.get(url)).status_code == 200
    listed = await admin.get(f"/v1/organizations/{org['id']}/contacts", params={"active": False})
    assert [c["id"] for c in listed.json()["items"]] == [contact["id"]]
    on = (await admin.patch(url, json={"active": True})).json()
    assert on["active"] is True and on["deactivated_at"] is None


async def test_contact_of_another_organization_is_404(admin: httpx.AsyncClient) -> None:
    a, b = await create_org(admin), await create_org(admin)
    contact = await create_contact(admin, a["id"])
    response = await admin.get(f"/v1/organizations/{b['id']}/contacts/{contact['id']}")
    assert response.status_code == 404


async def test_agents_crud_and_filters(admin: httpx.AsyncClient) -> None:
    l1 = await create_agent(admin, tier=1)
    l4 = await create_agent(admin, tier=4, name="Microsoft liaison")
    assert (l1["tier"], l4["tier"]) == (1, 4)
    bad = await admin.post("/v1/agents", json={"name": "X", "email": "x@v.example", "tier": 5})
    assert bad.status_code == 422
    tier4 = await admin.get("/v1/agents", params={"tier": 4})
    assert [a["id"] for a in tier4.json()["items"]] == [l4["id"]]
    await admin.patch(f"/v1/agents/{l1['id']}", json={"active": False})
    active = await admin.get("/v1/agents", params={"active": True})
    assert [a["id"] for a in active.json()["items"]] == [l4["id"]]
    dup = await admin.post("/v1/agents", json={"name": "Y", "email": l4["email"].upper()})
    assert dup.status_code == 409


async def test_cursor_pagination_walks_every_row_once(admin: httpx.AsyncClient) -> None:
    created = {(await create_org(admin))["id"] for _ in range(23)}
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = (await admin.get("/v1/organizations", params=params)).json()
        seen += [o["id"] for o in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == created
    default = (await admin.get("/v1/organizations")).json()
    assert len(default["items"]) == 23 and default["next_cursor"] is None


async def test_customer_key_sees_only_its_organization(
    app: Any, admin: httpx.AsyncClient, db: Any
) -> None:
    mine, theirs = await create_org(admin), await create_org(admin)
    my_contact = await create_contact(admin, mine["id"])
    their_contact = await create_contact(admin, theirs["id"])
    key = await make_key(db, Role.CUSTOMER, organization_id=mine["id"])
    async with client_for(app, key) as customer:
        listed = (await customer.get("/v1/organizations")).json()["items"]
        assert [o["id"] for o in listed] == [mine["id"]]
        assert (await customer.get(f"/v1/organizations/{mine['id']}")).status_code == 200
        # Another organization's resources do not exist for this key: 404, not 403.
        assert (await customer.get(f"/v1/organizations/{theirs['id']}")).status_code == 404
        other = f"/v1/organizations/{theirs['id']}/contacts"
        assert (await customer.get(other)).status_code == 404
        assert (await customer.get(f"{other}/{their_contact['id']}")).status_code == 404
        own = (await customer.get(f"/v1/organizations/{mine['id']}/contacts")).json()["items"]
        assert [c["id"] for c in own] == [my_contact["id"]]
        # Customers read; the desk's staff change the directory.
        write = await customer.post("/v1/organizations", json={"name": "Mine too"})
        assert write.status_code == 403
        assert (await customer.get("/v1/agents")).status_code == 403
        assert (await customer.get("/v1/api-keys")).status_code == 403


async def test_organization_locale(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin)
    assert org["locale"] == "en"  # the default
    url = f"/v1/organizations/{org['id']}"
    patched = await admin.patch(url, json={"locale": "es-MX"})
    assert patched.status_code == 200 and patched.json()["locale"] == "es-MX"
    for bad in ("fr", "es_MX", "ES", "es-mx", None):
        refused = await admin.patch(url, json={"locale": bad})
        assert refused.status_code == 422, bad
    assert (await admin.get(url)).json()["locale"] == "es-MX"


async def test_agents_keep_contacts_up_to_date_but_only_admins_write_organizations(
    admin: httpx.AsyncClient, agent: httpx.AsyncClient
) -> None:
    org = await create_org(admin)
    # An agent takes the customer's call about a personnel change (seeds 002/004).
    contact = await create_contact(agent, org["id"], role="authorized")
    url = f"/v1/organizations/{org['id']}/contacts/{contact['id']}"
    left = await agent.patch(url, json={"active": False})
    assert left.status_code == 200 and left.json()["active"] is False
    # A customer account (its name, its state) is an administrator's: contracts and
    # billing hang on it.
    created = await agent.post("/v1/organizations", json={"name": "Made by an agent"})
    assert created.status_code == 403
    assert created.headers["content-type"] == "application/problem+json"
    renamed = await agent.patch(f"/v1/organizations/{org['id']}", json={"name": "Renamed"})
    assert renamed.status_code == 403
    assert (await admin.get(f"/v1/organizations/{org['id']}")).json()["name"] == org["name"]
