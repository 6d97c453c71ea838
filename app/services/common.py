"""Helpers every service uses: loading with scoping, and constraint errors as 409s."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Conflict, NotFound

M = TypeVar("M")


async def get_or_404(session: AsyncSession, model: type[M], id_: uuid.UUID, what: str) -> M:
    row = await session.get(model, id_)
    if row is None:
        raise NotFound(f"No {what} with id {id_}.")
    return row


def constraint_name(error: IntegrityError) -> str | None:
    """The violated constraint's name, as asyncpg reports it."""
    cause: Any = error.orig
    for candidate in (cause, getattr(cause, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if name:
            return str(name)
    return None


async def flush_or_conflict(session: AsyncSession, messages: Mapping[str, str]) -> None:
    """Flush; a unique/exclusion violation named in ``messages`` becomes a 409 saying why."""
    try:
        await session.flush()
    except IntegrityError as exc:
        name = constraint_name(exc)
        if name is not None and name in messages:
            raise Conflict(messages[name], constraint=name) from None
        raise


def apply_changes(row: Any, changes: Mapping[str, Any]) -> None:
    for field, value in changes.items():
        setattr(row, field, value)
