"""After-hours time billed as agreed (seed 004: "If the client requires attention after
hours, they must request it in advance and via email. Attention after hours has an extra
cost"), and work log entries that end when they are logged.

The desk's calendar is Mexico City (UTC-6 all year), Monday to Friday 08:30-18:00. The
ticket arrives Monday 2026-11-09 09:00; Tuesday 2026-11-10 18:00 local is 2026-11-11
00:00Z. Every figure is computed by hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_contact
from tests.test_errors import assert_problem
from tests.ticket_factories import Desk, act, make_desk, open_ticket

MONDAY_9 = "2026-11-09T09:00:00-06:00"
MONDAY_NOON = "2026-11-09T12:00:00-06:00"
ALLOWED = {"after_hours": {"allowed": True, "multiplier": 1.5}}
REFUSING = {"after_hours": {"allowed": True, "multiplier": 1.5, "unrequested": "refuse"}}


async def _ticket(api: httpx.AsyncClient, desk: Desk) -> str:
    return str((await open_ticket(api, desk, received_at=MONDAY_9))["id"])


async def _request(
    api: httpx.AsyncClient, url: str, expect: int = 201, **body: Any
) -> dict[str, Any]:
    response = await api.post(url, json=body)
    assert response.status_code == expect, response.text
    return dict(response.json())


def _evening(desk: Desk, **changes: Any) -> dict[str, Any]:
    """Ana's e-mail of Monday noon: an engineer on Tuesday from 18:00 to 20:00."""
    return {
        "contact_id": desk.contact["id"],
        "requested_at": MONDAY_NOON,
        "starts_at": "2026-11-10T18:00:00-06:00",
        "ends_at": "2026-11-10T20:00:00-06:00",
        "reference": "RE: export - please stay on it tomorrow evening",
        **changes,
    }


async def _log(
    api: httpx.AsyncClient, ticket_id: str, expect: int = 201, **body: Any
) -> dict[str, Any]:
    response = await api.post(f"/v1/tickets/{ticket_id}/worklogs", json=body)
    assert response.status_code == expect, response.text
    return dict(response.json())


def _invalid(response: httpx.Response) -> dict[str, Any]:
    """The first field error of a 422 validation problem."""
    return dict(assert_problem(response, 422, "validation-error")["errors"][0])


