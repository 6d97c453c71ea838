"""Faults that must not lose a threshold or fire one twice: database connections killed
under the timer loop, a loop cancelled in the middle of a batch, two loops (and two
webhook dispatchers) on one database. Checks are on rows and arrivals, never on timing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from app.config import Settings
from app.db import make_engine
from app.workers.dispatcher import Dispatcher
from app.workers.escalation import RoundResult, TimerConfig, TimerLoop
from tests.conftest import raw_connect
from tests.plan_factories import target
from tests.ticket_factories import make_desk, open_ticket
from tests.webhook_harness import Receiver, config, eventually, rows, running, scalar

TICKETS = 60  # each with a warning and a breach (+ an escalation): 120 thresholds


@pytest.fixture
async def receiver() -> Any:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def overdue_tickets(admin: httpx.AsyncClient, n: int = TICKETS) -> list[dict[str, Any]]:
    """Tickets whose 50 % warning and breach (escalating to tier 2) are all in the past,
    at distinct instants."""
    desk = await make_desk(
        admin,
        targets=[
            target(
                "first_response",
                60,
                clock="24x7",
                warn_at_percent=[50],
                on_breach={"escalate_to_tier": 2},
            )
        ],
    )
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    return [
        await open_ticket(admin, desk, received_at=(base + timedelta(minutes=i)).isoformat())
        for i in range(n)
    ]


async def assert_each_threshold_once(engine: AsyncEngine, n: int = TICKETS) -> None:
    """Every ticket: one warning and one breach fired (rows and outbox events), exactly one
    automatic escalation, tier 2."""
    firings = await rows(
        engine, "SELECT ticket_id, key, count(*) AS n FROM sla_firings GROUP BY 1, 2"
    )
    assert len(firings) == 2 * n and {f.n for f in firings} == {1}
    events = await rows(
        engine,
        "SELECT ticket_id, data->'threshold'->>'key' AS key, count(*) AS n FROM outbox_events "
        "WHERE type IN ('sla.warning', 'sla.breached') GROUP BY 1, 2",
    )
    assert len(events) == 2 * n and {e.n for e in events} == {1}
    escalations = await rows(
        engine,
        "SELECT ticket_id, count(*) AS n FROM outbox_events WHERE type = 'ticket.escalated' "
        "GROUP BY 1",
    )
    assert len(escalations) == n and {e.n for e in escalations} == {1}
    assert await scalar(engine, "SELECT count(*) FROM tickets WHERE tier = 2") == n
    assert (
        await scalar(engine, "SELECT count(*) FROM sla_clocks WHERE next_check_at IS NOT NULL") == 0
    )


async def fired(engine: AsyncEngine) -> int:
    return int(await scalar(engine, "SELECT count(*) FROM sla_firings"))


async def _kill_other_connections(server_url: str) -> int:
    conn = await raw_connect(server_url)
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return len(killed)
    finally:
        await conn.close()


class KillingLoop(TimerLoop):
    """Kills every connection of the database in the middle of chosen batches."""

    def __init__(self, *args: Any, server_url: str, at: set[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server_url, self.at, self.attempts, self.kills = server_url, at, 0, 0

    async def _announce(self, *args: Any) -> None:
        self.attempts += 1
        if self.attempts in self.at:
            self.kills += await _kill_other_connections(self.server_url)
        await super()._announce(*args)


async def test_killed_database_connections_lose_nothing_and_fire_nothing_twice(
    db: AsyncEngine, settings: Settings, admin: httpx.AsyncClient
) -> None:
    await overdue_tickets(admin)
    assert settings.database_url is not None
    timer = KillingLoop(
        db,
        TimerConfig(batch=25, error_backoff_max=0.2, listener_health_interval=0.5),
        server_url=settings.database_url.get_secret_value(),
        at={10, 45, 80},
    )
    async with running(timer):
        await eventually(
            lambda: _done(db), within=60, what="every threshold fired", tolerate=(Exception,)
        )
        # The LISTEN connection died too and came back by itself.
        await eventually(timer.listening.is_set, what="timer listening again")
    assert timer.kills >= 3 and timer.attempts > 2 * TICKETS  # batches were redone
    await assert_each_threshold_once(db)


async def _done(engine: AsyncEngine) -> bool:
    return (
        await scalar(engine, "SELECT count(*) FROM sla_clocks WHERE next_check_at IS NOT NULL") == 0
    )


class StallingLoop(TimerLoop):
    """Stops forever in the middle of its second batch, after some firings were written
    in that batch's (uncommitted) transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.committed = 0
        self.attempts = 0
        self.stalled = asyncio.Event()

    async def fire_thresholds(self, now: datetime) -> RoundResult:
        result = await super().fire_thresholds(now)
        self.committed += result.fired
        return result

    async def _announce(self, *args: Any) -> None:
        await super()._announce(*args)
        self.attempts += 1
        if self.committed > 0 and self.attempts == self.committed + 7:
            self.stalled.set()
            await asyncio.Event().wait()


