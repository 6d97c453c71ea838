"""API keys: shown once, stored hashed, listable by prefix, revocable, scoped."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_sessionmaker
from app.models import ApiKey, Organization
from app.security import Role, hash_key
from app.services.api_keys import bootstrap_admin_key
from tests.conftest import auth, make_key
from tests.factories import create_agent, create_contact, create_org


async def test_key_is_shown_once_and_stored_hashed(admin: httpx.AsyncClient, db: Any) -> None:
    created = await admin.post("/v1/api-keys", json={"name": "portal", "role": "agent"})
    assert created.status_code == 201
    body = created.json()
    key = body["key"]
    assert key.startswith("sld_") and len(key) > 40
    assert key.startswith(body["prefix"]) and len(body["prefix"]) == 12
    listed = await admin.get("/v1/api-keys")
    assert all("key" not in item for item in listed.json()["items"])
    assert key not in listed.text
    async with make_sessionmaker(db)() as session:
        row = (await session.execute(select(ApiKey).where(ApiKey.id == body["id"]))).scalar_one()
    assert row.key_hash == hash_key(key) and key not in row.key_hash


async def test_list_by_prefix_and_revoked(admin: httpx.AsyncClient) -> None:
    a = (await admin.post("/v1/api-keys", json={"name": "a", "role": "agent"})).json()
    b = (await admin.post("/v1/api-keys", json={"name": "b", "role": "agent"})).json()
    found = (await admin.get("/v1/api-keys", params={"prefix": a["prefix"]})).json()["items"]
    assert [k["id"] for k in found] == [a["id"]]
    await admin.delete(f"/v1/api-keys/{b['id']}")
    active = {k["id"] for k in (await admin.get("/v1/api-keys")).json()["items"]}
    assert b["id"] not in active and a["id"] in active
    everything = await admin.get("/v1/api-keys", params={"include_revoked": True})
    revoked = [k for k in everything.json()["items"] if k["id"] == b["id"]]
    assert revoked and revoked[0]["revoked_at"] is not None


async def test_customer_key_needs_its_organization(admin: httpx.AsyncClient) -> None:
    missing = await admin.post("/v1/api-keys", json={"name": "c", "role": "customer"})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "body.organization_id"
    org, other = await create_org(admin), await create_org(admin)
    stranger = await create_contact(admin, other["id"])
    wrong_contact = await admin.post(
        "/v1/api-keys",
        json={
            "name": "c",
            "role": "customer",
            "organization_id": org["id"],
            "contact_id": stranger["id"],
        },
    )
    assert wrong_contact.status_code == 422
    staff_with_org = await admin.post(
        "/v1/api-keys", json={"name": "s", "role": "agent", "organization_id": org["id"]}
    )
    assert staff_with_org.status_code == 422
    agent = await create_agent(admin)
    ok = await admin.post(
        "/v1/api-keys", json={"name": "me", "role": "agent", "agent_id": agent["id"]}
    )
    assert ok.status_code == 201 and ok.json()["agent_id"] == agent["id"]


async def test_expired_key_is_refused(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    past = await admin.post(
        "/v1/api-keys", json={"name": "old", "role": "agent", "expires_at": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 422
    soon = await admin.post(
        "/v1/api-keys", json={"name": "soon", "role": "agent", "expires_at": "2199-01-01T00:00:00Z"}
    )
    assert (await client.get("/v1/agents", headers=auth(soon.json()["key"]))).status_code == 200


async def test_only_admins_manage_keys(admin: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    agent_key = (await admin.post("/v1/api-keys", json={"name": "a", "role": "agent"})).json()[
        "key"
    ]
    response = await client.post(
        "/v1/api-keys", json={"name": "escalate", "role": "admin"}, headers=auth(agent_key)
    )
    assert response.status_code == 403


async def test_the_first_admin_key_is_made_even_after_load_made_customer_keys(
    db: AsyncEngine,
) -> None:
    # `sladesk load` before the first `serve` makes customer keys; serve must still print
    # an admin key, once.
    async with make_sessionmaker(db)() as session, session.begin():
        org = Organization(name="Loaded first")
        session.add(org)
    await make_key(db, Role.CUSTOMER, organization_id=org.id)
    async with make_sessionmaker(db)() as session, session.begin():
        first = await bootstrap_admin_key(session)
    async with make_sessionmaker(db)() as session, session.begin():
        second = await bootstrap_admin_key(session)
    assert first is not None and first.startswith("sld_") and second is None
