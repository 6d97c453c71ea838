"""Retention: what the outbox and the webhook log may forget, pruned in small batches.

Kept forever: ticket history (timeline, work logs, clocks, firings) — none of it is here.
Pruned, once older than ``SLADESK_RETENTION_DAYS`` (default 90):

* webhook deliveries that **succeeded**, with their attempts (the FK cascades);
* outbox events fanned out (``dispatched_at``) and looked at by the mail composer
  (``mailed_at``) with no delivery left — pending and failed deliveries keep their event,
  so a failed one can still be redelivered;
* idempotency keys of ticket intake older than their 24 h window
  (:data:`app.services.intake.IDEMPOTENCY_WINDOW`).

Never touched: pending deliveries, failed deliveries (an operator has not dealt with
them), undispatched or unmailed events, and the newest dispatched event (the dispatcher's fan-out
watermark: without it, the next event would look like a gap in the sequence).

Each batch is its own short transaction that skips locked rows and gives up on a lock
after a moment, so the hot path (intake, the dispatcher's claims) never waits for it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.services.intake import IDEMPOTENCY_WINDOW
from app.workers.rounds import run_rounds

logger = logging.getLogger("sladesk.retention")

_DELIVERIES = text(
    """
    DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE status = 'succeeded' AND completed_at < :cutoff
        ORDER BY completed_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED)
    """
)
_EVENTS = text(
    """
    DELETE FROM outbox_events WHERE id IN (
        SELECT e.id FROM outbox_events e
        WHERE e.dispatched_at < :cutoff
          AND e.mailed_at IS NOT NULL
          AND e.seq < (SELECT max(seq) FROM outbox_events WHERE dispatched_at IS NOT NULL)
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)
        ORDER BY e.dispatched_at
        LIMIT :batch
        FOR UPDATE OF e SKIP LOCKED)
    """
)
_IDEMPOTENCY_KEYS = text(
    """
    DELETE FROM idempotency_keys WHERE (api_key_id, key) IN (
        SELECT api_key_id, key FROM idempotency_keys
        WHERE created_at < :cutoff
        ORDER BY created_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED)
    """
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetentionConfig:
    retention: timedelta = timedelta(days=90)
    batch: int = 500
    interval: float = 3600.0  # between rounds; a round runs until nothing is left
    pause: float = 0.05  # between batches: other work gets the database in between
    lock_timeout_ms: int = 2000
    error_backoff_max: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionConfig:
        return cls(retention=timedelta(days=settings.retention_days))


@dataclass
class Pruned:
    deliveries: int = 0
    events: int = 0
    idempotency_keys: int = 0


async def _batch(
    engine: AsyncEngine, sql: TextClause, cutoff: datetime, config: RetentionConfig
) -> int:
    async with engine.begin() as conn:
        await conn.execute(text(f"SET LOCAL lock_timeout = {int(config.lock_timeout_ms)}"))
        result = await conn.execute(sql, {"cutoff": cutoff, "batch": config.batch})
    return int(result.rowcount or 0)


async def prune(
    engine: AsyncEngine,
    config: RetentionConfig,
    *,
    now: datetime,
    stop: asyncio.Event | None = None,
) -> Pruned:
    """Prune everything due at ``now``, batch by batch; returns what went."""
    pruned = Pruned()
    steps = (
        ("deliveries", _DELIVERIES, now - config.retention),
        # After the deliveries: an event goes once its last delivery has gone.
        ("events", _EVENTS, now - config.retention),
        ("idempotency_keys", _IDEMPOTENCY_KEYS, now - IDEMPOTENCY_WINDOW),
    )
    for name, sql, cutoff in steps:
        while stop is None or not stop.is_set():
            count = await _batch(engine, sql, cutoff, config)
            setattr(pruned, name, getattr(pruned, name) + count)
            if count < config.batch:
                break
            await asyncio.sleep(config.pause)
    return pruned


async def run_retention(engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """The loop registered in app.workers.runner: a round now, then one per interval."""
    config = RetentionConfig.from_settings(settings)

    async def round_() -> float:
        pruned = await prune(engine, config, now=utcnow(), stop=stop)
        if pruned.deliveries or pruned.events or pruned.idempotency_keys:
            logger.info(
                "pruned %d deliveries, %d outbox events, %d idempotency keys",
                pruned.deliveries,
                pruned.events,
                pruned.idempotency_keys,
                extra={"worker": "retention"},
            )
        return config.interval

    await run_rounds(
        stop,
        asyncio.Event(),  # nothing wakes it early: retention is never urgent
        round_,
        what="retention",
        worker="retention",
        backoff_max=config.error_backoff_max,
    )
