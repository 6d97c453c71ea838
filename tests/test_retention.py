"""Data lifecycle: idempotency keys expire after 24 h; delivered webhook events and their
attempts are pruned after the retention period, in batches; nothing else is touched."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.workers.retention import RetentionConfig, prune, run_retention
from app.workers.runner import LOOPS
from tests.ticket_factories import make_desk, open_ticket

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=100)
RECENT = NOW - timedelta(days=10)


def _body(desk: Any) -> dict[str, Any]:
    return {
        "organization_id": desk.org["id"],
        "contact_id": desk.contact["id"],
        "channel": "email",
        "severity": "high",
        "category": "technical",
        "subject": "The export fails",
    }


async def _age_idempotency_key(engine: AsyncEngine, key: str, age: timedelta) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE idempotency_keys SET created_at = :at WHERE key = :key"),
            {"at": datetime.now(UTC) - age, "key": key},
        )


async def test_an_idempotency_key_replays_for_24_hours_then_starts_a_new_ticket(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin)
    headers = {"Idempotency-Key": "mail-2026-12-07"}
    first = await admin.post("/v1/tickets", json=_body(desk), headers=headers)
    assert first.status_code == 201
    await _age_idempotency_key(db, "mail-2026-12-07", timedelta(hours=23, minutes=59))
    retry = await admin.post("/v1/tickets", json=_body(desk), headers=headers)
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json()["id"] == first.json()["id"]
    # A day later the key is free again: the same request is a new ticket, and a retry of
    # that one replays it.
    await _age_idempotency_key(db, "mail-2026-12-07", timedelta(hours=24))
    later = await admin.post("/v1/tickets", json=_body(desk), headers=headers)
    assert later.status_code == 201 and "Idempotent-Replayed" not in later.headers
    assert later.json()["id"] != first.json()["id"]
    again = await admin.post("/v1/tickets", json=_body(desk), headers=headers)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == later.json()["id"]


async def _event(
    conn: Any, name: str, dispatched_at: datetime | None, *, mailed: bool = True
) -> tuple[uuid.UUID, int]:
    """An outbox event fanned out to webhooks at `dispatched_at` (None: not yet) and, unless
    `mailed` is false, looked at by the mail composer then too."""
    row = (
        await conn.execute(
            text(
                "INSERT INTO outbox_events (id, type, occurred_at, created_at, data, "
                "dispatched_at, mailed_at) VALUES (:id, 'ticket.created', :at, :at, :data, "
                ":dispatched, :mailed) RETURNING id, seq"
            ),
            {
                "id": uuid.uuid4(),
                "at": dispatched_at or OLD,
                "data": f'{{"name": "{name}"}}',
                "dispatched": dispatched_at,
                "mailed": dispatched_at if mailed else None,
            },
        )
    ).one()
    return row.id, row.seq


async def _delivery(
    conn: Any, event: tuple[uuid.UUID, int], subscription: str, status: str, at: datetime
) -> uuid.UUID:
    delivery = uuid.uuid4()
    await conn.execute(
        text(
            "INSERT INTO webhook_deliveries (id, event_id, subscription_id, event_seq, "
            "event_type, status, attempt_count, created_at, completed_at) VALUES (:id, :event, "
            ":sub, :seq, 'ticket.created', :status, 2, :at, :completed)"
        ),
        {
            "id": delivery,
            "event": event[0],
            "sub": subscription,
            "seq": event[1],
            "status": status,
            "at": at,
            "completed": None if status == "pending" else at,
        },
    )
    for number, outcome in ((1, "failed"), (2, "succeeded" if status == "succeeded" else "failed")):
        await conn.execute(
            text(
                "INSERT INTO webhook_attempts (id, delivery_id, number, trigger, started_at, "
                "duration_ms, status_code, outcome) VALUES (:id, :d, :n, 'schedule', :at, 12, "
                ":code, :outcome)"
            ),
            {
                "id": uuid.uuid4(),
                "d": delivery,
                "n": number,
                "at": at,
                "code": 200 if outcome == "succeeded" else 503,
                "outcome": outcome,
            },
        )
    return delivery


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def _names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT data->>'name' FROM outbox_events"))
        return {name for (name,) in rows if name}


async def test_pruning_keeps_history_pending_and_failed_work(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin)
    ticket = await open_ticket(admin, desk)
    await admin.post(f"/v1/tickets/{ticket['id']}/actions/note", json={"body": "internal"})
    hook = await admin.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    )
    subscription = hook.json()["id"]
    stale_key = await admin.post(
        "/v1/tickets", json=_body(desk), headers={"Idempotency-Key": "stale"}
    )
    fresh_key = await admin.post(
        "/v1/tickets", json=_body(desk), headers={"Idempotency-Key": "fresh"}
    )
    assert stale_key.status_code == fresh_key.status_code == 201
    await _age_idempotency_key(db, "stale", timedelta(hours=25))
    await _age_idempotency_key(db, "fresh", timedelta(hours=23))

    async with db.begin() as conn:
        for i in range(3):  # more than a batch (2 below) of each prunable kind
            await _delivery(
                conn, await _event(conn, f"old-ok-{i}", OLD), subscription, "succeeded", OLD
            )
            await _event(conn, f"old-no-delivery-{i}", OLD)
        await _delivery(conn, await _event(conn, "old-failed", OLD), subscription, "failed", OLD)
        await _delivery(conn, await _event(conn, "old-pending", OLD), subscription, "pending", OLD)
        await _delivery(
            conn, await _event(conn, "recent-ok", RECENT), subscription, "succeeded", RECENT
        )
        await _event(conn, "recent-no-delivery", RECENT)
        await _event(conn, "never-dispatched", None)
        # Fanned out long ago, but the mail composer has not looked at it yet.
        await _event(conn, "old-not-mailed", OLD, mailed=False)
        # The newest dispatched event is the dispatcher's watermark: kept however old.
        await _event(conn, "watermark", OLD)

    history = (
        "SELECT (SELECT count(*) FROM ticket_events) * 1000000 + "
        "(SELECT count(*) FROM sla_clocks) * 1000 + (SELECT count(*) FROM tickets)"
    )
    before_history = await _count(db, history)
    events_before = await _count(db, "SELECT count(*) FROM outbox_events")

    config = RetentionConfig(retention=timedelta(days=90), batch=2, pause=0)
    pruned = await prune(db, config, now=datetime.now(UTC))

    assert (pruned.deliveries, pruned.events, pruned.idempotency_keys) == (3, 6, 1)
    assert await _names(db) == {
        "old-failed",
        "old-pending",
        "recent-ok",
        "recent-no-delivery",
        "never-dispatched",
        "old-not-mailed",
        "watermark",
    }
    # The tickets' own outbox events (never dispatched here) are untouched too.
    assert await _count(db, "SELECT count(*) FROM outbox_events") == events_before - 6
    statuses = await _count(
        db,
        "SELECT count(*) FROM webhook_deliveries WHERE status IN ('failed', 'pending') "
        "OR completed_at > now() - interval '90 days'",
    )
    assert statuses == await _count(db, "SELECT count(*) FROM webhook_deliveries") == 3
    # Attempts went with their deliveries, and only with them.
    assert await _count(db, "SELECT count(*) FROM webhook_attempts") == 6
    keys = await _count(db, "SELECT count(*) FROM idempotency_keys WHERE key = 'fresh'")
    assert (keys, await _count(db, "SELECT count(*) FROM idempotency_keys")) == (1, 1)
    assert await _count(db, history) == before_history  # timelines, clocks, tickets kept

    again = await prune(db, config, now=datetime.now(UTC))
    assert (again.deliveries, again.events, again.idempotency_keys) == (0, 0, 0)


def test_the_workers_run_retention() -> None:
    assert ("retention", run_retention) in LOOPS
