"""/v1/webhooks over HTTP: subscriptions, secrets shown once, validation naming the field,
SSRF refusals at creation, the event catalogue, deliveries listing and its filters."""

from __future__ import annotations

import base64
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.events import EVENT_TYPES
from app.main import create_app
from app.observability import JsonFormatter
from app.security import Role
from app.workers.dispatcher import Dispatcher
from tests.conftest import client_for, make_key
from tests.test_webhooks_delivery import subscribe
from tests.webhook_harness import config, emit_events, execute, scalar

URL = "https://93.184.215.14/hooks/sladesk"  # a public literal address: no DNS needed


def problem_fields(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["field"] for e in response.json()["errors"]]


async def test_create_shows_the_secret_once(
    admin: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await subscribe(admin, URL, ["ticket.created", "sla.breached"], description="CRM")
    secret = created["secret"]
    assert secret.startswith("whsec_") and 24 <= len(base64.b64decode(secret[6:])) <= 64
    assert created["event_types"] == ["ticket.created", "sla.breached"]
    assert created["active"] is True and created["previous_secret_expires_at"] is None
    sid = created["id"]
    responses = [
        await admin.get(f"/v1/webhooks/{sid}"),
        await admin.get("/v1/webhooks"),
        await admin.patch(f"/v1/webhooks/{sid}", json={"description": "CRM 2"}),
        await admin.post(f"/v1/webhooks/{sid}/ping"),
        await admin.get("/v1/webhooks/deliveries"),
    ]
    rotated = await admin.post(f"/v1/webhooks/{sid}/rotate-secret")
    new_secret = rotated.json()["secret"]
    responses += [await admin.get(f"/v1/webhooks/{sid}"), await admin.get("/v1/webhooks")]
    for response in responses:
        assert response.status_code < 300, response.text
        assert "whsec_" not in response.text and 'secret"' not in response.text
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(r) for r in caplog.records) + caplog.text
    assert secret not in logged and new_secret not in logged


async def test_rotation_returns_a_new_secret_and_the_overlap(admin: httpx.AsyncClient) -> None:
    created = await subscribe(admin, URL)
    before = datetime.now(UTC)
    rotated = (await admin.post(f"/v1/webhooks/{created['id']}/rotate-secret")).json()
    assert rotated["secret"] != created["secret"] and rotated["secret"].startswith("whsec_")
    until = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert before + timedelta(hours=24) <= until <= datetime.now(UTC) + timedelta(hours=24)


async def test_event_types_are_checked_and_normalised(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/webhooks",
        json={"url": URL, "event_types": ["ticket.created", "ticket.made_up", "nope"]},
    )
    assert response.status_code == 422
    assert problem_fields(response) == ["body.event_types[1]", "body.event_types[2]"]
    assert "GET /v1/webhooks/event-types" in response.json()["detail"]
    empty = await admin.post("/v1/webhooks", json={"url": URL, "event_types": []})
    assert empty.status_code == 422 and problem_fields(empty) == ["body.event_types"]
    wild = await subscribe(admin, URL, ["ticket.created", "*"])
    assert wild["event_types"] == ["*"]
    dupes = await subscribe(admin, URL, ["sla.warning", "sla.warning", "sla.breached"])
    assert dupes["event_types"] == ["sla.warning", "sla.breached"]
    patched = await admin.patch(f"/v1/webhooks/{dupes['id']}", json={"event_types": ["x"]})
    assert patched.status_code == 422 and problem_fields(patched) == ["body.event_types[0]"]


async def test_unknown_fields_and_nulls_are_refused(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/webhooks", json={"url": URL, "event_types": ["*"], "secret": "whsec_mine"}
    )
    assert response.status_code == 422 and problem_fields(response) == ["body.secret"]
    created = await subscribe(admin, URL)
    response = await admin.patch(f"/v1/webhooks/{created['id']}", json={"url": None})
    assert response.status_code == 422 and problem_fields(response) == ["body.url"]


