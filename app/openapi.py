"""The OpenAPI document, with the problems every operation shares documented once.

Every ``/v1`` operation can answer 401 and 403, every operation 422 (an unknown query
parameter is one); every operation with a body can answer 400 (malformed JSON), 413 (too
large) and 415 (a Content-Type it does not take); every operation that takes an API key
(looked up in the database) can answer 503 when the database connection is lost under it
(app.errors.DatabaseConnectionLost). Routes declare only their own (404, 409…).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.schemas.common import problems

_V1 = (401, 403)
_EVERY = (422,)
_WITH_BODY = (400, 413, 415)
_WITH_DATABASE = (503,)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            webhooks=app.webhooks.routes,
            tags=app.openapi_tags,
        )
        shared = {
            str(k): v for k, v in problems(*_V1, *_EVERY, *_WITH_BODY, *_WITH_DATABASE).items()
        }
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                statuses = [*(_V1 if path.startswith("/v1") else ()), *_EVERY]
                if "requestBody" in operation:
                    statuses += list(_WITH_BODY)
                if "security" in operation:  # its key is looked up in the database
                    statuses += list(_WITH_DATABASE)
                for status in statuses:
                    responses.setdefault(str(status), shared[str(status)])
                if "422" in responses:  # FastAPI's own 422 model is not what we send
                    responses["422"] = shared["422"]
        _link_created_resources(schema.get("paths", {}))
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        _add_problem_schema(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _link_created_resources(paths: dict[str, Any]) -> None:
    """OpenAPI links from each creation (`POST /x` answering 201 with an `id`) to every
    operation on `/x/{param}…`, the new id as that parameter: clients and stateful API
    testers can follow a resource from its creation to everything that acts on it."""
    for path, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        links = created.setdefault("links", {})
        for other, other_operations in paths.items():
            rest = other[len(path) :]
            if not other.startswith(path + "/{") or "}" not in rest:
                continue
            param = rest[2 : rest.index("}")]
            for method, operation in other_operations.items():
                if "operationId" not in operation:
                    continue
                parameters = {param: "$response.body#/id"}
                for own in operations["post"].get("parameters", []):
                    if own["in"] == "path":
                        parameters[own["name"]] = f"$request.path.{own['name']}"
                name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{method}{other}").strip("_")
                links[name] = {"operationId": operation["operationId"], "parameters": parameters}
        if not links:
            created.pop("links")


def _add_problem_schema(schema: dict[str, Any]) -> None:
    from app.schemas.common import Problem

    components = schema["components"]["schemas"]
    if "Problem" not in components:
        definition = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in definition.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components["Problem"] = definition
