"""Cursor (keyset) pagination: stable under inserts, fast at any depth.

A cursor is an opaque, URL-safe token carrying the sort key of the last row returned,
signed (HMAC-SHA256) with a server secret kept in the database (``server_secrets``), so
that a forged or altered cursor is refused (a 422 on ``query.cursor``) before any of its
values reaches SQL; the values are validated again anyway (instants go through the one
instant validation, app.schemas.common.parse_instant).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from app.errors import ValidationFailed, invalid_field
from app.schemas.common import parse_instant

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Page length (max {MAX_LIMIT}).")
]
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=512,
        pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$",
        description="`next_cursor` of the previous page (opaque, signed).",
    ),
]


CURSOR_SECRET = "cursor-signing"
# The signing key of this request (set by the session dependency from server_secrets);
# code running outside a request (benchmarks, scripts) signs with a key of its process.
_PROCESS_KEY = secrets.token_bytes(32)
cursor_key: ContextVar[bytes] = ContextVar("cursor_key", default=_PROCESS_KEY)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode((text + "=" * (-len(text) % 4)).encode())


def _signature(payload: str) -> str:
    return _b64(hmac.new(cursor_key.get(), payload.encode(), hashlib.sha256).digest()[:16])


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    payload = _b64(raw.encode())
    return f"{payload}.{_signature(payload)}"


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "t" in value:
            return parse_instant(value["t"])
        if "u" in value:
            return uuid.UUID(value["u"])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise ValueError("out of range")
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL")
    if isinstance(value, int | float | str):
        return value
    raise ValueError("not a sort key")


def _refused() -> ValidationFailed:
    return invalid_field(
        "query.cursor", "not a cursor returned by this list; start without one", "cursor"
    )


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    payload, _, signature = cursor.partition(".")
    if not hmac.compare_digest(signature.encode(), _signature(payload).encode()):
        raise _refused()
    try:
        values = json.loads(_unb64(payload))
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError("wrong shape")
        return [_decode_value(v) for v in values]
    except (ValueError, TypeError, KeyError) as exc:  # PydanticCustomError is a ValueError
        raise _refused() from exc


def keyset(
    stmt: Select[Any],
    columns: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any] | Any],
    cursor: str | None,
    limit: int,
    *,
    descending: bool = False,
) -> Select[Any]:
    """Order by ``columns`` (last one unique, e.g. id) and start after the cursor."""
    if cursor is not None:
        values = decode_cursor(cursor, len(columns))
        _check_types(columns, values)
        if descending:
            stmt = stmt.where(tuple_(*columns) < tuple_(*values))
        else:
            stmt = stmt.where(tuple_(*columns) > tuple_(*values))
    order = [c.desc() if descending else c.asc() for c in columns]
    return stmt.order_by(*order).limit(limit + 1)


def _check_types(columns: Sequence[Any], values: Sequence[Any]) -> None:
    """A cursor from another list (or forged) must not reach SQL with the wrong types."""
    for column, value in zip(columns, values, strict=True):
        try:
            expected = column.type.python_type
        except (AttributeError, NotImplementedError):
            continue
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if ok and isinstance(value, datetime):
            ok = value.tzinfo is not None
        if not ok:
            raise invalid_field(
                "query.cursor", "not a cursor returned by this list; start without one", "cursor"
            )


def page_of(rows: Sequence[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    """Split the limit+1 rows fetched by :func:`keyset` into a page and its next cursor."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(key(items[-1])) if len(rows) > limit and items else None
    return items, next_cursor


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CursorQuery",
    "LimitQuery",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "keyset",
    "page_of",
]
