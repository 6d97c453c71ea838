"""A calendar a ticket ran under can never break it: deleting it (once no plan uses it and no
running clock counts on it) leaves its last version to the tickets that were timed with it
(calendar_versions), for every action, plan edit and the simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from app.security import Role
from tests.conftest import client_for, make_key
from tests.plan_factories import create_calendar, target
from tests.ticket_factories import act, clock, make_desk, open_ticket

ONE_HOUR_A_DAY = "09:00-10:00"


async def _orphaned(admin: httpx.AsyncClient) -> tuple[dict, dict, dict, dict]:  # type: ignore[type-arg]
    """The issue's reproduction up to the delete: plan P on K1, ticket T closed, P moved to
    K2, T reopened and resolved, K1 deleted (204)."""
    desk = await make_desk(
        admin,
        timezone="UTC",
        hours=ONE_HOUR_A_DAY,
        targets=[target("first_response", 60), target("resolution", 120)],
    )
    k1 = desk.calendar
    k2 = await create_calendar(admin, timezone="UTC", weekly_hours="24x7")
    ticket = await open_ticket(admin, desk)
    await act(admin, ticket["id"], "close", reason="other")
    moved = await admin.patch(f"/v1/plans/{desk.plan['id']}", json={"calendar_id": k2["id"]})
    assert moved.status_code == 200, moved.text
    await act(admin, ticket["id"], "reopen", body="It came back.")
    await act(admin, ticket["id"], "resolve", resolution="fix", body="Fixed for good.")
    deleted = await admin.delete(f"/v1/calendars/{k1['id']}")
    assert deleted.status_code == 204, deleted.text
    return desk.plan, ticket, k1, desk.org


async def test_actions_on_a_ticket_whose_calendar_was_deleted(
    admin: httpx.AsyncClient, app: object, db: object
) -> None:
    plan, ticket, k1, org = await _orphaned(admin)
    tid = ticket["id"]
    noted = await act(admin, tid, "note", body="Still fine after the calendar went away.")
    assert noted["status"] == "resolved"
    assert (await admin.get(f"/v1/tickets/{tid}")).status_code == 200
    assert (await admin.get(f"/v1/tickets/{tid}/timeline")).status_code == 200

    # Reopened, its resolution clock counts on K1 as it last was (an hour a day, 09-10 UTC).
    reopened = await act(admin, tid, "reopen", body="Broken again.")
    resolution = clock(reopened, "resolution")
    assert resolution["running"] and resolution["due_at"] is not None
    due = datetime.fromisoformat(resolution["due_at"]).astimezone(UTC)
    assert due.weekday() < 5
    assert timedelta(hours=9) < due - due.replace(hour=0, minute=0, second=0, microsecond=0)
    assert due - due.replace(hour=0, minute=0, second=0, microsecond=0) <= timedelta(hours=10)

    # A customer acts on it too.
    key = await make_key(db, Role.CUSTOMER, organization_id=org["id"])  # type: ignore[arg-type]
    async with client_for(app, key) as customer:
        replied = await customer.post(
            f"/v1/tickets/{tid}/actions/customer_reply", json={"body": "Any news?"}
        )
        assert replied.status_code == 200, replied.text

    # A plan edit that re-times open tickets moves it onto the plan's calendar.
    retimed = await admin.patch(
        f"/v1/plans/{plan['id']}",
        json={"targets": [target("first_response", 60), target("resolution", 240)]},
    )
    assert retimed.status_code == 200, retimed.text
    after = (await admin.get(f"/v1/tickets/{tid}")).json()
    assert clock(after, "resolution")["minutes"] == 240

    await act(admin, tid, "resolve", resolution="workaround", body="Workaround.")
    await act(admin, tid, "confirm")
    closed = await act(admin, tid, "note", body="Closed, and still readable.")
    assert closed["status"] == "closed"
    assert k1["id"] not in {c["id"] for c in (await admin.get("/v1/calendars")).json()["items"]}


async def test_the_simulator_replays_a_period_with_a_deleted_calendar(
    admin: httpx.AsyncClient,
) -> None:
    _, _, _, org = await _orphaned(admin)
    now = datetime.now(UTC)
    body = {
        "from": (now - timedelta(days=1)).isoformat(),
        "to": (now + timedelta(days=1)).isoformat(),
    }
    for extra in ({}, {"organization_id": org["id"]}):
        response = await admin.post("/v1/reports/simulate", json={**body, **extra})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["tickets"] == 1
        assert result["simulated"] == result["actual"]  # its own (archived) terms


async def test_deletion_is_still_refused_while_a_plan_or_a_running_clock_needs_it(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin, timezone="UTC", hours=ONE_HOUR_A_DAY)
    used = await admin.delete(f"/v1/calendars/{desk.calendar['id']}")
    assert used.status_code == 409 and desk.plan["code"] in used.json()["used_by"]
    other = await create_calendar(admin, timezone="UTC", weekly_hours="24x7")
    await open_ticket(admin, desk)
    moved = await admin.patch(f"/v1/plans/{desk.plan['id']}", json={"calendar_id": other["id"]})
    assert moved.status_code == 200
    # The open ticket was re-timed onto the new calendar: the old one is free.
    assert (await admin.delete(f"/v1/calendars/{desk.calendar['id']}")).status_code == 204
