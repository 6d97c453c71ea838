"""Typed errors and the one place that renders them as RFC 9457 ``application/problem+json``.

Services raise subclasses of :class:`AppError`; they carry the HTTP status and a stable
problem ``type``. Framework errors (validation, unknown route, wrong method) are mapped
here too, so that every 4xx a client sees has the same shape, and so is a database
connection lost under a request (:func:`connection_lost`: a 503 to retry, not a 500).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://sladesk.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

logger = logging.getLogger("sladesk.errors")

# What a shared `pattern` means, said for a person (app.schemas.common registers them).
PATTERN_HELP: dict[str, str] = {}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


class AppError(Exception):
    """Base of every error a service raises on purpose."""

    status: int = 500
    slug: str = "internal-error"
    title: str = "Internal server error"

    # RFC 9457 members an extension may not replace (a problem's `status` is the HTTP one).
    RESERVED = frozenset({"type", "title", "status", "detail", "instance"})

    def __init__(self, detail: str, **extra: Any) -> None:
        clash = self.RESERVED & extra.keys()
        if clash:
            raise ValueError(f"problem extension members {sorted(clash)} are reserved")
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequest(AppError):
    status, slug, title = 400, "bad-request", "Bad request"


class MalformedJSON(AppError):
    status, slug, title = 400, "malformed-json", "Malformed JSON body"


class Unauthorized(AppError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = 'Bearer realm="sladesk"'


class Forbidden(AppError):
    status, slug, title = 403, "forbidden", "Not allowed for this API key"


class NotFound(AppError):
    status, slug, title = 404, "not-found", "Not found"


class MethodNotAllowed(AppError):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(AppError):
    status, slug, title = 409, "conflict", "Conflict with the current state"


class PreconditionFailed(AppError):
    status, slug, title = 412, "precondition-failed", "Precondition failed"


class PayloadTooLarge(AppError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(AppError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class ValidationFailed(AppError):
    """A 422 about the request's content, with the list of bad fields."""

    status, slug, title = 422, "validation-error", "The request is not valid"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None, **extra: Any):
        super().__init__(detail, errors=errors or [], **extra)


class EntitlementDenied(ValidationFailed):
    """The requester is not covered; ``reasons`` are stable codes (see entitlement)."""

    slug, title = "entitlement-denied", "Not entitled to support"

    def __init__(self, detail: str, reasons: list[str]) -> None:
        super().__init__(detail, reasons=reasons)


class AfterHoursNotAllowed(ValidationFailed):
    """A work log entry falls (partly) outside the plan's hours, which the plan does not
    allow to be worked (seed 004: after-hours work is requested in advance)."""

    slug, title = "after-hours-not-allowed", "After-hours work is not allowed by the plan"


class AfterHoursNotRequested(ValidationFailed):
    """A work log entry has after-hours time outside every window the client requested,
    and the plan refuses such time (`after_hours.unrequested: refuse`)."""

    slug, title = "after-hours-not-requested", "After-hours time the client did not request"


class AuthorizationPending(Conflict):
    """Billable time waits for the customer's decision on a pending authorization."""

    slug, title = "authorization-pending", "Waiting for the customer's authorization"


class AuthorizationDeclined(Conflict):
    """The customer declined more time than the estimate."""

    slug, title = "authorization-declined", "The customer declined more time"


class TooManyRequests(AppError):
    """Too many of something at once for this key (e.g. open event streams)."""

    status, slug, title = 429, "too-many-requests", "Too many requests"

    def __init__(self, detail: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)


class ServiceUnavailable(AppError):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


class DatabaseConnectionLost(ServiceUnavailable):
    """The request's database connection ended under it: a server restart, a failover, an
    administrator's ``pg_terminate_backend``.

    Nothing of the request is half-done: PostgreSQL rolls back the open transaction of a
    connection that ends, so a request that lost its connection before COMMIT saved
    nothing (the default ``detail``). Only a connection lost during COMMIT itself leaves
    the client not knowing whether it committed, all or nothing
    (:data:`LOST_AT_COMMIT`, raised by ``app.db.get_session``). The pool drops the dead
    connection: a retry gets a new one."""

    slug, title = "database-connection-lost", "The database connection was lost"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1, **extra: Any) -> None:
        super().__init__(
            detail
            or "The database connection was lost during this request (a database restart or "
            f"failover); nothing of it was saved. Retry it in {retry_after} s (Retry-After).",
            **extra,
        )
        self.headers["Retry-After"] = str(retry_after)


LOST_AT_COMMIT = (
    "The database connection was lost while this request's changes were being committed: "
    "they were saved entirely or not at all. Read the resource to see which before retrying "
    "(a ticket intake retried with its Idempotency-Key is always safe)."
)

