"""The OpenAPI document tells the truth about what the server accepts (issue 14).

Static guards over every request model (so that a new endpoint inherits the rules):
strict numbers and booleans, strings whose rules are in a `pattern`, instants with their
range in the schema. Then the issue's probes, each a request that used to be coerced or
to answer 500.
"""

from __future__ import annotations

import base64
import json
import types
import typing
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.functional_validators import BeforeValidator
from pydantic.types import Strict

from app.config import Settings
from app.http_contract import effective_routes
from app.main import create_app
from app.schemas.common import _a_number_not_a_bool_or_string
from tests.factories import create_contact, create_org
from tests.test_errors import assert_problem
from tests.ticket_factories import make_desk, open_ticket

APP = create_app(Settings(database_url="postgresql://unused/none", run_workers=False))
SPEC = APP.openapi()


def _body_models() -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    for route in effective_routes(APP.routes):
        original = route.original_route
        if isinstance(original, APIRoute) and original.body_field is not None:
            found |= set(_models_in(original.body_field.field_info.annotation))
    return found


def _models_in(tp: Any) -> Iterator[type[BaseModel]]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        yield tp
        for field in tp.model_fields.values():
            yield from _models_in(field.annotation)
        return
    for arg in typing.get_args(tp):
        yield from _models_in(arg)


def _lax_scalars(tp: Any, metadata: list[Any], path: str) -> Iterator[str]:
    """Paths of int/float/bool leaves that pydantic would coerce (lax mode)."""
    strict = any(
        isinstance(m, Strict)
        or (isinstance(m, BeforeValidator) and m.func is _a_number_not_a_bool_or_string)
        for m in metadata
    )
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(tp)
        yield from _lax_scalars(inner, [*metadata, *extra], path)
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            yield from _lax_scalars(arg, metadata, path)
    elif origin in (list, tuple, dict, set, frozenset):
        for arg in typing.get_args(tp):
            yield from _lax_scalars(arg, [], f"{path}[]")
    elif tp in (int, float, bool) and not strict:
        yield path


def test_request_numbers_and_booleans_are_strict() -> None:
    models = _body_models()
    assert len(models) > 20
    lax = [
        f"{model.__name__}.{name}{leaf}"
        for model in models
        for name, field in model.model_fields.items()
        for leaf in _lax_scalars(field.annotation, list(field.metadata), "")
    ]
    assert lax == [], "use Int / Bool / Number (app.schemas.common) in request models"