@pytest.fixture
async def strict(settings: Settings, db: AsyncEngine) -> Any:
    """An API with the production defaults: https only, no private destinations."""
    app = create_app(
        settings.model_copy(update={"webhooks_allow_private": False, "webhooks_allow_http": False}),
        engine=db,
    )
    key = await make_key(db, Role.ADMIN)
    async with client_for(app, key) as client:
        yield client


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://93.184.215.14/hook", "plain http"),
        ("ftp://93.184.215.14/hook", "https"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://10.0.0.8/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[::1]/hook", "loopback"),
        ("https://[fd00:ec2::254]/", "metadata"),
        ("https://[::ffff:192.168.0.1]/", "private"),
        ("https://localhost/hook", "resolves to a forbidden address"),
        ("https://user:pw@93.184.215.14/", "credentials"),
        ("https://2130706433/", "numeric"),
        ("not a url", "spaces"),
        ("https://\u2460.com/", "IDNA"),
        ("https://ex\u00adample.com/", "IDNA"),
    ],
)
async def test_forbidden_urls_are_refused_at_creation(
    strict: httpx.AsyncClient, url: str, says: str
) -> None:
    response = await strict.post("/v1/webhooks", json={"url": url, "event_types": ["*"]})
    assert response.status_code == 422, response.text
    assert problem_fields(response) == ["body.url"]
    assert says in response.json()["errors"][0]["message"]


async def test_forbidden_url_refused_on_update_too(strict: httpx.AsyncClient) -> None:
    created = (await strict.post("/v1/webhooks", json={"url": URL, "event_types": ["*"]})).json()
    response = await strict.patch(
        f"/v1/webhooks/{created['id']}", json={"url": "https://192.168.1.1/"}
    )
    assert response.status_code == 422 and problem_fields(response) == ["body.url"]
    assert (await strict.get(f"/v1/webhooks/{created['id']}")).json()["url"] == URL


async def test_update_deactivate_reactivate_delete(admin: httpx.AsyncClient) -> None:
    created = await subscribe(admin, URL, ["ticket.created"])
    sid = created["id"]
    off = (await admin.patch(f"/v1/webhooks/{sid}", json={"active": False})).json()
    assert off["active"] is False and off["disabled_reason"] and off["disabled_at"]
    assert (await admin.post(f"/v1/webhooks/{sid}/ping")).status_code == 409
    on = (
        await admin.patch(
            f"/v1/webhooks/{sid}",
            json={"active": True, "url": URL + "/v2", "event_types": ["*"], "description": None},
        )
    ).json()
    assert on["active"] is True and on["disabled_reason"] is None and on["disabled_at"] is None
    assert on["url"] == URL + "/v2" and on["event_types"] == ["*"] and on["description"] is None
    listed = (await admin.get("/v1/webhooks", params={"active": True})).json()["items"]
    assert [s["id"] for s in listed] == [sid]
    assert (await admin.delete(f"/v1/webhooks/{sid}")).status_code == 204
    for method, path in (
        ("GET", f"/v1/webhooks/{sid}"),
        ("DELETE", f"/v1/webhooks/{sid}"),
        ("POST", f"/v1/webhooks/{sid}/rotate-secret"),
        ("POST", f"/v1/webhooks/{sid}/ping"),
        ("GET", f"/v1/webhooks/deliveries/{uuid.uuid4()}"),
        ("POST", f"/v1/webhooks/deliveries/{uuid.uuid4()}/redeliver"),
    ):
        response = await admin.request(method, path)
        assert response.status_code == 404, (method, path)
        assert response.headers["content-type"] == "application/problem+json"


