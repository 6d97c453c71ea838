"""What HTTP promises on every route: methods, HEAD/OPTIONS, unknown query parameters,
content types, no redirect built from the request's headers (app/http_contract.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import create_org
from tests.test_errors import assert_problem


async def test_head_answers_wherever_get_does(admin: httpx.AsyncClient) -> None:
    await create_org(admin)
    get = await admin.get("/v1/organizations")
    head = await admin.head("/v1/organizations")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"]
    # HEAD needs the same key as GET: it is a GET without the body.
    anonymous = await admin.head("/v1/organizations", headers={"Authorization": ""})
    assert anonymous.status_code == 401


async def test_options_lists_every_method_of_the_path(admin: httpx.AsyncClient) -> None:
    org = await create_org(admin)
    listing = await admin.options("/v1/tickets")
    assert listing.status_code == 204
    assert listing.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    one = await admin.options(f"/v1/organizations/{org['id']}")
    assert one.headers["allow"] == "GET, HEAD, PATCH, OPTIONS"
    webhook = await admin.options("/v1/webhooks/00000000-0000-4000-8000-000000000000")
    assert webhook.headers["allow"] == "GET, HEAD, PATCH, DELETE, OPTIONS"


async def test_a_method_the_path_lacks_is_405_with_allow(admin: httpx.AsyncClient) -> None:
    response = await admin.delete("/v1/tickets")
    body = assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, HEAD, POST, OPTIONS"
    assert "DELETE" in body["detail"]


async def test_a_literal_path_wins_over_a_template(admin: httpx.AsyncClient) -> None:
    """`event-types` is not a subscription id: PATCH there is a 405, not a 422 about an id."""
    response = await admin.patch("/v1/webhooks/event-types", json={"active": False})
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert (await admin.get("/v1/webhooks/event-types")).status_code == 200


async def test_no_redirect_is_built_from_the_host_header(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/v1/tickets/", headers={"Host": "evil.example"})
    body = assert_problem(response, 404, "not-found")
    assert "location" not in response.headers
    assert "trailing slash" in body["detail"]


@pytest.mark.parametrize(
    ("path", "params", "unknown"),
    [
        ("/v1/tickets", {"text": "x"}, ["text"]),
        ("/v1/organizations", {"name": "x", "limit": "5"}, ["name"]),
        ("/v1/calendars", {"b": "1", "a": "2"}, ["a", "b"]),
    ],
)
async def test_unknown_query_parameters_are_422_naming_them(
    admin: httpx.AsyncClient, path: str, params: dict[str, str], unknown: list[str]
) -> None:
    response = await admin.get(path, params=params)
    body = assert_problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == [f"query.{k}" for k in unknown]
    assert all(e["type"] == "unknown_query" for e in body["errors"])
    assert "limit" in body["detail"]  # says what the operation does take


async def test_declared_query_parameters_still_work(admin: httpx.AsyncClient) -> None:
    assert (await admin.get("/v1/tickets", params={"limit": 1, "status": "new"})).status_code == 200
    # An alias is the declared name (`from` in reports), not the Python one.
    report = await admin.get(
        "/v1/reports/sla-compliance",
        params={"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"},
    )
    assert report.status_code == 200, report.text


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"name=Acme", "application/x-www-form-urlencoded"),
        (b"<org><name>Acme</name></org>", "application/xml"),
        (b'{"name": "Acme"}', "text/plain"),
        (b'{"name": "Acme"}', None),
    ],
)
async def test_a_body_of_another_type_is_415(
    admin: httpx.AsyncClient, content: bytes, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await admin.post("/v1/organizations", content=content, headers=headers)
    body = assert_problem(response, 415, "unsupported-media-type")
    assert body["accepted"] == ["application/json"]
    assert (await admin.get("/v1/organizations")).json()["items"] == []


async def test_json_with_parameters_is_json(admin: httpx.AsyncClient) -> None:
    response = await admin.post(
        "/v1/organizations",
        content=b'{"name": "Acme"}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


async def test_the_contract_is_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    create = spec["paths"]["/v1/organizations"]["post"]["responses"]
    assert {"400", "413", "415", "422"} <= set(create)
    assert "422" in spec["paths"]["/healthz"]["get"]["responses"]


def test_literal_paths_are_tried_before_templates_that_match_them(app: object) -> None:
    """The methods middleware gives a path to its most literal route; the router must
    agree, i.e. try that route first (a router listing `/{id}` before `/event-types`
    would send GET /event-types to the id route)."""
    from app.http_contract import effective_routes

    routes = effective_routes(app.routes)  # type: ignore[attr-defined]
    for i, literal in enumerate(routes):
        if literal.param_convertors:
            continue
        for template in routes[:i]:
            if template.param_convertors and template.path_regex.match(literal.path):
                raise AssertionError(f"{template.path} is tried before {literal.path}")


async def test_head_of_a_stream_ends_with_the_headers() -> None:
    """HEAD runs the GET; for an endless stream (server-sent events) it must end with the
    headers, not wait for a body that never ends."""
    import asyncio
    from collections.abc import AsyncIterator

    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from app.http_contract import MethodsMiddleware

    stream_app = FastAPI()

    @stream_app.get("/events")
    async def events() -> StreamingResponse:
        async def forever() -> AsyncIterator[bytes]:
            while True:
                yield b"data: tick\n\n"
                await asyncio.sleep(0.01)

        return StreamingResponse(forever(), media_type="text/event-stream")

    stream_app.add_middleware(MethodsMiddleware)
    transport = httpx.ASGITransport(app=stream_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        # A hang guard, not a timing assertion: without the fix this never returns.
        response = await asyncio.wait_for(c.head("/events"), timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b""


async def test_a_request_without_a_valid_key_is_a_401_whatever_else_is_wrong(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    """Authentication comes first: the contract (undeclared query parameters, body types)
    is checked once the caller is known, so an anonymous client learns nothing else."""
    for headers in ({}, {"Authorization": "Bearer sld_not-a-key"}):
        unknown = await client.get("/v1/tickets", params={"text": "x"}, headers=headers)
        assert unknown.status_code == 401
        typed = await client.post(
            "/v1/tickets", content=b"a=1", headers={**headers, "Content-Type": "text/plain"}
        )
        assert typed.status_code == 401
    # With a valid key the same requests get their contract errors.
    assert (await admin.get("/v1/tickets", params={"text": "x"})).status_code == 422
    typed = await admin.post("/v1/tickets", content=b"a=1", headers={"Content-Type": "text/plain"})
    assert typed.status_code == 415
    # Routes without a key (health probes) check their contract all the same.
    assert (await client.get("/healthz", params={"text": "x"})).status_code == 422
