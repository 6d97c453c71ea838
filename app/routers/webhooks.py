"""/v1/webhooks (admin only): subscriptions, their deliveries, and the event catalogue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request, Response

from app.config import Settings
from app.db import SessionDep
from app.domain.webhooks import webhook_id
from app.events import CATALOGUE, EventType, example_message
from app.models.webhooks import WebhookAttempt, WebhookDelivery, WebhookSubscription
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import problems
from app.schemas.webhooks import (
    AttemptRead,
    DeliveryRead,
    DeliveryStatus,
    EventTypeRead,
    EventTypesRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookSecretRotated,
    WebhookUpdate,
)
from app.security import AdminKey
from app.services import webhooks

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _read(row: WebhookSubscription) -> WebhookRead:
    return WebhookRead.model_validate(row)


def _delivery(row: WebhookDelivery, attempts: Sequence[WebhookAttempt]) -> DeliveryRead:
    return DeliveryRead(
        id=row.id,
        subscription_id=row.subscription_id,
        event_id=row.event_id,
        event_type=row.event_type,
        ticket_id=row.ticket_id,
        webhook_id=webhook_id(row.event_id),
        status=DeliveryStatus(row.status),
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at if row.status == DeliveryStatus.PENDING else None,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        created_at=row.created_at,
        completed_at=row.completed_at,
        attempts=[AttemptRead.model_validate(a) for a in attempts],
    )


# Fixed paths first: "/deliveries" must not be taken for a subscription id.


@router.get("/event-types", response_model=EventTypesRead)
async def event_types(principal: AdminKey) -> EventTypesRead:
    """The catalogue of event types a subscription can choose, each with an example body.
    (The same catalogue is in this document's `webhooks` section.)"""
    return EventTypesRead(
        items=[
            EventTypeRead(
                name=t.name,
                summary=t.summary,
                description=t.description,
                ordered_per_ticket=t.ticket,
                example=example_message(t.name),
            )
            for t in CATALOGUE.values()
        ]
    )


@router.get("/deliveries", response_model=Page[DeliveryRead])
async def list_deliveries(
    session: SessionDep,
    principal: AdminKey,
    subscription_id: uuid.UUID | None = Query(default=None),
    event_type: str | None = Query(default=None, pattern=r"^[A-Za-z0-9_.*-]{1,64}$"),
    status: DeliveryStatus | None = Query(default=None),
    ticket_id: uuid.UUID | None = Query(default=None),
    event_id: uuid.UUID | None = Query(default=None),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[DeliveryRead]:
    """Deliveries, newest first, each with every attempt (status code, error, duration)."""
    rows, next_cursor = await webhooks.list_deliveries(
        session,
        cursor=cursor,
        limit=limit,
        subscription_id=subscription_id,
        event_type=event_type,
        status=status,
        ticket_id=ticket_id,
        event_id=event_id,
    )
    attempts = await webhooks.attempts_of(session, [r.id for r in rows])
    return Page(items=[_delivery(r, attempts[r.id]) for r in rows], next_cursor=next_cursor)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryRead, responses=problems(404))
async def get_delivery(
    delivery_id: uuid.UUID, session: SessionDep, principal: AdminKey
) -> DeliveryRead:
    row = await webhooks.get_delivery(session, delivery_id)
    attempts = await webhooks.attempts_of(session, [row.id])
    return _delivery(row, attempts[row.id])


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryRead,
    responses=problems(404, 409),
)
async def redeliver(
    delivery_id: uuid.UUID, session: SessionDep, principal: AdminKey
) -> DeliveryRead:
    """Send this delivery again now: a new attempt with the same `webhook-id` (if it fails,
    the retry schedule goes on from the attempts already made). A ticket's deliveries keep
    their order: later ones to the same subscription wait for this one. Refused (409) while
    an attempt is in progress or the subscription is disabled."""
    row = await webhooks.redeliver(session, delivery_id, now=datetime.now(UTC))
    attempts = await webhooks.attempts_of(session, [row.id])
    return _delivery(row, attempts[row.id])


