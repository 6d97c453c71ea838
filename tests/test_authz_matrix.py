"""Every endpoint, tried with no key, a revoked key, and a customer key of another
organization. New endpoints are picked up automatically from the app's routes; add the
ids of real resources of the *other* organization to ``_other_org_resources`` so that a
404 proves scoping rather than absence."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from app.security import Role
from tests.conftest import auth, make_key
from tests.factories import create_contact, create_org
from tests.mail_harness import message
from tests.plan_factories import create_calendar, create_contract, create_plan

# Path parameters naming something an organization owns: another organization's is a 404.
OWNED = ("organization_id", "contract_id", "ticket_id", "after_hours_request_id")

PUBLIC = {"/healthz", "/readyz", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}


def _routes(app: Any) -> list[tuple[str, str]]:
    """Every documented operation (the OpenAPI document is the list of what we serve)."""
    return [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path not in PUBLIC
        for method in operations
    ]


async def _other_org_resources(admin: httpx.AsyncClient) -> dict[str, str]:
    other = await create_org(admin)
    contact = await create_contact(admin, other["id"])
    calendar = await create_calendar(admin)
    # After hours allowed: the follow-up below is logged now, whatever the hour.
    plan = await create_plan(admin, calendar["id"], billing={"after_hours": {"allowed": True}})
    contract = await create_contract(admin, other["id"], plan["id"])
    ticket = await admin.post(
        "/v1/tickets",
        json={
            "organization_id": other["id"], "contact_id": contact["id"], "channel": "email",
            "severity": "high", "category": "technical", "subject": "theirs",
        },
    )  # fmt: skip
    assert ticket.status_code == 201, ticket.text
    ticket_id = ticket.json()["id"]
    # An estimate of 0 and a follow-up: the ticket has a pending authorization.
    estimate = await admin.put(f"/v1/tickets/{ticket_id}/estimate", json={"minutes": 0})
    assert estimate.status_code == 200, estimate.text
    logged = await admin.post(f"/v1/tickets/{ticket_id}/worklogs", json={"kind": "follow_up"})
    assert logged.status_code == 201, logged.text
    pending = (await admin.get(f"/v1/tickets/{ticket_id}/estimate")).json()
    requested = await admin.post(
        f"/v1/contracts/{contract['id']}/after-hours-requests",
        json={"contact_id": contact["id"], **_WINDOW},
    )
    assert requested.status_code == 201, requested.text
    # A reply by e-mail with a file, and the message we sent: the ticket's mail.
    reply = message(
        contact["email"],
        f"Re: [{ticket.json()['number']}] theirs",
        "Logs attached.",
        attachments=[("log.txt", "text/plain", b"secret log")],
    )
    delivered = await admin.post(
        "/v1/mail/inbound", content=reply, headers={"Content-Type": "message/rfc822"}
    )
    assert delivered.status_code == 201 and delivered.json()["status"] == "reply", delivered.text
    [received] = (await admin.get(f"/v1/tickets/{ticket_id}/messages")).json()["items"]
    return {
        "organization_id": other["id"],
        "contact_id": contact["id"],
        "calendar_id": calendar["id"],
        "plan_id": plan["id"],
        "contract_id": contract["id"],
        "ticket_id": ticket_id,
        "authorization_id": pending["pending_authorization"]["id"],
        "after_hours_request_id": requested.json()["id"],
        "mail_id": received["id"],
        "message_id": received["id"],
        "attachment_id": received["attachments"][0]["id"],
    }


# Valid bodies, so that a refusal comes from scoping and not from body validation.
_ACTION_BODIES: dict[str, dict[str, Any]] = {
    "assign": {"agent_id": str(uuid.uuid4())},
    "contact_attempt": {"channel": "email", "body": "x"},
    "escalate": {"to_tier": 2},
    "change": {"severity": "low"},
    "callback": {},
    "resolve": {"resolution": "fix", "body": "x"},
    "confirm": {},
    "close": {"reason": "other"},
}


_WINDOW = {"starts_at": "2100-01-01T00:00:00Z", "ends_at": "2100-01-02T00:00:00Z"}


def _valid_body(path: str) -> dict[str, Any]:
    if path.endswith("/accept"):
        return {"override_reason": "x"}
    if path.endswith("/approve"):
        return {"estimate_minutes": 600}
    if path.endswith("/after-hours-requests"):
        return dict(_WINDOW)
    if "/actions/" in path:
        return _ACTION_BODIES.get(path.rsplit("/", 1)[1], {"body": "x"})
    return {}


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), str(uuid.uuid4())), path)


async def test_every_endpoint_needs_a_valid_key(
    app: Any, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    routes = _routes(app)
    assert len(routes) >= 15
    revoked = (await admin.post("/v1/api-keys", json={"name": "r", "role": "admin"})).json()
    await admin.delete(f"/v1/api-keys/{revoked['id']}")
    ids = await _other_org_resources(admin)
    for method, path in routes:
        url = _fill(path, ids)
        body = {} if method in ("POST", "PUT", "PATCH") else None
        none = await client.request(method, url, json=body)
        assert none.status_code == 401, f"{method} {path} without a key: {none.status_code}"
        bad = await client.request(method, url, json=body, headers=auth(revoked["key"]))
        assert bad.status_code == 401, f"{method} {path} with a revoked key: {bad.status_code}"


async def test_customer_key_never_reaches_another_organization(
    app: Any, client: httpx.AsyncClient, admin: httpx.AsyncClient, db: Any
) -> None:
    mine = await create_org(admin)
    key = await make_key(db, Role.CUSTOMER, organization_id=mine["id"])
    ids = await _other_org_resources(admin)
    for method, path in _routes(app):
        url = _fill(path, ids)
        body = _valid_body(path) if method in ("POST", "PUT", "PATCH") else None
        response = await client.request(method, url, json=body, headers=auth(key))
        if any(f"{{{owned}}}" in path for owned in OWNED):
            # Another organization's resources do not exist for this key.
            assert response.status_code in (403, 404), f"{method} {path}: {response.status_code}"
        else:
            assert response.status_code < 500, f"{method} {path}: {response.status_code}"
            assert ids["organization_id"] not in response.text, f"{method} {path} leaks"


async def test_a_mail_key_only_delivers_mail(
    app: Any, client: httpx.AsyncClient, admin: httpx.AsyncClient, db: Any
) -> None:
    """Role ``mail`` (a cloud relay's key) may POST /v1/mail/inbound and nothing else."""
    key = await make_key(db, Role.MAIL)
    ids = await _other_org_resources(admin)
    for method, path in _routes(app):
        if (method, path) == ("POST", "/v1/mail/inbound"):
            continue
        url = _fill(path, ids)
        body = _valid_body(path) if method in ("POST", "PUT", "PATCH") else None
        response = await client.request(method, url, json=body, headers=auth(key))
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
