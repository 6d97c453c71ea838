"""Every event type the code writes is in the catalogue subscribers choose from."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events import CATALOGUE
from app.services import outbox
from app.services.ticket_actions import _KIND
from app.workers.escalation import TimerLoop
from tests.factories import create_agent
from tests.plan_factories import target
from tests.ticket_factories import act, make_desk, open_ticket
from tests.webhook_harness import rows

APP = Path(__file__).resolve().parent.parent / "app"
# Event names as the code writes them: outbox_type="…", or a quoted "x.y" passed to emit.
_LITERAL = re.compile(r'(?:outbox_type=|emit\([^)]*?)"([a-z_]+\.[a-z_]+)"', re.S)


def test_every_emitted_type_is_catalogued() -> None:
    found = set()
    for path in APP.rglob("*.py"):
        found |= set(_LITERAL.findall(path.read_text()))
    found |= {t for _, t in _KIND.values() if t is not None}
    assert {"ticket.created", "ticket.closed", "ticket.auto_close_cancelled"} <= found
    assert sorted(found - set(CATALOGUE)) == []


async def test_outbox_refuses_an_uncatalogued_type() -> None:
    with pytest.raises(ValueError, match=r"not in app\.events\.CATALOGUE"):
        await outbox.emit(None, "ticket.exploded", occurred_at=None, data={})  # type: ignore[arg-type]


# ------------------------------------------------------- the examples are real shapes


async def test_catalogue_examples_have_the_fields_of_real_payloads(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    """Drive tickets through every kind of change, then compare each catalogue example
    with the payloads really written: same fields in the payload, the ticket and the SLA
    entries, and one real event of the type with exactly the example's event fields."""
    desk = await make_desk(
        admin,
        channels=["email", "voicemail"],
        # After hours allowed: the follow-ups below are billed whatever the hour now.
        billing={"after_hours": {"allowed": True}},
        auto_close={"contact_attempts": 3, "notice_business_days": 5},
        targets=[
            target("first_response", 60, clock="24x7", warn_at_percent=[50],
                   on_breach={"escalate_to_tier": 2}),
            target("resolution", 6000),
            target("callback", 120, channels=["voicemail"]),
        ],
    )  # fmt: skip
    agent_id = (await create_agent(admin))["id"]
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    t = (await open_ticket(admin, desk, received_at=received.isoformat()))["id"]
    await TimerLoop(db).fire_thresholds(datetime.now(UTC))
    assert (await admin.patch(f"/v1/tickets/{t}", json={"subject": "VPN drops"})).status_code == 200
    # An estimate of 20 minutes: the second follow-up (15 + 15) needs authorization.
    assert (await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": 20})).status_code == 200
    steps: list[tuple[str, dict[str, Any]]] = [
        ("assign", {"agent_id": agent_id}),
        ("reply", {"body": "Looking."}),
        ("request_info", {"body": "Logs?"}),
        ("contact_attempt", {"channel": "phone", "body": "No answer."}),
        ("contact_attempt", {"channel": "email", "body": "Reminder."}),
        ("customer_reply", {"body": "Attached."}),
        ("change", {"severity": "critical"}),
        ("escalate", {"to_tier": 3, "reason": "Needs development"}),
        ("resolve", {"resolution": "fix", "body": "Patched."}),
        ("reopen", {"body": "Back again."}),
        ("close", {"reason": "duplicate"}),
    ]
    for action, body in steps:
        await act(admin, t, action, **body)
        if action == "request_info":
            await _decide(admin, t, "approve", estimate_minutes=600)
    voicemail = (await open_ticket(admin, desk, channel="voicemail"))["id"]
    await act(admin, voicemail, "callback")
    await act(admin, voicemail, "resolve", resolution="workaround", body="Restart it.")
    await act(admin, voicemail, "confirm")
    await admin.put(f"/v1/tickets/{voicemail}/estimate", json={"minutes": 0})
    logged = await admin.post(f"/v1/tickets/{voicemail}/worklogs", json={"kind": "follow_up"})
    assert logged.status_code == 201, logged.text
    await _decide(admin, voicemail, "decline")
    # A warning fired, then the reply that came before it is logged: the warning is retracted.
    late = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40)
    answered = (await open_ticket(admin, desk, received_at=late.isoformat()))["id"]
    await TimerLoop(db).fire_thresholds(datetime.now(UTC))
    await act(admin, answered, "reply", body="Called you.",
              occurred_at=(late + timedelta(minutes=10)).isoformat())  # fmt: skip
    weekly = {d: ["08:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
    await open_ticket(admin, desk)  # open while the calendar changes: re-timed
    response = await admin.patch(
        f"/v1/calendars/{desk.calendar['id']}", json={"weekly_hours": weekly}
    )
    assert response.status_code == 200, response.text

    written = await rows(db, "SELECT type, data FROM outbox_events ORDER BY seq")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for row in written:
        by_type.setdefault(row.type, []).append(row.data)
    ticket_types = {name for name, kind in CATALOGUE.items() if kind.ticket}
    assert sorted(ticket_types - set(by_type)) == []
    for name, payloads in by_type.items():
        example = CATALOGUE[name].example
        for data in payloads:
            assert set(data) == set(example), name
            assert set(data["ticket"]) == set(example["ticket"]), name
            for entry in data["sla"]:
                assert set(entry) == set(example["sla"][0]), name
        if "event" in example:
            shapes = [set(d["event"]) for d in payloads]
            assert set(example["event"]) in shapes, (name, shapes)
        if "threshold" in example:
            assert set(payloads[0]["threshold"]) == set(example["threshold"]), name
        if "authorization" in example:
            assert set(payloads[0]["authorization"]) == set(example["authorization"]), name


async def _decide(admin: httpx.AsyncClient, ticket_id: str, decision: str, **body: Any) -> None:
    estimate = (await admin.get(f"/v1/tickets/{ticket_id}/estimate")).json()
    pending = estimate["pending_authorization"]
    assert pending is not None, estimate
    url = f"/v1/tickets/{ticket_id}/authorizations/{pending['id']}/{decision}"
    response = await admin.post(url, json={"note": "The customer's e-mail", **body})
    assert response.status_code == 200, response.text
