"""Health, readiness, metrics, request ids and logs."""

from __future__ import annotations

import json
import logging
import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from app.observability import JsonFormatter
from tests.conftest import _admin_execute


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


async def test_readyz_is_503_on_an_unmigrated_database(
    settings: Settings, database_url: str
) -> None:
    name = f"sladesk_empty_{uuid.uuid4().hex[:8]}"
    server = database_url.rsplit("/", 1)[0]
    query = ""
    if "?" in database_url:
        query = "?" + database_url.split("?", 1)[1]
        server = database_url.split("?", 1)[0].rsplit("/", 1)[0]
    await _admin_execute(database_url, f'CREATE DATABASE "{name}"')
    engine: AsyncEngine = make_engine(f"{server}/{name}{query}", settings)
    try:
        app = create_app(settings, engine=engine)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            response = await c.get("/readyz")
        assert response.status_code == 503
        assert response.json()["database"] == "unreachable"  # no alembic_version table
    finally:
        await engine.dispose()
        await _admin_execute(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_metrics_count_by_route_template_and_status(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    await admin.get(f"/v1/organizations/{uuid.uuid4()}")
    await admin.get(f"/v1/organizations/{uuid.uuid4()}")
    assert (await client.get("/metrics")).status_code == 401
    text = (await admin.get("/metrics")).text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("sladesk_http_requests_total{")
        and 'route="/v1/organizations/{organization_id}"' in ln
        and 'status="404"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) == 2.0
    assert "sladesk_http_request_duration_seconds_bucket" in text


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    junk = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert junk.headers["x-request-id"] != "bad id\twith spaces"


async def test_logs_are_json_with_request_id_and_never_a_key(
    admin: httpx.AsyncClient, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    created = await admin.post(
        "/v1/api-keys", json={"name": "x", "role": "agent"}, headers={"X-Request-ID": "req-42"}
    )
    new_key = created.json()["key"]
    logging.getLogger("test").info("user pasted %s into a ticket", new_key)
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    entries = [json.loads(line) for line in lines]
    access = [
        e for e in entries if e["logger"] == "sladesk.access" and e.get("request_id") == "req-42"
    ]
    assert access and access[0]["status"] == 201 and access[0]["path"] == "/v1/api-keys"
    joined = "\n".join(lines)
    assert admin_key not in joined and new_key not in joined
    assert "sld_[redacted]" in joined


def test_a_bad_setting_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from app.config import describe_settings_error

    monkeypatch.setenv("SLADESK_PORT", "eighty")
    with pytest.raises(ValidationError) as error:
        Settings()
    line = describe_settings_error(error.value)
    assert line.startswith("invalid setting SLADESK_PORT:") and "\n" not in line


async def test_docs_list_every_route_with_problem_responses(client: httpx.AsyncClient) -> None:
    spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    assert (await client.get("/docs")).status_code == 200
    assert "/v1/organizations/{organization_id}/contacts" in spec["paths"]
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1"):
            continue
        for method, operation in operations.items():
            assert "401" in operation["responses"], f"{method} {path} lacks its 401"
            content = operation["responses"]["401"]["content"]
            assert "application/problem+json" in content


async def test_docs_pages_load_their_assets_from_the_server(client: httpx.AsyncClient) -> None:
    for page, assets in (
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css"]),
        ("/redoc", ["redoc.standalone.js"]),
    ):
        html = (await client.get(page)).text
        # Nothing from a CDN (or any other host): the page works without internet.
        assert re.findall(r"https?://", html) == [], f"{page} refers to another host"
        for asset in assets:
            assert f'"/docs/assets/{asset}"' in html
            served = await client.get(f"/docs/assets/{asset}")
            assert served.status_code == 200 and len(served.content) > 100_000


async def test_every_route_has_its_own_metrics_label(
    app: Any, client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    from starlette.routing import Mount

    def flat(routes: list[Any]) -> list[Any]:
        # FastAPI keeps an included router as one entry; its routes carry their full path.
        out = []
        for route in routes:
            inner = getattr(route, "original_router", None)
            out.extend(flat(inner.routes) if inner is not None else [route])
        return out

    expected = set()
    for route in flat(app.routes):
        template = route.path + ("/{path}" if isinstance(route, Mount) else "")
        method = sorted(getattr(route, "methods", None) or {"GET"})[0]
        params = {name: str(uuid.uuid4()) for name in re.findall(r"{(\w+)", template)}
        if isinstance(route, Mount):
            params["path"] = "favicon.png"
        await client.request(method, template.format(**params))
        expected.add((method, template))
    await client.get("/no/such/route")
    text = (await admin.get("/metrics")).text
    seen = set(re.findall(r'sladesk_http_requests_total\{method="(\w+)",route="([^"]+)"', text))
    missing = {(m, t) for m, t in expected if (m, t) not in seen}
    assert missing == set(), f"routes counted under another label: {missing}"
    assert ("GET", "<unmatched>") in seen  # an unknown path never becomes a label of its own
    assert not any("no/such" in t for _, t in seen)
