"""Shared request/response building blocks."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.errors import PROBLEM_MEDIA_TYPE, ValidationFailed, field_error


class StrictModel(BaseModel):
    """Request bodies refuse unknown fields (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


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
