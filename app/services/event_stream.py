"""Live updates (`GET /v1/events/stream`): which events a key's stream admits, what they
look like to it, and the Server-Sent Events stream itself (its hub, reading the outbox,
is app.workers.stream_hub).

* Staff keys receive every event of the webhook catalogue, exactly as webhooks carry it.
* A customer key receives its own organization's events whose timeline entry a customer
  can read (``app.events.CUSTOMER_EVENT_TYPES``: not the desk's SLA alarms, not webhook
  pings), with actors shown as on its timeline (role and contact only).
* ``types`` and ``ticket_id`` narrow either further.

Each event is one SSE message: ``id`` (the outbox ``seq``: what ``Last-Event-ID`` resumes
after), ``event`` (the type) and ``data`` (the webhook body: ``{"type", "timestamp",
"data"}``). An idle stream gets a comment line every heartbeat; every stream ends after
the configured maximum duration, and clients reconnect with ``Last-Event-ID``.
"""

from __future__ import annotations

import copy
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import invalid_field
from app.events import CUSTOMER_EVENT_TYPES, WILDCARD, unknown_event_types
from app.models import StreamToken
from app.security import STREAM_TOKEN_PREFIX, Principal, hash_key
from app.services import tickets
from app.workers.stream_hub import Scope, StreamHub, Subscription

RETRY_MS = 2000  # the reconnection delay EventSource is told to use
MAX_EVENT_ID = 2**63 - 1


def scope_of(principal: Principal, types: list[str] | None, ticket_id: uuid.UUID | None) -> Scope:
    """What the key's stream admits (422 for a type it could never receive)."""
    wanted = None if not types or WILDCARD in types else frozenset(types)
    for index in unknown_event_types(types or []):
        raise invalid_field(
            f"query.types[{index}]",
            "not an event type; see GET /v1/webhooks/event-types",
            "unknown_event_type",
        )
    if not principal.is_customer:
        return Scope(types=wanted, ticket_id=ticket_id)
    refused = sorted((wanted or frozenset()) - CUSTOMER_EVENT_TYPES)
    if refused:
        raise invalid_field(
            "query.types",
            f"customer keys do not receive {', '.join(refused)}; they receive: "
            + ", ".join(sorted(CUSTOMER_EVENT_TYPES)),
            "not_for_customers",
        )
    return Scope(
        organization_id=principal.organization_id,
        types=wanted or CUSTOMER_EVENT_TYPES,
        ticket_id=ticket_id,
    )


async def check_ticket(session: AsyncSession, principal: Principal, ticket_id: uuid.UUID) -> None:
    """A ticket filter names a ticket the key can see (404 otherwise)."""
    await tickets.load(session, principal, ticket_id)


def last_event_id(header: str | None, query: str | None) -> int | None:
    """Where to resume: the ``Last-Event-ID`` header (EventSource sends it when it
    reconnects), else the ``last_event_id`` query parameter (a new EventSource)."""
    for name, value in (("header.Last-Event-ID", header), ("query.last_event_id", query)):
        if value is None or not value.strip():
            continue
        value = value.strip()
        if not value.isascii() or not value.isdigit() or int(value) > MAX_EVENT_ID:
            raise invalid_field(name, "must be the id of an event this stream sent", "event_id")
        return int(value)
    return None


# ----------------------------------------------------------------------- shapes


def staff_shape(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    return data


def customer_shape(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """The payload as a customer key may see it: actors as on its timeline."""
    shaped = copy.deepcopy(data)
    event = shaped.get("event")
    if isinstance(event, dict) and isinstance(event.get("actor"), dict):
        event["actor"] = tickets.customer_view_of_actor(event["actor"])
    if isinstance(shaped.get("actor"), dict):
        shaped["actor"] = tickets.customer_view_of_actor(shaped["actor"])
    authorization = shaped.get("authorization")
    if isinstance(authorization, dict) and isinstance(authorization.get("decided_by"), dict):
        authorization["decided_by"] = tickets.customer_view_of_actor(authorization["decided_by"])
    return shaped


# ----------------------------------------------------------------------- stream


async def events(
    hub: StreamHub,
    subscription: Subscription,
    scope: Scope,
    *,
    customer: bool,
    after: int | None,
    max_seconds: float,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """The SSE byte stream: every admitted event after ``after`` (default: from now), in
    ``seq`` order, until ``max_seconds`` pass or the hub closes the stream."""
    view, shape = ("customer", customer_shape) if customer else ("staff", staff_shape)
    deadline = time.monotonic() + max_seconds
    cursor = after
    if cursor is None:
        cursor = await hub.start_position(subscription, deadline - time.monotonic())
        if cursor is None:
            return
    # The first chunk starts the response (a browser fires `open`) once the position is
    # known. `id` sets the client's Last-Event-ID even before any event comes, and each
    # heartbeat moves it past events its filters skipped: a reconnect resumes exactly.
    yield f"retry: {RETRY_MS}\nid: {cursor}\n: connected\n\n".encode()
    written = time.monotonic()
    while subscription.closed is None:
        now = time.monotonic()
        if now >= deadline:
            return
        # A heartbeat after `heartbeat` seconds without a write — also when other
        # organizations' events keep the hub busy and none of them is for this stream.
        quiet = heartbeat - (now - written)
        if quiet <= 0:
            yield f": heartbeat\nid: {cursor}\n\n".encode()
            written = now
            continue
        batch = await hub.read(subscription, cursor, scope, min(quiet, deadline - now))
        if batch is None:
            continue
        for event in batch.events:
            yield event.frame(view, shape)
            written = time.monotonic()
        cursor = batch.upto


# ------------------------------------------------------------------ stream tokens


async def create_token(
    session: AsyncSession, principal: Principal, *, now: datetime, ttl_seconds: int
) -> tuple[str, datetime]:
    """A new stream token of this key (shown once, stored hashed); the key's expired ones
    are deleted on the way."""
    await session.execute(
        delete(StreamToken).where(
            col(StreamToken.api_key_id) == principal.key_id, col(StreamToken.expires_at) <= now
        )
    )
    token = STREAM_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=ttl_seconds)
    session.add(
        StreamToken(token_hash=hash_key(token), api_key_id=principal.key_id, expires_at=expires_at)
    )
    await session.flush()
    return token, expires_at.astimezone(UTC)


__all__ = [
    "RETRY_MS",
    "check_ticket",
    "create_token",
    "customer_shape",
    "events",
    "last_event_id",
    "scope_of",
]
