"""sladesk behind a real PgBouncer in transaction mode (Debian's ``pgbouncer``): intake and
actions through the API, the timer loop and the dispatcher, with a server pool smaller
than the client pool so that connections are really shared. asyncpg's prepared statements
are the classic failure there; LISTEN needs the direct SLADESK_LISTEN_DATABASE_URL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from app.security import Role
from app.workers.dispatcher import Dispatcher
from app.workers.escalation import TimerConfig, TimerLoop
from app.workers.runner import running_workers
from tests.conftest import auth, make_key
from tests.plan_factories import target
from tests.servers import PgBouncer
from tests.ticket_factories import make_desk, open_ticket
from tests.webhook_harness import Receiver, config, eventually


@pytest.fixture(scope="module")
def bouncer(database_url: str) -> Iterator[PgBouncer]:
    started = PgBouncer.start(database_url, pool_size=2)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
async def pooled(
    bouncer: PgBouncer, database_url: str, db: AsyncEngine
) -> AsyncIterator[tuple[Settings, AsyncEngine]]:
    settings = Settings(
        database_url=bouncer.url(),
        listen_database_url=database_url,
        db_transaction_pooling=True,
        db_pool_size=6,
        db_max_overflow=0,
        run_workers=False,
        webhooks_allow_private=True,
        webhooks_allow_http=True,
    )
    engine = make_engine(bouncer.url(), settings)
    try:
        yield settings, engine
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def _running(*loops: Any) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(loop.run(stop)) for loop in loops]
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_intake_actions_timers_and_webhooks_through_pgbouncer(
    pooled: tuple[Settings, AsyncEngine], database_url: str
) -> None:
    settings, engine = pooled
    receiver = Receiver()
    await receiver.start()
    # Long safety re-checks: a loop wakes in time only if its LISTEN really works.
    timers = TimerLoop(engine, TimerConfig(safety_recheck=3600, listen_url=database_url))
    dispatcher = Dispatcher(engine, config(safety_recheck=3600, listen_url=database_url))
    app = create_app(settings, engine=engine)
    key = await make_key(engine, Role.ADMIN)
    try:
        async with (
            _running(timers, dispatcher),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t", headers=auth(key)
            ) as api,
        ):
            async with asyncio.timeout(30):
                await timers.listening.wait()
                await dispatcher.listening.wait()
            hook = await api.post(
                "/v1/webhooks", json={"url": receiver.url(), "event_types": ["*"]}
            )
            assert hook.status_code == 201, hook.text
            desk = await make_desk(
                api,
                timezone="UTC",
                hours="00:00-24:00",
                targets=[target("first_response", 60, clock="24x7")],
            )
            # Many requests at once over 6 client connections and 2 server connections.
            tickets = await asyncio.gather(*(open_ticket(api, desk) for _ in range(12)))
            for ticket in tickets[:6]:
                url = f"/v1/tickets/{ticket['id']}/actions"
                assert (await api.post(f"{url}/note", json={"body": "checked"})).status_code == 200
                reply = await api.post(f"{url}/reply", json={"body": "On it."})
                assert reply.status_code == 200, reply.text
            # Reads too, many at once (a read-only route keeps its transaction here).
            reads = await asyncio.gather(*(api.get(f"/v1/tickets/{t['id']}") for t in tickets))
            assert [r.status_code for r in reads] == [200] * len(tickets), reads[0].text
            # Received two hours ago: its response clock is already breached; the timer
            # loop hears of the new clock through LISTEN and fires at once.
            received = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
            late = await open_ticket(api, desk, received_at=received)

            def seen(ticket_id: str) -> set[str]:
                return {
                    r.json["type"]
                    for r in receiver.on("/hook")
                    if (r.json["data"].get("ticket") or {}).get("id") == ticket_id
                }

            await eventually(
                lambda: "sla.breached" in seen(late["id"]), within=60, what="sla.breached"
            )
            await eventually(
                lambda: all("ticket.created" in seen(t["id"]) for t in tickets),
                within=60,
                what="every ticket.created delivered",
            )
            assert all("ticket.replied" in seen(t["id"]) or len(seen(t["id"])) > 1
                       for t in tickets[:6])  # fmt: skip
            listed = await api.get("/v1/tickets", params={"limit": 200})
            assert len(listed.json()["items"]) == 13
    finally:
        await receiver.stop()


async def test_pooling_without_a_direct_listen_url_is_refused(
    pooled: tuple[Settings, AsyncEngine],
) -> None:
    settings, engine = pooled
    direct_less = settings.model_copy(update={"listen_database_url": None})
    with pytest.raises(ValueError, match="SLADESK_LISTEN_DATABASE_URL"):
        async with running_workers(engine, direct_less):
            pass


async def test_prepared_statements_do_not_collide_across_shared_server_connections(
    pooled: tuple[Settings, AsyncEngine], bouncer: PgBouncer
) -> None:
    # Without the pooling mode, asyncpg names statements per client connection
    # (__asyncpg_stmt_1__ …): two clients on one server connection collide.
    _, engine = pooled

    async def work(i: int) -> int:
        async with engine.connect() as conn:
            for _ in range(5):
                value = await conn.scalar(text("SELECT CAST(:i AS integer) + 1"), {"i": i})
            await conn.commit()
        return int(value)

    assert await asyncio.gather(*(work(i) for i in range(20))) == [i + 1 for i in range(20)]
