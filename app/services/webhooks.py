"""Webhook subscriptions and deliveries: the use cases behind /v1/webhooks.

Sending is the dispatcher's job (app.workers.dispatcher); what happens here only writes
rows and wakes it (``NOTIFY``, delivered when the request's transaction commits).
"""

from __future__ import annotations

import secrets
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.domain.webhooks import (
    SECRET_BYTES,
    IPAddress,
    PlainHttpRefused,
    address_refusal,
    format_secret,
    parse_target,
)
from app.errors import Conflict, NotFound, ValidationFailed, field_error, invalid_field
from app.events import CATALOGUE, PING, WILDCARD, unknown_event_types
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.pagination import keyset, page_of
from app.schemas.webhooks import DeliveryStatus, WebhookCreate, WebhookUpdate
from app.security import Principal
from app.services.netguard import AddressRefused, ResolutionFailed, checked_addresses
from app.services.outbox import OUTBOX_CHANNEL, emit

RESOLVE_TIMEOUT_SECONDS = 5.0


def new_secret() -> str:
    return format_secret(secrets.token_bytes(SECRET_BYTES))


async def wake_dispatcher(session: AsyncSession) -> None:
    """Wake the dispatchers once this transaction commits (NOTIFY is transactional)."""
    await session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))


# ------------------------------------------------------------------------- validation


async def check_url(url: str, settings: Settings, field: str = "body.url") -> str:
    """The URL's shape, scheme and destination; a 422 naming ``field`` if refused."""
    try:
        target = parse_target(url, allow_http=settings.webhooks_allow_http)
        httpx.URL(url)
    except PlainHttpRefused as exc:
        hint = "; the operator may allow plain http with SLADESK_WEBHOOKS_ALLOW_HTTP=true"
        raise invalid_field(field, f"{exc}{hint}", "url") from None
    except (ValueError, httpx.InvalidURL) as exc:
        raise invalid_field(field, str(exc), "url") from None
    if target.ip is not None:
        reason = address_refusal(target.ip, allow_private=settings.webhooks_allow_private)
        if reason is not None:
            raise invalid_field(field, _refusal(reason, target.ip), "url_forbidden")
    elif not settings.webhooks_allow_private:
        try:
            await checked_addresses(
                target.host,
                target.port,
                allow_private=False,
                limit=RESOLVE_TIMEOUT_SECONDS,
            )
        except AddressRefused as exc:
            raise invalid_field(field, _refusal(str(exc), exc.ip), "url_forbidden") from None
        except ResolutionFailed as exc:
            raise invalid_field(field, str(exc), "url_unresolvable") from None
    return url


def _refusal(reason: str, ip: IPAddress | None) -> str:
    """ "webhooks may not call it: 127.0.0.1 is a loopback address", and, when the operator
    could allow it (private ranges, not metadata or multicast), the setting that does."""
    message = f"webhooks may not call this address: {reason}"
    if ip is not None and address_refusal(ip, allow_private=True) is None:
        message += (
            "; the operator may allow private addresses with SLADESK_WEBHOOKS_ALLOW_PRIVATE=true"
        )
    return message


