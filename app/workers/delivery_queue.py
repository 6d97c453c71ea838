"""The dispatcher's hot statements, in plain SQL on asyncpg, on a connection it keeps.

Under a burst the dispatcher claims many times a second. Built with SQLAlchemy, each
claim was a pool check-out with its ping, BEGIN, SELECT … FOR UPDATE SKIP LOCKED, UPDATE
and COMMIT — five round trips plus building and compiling the statement — for a handful
of rows. Here it is one statement (lock the due rows, keep as many per subscription as
it has free slots, lease them, return what sending needs), prepared once per connection
by asyncpg and run in autocommit on a connection held between rounds; the rows it locked
but did not lease are free again when it ends. Behind a transaction pooler (PgBouncer)
each statement runs in an explicit transaction instead: asyncpg prepares a statement in
one round trip and runs it in another, which a pooler may send to different server
connections outside a transaction.

The conditions are those of ``Dispatcher._due``: pending, due, lease free or expired,
subscription active, and no earlier delivery of the same ticket to the same
subscription still pending (per-ticket order, across any number of dispatchers).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.services.outbox import OUTBOX_CHANNEL

T = TypeVar("T")

# The execution option app.db.make_engine sets when SLADESK_DB_TRANSACTION_POOLING is on.
TRANSACTION_POOLING = "sladesk_transaction_pooling"

_DUE = """
    d.status = 'pending'
    AND s.active
    AND (d.ticket_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM webhook_deliveries e
        WHERE e.subscription_id = d.subscription_id AND e.ticket_id = d.ticket_id
          AND e.status = 'pending' AND e.event_seq < d.event_seq))
    AND d.subscription_id <> ALL($1::uuid[])
"""

# $1 saturated subscriptions, $2 now, $3 limit, $4/$5 subscriptions with some slots
# taken and their free slots, $6 per-subscription slots, $7 lease end, $8 lease token.
CLAIM = f"""
WITH due AS MATERIALIZED (
    SELECT d.id, d.subscription_id, d.next_attempt_at, d.event_seq
    FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
    WHERE {_DUE}
      AND d.next_attempt_at <= $2
      AND (d.locked_until IS NULL OR d.locked_until <= $2)
    ORDER BY d.next_attempt_at, d.event_seq
    LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
), ranked AS (
    SELECT due.id,
           row_number() OVER (PARTITION BY due.subscription_id
                              ORDER BY due.next_attempt_at, due.event_seq) AS place,
           coalesce(busy.free, $6) AS free
    FROM due LEFT JOIN unnest($4::uuid[], $5::int[]) AS busy(id, free)
         ON busy.id = due.subscription_id
), leased AS (
    UPDATE webhook_deliveries d SET locked_until = $7, lease_token = $8
    FROM ranked
    WHERE d.id = ranked.id AND ranked.place <= ranked.free
    RETURNING d.id, d.subscription_id, d.event_id, d.ticket_id, d.redeliver_requested_at,
              d.next_attempt_at, d.event_seq
)
SELECT l.id, l.subscription_id, l.event_id, l.ticket_id, l.redeliver_requested_at,
       s.url, s.secret, s.previous_secret, s.previous_secret_expires_at,
       e.type, e.occurred_at, e.data::text AS data_json,
       (SELECT count(*) FROM due) AS seen
FROM leased l
JOIN webhook_subscriptions s ON s.id = l.subscription_id
JOIN outbox_events e ON e.id = l.event_id
ORDER BY l.next_attempt_at, l.event_seq
"""

# $1 saturated subscriptions.
NEXT_DUE = f"""
SELECT min(greatest(d.next_attempt_at, coalesce(d.locked_until, d.next_attempt_at)))
FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
WHERE {_DUE}
"""


# The recorder's statements (Dispatcher._record_batch), one transaction per group.
LOCK_FOR_RECORD = """
SELECT id, attempt_count, lease_token FROM webhook_deliveries
WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
"""

INSERT_ATTEMPTS = """
INSERT INTO webhook_attempts (id, delivery_id, number, trigger, started_at, duration_ms,
                              status_code, outcome, error, response_excerpt)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::timestamptz[],
                     $6::int[], $7::int[], $8::text[], $9::text[], $10::text[])
