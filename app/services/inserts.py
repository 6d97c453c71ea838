"""New rows of several tables in one statement: data-modifying CTEs.

The ORM's unit of work writes one INSERT per table, each a round trip with its own
bookkeeping, and for a ticket just made that bookkeeping (identity map, change tracking)
buys nothing: nothing reads those rows again in the request. PostgreSQL runs every
``INSERT`` of a ``WITH`` as one statement and checks foreign keys at its end, so a row
may refer to another row of the same statement.

Statements are built once per shape (which tables, how many rows each) with bound
parameters, and the values passed at execution: giving SQLAlchemy the values inside the
statement costs more than the statement itself (each is coerced into a bound parameter).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import BindParameter, Column, Table, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause
from sqlmodel import SQLModel


def columns_of(table: Table, omit: Iterable[str] = ()) -> list[Column[Any]]:
    """The columns an INSERT gives (identity columns are the database's; ``omit``
    columns take their server default)."""
    skipped = set(omit)
    return [c for c in table.columns if c.identity is None and c.key not in skipped]


def values_of(row: SQLModel, omit: Iterable[str] = ()) -> dict[str, Any]:
    """A model's column values as an INSERT takes them (see :func:`columns_of`)."""
    return {c.key: getattr(row, c.key) for c in columns_of(_table(row), omit)}


def _table(row: SQLModel) -> Table:
    table: Table = row.__table__  # type: ignore[attr-defined]
    return table


_CHANNEL = re.compile(r"^[a-z_]+$")


@functools.lru_cache(maxsize=64)
def _statement(
    shape: tuple[tuple[Table, int], ...], notify: tuple[tuple[str, bool], ...]
) -> TextClause:
    # Text, not Core's insert().values(...).cte(): SQLAlchemy cannot cache a statement
    # of DML CTEs and compiled it on every request. The bound parameters keep their
    # columns' types (JSONB serialized as the ORM would).
    ctes: list[str] = []
    binds: list[BindParameter[Any]] = []
    for n, (table, count) in enumerate(shape):
        columns = columns_of(table)
        names = ", ".join(f'"{c.name}"' for c in columns)
        rows = []
        for i in range(count):
            row = [bindparam(f"p{n}_{i}_{c.key}", type_=c.type) for c in columns]
            binds.extend(row)
            rows.append("(" + ", ".join(f":{b.key}" for b in row) + ")")
        ctes.append(f'new_{n} AS (INSERT INTO "{table.name}" ({names}) VALUES {", ".join(rows)})')
    assert all(_CHANNEL.match(c) for c, _ in notify), notify  # our own channel names
    calls = []
    for i, (channel, with_payload) in enumerate(notify):
        if with_payload:
            binds.append(bindparam(f"notify_{i}", type_=Text()))
            calls.append(f"pg_notify('{channel}', :notify_{i})")
        else:
            calls.append(f"pg_notify('{channel}', '')")
    selected = ", ".join(calls) or "1"
    return text(f"WITH {', '.join(ctes)} SELECT {selected}").bindparams(*binds)


async def insert_all(
    session: AsyncSession,
    rows: Sequence[SQLModel],
    *,
    notify: Sequence[str | tuple[str, str]] = (),
) -> None:
    """Insert `rows` (tables in the order first met, rows in order within a table: an
    identity column numbers them in that order) and send ``pg_notify`` on each channel of
    `notify` (delivered at commit; a (channel, payload) pair sends that payload), in one
    statement."""
    tables: dict[Table, list[SQLModel]] = {}
    for row in rows:
        tables.setdefault(_table(row), []).append(row)
    params: dict[str, Any] = {}
    for n, (table, members) in enumerate(tables.items()):
        keys = [c.key for c in columns_of(table)]
        for i, row in enumerate(members):
            for key in keys:
                params[f"p{n}_{i}_{key}"] = getattr(row, key)
    shape = tuple((table, len(members)) for table, members in tables.items())
    channels = []
    for i, channel in enumerate(notify):
        if isinstance(channel, tuple):
            channel, params[f"notify_{i}"] = channel
            channels.append((channel, True))
        else:
            channels.append((channel, False))
    await session.execute(_statement(shape, tuple(channels)), params)