def check_event_types(names: Sequence[str], field: str = "body.event_types") -> list[str]:
    """Known names only (422 naming each unknown one); duplicates dropped; "*" alone."""
    unknown = unknown_event_types(list(names))
    if unknown:
        errors = [
            field_error(
                f"{field}[{i}]",
                f"unknown event type {names[i]!r}; see GET /v1/webhooks/event-types",
                "event_type",
            )
            for i in unknown
        ]
        raise ValidationFailed("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors)
    if WILDCARD in names:
        return [WILDCARD]
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------- subscriptions


async def get_subscription(
    session: AsyncSession, subscription_id: uuid.UUID
) -> WebhookSubscription:
    row = await session.get(WebhookSubscription, subscription_id)
    if row is None:
        raise NotFound("No webhook subscription with that id.")
    return row


async def list_subscriptions(
    session: AsyncSession, *, cursor: str | None, limit: int, active: bool | None = None
) -> tuple[list[WebhookSubscription], str | None]:
    stmt = select(WebhookSubscription)
    if active is not None:
        stmt = stmt.where(col(WebhookSubscription.active) == active)
    stmt = keyset(
        stmt,
        [col(WebhookSubscription.created_at), col(WebhookSubscription.id)],
        cursor,
        limit,
    )
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def create_subscription(
    session: AsyncSession, data: WebhookCreate, settings: Settings, *, now: datetime
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its secret (the only time the secret is returned)."""
    event_types = check_event_types(data.event_types)
    url = await check_url(data.url, settings)
    secret = new_secret()
    row = WebhookSubscription(
        url=url,
        event_types=event_types,
        description=data.description,
        active=data.active,
        disabled_at=None if data.active else now,
        disabled_reason=None if data.active else "created inactive",
        secret=secret,
    )
    session.add(row)
    await session.flush()
    return row, secret


async def update_subscription(
    session: AsyncSession,
    subscription_id: uuid.UUID,
    data: WebhookUpdate,
    settings: Settings,
    *,
    now: datetime,
) -> WebhookSubscription:
    row = await get_subscription(session, subscription_id)
    changes = data.changes()
    if "event_types" in changes:
        row.event_types = check_event_types(changes["event_types"])
    if "url" in changes:
        row.url = await check_url(changes["url"], settings)
    if "description" in changes:
        row.description = changes["description"]
    if "active" in changes and changes["active"] != row.active:
        row.active = changes["active"]
        if row.active:
            row.disabled_at, row.disabled_reason = None, None
            await wake_dispatcher(session)  # its pending deliveries may go now
        else:
            row.disabled_at, row.disabled_reason = now, "deactivated through the API"
    row.updated_at = now
    await session.flush()
    return row


async def delete_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> None:
    """Delete a subscription with its deliveries and their attempts."""
    row = await get_subscription(session, subscription_id)
    await session.delete(row)
    await session.flush()


async def rotate_secret(
    session: AsyncSession, subscription_id: uuid.UUID, settings: Settings, *, now: datetime
) -> tuple[WebhookSubscription, str]:
    """A new secret; the current one keeps signing too for the overlap (a second rotation
    within the overlap drops the oldest secret)."""
    row = await get_subscription(session, subscription_id)
    secret = new_secret()
    row.previous_secret = row.secret
    row.previous_secret_expires_at = now + timedelta(hours=settings.webhook_secret_overlap_hours)
    row.secret = secret
    row.updated_at = now
    await session.flush()
    return row, secret


async def ping(
    session: AsyncSession, principal: Principal, subscription_id: uuid.UUID, *, now: datetime
) -> WebhookDelivery:
    """A ``webhook.ping`` event for this subscription only, sent like any other event."""
    row = await get_subscription(session, subscription_id)
    if not row.active:
        raise Conflict("This subscription is disabled; enable it (PATCH active: true) first.")
    event = await emit(
        session,
        PING,
        occurred_at=now,
        data={
            "subscription_id": str(row.id),
            "message": CATALOGUE[PING].example["message"],
            "actor": principal.actor(),
        },
    )
    assert event.seq is not None
    # The dispatcher's fan-out would make this same row (addressed events go to the named
    # subscription only); making it now lets the caller follow it at once.
    delivery = WebhookDelivery(
        event_id=event.id,
        subscription_id=row.id,
        event_seq=event.seq,
        event_type=PING,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery


# ------------------------------------------------------------------------- deliveries


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    result: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if not delivery_ids:
        return result
    rows = (
        await session.execute(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(list(delivery_ids)))
            .order_by(col(WebhookAttempt.number), col(WebhookAttempt.started_at))
        )
    ).scalars()
    for attempt in rows:
        result[attempt.delivery_id].append(attempt)
    return result


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    row = await session.get(WebhookDelivery, delivery_id)
    if row is None:
        raise NotFound("No webhook delivery with that id.")
    return row


async def list_deliveries(
    session: AsyncSession,
    *,
    cursor: str | None,
    limit: int,
    subscription_id: uuid.UUID | None = None,
    event_type: str | None = None,
    status: DeliveryStatus | None = None,
    ticket_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> tuple[list[WebhookDelivery], str | None]:
    """Newest first."""
    if event_type is not None and event_type not in CATALOGUE:
        raise invalid_field(
            "query.event_type",
            f"unknown event type {event_type!r}; see GET /v1/webhooks/event-types",
            "event_type",
        )
    stmt = select(WebhookDelivery)
    for column, value in (
        (WebhookDelivery.subscription_id, subscription_id),
        (WebhookDelivery.event_type, event_type),
        (WebhookDelivery.status, status.value if status else None),
        (WebhookDelivery.ticket_id, ticket_id),
        (WebhookDelivery.event_id, event_id),
    ):
        if value is not None:
            stmt = stmt.where(col(column) == value)
    stmt = keyset(
        stmt,
        [col(WebhookDelivery.created_at), col(WebhookDelivery.id)],
        cursor,
        limit,
        descending=True,
    )
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def redeliver(
    session: AsyncSession, delivery_id: uuid.UUID, *, now: datetime
) -> WebhookDelivery:
    """One more attempt of this delivery, now, with the same ``webhook-id``. If it fails,
    the retry schedule continues from the attempts already made."""
    row = (
        await session.execute(
            select(WebhookDelivery).where(col(WebhookDelivery.id) == delivery_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No webhook delivery with that id.")
    subscription = await get_subscription(session, row.subscription_id)
    if not subscription.active:
        raise Conflict(
            "The subscription of this delivery is disabled; enable it (PATCH active: true) first."
        )
    if row.status == DeliveryStatus.PENDING and row.locked_until and row.locked_until > now:
        raise Conflict("An attempt of this delivery is in progress; wait for its result.")
    row.status = DeliveryStatus.PENDING.value
    row.next_attempt_at = now
    row.completed_at = None
    row.redeliver_requested_at = now
    await session.flush()
    await wake_dispatcher(session)
    return row
