"""Faults that must lose nothing: a receiver that is down for a while, database connections
killed under the dispatcher, a dispatcher cancelled mid-batch or dead with leases held,
two dispatchers on one database, and outbox transactions committing out of order.

Every check is on what arrived (webhook ids, order per ticket, counts) and on the rows;
none on how long anything took."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.services.outbox import emit
from app.workers.dispatcher import Dispatcher, Job, Result
from tests.conftest import raw_connect
from tests.test_webhooks_delivery import subscribe, ticket_event
from tests.webhook_harness import (
    Received,
    Receiver,
    Reply,
    all_settled,
    config,
    emit_events,
    eventually,
    msg_id,
    rows,
    running,
    scalar,
)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


def plan(tickets: int, per_ticket: int, ticketless: int = 0) -> list[Any]:
    """Events interleaved across tickets: n is the global order, data carries it."""
    ids = [uuid.uuid4() for _ in range(tickets)]
    events = []
    n = 0
    for _round in range(per_ticket):
        for t in ids:
            n += 1
            events.append(ticket_event(n, t))
    for _ in range(ticketless):
        n += 1
        events.append(ticket_event(n, None))
    return events


def assert_complete_and_ordered(
    received: list[Received], events: list[Any], event_ids: list[uuid.UUID], *, exact: bool
) -> None:
    """Every event arrived with its own webhook-id (at least once; exactly once if
    ``exact``), no other id ever appeared, and per ticket the first arrivals are in event
    order."""
    expected = {
        msg_id(event_id): data["n"]
        for event_id, (_, _, data) in zip(event_ids, events, strict=True)
    }
    seen: dict[str, int] = defaultdict(int)
    for r in received:
        assert r.id in expected, f"unexpected webhook-id {r.id}"
        assert r.json["data"]["n"] == expected[r.id], "a webhook-id carried another event"
        seen[r.id] += 1
    assert set(seen) == set(expected), f"missing: {sorted(set(expected) - set(seen))}"
    if exact:
        assert all(count == 1 for count in seen.values()), "an event was sent twice"
    ticket_of = {data["n"]: ticket for _, ticket, data in events}
    firsts: dict[Any, list[int]] = defaultdict(list)
    done: set[int] = set()
    for r in received:
        n = r.json["data"]["n"]
        if n not in done and ticket_of[n] is not None:
            firsts[ticket_of[n]].append(n)
        done.add(n)
    for ticket, order in firsts.items():
        assert order == sorted(order), f"ticket {ticket} out of order: {order}"


async def test_receiver_down_then_up_loses_nothing(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url())
    await receiver.stop()  # connection refused from now on
    events = plan(tickets=3, per_ticket=4, ticketless=2)
    async with running(Dispatcher(db, config())):
        ids = await emit_events(db, events)

        async def heads_failed_twice() -> bool:
            # The first event of each ticket and the ticketless ones keep failing; the
            # later events of each ticket wait behind their first.
            tried = await scalar(
                db, "SELECT count(*) FROM webhook_deliveries WHERE attempt_count >= 2"
            )
            return int(tried) >= 5

        await eventually(heads_failed_twice, what="retries while the receiver is down")
        waiting = await scalar(
            db, "SELECT count(*) FROM webhook_deliveries WHERE attempt_count = 0"
        )
        assert waiting == 9  # 3 tickets x 3 later events, never sent out of turn
        await receiver.start()  # same port
        await eventually(lambda: all_settled(db, len(events)), what="everything delivered")

    statuses = await rows(db, "SELECT DISTINCT status FROM webhook_deliveries")
    assert statuses == [("succeeded",)]
    assert_complete_and_ordered(receiver.requests, events, ids, exact=True)
    errors = await rows(db, "SELECT DISTINCT outcome, status_code FROM webhook_attempts")
    assert set(errors) == {("failed", None), ("succeeded", 200)}


async def _kill_other_connections(server_url: str) -> int:
    conn = await raw_connect(server_url)
    try:
        # Each kill waits (up to 5 s) until its backend is gone, so that the kill is over
        # when the test's own next insert checks a connection out.
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return len(killed)
    finally:
        await conn.close()


async def test_killed_database_connections_lose_nothing(
    db: AsyncEngine, settings: Settings, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    assert settings.database_url is not None
    server_url = settings.database_url.get_secret_value()
    await subscribe(admin, receiver.url("/a"))
    await subscribe(admin, receiver.url("/b"), ["ticket.status_changed"])
    kills: list[int] = []
    # The test's own inserts stand for the application's requests: they are not under test
    # (a killed request would fail and be retried by its client), so no kill hits them.
    emitting = asyncio.Lock()

    async def handler(request: Received) -> Reply:
        # Kill every connection while deliveries are in flight (between claim and record).
        if len(receiver.requests) in (3, 17, 40):
            async with emitting:
                kills.append(await _kill_other_connections(server_url))
        return Reply(200)

    receiver.handler = handler
    events = plan(tickets=4, per_ticket=6, ticketless=4)
    dispatcher = Dispatcher(db, config())
    async with running(dispatcher):
        ids: list[uuid.UUID] = []
        for start in range(0, len(events), 7):
            async with emitting:
                ids += await emit_events(db, events[start : start + 7])
                kills.append(await _kill_other_connections(server_url))
        await eventually(
            lambda: all_settled(db, 2 * len(events)), what="all delivered", tolerate=(DBAPIError,)
        )
        await eventually(dispatcher.listening.is_set, what="LISTEN again")
        # Still listening: a new event goes out on a NOTIFY (the safety re-check is 30 s).
        extra = [ticket_event(len(events) + 1, None)]
        async with emitting:
            ids += await emit_events(db, extra)
        events += extra
        await eventually(lambda: all_settled(db, 2 * len(events)), what="after recovery")

    assert len(kills) >= 5 and sum(kills) > len(kills)  # the dispatcher's were among them
    for path in ("/a", "/b"):
        assert_complete_and_ordered(receiver.on(path), events, ids, exact=False)
    assert await scalar(db, "SELECT count(*) FROM webhook_deliveries") == 2 * len(events)
    assert await scalar(db, "SELECT count(*) FROM outbox_events WHERE dispatched_at IS NULL") == 0


async def test_a_cancelled_dispatcher_loses_nothing(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url())
    gate = asyncio.Event()

    async def handler(request: Received) -> Reply:
        await gate.wait()
        return Reply(200)

    receiver.handler = handler
    events = plan(tickets=4, per_ticket=3, ticketless=4)
    ids = await emit_events(db, events)
    first = Dispatcher(db, config(per_subscription=6, max_in_flight=6))
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await eventually(lambda: len(receiver.requests) == 6, what="a batch in flight")
    task.cancel()  # not a graceful stop: cancelled in the middle of sending
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()
    interrupted = {r.id for r in receiver.requests}

    async with running(Dispatcher(db, config())):
        await eventually(lambda: all_settled(db, len(events)), what="all delivered")
    assert_complete_and_ordered(receiver.requests, events, ids, exact=False)
    resent = [r.id for r in receiver.requests[6:] if r.id in interrupted]
    assert sorted(resent) == sorted(interrupted)  # the interrupted ones again, same ids
    assert await scalar(db, "SELECT count(*) FROM webhook_deliveries") == len(events)


class _Crashed(Dispatcher):
    """Claims (leases) a batch, then dies before sending any of it."""

    async def crash_after_claim(self) -> int:
        jobs, _ = await self._claim(datetime.now(UTC), 10)
        return len(jobs)


async def test_abandoned_leases_are_retried_with_the_same_ids(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url())
    events = plan(tickets=2, per_ticket=2, ticketless=2)
    ids = await emit_events(db, events)
    dead = _Crashed(db, config(timeout=0.2, lease_margin=0.3))
    await dead._fan_out(datetime.now(UTC))
    assert await dead.crash_after_claim() == 4  # two ticket heads + two ticketless
    leased = "SELECT count(*) FROM webhook_deliveries WHERE locked_until IS NOT NULL"
    assert await scalar(db, leased) == 4

    async with running(Dispatcher(db, config())):
        await eventually(lambda: all_settled(db, len(events)), what="all delivered")
    # The dead one sent nothing, so each arrives exactly once, after its lease ran out.
    assert_complete_and_ordered(receiver.requests, events, ids, exact=True)
    assert await scalar(db, "SELECT max(attempt_count) FROM webhook_deliveries") == 1


class _Counting(Dispatcher):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0

    async def send(self, job: Job) -> Result:
        self.sent += 1
        return await super().send(job)


async def test_two_dispatchers_make_one_delivery_per_event_and_subscription(
    db: AsyncEngine, settings: Settings, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url("/a"))
    await subscribe(admin, receiver.url("/b"))
    assert settings.database_url is not None
    other_engine = make_engine(settings.database_url.get_secret_value(), settings)
    both_busy = asyncio.Event()

    async def handler(request: Received) -> Reply:
        # Each dispatcher sends one request at a time: the first one waits until a second
        # request is in flight, which only the other dispatcher can have sent.
        if sum(receiver.in_flight.values()) >= 2:
            both_busy.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both_busy.wait(), timeout=5)
        return Reply(200)

    receiver.handler = handler
    events = plan(tickets=3, per_ticket=5, ticketless=5)
    one = _Counting(db, config(max_in_flight=1), name="one")
    two = _Counting(other_engine, config(max_in_flight=1), name="two")
    try:
        async with running(one), running(two):
            ids = await emit_events(db, events)
            await eventually(lambda: all_settled(db, 2 * len(events)), what="all delivered")
    finally:
        await other_engine.dispose()

    assert both_busy.is_set() and one.sent > 0 and two.sent > 0
    assert one.sent + two.sent == 2 * len(events)  # no delivery was sent twice
    for path in ("/a", "/b"):
        assert_complete_and_ordered(receiver.on(path), events, ids, exact=True)
    assert await scalar(db, "SELECT count(*) FROM webhook_deliveries") == 2 * len(events)
    assert await scalar(db, "SELECT max(attempt_count) FROM webhook_deliveries") == 1


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_events_committed_out_of_order_are_delivered_in_order(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver, outcome: str
) -> None:
    """Event 1 of a ticket is written first but committed after event 2: the dispatcher
    holds event 2 back until event 1's transaction ends, then sends 1 before 2 (or, if 1
    was rolled back, sends 2 alone)."""
    await subscribe(admin, receiver.url())
    ticket = uuid.uuid4()
    sessionmaker = make_sessionmaker(db)
    dispatcher = Dispatcher(db, config())
    async with running(dispatcher), sessionmaker() as slow:
        await slow.begin()
        await emit(slow, "ticket.created", occurred_at=datetime.now(UTC), data={"n": 1},
                   ticket_id=ticket)  # fmt: skip
        [second] = await emit_events(db, [("ticket.status_changed", ticket, {"n": 2})])
        await eventually(lambda: dispatcher._gap is not None, what="the hole seen")
        held = await scalar(
            db, "SELECT dispatched_at IS NULL FROM outbox_events WHERE id = :id", id=second
        )
        assert held is True and receiver.requests == []
        await (slow.commit() if outcome == "commit" else slow.rollback())
        await eventually(lambda: all_settled(db, 2 if outcome == "commit" else 1), what="delivered")
    arrived = [r.json["data"]["n"] for r in receiver.requests]
    assert arrived == ([1, 2] if outcome == "commit" else [2])


class _GroupFailing(Dispatcher):
    """Every transaction recording more than one finished send fails, as if one entry of
    the group broke it: the dispatcher must fall back to recording them one by one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.failed_groups = 0
        self.singles = 0

    async def _record_batch(self, items: Any) -> None:
        if len(items) > 1:
            self.failed_groups += 1
            raise RuntimeError("the group's transaction failed")
        self.singles += 1
        await super()._record_batch(items)


async def test_a_failed_group_commit_records_each_send_one_by_one(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    await subscribe(admin, receiver.url())
    # Ticketless events are sent in parallel, so sends finish while others are recorded.
    events = plan(tickets=0, per_ticket=0, ticketless=120)
    ids = await emit_events(db, events)
    dispatcher = _GroupFailing(db, config())
    async with running(dispatcher):
        await eventually(lambda: all_settled(db, len(events)), what="all recorded")
    assert dispatcher.failed_groups > 0, "no group was ever recorded together"
    # Each send was recorded (one by one), so none was sent again after its lease.
    assert_complete_and_ordered(receiver.requests, events, ids, exact=True)
    assert dispatcher.singles == len(events)
    assert await scalar(db, "SELECT max(attempt_count) FROM webhook_deliveries") == 1