async def test_subscriptions_paginate(admin: httpx.AsyncClient) -> None:
    made = [(await subscribe(admin, f"{URL}/{i}"))["id"] for i in range(5)]
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await admin.get("/v1/webhooks", params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made


async def test_webhooks_are_for_admins_only(app: Any, db: AsyncEngine) -> None:
    key = await make_key(db, Role.AGENT)
    async with client_for(app, key) as agent:
        for path in ("/v1/webhooks", "/v1/webhooks/deliveries", "/v1/webhooks/event-types"):
            response = await agent.get(path)
            assert response.status_code == 403, path
        response = await agent.post("/v1/webhooks", json={"url": URL, "event_types": ["*"]})
        assert response.status_code == 403


async def test_event_catalogue_endpoint_and_openapi_webhooks(
    app: Any, admin: httpx.AsyncClient
) -> None:
    catalogue = (await admin.get("/v1/webhooks/event-types")).json()["items"]
    names = [t["name"] for t in catalogue]
    assert names == list(EVENT_TYPES) and len(set(names)) == len(names)
    assert names[0] == "ticket.created" and names[-1] == "webhook.ping"
    assert {"ticket.escalated", "sla.warning", "sla.breached", "authorization.required"} <= set(
        names
    )
    for item in catalogue:
        assert set(item["example"]) == {"type", "timestamp", "data"}
        assert item["example"]["type"] == item["name"] and item["description"]
    ticket_events = {t["name"] for t in catalogue if t["ordered_per_ticket"]}
    assert "sla.breached" in ticket_events and "webhook.ping" not in ticket_events

    document = (await admin.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert list(document["webhooks"]) == names
    operation = document["webhooks"]["sla.warning"]["post"]
    body = operation["requestBody"]["content"]["application/json"]
    assert body["example"]["type"] == "sla.warning" and "threshold" in body["example"]["data"]
    headers = {p["name"] for p in operation["parameters"]}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}


async def test_deliveries_list_filters_and_pages(db: AsyncEngine, admin: httpx.AsyncClient) -> None:
    a = await subscribe(admin, URL + "/a", ["*"])
    b = await subscribe(admin, URL + "/b", ["sla.breached"])
    x, y = uuid.uuid4(), uuid.uuid4()
    ids = await emit_events(
        db,
        [
            ("ticket.created", x, {"n": 1}),
            ("sla.breached", x, {"n": 2}),
            ("ticket.created", y, {"n": 3}),
            ("webhook.ping", None, {"subscription_id": b["id"], "message": "hi"}),
        ],
    )
    await Dispatcher(db, config())._fan_out(datetime.now(UTC))  # deliveries, none sent
    await execute(
        db, "UPDATE webhook_deliveries SET status = 'failed' WHERE event_id = :e", e=ids[0]
    )

    async def listed(**params: Any) -> list[tuple[str, str]]:
        response = await admin.get("/v1/webhooks/deliveries", params=params)
        assert response.status_code == 200, response.text
        return [(d["event_type"], d["subscription_id"]) for d in response.json()["items"]]

    assert len(await listed()) == 5  # a: 3 events; b: sla.breached and its ping
    assert sorted(await listed(subscription_id=b["id"])) == [
        ("sla.breached", b["id"]),
        ("webhook.ping", b["id"]),
    ]
    assert sorted(await listed(event_type="sla.breached")) == sorted(
        [("sla.breached", a["id"]), ("sla.breached", b["id"])]
    )
    assert await listed(status="failed") == [("ticket.created", a["id"])]
    assert len(await listed(status="pending")) == 4
    assert len(await listed(ticket_id=str(x))) == 3
    assert await listed(ticket_id=str(y)) == [("ticket.created", a["id"])]
    assert len(await listed(event_id=str(ids[1]))) == 2
    assert await listed(subscription_id=str(uuid.uuid4())) == []

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await admin.get("/v1/webhooks/deliveries", params=params)).json()
        pages.append([d["id"] for d in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    flat = [i for p in pages for i in p]
    assert [len(p) for p in pages] == [2, 2, 1] and len(set(flat)) == 5

    for params in ({"status": "bogus"}, {"event_type": "nope"}, {"ticket_id": "x"}):
        response = await admin.get("/v1/webhooks/deliveries", params=params)
        assert response.status_code == 422, params
        assert problem_fields(response) == [f"query.{next(iter(params))}"]


async def test_redeliver_conflicts(db: AsyncEngine, admin: httpx.AsyncClient) -> None:
    sub = await subscribe(admin, URL)
    delivery = (await admin.post(f"/v1/webhooks/{sub['id']}/ping")).json()
    await execute(
        db,
        "UPDATE webhook_deliveries SET locked_until = now() + interval '1 minute', "
        "lease_token = gen_random_uuid()",
    )
    in_flight = await admin.post(f"/v1/webhooks/deliveries/{delivery['id']}/redeliver")
    assert in_flight.status_code == 409 and "in progress" in in_flight.json()["detail"]
    await execute(db, "UPDATE webhook_deliveries SET locked_until = NULL, status = 'failed'")
    await admin.patch(f"/v1/webhooks/{sub['id']}", json={"active": False})
    disabled = await admin.post(f"/v1/webhooks/deliveries/{delivery['id']}/redeliver")
    assert disabled.status_code == 409 and "disabled" in disabled.json()["detail"]
    await admin.patch(f"/v1/webhooks/{sub['id']}", json={"active": True})
    again = await admin.post(f"/v1/webhooks/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 202 and again.json()["status"] == "pending"
    assert await scalar(db, "SELECT redeliver_requested_at IS NOT NULL FROM webhook_deliveries")


async def test_deleting_a_subscription_deletes_its_deliveries(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    sub = await subscribe(admin, URL)
    await admin.post(f"/v1/webhooks/{sub['id']}/ping")
    assert await scalar(db, "SELECT count(*) FROM webhook_deliveries") == 1
    assert (await admin.delete(f"/v1/webhooks/{sub['id']}")).status_code == 204
    assert await scalar(db, "SELECT count(*) FROM webhook_deliveries") == 0
