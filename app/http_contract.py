"""What HTTP itself promises, for every route at once (routes declare nothing for it).

- Methods (:class:`MethodsMiddleware`): a path answers the methods its routes declare,
  plus HEAD wherever GET exists and OPTIONS everywhere (204 with the full ``Allow``); any
  other method is a 405 problem with ``Allow``. Where a literal path and a templated one
  both match (``/v1/webhooks/event-types`` and ``/v1/webhooks/{subscription_id}``), the
  literal one owns the path, so ``PATCH /v1/webhooks/event-types`` is a 405, not a 422
  about an id. There is no trailing-slash redirect (one built from the request's ``Host``
  header would point anywhere): ``/v1/tickets/`` is a 404 that says so.
- Requests (:func:`request_contract`, a dependency of every route): a query parameter the
  route does not declare is a 422 naming it (like an unknown body field), and a body whose
  ``Content-Type`` is not one the operation documents is a 415.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from typing import Any

from fastapi import Request, params
from fastapi.dependencies.utils import get_flat_params
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from app.errors import (
    PROBLEM_MEDIA_TYPE,
    MethodNotAllowed,
    UnsupportedMediaType,
    ValidationFailed,
    field_error,
)

# The order of the Allow header (RFC 9110 leaves it free; a stable one reads better).
_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _specificity(route: Any) -> int:
    return len(getattr(route, "param_convertors", {}) or {})


def effective_routes(routes: list[BaseRoute]) -> list[Any]:
    """Every route with its full path, in the order the router tries them (included
    routers flattened)."""
    return [r for r in iter_route_contexts(routes) if r.path is not None and r.methods is not None]


@dataclass(frozen=True)
class _Path:
    template: str
    regex: re.Pattern[str]
    specificity: int
    methods: frozenset[str]  # what the path answers (HEAD and OPTIONS included)
    native: frozenset[str]  # what its routes declare themselves
    route: Any


def _allowed(methods: Iterable[str]) -> frozenset[str]:
    allowed = {m.upper() for m in methods}
    if "GET" in allowed:
        allowed.add("HEAD")
    allowed.add("OPTIONS")
    return frozenset(allowed)


def allow_header(methods: Iterable[str]) -> str:
    known = [m for m in _ORDER if m in methods]
    return ", ".join(known + sorted(set(methods) - set(_ORDER)))


class MethodsMiddleware:
    """HEAD, OPTIONS and 405 for every path (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._paths: list[_Path] | None = None

    def _table(self, routes: list[BaseRoute]) -> list[_Path]:
        if self._paths is None:
            by_template: dict[str, _Path] = {}
            for route in effective_routes(routes):
                found = by_template.get(route.path)
                native = frozenset(m.upper() for m in route.methods)
                if found is not None:
                    native |= found.native
                by_template[route.path] = _Path(
                    route.path,
                    route.path_regex,
                    _specificity(route),
                    _allowed(native),
                    native,
                    found.route if found is not None else route.original_route,
                )
            self._paths = list(by_template.values())
        return self._paths

    def _owner(self, scope: Scope) -> _Path | None:
        path = scope["path"]
        matches = [p for p in self._table(scope["app"].routes) if p.regex.match(path)]
        return min(matches, key=lambda p: p.specificity) if matches else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        owner = self._owner(scope)
        if owner is None:  # no such path: the router's 404
            await self.app(scope, receive, send)
            return
        method = scope["method"].upper()
        allow = allow_header(owner.methods)
        if method == "OPTIONS":
            scope["route"] = owner.route
            await _respond(scope, receive, send, 204, allow, None)
        elif method not in owner.methods:
            scope["route"] = owner.route
            error = MethodNotAllowed(
                f"{method} is not allowed on {scope['path']}; it allows {allow}."
            )
            await _respond(scope, receive, send, 405, allow, error.to_problem(scope["path"]))
        elif method == "HEAD" and "HEAD" not in owner.native:
            await _as_head(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _respond(
    scope: Scope, receive: Receive, send: Send, status: int, allow: str, body: Any
) -> None:
    response: Response
    if body is None:
        response = Response(status_code=status, headers={"Allow": allow})
    else:
        response = JSONResponse(
            body, status_code=status, headers={"Allow": allow}, media_type=PROBLEM_MEDIA_TYPE
        )
    await response(scope, receive, send)


async def _as_head(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run the GET and answer its status and headers only. The response ends with its
    headers, and the GET then reads a disconnect, so that a stream (server-sent events)
    stops instead of running for a client that will never read it."""
    done = False

    async def head_send(message: AsgiMessage) -> None:
        nonlocal done
        if done:
            return
        if message["type"] == "http.response.start":
            await send(message)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            done = True

    async def head_receive() -> AsgiMessage:
        if done:
            return {"type": "http.disconnect"}
        return await receive()

    await app({**scope, "method": "GET"}, head_receive, head_send)


# ------------------------------------------------------------------ request contract


@dataclass(frozen=True)
class _Contract:
    query: frozenset[str]
    media_types: frozenset[str]
    authenticated: bool  # the route authenticates: checked after the key (check_request)


_KEY = "_sladesk_contract"  # kept on the route object itself (routes are not hashable)


# Dependencies that authenticate the caller (registered by app.security): on a route that
# has one, the contract is checked right after authentication, so a request without a valid
# key is a 401 whatever else is wrong with it.
_AUTHENTICATORS: set[Any] = set()


def authenticates(dependency: Any) -> Any:
    """Mark a dependency as the one that authenticates (see :func:`check_request`)."""
    _AUTHENTICATORS.add(dependency)
    return dependency


def _authenticated_by(dependant: Any) -> bool:
    return any(d.call in _AUTHENTICATORS or _authenticated_by(d) for d in dependant.dependencies)


def _contract(route: APIRoute) -> _Contract:
    found: _Contract | None = route.__dict__.get(_KEY)
    if found is None:
        flat = get_flat_params(route.dependant)
        query = frozenset(f.alias for f in flat if isinstance(f.field_info, params.Query))
        media: set[str] = set()
        if route.body_field is not None:
            media.add(str(getattr(route.body_field.field_info, "media_type", "application/json")))
        extra = (route.openapi_extra or {}).get("requestBody", {})
        media.update(str(k) for k in extra.get("content", {}))
        found = _Contract(
            query, frozenset(m.lower() for m in media), _authenticated_by(route.dependant)
        )
        route.__dict__[_KEY] = found
    return found


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def _media_type(value: str) -> str:
    message = Message()
    message["content-type"] = value
    return message.get_content_type().lower()


async def request_contract(request: Request) -> None:
    """Every route's dependency: no undeclared query parameter, no undocumented body type.
    A route that authenticates checks them once the caller is known (check_request)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or _contract(route).authenticated:
        return
    check_request(request)


def check_request(request: Request) -> None:
    """The request's contract (see :func:`request_contract`); called by the authenticating
    dependency once the key is valid."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    contract = _contract(route)
    unknown = sorted({k for k in request.query_params if k not in contract.query})
    if unknown:
        declared = ", ".join(sorted(contract.query)) or "none"
        raise ValidationFailed(
            f"Unknown query parameter(s) {', '.join(unknown)}; this operation takes: {declared}.",
            [
                field_error(f"query.{k}", "unknown query parameter; remove it", "unknown_query")
                for k in unknown
            ],
        )
    if contract.media_types and _has_body(request):
        given = request.headers.get("content-type")
        if given is None or _media_type(given) not in contract.media_types:
            accepted = ", ".join(sorted(contract.media_types))
            raise UnsupportedMediaType(
                f"Content-Type {given or '(none)'} is not accepted here; send {accepted}.",
                accepted=sorted(contract.media_types),
            )
