"""Rules that are easy to get subtly wrong: re-chosen targets, auto-close cancellation,
what customers see, outbox events, and inputs that must never reach a 500."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from app.db import make_sessionmaker
from app.schemas.tickets import MessageBody
from app.security import Principal, Role
from app.services import ticket_actions
from tests.conftest import client_for, make_key
from tests.plan_factories import target
from tests.ticket_factories import act, make_desk, open_ticket

UTC_DESK: dict[str, Any] = {"timezone": "UTC", "hours": "09:00-17:00"}


def _metrics(ticket: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["metric"]: c for c in ticket["sla"]}


async def test_change_adds_and_withdraws_clocks(admin: httpx.AsyncClient) -> None:
    """Seed 002's shape: only critical tickets get a (24x7) resolution promise."""
    desk = await make_desk(
        admin,
        **UTC_DESK,
        targets=[
            target("first_response", 120),
            target("resolution", 480, severities=["critical"], clock="24x7"),
        ],
    )
    t = await open_ticket(admin, desk, severity="high", received_at="2026-03-02T09:00:00Z")
    assert set(_metrics(t)) == {"first_response"}
    t = await act(admin, t["id"], "change", severity="critical", occurred_at="2026-03-02T10:00:00Z")
    res = _metrics(t)["resolution"]
    # The promise starts when the ticket qualifies: 8 hours around the clock from 10:00.
    assert res["started_at"] == "2026-03-02T10:00:00Z" and res["due_at"] == "2026-03-02T18:00:00Z"
    t = await act(admin, t["id"], "change", severity="high", occurred_at="2026-03-02T11:00:00Z")
    res = _metrics(t)["resolution"]
    # Withdrawn: nothing is owed any more; the hour already counted stays (and it keeps
    # counting, informally, should the promise come back).
    assert res["state"] == "best_effort" and res["due_at"] is None and res["minutes"] is None
    assert res["elapsed_seconds"] >= 3600
    # The first response was already given: a change does not start a new one.
    t = await act(admin, t["id"], "reply", body="ok", occurred_at="2026-03-02T11:30:00Z")
    t = await act(admin, t["id"], "change", severity="critical", occurred_at="2026-03-02T12:00:00Z")
    fr = _metrics(t)["first_response"]
    assert fr["state"] == "breached" and fr["stopped_at"] == "2026-03-02T11:30:00Z"
    assert fr["breached_at"] == "2026-03-02T11:00:00Z"  # 120 business minutes after 09:00
    assert _metrics(t)["resolution"]["minutes"] == 480  # promised again, elapsed kept