@router.get("", response_model=Page[WebhookRead])
async def list_webhooks(
    session: SessionDep,
    principal: AdminKey,
    active: bool | None = Query(default=None, description="only active (or inactive) ones"),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[WebhookRead]:
    rows, next_cursor = await webhooks.list_subscriptions(
        session, cursor=cursor, limit=limit, active=active
    )
    return Page(items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=WebhookCreated)
async def create_webhook(
    data: WebhookCreate, request: Request, session: SessionDep, principal: AdminKey
) -> WebhookCreated:
    """Subscribe a URL to event types. The response carries the signing secret
    (`whsec_…`): it is shown only this once. Deliveries follow the Standard Webhooks
    specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."""
    row, secret = await webhooks.create_subscription(
        session, data, _settings(request), now=datetime.now(UTC)
    )
    return WebhookCreated.model_validate({**_read(row).model_dump(), "secret": secret})


@router.get("/{subscription_id}", response_model=WebhookRead, responses=problems(404))
async def get_webhook(
    subscription_id: uuid.UUID, session: SessionDep, principal: AdminKey
) -> WebhookRead:
    return _read(await webhooks.get_subscription(session, subscription_id))


@router.patch("/{subscription_id}", response_model=WebhookRead, responses=problems(404))
async def update_webhook(
    subscription_id: uuid.UUID,
    data: WebhookUpdate,
    request: Request,
    session: SessionDep,
    principal: AdminKey,
) -> WebhookRead:
    row = await webhooks.update_subscription(
        session, subscription_id, data, _settings(request), now=datetime.now(UTC)
    )
    return _read(row)


@router.delete("/{subscription_id}", status_code=204, responses=problems(404))
async def delete_webhook(
    subscription_id: uuid.UUID, session: SessionDep, principal: AdminKey
) -> Response:
    """Delete a subscription, with its deliveries and their attempts."""
    await webhooks.delete_subscription(session, subscription_id)
    return Response(status_code=204)


@router.post(
    "/{subscription_id}/rotate-secret", response_model=WebhookSecretRotated, responses=problems(404)
)
async def rotate_secret(
    subscription_id: uuid.UUID, request: Request, session: SessionDep, principal: AdminKey
) -> WebhookSecretRotated:
    """Replace the signing secret. The new one is returned only this once; until
    `previous_secret_expires_at` (`SLADESK_WEBHOOK_SECRET_OVERLAP_HOURS`, default 24 h)
    every delivery carries two signatures, so receivers can switch without losing any."""
    row, secret = await webhooks.rotate_secret(
        session, subscription_id, _settings(request), now=datetime.now(UTC)
    )
    return WebhookSecretRotated.model_validate({**_read(row).model_dump(), "secret": secret})


@router.post(
    "/{subscription_id}/ping",
    status_code=202,
    response_model=DeliveryRead,
    responses=problems(404, 409),
)
async def ping(
    subscription_id: uuid.UUID, session: SessionDep, principal: AdminKey
) -> DeliveryRead:
    """Send a `webhook.ping` event to this subscription through the normal pipeline
    (signed, retried, logged). Follow it with `GET /v1/webhooks/deliveries/{id}`."""
    row = await webhooks.ping(session, principal, subscription_id, now=datetime.now(UTC))
    return _delivery(row, [])


# ------------------------------------------------------------- OpenAPI `webhooks` section

_SIGNATURE_HEADERS: list[dict[str, Any]] = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The message id (`msg_…`), the same on every retry: use it to "
        "process each event once.",
        "schema": {"type": "string", "examples": ["msg_0b6f7c1e4d0a4c8e9a556a8f2f0c1d11"]},
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "Unix seconds of this attempt; refuse it if far from your clock.",
        "schema": {"type": "string", "examples": ["1773046800"]},
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": 'Space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` '
        "keyed with the base64-decoded part of the secret after `whsec_`; two during a "
        "secret rotation. Any Standard Webhooks library verifies it.",
        "schema": {"type": "string"},
    },
]


def _webhook_operation(event: EventType) -> dict[str, Any]:
    ordering = (
        "Delivered in event order per ticket and subscription."
        if event.ticket
        else "Not ordered with other events."
    )
    return {
        "parameters": _SIGNATURE_HEADERS,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["type", "timestamp", "data"],
                        "properties": {
                            "type": {"type": "string", "const": event.name},
                            "timestamp": {
                                "type": "string",
                                "format": "date-time",
                                "description": "when the event happened (not the attempt)",
                            },
                            "data": {"type": "object"},
                        },
                    },
                    "example": example_message(event.name),
                }
            },
        },
        "responses": {
            "200": {
                "description": "Any 2xx acknowledges the delivery. A 3xx fails it at once "
                "(redirects are not followed; fix the URL and redeliver). Anything else is "
                "retried: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (±10 %), "
                "honouring `Retry-After` on 429 and 5xx. 410 Gone disables the subscription."
            }
        },
        "description": f"{event.description}\n\n{ordering}",
    }


def document_webhooks(app: FastAPI) -> None:
    """One OpenAPI webhook (OpenAPI 3.1 `webhooks`) per event type, with its example."""

    async def _receiver() -> None:  # documentation only; never routed
        return None

    for event in CATALOGUE.values():
        extra = _webhook_operation(event)
        app.webhooks.add_api_route(
            event.name,
            _receiver,
            methods=["POST"],
            summary=event.summary,
            description=extra.pop("description"),
            operation_id=f"webhook_{event.name.replace('.', '_')}",
            tags=["webhook events"],
            openapi_extra=extra,
        )
