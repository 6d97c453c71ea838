"""Shared request/response building blocks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from app.errors import PROBLEM_MEDIA_TYPE, ValidationFailed, field_error

# Instants and dates a client may send: far enough from year 1 and 9999 that no conversion
# (to UTC, to a local date) can overflow, and wide enough for any real history or plan.
MIN_YEAR, MAX_YEAR = 1970, 2199


def _instant_in_range(value: datetime) -> datetime:
    # Checked on the wall-clock fields (offsets are under a day), so no conversion can
    # overflow before the check.
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must lie between the years {MIN_YEAR} and {MAX_YEAR}")
    return value.astimezone(UTC)


def _date_in_range(value: date) -> date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must lie between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


Instant = Annotated[
    AwareDatetime,
    AfterValidator(_instant_in_range),
    Field(
        description=f"ISO 8601 with an offset, years {MIN_YEAR}-{MAX_YEAR}",
        examples=["2026-03-06T17:00:00-08:00"],
    ),
]
DateInRange = Annotated[date, AfterValidator(_date_in_range)]


def _no_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, list | tuple):
        return all(_no_nul(v) for v in value)
    if isinstance(value, dict):
        return all(_no_nul(k) and _no_nul(v) for k, v in value.items())
    return True


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields (a typo must not be silently ignored) and NUL
    characters (PostgreSQL text cannot hold them)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if not _no_nul(value):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value


class PatchModel(StrictModel):
    """A partial update: only the fields sent change; ``null`` only where ``nullable`` says."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    def changes(self) -> dict[str, Any]:
        sent = self.model_dump(exclude_unset=True)
        nulls = sorted(k for k, v in sent.items() if v is None and k not in self.nullable)
        if nulls:
            raise ValidationFailed(
                f"{', '.join(nulls)} may not be null; leave a field out to keep its value.",
                [field_error(f"body.{k}", "may not be null", "null_forbidden") for k in nulls],
            )
        return sent


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FieldProblem(BaseModel):
    field: str = Field(examples=["body.email"])
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details. Extra members depend on the problem ``type``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["https://sladesk.dev/problems/validation-error"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


_DESCRIPTIONS = {
    400: "Malformed request (e.g. JSON that does not parse)",
    401: "Missing, invalid, expired or revoked API key",
    403: "The key's role may not do this",
    404: "No such resource (or not visible to this key)",
    405: "Method not allowed",
    409: "Conflict with the current state",
    412: "If-Match did not match the current ETag",
    413: "Request body too large",
    415: "The body's Content-Type is not one this operation accepts",
    422: "The request is not valid; `errors` lists each bad field",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting the problem+json errors a route can return."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