async def test_a_loop_cancelled_mid_batch_leaves_nothing_half_done(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    await overdue_tickets(admin)
    stalling = StallingLoop(db, TimerConfig(batch=20))
    stop = asyncio.Event()
    task = asyncio.create_task(stalling.run(stop))
    await asyncio.wait_for(stalling.stalled.wait(), timeout=60)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    # The interrupted batch rolled back entirely: firings, events, tiers.
    assert stalling.committed > 0
    assert await fired(db) == stalling.committed
    assert (
        await scalar(
            db, "SELECT count(*) FROM outbox_events WHERE type IN ('sla.warning', 'sla.breached')"
        )
        == stalling.committed
    )
    # A new loop (the restart) fires the rest, each once, with the original instants.
    async with running(TimerLoop(db, TimerConfig(batch=20))):
        await eventually(lambda: _done(db), within=60, what="every threshold fired")
    await assert_each_threshold_once(db)
    late = await rows(db, "SELECT instant, fired_at FROM sla_firings")
    assert all(r.fired_at - r.instant > timedelta(hours=20) for r in late)


async def test_two_loops_and_two_dispatchers_fire_and_deliver_each_threshold_once(
    db: AsyncEngine, settings: Settings, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    subscription = (
        await admin.post(
            "/v1/webhooks",
            json={"url": receiver.url(), "event_types": ["sla.warning", "sla.breached"]},
        )
    ).json()
    await overdue_tickets(admin)
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()
    second = make_engine(url, settings)  # another process's pool
    try:
        loops = [
            TimerLoop(db, TimerConfig(batch=10), name="timers-a"),
            TimerLoop(second, TimerConfig(batch=10), name="timers-b"),
        ]
        dispatchers = [
            Dispatcher(db, config(), name="webhooks-a"),
            Dispatcher(second, config(), name="webhooks-b"),
        ]
        async with contextlib.AsyncExitStack() as stack:
            for worker in (*loops, *dispatchers):
                await stack.enter_async_context(running(worker))
            await eventually(lambda: _done(db), within=60, what="every threshold fired")
            await eventually(
                lambda: len({r.id for r in receiver.requests}) >= 2 * TICKETS,
                within=60,
                what="every threshold delivered",
            )
    finally:
        await second.dispose()
    await assert_each_threshold_once(db)
    # Every threshold reached the receiver under one webhook-id, signed as Standard
    # Webhooks says (verified as a receiver would).
    verifier = Webhook(subscription["secret"])
    seen: dict[tuple[str, str], set[str]] = {}
    for request in receiver.requests:
        payload = verifier.verify(request.body, request.headers)
        key = (payload["data"]["ticket"]["id"], payload["data"]["threshold"]["key"])
        seen.setdefault(key, set()).add(request.id)
        assert payload["timestamp"] == payload["data"]["threshold"]["at"]
    assert len(seen) == 2 * TICKETS and all(len(ids) == 1 for ids in seen.values())
    assert {uuid.UUID(t) for t, _ in seen} == {
        r.id for r in await rows(db, "SELECT id FROM tickets")
    }
