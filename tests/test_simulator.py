"""POST /v1/reports/simulate on the dataset of tests/report_data.py."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.security import Role
from tests.conftest import _TABLES, auth, make_key
from tests.plan_factories import create_plan, target
from tests.report_data import FROM, TO, build

URL = "/v1/reports/simulate"


async def simulate(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post(URL, json={"from": FROM, "to": TO, **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    counts = {}
    async with engine.connect() as conn:
        for table in _TABLES.split(", "):
            counts[table] = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
    return counts


async def test_own_plans_reproduce_the_actual_figures_exactly(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    await build(admin, db)
    for group_by in ("metric", "organization", "plan", "severity", "month"):
        result = await simulate(admin, group_by=group_by)
        assert result["simulated"] == result["actual"], group_by
        assert result["changed"] == [] and result["changed_total"] == 0
        assert result["skipped_events"] == 0 and result["retimed_tickets"] == 0
    compliance = await admin.get(
        "/v1/reports/sla-compliance", params={"from": FROM, "to": TO, "group_by": "metric"}
    )
    assert result["tickets"] == 5
    metric = await simulate(admin)
    assert metric["actual"]["total"] == compliance.json()["total"]
    assert metric["actual"]["groups"] == [
        {k: v for k, v in g.items()} for g in compliance.json()["groups"]
    ]


async def test_a_tighter_premium_plan_changes_outcomes_as_computed_by_hand(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    premium = await create_plan(
        admin,
        data.a.calendar["id"],
        targets=[target("first_response", 20), target("resolution", 480)],
    )
    before = await _counts(db)
    result = await simulate(admin, plan_id=premium["id"])
    assert await _counts(db) == before  # wrote nothing (outbox included)
    # FR 20 business min: T1 (30) breached, T2 breached, T3 (10) met, T7 (20: exactly
    # due) met, T5 (5) met. Resolution 480: T1, T2 met, T3 breached, T7 pending, and T5
    # gets a resolution clock, running since March: breached.
    total = result["simulated"]["total"]
    assert (total["clocks"], total["met"], total["breached"], total["pending"]) == (10, 5, 4, 1)
    assert total["compliance_pct"] == 55.56
    assert total["first_response"]["median_seconds"] == 1200.0
    changed = {(c["number"], c["metric"]): (c["actual"], c["simulated"]) for c in result["changed"]}
    assert changed == {
        (data.tickets["T1"]["number"], "first_response"): ("met", "breached"),
        (data.tickets["T5"]["number"], "resolution"): ("best_effort", "breached"),
    }
    assert result["changed_total"] == 2
    assert result["plan"]["code"] == premium["code"]
    capped = await simulate(admin, plan_id=premium["id"], changed_limit=1)
    assert len(capped["changed"]) == 1 and capped["changed_total"] == 2

    inline = {k: premium[k] for k in ("code", "name", "level", "calendar_id", "channels")}
    inline["targets"] = [target("first_response", 20), target("resolution", 480)]
    again = await simulate(admin, plan=inline)
    assert again["simulated"] == result["simulated"]
    assert again["plan"]["id"] is None

    scoped = await simulate(admin, plan_id=premium["id"], organization_id=data.b.org["id"])
    assert scoped["tickets"] == 1 and scoped["changed_total"] == 1


async def test_simulator_validation_and_access(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    bad_target = {
        "code": "x", "name": "X", "level": 1, "calendar_id": data.a.calendar["id"],
        "channels": ["email"], "targets": [target("first_response", 60, warn_at_percent=[50, 50])],
    }  # fmt: skip
    for body in (
        {"plan_id": data.a.plan["id"], "plan": bad_target},
        {"plan": bad_target},
        {"plan": {**bad_target, "targets": [], "calendar_id": data.a.org["id"]}},
        {"plan": {**bad_target, "targets": [], "pause_on": ["new"]}},
        {"from": TO, "to": FROM},
        {"to": "2027-06-01T00:00:00Z"},
        {"unknown": 1},
    ):
        response = await admin.post(URL, json={"from": FROM, "to": TO, **body})
        assert response.status_code == 422, (body, response.text)
    bad = await admin.post(URL, json={"from": FROM, "to": TO, "plan": bad_target})
    assert bad.json()["errors"][0]["field"].startswith("body.plan.targets[0]")
    missing = await admin.post(
        URL, json={"from": FROM, "to": TO, "plan_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert missing.status_code == 404
    key = await make_key(db, Role.CUSTOMER, organization_id=data.a.org["id"])
    refused = await client.post(URL, json={"from": FROM, "to": TO}, headers=auth(key))
    assert refused.status_code == 403


async def test_at_most_ten_thousand_tickets(
    admin: httpx.AsyncClient, db: AsyncEngine, monkeypatch: Any
) -> None:
    from app.services import reports

    monkeypatch.setattr(reports, "MAX_SIMULATED_TICKETS", 3)
    await build(admin, db)
    response = await admin.post(URL, json={"from": FROM, "to": TO})
    assert response.status_code == 422
    assert response.json()["tickets"] == 5
