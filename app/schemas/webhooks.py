"""Webhook subscriptions, deliveries and the event catalogue on the wire.

Secrets appear only in :class:`WebhookCreated` and :class:`WebhookSecretRotated`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from app.domain.webhooks import MAX_URL_LENGTH
from app.events import CATALOGUE, WILDCARD
from app.schemas.common import Bool, PatchModel, ReadModel, StrictModel, Text

Url = Annotated[
    str,
    Field(
        max_length=MAX_URL_LENGTH,
        # Documented; checked (with a message naming the problem) by app.domain.webhooks.
        json_schema_extra={"pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20]+$"},
        examples=["https://hooks.example.com/sladesk"],
        description="https URL (http only where the operator allows it). Must not resolve "
        "to private, loopback, link-local or metadata addresses unless allowed.",
    ),
]
EventTypes = Annotated[
    list[
        Annotated[
            str,
            Field(max_length=64),
            WithJsonSchema({"type": "string", "enum": [WILDCARD, *sorted(CATALOGUE)]}),
        ]
    ],
    Field(
        min_length=1,
        max_length=50,
        examples=[["ticket.created", "sla.warning", "sla.breached"], [WILDCARD]],
        description=f'Event type names from `GET /v1/webhooks/event-types`, or "{WILDCARD}" '
        "for all.",
    ),
]
Description = Annotated[str, Text(500)]


class WebhookCreate(StrictModel):
    url: Url
    event_types: EventTypes
    description: Description | None = None
    active: Bool = True


class WebhookUpdate(PatchModel):
    """Send only what changes. `active: true` re-enables a subscription disabled by a 410
    (its deliveries still pending are then sent)."""

    nullable = frozenset({"description"})

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    active: Bool | None = None


class WebhookRead(ReadModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    active: bool
    disabled_reason: str | None = Field(description="why it stopped (e.g. 410 Gone), if it did")
    disabled_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="during a secret rotation: until when the previous secret also signs"
    )
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(
        description="the signing secret (`whsec_…`); shown only this once, store it now"
    )


class WebhookSecretRotated(WebhookRead):
    secret: str = Field(
        description="the new signing secret; shown only this once. Both secrets sign until "
        "`previous_secret_expires_at`."
    )


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AttemptRead(ReadModel):
    number: int = Field(description="1 for the first attempt")
    trigger: str = Field(description="`schedule` or `redeliver`")
    started_at: datetime
    duration_ms: int
    status_code: int | None = Field(description="the receiver's HTTP status; null if none")
    outcome: str = Field(description="`succeeded` or `failed`")
    error: str | None
    response_excerpt: str | None = Field(description="the start of the receiver's answer")


class DeliveryRead(ReadModel):
    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    ticket_id: uuid.UUID | None
    webhook_id: str = Field(description="the `webhook-id` header: the same on every attempt")
    status: DeliveryStatus = Field(
        description="`pending` (waiting for its next attempt, or being sent), `succeeded`, "
        "or `failed` (retries exhausted, or the receiver answered 410)"
    )
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    attempts: list[AttemptRead]


class EventTypeRead(ReadModel):
    name: str
    summary: str
    description: str
    ordered_per_ticket: bool = Field(description="delivered in event order per ticket")
    example: dict[str, Any] = Field(description="an example body of a delivery")


class EventTypesRead(ReadModel):
    items: list[EventTypeRead]
