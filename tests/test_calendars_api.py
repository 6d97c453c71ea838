"""/v1/calendars: CRUD, validation naming the field, due times and holidays."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_org

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

VITRIUM = {  # seed 002: Mon-Fri 00:00-18:00 Pacific, excluding BC statutory holidays
    "name": "Vitrium support hours",
    "timezone": "America/Vancouver",
    "weekly_hours": {d: ["00:00-18:00"] for d in WEEKDAYS},
    "holidays": {"country": "CA", "subdivision": "BC"},
    "extra_holidays": ["2026-12-24"],
    "closures": [
        {"start": "2026-01-15T17:00:00Z", "end": "2026-01-16T20:00:00Z", "reason": "snow"}
    ],
}


async def create_calendar(api: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    body = {**copy.deepcopy(VITRIUM), **overrides}
    response = await api.post("/v1/calendars", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_create_read_list(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    assert cal["timezone"] == "America/Vancouver" and cal["version"] == 1
    assert cal["weekly_hours"]["mon"] == ["00:00-18:00"] and "sat" not in cal["weekly_hours"]
    assert cal["extra_holidays"] == ["2026-12-24"]
    assert cal["closures"][0]["reason"] == "snow"
    read = (await admin.get(f"/v1/calendars/{cal['id']}")).json()
    assert read == cal
    listed = (await admin.get("/v1/calendars")).json()["items"]
    assert [c["id"] for c in listed] == [cal["id"]]
    again = await admin.post("/v1/calendars", json={**VITRIUM, "name": "VITRIUM support hours"})
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "body.timezone"),
        ({"holidays": {"country": "XX"}}, "body.holidays.country"),
        ({"holidays": {"country": "CA", "subdivision": "ZZ"}}, "body.holidays.subdivision"),
        ({"weekly_hours": {"mon": ["9-5"]}}, "body.weekly_hours.mon[0]"),
        ({"weekly_hours": {"mon": ["18:00-09:00"]}}, "body.weekly_hours.mon[0]"),
        ({"weekly_hours": {"mon": ["08:00-13:00", "12:00-18:00"]}}, "body.weekly_hours.mon[1]"),
        ({"weekly_hours": {"funday": ["09:00-17:00"]}}, "body.weekly_hours.funday"),
        ({"weekly_hours": {}}, "body.weekly_hours"),
        (
            {"closures": [{"start": "2026-01-16T20:00:00Z", "end": "2026-01-15T17:00:00Z"}]},
            "body.closures[0].end",
        ),
        (
            {"closures": [{"start": "2026-01-16T20:00:00", "end": "2026-01-17T17:00:00Z"}]},
            "body.closures[0].start",
        ),
        ({"extra_holidays": ["2026-02-30"]}, "body.extra_holidays[0]"),
    ],
)
async def test_invalid_specs_name_the_field(
    admin: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    response = await admin.post("/v1/calendars", json={**VITRIUM, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert (await admin.get("/v1/calendars")).json()["items"] == []


async def test_due_explains_the_seed_002_weekend_across_dst(admin: httpx.AsyncClient) -> None:
    """8 business hours from Friday 2026-03-06 17:00 PST is Monday 07:00 PDT."""
    cal = await create_calendar(admin)
    response = await admin.get(
        f"/v1/calendars/{cal['id']}/due",
        params={"start": "2026-03-06T17:00:00-08:00", "minutes": 480},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["due_at"] == "2026-03-09T14:00:00Z"  # 07:00 PDT (UTC-7)
    assert body["intervals"] == [
        ["2026-03-07T01:00:00Z", "2026-03-07T02:00:00Z"],  # Friday 17:00-18:00 PST
        ["2026-03-09T07:00:00Z", "2026-03-09T14:00:00Z"],  # Monday 00:00-07:00 PDT
    ]


async def test_due_refuses_naive_and_out_of_range(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    url = f"/v1/calendars/{cal['id']}/due"
    naive = await admin.get(url, params={"start": "2026-03-06T17:00:00", "minutes": 60})
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "query.start"
    negative = await admin.get(url, params={"start": "2026-03-06T17:00:00Z", "minutes": -1})
    assert negative.status_code == 422


async def test_holidays_of_a_year(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    body = (await admin.get(f"/v1/calendars/{cal['id']}/holidays", params={"year": 2026})).json()
    by_date = {h["date"]: h["name"] for h in body["holidays"]}
    assert body["year"] == 2026
    assert "2026-08-03" in by_date  # BC Day
    assert "2026-07-01" in by_date  # Canada Day
    assert by_date["2026-12-24"] == "extra holiday"
    assert list(by_date) == sorted(by_date)
    bc_day = await admin.get(
        f"/v1/calendars/{cal['id']}/due",
        params={"start": "2026-08-03T09:00:00-07:00", "minutes": 60},
    )
    assert bc_day.json()["due_at"] == "2026-08-04T08:00:00Z"  # Tuesday 01:00 PDT


async def test_update_bumps_version_only_for_the_spec(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    url = f"/v1/calendars/{cal['id']}"
    renamed = (await admin.patch(url, json={"name": "Renamed"})).json()
    assert renamed["name"] == "Renamed" and renamed["version"] == 1
    hours = {d: ["09:00-17:00"] for d in WEEKDAYS}
    changed = (await admin.patch(url, json={"weekly_hours": hours, "holidays": None})).json()
    assert changed["version"] == 2 and changed["weekly_hours"]["mon"] == ["09:00-17:00"]
    assert changed["holidays"] is None and changed["extra_holidays"] == ["2026-12-24"]
    due = await admin.get(
        f"{url}/due", params={"start": "2026-03-06T16:00:00-08:00", "minutes": 120}
    )
    assert due.json()["due_at"] == "2026-03-09T17:00:00Z"  # Monday 10:00 PDT
    bad = await admin.patch(url, json={"timezone": "Nowhere/City"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.timezone"
    assert (await admin.get(url)).json()["version"] == 2  # the bad edit changed nothing


async def test_delete(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    assert (await admin.delete(f"/v1/calendars/{cal['id']}")).status_code == 204
    assert (await admin.get(f"/v1/calendars/{cal['id']}")).status_code == 404


async def test_24x7_calendar(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(
        admin, name="Around the clock", timezone="UTC", weekly_hours="24x7", holidays=None,
        extra_holidays=[], closures=[],
    )  # fmt: skip
    due = await admin.get(
        f"/v1/calendars/{cal['id']}/due", params={"start": "2026-03-07T10:00:00Z", "minutes": 60}
    )
    assert due.json()["due_at"] == "2026-03-07T11:00:00Z"


async def test_customers_read_but_do_not_write(app: Any, admin: httpx.AsyncClient, db: Any) -> None:
    cal = await create_calendar(admin)
    org = await create_org(admin)
    key = await make_key(db, Role.CUSTOMER, organization_id=org["id"])
    async with client_for(app, key) as customer:
        assert (await customer.get(f"/v1/calendars/{cal['id']}")).status_code == 200
        assert (await customer.post("/v1/calendars", json=VITRIUM)).status_code == 403
        assert (await customer.delete(f"/v1/calendars/{cal['id']}")).status_code == 403


async def test_due_on_a_calendar_that_almost_never_opens_is_a_clear_422(
    admin: httpx.AsyncClient,
) -> None:
    cal = await create_calendar(
        admin, name="One minute a week", timezone="UTC", weekly_hours={"mon": ["00:00-00:01"]},
        holidays=None, extra_holidays=[], closures=[],
    )  # fmt: skip
    response = await admin.get(
        f"/v1/calendars/{cal['id']}/due",
        params={"start": "2026-03-02T00:00:00Z", "minutes": 500_000},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.minutes"
    ok = await admin.get(
        f"/v1/calendars/{cal['id']}/due", params={"start": "2026-03-02T00:00:00Z", "minutes": 2}
    )
    assert ok.json()["due_at"] == "2026-03-09T00:01:00Z"


async def test_an_edit_that_starves_a_plan_target_is_refused(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    plan = {
        "code": "starved", "name": "Starved", "level": 1, "calendar_id": cal["id"],
        "channels": ["email"], "targets": [{"metric": "resolution", "minutes": 60_000}],
    }  # fmt: skip
    assert (await admin.post("/v1/plans", json=plan)).status_code == 201
    edit = await admin.patch(
        f"/v1/calendars/{cal['id']}", json={"weekly_hours": {"mon": ["00:00-00:01"]}}
    )
    assert edit.status_code == 422 and "starved" in edit.json()["detail"]
    assert (await admin.get(f"/v1/calendars/{cal['id']}")).json()["version"] == 1
