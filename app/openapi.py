"""The OpenAPI document, with the problems every operation shares documented once.

Every ``/v1`` operation can answer 401 and 403, every operation 422 (an unknown query
parameter is one); every operation with a body can answer 400 (malformed JSON), 413 (too
large) and 415 (a Content-Type it does not take). Routes declare only their own (404, 409…).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.schemas.common import problems

_V1 = (401, 403)
_EVERY = (422,)
_WITH_BODY = (400, 413, 415)


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
        shared = {str(k): v for k, v in problems(*_V1, *_EVERY, *_WITH_BODY).items()}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                statuses = [*(_V1 if path.startswith("/v1") else ()), *_EVERY]
                if "requestBody" in operation:
                    statuses += list(_WITH_BODY)
                for status in statuses:
                    responses.setdefault(str(status), shared[str(status)])
                if "422" in responses:  # FastAPI's own 422 model is not what we send
                    responses["422"] = shared["422"]
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        _add_problem_schema(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_problem_schema(schema: dict[str, Any]) -> None:
    from app.schemas.common import Problem

    components = schema["components"]["schemas"]
    if "Problem" not in components:
        definition = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in definition.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components["Problem"] = definition
