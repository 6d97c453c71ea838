"""Every 4xx is RFC 9457 problem+json with a stable type and an actionable message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.errors import PROBLEM_BASE
from app.security import Role
from tests.conftest import auth, make_key
from tests.factories import create_org

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = dict(response.json())
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


async def test_validation_error_lists_each_bad_field(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin)
    response = await admin.post(
        f"/v1/organizations/{org['id']}/contacts",
        json={"name": "", "email": "not-an-email", "role": "boss"},
    )
    body = assert_problem(response, 422, "validation-error")
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.name", "body.email", "body.role"}


async def test_unknown_field_is_refused_not_ignored(admin: httpx.AsyncClient) -> None:
    response = await admin.post("/v1/organizations", json={"name": "Acme", "nmae": "typo"})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["field"] == "body.nmae"
    assert body["errors"][0]["type"] == "extra_forbidden"
    listing = await admin.get("/v1/organizations")
    assert listing.json()["items"] == []  # nothing was created


async def test_malformed_json_is_400(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/organizations",
        content=b'{"name": "Acme",',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


async def test_unknown_route_is_404_problem(admin: httpx.AsyncClient) -> None:
    body = assert_problem(await admin.get("/v1/nothing-here"), 404, "not-found")
    assert "/v1/nothing-here" in body["detail"]


async def test_wrong_method_is_405_with_allow(admin: httpx.AsyncClient) -> None:
    response = await admin.put("/v1/organizations")
    assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


async def test_body_over_the_limit_is_413(admin: httpx.AsyncClient) -> None:
    big = {"name": "x", "notes": "y" * (1_048_576 + 10)}
    assert_problem(await admin.post("/v1/organizations", json=big), 413, "payload-too-large")


async def test_streamed_body_over_the_limit_is_413(admin: httpx.AsyncClient) -> None:
    """No Content-Length: the limit is enforced while reading."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "x", "notes": "'
        for _ in range(20):
            yield b"z" * 65_536
        yield b'"}'

    response = await admin.post(
        "/v1/organizations", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload-too-large")


async def test_missing_invalid_revoked_keys_are_401(
    client: httpx.AsyncClient, admin: httpx.AsyncClient, db: Any
) -> None:
    body = assert_problem(await client.get("/v1/organizations"), 401, "unauthorized")
    assert "Authorization: Bearer" in body["detail"]
    assert (await client.get("/v1/organizations")).headers["www-authenticate"].startswith("Bearer")
    bad = await client.get("/v1/organizations", headers=auth("sld_not-a-real-key"))
    assert "not valid" in assert_problem(bad, 401, "unauthorized")["detail"]
    basic = await client.get("/v1/organizations", headers={"Authorization": "Basic abc"})
    assert_problem(basic, 401, "unauthorized")

    created = await admin.post("/v1/api-keys", json={"name": "temp", "role": "agent"})
    key, key_id = created.json()["key"], created.json()["id"]
    assert (await client.get("/v1/organizations", headers=auth(key))).status_code == 200
    assert (await admin.delete(f"/v1/api-keys/{key_id}")).status_code == 200
    revoked = await client.get("/v1/organizations", headers=auth(key))
    assert "revoked" in assert_problem(revoked, 401, "unauthorized")["detail"]


async def test_wrong_role_is_403(client: httpx.AsyncClient, db: Any) -> None:
    key = await make_key(db, Role.AGENT)
    response = await client.post(
        "/v1/agents", json={"name": "A", "email": "a@x.io"}, headers=auth(key)
    )
    body = assert_problem(response, 403, "forbidden")
    assert "admin" in body["detail"]


async def test_duplicate_email_is_409_case_insensitive(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin)
    url = f"/v1/organizations/{org['id']}/contacts"
    first = await admin.post(url, json={"name": "Ana", "email": "ana@acme.example"})
    assert first.status_code == 201
    again = await admin.post(url, json={"name": "Ana 2", "email": "ANA@acme.example"})
    body = assert_problem(again, 409, "conflict")
    assert "email" in body["detail"]
    # Another organization may have a contact with the same email.
    other = await create_org(admin)
    elsewhere = await admin.post(
        f"/v1/organizations/{other['id']}/contacts",
        json={"name": "Ana", "email": "ana@acme.example"},
    )
    assert elsewhere.status_code == 201


async def test_naive_datetime_is_422_not_a_guess(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/api-keys", json={"name": "k", "role": "agent", "expires_at": "2030-01-01T10:00:00"}
    )
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["field"] == "body.expires_at"
    assert "timezone" in body["errors"][0]["message"]


async def test_bad_path_and_query_parameters_are_422(admin: httpx.AsyncClient) -> None:
    body = assert_problem(await admin.get("/v1/organizations/not-a-uuid"), 422, "validation-error")
    assert body["errors"][0]["field"] == "path.organization_id"
    too_long = await admin.get("/v1/organizations", params={"limit": 201})
    assert assert_problem(too_long, 422, "validation-error")["errors"][0]["field"] == "query.limit"
    cursor = await admin.get("/v1/organizations", params={"cursor": "garbage!"})
    assert assert_problem(cursor, 422, "validation-error")["errors"][0]["field"] == "query.cursor"


async def test_null_for_a_required_field_in_a_patch_is_422(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin)
    response = await admin.patch(f"/v1/organizations/{org['id']}", json={"name": None})
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["field"] == "body.name"
    cleared = await admin.patch(f"/v1/organizations/{org['id']}", json={"notes": None})
    assert cleared.status_code == 200


@pytest.mark.parametrize("path", ["/v1/organizations/{id}", "/v1/agents/{id}", "/v1/api-keys/{id}"])
async def test_unknown_ids_are_404(admin: httpx.AsyncClient, path: str) -> None:
    method = "DELETE" if "api-keys" in path else "GET"
    response = await admin.request(method, path.format(id=uuid.uuid4()))
    assert_problem(response, 404, "not-found")


# ------------------------------------------------- messages that say what to do


async def test_an_unquoted_if_match_says_to_quote_it(admin: httpx.AsyncClient) -> None:
    from tests.ticket_factories import make_desk, open_ticket

    desk = await make_desk(admin)
    ticket = await open_ticket(admin, desk)
    url = f"/v1/tickets/{ticket['id']}/actions/note"
    refused = await admin.post(url, json={"body": "x"}, headers={"If-Match": "1"})
    problem = assert_problem(refused, 412, "precondition-failed")
    assert "send it in double quotes" in problem["detail"] and 'If-Match: "1"' in problem["detail"]
    assert "changed" not in problem["detail"]  # it did not change: the header was malformed
    accepted = await admin.post(url, json={"body": "x"}, headers={"If-Match": '"1"'})
    assert accepted.status_code == 200, accepted.text
    stale = await admin.post(url, json={"body": "x"}, headers={"If-Match": '"1"'})
    assert "changed" in assert_problem(stale, 412, "precondition-failed")["detail"]

    plan = desk.plan["id"]
    unquoted = await admin.patch(
        f"/v1/plans/{plan}", json={"name": "Y"}, headers={"If-Match": "v1"}
    )
    assert 'If-Match: "v1"' in assert_problem(unquoted, 412, "precondition-failed")["detail"]


async def test_an_unencoded_plus_in_a_query_instant_says_to_encode_it(
    admin: httpx.AsyncClient,
) -> None:
    # "+01:00" typed into a URL arrives as " 01:00" (a '+' in a query string is a space).
    response = await admin.get("/v1/tickets?due_before=2026-03-06T17:00:00+01:00")
    problem = assert_problem(response, 422, "validation-error")
    [error] = problem["errors"]
    assert error["field"] == "query.due_before"
    assert "%2B" in error["message"] and "Z" in error["message"]
    encoded = await admin.get("/v1/tickets?due_before=2026-03-06T17:00:00%2B01:00")
    assert encoded.status_code == 200


async def test_webhook_url_refusals_name_the_setting_that_allows_them(
    app: Any, admin_key: str
) -> None:
    from app.config import Settings
    from app.main import create_app

    strict = Settings(database_url="postgresql://unused@127.0.0.1/x")
    strict_app = create_app(strict, engine=app.state.engine)
    transport = httpx.ASGITransport(app=strict_app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers=auth(admin_key)
    ) as api:
        cases = {
            "https://127.0.0.1/hook": (
                "webhooks may not call this address: 127.0.0.1 is a loopback address",
                "SLADESK_WEBHOOKS_ALLOW_PRIVATE=true",
            ),
            "http://93.184.215.14/hook": ("must use https", "SLADESK_WEBHOOKS_ALLOW_HTTP=true"),
        }
        for url, (reason, setting) in cases.items():
            body = {"url": url, "event_types": ["*"]}
            problem = assert_problem(
                await api.post("/v1/webhooks", json=body), 422, "validation-error"
            )
            assert reason in problem["detail"] and setting in problem["detail"], problem
        # The metadata address is refused whatever the operator allows: no setting named.
        body = {"url": "https://169.254.169.254/latest", "event_types": ["*"]}
        problem = assert_problem(await api.post("/v1/webhooks", json=body), 422, "validation-error")
        assert "metadata" in problem["detail"] and "SLADESK_" not in problem["detail"]
