"""Writing outbox events. Call inside the unit of work that makes the change."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.events import CATALOGUE
from app.models.build import build
from app.models.outbox import OutboxEvent

# NOTIFY is transactional: listeners hear it only once the change has committed.
OUTBOX_CHANNEL = "sladesk_outbox"


async def emit(
    session: AsyncSession,
    type_: str,
    *,
    occurred_at: datetime,
    data: dict[str, Any],
    organization_id: uuid.UUID | None = None,
    ticket_id: uuid.UUID | None = None,
    ticket_event_id: uuid.UUID | None = None,
    deferred: bool = False,
) -> OutboxEvent:
    """Add an outbox event; ``deferred``: only add it (a batch flushes and calls
    ``notify`` once at its end)."""
    if type_ not in CATALOGUE:
        # Subscribers choose from the catalogue: an event outside it would be invisible.
        raise ValueError(f"event type {type_!r} is not in app.events.CATALOGUE")
    event = build(
        OutboxEvent,
        type=type_,
        occurred_at=occurred_at,
        data=data,
        organization_id=organization_id,
        ticket_id=ticket_id,
        ticket_event_id=ticket_event_id,
    )
    session.add(event)
    if not deferred:
        await session.flush()
        await notify(session)
    return event


async def notify(session: AsyncSession) -> None:
    """Wake the dispatchers when this transaction commits."""
    await session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
