"""Who did what: every timeline entry, work log entry and webhook payload names the
person — the agent a staff key is bound to, the key by name when it is bound to none,
the contact who wrote a customer's message, or the system — and `GET /v1/me` says who a
key is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.security import Role
from app.workers.escalation import TimerLoop
from tests.conftest import client_for, make_key
from tests.factories import create_agent, create_contact
from tests.plan_factories import target
from tests.ticket_factories import act, make_desk, open_ticket
from tests.webhook_harness import rows


async def _timeline(api: httpx.AsyncClient, ticket_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/tickets/{ticket_id}/timeline", params={"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _worklogs(api: httpx.AsyncClient, ticket_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/tickets/{ticket_id}/worklogs")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def _key_fields_set(actor: dict[str, Any]) -> None:
    assert actor["role"] in ("admin", "agent", "customer"), actor
    assert uuid.UUID(actor["api_key_id"]) and actor["api_key_name"], actor


async def test_every_entry_work_log_and_webhook_names_the_person(
    admin: httpx.AsyncClient, app: Any, db: AsyncEngine
) -> None:
    desk = await make_desk(
        admin,
        billing={"after_hours": {"allowed": True}},
        targets=[
            target("first_response", 60),
            target("resolution", 1, clock="24x7", warn_at_percent=[50]),
        ],
    )
    ana = await create_agent(admin, name="Ana")
    created = await admin.post(
        "/v1/api-keys", json={"name": "console: Ana", "role": "agent", "agent_id": ana["id"]}
    )
    assert created.status_code == 201, created.text
    colleague = await create_contact(admin, desk.org["id"], name="Luis")
    customer_key = await make_key(
        db, Role.CUSTOMER, organization_id=desk.org["id"], contact_id=desk.contact["id"]
    )
    admin_me = (await admin.get("/v1/me")).json()

    async with (
        client_for(app, created.json()["key"]) as agent,
        client_for(app, customer_key) as customer,
    ):
        # Who the keys are.
        me = (await agent.get("/v1/me")).json()
        assert me["role"] == "agent" and me["agent"]["id"] == ana["id"] and "key" not in me
        assert (
            me["actor"]["agent_id"] == ana["id"] and me["actor"]["api_key_name"] == "console: Ana"
        )
        mine = (await customer.get("/v1/me")).json()
        assert mine["organization"]["id"] == desk.org["id"]
        assert mine["contact"]["id"] == desk.contact["id"] and mine["agent"] is None
        assert admin_me["agent"] is None and admin_me["actor"]["agent_id"] is None

        # A full life: the customer raises it, Ana works it, Ana logs what Luis (another
        # contact) said on the phone, the admin key (bound to nobody) escalates, the timer
        # fires a warning.
        ticket = await _raise(customer, desk)
        tid = ticket["id"]
        await act(agent, tid, "assign", agent_id=ana["id"])
        await act(agent, tid, "reply", body="Looking into it.")
        await act(agent, tid, "request_info", body="Which version?")
        await act(agent, tid, "note", body="Probably the proxy.")
        await act(
            agent, tid, "customer_reply", body="Luis called: 4.2.", contact_id=colleague["id"]
        )
        await act(admin, tid, "escalate", to_tier=2)
        await TimerLoop(db).fire_thresholds(datetime.now(UTC) + timedelta(minutes=5))

        timeline = await _timeline(admin, tid)
        by_kind = {e["kind"]: e["actor"] for e in timeline}
        for entry in timeline:
            if entry["actor"]["role"] == "system":
                assert entry["kind"] in ("sla_warning", "sla_breached"), entry
                assert entry["actor"] == {"role": "system"}
            else:
                _key_fields_set(entry["actor"])
        assert by_kind["created"]["role"] == "customer"
        assert by_kind["created"]["contact_id"] == desk.contact["id"]
        for kind in ("acknowledged", "replied", "info_requested", "noted"):
            assert by_kind[kind]["agent_id"] == ana["id"], kind
            assert by_kind[kind]["api_key_name"] == "console: Ana", kind
            assert by_kind[kind]["contact_id"] is None, kind
        # Ana logged Luis's words: both persons are named.
        logged = by_kind["customer_replied"]
        assert logged["role"] == "agent" and logged["agent_id"] == ana["id"]
        assert logged["contact_id"] == colleague["id"]
        # A key bound to no agent is recorded as the key, by its name.
        escalated = by_kind["escalated"]
        assert escalated["agent_id"] is None and escalated["role"] == "admin"
        assert escalated["api_key_name"] == admin_me["name"]
        assert escalated["api_key_id"] == admin_me["id"]

        # Work logs: the automatic follow-ups of Ana's reply and request are hers.
        logs = await _worklogs(admin, tid)
        assert [w["source"] for w in logs] == ["auto", "auto"]
        for entry in logs:
            assert entry["agent_id"] == ana["id"] and entry["actor"]["agent_id"] == ana["id"]
            _key_fields_set(entry["actor"])
        manual = await admin.post(
            f"/v1/tickets/{tid}/worklogs",
            json={"kind": "follow_up", "agent_id": ana["id"], "note": "remote session"},
        )
        assert manual.status_code == 201, manual.text
        # Ana did the work; the admin key recorded it.
        assert manual.json()["agent_id"] == ana["id"]
        assert manual.json()["actor"]["api_key_id"] == admin_me["id"]
        # Customers see roles (and their own contacts), never staff keys or agents.
        for entry in await _worklogs(customer, tid):
            assert entry["agent_id"] is None and set(entry["actor"]) <= {"role", "contact_id"}
        for entry in await _timeline(customer, tid):
            assert set(entry["actor"]) <= {"role", "contact_id"}

        # Every webhook payload says who caused it.
        outbox = await rows(
            db,
            "SELECT type, data FROM outbox_events WHERE ticket_id = :t ORDER BY seq",
            t=uuid.UUID(tid),
        )
        assert {r.type for r in outbox} >= {"ticket.status_changed", "sla.warning"}
        for event in outbox:
            actor = (event.data.get("event") or {}).get("actor") or event.data.get("actor")
            assert actor is not None, event.type
            if event.type.startswith("sla."):
                assert actor == {"role": "system"}
            else:
                _key_fields_set(actor)
        changes = [r.data["event"] for r in outbox if r.type == "ticket.status_changed"]
        assert [(c["action"], c["actor"]["agent_id"]) for c in changes][:2] == [
            ("assign", ana["id"]),
            ("reply", ana["id"]),
        ]


async def _raise(customer: httpx.AsyncClient, desk: Any) -> dict[str, Any]:
    response = await customer.post(
        "/v1/tickets",
        json={
            "organization_id": desk.org["id"],
            "channel": "email",
            "severity": "high",
            "category": "technical",
            "subject": "The export fails",
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_binding_a_key_to_an_agent_and_naming_a_message_author(
    admin: httpx.AsyncClient, app: Any, db: AsyncEngine
) -> None:
    desk = await make_desk(admin)
    bea = await create_agent(admin, name="Bea")
    key = (await admin.post("/v1/api-keys", json={"name": "shared desk", "role": "agent"})).json()
    async with client_for(app, key["key"]) as desk_key:
        ticket = await open_ticket(desk_key, desk)
        await act(desk_key, ticket["id"], "reply", body="Unbound.")
        bound = await admin.patch(f"/v1/api-keys/{key['id']}", json={"agent_id": bea["id"]})
        assert bound.status_code == 200 and bound.json()["agent_id"] == bea["id"]
        await act(desk_key, ticket["id"], "reply", body="Bound now.")
        unbound = await admin.patch(f"/v1/api-keys/{key['id']}", json={"agent_id": None})
        assert unbound.status_code == 200 and unbound.json()["agent_id"] is None
        renamed = await admin.patch(f"/v1/api-keys/{key['id']}", json={"name": "front desk"})
        assert renamed.json()["name"] == "front desk" and renamed.json()["agent_id"] is None
        await act(desk_key, ticket["id"], "note", body="Renamed.")

        # A message's author must be a contact of the ticket's organization.
        other = await make_desk(admin)
        stranger = await create_contact(admin, other.org["id"])
        await act(desk_key, ticket["id"], "request_info", body="?")
        refused = await desk_key.post(
            f"/v1/tickets/{ticket['id']}/actions/customer_reply",
            json={"body": "x", "contact_id": stranger["id"]},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "body.contact_id"
        # Without one, the message is the requester's.
        await act(desk_key, ticket["id"], "customer_reply", body="From the requester.")

    actors = [(e["kind"], e["actor"]) for e in await _timeline(admin, ticket["id"])]
    replies = [a for k, a in actors if k == "replied"]
    assert [r["agent_id"] for r in replies] == [None, bea["id"]]
    assert all(r["api_key_name"] == "shared desk" for r in replies)
    assert next(a for k, a in actors if k == "noted")["api_key_name"] == "front desk"
    author = next(a for k, a in actors if k == "customer_replied")["contact_id"]
    assert author == desk.contact["id"]

    # Binding is for staff keys, to agents that exist.
    customer = await admin.post(
        "/v1/api-keys", json={"name": "c", "role": "customer", "organization_id": desk.org["id"]}
    )
    wrong = await admin.patch(f"/v1/api-keys/{customer.json()['id']}", json={"agent_id": bea["id"]})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "body.agent_id"
    missing = await admin.patch(f"/v1/api-keys/{key['id']}", json={"agent_id": str(uuid.uuid4())})
    assert missing.status_code == 422
    assert (
        await admin.patch(f"/v1/api-keys/{uuid.uuid4()}", json={"name": "x"})
    ).status_code == 404

    # A customer key bound to a contact writes as that contact only.
    own = await make_key(
        db, Role.CUSTOMER, organization_id=desk.org["id"], contact_id=desk.contact["id"]
    )
    colleague = await create_contact(admin, desk.org["id"])
    async with client_for(app, own) as customer_client:
        await act(admin, ticket["id"], "request_info", body="More?")
        wrong_author = await customer_client.post(
            f"/v1/tickets/{ticket['id']}/actions/customer_reply",
            json={"body": "x", "contact_id": colleague["id"]},
        )
        assert wrong_author.status_code == 422
