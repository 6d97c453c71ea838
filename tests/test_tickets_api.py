"""Ticket intake and actions through the API: idempotency, scoping, concurrency, errors."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_contact
from tests.plan_factories import target
from tests.ticket_factories import act, clock, make_desk, open_ticket

UTC_DESK: dict[str, Any] = {"timezone": "UTC", "hours": "09:00-17:00"}


def _body(desk: Any, **fields: Any) -> dict[str, Any]:
    return {
        "organization_id": desk.org["id"], "contact_id": desk.contact["id"], "channel": "email",
        "severity": "high", "category": "technical", "subject": "Broken", **fields,
    }  # fmt: skip


async def test_idempotency_key_returns_the_first_response(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    headers = {"Idempotency-Key": "mail-4711"}
    first = await admin.post("/v1/tickets", json=_body(desk), headers=headers)
    again = await admin.post("/v1/tickets", json=_body(desk), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    listed = (await admin.get("/v1/tickets")).json()["items"]
    assert [t["id"] for t in listed] == [first.json()["id"]]  # a retry never makes a second
    other = await admin.post("/v1/tickets", json=_body(desk, subject="Other"), headers=headers)
    assert other.status_code == 409 and other.json()["ticket_id"] == first.json()["id"]


async def test_concurrent_retries_make_one_ticket(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    headers = {"Idempotency-Key": "portal-retry"}
    responses = await asyncio.gather(
        *(admin.post("/v1/tickets", json=_body(desk), headers=headers) for _ in range(4))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1


async def test_numbers_are_unique_and_human(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    tickets = await asyncio.gather(*(open_ticket(admin, desk) for _ in range(5)))
    numbers = [t["number"] for t in tickets]
    assert len(set(numbers)) == 5
    assert all(n.startswith("SD-") and len(n) == 9 for n in numbers)


async def test_customer_key_scope_and_actions(app: Any, admin: httpx.AsyncClient, db: Any) -> None:
    desk = await make_desk(admin, **UTC_DESK, targets=[target("resolution", 600)])
    other = await make_desk(admin, **UTC_DESK)
    key = await make_key(
        db, Role.CUSTOMER, organization_id=desk.org["id"], contact_id=desk.contact["id"]
    )
    async with client_for(app, key) as customer:
        # The key raises tickets as its own contact, received now.
        body = _body(desk)
        del body["contact_id"]
        created = await customer.post("/v1/tickets", json=body)
        assert created.status_code == 201, created.text
        mine = created.json()
        assert mine["contact_id"] == desk.contact["id"] and mine["allowed_actions"] == [
            "customer_reply"
        ]
        backdated = await customer.post(
            "/v1/tickets", json={**body, "received_at": "2026-01-01T00:00:00Z"}
        )
        assert backdated.status_code == 422
        assert backdated.json()["errors"][0]["field"] == "body.received_at"
        elsewhere = await customer.post("/v1/tickets", json=_body(other))
        assert elsewhere.status_code in (404, 422)
        # Nor as another contact of its organization.
        colleague = await create_contact(admin, desk.org["id"])
        as_colleague = await customer.post(
            "/v1/tickets", json={**body, "contact_id": colleague["id"]}
        )
        assert as_colleague.status_code == 422
        assert as_colleague.json()["errors"][0]["field"] == "body.contact_id"
        # Agents' notes never reach the customer.
        await act(admin, mine["id"], "note", body="customer is grumpy")
        await act(admin, mine["id"], "reply", body="We are on it")
        timeline = (await customer.get(f"/v1/tickets/{mine['id']}/timeline")).json()["items"]
        assert [e["kind"] for e in timeline] == ["created", "replied"]
        assert "grumpy" not in str(timeline)
        staff_view = (await admin.get(f"/v1/tickets/{mine['id']}/timeline")).json()["items"]
        assert [e["kind"] for e in staff_view] == ["created", "noted", "replied"]
        # Customers may only reply as the customer, confirm and reopen.
        forbidden = await customer.post(
            f"/v1/tickets/{mine['id']}/actions/reply", json={"body": "hi"}
        )
        assert forbidden.status_code == 403
        await act(admin, mine["id"], "request_info", body="Which version?")
        replied = await customer.post(
            f"/v1/tickets/{mine['id']}/actions/customer_reply", json={"body": "4.2"}
        )
        assert replied.status_code == 200 and replied.json()["status"] == "in_progress"
        # Another organization's ticket does not exist for this key.
        theirs = await open_ticket(admin, other)
        assert (await customer.get(f"/v1/tickets/{theirs['id']}")).status_code == 404
        assert (await customer.get(f"/v1/tickets/{theirs['id']}/timeline")).status_code == 404
        listed = (await customer.get("/v1/tickets")).json()["items"]
        assert [t["id"] for t in listed] == [mine["id"]]


async def test_if_match_and_etag(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    t = await open_ticket(admin, desk)
    read = await admin.get(f"/v1/tickets/{t['id']}")
    etag = read.headers["etag"]
    assert etag == f'"{t["version"]}"'
    ok = await admin.patch(
        f"/v1/tickets/{t['id']}", json={"subject": "Export fails"}, headers={"If-Match": etag}
    )
    assert ok.status_code == 200 and ok.headers["etag"] != etag
    stale = await admin.patch(
        f"/v1/tickets/{t['id']}", json={"subject": "Again"}, headers={"If-Match": etag}
    )
    assert stale.status_code == 412 and stale.json()["current_etag"] == ok.headers["etag"]
    stale_action = await admin.post(
        f"/v1/tickets/{t['id']}/actions/note", json={"body": "x"}, headers={"If-Match": etag}
    )
    assert stale_action.status_code == 412
    assert (await admin.get(f"/v1/tickets/{t['id']}")).json()["subject"] == "Export fails"


async def test_concurrent_actions_are_serialized(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK, targets=[target("resolution", 600)])
    t = await open_ticket(admin, desk)
    results = await asyncio.gather(
        *(
            admin.post(f"/v1/tickets/{t['id']}/actions/note", json={"body": f"n{i}"})
            for i in range(6)
        )
    )
    assert [r.status_code for r in results] == [200] * 6
    final = (await admin.get(f"/v1/tickets/{t['id']}")).json()
    assert final["version"] == t["version"] + 6  # no lost update
    timeline = (await admin.get(f"/v1/tickets/{t['id']}/timeline")).json()["items"]
    assert sorted(e["body"] for e in timeline if e["kind"] == "noted") == [
        f"n{i}" for i in range(6)
    ]


async def test_occurred_at_rules(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK, targets=[target("resolution", 600)])
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    url = f"/v1/tickets/{t['id']}/actions/note"
    future = await admin.post(url, json={"body": "x", "occurred_at": "2100-01-01T00:00:00Z"})
    assert future.status_code == 422 and future.json()["errors"][0]["type"] == "in_future"
    before = await admin.post(url, json={"body": "x", "occurred_at": "2026-03-01T09:00:00Z"})
    assert before.status_code == 422 and before.json()["errors"][0]["type"] == "before_last_event"
    naive = await admin.post(url, json={"body": "x", "occurred_at": "2026-03-02T10:00:00"})
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "body.occurred_at"
    await act(admin, t["id"], "note", body="at 10", occurred_at="2026-03-02T10:00:00Z")
    earlier = await admin.post(url, json={"body": "x", "occurred_at": "2026-03-02T09:30:00Z"})
    assert earlier.status_code == 422
    future_intake = await admin.post(
        "/v1/tickets", json=_body(desk, received_at="2100-01-01T00:00:00Z")
    )
    assert future_intake.status_code == 422
    assert future_intake.json()["errors"][0]["type"] == "in_future"
    # Instants far from any real history are refused before any arithmetic can overflow.
    for far in ("0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-01:00"):
        response = await admin.post(url, json={"body": "x", "occurred_at": far})
        assert response.status_code == 422, far
        intake = await admin.post("/v1/tickets", json=_body(desk, received_at=far))
        assert intake.status_code == 422, far
        listing = await admin.get("/v1/tickets", params={"due_before": far})
        assert listing.status_code == 422, far


async def test_actions_not_allowed_name_status_and_alternatives(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    t = await open_ticket(admin, desk)
    refused = await admin.post(f"/v1/tickets/{t['id']}/actions/confirm", json={})
    problem = refused.json()
    # RFC 9457: `status` is the HTTP status; the ticket's is `ticket_status`.
    assert refused.status_code == 409 and problem["status"] == 409
    assert problem["ticket_status"] == "new"
    assert "assign" in problem["allowed_actions"] and "confirm" not in problem["allowed_actions"]
    assert "confirm is not allowed while the ticket is new" in problem["detail"]
    unknown = await admin.post(f"/v1/tickets/{t['id']}/actions/teleport", json={})
    assert unknown.status_code == 404
    typo = await admin.post(f"/v1/tickets/{t['id']}/actions/reply", json={"bdy": "x"})
    assert typo.status_code == 422


async def test_intake_validation(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    stranger = await create_contact(admin, (await make_desk(admin, **UTC_DESK)).org["id"])
    wrong = await admin.post("/v1/tickets", json=_body(desk, contact_id=stranger["id"]))
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.contact_id"
    missing_org = await admin.post(
        "/v1/tickets", json=_body(desk, organization_id=str(uuid.uuid4()))
    )
    assert missing_org.status_code == 404
    bad_follow = await admin.post(
        "/v1/tickets", json=_body(desk, follows_up_ticket_id=str(uuid.uuid4()))
    )
    assert bad_follow.status_code == 422
    bad_enum = await admin.post("/v1/tickets", json=_body(desk, severity="apocalyptic"))
    assert bad_enum.status_code == 422 and bad_enum.json()["errors"][0]["field"] == "body.severity"


async def test_end_user_is_refused_with_the_seed_002_reason(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    end_user = await create_contact(admin, desk.org["id"], role="end_user")
    refused = await admin.post("/v1/tickets", json=_body(desk, contact_id=end_user["id"]))
    assert refused.status_code == 422 and refused.json()["reasons"] == ["contact_not_authorized"]


async def test_after_hours_flag(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK, targets=[target("first_response", 60)])
    night = await open_ticket(admin, desk, received_at="2026-03-02T20:00:00Z")
    day = await open_ticket(admin, desk, received_at="2026-03-02T10:00:00Z")
    assert night["after_hours"] is True and day["after_hours"] is False
    # Seeds 002/004: answered from the next opening.
    assert clock(night, "first_response")["due_at"] == "2026-03-03T10:00:00Z"