async def test_change_to_an_excluded_category_is_refused(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK, excluded_categories=["training"])
    t = await open_ticket(admin, desk)
    refused = await admin.post(
        f"/v1/tickets/{t['id']}/actions/change", json={"category": "training"}
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "body.category"
    assert (await admin.get(f"/v1/tickets/{t['id']}")).json()["category"] == "technical"


async def test_auto_close_is_cancelled_when_the_ticket_stops_waiting(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(
        admin,
        **UTC_DESK,
        auto_close={"contact_attempts": 1, "notice_business_days": 2},
        targets=[target("resolution", 600)],
    )
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    t = await act(admin, t["id"], "request_info", body="?", occurred_at="2026-03-02T10:00:00Z")
    assert t["auto_close_at"] == "2026-03-04T10:00:00Z"
    t = await act(
        admin,
        t["id"],
        "resolve",
        resolution="fix",
        body="found it",
        occurred_at="2026-03-02T11:00:00Z",
    )
    assert t["status"] == "resolved" and t["auto_close_at"] is None
    kinds = [
        e["kind"] for e in (await admin.get(f"/v1/tickets/{t['id']}/timeline")).json()["items"]
    ]
    assert kinds[-1] == "auto_close_cancelled"


async def test_a_plan_edit_dropping_auto_close_cancels_pending_closes(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(
        admin,
        **UTC_DESK,
        auto_close={"contact_attempts": 1, "notice_business_days": 2},
        targets=[target("resolution", 600)],
    )
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    t = await act(admin, t["id"], "request_info", body="?", occurred_at="2026-03-02T10:00:00Z")
    assert t["auto_close_at"] is not None
    edit = await admin.patch(f"/v1/plans/{desk.plan['id']}", json={"auto_close": None})
    assert edit.status_code == 200, edit.text
    after = (await admin.get(f"/v1/tickets/{t['id']}")).json()
    assert after["auto_close_at"] is None and after["status"] == "waiting_on_customer"


async def test_plan_edits_add_drop_targets_and_follow_pause_rules(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(
        admin,
        timezone="UTC",
        calendar_fields={"weekly_hours": "24x7"},
        targets=[target("resolution", 6000)],
    )
    now = datetime.now(UTC).replace(microsecond=0)
    received = (now - timedelta(hours=2)).isoformat()
    t = await open_ticket(admin, desk, received_at=received)
    t = await act(admin, t["id"], "escalate", to_tier=4, vendor="Microsoft", vendor_case_ref="MS-9")
    assert t["status"] == "waiting_on_vendor" and _metrics(t)["resolution"]["running"] is True
    # The plan now pauses while waiting on the vendor, and promises a first response.
    edit = await admin.patch(
        f"/v1/plans/{desk.plan['id']}",
        json={
            "pause_on": ["waiting_on_customer", "waiting_on_vendor"],
            "targets": [target("first_response", 60), target("resolution", 6000)],
        },
    )
    assert edit.status_code == 200, edit.text
    t = (await admin.get(f"/v1/tickets/{t['id']}")).json()
    assert _metrics(t)["resolution"]["state"] == "paused"
    assert _metrics(t)["first_response"]["state"] == "paused"  # starts paused: it waits
    # The plan drops the resolution promise: withdrawn, history kept.
    edit = await admin.patch(
        f"/v1/plans/{desk.plan['id']}", json={"targets": [target("first_response", 60)]}
    )
    assert edit.status_code == 200
    res = _metrics((await admin.get(f"/v1/tickets/{t['id']}")).json())["resolution"]
    assert res["state"] == "best_effort" and res["elapsed_seconds"] >= 2 * 3600 - 5


async def test_a_plan_moving_to_another_calendar_retimes_open_tickets(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(
        admin,
        timezone="UTC",
        calendar_fields={"weekly_hours": "24x7"},
        targets=[target("resolution", 600)],
    )
    now = datetime.now(UTC).replace(microsecond=0)
    t = await open_ticket(admin, desk, received_at=(now - timedelta(hours=1)).isoformat())
    closed_hours = await admin.post(
        "/v1/calendars",
        json={
            "name": "Mondays only",
            "timezone": "UTC",
            "weekly_hours": {"mon": ["00:00-24:00"]},
        },
    )
    edit = await admin.patch(
        f"/v1/plans/{desk.plan['id']}", json={"calendar_id": closed_hours.json()["id"]}
    )
    assert edit.status_code == 200, edit.text
    res = _metrics((await admin.get(f"/v1/tickets/{t['id']}")).json())["resolution"]
    due = datetime.fromisoformat(res["due_at"])
    # An hour counted on the old 24x7 calendar; the other nine fall on a Monday.
    assert 3600 <= res["elapsed_seconds"] <= 3600 + 60
    assert due.weekday() == 0 and due > now


async def test_callback_clocks_only_for_voicemail_in_preview_and_intake(
    admin: httpx.AsyncClient,
) -> None:
    desk = await make_desk(
        admin,
        **UTC_DESK,
        channels=["email", "voicemail"],
        targets=[target("first_response", 60), target("callback", 120)],
    )
    email = await open_ticket(admin, desk, channel="email")
    voicemail = await open_ticket(admin, desk, channel="voicemail")
    assert "callback" not in _metrics(email) and "callback" in _metrics(voicemail)
    for channel, expected in (("email", False), ("voicemail", True)):
        preview = await admin.post(
            "/v1/sla/preview",
            json={
                "organization_id": desk.org["id"],
                "severity": "high",
                "category": "technical",
                "channel": channel,
                "received_at": "2026-03-02T10:00:00Z",
            },
        )
        metrics = {t["metric"] for t in preview.json()["targets"]}
        assert ("callback" in metrics) is expected, (channel, metrics)


async def test_customers_never_see_override_reasons_or_staff_ids(
    app: Any, admin: httpx.AsyncClient, db: Any
) -> None:
    desk = await make_desk(admin, **UTC_DESK, channels=["email"])
    body = {
        "organization_id": desk.org["id"],
        "contact_id": desk.contact["id"],
        "channel": "phone",
        "severity": "high",
        "category": "technical",
        "subject": "call",
        "override_reason": "the CEO is a friend of ours",
    }
    created = await admin.post("/v1/tickets", json=body)
    assert (
        created.status_code == 201 and created.json()["override_reason"] == body["override_reason"]
    )
    tid = created.json()["id"]
    entitled = await admin.post("/v1/tickets", json={**body, "channel": "email"})
    assert entitled.status_code == 422  # an override applies only to a refused request
    assert entitled.json()["errors"][0]["field"] == "body.override_reason"
    key = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"])
    async with client_for(app, key) as customer:
        seen = await customer.get(f"/v1/tickets/{tid}")
        timeline = await customer.get(f"/v1/tickets/{tid}/timeline")
        refused = await customer.post(f"/v1/tickets/{tid}/actions/confirm")
    assert "CEO" not in seen.text and "CEO" not in timeline.text
    assert seen.json()["override_reason"] is None
    actor = timeline.json()["items"][0]["actor"]
    assert actor == {"role": "admin"}
    assert refused.status_code == 409 and refused.json()["allowed_actions"] == ["customer_reply"]
    async with db.begin() as conn:
        payloads = (
            (await conn.execute(text("SELECT data::text FROM outbox_events"))).scalars().all()
        )
    assert payloads and all("CEO" not in p for p in payloads)


async def test_every_change_writes_an_outbox_event(admin: httpx.AsyncClient, db: Any) -> None:
    desk = await make_desk(admin, **UTC_DESK, targets=[target("resolution", 600)])
    agent = (await admin.post("/v1/agents", json={"name": "A", "email": "o@v.example"})).json()
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    steps: list[tuple[str, dict[str, Any]]] = [
        ("assign", {"agent_id": agent["id"]}),
        ("reply", {"body": "hi"}),
        ("note", {"body": "internal"}),
        ("escalate", {"to_tier": 2}),
        ("resolve", {"resolution": "fix", "body": "done"}),
        ("reopen", {"body": "again"}),
        ("close", {"reason": "duplicate"}),
    ]
    for minute, (action, body) in enumerate(steps, start=1):
        await act(admin, t["id"], action, occurred_at=f"2026-03-02T10:{minute:02d}:00Z", **body)
    async with db.begin() as conn:
        rows = (
            await conn.execute(
                text("SELECT type, ticket_id::text, occurred_at FROM outbox_events ORDER BY seq")
            )
        ).all()
    types = [r[0] for r in rows]
    assert types == [
        "ticket.created",
        "ticket.acknowledged",
        "ticket.status_changed",
        "ticket.replied",
        "ticket.status_changed",
        "ticket.escalated",
        "ticket.resolved",
        "ticket.status_changed",
        "ticket.reopened",
        "ticket.status_changed",
        "ticket.closed",
        "ticket.status_changed",
    ]
    assert all(r[1] == t["id"] for r in rows)  # per-ticket order for webhooks
    assert "ticket.noted" not in types  # internal notes are not published


async def test_filters_by_tier_and_organization(admin: httpx.AsyncClient) -> None:
    a = await make_desk(admin, **UTC_DESK)
    b = await make_desk(admin, **UTC_DESK)
    ta, tb = await open_ticket(admin, a), await open_ticket(admin, b)
    await act(admin, tb["id"], "escalate", to_tier=3)
    org = await admin.get("/v1/tickets", params={"organization_id": a.org["id"]})
    assert [t["id"] for t in org.json()["items"]] == [ta["id"]]
    tier = await admin.get("/v1/tickets", params={"tier": 3})
    assert [t["id"] for t in tier.json()["items"]] == [tb["id"]]


async def test_breached_includes_clocks_stopped_late(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK, targets=[target("first_response", 60)])
    late = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    on_time = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    await act(admin, late["id"], "reply", body="sorry", occurred_at="2026-03-02T11:00:00Z")
    await act(admin, on_time["id"], "reply", body="hi", occurred_at="2026-03-02T09:30:00Z")
    breached = await admin.get("/v1/tickets", params={"breached": "true"})
    assert [t["id"] for t in breached.json()["items"]] == [late["id"]]


async def test_default_occurred_at_follows_the_latest_event(
    admin: httpx.AsyncClient, db: Any
) -> None:
    """An action whose request time is behind the ticket's latest event (it waited for the
    lock while another action was recorded) happens after that event, not a 422."""
    desk = await make_desk(admin, **UTC_DESK)
    t = await open_ticket(admin, desk)
    latest = datetime.fromisoformat(
        (await admin.get(f"/v1/tickets/{t['id']}/timeline")).json()["items"][-1]["occurred_at"]
    )
    principal = Principal(key_id=__import__("uuid").uuid4(), role=Role.ADMIN)
    async with make_sessionmaker(db)() as session, session.begin():
        ticket = await ticket_actions.perform(
            session,
            principal,
            t["id"],
            ticket_actions.Action.NOTE,
            MessageBody(body="late"),
            if_match=None,
            now=latest - timedelta(seconds=5),
        )
        assert ticket.last_event_at == latest


async def test_vendor_fields_belong_to_tier_4(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    t = await open_ticket(admin, desk)
    refused = await admin.post(
        f"/v1/tickets/{t['id']}/actions/escalate", json={"to_tier": 2, "vendor": "Microsoft"}
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "body.vendor"


async def test_same_idempotency_key_different_bodies_at_once(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK)
    base = {
        "organization_id": desk.org["id"],
        "contact_id": desk.contact["id"],
        "channel": "email",
        "severity": "high",
        "category": "technical",
    }
    responses = await asyncio.gather(
        *(
            admin.post(
                "/v1/tickets", json={**base, "subject": f"s{i}"}, headers={"Idempotency-Key": "k"}
            )
            for i in range(4)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409]
    assert len((await admin.get("/v1/tickets")).json()["items"]) == 1


async def test_inputs_that_must_not_reach_a_500(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, **UTC_DESK, targets=[target("resolution", 600)])
    t = await open_ticket(admin, desk)
    forged = [[1, 2], [{"t": "2026-01-01T00:00:00+00:00"}, "x"], [{"t": "2026-01-01T00:00:00"}, 3]]
    for values in forged:
        cursor = base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")
        response = await admin.get("/v1/tickets", params={"cursor": cursor})
        assert response.status_code == 422, values
    nul = await admin.post(f"/v1/tickets/{t['id']}/actions/note", json={"body": "a\u0000b"})
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "body.body"
    subject = await admin.post(
        "/v1/tickets",
        json={
            "organization_id": desk.org["id"],
            "contact_id": desk.contact["id"],
            "channel": "email",
            "severity": "high",
            "category": "technical",
            "subject": "x\u0000",
        },
    )
    assert subject.status_code == 422
    # History keeps its references: a contract with tickets is ended, not deleted.
    contract = await admin.delete(f"/v1/contracts/{desk.contract['id']}")
    assert contract.status_code == 409
    calendar = await admin.delete(f"/v1/calendars/{desk.calendar['id']}")
    assert calendar.status_code == 409  # a plan still uses it
    confirm_without_body = await admin.post(f"/v1/tickets/{t['id']}/actions/confirm")
    assert confirm_without_body.status_code == 409  # parsed fine; not allowed while new