def _figures(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (
        entry["after_hours_minutes"],
        entry["unrequested_minutes"],
        entry["multiplier"],
        entry["charged_minutes"],
    )


async def test_the_multiplier_applies_only_inside_the_requested_window(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin, billing=ALLOWED)
    t = await _ticket(admin, desk)
    request = await _request(admin, f"/v1/tickets/{t}/after-hours-requests", **_evening(desk))
    assert (request["scope"], request["ticket_id"], request["contract_id"]) == ("ticket", t, None)
    assert request["requested_at"] == "2026-11-09T18:00:00Z"
    assert request["channel"] == "email" and request["recorded_by"]["role"] == "admin"

    # 19:00-21:00: 120 minutes after hours, 60 inside the window (x 1.5 = 90) and 60
    # outside it (charged as business time: 60) = 150.
    work = await _log(admin, t, kind="work", minutes=120, occurred_at="2026-11-10T19:00:00-06:00")
    assert _figures(work) == (120, 60, 1.5, 150)
    assert work["after_hours_request_id"] == request["id"]
    # 17:00-19:00: 60 in hours + 60 requested after hours x 1.5 = 150.
    straddling = await _log(
        admin, t, kind="session", minutes=120, consultants=1,
        occurred_at="2026-11-10T17:00:00-06:00",
    )  # fmt: skip
    assert _figures(straddling) == (60, 0, 1.5, 150)
    # Wednesday 19:00: nobody asked; after hours at the business rate.
    unasked = await _log(admin, t, kind="work", minutes=60, occurred_at="2026-11-11T19:00:00-06:00")
    assert _figures(unasked) == (60, 60, 1.0, 60) and unasked["after_hours_request_id"] is None
    # A reply inside the window is a follow-up x 1.5 (22.5 -> 23); one after it, 15.
    await act(admin, t, "reply", body="Still on it.", occurred_at="2026-11-10T19:30:00-06:00")
    await act(admin, t, "reply", body="Done for today.", occurred_at="2026-11-10T20:30:00-06:00")
    entries = (await admin.get(f"/v1/tickets/{t}/worklogs")).json()["items"]
    auto = [e for e in entries if e["source"] == "auto"]
    assert [_figures(e) for e in auto] == [(15, 0, 1.5, 23), (15, 15, 1.0, 15)]
    assert [e["after_hours_request_id"] for e in auto] == [request["id"], None]


async def test_the_plan_may_refuse_after_hours_time_nobody_requested(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin, billing=REFUSING)
    t = await _ticket(admin, desk)
    response = await admin.post(
        f"/v1/tickets/{t}/worklogs",
        json={"kind": "work", "minutes": 60, "occurred_at": "2026-11-10T19:00:00-06:00"},
    )
    problem = assert_problem(response, 422, "after-hours-not-requested")
    assert problem["unrequested_minutes"] == 60
    assert problem["errors"][0]["field"] == "body.occurred_at"
    assert "after-hours-requests" in problem["detail"]
    # A night reply still happens; its follow-up is recorded unbilled, with the reason.
    await act(admin, t, "reply", body="Late answer.", occurred_at="2026-11-10T19:00:00-06:00")
    entries = (await admin.get(f"/v1/tickets/{t}/worklogs")).json()["items"]
    assert [(e["billable"], e["charged_minutes"], e["unbilled_reason"]) for e in entries] == [
        (False, 0, "after_hours_not_requested")
    ]
    assert entries[0]["after_hours_minutes"] == 15

    await _request(admin, f"/v1/tickets/{t}/after-hours-requests", **_evening(desk))
    # Inside the window: billed x 1.5. Straddling its end (19:30-20:30): 30 minutes outside
    # it, so the whole entry is refused.
    inside = await _log(admin, t, kind="work", minutes=60, occurred_at="2026-11-10T18:30:00-06:00")
    assert _figures(inside) == (60, 0, 1.5, 90)
    straddling = await admin.post(
        f"/v1/tickets/{t}/worklogs",
        json={"kind": "work", "minutes": 60, "occurred_at": "2026-11-10T19:30:00-06:00"},
    )
    assert assert_problem(straddling, 422, "after-hours-not-requested")["unrequested_minutes"] == 30
    # Business hours are never refused.
    day = await _log(admin, t, kind="work", minutes=60, occurred_at="2026-11-10T10:00:00-06:00")
    assert _figures(day) == (0, 0, 1.0, 60)


async def test_a_standing_agreement_on_the_contract_covers_its_tickets(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(admin, billing=REFUSING)
    first, second = await _ticket(admin, desk), await _ticket(admin, desk)
    # The client agreed in October to after-hours attention for the whole of November.
    standing = await _request(
        admin,
        f"/v1/contracts/{desk.contract['id']}/after-hours-requests",
        contact_id=desk.contact["id"],
        requested_at="2026-10-20T10:00:00-06:00",
        starts_at="2026-11-01T00:00:00-06:00",
        ends_at="2026-12-01T00:00:00-06:00",
        reference="Annex 2: after-hours attention, November",
    )
    assert (standing["scope"], standing["contract_id"]) == ("contract", desk.contract["id"])
    for t in (first, second):
        entry = await _log(
            admin, t, kind="work", minutes=60, occurred_at="2026-11-14T10:00:00-06:00"
        )  # a Saturday
        assert _figures(entry) == (60, 0, 1.5, 90)
        assert entry["after_hours_request_id"] == standing["id"]
    # A ticket's own request is cited before the standing one when both cover the time.
    own = await _request(admin, f"/v1/tickets/{first}/after-hours-requests", **_evening(desk))
    evening = await _log(
        admin, first, kind="work", minutes=60, occurred_at="2026-11-10T18:00:00-06:00"
    )
    assert evening["after_hours_request_id"] == own["id"]
    # The ticket lists both; the contract its own.
    listed = (await admin.get(f"/v1/tickets/{first}/after-hours-requests")).json()["items"]
    assert [r["id"] for r in listed] == [standing["id"], own["id"]]  # by window start
    theirs = (await admin.get(f"/v1/tickets/{second}/after-hours-requests")).json()["items"]
    assert [r["id"] for r in theirs] == [standing["id"]]
    contract = await admin.get(f"/v1/contracts/{desk.contract['id']}/after-hours-requests")
    assert [r["id"] for r in contract.json()["items"]] == [standing["id"]]
    # The statement shows which request each after-hours line relies on.
    statement = await admin.get(
        "/v1/reports/statement",
        params={"organization_id": desk.org["id"], "month": "2026-11", "tz": desk.calendar[
            "timezone"]},
    )  # fmt: skip
    assert statement.status_code == 200, statement.text
    relied = [
        (line["after_hours_request"] or {}).get("scope") for line in statement.json()["lines"]
    ]
    assert relied == ["ticket", "contract", "contract"]  # by occurred_at
    assert statement.json()["totals"]["unrequested_minutes"] == 0
    # A request an entry relies on is part of the billing record; an unused one can go.
    used = await admin.delete(f"/v1/after-hours-requests/{standing['id']}")
    assert assert_problem(used, 409, "conflict")["worklogs"] == 2
    spare = await _request(
        admin, f"/v1/tickets/{second}/after-hours-requests", **_evening(desk, reference="spare")
    )
    assert (await admin.delete(f"/v1/after-hours-requests/{spare['id']}")).status_code == 204
    gone = await admin.delete(f"/v1/after-hours-requests/{spare['id']}")
    assert gone.status_code == 404


async def test_a_request_is_made_in_advance_by_an_authorized_contact(
    app: Any, admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    desk = await make_desk(admin, billing=ALLOWED)
    t = await _ticket(admin, desk)
    url = f"/v1/tickets/{t}/after-hours-requests"
    late = await admin.post(url, json=_evening(desk, requested_at="2026-11-10T18:30:00-06:00"))
    assert _invalid(late)["type"] == "not_in_advance"
    backwards = await admin.post(url, json=_evening(desk, ends_at="2026-11-10T17:00:00-06:00"))
    assert _invalid(backwards)["field"] == "body.ends_at"
    future = await admin.post(url, json=_evening(desk, requested_at="2100-01-01T00:00:00Z"))
    assert _invalid(future)["type"] == "in_future"
    user = await create_contact(admin, desk.org["id"], role="end_user")
    refused = await admin.post(url, json=_evening(desk, contact_id=user["id"]))
    assert _invalid(refused)["type"] == "contact_not_authorized"
    nobody = await admin.post(
        url, json={k: v for k, v in _evening(desk).items() if k != "contact_id"}
    )
    assert _invalid(nobody)["field"] == "body.contact_id"
    # A plan without after-hours attention has nothing to request.
    plain = await make_desk(admin)
    other = await _ticket(admin, plain)
    offered = await admin.post(f"/v1/tickets/{other}/after-hours-requests", json=_evening(plain))
    assert _invalid(offered)["type"] == "after_hours_not_offered"

    # A customer key asks now, as its own contact; it cannot back-date the request.
    key = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"],
                         contact_id=desk.contact["id"])  # fmt: skip
    window = {"starts_at": "2100-01-01T18:00:00Z", "ends_at": "2100-01-01T22:00:00Z"}
    async with client_for(app, key) as customer:
        backdated = await customer.post(url, json={**window, "requested_at": MONDAY_NOON})
        assert _invalid(backdated)["field"] == "body.requested_at"
        before = datetime.now(UTC)
        mine = await _request(customer, url, **window)
        assert mine["contact_id"] == desk.contact["id"]
        assert datetime.fromisoformat(mine["requested_at"]) >= before - timedelta(seconds=1)
        assert mine["recorded_by"] == {"role": "customer", "contact_id": desk.contact["id"]}
        # Deleting is staff's; listing is the customer's too.
        assert (await customer.delete(f"/v1/after-hours-requests/{mine['id']}")).status_code == 403
        listed = (await customer.get(url)).json()["items"]
        assert [r["id"] for r in listed] == [mine["id"]]


# ------------------------------------------------------------ when an entry happened


async def test_an_entry_without_occurred_at_ends_now(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, billing=ALLOWED)
    t = str((await open_ticket(admin, desk))["id"])  # received now
    # Received a moment ago: 30 minutes of work ending now would start before it.
    early = await admin.post(f"/v1/tickets/{t}/worklogs", json={"kind": "work", "minutes": 30})
    problem = _invalid(early)
    assert (problem["field"], problem["type"]) == (
        "body.minutes",
        "before_ticket",
    )
    old = await _ticket(admin, desk)  # received Monday 2026-11-09
    before = datetime.now(UTC)
    work = await _log(admin, old, kind="work", minutes=30)
    after = datetime.now(UTC)
    started = datetime.fromisoformat(work["occurred_at"])
    assert before - timedelta(minutes=30) <= started <= after - timedelta(minutes=30)
    follow_up = await _log(admin, old, kind="follow_up")
    assert before <= datetime.fromisoformat(follow_up["occurred_at"]) <= datetime.now(UTC)
    # Or say when it ended: it started `minutes` before.
    ended = await _log(
        admin, old, kind="session", minutes=90, consultants=2, ended_at="2026-11-10T12:00:00-06:00"
    )
    assert ended["occurred_at"] == "2026-11-10T16:30:00Z" and ended["charged_minutes"] == 180
    both = await admin.post(
        f"/v1/tickets/{old}/worklogs",
        json={"kind": "work", "minutes": 10, "occurred_at": MONDAY_9, "ended_at": MONDAY_NOON},
    )
    assert _invalid(both)["type"] == "conflicting"
    future = await admin.post(
        f"/v1/tickets/{old}/worklogs",
        json={"kind": "work", "minutes": 10, "ended_at": "2100-01-01T00:00:00Z"},
    )
    assert _invalid(future)["field"] == "body.ended_at"
    # An explicit start keeps its meaning, and still may not end in the future.
    start = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    running = await admin.post(
        f"/v1/tickets/{old}/worklogs", json={"kind": "work", "minutes": 10, "occurred_at": start}
    )
    assert _invalid(running)["type"] == "in_future"
