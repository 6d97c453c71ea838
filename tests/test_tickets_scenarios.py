"""Tickets replayed with received_at/occurred_at, every clock checked against times
computed by hand from the seeds (weeks of history in milliseconds)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.plan_factories import target
from tests.ticket_factories import act, clock, make_desk, open_ticket

# Seed 004: Mexico City (UTC-6 all year), Mon-Fri 08:30-18:00, Mexican holidays;
# attention by criticality, resolution by incident type; auto-close after 3 attempts
# with 5 business days' notice.
SEED_004 = {
    "channels": ["email", "phone"],
    "pause_on": ["waiting_on_customer"],
    "auto_close": {"contact_attempts": 3, "notice_business_days": 5},
    "targets": [
        target("first_response", 30, severities=["critical"]),
        target("first_response", 240, severities=["high"], warn_at_percent=[50]),
        target("first_response", 480, severities=["medium"]),
        target("first_response", 1440, severities=["low"]),
        target("resolution", 360, categories=["technical"], warn_at_percent=[75]),
        target("resolution", 240, categories=["technical_urgent"]),
        target("resolution", 2160, categories=["maintenance"]),
    ],
}


async def test_seed_004_a_ticket_life(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, calendar_fields={"holidays": {"country": "MX"}}, **SEED_004)
    agent = (await admin.post("/v1/agents", json={"name": "L1", "email": "l1@v.example"})).json()
    # Monday 2026-03-02 17:00 CST (23:00Z): one business hour left that day.
    t = await open_ticket(admin, desk, received_at="2026-03-02T17:00:00-06:00")
    assert t["number"].startswith("SD-") and t["status"] == "new" and t["after_hours"] is False
    assert t["plan"]["code"] == desk.plan["code"]
    # first response (high) 240 min: Mon 17:00-18:00 (60) + Tue 08:30-11:30 (180).
    assert clock(t, "first_response")["due_at"] == "2026-03-03T17:30:00Z"
    # resolution (technical) 360 min: 60 Monday + 300 Tuesday -> Tue 13:30 CST.
    assert clock(t, "resolution")["due_at"] == "2026-03-03T19:30:00Z"
    assert [c["metric"] for c in t["sla"]] == ["first_response", "resolution"]  # no callback

    tid = t["id"]
    t = await act(
        admin, tid, "assign", agent_id=agent["id"], occurred_at="2026-03-03T09:00:00-06:00"
    )
    assert t["status"] == "open" and t["assignee_id"] == agent["id"]
    t = await act(
        admin, tid, "reply", body="Looking into it.", occurred_at="2026-03-03T10:00:00-06:00"
    )
    fr = clock(t, "first_response")
    assert fr["state"] == "met" and fr["stopped_at"] == "2026-03-03T16:00:00Z"
    # A finished clock keeps the due instant in force when it stopped, and its margin.
    assert fr["elapsed_seconds"] == (60 + 90) * 60 and fr["due_at"] == "2026-03-03T17:30:00Z"
    assert fr["met_by_seconds"] == 90 * 60
    assert t["status"] == "in_progress"

    t = await act(
        admin, tid, "request_info", body="Which version?", occurred_at="2026-03-03T11:00:00-06:00"
    )
    res = clock(t, "resolution")
    assert t["status"] == "waiting_on_customer" and t["contact_attempts"] == 1
    assert res["state"] == "paused" and res["due_at"] is None
    assert res["elapsed_seconds"] == (60 + 150) * 60  # Mon 60 + Tue 08:30-11:00

    t = await act(
        admin,
        tid,
        "contact_attempt",
        channel="phone",
        body="No answer.",
        occurred_at="2026-03-04T10:00:00-06:00",
    )
    assert t["contact_attempts"] == 2 and t["auto_close_at"] is None
    t = await act(
        admin,
        tid,
        "contact_attempt",
        channel="email",
        body="Reminder.",
        occurred_at="2026-03-05T10:00:00-06:00",
    )
    # Third attempt: auto-close five business days later, Thu 2026-03-12 10:00 CST.
    assert t["contact_attempts"] == 3 and t["auto_close_at"] == "2026-03-12T16:00:00Z"
    assert clock(t, "resolution")["elapsed_seconds"] == (60 + 150) * 60  # paused clocks don't move

    t = await act(
        admin, tid, "customer_reply", body="Version 4.2.", occurred_at="2026-03-06T09:00:00-06:00"
    )
    res = clock(t, "resolution")
    assert (
        t["status"] == "in_progress" and t["contact_attempts"] == 0 and t["auto_close_at"] is None
    )
    # 150 minutes remain from Friday 09:00 -> 11:30 CST.
    assert res["state"] in ("running", "breached") and res["due_at"] == "2026-03-06T17:30:00Z"

    t = await act(
        admin,
        tid,
        "resolve",
        resolution="workaround",
        body="Use the CSV export.",
        occurred_at="2026-03-06T11:00:00-06:00",
    )
    res = clock(t, "resolution")
    assert t["status"] == "resolved" and res["state"] == "met"
    assert res["elapsed_seconds"] == (60 + 150 + 120) * 60
    t = await act(admin, tid, "confirm", occurred_at="2026-03-06T12:00:00-06:00")
    assert t["status"] == "closed" and t["close_reason"] == "confirmed"
    refused = await admin.post(f"/v1/tickets/{tid}/actions/reopen", json={"body": "again"})
    assert refused.status_code == 409
    assert refused.json()["ticket_status"] == "closed"
    assert refused.json()["allowed_actions"] == ["note"]

    timeline = (await admin.get(f"/v1/tickets/{tid}/timeline")).json()["items"]
    kinds = [e["kind"] for e in timeline]
    assert kinds == [
        "created", "acknowledged", "replied", "info_requested", "contact_attempted",
        "contact_attempted", "auto_close_scheduled", "customer_replied", "auto_close_cancelled",
        "resolved", "confirmed",
    ]  # fmt: skip
    acknowledged = timeline[1]
    assert acknowledged["data"]["due"] == {
        "first_response": "2026-03-03T17:30:00Z".replace("Z", "+00:00"),
        "resolution": "2026-03-03T19:30:00Z".replace("Z", "+00:00"),
    }
    assert acknowledged["occurred_at"] == "2026-03-03T15:00:00Z"
    assert all(e["recorded_at"] > e["occurred_at"] for e in timeline)


async def test_seed_002_critical_around_the_clock_and_breach_at_due(
    admin: httpx.AsyncClient,
) -> None:
    """Seed 002: tier 3 (critical) is answered within 1 h and fixed within 8 h around the
    clock; other tiers count Vancouver business hours (Mon-Fri 00:00-18:00, BC holidays)."""
    desk = await make_desk(
        admin,
        timezone="America/Vancouver",
        hours="00:00-18:00",
        calendar_fields={"holidays": {"country": "CA", "subdivision": "BC"}},
        channels=["email", "web", "phone"],
        targets=[
            target("first_response", 60, severities=["critical"], clock="24x7",
                   on_breach={"escalate_to_tier": 2}),
            target("resolution", 480, severities=["critical"], clock="24x7"),
            target("first_response", 120, severities=["high"]),
            target("first_response", 480),
        ],
    )  # fmt: skip
    # Saturday 2026-03-07 10:00 PST (18:00Z): outside business hours, but 24x7 counts.
    t = await open_ticket(admin, desk, severity="critical", received_at="2026-03-07T10:00:00-08:00")
    assert t["after_hours"] is True
    assert clock(t, "first_response")["due_at"] == "2026-03-07T19:00:00Z"
    assert clock(t, "resolution")["due_at"] == "2026-03-08T02:00:00Z"
    # The reply comes 30 minutes late: breached, and breached at the due instant.
    t = await act(admin, t["id"], "reply", body="On it", occurred_at="2026-03-07T11:30:00-08:00")
    fr = clock(t, "first_response")
    assert fr["state"] == "breached" and fr["breached_at"] == "2026-03-07T19:00:00Z"
    assert fr["overdue_seconds"] == 30 * 60

    # Tier 1 (low), Friday 17:00 PST: 8 business hours -> Monday 07:00 PDT (DST began Sunday).
    low = await open_ticket(admin, desk, severity="low", received_at="2026-03-06T17:00:00-08:00")
    assert clock(low, "first_response")["due_at"] == "2026-03-09T14:00:00Z"
    assert [c["metric"] for c in low["sla"]] == ["first_response"]


async def test_best_effort_and_voicemail_callback(admin: httpx.AsyncClient) -> None:
    """Seed 001: "no effect on productivity: best effort"; seed 000: the call-back time of
    an answering-machine call depends on the plan."""
    desk = await make_desk(
        admin,
        timezone="Etc/GMT-1",
        hours="09:00-18:00",
        channels=["email", "voicemail", "phone"],
        targets=[
            target("first_response", None, severities=["low"]),
            target("first_response", 1440),
            target("callback", 120),
        ],
    )
    low = await open_ticket(admin, desk, severity="low", received_at="2026-03-02T10:00:00+01:00")
    fr = clock(low, "first_response")
    assert fr["state"] == "best_effort" and fr["due_at"] is None and fr["minutes"] is None
    call = await open_ticket(
        admin, desk, channel="voicemail", received_at="2026-03-02T17:30:00+01:00"
    )
    # 2 business hours from Monday 17:30: 30 min Monday + 90 min Tuesday -> 10:30.
    assert clock(call, "callback")["due_at"] == "2026-03-03T09:30:00Z"
    t = await act(admin, call["id"], "callback", occurred_at="2026-03-03T09:15:00+01:00")
    assert clock(t, "callback")["state"] == "met"
    assert clock(t, "first_response")["state"] == "met"  # reaching the customer is a response


async def test_change_keeps_elapsed_and_recomputes_due(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, timezone="UTC", hours="09:00-17:00", targets=[
        target("first_response", 480, severities=["low"]),
        target("first_response", 120, severities=["high"]),
    ])  # fmt: skip
    t = await open_ticket(admin, desk, severity="low", received_at="2026-03-02T09:00:00Z")
    assert clock(t, "first_response")["due_at"] == "2026-03-02T17:00:00Z"
    t = await act(
        admin,
        t["id"],
        "change",
        severity="high",
        reason="production down",
        occurred_at="2026-03-02T10:30:00Z",
    )
    fr = clock(t, "first_response")
    # 90 minutes already counted; 30 remain under the 120-minute target.
    assert fr["minutes"] == 120 and fr["due_at"] == "2026-03-02T11:00:00Z"
    assert fr["elapsed_seconds"] >= 90 * 60
    assert t["severity"] == "high"
    same = await admin.post(f"/v1/tickets/{t['id']}/actions/change", json={"severity": "high"})
    assert same.status_code == 422


async def test_escalation_tiers_and_vendor(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, timezone="UTC", hours="09:00-17:00", targets=[
        target("resolution", 600),
    ])  # fmt: skip
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    tid = t["id"]
    t = await act(admin, tid, "escalate", to_tier=2, occurred_at="2026-03-02T10:00:00Z")
    assert t["tier"] == 2 and t["status"] == "new"
    missing = await admin.post(f"/v1/tickets/{tid}/actions/escalate", json={"to_tier": 4})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "body.vendor"
    t = await act(admin, tid, "escalate", to_tier=4, vendor="Microsoft", vendor_case_ref="MS-1234",
                  occurred_at="2026-03-02T11:00:00Z")  # fmt: skip
    assert t["tier"] == 4 and t["status"] == "waiting_on_vendor" and t["vendor"] == "Microsoft"
    # waiting_on_vendor does not pause unless the plan says so (default pause_on).
    assert clock(t, "resolution")["running"] is True
    down = await admin.post(f"/v1/tickets/{tid}/actions/escalate", json={"to_tier": 1})
    assert down.status_code == 422 and down.json()["errors"][0]["field"] == "body.reason"
    t = await act(
        admin,
        tid,
        "escalate",
        to_tier=1,
        reason="vendor fixed it",
        occurred_at="2026-03-02T12:00:00Z",
    )
    assert t["tier"] == 1 and t["status"] == "in_progress"


async def test_waiting_on_vendor_pauses_when_the_plan_says_so(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(
        admin, timezone="UTC", hours="09:00-17:00",
        pause_on=["waiting_on_customer", "waiting_on_vendor"], targets=[target("resolution", 600)],
    )  # fmt: skip
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    t = await act(admin, t["id"], "escalate", to_tier=4, vendor="Microsoft", vendor_case_ref="X",
                  occurred_at="2026-03-02T10:00:00Z")  # fmt: skip
    res = clock(t, "resolution")
    assert res["state"] == "paused" and res["elapsed_seconds"] == 3600


async def test_reopen_continues_the_resolution_clock(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin, timezone="UTC", hours="09:00-17:00", targets=[
        target("resolution", 240),
    ])  # fmt: skip
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    t = await act(
        admin, t["id"], "resolve", resolution="fix", body="done", occurred_at="2026-03-02T10:00:00Z"
    )
    assert clock(t, "resolution")["state"] == "met"
    t = await act(admin, t["id"], "reopen", body="still broken", occurred_at="2026-03-03T09:00:00Z")
    res = clock(t, "resolution")
    assert t["status"] == "in_progress" and t["resolution"] is None
    # 60 minutes counted before; 180 remain from Tuesday 09:00.
    assert res["running"] is True and res["due_at"] == "2026-03-03T12:00:00Z"


async def test_closed_for_no_response_needs_a_follow_up_ticket(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(
        admin, timezone="UTC", hours="09:00-17:00", targets=[target("resolution", 240)]
    )
    t = await open_ticket(admin, desk, received_at="2026-03-02T09:00:00Z")
    await act(admin, t["id"], "close", reason="no_response", occurred_at="2026-03-09T09:00:00Z")
    refused = await admin.post(f"/v1/tickets/{t['id']}/actions/reopen", json={"body": "help"})
    problem = refused.json()
    assert refused.status_code == 409 and problem["follows_up_ticket_id"] == t["id"]
    assert "new ticket" in problem["detail"]
    follow = await open_ticket(admin, desk, follows_up_ticket_id=t["id"])
    assert follow["follows_up_ticket_id"] == t["id"] and follow["number"] != t["number"]


async def test_entitlement_refusal_and_override(
    admin: httpx.AsyncClient, agent: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin, channels=["email"], targets=[target("first_response", 60)])
    body: dict[str, Any] = {
        "organization_id": desk.org["id"], "contact_id": desk.contact["id"], "channel": "phone",
        "severity": "high", "category": "technical", "subject": "Call",
    }  # fmt: skip
    refused = await agent.post("/v1/tickets", json=body)
    problem = refused.json()
    assert refused.status_code == 422
    assert problem["type"].endswith("/entitlement-denied")
    assert problem["reasons"] == ["channel_not_in_plan"]
    accepted = await agent.post("/v1/tickets", json={**body, "override_reason": "CEO called"})
    ticket = accepted.json()
    assert accepted.status_code == 201 and ticket["entitled"] is False and ticket["sla"] == []
    assert ticket["override_reason"] == "CEO called"
    assert ticket["entitlement_reasons"] == ["channel_not_in_plan"]
