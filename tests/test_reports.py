"""GET /v1/reports/sla-compliance on the hand-computed dataset of tests/report_data.py.

First response stopped times (s): T5 300, T3 600, T7 1200, T1 1800, T2 5400.
Resolution stopped times (s): T1 18000, T2 28800. percentile_cont: position p x (n - 1),
linear between neighbours.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.security import Role
from tests.conftest import auth, make_key
from tests.report_data import FROM, TO, build

URL = "/v1/reports/sla-compliance"


async def report(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await api.get(URL, params={"from": FROM, "to": TO, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def figures(g: dict[str, Any]) -> tuple[Any, ...]:
    return (g["tickets"], g["clocks"], g["met"], g["breached"], g["pending"], g["compliance_pct"])


def times(g: dict[str, Any], metric: str) -> tuple[Any, ...]:
    d = g[metric]
    return (d["count"], d["median_seconds"], d["p90_seconds"])


async def test_totals_and_groups_match_the_hand_computation(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    by_metric = await report(admin, group_by="metric")
    total = by_metric["total"]
    # 5 tickets (T6 is April), 9 timed clocks; met 6, breached 2 (T2 FR, T3 resolution).
    assert figures(total) == (5, 9, 6, 2, 1, 75.0)
    # FR: 300, 600, 1200, 1800, 5400: median 1200; p90 at 3.6 -> 1800 + 0.6 x 3600.
    assert times(total, "first_response") == (5, 1200.0, 3960.0)
    # Resolution: 18000, 28800: median 23400; p90 at 0.9 -> 18000 + 0.9 x 10800.
    assert times(total, "resolution") == (2, 23400.0, 27720.0)
    groups = {g["key"]: g for g in by_metric["groups"]}
    assert figures(groups["first_response"]) == (5, 5, 4, 1, 0, 80.0)
    assert figures(groups["resolution"]) == (4, 4, 2, 1, 1, 66.67)
    assert times(groups["resolution"], "first_response") == (0, None, None)

    by_org = await report(admin, group_by="organization")
    orgs = {g["key"]: g for g in by_org["groups"]}
    a, b = orgs[data.a.org["id"]], orgs[data.b.org["id"]]
    assert a["label"] == data.a.org["name"]
    assert figures(a) == (4, 8, 5, 2, 1, 71.43)
    # FR of A: 600, 1200, 1800, 5400: median 1500; p90 at 2.7 -> 1800 + 0.7 x 3600.
    assert times(a, "first_response") == (4, 1500.0, 4320.0)
    assert figures(b) == (1, 1, 1, 0, 0, 100.0)

    by_plan = await report(admin, group_by="plan")
    plans = {g["key"]: g for g in by_plan["groups"]}
    assert plans[data.a.plan["id"]]["label"] == data.a.plan["code"]
    assert figures(plans[data.b.plan["id"]]) == (1, 1, 1, 0, 0, 100.0)

    by_month = await report(admin, group_by="month", tz="Europe/Madrid")
    assert [g["key"] for g in by_month["groups"]] == ["2026-03"]
    by_severity = await report(admin, group_by="severity")
    assert [g["key"] for g in by_severity["groups"]] == ["high"]
    assert by_severity["total"] == total


async def test_breach_list_is_capped(admin: httpx.AsyncClient, db: AsyncEngine) -> None:
    data = await build(admin, db)
    full = await report(admin, group_by="organization", include_breaches="true")
    a = next(g for g in full["groups"] if g["key"] == data.a.org["id"])
    found = [(b["number"], b["metric"], b["due_at"], b["breached_at"]) for b in a["breaches"]]
    assert found == [
        (data.tickets["T2"]["number"], "first_response", "2026-03-02T11:00:00Z",
         "2026-03-02T11:00:00Z"),
        # T3: 10 min before the pause, 470 remain from Thu 09:00: Thu 8 h = 480 -> Thu 16:50.
        (data.tickets["T3"]["number"], "resolution", "2026-03-05T16:50:00Z",
         "2026-03-05T16:50:00Z"),
    ]  # fmt: skip
    assert a["breaches_truncated"] is False
    capped = await report(admin, group_by="organization", include_breaches="true", breach_limit=1)
    a = next(g for g in capped["groups"] if g["key"] == data.a.org["id"])
    assert len(a["breaches"]) == 1 and a["breaches_truncated"] is True
    plain = await report(admin)
    assert plain["groups"][0]["breaches"] is None


async def test_csv_with_formula_guard(admin: httpx.AsyncClient, db: AsyncEngine) -> None:
    data = await build(admin, db)
    response = await admin.get(
        URL, params={"from": FROM, "to": TO, "group_by": "organization"},
        headers={"Accept": "text/csv"},
    )  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_key = {r["key"]: r for r in rows}
    assert by_key[data.b.org["id"]]["label"] == "'" + data.b.org["name"]
    assert by_key["*"]["compliance_pct"] == "75.0"
    assert by_key[data.a.org["id"]]["met"] == "5"


async def test_customer_sees_only_its_organization(
    admin: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    key = await make_key(db, Role.CUSTOMER, organization_id=data.b.org["id"])
    own = await client.get(URL, params={"from": FROM, "to": TO}, headers=auth(key))
    assert own.status_code == 200
    body = own.json()
    assert body["organization_id"] == data.b.org["id"]
    assert figures(body["total"]) == (1, 1, 1, 0, 0, 100.0)
    other = await client.get(
        URL, params={"from": FROM, "to": TO, "organization_id": data.a.org["id"]},
        headers=auth(key),
    )  # fmt: skip
    assert other.status_code == 404
    staff = await report(admin, organization_id=data.a.org["id"])
    assert figures(staff["total"]) == (4, 8, 5, 2, 1, 71.43)


async def test_validation_errors(admin: httpx.AsyncClient, db: AsyncEngine) -> None:
    cases = [
        {"from": TO, "to": FROM},
        {"from": FROM, "to": FROM},
        {"from": "2025-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "2026-03-01T00:00:00", "to": TO},
        {"from": FROM, "to": TO, "group_by": "weekday"},
        {"from": FROM, "to": TO, "tz": "Mars/Olympus"},
        {"from": FROM, "to": TO, "breach_limit": 0},
    ]
    for params in cases:
        response = await admin.get(URL, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    missing = await admin.get(
        URL,
        params={"from": FROM, "to": TO, "organization_id": "00000000-0000-4000-8000-000000000000"},
    )
    assert missing.status_code == 404