# What asyncpg raises when the server ended the session: the connection is gone
# (08003, "connection was closed in the middle of operation"), or the server says it is
# ending it (57P01 pg_terminate_backend or a shutdown, 57P02 a crash). Not 57014
# (query_canceled: a statement timeout or a cancel), whose connection lives on.
_SERVER_ENDED = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def connection_lost(error: BaseException) -> bool:
    """Whether ``error`` says the database connection died, as opposed to a statement
    failing on a live one (a constraint, a timeout, a bug: those stay what they are).

    SQLAlchemy says so with ``connection_invalidated``; the driver's own error is what it
    wraps (``raise … from``), or arrives raw from code that talks to asyncpg directly.
    Only the ``__cause__`` chain counts, never ``__context__``: an error raised while
    *handling* a lost connection is not one."""
    seen: BaseException | None = error
    for _ in range(8):  # a chain is a few links: DBAPIError <- adapter <- asyncpg <- FATAL
        if seen is None:
            return False
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, _SERVER_ENDED):
            return True
        if isinstance(seen, asyncpg.InterfaceError) and "connection is closed" in str(seen):
            return True  # asyncpg on a connection it already knows is closed
        seen = seen.__cause__
    return False


def field_error(field: str, message: str, kind: str = "invalid") -> dict[str, Any]:
    """One entry of a validation problem's ``errors`` list."""
    return {"field": field, "message": message, "type": kind}


def invalid_field(field: str, message: str, kind: str = "invalid") -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", [field_error(field, message, kind)])


def unquoted_etags(if_match: str) -> list[str]:
    """The entity tags of an If-Match header that lack their double quotes (``2``
    instead of ``"2"``): such a header can never match, and saying so helps."""
    tags = [tag.strip() for tag in if_match.split(",") if tag.strip()]
    return [t for t in tags if t != "*" and not t.removeprefix("W/").startswith('"')]


def if_match_unquoted(header: str, current: str, **extra: Any) -> PreconditionFailed:
    return PreconditionFailed(
        f"If-Match {header} is not an entity tag: send it in double quotes, exactly as the "
        f"ETag header gave it (here If-Match: {current}).",
        **extra,
    )


def problem_response(error: AppError, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        error.to_problem(instance),
        status_code=error.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=error.headers or None,
    )


def _is_type_tag(part: str) -> bool:
    return "[" in part or part in {"constrained-str", "constrained-int", "str", "int"}


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        source, rest = parts[0], parts[1:]
    else:
        source, rest = "body", parts
    path = ""
    for part in rest:
        if isinstance(part, str) and _is_type_tag(part):
            continue  # pydantic names the union member it tried; a person needs the field
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return f"{source}.{path}" if path else source


def _validation_problem(exc: RequestValidationError) -> AppError:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):
        ctx = errors[0].get("ctx") or {}
        reason = ctx.get("error", "could not be parsed")
        return MalformedJSON(f"The request body is not valid JSON: {reason}.")
    fields = []
    for err in errors:
        kind = str(err.get("type", "invalid"))
        message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown field; remove it (see the schema in /docs)"
        elif kind == "string_pattern_mismatch":
            pattern = (err.get("ctx") or {}).get("pattern")
            message = PATTERN_HELP.get(str(pattern), message)
        elif kind == "timezone_aware":
            message = "must carry a timezone offset, e.g. 2026-03-06T17:00:00-08:00 or ...Z"
        elif _plus_decoded_as_space(err):
            # A query string turns an unencoded "+" into a space: "+01:00" arrives " 01:00".
            message = (
                "a '+' in a query string means a space: write the offset's + as %2B "
                "(e.g. 2026-03-06T17:00:00%2B01:00), or give the instant in UTC with Z"
            )
        fields.append(field_error(_loc_to_field(err.get("loc", ())), message, kind))
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:3])
    if len(fields) > 3:
        summary += f"; and {len(fields) - 3} more"
    return ValidationFailed(summary, fields)


def _plus_decoded_as_space(err: Any) -> bool:
    loc = err.get("loc", ())
    value = err.get("input")
    return (
        bool(loc)
        and loc[0] == "query"
        and str(err.get("type", "")).startswith(("datetime", "timezone"))
        and isinstance(value, str)
        and re.search(r"\d \d\d(:?\d\d)?$", value) is not None
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return problem_response(exc, request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_validation_problem(exc), request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        error: AppError
        if exc.status_code == 404:
            path = request.url.path
            hint = " (without the trailing slash?)" if len(path) > 1 and path.endswith("/") else ""
            error = NotFound(f"No route {request.method} {path}{hint}; see /docs.")
        elif exc.status_code == 413:
            error = PayloadTooLarge(str(exc.detail))
        elif exc.status_code == 405:
            error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}.")
            if exc.headers and "allow" in {k.lower() for k in exc.headers}:
                error.headers.update(exc.headers)
        else:
            error = AppError(str(exc.detail))
            error.status, error.slug, error.title = exc.status_code, "http-error", "HTTP error"
        return problem_response(error, request)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if not connection_lost(exc):
            # A statement that failed on a live connection is a bug (or a timeout): it goes
            # on to on_unexpected, a logged 500, exactly as if this handler did not exist.
            raise exc
        root: BaseException = exc
        while root.__cause__ is not None:
            root = root.__cause__
        logger.warning(
            "database connection lost during the request: %s: %s",
            type(root).__name__,
            root,
            extra={"path": request.url.path},
        )
        return problem_response(DatabaseConnectionLost(), request)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(AppError("An unexpected error occurred; it was logged."), request)

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    # Every database error passes here first; only a lost connection stops (a 503).
    for database_error in (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(database_error, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
