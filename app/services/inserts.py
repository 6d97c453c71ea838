"""New rows of several tables in one statement: data-modifying CTEs.

The ORM's unit of work writes one INSERT per table, each a round trip with its own
bookkeeping, and for a ticket just made that bookkeeping (identity map, change tracking)
buys nothing: nothing reads those rows again in the request. PostgreSQL runs every
``INSERT`` of a ``WITH`` as one statement and checks foreign keys at its end, so a row
may refer to another row of the same statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel


def values_of(row: SQLModel, omit: Iterable[str] = ()) -> dict[str, Any]:
    """A model's column values as an INSERT takes them (identity columns are the
    database's; ``omit`` columns take their server default)."""
    table: Table = row.__table__  # type: ignore[attr-defined]
    skipped = set(omit)
    return {
        c.key: getattr(row, c.key)
        for c in table.columns
        if c.identity is None and c.key not in skipped
    }


async def insert_all(
    session: AsyncSession, rows: Sequence[SQLModel], *, notify: Sequence[str] = ()
) -> None:
    """Insert `rows` (tables in the order first met, rows in order within a table: an
    identity column numbers them in that order) and send ``pg_notify`` on each channel of
    `notify` (delivered at commit), in one statement."""
    tables: dict[Table, list[dict[str, Any]]] = {}
    for row in rows:
        tables.setdefault(row.__table__, []).append(values_of(row))  # type: ignore[attr-defined]
    ctes = [
        insert(table).values(values).cte(f"new_{n}")
        for n, (table, values) in enumerate(tables.items())
    ]
    columns: list[Any] = [func.pg_notify(channel, "") for channel in notify] or [literal(1)]
    await session.execute(select(*columns).add_cte(*ctes))
