"""Seed 004's charged time through the API: follow-ups, sessions, after hours, estimates
and authorizations, contract usage. Every figure is computed by hand in the comments.

The desk's calendar is Mexico City (UTC-6, no DST since 2022), Monday to Friday
08:30-18:00, as seed 004 says. 2026-11-09 is a Monday.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_agent
from tests.test_errors import assert_problem
from tests.ticket_factories import Desk, act, make_desk, open_ticket
from tests.webhook_harness import rows

MONDAY_9 = "2026-11-09T09:00:00-06:00"
AFTER_HOURS = {"after_hours": {"allowed": True, "multiplier": 1.5}}


async def _ticket(admin: httpx.AsyncClient, desk: Desk) -> str:
    return str((await open_ticket(admin, desk, received_at=MONDAY_9))["id"])


async def _log(
    api: httpx.AsyncClient, ticket_id: str, expect: int = 201, **body: Any
) -> dict[str, Any]:
    response = await api.post(f"/v1/tickets/{ticket_id}/worklogs", json=body)
    assert response.status_code == expect, response.text
    return dict(response.json())


async def _entries(api: httpx.AsyncClient, ticket_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/tickets/{ticket_id}/worklogs")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _estimate(api: httpx.AsyncClient, ticket_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/tickets/{ticket_id}/estimate")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_three_follow_ups_by_the_actions_are_45_minutes(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin)
    t = await _ticket(admin, desk)
    agent = await create_agent(admin)
    await act(admin, t, "assign", agent_id=agent["id"], occurred_at="2026-11-09T09:05:00-06:00")
    await act(admin, t, "reply", body="Looking.", occurred_at="2026-11-09T10:00:00-06:00")
    await act(admin, t, "note", body="Internal.", occurred_at="2026-11-09T10:30:00-06:00")
    await act(admin, t, "request_info", body="Logs?", occurred_at="2026-11-09T11:00:00-06:00")
    await act(
        admin, t, "contact_attempt", channel="phone", body="No answer.",
        occurred_at="2026-11-09T12:00:00-06:00",
    )  # fmt: skip
    # The customer's answer (logged by staff) is not a follow-up of ours.
    await act(admin, t, "customer_reply", body="Here.", occurred_at="2026-11-09T12:30:00-06:00")

    entries = await _entries(admin, t)
    assert [(e["kind"], e["source"], e["charged_minutes"]) for e in entries] == [
        ("follow_up", "auto", 15)
    ] * 3
    assert [e["occurred_at"] for e in entries] == [
        "2026-11-09T16:00:00Z",
        "2026-11-09T17:00:00Z",
        "2026-11-09T18:00:00Z",
    ]
    assert all(e["billable"] and e["event_id"] and e["after_hours_minutes"] == 0 for e in entries)
    assert (await _estimate(admin, t))["charged_minutes"] == 45


async def test_a_follow_up_is_charged_the_plans_minutes_whatever_its_length(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin, billing={"follow_up_minutes": 10})
    t = await _ticket(admin, desk)
    entry = await _log(admin, t, kind="follow_up", minutes=40, occurred_at=MONDAY_9)
    assert (entry["minutes"], entry["charged_minutes"]) == (40, 10)


async def test_a_two_hour_session_with_three_consultants_is_six_hours(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin)
    t = await _ticket(admin, desk)
    session = await _log(
        admin, t, kind="session", minutes=120, consultants=3,
        occurred_at="2026-11-10T10:00:00-06:00", note="Walkthrough",
    )  # fmt: skip
    assert (session["charged_minutes"], session["multiplier"], session["after_hours_minutes"]) == (
        360,
        1.0,
        0,
    )
    work = await _log(admin, t, kind="work", minutes=50, occurred_at="2026-11-10T13:00:00-06:00")
    assert work["charged_minutes"] == 50
    assert (await _estimate(admin, t))["charged_minutes"] == 410


async def test_an_after_hours_hour_at_1_5_is_90_minutes(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, billing=AFTER_HOURS)
    t = await _ticket(admin, desk)
    # The client asked in advance for after-hours attention all that week (seed 004).
    standing = await admin.post(
        f"/v1/contracts/{desk.contract['id']}/after-hours-requests",
        json={"contact_id": desk.contact["id"], "requested_at": "2026-11-02T12:00:00-06:00",
              "starts_at": "2026-11-09T00:00:00-06:00", "ends_at": "2026-11-16T00:00:00-06:00"},
    )  # fmt: skip
    assert standing.status_code == 201, standing.text
    late = await _log(admin, t, kind="work", minutes=60, occurred_at="2026-11-10T19:00:00-06:00")
    assert (late["after_hours_minutes"], late["multiplier"], late["charged_minutes"]) == (
        60,
        1.5,
        90,
    )
    # 17:30-18:30: 30 minutes in hours + 30 after hours x 1.5 = 75.
    straddling = await _log(
        admin, t, kind="work", minutes=60, occurred_at="2026-11-10T17:30:00-06:00"
    )
    assert (straddling["after_hours_minutes"], straddling["charged_minutes"]) == (30, 75)
    # A Saturday follow-up: 15 x 1.5 = 22.5, rounded half up to 23.
    saturday = await _log(admin, t, kind="follow_up", occurred_at="2026-11-14T10:00:00-06:00")
    assert (saturday["after_hours_minutes"], saturday["charged_minutes"]) == (15, 23)


async def test_after_hours_work_is_refused_when_the_plan_does_not_allow_it(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin)  # seed 004 default: after hours must be requested
    t = await _ticket(admin, desk)
    response = await admin.post(
        f"/v1/tickets/{t}/worklogs",
        json={"kind": "work", "minutes": 60, "occurred_at": "2026-11-10T19:00:00-06:00"},
    )
    problem = assert_problem(response, 422, "after-hours-not-allowed")
    assert problem["after_hours_minutes"] == 60
    assert problem["errors"][0]["field"] == "body.occurred_at"
    assert await _entries(admin, t) == []  # nothing was written
    # Not billable, it is recorded: what the time was is still told.
    free = await _log(
        admin, t, kind="work", minutes=60, occurred_at="2026-11-10T19:00:00-06:00", billable=False
    )
    assert (free["billable"], free["charged_minutes"], free["after_hours_minutes"]) == (
        False,
        0,
        60,
    )
    assert free["unbilled_reason"] == "not_billable"
    # A reply at 20:00 still happens; its follow-up is recorded unbilled, with the reason.
    await act(admin, t, "reply", body="Late answer.", occurred_at="2026-11-10T20:00:00-06:00")
    auto = [e for e in await _entries(admin, t) if e["source"] == "auto"]
    assert [(e["billable"], e["charged_minutes"], e["unbilled_reason"]) for e in auto] == [
        (False, 0, "after_hours_not_allowed")
    ]
    assert (await _estimate(admin, t))["charged_minutes"] == 0


async def test_passing_the_estimate_blocks_billable_time_until_the_customer_decides(
    app: Any, admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    # After hours allowed: the replies below happen now, whatever the hour in Mexico.
    desk = await make_desk(admin, billing=AFTER_HOURS)
    t = await _ticket(admin, desk)
    put = await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": 60})
    assert put.status_code == 200, put.text
    assert put.json()["remaining_minutes"] == 60
    await _log(admin, t, kind="work", minutes=50, occurred_at="2026-11-10T10:00:00-06:00")
    # 50 + 15 = 65 > 60: the entry is recorded, and the ticket waits for authorization.
    passing = await _log(admin, t, kind="follow_up", occurred_at="2026-11-10T11:00:00-06:00")
    assert passing["billable"] and passing["charged_minutes"] == 15
    estimate = await _estimate(admin, t)
    pending = estimate["pending_authorization"]
    assert (estimate["charged_minutes"], estimate["remaining_minutes"]) == (65, -5)
    assert (pending["status"], pending["charged_minutes"], pending["estimate_minutes"]) == (
        "pending",
        65,
        60,
    )
    [required] = await rows(
        db, "SELECT data FROM outbox_events WHERE type = 'authorization.required'"
    )
    assert required.data["authorization"]["id"] == pending["id"]
    assert required.data["ticket"]["id"] == t

    blocked = await admin.post(
        f"/v1/tickets/{t}/worklogs",
        json={"kind": "work", "minutes": 10, "occurred_at": "2026-11-10T12:00:00-06:00"},
    )
    assert (
        assert_problem(blocked, 409, "authorization-pending")["authorization_id"] == pending["id"]
    )
    await _log(
        admin, t, kind="work", minutes=10, occurred_at="2026-11-10T12:00:00-06:00", billable=False
    )
    # The action goes through; its follow-up waits unbilled. (It happens now: the
    # authorization was requested now, and a ticket's events are never backdated past
    # its latest one.)
    await act(admin, t, "reply", body="Waiting for you.")
    auto = [e for e in await _entries(admin, t) if e["source"] == "auto"]
    assert [(e["billable"], e["unbilled_reason"]) for e in auto] == [
        (False, "authorization_pending")
    ]
    assert_problem(
        await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": 500}),
        409,
        "authorization-pending",
    )

    key = await make_key(
        db, Role.CUSTOMER, organization_id=desk.org["id"], contact_id=desk.contact["id"]
    )
    decide = f"/v1/tickets/{t}/authorizations/{pending['id']}"
    async with client_for(app, key) as customer:
        low = await customer.post(f"{decide}/approve", json={"estimate_minutes": 50})
        assert_problem(low, 422, "validation-error")
        approved = await customer.post(f"{decide}/approve", json={"estimate_minutes": 120})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        assert approved.json()["decided_by"] == {
            "role": "customer",
            "contact_id": desk.contact["id"],
        }
        again = await customer.post(f"{decide}/decline")
        assert_problem(again, 409, "conflict")
    assert (await _estimate(admin, t))["estimate_minutes"] == 120
    # 65 + 30 = 95 <= 120: billed, nothing to authorize.
    await _log(admin, t, kind="work", minutes=30, occurred_at="2026-11-10T14:00:00-06:00")
    assert (await _estimate(admin, t))["pending_authorization"] is None
    # 95 + 30 = 125 > 120: a second authorization, which the customer declines by e-mail.
    await _log(admin, t, kind="work", minutes=30, occurred_at="2026-11-10T15:00:00-06:00")
    second = (await _estimate(admin, t))["pending_authorization"]
    decline = f"/v1/tickets/{t}/authorizations/{second['id']}/decline"
    assert_problem(await admin.post(decline, json={}), 422, "validation-error")  # cite it
    declined = await admin.post(decline, json={"note": "E-mail of 10 Nov: no more hours."})
    assert declined.status_code == 200, declined.text
    refused = await admin.post(
        f"/v1/tickets/{t}/worklogs",
        json={"kind": "follow_up", "occurred_at": "2026-11-10T16:00:00-06:00"},
    )
    assert_problem(refused, 409, "authorization-declined")
    await act(admin, t, "reply", body="Understood.")
    auto = [e for e in await _entries(admin, t) if e["source"] == "auto"]
    assert [e["unbilled_reason"] for e in auto] == [
        "authorization_pending",
        "authorization_declined",
    ]
    history = (await admin.get(f"/v1/tickets/{t}/authorizations")).json()["items"]
    assert [a["status"] for a in history] == ["approved", "declined"]
    assert history[1]["note"] == "E-mail of 10 Nov: no more hours."
    types = [r.type for r in await rows(db, "SELECT type FROM outbox_events ORDER BY seq")]
    assert [x for x in types if x.startswith("authorization.")] == [
        "authorization.required",
        "authorization.approved",
        "authorization.required",
        "authorization.declined",
    ]
    timeline = (await admin.get(f"/v1/tickets/{t}/timeline?limit=200")).json()["items"]
    assert [e["kind"] for e in timeline if e["kind"].startswith(("authorization", "estimate"))] == [
        "estimate_set",
        "authorization_requested",
        "authorization_approved",
        "authorization_requested",
        "authorization_declined",
    ]


async def test_reaching_the_estimate_exactly_needs_no_authorization(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin)
    t = await _ticket(admin, desk)
    await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": 30})
    await _log(admin, t, kind="follow_up", occurred_at="2026-11-10T10:00:00-06:00")
    await _log(admin, t, kind="follow_up", occurred_at="2026-11-10T11:00:00-06:00")
    estimate = await _estimate(admin, t)
    assert (estimate["remaining_minutes"], estimate["pending_authorization"]) == (0, None)
    low = await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": 20})
    assert assert_problem(low, 422, "validation-error")["errors"][0]["type"] == "below_charged"
    cleared = await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": None})
    assert cleared.json()["estimate_minutes"] is None


async def test_contract_usage_burns_the_hours_budget(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin)
    contract = desk.contract["id"]
    patched = await admin.patch(f"/v1/contracts/{contract}", json={"hours_budget": 5})
    assert patched.status_code == 200, patched.text
    t = await _ticket(admin, desk)
    await _log(admin, t, kind="session", minutes=120, consultants=3, occurred_at=MONDAY_9)
    await _log(admin, t, kind="follow_up", occurred_at="2026-11-09T12:00:00-06:00")
    await _log(admin, t, kind="work", minutes=500, occurred_at=MONDAY_9, billable=False)
    usage = (await admin.get(f"/v1/contracts/{contract}/usage")).json()
    # 360 + 15 = 375 minutes = 6.25 h against 5 h: nothing remains, 1.25 h over.
    assert usage == {
        "contract_id": contract,
        "hours_budget": 5.0,
        "used_minutes": 375,
        "used_hours": 6.25,
        "remaining_hours": 0.0,
        "overage_hours": 1.25,
        "entries": 2,
    }
    other = await make_desk(admin)
    unbudgeted = (await admin.get(f"/v1/contracts/{other.contract['id']}/usage")).json()
    assert (unbudgeted["used_minutes"], unbudgeted["remaining_hours"]) == (0, None)


async def test_customer_keys_see_their_entries_without_agents_or_notes(
    app: Any, admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    desk = await make_desk(admin)
    other = await make_desk(admin)
    t = await _ticket(admin, desk)
    foreign = await _ticket(admin, other)
    agent = await create_agent(admin)
    await _log(
        admin, t, kind="work", minutes=30, occurred_at=MONDAY_9,
        agent_id=agent["id"], note="Customer's config is a mess",
    )  # fmt: skip
    key = await make_key(
        db, Role.CUSTOMER, organization_id=desk.org["id"], contact_id=desk.contact["id"]
    )
    async with client_for(app, key) as customer:
        [entry] = await _entries(customer, t)
        assert (entry["charged_minutes"], entry["agent_id"], entry["note"]) == (30, None, None)
        assert_problem(await customer.get(f"/v1/tickets/{foreign}/worklogs"), 404, "not-found")
        assert_problem(
            await customer.post(f"/v1/tickets/{t}/worklogs", json={"kind": "follow_up"}),
            403,
            "forbidden",
        )
        assert_problem(
            await customer.put(f"/v1/tickets/{t}/estimate", json={"minutes": 10}), 403, "forbidden"
        )
        usage = await customer.get(f"/v1/contracts/{other.contract['id']}/usage")
        assert_problem(usage, 404, "not-found")
        assert (await customer.get(f"/v1/contracts/{desk.contract['id']}/usage")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({"kind": "session", "consultants": 2}, "body.minutes", "missing"),
        ({"kind": "work", "minutes": 10, "consultants": 2}, "body.consultants", "not_a_session"),
        (
            {"kind": "work", "minutes": 10, "occurred_at": "2026-11-08T10:00:00-06:00"},
            "body.occurred_at",
            "before_ticket",
        ),
        (
            {"kind": "work", "minutes": 10, "occurred_at": "2199-01-01T10:00:00Z"},
            "body.occurred_at",
            "in_future",
        ),
        (
            {"kind": "follow_up", "agent_id": "00000000-0000-4000-8000-000000000000"},
            "body.agent_id",
            "not_found",
        ),
        ({"kind": "work", "minutes": 1441}, "body.minutes", None),
        ({"kind": "overtime", "minutes": 10}, "body.kind", None),
    ],
)
async def test_bad_entries_are_refused_with_the_field(
    admin: httpx.AsyncClient, body: dict[str, Any], field: str, kind: str | None
) -> None:
    desk = await make_desk(admin)
    t = await _ticket(admin, desk)
    problem = assert_problem(
        await admin.post(f"/v1/tickets/{t}/worklogs", json=body), 422, "validation-error"
    )
    assert problem["errors"][0]["field"] == field
    if kind is not None:
        assert problem["errors"][0]["type"] == kind
    assert await _entries(admin, t) == []


async def test_an_authorization_of_another_ticket_is_not_found(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin)
    t, u = await _ticket(admin, desk), await _ticket(admin, desk)
    await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": 0})
    await _log(admin, t, kind="follow_up", occurred_at=MONDAY_9)
    pending = (await _estimate(admin, t))["pending_authorization"]
    response = await admin.post(
        f"/v1/tickets/{u}/authorizations/{pending['id']}/approve",
        json={"estimate_minutes": 60, "note": "mail"},
    )
    assert_problem(response, 404, "not-found")
