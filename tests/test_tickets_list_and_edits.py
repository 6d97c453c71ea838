"""Listing tickets (filters, sorting, pagination) and edits of calendars and plans reaching
the clocks of open tickets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.plan_factories import target
from tests.ticket_factories import act, clock, make_desk, open_ticket

# Tests relative to "now" must not depend on the weekday they run on.
ALWAYS: dict[str, Any] = {"timezone": "UTC", "calendar_fields": {"weekly_hours": "24x7"}}


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def test_filters_sort_and_pages(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(
        admin, **ALWAYS,
        targets=[
            target("first_response", 60, severities=["critical"]),
            target("first_response", 6000),
        ],
    )  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    late = await open_ticket(
        admin, desk, severity="critical", received_at=_iso(now - timedelta(hours=2))
    )
    soon = await open_ticket(
        admin, desk, severity="critical", received_at=_iso(now - timedelta(minutes=30))
    )
    calm = await open_ticket(
        admin, desk, severity="low", received_at=_iso(now - timedelta(minutes=10))
    )
    done = await open_ticket(
        admin, desk, severity="low", received_at=_iso(now - timedelta(minutes=5))
    )
    await act(admin, done["id"], "reply", body="answered")
    agent = (
        await admin.post("/v1/agents", json={"name": "A", "email": "a@v.example", "tier": 2})
    ).json()
    await act(admin, calm["id"], "assign", agent_id=agent["id"])

    async def ids(**params: Any) -> list[str]:
        response = await admin.get("/v1/tickets", params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["items"]]

    assert await ids() == [done["id"], calm["id"], soon["id"], late["id"]]  # newest first
    assert await ids(sort="received_at") == [late["id"], soon["id"], calm["id"], done["id"]]
    assert await ids(breached="true") == [late["id"]]  # due an hour ago, nobody looked
    assert set(await ids(breached="false")) == {soon["id"], calm["id"], done["id"]}
    assert await ids(severity="critical") == [soon["id"], late["id"]]
    assert await ids(status="open") == [calm["id"]]
    assert await ids(status=["open", "in_progress"]) == [done["id"], calm["id"]]
    assert await ids(assignee_id=agent["id"]) == [calm["id"]]
    # Running clocks due before now + 1 h: the late one and the one due in 30 minutes.
    assert set(await ids(due_before=_iso(now + timedelta(hours=1)))) == {late["id"], soon["id"]}
    # What is due next: earliest running due time first; answered tickets drop out.
    assert await ids(sort="next_due") == [late["id"], soon["id"], calm["id"]]
    first = (await admin.get("/v1/tickets", params={"sort": "next_due", "limit": 2})).json()
    rest = (
        await admin.get("/v1/tickets", params={"sort": "next_due", "cursor": first["next_cursor"]})
    ).json()
    assert [t["id"] for t in first["items"] + rest["items"]] == [late["id"], soon["id"], calm["id"]]
    assert rest["next_cursor"] is None
    bad = await admin.get("/v1/tickets", params={"sort": "priority"})
    assert bad.status_code == 422


async def test_calendar_edit_keeps_elapsed_and_moves_the_rest(admin: httpx.AsyncClient) -> None:
    """A running clock keeps the business time counted under the old hours; the remaining
    time is counted under the new hours from the moment of the edit. Stopped clocks never
    change."""
    desk = await make_desk(
        admin, **ALWAYS,
        targets=[target("first_response", 60), target("resolution", 48 * 60)],
    )  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    t = await open_ticket(admin, desk, received_at=_iso(now - timedelta(hours=1, minutes=30)))
    t = await act(admin, t["id"], "reply", body="ok", occurred_at=_iso(now - timedelta(hours=1)))
    before_fr = clock(t, "first_response")
    assert before_fr["state"] == "met" and before_fr["elapsed_seconds"] == 30 * 60
    # Close the whole week from now on, except a 1-hour window a day.
    hours = {d: ["08:00-09:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    edited = await admin.patch(f"/v1/calendars/{desk.calendar['id']}", json={"weekly_hours": hours})
    assert edited.status_code == 200
    after = (await admin.get(f"/v1/tickets/{t['id']}")).json()
    assert clock(after, "first_response") == before_fr  # history does not change
    res = clock(after, "resolution")
    # 90 minutes (or a few seconds more) counted under 24x7 hours; from now on one hour a day.
    assert 90 * 60 <= res["elapsed_seconds"] <= 90 * 60 + 120
    remaining_days = (48 * 60 - res["elapsed_seconds"] // 60) // 60  # whole hours left
    due = datetime.fromisoformat(res["due_at"])
    assert due > now + timedelta(days=remaining_days - 1)  # no longer two days away
    timeline = (await admin.get(f"/v1/tickets/{t['id']}/timeline")).json()["items"]
    assert timeline[-1]["kind"] == "sla_recomputed"
    assert timeline[-1]["data"]["calendar_id"] == desk.calendar["id"]


async def test_plan_edit_applies_new_targets_from_the_edit(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **ALWAYS, targets=[target("resolution", 600)])
    now = datetime.now(UTC).replace(microsecond=0)
    t = await open_ticket(admin, desk, received_at=_iso(now - timedelta(hours=2)))
    closed = await open_ticket(admin, desk, received_at=_iso(now - timedelta(hours=3)))
    closed = await act(admin, closed["id"], "resolve", resolution="fix", body="done",
                       occurred_at=_iso(now - timedelta(hours=2)))  # fmt: skip
    resolved_clock = clock(closed, "resolution")
    edit = await admin.patch(
        f"/v1/plans/{desk.plan['id']}", json={"targets": [target("resolution", 180)]}
    )
    assert edit.status_code == 200, edit.text
    after = (await admin.get(f"/v1/tickets/{t['id']}")).json()
    res = clock(after, "resolution")
    assert res["minutes"] == 180
    # Two hours counted; one remains under the new 180-minute target.
    due = datetime.fromisoformat(res["due_at"])
    assert now + timedelta(minutes=55) <= due <= now + timedelta(minutes=65)
    assert after["plan"]["version"] == desk.plan["version"] + 1
    untouched = (await admin.get(f"/v1/tickets/{closed['id']}")).json()
    assert clock(untouched, "resolution") == resolved_clock  # resolved: history
