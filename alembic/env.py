"""Alembic environment. Called by app.migrate with a live connection, or by the alembic CLI
(`alembic upgrade head` from the repository's root, with SLADESK_DATABASE_URL set).

This directory has no __init__.py on purpose: it must not shadow the alembic library."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel.sql.sqltypes import AutoString

from app.models import metadata

target_metadata = metadata


def render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    """Render SQLModel's AutoString as plain sa.String so migrations don't import sqlmodel."""
    if kind == "type" and isinstance(item, AutoString):
        return f"sa.String(length={item.length})" if item.length else "sa.String()"
    return False


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_online_async(url: str) -> None:
    from app.config import Settings
    from app.db import make_engine

    # The URL rules of the service itself (sslmode, sockets …: app.dburl).
    engine = make_engine(url, Settings(database_url=url), pooled=False)
    async with engine.begin() as conn:
        await conn.run_sync(run_with)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
elif context.is_offline_mode():
    context.configure(
        url=os.environ.get("SLADESK_DATABASE_URL", "postgresql://"), literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    url = os.environ.get("SLADESK_DATABASE_URL")
    if not url:
        raise SystemExit("set SLADESK_DATABASE_URL to run alembic from the command line")
    asyncio.run(run_online_async(url))
