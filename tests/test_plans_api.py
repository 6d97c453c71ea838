"""/v1/plans: CRUD, every refusal naming its field, versions and ETags, deletion rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_org
from tests.plan_factories import create_calendar, create_contract, create_plan, target


def fields_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


async def test_create_read_list(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    plan = await create_plan(
        admin,
        cal["id"],
        code="vivvo-standard",
        name="Standard Support",
        channels=["web", "email", "email"],
        excluded_categories=["training", "customization"],
        targets=[
            target(severities=["critical"], minutes=60, warn_at_percent=[90, 50]),
            target(severities=["low"], minutes=None),
            target(minutes=1440, warn_before_minutes=[60], on_breach={"escalate_to_tier": 2}),
        ],
    )
    assert plan["code"] == "vivvo-standard" and plan["version"] == 1 and plan["active"]
    assert plan["channels"] == ["email", "web"]  # deduplicated, in vocabulary order
    assert plan["excluded_categories"] == ["customization", "training"]
    assert plan["pause_on"] == ["waiting_on_customer"] and plan["auto_close"] is None
    assert plan["billing"] == {
        "follow_up_minutes": 15,
        "sessions_per_consultant": True,
        "after_hours": {"allowed": False, "multiplier": 1.5, "unrequested": "business_rate"},
    }
    first = plan["targets"][0]
    assert first["warn_at_percent"] == [50, 90] and first["clock"] == "business"
    assert plan["targets"][1]["minutes"] is None
    assert plan["targets"][2]["on_breach"] == {"escalate_to_tier": 2}
    got = await admin.get(f"/v1/plans/{plan['id']}")
    assert got.json() == plan and got.headers["etag"] == '"v1"'
    premium = await create_plan(admin, cal["id"], code="vivvo-premium", level=2)
    listed = (await admin.get("/v1/plans")).json()["items"]
    assert [p["code"] for p in listed] == ["vivvo-standard", "vivvo-premium"]  # by level
    page = (await admin.get("/v1/plans", params={"limit": 1})).json()
    second = await admin.get("/v1/plans", params={"limit": 1, "cursor": page["next_cursor"]})
    assert [p["id"] for p in second.json()["items"]] == [premium["id"]]
    dup = await admin.post("/v1/plans", json={**plan, "id": None} | {"id": None})
    assert dup.status_code == 422  # read-only fields are unknown fields
    again = {k: plan[k] for k in ("code", "name", "level", "calendar_id", "channels")}
    conflict = await admin.post("/v1/plans", json=again)
    assert conflict.status_code == 409, conflict.text


async def test_seed_004_settings_round_trip(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin, timezone="America/Mexico_City", hours="08:30-18:00")
    plan = await create_plan(
        admin,
        cal["id"],
        channels=["email", "phone"],
        pause_on=["waiting_on_customer", "waiting_on_vendor"],
        auto_close={"contact_attempts": 3, "notice_business_days": 5},
        billing={
            "follow_up_minutes": 15,
            "after_hours": {"allowed": True, "multiplier": 1.5, "unrequested": "refuse"},
        },
        targets=[
            target(severities=["critical"], minutes=30),
            target("resolution", categories=["technical"], minutes=360),
            target(
                "resolution", categories=["maintenance"], minutes=2160, warn_before_minutes=[1200]
            ),
        ],
    )
    assert plan["pause_on"] == ["waiting_on_customer", "waiting_on_vendor"]
    assert plan["auto_close"] == {"contact_attempts": 3, "notice_business_days": 5}
    assert plan["billing"]["after_hours"] == {
        "allowed": True,
        "multiplier": 1.5,
        "unrequested": "refuse",
    }
    assert plan["billing"]["sessions_per_consultant"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"channels": ["fax"]}, "body.channels[0]"),
        ({"channels": []}, "body.channels"),
        ({"excluded_categories": ["gardening"]}, "body.excluded_categories[0]"),
        ({"pause_on": ["closed"]}, "body.pause_on[0]"),
        ({"pause_on": ["waiting_on_customer", "in_progress"]}, "body.pause_on[1]"),
        ({"code": "Not A Slug"}, "body.code"),
        ({"level": -1}, "body.level"),
        ({"requires": "no-such-plan"}, "body.requires"),
        ({"calendar_id": "00000000-0000-0000-0000-000000000000"}, "body.calendar_id"),
        ({"targets": [target(categories=["gardening"])]}, "body.targets[0].categories[0]"),
        ({"targets": [target(channels=["pigeon"])]}, "body.targets[0].channels[0]"),
        ({"targets": [target(metric="happiness")]}, "body.targets[0].metric"),
        ({"targets": [target(minutes=0)]}, "body.targets[0].minutes"),
        ({"targets": [target(clock="lunar")]}, "body.targets[0].clock"),
        ({"targets": [target(), target(warn_at_percent=[100])]}, "body.targets[1]"),
        ({"targets": [target(warn_at_percent=[50, 50])]}, "body.targets[0]"),
        ({"targets": [target(warn_before_minutes=[0])]}, "body.targets[0]"),
        ({"targets": [target(minutes=None, warn_at_percent=[50])]}, "body.targets[0]"),
        (
            {"targets": [target(minutes=None, on_breach={"escalate_to_tier": 2})]},
            "body.targets[0]",
        ),
        ({"targets": [target(on_breach={"escalate_to_tier": 5})]}, "body.targets[0].on_breach"),
        ({"targets": [{"metric": "first_response"}]}, "body.targets[0].minutes"),
        ({"targets": [target(colour="red")]}, "body.targets[0].colour"),
        ({"auto_close": {"contact_attempts": 0}}, "body.auto_close.contact_attempts"),
        ({"billing": {"after_hours": {"multiplier": 0.5}}}, "body.billing.after_hours"),
        ({"billing": {"after_hours": {"unrequested": "x2"}}}, "body.billing.after_hours"),
        ({"surprise": True}, "body.surprise"),
    ],
)
async def test_refusals_name_the_field(
    admin: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    cal = await create_calendar(admin)
    body = {"code": "p", "name": "P", "level": 1, "calendar_id": cal["id"], "channels": ["email"]}
    response = await admin.post("/v1/plans", json={**body, **change})
    fields = fields_of(response)
    assert any(f.startswith(field) for f in fields), (fields, response.json()["detail"])
    assert (await admin.get("/v1/plans")).json()["items"] == []


async def test_ambiguous_targets_are_named(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    targets = [
        target(minutes=480),
        target(severities=["critical"], minutes=60),
        target(channels=["phone"], minutes=30),  # as specific as [1]; both match critical+phone
        target("resolution", severities=["critical"], minutes=480),  # another metric: fine
    ]
    body = {
        "code": "p",
        "name": "P",
        "level": 1,
        "calendar_id": cal["id"],
        "channels": ["email", "phone"],
        "targets": targets,
    }
    response = await admin.post("/v1/plans", json=body)
    assert fields_of(response) == ["body.targets[2]"]
    assert response.json()["pairs"] == [[1, 2]]
    assert "targets[1] and targets[2]" in response.json()["detail"]
    # A more specific target settles it (seed 004 style): the plan becomes valid.
    targets.append(target(severities=["critical"], channels=["phone"], minutes=15))
    assert (await admin.post("/v1/plans", json=body)).status_code == 201


async def test_requires_cycles_and_levels(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    base = await create_plan(admin, cal["id"], code="primary", level=1)
    addon = await create_plan(admin, cal["id"], code="premium", level=2, requires="primary")
    assert addon["requires"] == "primary"
    own = await admin.post(
        "/v1/plans",
        json={
            "code": "selfish",
            "name": "S",
            "level": 1,
            "calendar_id": cal["id"],
            "channels": ["email"],
            "requires": "selfish",
        },
    )
    assert fields_of(own) == ["body.requires"] and "selfish -> selfish" in own.text
    cycle = await admin.patch(f"/v1/plans/{base['id']}", json={"requires": "premium"})
    assert fields_of(cycle) == ["body.requires"]
    assert "primary -> premium -> primary" in cycle.json()["detail"]
    lower = await admin.post(
        "/v1/plans",
        json={
            "code": "cheap",
            "name": "C",
            "level": 0,
            "calendar_id": cal["id"],
            "channels": ["email"],
            "requires": "primary",
        },
    )
    assert fields_of(lower) == ["body.level"]
    above = await admin.patch(f"/v1/plans/{base['id']}", json={"level": 3})
    assert fields_of(above) == ["body.level"] and "premium (level 2)" in above.text
    assert (await admin.get(f"/v1/plans/{base['id']}")).json()["version"] == 1


async def test_update_bumps_the_version_only_on_change(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    other = await create_calendar(admin, timezone="America/Vancouver")
    plan = await create_plan(admin, cal["id"])
    url = f"/v1/plans/{plan['id']}"
    same = await admin.patch(url, json={"name": plan["name"], "channels": ["web", "email"]})
    assert same.status_code == 200 and same.json()["version"] == 1
    changed = await admin.patch(
        url,
        json={"calendar_id": other["id"], "targets": [target(minutes=90)], "description": "x"},
    )
    body = changed.json()
    assert body["version"] == 2 and changed.headers["etag"] == '"v2"'
    assert body["calendar_id"] == other["id"] and body["targets"][0]["minutes"] == 90
    cleared = await admin.patch(url, json={"description": None, "auto_close": None})
    assert cleared.json()["description"] is None and cleared.json()["version"] == 3
    nulls = await admin.patch(url, json={"name": None})
    assert fields_of(nulls) == ["body.name"]
    code = await admin.patch(url, json={"code": "renamed"})
    assert fields_of(code) == ["body.code"]  # the code is the plan's identity
    bad = await admin.patch(url, json={"targets": [target(), target()]})
    assert fields_of(bad) == ["body.targets[1]"]
    assert (await admin.get(url)).json()["version"] == 3


async def test_if_match_refuses_a_lost_update(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    plan = await create_plan(admin, cal["id"])
    url = f"/v1/plans/{plan['id']}"
    etag = (await admin.get(url)).headers["etag"]
    ok = await admin.patch(url, json={"name": "First"}, headers={"If-Match": etag})
    assert ok.status_code == 200 and ok.headers["etag"] == '"v2"'
    stale = await admin.patch(url, json={"name": "Second"}, headers={"If-Match": etag})
    assert stale.status_code == 412 and stale.json()["etag"] == '"v2"'
    weak = await admin.patch(url, json={"name": "Third"}, headers={"If-Match": 'W/"v2"'})
    assert weak.status_code == 200
    star = await admin.patch(url, json={"name": "Fourth"}, headers={"If-Match": "*"})
    assert star.status_code == 200 and star.json()["name"] == "Fourth"


async def test_delete_and_deactivate(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    unused = await create_plan(admin, cal["id"])
    assert (await admin.delete(f"/v1/plans/{unused['id']}")).status_code == 204
    assert (await admin.get(f"/v1/plans/{unused['id']}")).status_code == 404
    base = await create_plan(admin, cal["id"], code="base")
    await create_plan(admin, cal["id"], code="addon", level=2, requires="base")
    required = await admin.delete(f"/v1/plans/{base['id']}")
    assert required.status_code == 409 and required.json()["required_by"] == ["addon"]
    org = await create_org(admin)
    held = await create_plan(admin, cal["id"], code="held")
    await create_contract(admin, org["id"], held["id"])
    in_use = await admin.delete(f"/v1/plans/{held['id']}")
    assert in_use.status_code == 409 and "deactivate" in in_use.json()["detail"]
    off = await admin.patch(f"/v1/plans/{held['id']}", json={"active": False})
    assert off.json()["active"] is False
    inactive = await admin.get("/v1/plans", params={"active": False})
    assert [p["code"] for p in inactive.json()["items"]] == ["held"]


async def test_a_calendar_in_use_cannot_be_deleted(admin: httpx.AsyncClient) -> None:
    cal = await create_calendar(admin)
    plan = await create_plan(admin, cal["id"], code="uses-it")
    refused = await admin.delete(f"/v1/calendars/{cal['id']}")
    assert refused.status_code == 409 and refused.json()["used_by"] == ["uses-it"]
    assert refused.headers["content-type"].startswith("application/problem+json")
    other = await create_calendar(admin)
    await admin.patch(f"/v1/plans/{plan['id']}", json={"calendar_id": other["id"]})
    assert (await admin.delete(f"/v1/calendars/{cal['id']}")).status_code == 204


async def test_every_key_reads_plans_only_admins_write(
    app: Any, admin: httpx.AsyncClient, agent: httpx.AsyncClient, db: Any
) -> None:
    cal = await create_calendar(admin)
    plan = await create_plan(admin, cal["id"])
    org = await create_org(admin)
    key = await make_key(db, Role.CUSTOMER, organization_id=org["id"])
    body = {"code": "x", "name": "X", "level": 1, "calendar_id": cal["id"], "channels": ["web"]}
    async with client_for(app, key) as customer:
        for api in (customer, agent):
            assert (await api.get(f"/v1/plans/{plan['id']}")).status_code == 200
            assert (await api.get("/v1/plans")).json()["items"][0]["id"] == plan["id"]
            assert (await api.post("/v1/plans", json=body)).status_code == 403
            assert (await api.patch(f"/v1/plans/{plan['id']}", json={})).status_code == 403
            assert (await api.delete(f"/v1/plans/{plan['id']}")).status_code == 403


async def test_a_target_its_calendar_cannot_bring_due_is_refused(
    admin: httpx.AsyncClient,
) -> None:
    sparse = await create_calendar(admin, hours="09:00-09:01")  # 5 minutes a week
    body = {
        "code": "p",
        "name": "P",
        "level": 1,
        "calendar_id": sparse["id"],
        "channels": ["email"],
        "targets": [target(), target("resolution", minutes=20000)],
    }
    response = await admin.post("/v1/plans", json=body)
    assert fields_of(response) == ["body.targets[1].minutes"]
    around_the_clock = target("resolution", minutes=20000, clock="24x7")
    body["targets"] = [target(), around_the_clock]
    assert (await admin.post("/v1/plans", json=body)).status_code == 201