def _string_nodes(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "string":
            yield path, node
        for key, value in node.items():
            if key not in ("examples", "example", "default", "enum", "const", "propertyNames"):
                yield from _string_nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _string_nodes(value, f"{path}[{i}]")


def _request_schemas() -> Iterator[tuple[str, Any]]:
    components = SPEC["components"]["schemas"]
    seen: set[str] = set()

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                yield ref.rsplit("/", 1)[-1]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    pending = []
    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                pending += list(refs(media.get("schema", {})))
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header":
                    continue  # HTTP itself keeps NUL and line breaks out of header values
                yield f"{method.upper()} {path} {parameter['name']}", parameter["schema"]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        yield name, components[name]
        pending += list(refs(components[name]))


def test_every_request_string_states_its_rules() -> None:
    """A string a client sends carries a pattern, a format or an enum, so the schema says
    what the server refuses (NUL, blank text...)."""
    loose = [
        f"{where}{path}"
        for where, schema in _request_schemas()
        for path, node in _string_nodes(schema, "")
        if not ({"pattern", "format", "enum", "const"} & node.keys())
    ]
    assert loose == []


def test_instants_carry_their_range_in_the_schema() -> None:
    instants = [
        node
        for _, schema in _request_schemas()
        for _, node in _string_nodes(schema, "")
        if node.get("format") == "date-time"
    ]
    assert len(instants) > 10
    for node in instants:
        assert node["x-year-range"] == [1970, 2199]
        assert node["pattern"].startswith("^(19[7-9][0-9]|2[01][0-9]{2})-")


def test_patch_documents_null_only_where_it_clears() -> None:
    schemas = SPEC["components"]["schemas"]
    update = schemas["OrganizationUpdate"]["properties"]
    assert update["name"]["type"] == "string"  # no null branch
    assert {"type": "null"} in update["notes"]["anyOf"]
    plan = schemas["PlanUpdate"]["properties"]
    assert "anyOf" not in plan["targets"] and {"type": "null"} in plan["auto_close"]["anyOf"]


def test_due_intervals_are_pairs_a_validator_can_read() -> None:
    intervals = SPEC["components"]["schemas"]["DueRead"]["properties"]["intervals"]
    pair = intervals["items"]
    assert pair["type"] == "array" and pair["minItems"] == pair["maxItems"] == 2
    assert pair["items"] == {"type": "string", "format": "date-time"}


# --------------------------------------------------------------------------- probes


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Acme", "active": 0}, "body.active"),
        ({"name": "Acme", "active": "true"}, "body.active"),
        ({"name": "   "}, "body.name"),
        ({"name": "\t\n"}, "body.name"),
        ({"name": " " + "x" * 199 + " "}, "body.name"),  # 201 as sent: over maxLength
        ({"name": "Acme", "notes": "nul\x00"}, "body.notes"),
    ],
)
async def test_no_coercion_and_strings_measured_as_sent(
    admin: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    problem = assert_problem(
        await admin.post("/v1/organizations", json=body), 422, "validation-error"
    )
    assert [e["field"] for e in problem["errors"]] == [field]
    assert (await admin.get("/v1/organizations")).json()["items"] == []


async def test_text_is_trimmed_after_it_is_measured(admin: httpx.AsyncClient) -> None:
    created = await admin.post("/v1/organizations", json={"name": "  " + "x" * 198})
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "x" * 198
    blank = await admin.post("/v1/organizations", json={"name": "Acme", "notes": "   "})
    assert blank.status_code == 201 and blank.json()["notes"] == ""


@pytest.mark.parametrize("minutes", [True, "20", 1.5, None])
async def test_numbers_are_numbers(admin: httpx.AsyncClient, minutes: Any) -> None:
    desk = await make_desk(admin)
    ticket = await open_ticket(admin, desk)
    response = await admin.post(
        f"/v1/tickets/{ticket['id']}/worklogs", json={"kind": "work", "minutes": minutes}
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["field"] == "body.minutes"
    accepted = await admin.put(f"/v1/tickets/{ticket['id']}/estimate", json={"minutes": 60.0})
    assert accepted.status_code == 200 and accepted.json()["estimate_minutes"] == 60


@pytest.mark.parametrize(
    "start",
    [
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1765000000",
        "2026-03-06T17:00:00",
        "2026-02-30T10:00:00Z",
        "2026-03-06 17:00:00Z",
    ],
)
async def test_due_start_is_one_validated_instant(admin: httpx.AsyncClient, start: str) -> None:
    from tests.plan_factories import create_calendar

    calendar = await create_calendar(admin)
    response = await admin.get(
        f"/v1/calendars/{calendar['id']}/due", params={"start": start, "minutes": 60}
    )
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"][0]["field"] == "query.start"
    ok = await admin.get(
        f"/v1/calendars/{calendar['id']}/due",
        params={"start": "2026-03-06T17:00:00-08:00", "minutes": 60},
    )
    assert ok.status_code == 200, ok.text


def _forged(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _list_paths() -> list[str]:
    return sorted(
        path
        for path, operations in SPEC["paths"].items()
        if any(p["name"] == "cursor" for p in operations.get("get", {}).get("parameters", []))
    )


async def test_a_forged_cursor_is_refused_on_every_list(admin: httpx.AsyncClient) -> None:
    desk = await make_desk(admin)
    ticket = await open_ticket(admin, desk)
    await create_contact(admin, desk.org["id"])
    ids = {
        "organization_id": desk.org["id"],
        "ticket_id": ticket["id"],
        "contract_id": desk.contract["id"],
    }
    old_style = _forged([{"t": "0001-01-01T00:00:00+14:00"}, {"u": str(uuid.uuid4())}])
    paths = _list_paths()
    assert len(paths) >= 14
    for path in paths:
        url = path.format(**ids)
        params = (
            {"month": "2026-03", "organization_id": desk.org["id"]} if "statement" in path else {}
        )
        page = await admin.get(url, params={**params, "limit": 1})
        assert page.status_code == 200, (path, page.text)
        for cursor in (old_style, old_style + ".AAAAAAAAAAAAAAAAAAAAAA", "garbage!"):
            response = await admin.get(url, params={**params, "cursor": cursor})
            problem = assert_problem(response, 422, "validation-error")
            assert problem["errors"][0]["field"] == "query.cursor", path


async def test_a_signed_cursor_cannot_be_altered_but_still_pages(
    admin: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        await create_org(admin)
    first = (await admin.get("/v1/organizations", params={"limit": 2})).json()
    cursor = first["next_cursor"]
    second = await admin.get("/v1/organizations", params={"limit": 2, "cursor": cursor})
    assert second.status_code == 200 and len(second.json()["items"]) == 1
    payload, signature = cursor.split(".")
    values = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    values[0] = {"t": "2000-01-01T00:00:00+00:00"}  # an earlier point: more rows
    altered = f"{_forged(values)}.{signature}"
    response = await admin.get("/v1/organizations", params={"cursor": altered})
    assert_problem(response, 422, "validation-error")


def test_creations_link_to_what_acts_on_the_new_resource() -> None:
    """Stateful clients (and the fuzz test's stateful phase) follow these."""
    links = SPEC["paths"]["/v1/tickets"]["post"]["responses"]["201"]["links"]
    resolve = links["post_v1_tickets_ticket_id_actions_resolve"]
    assert resolve["parameters"] == {"ticket_id": "$response.body#/id"}
    operation_ids = {op["operationId"] for ops in SPEC["paths"].values() for op in ops.values()}
    assert all(link["operationId"] in operation_ids for link in links.values())
    contacts = SPEC["paths"]["/v1/organizations/{organization_id}/contacts"]["post"]
    link = contacts["responses"]["201"]["links"][
        "get_v1_organizations_organization_id_contacts_contact_id"
    ]
    assert link["parameters"] == {
        "contact_id": "$response.body#/id",
        "organization_id": "$request.path.organization_id",
    }
