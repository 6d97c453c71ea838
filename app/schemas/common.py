"""Shared request/response building blocks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo

from annotated_types import GroupedMetadata
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StrictFloat,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from app.domain.vocab import Category, Severity
from app.errors import PATTERN_HELP, PROBLEM_MEDIA_TYPE

# Instants and dates a client may send: far enough from year 1 and 9999 that no conversion
# (to UTC, to a local date) can overflow, and wide enough for any real history or plan.
MIN_YEAR, MAX_YEAR = 1970, 2199

# ------------------------------------------------------------------ instants, dates
#
# One validation for every instant a client sends, wherever it comes from (body, query,
# path, a cursor): an RFC 3339 string with an offset — never a number, never a naive
# time — whose year lies in MIN_YEAR..MAX_YEAR. The schema says all of it (`format`, a
# `pattern` with the years, `x-year-range`), so what the contract accepts is what the
# server accepts.

_YEAR = r"(19[7-9][0-9]|2[01][0-9]{2})"
_DAY = r"(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
DATE_PATTERN = rf"^{_YEAR}-{_DAY}$"
MONTH_PATTERN = rf"^{_YEAR}-(0[1-9]|1[0-2])$"
INSTANT_PATTERN = (
    rf"^{_YEAR}-{_DAY}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{{1,6}})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_INSTANT_RE = re.compile(INSTANT_PATTERN)
_DATE_RE = re.compile(DATE_PATTERN)
# The same shapes with any year, and an instant without its offset: to say what is wrong.
_ANY_YEAR_INSTANT = re.compile(INSTANT_PATTERN.replace(_YEAR, "[0-9]{4}"))
_ANY_YEAR_DATE = re.compile(DATE_PATTERN.replace(_YEAR, "[0-9]{4}"))
_NAIVE = re.compile(INSTANT_PATTERN.split("(Z|")[0].replace(_YEAR, "[0-9]{4}") + "$")
# "+01:00" typed into a URL: a '+' in a query string arrives as a space.
_SPACE_OFFSET = re.compile(_NAIVE.pattern[:-1] + r" ([01][0-9]|2[0-3]):[0-5][0-9]$")
_RANGE = {"x-year-range": [MIN_YEAR, MAX_YEAR]}
INSTANT_EXAMPLE = "2026-03-06T17:00:00-08:00"
INSTANT_HELP = (
    f"ISO 8601 / RFC 3339 with an offset (Z or ±HH:MM), seconds included, years "
    f"{MIN_YEAR}-{MAX_YEAR}, e.g. {INSTANT_EXAMPLE}"
)


def _year_in_range(year: int) -> None:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise PydanticCustomError(
            "out_of_range", f"must lie between the years {MIN_YEAR} and {MAX_YEAR}"
        )


def parse_instant(value: Any) -> datetime:
    """A client's instant, as aware UTC; raises PydanticCustomError (a 422 naming the
    field) for anything else."""
    if isinstance(value, datetime):  # built in Python (services, tests), not sent
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError("timezone_aware", "must carry a timezone offset")
        _year_in_range(value.year)
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _INSTANT_RE.match(value):
        if isinstance(value, str) and _SPACE_OFFSET.match(value):
            raise PydanticCustomError(
                "instant",
                "has a space where its offset's '+' should be: a '+' in a URL's query string "
                "means a space, so encode it as %2B (…T17:00:00%2B01:00) or give the instant "
                "in UTC with Z (…T16:00:00Z)",
            )
        if isinstance(value, str) and _NAIVE.match(value):
            raise PydanticCustomError(
                "timezone_aware",
                "must carry a timezone offset, e.g. 2026-03-06T17:00:00-08:00 or ...Z",
            )
        if isinstance(value, str) and _ANY_YEAR_INSTANT.match(value):
            _year_in_range(int(value[:4]))
        raise PydanticCustomError("instant", f"must be an instant: {INSTANT_HELP}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # e.g. February 30
        raise PydanticCustomError("instant", "is not a date of the calendar") from None
    return parsed.astimezone(UTC)


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        _year_in_range(value.year)
        return value
    if not isinstance(value, str) or not _DATE_RE.match(value):
        if isinstance(value, str) and _ANY_YEAR_DATE.match(value):
            _year_in_range(int(value[:4]))
        raise PydanticCustomError("date", f"must be a date YYYY-MM-DD, years {MIN_YEAR}-{MAX_YEAR}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PydanticCustomError("date", "is not a date of the calendar") from None


Instant = Annotated[
    datetime,
    BeforeValidator(parse_instant),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "pattern": INSTANT_PATTERN,
            "description": INSTANT_HELP,
            "examples": [INSTANT_EXAMPLE],
            **_RANGE,
        }
    ),
]
DateInRange = Annotated[
    date,
    BeforeValidator(parse_date),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "pattern": DATE_PATTERN,
            "description": f"YYYY-MM-DD, years {MIN_YEAR}-{MAX_YEAR}",
            "examples": ["2026-03-06"],
            **_RANGE,
        }
    ),
]

# A business interval in a response: [start, end), two instants (a pair, not a tuple
# schema, so that every client and validator reads it).
Interval = Annotated[
    tuple[datetime, datetime],
    WithJsonSchema(
        {
            "type": "array",
            "items": {"type": "string", "format": "date-time"},
            "minItems": 2,
            "maxItems": 2,
        }
    ),
]


# ----------------------------------------------------------------- strict scalars
#
# FastAPI validates a JSON body in pydantic's python mode, where lax mode would turn
# `true` into 1, "20" into 20 and 0 into false. Request models use these instead of the
# bare types (tests/test_contract.py fails on a bare int, float or bool in a request).
def _a_number_not_a_bool_or_string(value: Any) -> Any:
    # JSON Schema's `integer` includes 2.0; a string or a boolean is not a number.
    if isinstance(value, bool | str | bytes):
        raise PydanticCustomError("int_type", "must be an integer (a JSON number)")
    return value


Int = Annotated[int, BeforeValidator(_a_number_not_a_bool_or_string)]
Bool = StrictBool
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]  # an integer is a number too

# ------------------------------------------------------------------------ strings
#
# Text is measured as sent (maxLength counts what the client sent), then trimmed of
# ASCII whitespace. NUL cannot be stored by PostgreSQL. Both rules are in the `pattern`,
# written with explicit characters (never \s, whose meaning differs between regex
# engines), so a client's validator and ours agree on every string.

WHITESPACE = " \t\n\r\x0b\x0c"
TEXT_PATTERN = r"^[^\x00]*$"
NON_BLANK_PATTERN = r"^[^\x00]*[^\x00\t\n\r\x0b\x0c ][^\x00]*$"
PATTERN_HELP[TEXT_PATTERN] = "must not contain NUL (\\u0000) characters"
PATTERN_HELP[NON_BLANK_PATTERN] = "must not be blank (nor contain NUL characters)"


def _trim(value: str) -> str:
    return value.strip(WHITESPACE)


@dataclass(frozen=True)
class Text(GroupedMetadata):
    """``Annotated[str, Text(n)]``: up to ``n`` characters as sent (may be empty or blank),
    no NUL, trimmed."""

    max_length: int

    def __iter__(self) -> Iterator[Any]:
        yield StringConstraints(max_length=self.max_length, pattern=TEXT_PATTERN)
        yield AfterValidator(_trim)


@dataclass(frozen=True)
class NonBlank(GroupedMetadata):
    """``Annotated[str, NonBlank(n)]``: ``min_length``..``n`` characters as sent, at least
    one that is not whitespace, no NUL, trimmed."""

    max_length: int
    min_length: int = 1

    def __iter__(self) -> Iterator[Any]:
        yield StringConstraints(
            min_length=self.min_length, max_length=self.max_length, pattern=NON_BLANK_PATTERN
        )
        yield AfterValidator(_trim)


TimeZoneName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_+/-]{1,64}$",
        description="an IANA time zone name",
        examples=["America/Vancouver", "UTC"],
    ),
]

# An e-mail address, as the pattern says (a dot-atom before the @, a domain name with a
# letters-only top-level label after it): what a person types, no quoted or IP forms.
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
PATTERN_HELP[EMAIL_PATTERN] = "must be an e-mail address such as ana@example.com"
Email = Annotated[
    str,
    Field(max_length=254, pattern=EMAIL_PATTERN, examples=["ana@acme.example"]),
]

# A query-string text PostgreSQL can hold (text cannot contain NUL).
NO_NUL = TEXT_PATTERN


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
    characters (PostgreSQL text cannot hold them); their fields use the strict types above."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if not _no_nul(value):
            raise ValueError("must not contain NUL (\\u0000) characters")
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        _bounds_as_keywords(handler.resolve_ref_schema(json_schema))
        return json_schema


# Bounds on a validated-before type (Int) reach the schema under pydantic's own names.
_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _bounds_as_keywords(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _bounds_as_keywords(item)
    elif isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            for ours, keyword in _BOUNDS.items():
                if ours in node:
                    node[keyword] = node.pop(ours)
        for key, value in node.items():
            if key not in ("examples", "example", "default", "enum", "const"):
                _bounds_as_keywords(value)


class PatchModel(StrictModel):
    """A partial update: only the fields sent change. ``null`` is accepted (and documented)
    only for the fields in ``nullable``, where it clears the value; elsewhere the schema
    does not allow it and it is a 422."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_nullable(cls, value: Any, info: core_schema.ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable:
            raise PydanticCustomError(
                "null_forbidden", "may not be null; leave the field out to keep its value"
            )
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = super().__get_pydantic_json_schema__(schema, handler)
        target = handler.resolve_ref_schema(json_schema)
        for name, prop in target.get("properties", {}).items():
            if name in cls.nullable:
                continue
            branches = prop.get("anyOf")
            if isinstance(branches, list):
                kept = [b for b in branches if b.get("type") != "null"]
                if len(kept) == 1:
                    prop.pop("anyOf")
                    prop.update(kept[0])
                else:
                    prop["anyOf"] = kept
            prop.pop("default", None)  # leaving a field out keeps it; there is no default
        return json_schema

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LocalTime(ReadModel):
    """An instant as the wall clock of a time zone reads it (the plan calendar's: what
    the customer is told)."""

    at: datetime = Field(
        description="the same instant, in local time with its UTC offset",
        examples=["2026-03-09T03:15:00-06:00"],
    )
    timezone: str = Field(description="IANA time zone", examples=["America/Mexico_City"])


