"""Cursor (keyset) pagination: stable under inserts, fast at any depth.

A cursor is an opaque, URL-safe token carrying the sort key of the last row returned.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from app.errors import invalid_field

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
    str | None, Query(max_length=512, description="`next_cursor` of the previous page.")
]


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        if "u" in value:
            return uuid.UUID(value["u"])
    return value


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError("wrong shape")
        return [_decode_value(v) for v in values]
    except (ValueError, TypeError, KeyError) as exc:
        raise invalid_field(
            "query.cursor", "not a cursor returned by this list; start without one", "cursor"
        ) from exc


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
