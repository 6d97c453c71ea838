"""Connections the server ends. The pool's check on checkout (app.db._check_on_checkout):
a connection the server ended is replaced before a request uses it (one round trip, where
SQLAlchemy's pre-ping takes three). A request whose connection is ended under it answers
503 `database-connection-lost` with Retry-After, saves nothing, and the next one works."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine
from app.errors import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from app.main import create_app
from tests.conftest import client_for, raw_connect
from tests.ticket_factories import make_desk, open_ticket, ticket_body


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


@pytest.fixture
async def one_connection_api(
    settings: Settings, db: AsyncEngine, admin_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client of an app whose pool holds one connection: once that one is killed,
    a request that succeeds has been given a new one."""
    assert settings.database_url is not None
    one = settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0})
    engine = make_engine(settings.database_url.get_secret_value(), one)
    try:
        async with client_for(create_app(one, engine=engine), admin_key) as api:
            yield api
    finally:
        await engine.dispose()


async def _blocked_behind(
    watcher: asyncpg.Connection, holder_pid: int, request: asyncio.Task[Any]
) -> int:
    """The backend that waits for ``holder_pid``'s lock (the request's): polled outside
    any transaction, so that each look at pg_stat_activity is a fresh one."""
    async with asyncio.timeout(15):
        while True:
            assert not request.done(), f"the request ended unblocked: {request.result()}"
            pid = await watcher.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                holder_pid,
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.01)


async def test_a_request_whose_connection_is_killed_answers_503_and_saves_nothing(
    settings: Settings, one_connection_api: httpx.AsyncClient
) -> None:
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    api = one_connection_api
    desk = await make_desk(api)
    first = await open_ticket(api, desk)
    body = ticket_body(desk, subject="Lost with its connection")
    retry_key = {"Idempotency-Key": "lost-connection"}
    holder, watcher = await raw_connect(url), await raw_connect(url)
    try:
        # The same Idempotency-Key inserted, not committed, by another transaction (what
        # the intake's advisory lock keeps requests from doing): the request's ticket goes
        # in, then its last statement (clocks, events, key) waits on the key's row.
        pending = holder.transaction()
        await pending.start()
        await holder.execute(
            "INSERT INTO idempotency_keys (api_key_id, key, request_hash, ticket_id, response,"
            " created_at) SELECT id, $1, 'other', $2, '{}', now() FROM api_keys",
            retry_key["Idempotency-Key"],
            first["id"],
        )
        request = asyncio.create_task(api.post("/v1/tickets", json=body, headers=retry_key))
        pid = await _blocked_behind(watcher, holder.get_server_pid(), request)
        wrote = await watcher.fetchval(
            "SELECT backend_xid IS NOT NULL FROM pg_stat_activity WHERE pid = $1", pid
        )
        assert wrote, "the request had written nothing yet"
        # Waits (up to 5 s) until the backend is gone: the kill is over when it returns.
        assert await watcher.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        await pending.rollback()
        lost = await request

        assert lost.status_code == 503, lost.text
        assert lost.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
        assert lost.headers["retry-after"] == "1"
        problem = lost.json()
        assert problem["type"] == PROBLEM_BASE + "database-connection-lost"
        assert problem["status"] == 503
        assert "connection was lost" in problem["detail"] and "Retry" in problem["detail"]
        # The server rolled the dead connection's transaction back: not half a ticket.
        assert await watcher.fetchval("SELECT count(*) FROM tickets") == 1
        assert (
            await watcher.fetchval(
                "SELECT count(*) FROM outbox_events WHERE type = 'ticket.created'"
            )
            == 1
        )
        assert await watcher.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    finally:
        await holder.close()
        await watcher.close()

    # The pool's one connection died with the request: the retry runs on a new one.
    retried = await api.post("/v1/tickets", json=body, headers=retry_key)
    assert retried.status_code == 201, retried.text
    assert "idempotent-replayed" not in retried.headers
    assert (await api.get(f"/v1/tickets/{retried.json()['id']}")).status_code == 200