def local_time(instant: datetime | None, timezone: str | None) -> LocalTime | None:
    if instant is None or timezone is None:
        return None
    return LocalTime(at=instant.astimezone(ZoneInfo(timezone)), timezone=timezone)


class EmailDefaults(StrictModel):
    """Severity and category of tickets made from e-mail (agents correct them with the
    `change` action). A field left null falls back: organization, then plan, then
    medium / other."""

    severity: Severity | None = None
    category: Category | None = None


# A DNS name of at least two labels (letters, digits, inner hyphens), any case.
_DOMAIN = (
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)


def _domains(values: list[str]) -> list[str]:
    return sorted({v.lower().rstrip(".") for v in values})


EmailDomains = Annotated[
    list[Annotated[str, Field(pattern=_DOMAIN, max_length=253)]],
    Field(
        max_length=50,
        description="Domains whose senders are this organization's people: an unknown "
        "sender of one of them is its end user (seed 002), not an unknown sender.",
        examples=[["client.example.mx"]],
    ),
    AfterValidator(_domains),
]


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
    429: "Too many at once for this key; retry after `Retry-After` seconds",
    503: (
        "The database connection was lost during the request (a database restart or "
        "failover): `database-connection-lost`; retry after `Retry-After` seconds"
    ),
}

# Headers a problem answer carries, documented with it.
_HEADERS: dict[int, dict[str, Any]] = {
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting the problem+json errors a route can return."""
    return {
        status: {
            "description": _DESCRIPTIONS.get(status, "Error"),
            **({"headers": _HEADERS[status]} if status in _HEADERS else {}),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
