"""/v1/contracts: CRUD, overlaps, add-ons needing their base, scoping, concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_org
from tests.plan_factories import create_calendar, create_contract, create_plan


async def _catalog(admin: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """Seed 000: Primary, and Premium which may only be bought on top of Primary."""
    cal = await create_calendar(admin, timezone="America/Mexico_City")
    primary = await create_plan(admin, cal["id"], code="primary", level=1)
    premium = await create_plan(admin, cal["id"], code="premium", level=2, requires="primary")
    return primary, premium


async def test_crud(admin: httpx.AsyncClient) -> None:
    primary, _ = await _catalog(admin)
    org = await create_org(admin)
    made = await create_contract(
        admin,
        org["id"],
        primary["id"],
        ends_on="2026-12-31",
        reference="LIC-1",
        hours_budget=12.345,
    )
    assert made["plan_code"] == "primary" and made["starts_on"] == "2026-01-01"
    assert made["hours_budget"] == 12.35 and made["reference"] == "LIC-1"
    url = f"/v1/contracts/{made['id']}"
    assert (await admin.get(url)).json() == made
    renewed = await admin.patch(url, json={"ends_on": None, "hours_budget": 40})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["ends_on"] is None and renewed.json()["hours_budget"] == 40
    listed = await admin.get("/v1/contracts", params={"organization_id": org["id"]})
    assert [c["id"] for c in listed.json()["items"]] == [made["id"]]
    by_plan = await admin.get("/v1/contracts", params={"plan_id": primary["id"]})
    assert len(by_plan.json()["items"]) == 1
    assert (await admin.delete(url)).status_code == 204
    assert (await admin.get(url)).status_code == 404


async def test_field_refusals(admin: httpx.AsyncClient) -> None:
    primary, _ = await _catalog(admin)
    org = await create_org(admin)
    base = {"organization_id": org["id"], "plan_id": primary["id"], "starts_on": "2026-01-01"}
    cases = [
        ({"ends_on": "2025-12-31"}, "body.ends_on"),
        ({"starts_on": "0001-01-01"}, "body.starts_on"),
        ({"hours_budget": -1}, "body.hours_budget"),
        ({"plan_id": "00000000-0000-0000-0000-000000000000"}, "body.plan_id"),
        ({"organization_id": "00000000-0000-0000-0000-000000000000"}, "body.organization_id"),
        ({"plan": "primary"}, "body.plan"),
    ]
    for change, field in cases:
        response = await admin.post("/v1/contracts", json={**base, **change})
        assert response.status_code == 422, (change, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field], change
    made = await create_contract(admin, org["id"], primary["id"], ends_on="2026-06-30")
    backwards = await admin.patch(f"/v1/contracts/{made['id']}", json={"starts_on": "2026-07-01"})
    assert backwards.status_code == 422
    assert backwards.json()["errors"][0]["field"] == "body.starts_on"
    fixed = await admin.patch(f"/v1/contracts/{made['id']}", json={"plan_id": primary["id"]})
    assert fixed.status_code == 422  # the plan of a contract cannot change


async def test_overlapping_contracts_for_one_plan_are_a_conflict(admin: httpx.AsyncClient) -> None:
    primary, _ = await _catalog(admin)
    org, other_org = await create_org(admin), await create_org(admin)
    first = await create_contract(
        admin, org["id"], primary["id"], ends_on="2026-12-31", reference="LIC-2026"
    )
    clash = await admin.post(
        "/v1/contracts",
        json={"organization_id": org["id"], "plan_id": primary["id"], "starts_on": "2026-12-31"},
    )
    assert clash.status_code == 409
    assert clash.json()["overlapping_contract_id"] == first["id"]
    assert "LIC-2026" in clash.json()["detail"] and "2026-01-01" in clash.json()["detail"]
    # Back to back is fine, and so is the same period for another organization.
    nxt = await create_contract(admin, org["id"], primary["id"], starts_on="2027-01-01")
    await create_contract(admin, other_org["id"], primary["id"])
    stretch = await admin.patch(f"/v1/contracts/{first['id']}", json={"ends_on": "2027-01-05"})
    assert stretch.status_code == 409 and stretch.json()["overlapping_contract_id"] == nxt["id"]
    open_ended = await admin.patch(f"/v1/contracts/{first['id']}", json={"ends_on": None})
    assert open_ended.status_code == 409


async def test_an_add_on_needs_its_base_over_the_whole_period(admin: httpx.AsyncClient) -> None:
    primary, premium = await _catalog(admin)
    org = await create_org(admin)
    body = {
        "organization_id": org["id"],
        "plan_id": premium["id"],
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
    }
    alone = await admin.post("/v1/contracts", json=body)
    assert alone.status_code == 422
    problem = alone.json()
    assert problem["reason"] == "requires_plan" and problem["required_plan"] == "primary"
    assert problem["errors"] == [
        {"field": "body.plan_id", "message": "requires plan primary", "type": "requires_plan"}
    ]
    assert problem["uncovered"] == [{"starts_on": "2026-01-01", "ends_on": "2026-12-31"}]
    # Primary for the first half only: the second half is named.
    await create_contract(admin, org["id"], primary["id"], ends_on="2026-06-30")
    half = await admin.post("/v1/contracts", json=body)
    assert half.status_code == 422
    assert half.json()["uncovered"] == [{"starts_on": "2026-07-01", "ends_on": "2026-12-31"}]
    # A back-to-back renewal covers it.
    await create_contract(admin, org["id"], primary["id"], starts_on="2026-07-01")
    assert (await admin.post("/v1/contracts", json=body)).status_code == 201
    # An open-ended add-on needs an open-ended base: this one is.
    second = await create_org(admin)
    await create_contract(admin, second["id"], primary["id"], ends_on="2027-12-31")
    open_end = await admin.post(
        "/v1/contracts",
        json={"organization_id": second["id"], "plan_id": premium["id"], "starts_on": "2026-01-01"},
    )
    assert open_end.status_code == 422
    assert open_end.json()["uncovered"] == [{"starts_on": "2028-01-01", "ends_on": None}]


async def test_a_base_that_an_add_on_needs_cannot_shrink(admin: httpx.AsyncClient) -> None:
    primary, premium = await _catalog(admin)
    org = await create_org(admin)
    base = await create_contract(admin, org["id"], primary["id"])
    addon = await create_contract(
        admin, org["id"], premium["id"], starts_on="2026-03-01", ends_on="2026-12-31"
    )
    url = f"/v1/contracts/{base['id']}"
    for change in ({"ends_on": "2026-06-30"}, {"starts_on": "2026-04-01"}):
        refused = await admin.patch(url, json=change)
        assert refused.status_code == 409, refused.text
        assert refused.json()["dependent_contract_id"] == addon["id"]
        assert "premium" in refused.json()["detail"]
    deleted = await admin.delete(url)
    assert deleted.status_code == 409 and deleted.json()["dependent_contract_id"] == addon["id"]
    # Ending the base after the add-on ends is fine; so is ending the add-on first.
    ok = await admin.patch(url, json={"ends_on": "2026-12-31"})
    assert ok.status_code == 200
    extend = await admin.patch(f"/v1/contracts/{addon['id']}", json={"ends_on": "2027-03-31"})
    assert extend.status_code == 422 and extend.json()["reason"] == "requires_plan"
    assert extend.json()["errors"][0]["field"] == "body.ends_on"
    assert (
        await admin.patch(f"/v1/contracts/{addon['id']}", json={"ends_on": "2026-05-31"})
    ).status_code == 200
    assert (await admin.patch(url, json={"ends_on": "2026-05-31"})).status_code == 200
    assert (await admin.delete(f"/v1/contracts/{addon['id']}")).status_code == 204
    assert (await admin.delete(url)).status_code == 204


async def test_inactive_plans_get_no_new_contracts(admin: httpx.AsyncClient) -> None:
    primary, _ = await _catalog(admin)
    org = await create_org(admin)
    existing = await create_contract(admin, org["id"], primary["id"], ends_on="2026-06-30")
    await admin.patch(f"/v1/plans/{primary['id']}", json={"active": False})
    refused = await admin.post(
        "/v1/contracts",
        json={"organization_id": org["id"], "plan_id": primary["id"], "starts_on": "2026-07-01"},
    )
    assert refused.status_code == 422 and "inactive" in refused.json()["detail"]
    # Existing contracts stay valid and can still be edited.
    ref = await admin.patch(f"/v1/contracts/{existing['id']}", json={"reference": "LIC-9"})
    assert ref.status_code == 200


async def test_concurrent_overlapping_creates_leave_one(app: Any, admin: httpx.AsyncClient) -> None:
    primary, _ = await _catalog(admin)
    org = await create_org(admin)
    body = {"organization_id": org["id"], "plan_id": primary["id"], "starts_on": "2026-01-01"}
    results = await asyncio.gather(*(admin.post("/v1/contracts", json=body) for _ in range(4)))
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    listed = await admin.get("/v1/contracts", params={"organization_id": org["id"]})
    assert len(listed.json()["items"]) == 1


async def test_customers_see_only_their_contracts(
    app: Any, admin: httpx.AsyncClient, agent: httpx.AsyncClient, db: Any
) -> None:
    primary, _ = await _catalog(admin)
    mine, theirs = await create_org(admin), await create_org(admin)
    own = await create_contract(admin, mine["id"], primary["id"])
    other = await create_contract(admin, theirs["id"], primary["id"])
    key = await make_key(db, Role.CUSTOMER, organization_id=mine["id"])
    async with client_for(app, key) as customer:
        listed = (await customer.get("/v1/contracts")).json()["items"]
        assert [c["id"] for c in listed] == [own["id"]]
        filtered = await customer.get("/v1/contracts", params={"organization_id": theirs["id"]})
        assert filtered.json()["items"] == []
        assert (await customer.get(f"/v1/contracts/{own['id']}")).status_code == 200
        assert (await customer.get(f"/v1/contracts/{other['id']}")).status_code == 404
        patch = await customer.patch(f"/v1/contracts/{own['id']}", json={"reference": "x"})
        assert patch.status_code == 403
        body = {"organization_id": mine["id"], "plan_id": primary["id"], "starts_on": "2030-01-01"}
        assert (await customer.post("/v1/contracts", json=body)).status_code == 403
    assert len((await agent.get("/v1/contracts")).json()["items"]) == 2  # staff read all
    assert (await agent.delete(f"/v1/contracts/{own['id']}")).status_code == 403


async def test_a_plan_cannot_start_requiring_a_base_its_holders_lack(
    admin: httpx.AsyncClient,
) -> None:
    primary, _ = await _catalog(admin)
    cal = primary["calendar_id"]
    extra = await create_plan(admin, cal, code="extra", level=2)
    with_base, without = await create_org(admin), await create_org(admin)
    await create_contract(admin, with_base["id"], primary["id"])
    await create_contract(admin, with_base["id"], extra["id"], starts_on="2026-02-01")
    lacking = await create_contract(admin, without["id"], extra["id"])
    url = f"/v1/plans/{extra['id']}"
    refused = await admin.patch(url, json={"requires": "primary"})
    assert refused.status_code == 409 and refused.json()["contract_id"] == lacking["id"]
    await create_contract(admin, without["id"], primary["id"], starts_on="2025-12-01")
    accepted = await admin.patch(url, json={"requires": "primary"})
    assert accepted.status_code == 200 and accepted.json()["requires"] == "primary"