ON CONFLICT (id) DO NOTHING
RETURNING id
"""

RECORD_OWNED = """
UPDATE webhook_deliveries d
SET attempt_count = u.attempt_count, last_attempt_at = u.last_attempt_at,
    last_status_code = u.last_status_code, last_error = u.last_error, status = u.status,
    completed_at = u.completed_at, next_attempt_at = u.next_attempt_at,
    locked_until = NULL, lease_token = NULL, redeliver_requested_at = NULL
FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::int[], $5::text[], $6::text[],
            $7::timestamptz[], $8::timestamptz[])
     AS u(id, attempt_count, last_attempt_at, last_status_code, last_error, status,
          completed_at, next_attempt_at)
WHERE d.id = u.id
"""

RECORD_COUNTED = """
UPDATE webhook_deliveries d
SET attempt_count = u.attempt_count, last_attempt_at = u.last_attempt_at,
    last_status_code = u.last_status_code, last_error = u.last_error
FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::int[], $5::text[])
     AS u(id, attempt_count, last_attempt_at, last_status_code, last_error)
WHERE d.id = u.id
"""

NOTIFY_NEXT_OF_TICKETS = f"""
SELECT pg_notify('{OUTBOX_CHANNEL}', '') WHERE EXISTS (
    SELECT 1 FROM webhook_deliveries f
    JOIN webhook_deliveries d ON d.subscription_id = f.subscription_id
         AND d.ticket_id = f.ticket_id AND d.status = 'pending' AND d.event_seq > f.event_seq
    WHERE f.id = ANY($1::uuid[]))
"""

DISABLE = """
UPDATE webhook_subscriptions
SET active = false, disabled_at = $2, disabled_reason = $3, updated_at = $2
WHERE id = $1 AND active
"""


class HeldConnection:
    """One pooled connection kept between rounds while ``held`` (no check-out and ping
    per statement; outside it, a check-out per use); any failure gives it up, so the
    next use starts on a fresh one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.in_transaction = bool(engine.get_execution_options().get(TRANSACTION_POOLING))
        self._conn: AsyncConnection | None = None
        self._hold = False

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        self._hold = True
        try:
            yield
        finally:
            self._hold = False
            await self.close()

    async def run(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, transaction: bool = False
    ) -> T:
        """``work`` on the driver connection: in a transaction if asked (or behind a
        transaction pooler), else in autocommit."""
        if self._conn is None:
            self._conn = await self.engine.connect()
        try:
            raw = (await self._conn.get_raw_connection()).driver_connection
            assert raw is not None
            if not (transaction or self.in_transaction):
                return await work(raw)
            async with raw.transaction():
                return await work(raw)
        except BaseException:
            await self.close(invalidate=True)
            raise
        finally:
            if not self._hold:
                await self.close()

    async def close(self, *, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if invalidate:  # it may be mid-statement: never back into the pool
                await conn.invalidate()
            await conn.close()


async def claim(
    conn: asyncpg.Connection,
    *,
    now: datetime,
    limit: int,
    in_flight: Mapping[uuid.UUID, int],
    per_subscription: int,
    lease: timedelta,
    token: uuid.UUID,
) -> tuple[list[asyncpg.Record], int]:
    """Lease up to ``limit`` due deliveries within the free slots; (rows, rows seen)."""
    saturated = [s for s, n in in_flight.items() if n >= per_subscription]
    busy = [(s, per_subscription - n) for s, n in in_flight.items() if n < per_subscription]
    rows = await conn.fetch(
        CLAIM,
        saturated,
        now,
        limit,
        [s for s, _ in busy],
        [free for _, free in busy],
        per_subscription,
        now + lease,
        token,
    )
    # No row leased means none was seen: the subscriptions without a free slot are left
    # out of the lock itself.
    return list(rows), int(rows[0]["seen"]) if rows else 0


async def next_due(conn: asyncpg.Connection, saturated: list[uuid.UUID]) -> datetime | None:
    value: datetime | None = await conn.fetchval(NEXT_DUE, saturated)
    return value


__all__ = ["TRANSACTION_POOLING", "HeldConnection", "claim", "next_due"]
