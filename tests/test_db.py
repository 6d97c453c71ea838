"""The pool's check on checkout (app.db._check_on_checkout): a connection the server
ended is replaced before a request uses it (one round trip, where SQLAlchemy's pre-ping
takes three)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine
from tests.conftest import raw_connect


async def _backend(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(url: str, pid: int) -> None:
    conn = await raw_connect(url)
    try:
        await conn.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@pytest.fixture
async def pooled(settings: Settings) -> Any:
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    engine = make_engine(url, settings.model_copy(update={"db_pool_size": 1}))
    yield engine, url
    await engine.dispose()


async def test_a_connection_the_server_ended_is_replaced_before_use(pooled: Any) -> None:
    engine, url = pooled
    async with engine.connect() as conn:
        first = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    await _terminate(url, first)
    # The server's goodbye reaches the socket once the backend exits (no round trip).
    for _ in range(500):
        if driver.is_closed():
            break
        await asyncio.sleep(0.01)
    # The next checkout gets a live connection: no error reaches the caller.
    second = await _backend(engine)
    assert second != first


async def test_a_dead_connection_whose_socket_looks_open_is_replaced_too(
    pooled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, url = pooled
    first = await _backend(engine)
    # Dropped without a word on the way (a firewall, a proxy), or ended a moment ago (its
    # FATAL on the way, the socket not closed yet), and just returned to the pool: only
    # asking tells.
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        monkeypatch.setattr(type(driver), "is_closed", lambda _self: False)
    await _terminate(url, first)
    assert await _backend(engine) != first
