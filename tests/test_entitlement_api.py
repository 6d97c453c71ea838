"""GET /v1/organizations/{id}/entitlement and POST /v1/sla/preview over HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import text

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_contact, create_org
from tests.plan_factories import create_calendar, create_contract, create_plan, target

VANCOUVER = {
    "timezone": "America/Vancouver",
    "hours": "00:00-18:00",
    "holidays": {"country": "CA", "subdivision": "BC"},
}


async def _vitrium(admin: httpx.AsyncClient) -> dict[str, Any]:
    """Seed 002 in small: Standard (email/web, no custom work) and Elite (+ phone)."""
    cal = await create_calendar(admin, **VANCOUVER)
    standard = await create_plan(
        admin,
        cal["id"],
        code="standard",
        excluded_categories=["customization"],
        targets=[
            target(severities=["critical"], minutes=60, clock="24x7", warn_at_percent=[50]),
            target("resolution", severities=["critical"], minutes=480, clock="24x7"),
            target(severities=["high"], minutes=120, warn_at_percent=[50, 75]),
            target(minutes=480),
        ],
    )
    elite = await create_plan(
        admin,
        cal["id"],
        code="elite",
        level=2,
        requires="standard",
        channels=["phone"],
        targets=[target(severities=["high"], channels=["phone"], minutes=30)],
    )
    return {"calendar": cal, "standard": standard, "elite": elite}


def entitlement_url(org: dict[str, Any]) -> str:
    return f"/v1/organizations/{org['id']}/entitlement"


async def test_every_reason(admin: httpx.AsyncClient) -> None:
    plans = await _vitrium(admin)
    org = await create_org(admin)
    url = entitlement_url(org)
    at = {"at": "2026-03-10T11:00:00-07:00"}
    none = (await admin.get(url, params=at)).json()
    assert none["allowed"] is False and none["reasons"] == ["no_active_contract"]
    assert none["plan"] is None and none["targets"] == [] and none["channels"] == []
    held = await create_contract(
        admin, org["id"], plans["standard"]["id"], starts_on="2025-01-01", ends_on="2026-02-28"
    )
    expired = (await admin.get(url, params=at)).json()
    assert expired["reasons"] == ["contract_expired"]
    await admin.patch(f"/v1/contracts/{held['id']}", json={"ends_on": None})
    ok = (await admin.get(url, params=at)).json()
    assert ok["allowed"] is True and ok["reasons"] == []
    assert ok["plan"]["code"] == "standard" and ok["contract"]["id"] == held["id"]
    assert ok["timezone"] == "America/Vancouver" and ok["calendar_id"] == plans["calendar"]["id"]
    assert [t["plan"] for t in ok["targets"]] == ["standard"] * 4
    end_user = await create_contact(admin, org["id"], role="end_user")
    reader = (await admin.get(url, params={**at, "contact_id": end_user["id"]})).json()
    assert reader["reasons"] == ["contact_not_authorized"]
    person = await create_contact(admin, org["id"])
    await admin.patch(
        f"/v1/organizations/{org['id']}/contacts/{person['id']}", json={"active": False}
    )
    left = (await admin.get(url, params={**at, "contact_id": person["id"]})).json()
    assert left["reasons"] == ["contact_inactive"]
    phone = (await admin.get(url, params={**at, "channel": "phone"})).json()
    assert phone["reasons"] == ["channel_not_in_plan"]
    custom = (await admin.get(url, params={**at, "category": "customization"})).json()
    assert custom["reasons"] == ["category_excluded"]


async def test_an_add_on_on_top_of_its_base(admin: httpx.AsyncClient) -> None:
    plans = await _vitrium(admin)
    org = await create_org(admin)
    base = await create_contract(admin, org["id"], plans["standard"]["id"])
    addon = await create_contract(
        admin, org["id"], plans["elite"]["id"], starts_on="2026-03-01", ends_on="2026-03-31"
    )
    params = {"at": "2026-03-10T11:00:00-07:00", "channel": "phone", "category": "customization"}
    body = (await admin.get(entitlement_url(org), params=params)).json()
    assert body["allowed"] is True, body["reasons"]
    assert body["plan"]["code"] == "elite" and body["plans"] == ["elite", "standard"]
    assert [c["id"] for c in body["contracts"]] == [addon["id"], base["id"]]
    assert body["channels"] == ["phone", "email", "web"] and body["excluded_categories"] == []
    assert [(t["plan"], t["index"]) for t in body["targets"]] == [
        ("elite", 0),
        ("standard", 0),
        ("standard", 1),
        ("standard", 2),
        ("standard", 3),
    ]
    # After the add-on ends (local date in Vancouver), the base applies alone again.
    april = {**params, "at": "2026-04-01T07:00:00Z"}  # 00:00 PDT on April 1
    after = (await admin.get(entitlement_url(org), params=april)).json()
    assert after["plan"]["code"] == "standard"
    assert after["reasons"] == ["channel_not_in_plan", "category_excluded"]
    last = {**params, "at": "2026-04-01T06:59:59Z"}  # 23:59:59 PDT on March 31
    assert (await admin.get(entitlement_url(org), params=last)).json()["plan"]["code"] == "elite"


async def test_query_refusals(admin: httpx.AsyncClient) -> None:
    await _vitrium(admin)
    org, other = await create_org(admin), await create_org(admin)
    stranger = await create_contact(admin, other["id"])
    url = entitlement_url(org)
    cases = [
        ({"at": "2026-03-10T11:00:00"}, "query.at"),
        ({"at": "0001-01-01T00:00:00+01:00"}, "query.at"),
        ({"channel": "fax"}, "query.channel"),
        ({"category": "gardening"}, "query.category"),
        ({"contact_id": stranger["id"]}, "query.contact_id"),
    ]
    for params, field in cases:
        response = await admin.get(url, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["errors"][0]["field"] == field
    missing = await admin.get("/v1/organizations/00000000-0000-0000-0000-000000000000/entitlement")
    assert missing.status_code == 404


async def test_preview_explains_each_due_time(admin: httpx.AsyncClient) -> None:
    plans = await _vitrium(admin)
    org = await create_org(admin)
    await create_contract(admin, org["id"], plans["standard"]["id"])
    # Tier 2 (high) by email, Friday 2026-03-06 17:00 PST: 2 business hours = Friday
    # 17:00-18:00 PST + Monday 00:00-01:00 PDT (DST began on Sunday) -> 08:00Z.
    response = await admin.post(
        "/v1/sla/preview",
        json={
            "organization_id": org["id"],
            "severity": "high",
            "channel": "email",
            "received_at": "2026-03-06T17:00:00-08:00",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["received_at"] == "2026-03-07T01:00:00Z" and body["after_hours"] is False
    assert body["plan"]["code"] == "standard" and body["entitlement"]["allowed"] is True
    (first,) = body["targets"]
    assert first["metric"] == "first_response" and first["minutes"] == 120
    assert first["due_at"] == "2026-03-09T08:00:00Z"
    assert first["intervals"] == [
        ["2026-03-07T01:00:00Z", "2026-03-07T02:00:00Z"],
        ["2026-03-09T07:00:00Z", "2026-03-09T08:00:00Z"],
    ]
    assert first["counting_from"] == "2026-03-07T01:00:00Z"
    assert first["warnings"] == [
        {"key": "warn:50", "percent": 50, "before_minutes": None, "at": "2026-03-07T02:00:00Z"},
        {"key": "warn:75", "percent": 75, "before_minutes": None, "at": "2026-03-09T07:30:00Z"},
    ]
    # Tier 3 (critical) on a Saturday: 1 h and 8 h around the clock, no waiting for Monday.
    critical = await admin.post(
        "/v1/sla/preview",
        json={
            "organization_id": org["id"],
            "severity": "critical",
            "received_at": "2026-03-07T10:00:00-08:00",
        },
    )
    body = critical.json()
    assert body["after_hours"] is True
    due = {t["metric"]: t["due_at"] for t in body["targets"]}
    assert due == {"first_response": "2026-03-07T19:00:00Z", "resolution": "2026-03-08T02:00:00Z"}
    assert body["targets"][0]["warnings"][0]["at"] == "2026-03-07T18:30:00Z"
    assert body["targets"][0]["clock"] == "24x7"


async def test_preview_after_hours_counts_from_the_next_opening(admin: httpx.AsyncClient) -> None:
    plans = await _vitrium(admin)
    # Medium on Saturday: 8 business hours from Monday 00:00 PDT -> Monday 08:00 PDT.
    response = await admin.post(
        "/v1/sla/preview",
        json={
            "plan_id": plans["standard"]["id"],
            "severity": "medium",
            "received_at": "2026-03-07T12:00:00-08:00",
        },
    )
    body = response.json()
    assert body["after_hours"] is True and body["entitlement"]["organization_id"] is None
    (first,) = body["targets"]
    assert first["counting_from"] == "2026-03-09T07:00:00Z"
    assert first["due_at"] == "2026-03-09T15:00:00Z"


async def test_preview_of_an_add_on_and_its_refusals(admin: httpx.AsyncClient) -> None:
    plans = await _vitrium(admin)
    # Elite's own phone target for high, Standard's targets for everything else.
    phone = await admin.post(
        "/v1/sla/preview",
        json={
            "plan_id": plans["elite"]["id"],
            "severity": "high",
            "channel": "phone",
            "received_at": "2026-03-10T10:00:00-07:00",
        },
    )
    (only,) = phone.json()["targets"]
    assert (only["plan"], only["minutes"], only["due_at"]) == ("elite", 30, "2026-03-10T17:30:00Z")
    email = await admin.post(
        "/v1/sla/preview",
        json={
            "plan_id": plans["elite"]["id"],
            "severity": "high",
            "channel": "email",
            "received_at": "2026-03-10T10:00:00-07:00",
        },
    )
    (fallback,) = email.json()["targets"]
    assert (fallback["plan"], fallback["minutes"]) == ("standard", 120)
    # Standard alone does not take phone calls: the preview says so and still computes.
    refused = await admin.post(
        "/v1/sla/preview",
        json={
            "plan_id": plans["standard"]["id"],
            "severity": "low",
            "channel": "phone",
            "category": "customization",
            "received_at": "2026-03-10T10:00:00-07:00",
        },
    )
    entitlement = refused.json()["entitlement"]
    assert entitlement["allowed"] is False
    assert entitlement["reasons"] == ["channel_not_in_plan", "category_excluded"]
    assert refused.json()["targets"][0]["minutes"] == 480
    # An organization without a contract: no plan, no targets, and the reason.
    org = await create_org(admin)
    nothing = await admin.post(
        "/v1/sla/preview", json={"organization_id": org["id"], "severity": "low"}
    )
    assert nothing.status_code == 200
    assert nothing.json()["plan"] is None and nothing.json()["targets"] == []
    assert nothing.json()["entitlement"]["reasons"] == ["no_active_contract"]
    bad = [
        ({"severity": "low"}, "body.organization_id"),
        (
            {"severity": "low", "organization_id": org["id"], "plan_id": plans["elite"]["id"]},
            "body.organization_id",
        ),
        (
            {
                "severity": "low",
                "plan_id": plans["elite"]["id"],
                "contact_id": "00000000-0000-0000-0000-000000000000",
            },
            "body.contact_id",
        ),
        ({"severity": "urgent", "plan_id": plans["elite"]["id"]}, "body.severity"),
        (
            {
                "severity": "low",
                "plan_id": plans["elite"]["id"],
                "received_at": "2026-03-10T10:00:00",
            },
            "body.received_at",
        ),
    ]
    for body, field in bad:
        response = await admin.post("/v1/sla/preview", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"] == field
    unknown = await admin.post(
        "/v1/sla/preview",
        json={"severity": "low", "plan_id": "00000000-0000-0000-0000-000000000000"},
    )
    assert unknown.status_code == 404


async def test_best_effort_targets_are_never_due(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    plan = await create_plan(admin, cal["id"], targets=[target(minutes=None)])
    body = (
        await admin.post("/v1/sla/preview", json={"plan_id": plan["id"], "severity": "low"})
    ).json()
    (best,) = body["targets"]
    assert best["minutes"] is None and best["due_at"] is None
    assert best["intervals"] == [] and best["warnings"] == []


async def test_customer_scoping(app: Any, admin: httpx.AsyncClient, db: Any) -> None:
    plans = await _vitrium(admin)
    mine, theirs = await create_org(admin), await create_org(admin)
    for org in (mine, theirs):
        await create_contract(admin, org["id"], plans["standard"]["id"])
    contact = await create_contact(admin, mine["id"])
    key = await make_key(db, Role.CUSTOMER, organization_id=mine["id"])
    async with client_for(app, key) as customer:
        own = await customer.get(entitlement_url(mine), params={"contact_id": contact["id"]})
        assert own.status_code == 200 and own.json()["plan"]["code"] == "standard"
        assert (await customer.get(entitlement_url(theirs))).status_code == 404
        preview = {"organization_id": mine["id"], "severity": "high"}
        assert (await customer.post("/v1/sla/preview", json=preview)).status_code == 200
        other = {"organization_id": theirs["id"], "severity": "high"}
        assert (await customer.post("/v1/sla/preview", json=other)).status_code == 404
        # Plans are not secret: a customer may preview what another plan would give.
        catalog = {"plan_id": plans["elite"]["id"], "severity": "high"}
        assert (await customer.post("/v1/sla/preview", json=catalog)).status_code == 200


async def test_preview_refuses_a_target_the_calendar_no_longer_reaches(
    admin: httpx.AsyncClient, db: Any
) -> None:
    cal = await create_calendar(admin)
    plan = await create_plan(admin, cal["id"], targets=[target(minutes=20000)])
    # Editing the calendar to open 5 minutes a week is refused: 20000 minutes would be due
    # in 77 years.
    hours = {d: ["09:00-09:01"] for d in ("mon", "tue", "wed", "thu", "fri")}
    edit = await admin.patch(f"/v1/calendars/{cal['id']}", json={"weekly_hours": hours})
    assert edit.status_code == 422 and plan["code"] in edit.json()["detail"]
    # Should such a calendar exist anyway (written before the guard), the preview says so
    # instead of computing for minutes.
    starved = {"timezone": "Etc/GMT-1", "weekly_hours": hours}
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE calendars SET spec = CAST(:spec AS jsonb), version = version + 1"),
            {"spec": json.dumps(starved)},
        )
    response = await admin.post("/v1/sla/preview", json={"plan_id": plan["id"], "severity": "low"})
    assert response.status_code == 409 and "5 years" in response.json()["detail"]


async def test_the_docs_show_the_new_endpoints(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in [
        ("/v1/plans", "post"),
        ("/v1/plans/{plan_id}", "patch"),
        ("/v1/contracts", "post"),
        ("/v1/contracts/{contract_id}", "delete"),
        ("/v1/organizations/{organization_id}/entitlement", "get"),
        ("/v1/sla/preview", "post"),
    ]:
        assert method in paths[path], path
    assert "Add-ons" in paths["/v1/plans"]["post"]["description"]
    assert "409" in paths["/v1/contracts"]["post"]["responses"]
