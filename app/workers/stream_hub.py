"""The hub behind `GET /v1/events/stream`: the outbox, in ``seq`` order, to every open
stream of this process.

One hub per process (per event loop), started by the first stream and stopped with the
last. It holds:

* a LISTEN connection on the outbox channel (app.workers.listener; the NOTIFY every
  outbox write sends at commit): each notification, and each reconnect, runs a round;
* the **frontier**: the highest ``seq`` such that every event at or below it that will
  ever exist is visible. A round reads the events after it in ``seq`` order and moves it
  on; at a hole (a number taken by a transaction not committed yet) it waits until the
  hole is proven settled (app.workers.outbox_horizon), re-reading every ``gap_poll``
  only while such a hole is open. So a stream never skips an event that commits late,
  and never delivers one twice: its cursor is a ``seq``, and everything up to the
  frontier is final. Any replica computes the same order, so a ``Last-Event-ID`` from
  one resumes exactly on another;
* a ring of the latest events (with their encoded frames), from which streams that are
  up to date read without touching the database; a stream further behind (a resume)
  reads its window from the outbox itself;
* the open streams per API key (the per-key limit) and, every ``key_check`` seconds
  while streams are open, one query that closes the streams of revoked or expired keys.

The hub knows nothing of roles: a :class:`Scope` says which events a stream admits.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import uuid
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, and_, select, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from app.models import metadata
from app.services.outbox import OUTBOX_CHANNEL
from app.workers.listener import listen
from app.workers.outbox_horizon import BOUNDS, Horizon
from app.workers.rounds import run_rounds

logger = logging.getLogger("sladesk.stream")

EVENTS: Table = metadata.tables["outbox_events"]
_INIT = -1  # the horizon key of the first frontier

# One statement, one snapshot: the transaction-id bounds and the rows read under them.
_SNAPSHOT = f"SELECT {BOUNDS}"
_FIRST = text(
    f"{_SNAPSHOT}, (SELECT coalesce(max(seq), 0) FROM outbox_events) AS top "
    "FROM txid_current_snapshot() AS s"
)
_SCAN = text(
    f"SELECT q.xmin, q.xmax, e.seq, e.type, e.organization_id, e.ticket_id, e.occurred_at, "
    f"e.data FROM ({_SNAPSHOT} FROM txid_current_snapshot() AS s) AS q "
    "LEFT JOIN LATERAL (SELECT seq, type, organization_id, ticket_id, occurred_at, data "
    "FROM outbox_events WHERE seq > :after ORDER BY seq LIMIT :n) AS e ON true"
)
_LIVE_KEYS = text(
    "SELECT id FROM api_keys WHERE id = ANY(:ids) AND revoked_at IS NULL "
    "AND (expires_at IS NULL OR expires_at > now())"
)


@dataclass(frozen=True)
class HubConfig:
    ring_size: int = 2048
    batch: int = 500
    # A stream that resumes from the outbox reads at most this many sequence numbers a
    # query, whatever its filters: no query scans an unbounded range.
    window: int = 10_000
    gap_poll: float = 0.05
    key_check: float = 15.0
    catch_up_concurrency: int = 4
    listener_health_interval: float = 15.0
    error_backoff_max: float = 5.0
    idle: float = 3600.0  # with no NOTIFY, a round anyway after this long


class StreamEvent:
    """An outbox event, with its SSE frames encoded once per view."""

    __slots__ = ("_frames", "data", "occurred_at", "organization_id", "seq", "ticket_id", "type")

    def __init__(
        self,
        seq: int,
        type_: str,
        organization_id: uuid.UUID | None,
        ticket_id: uuid.UUID | None,
        occurred_at: datetime,
        data: dict[str, Any],
    ) -> None:
        self.seq = seq
        self.type = type_
        self.organization_id = organization_id
        self.ticket_id = ticket_id
        self.occurred_at = occurred_at
        self.data = data
        self._frames: dict[str, bytes] = {}

    def frame(self, view: str, shape: Callable[[str, dict[str, Any]], dict[str, Any]]) -> bytes:
        """``id``, ``event`` and ``data`` (the webhook body: type, timestamp, data as
        ``shape`` makes it for ``view``), encoded once per view."""
        found = self._frames.get(view)
        if found is None:
            timestamp = self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            body = {"type": self.type, "timestamp": timestamp, "data": shape(self.type, self.data)}
            data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
            found = f"id: {self.seq}\nevent: {self.type}\ndata: {data}\n\n".encode()
            self._frames[view] = found
        return found


@dataclass(frozen=True)
class Scope:
    """Which events a stream admits (None: no restriction)."""

    organization_id: uuid.UUID | None = None
    types: frozenset[str] | None = None
    ticket_id: uuid.UUID | None = None

    def admits(self, event: StreamEvent) -> bool:
        return (
            (self.organization_id is None or event.organization_id == self.organization_id)
            and (self.types is None or event.type in self.types)
            and (self.ticket_id is None or event.ticket_id == self.ticket_id)
        )

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.organization_id is not None:
            found.append(EVENTS.c.organization_id == self.organization_id)
        if self.types is not None:
            found.append(EVENTS.c.type.in_(sorted(self.types)))
        if self.ticket_id is not None:
            found.append(EVENTS.c.ticket_id == self.ticket_id)
        return found


@dataclass(eq=False)
class Subscription:
    key_id: uuid.UUID
    closed: str | None = None  # why the hub ended it


@dataclass
class Batch:
    events: list[StreamEvent]
    upto: int  # the stream's cursor after these: every event up to it was considered


class TooManyStreams(Exception):
    def __init__(self, open_streams: int) -> None:
        super().__init__(f"{open_streams} streams open")
        self.open_streams = open_streams


@dataclass
class StreamHub:
    engine: AsyncEngine
    config: HubConfig = field(default_factory=HubConfig)
    name: str = "stream"

    def __post_init__(self) -> None:
        self.frontier: int | None = None
        self.listening = asyncio.Event()
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._horizon = Horizon()
        self._first_top: int | None = None
        self._events: list[StreamEvent] = []
        self._seqs: list[int] = []
        self._floor = 0  # the ring holds every event in (floor, frontier]
        self._subscriptions: set[Subscription] = set()
        self._per_key: Counter[uuid.UUID] = Counter()
        self._catch_up = asyncio.Semaphore(self.config.catch_up_concurrency)
        self._round_lock = asyncio.Lock()  # one round at a time moves the frontier
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"sladesk-{self.name}-listen"),
            asyncio.create_task(self._rounds(), name=f"sladesk-{self.name}-rounds"),
            asyncio.create_task(self._watch_keys(), name=f"sladesk-{self.name}-keys"),
        ]

    async def stop(self) -> None:
        self._stop.set()
        self.close_all("the server is stopping")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @property
    def open_streams(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, key_id: uuid.UUID, limit: int) -> Subscription:
        if self._per_key[key_id] >= limit:
            raise TooManyStreams(self._per_key[key_id])
        subscription = Subscription(key_id)
        self._subscriptions.add(subscription)
        self._per_key[key_id] += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.discard(subscription)
            self._per_key[subscription.key_id] -= 1
            if self._per_key[subscription.key_id] <= 0:
                del self._per_key[subscription.key_id]

    def close_all(self, reason: str) -> None:
        for subscription in self._subscriptions:
            subscription.closed = subscription.closed or reason
        self._announce()

    # ------------------------------------------------------------------ reading

    async def start_position(self, subscription: Subscription, within: float) -> int | None:
        """The current frontier (a stream without Last-Event-ID starts there), once the
        hub has one; None if it has none ``within`` seconds or the stream was closed."""
        try:
            async with asyncio.timeout(within):
                while self.frontier is None and subscription.closed is None:
                    await self._changed_after(None)
        except TimeoutError:
            return None
        return self.frontier if subscription.closed is None else None

    async def read(
        self, subscription: Subscription, cursor: int, scope: Scope, within: float
    ) -> Batch | None:
        """The next events after ``cursor`` that ``scope`` admits, waiting up to
        ``within`` seconds for some to exist; None when nothing came (time for a
        heartbeat)."""
        if subscription.closed is None and (self.frontier is None or self.frontier <= cursor):
            try:
                await self._changed_after(within)
            except TimeoutError:
                return None
        frontier = self.frontier
        if subscription.closed is not None or frontier is None or frontier <= cursor:
            return Batch([], cursor)
        if cursor >= self._floor:
            start = bisect.bisect_right(self._seqs, cursor)
            chunk = self._events[start : start + self.config.batch]
            upto = chunk[-1].seq if len(chunk) == self.config.batch else frontier
            return Batch([e for e in chunk if scope.admits(e)], upto)
        return await self._from_outbox(cursor, frontier, scope)

    async def _changed_after(self, within: float | None) -> None:
        changed = self._changed
        if within is None:
            await changed.wait()
        else:
            await asyncio.wait_for(changed.wait(), within)

    async def _from_outbox(self, cursor: int, frontier: int, scope: Scope) -> Batch:
        end = min(frontier, cursor + self.config.window)
        stmt = (
            select(
                EVENTS.c.seq,
                EVENTS.c.type,
                EVENTS.c.organization_id,
                EVENTS.c.ticket_id,
                EVENTS.c.occurred_at,
                EVENTS.c.data,
            )
            .where(and_(EVENTS.c.seq > cursor, EVENTS.c.seq <= end, *scope.conditions()))
            .order_by(EVENTS.c.seq)
            .limit(self.config.batch)
        )
        async with self._catch_up, self.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        events = [StreamEvent(*row) for row in rows]
        upto = events[-1].seq if len(events) == self.config.batch else end
        return Batch(events, upto)

    # ------------------------------------------------------------------- rounds

    async def _listen(self) -> None:
        await listen(
            self.engine,
            OUTBOX_CHANNEL,
            wake=self._wake.set,
            stop=self._stop,
            listening=self.listening,
            name=self.name,
            health_interval=self.config.listener_health_interval,
            backoff_max=self.config.error_backoff_max,
        )

    async def _rounds(self) -> None:
        await run_rounds(
            self._stop,
            self._wake,
            self.run_round,
            what="event stream",
            worker=self.name,
            backoff_max=self.config.error_backoff_max,
        )

    async def run_round(self) -> float:
        """Move the frontier as far as the outbox allows; the seconds until the next
        round without a NOTIFY (0: at once)."""
        async with self._round_lock:
            return await self._round()

    async def _round(self) -> float:
        if self.frontier is None:
            return await self._first_frontier()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(_SCAN, {"after": self.frontier, "n": self.config.batch})
            ).all()
        xmin, xmax = rows[0].xmin, rows[0].xmax
        accepted: list[StreamEvent] = []
        expected = self.frontier + 1
        blocked = False
        for row in rows:
            if row.seq is None:  # no event after the frontier
                break
            if row.seq != expected and not self._horizon.settled(expected, xmin, xmax):
                blocked = True
                break
            accepted.append(
                StreamEvent(
                    row.seq, row.type, row.organization_id, row.ticket_id, row.occurred_at, row.data
                )
            )
            expected = row.seq + 1
        if accepted:
            self._advance(accepted)
        if blocked:
            return self.config.gap_poll
        if len(accepted) == self.config.batch:
            return 0.0
        return self.config.idle

    async def _first_frontier(self) -> float:
        """Every sequence number up to the outbox's top when the hub started is settled
        once the transactions running then have ended: that top is the first frontier."""
        async with self.engine.connect() as conn:
            first = (await conn.execute(_FIRST)).one()
        if self._first_top is None:
            self._first_top = int(first.top)
        if not self._horizon.settled(_INIT, first.xmin, first.xmax):
            return self.config.gap_poll
        self.frontier = self._floor = self._first_top
        self._announce()
        return 0.0

    def _advance(self, events: list[StreamEvent]) -> None:
        self._events += events
        self._seqs += [e.seq for e in events]
        self.frontier = events[-1].seq
        if len(self._events) > 2 * self.config.ring_size:
            cut = len(self._events) - self.config.ring_size
            self._floor = self._seqs[cut - 1]
            del self._events[:cut], self._seqs[:cut]
        self._announce()

    def _announce(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # --------------------------------------------------------------------- keys

    async def _watch_keys(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.config.key_check)
            keys = {s.key_id for s in self._subscriptions}
            if not keys or self._stop.is_set():
                continue
            try:
                async with self.engine.connect() as conn:
                    live = set((await conn.execute(_LIVE_KEYS, {"ids": list(keys)})).scalars())
            except Exception:
                logger.info("could not check the stream keys", exc_info=True)
                continue
            gone = [s for s in self._subscriptions if s.key_id not in live]
            for subscription in gone:
                subscription.closed = "the API key was revoked or expired"
            if gone:
                self._announce()


class HubRegistry:
    """The hub of each event loop of an app (a server runs one loop; tests may run
    several): started by the first stream, stopped when the last one ends."""

    def __init__(self, engine_of: Callable[[], AsyncEngine], config: HubConfig) -> None:
        self._engine_of = engine_of
        self._config = config
        self._hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamHub] = (
            weakref.WeakKeyDictionary()
        )
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def _lock(self) -> asyncio.Lock:
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    async def subscribe(self, key_id: uuid.UUID, limit: int) -> tuple[StreamHub, Subscription]:
        async with self._lock():
            loop = asyncio.get_running_loop()
            hub = self._hubs.get(loop)
            if hub is None:
                hub = StreamHub(self._engine_of(), self._config)
                hub.start()
                self._hubs[loop] = hub
            return hub, hub.subscribe(key_id, limit)

    async def unsubscribe(self, hub: StreamHub, subscription: Subscription) -> None:
        async with self._lock():
            hub.unsubscribe(subscription)
            loop = asyncio.get_running_loop()
            if hub.open_streams == 0 and self._hubs.get(loop) is hub:
                del self._hubs[loop]
                await hub.stop()

    def close_all(self, reason: str) -> None:
        """End every open stream (the server is shutting down): clients reconnect, with
        their Last-Event-ID, to a replica that is up."""
        for hub in list(self._hubs.values()):
            hub.close_all(reason)

    @property
    def hubs(self) -> list[StreamHub]:
        return list(self._hubs.values())


__all__ = [
    "Batch",
    "HubConfig",
    "HubRegistry",
    "Scope",
    "StreamEvent",
    "StreamHub",
    "Subscription",
    "TooManyStreams",
]
