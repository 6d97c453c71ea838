"""The e-mail channel on the wire: received and sent messages, a ticket's conversation."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from app.domain.mail.notices import Notice
from app.domain.mail.routing import Reason
from app.domain.vocab import Category, Severity
from app.schemas.common import NonBlank, ReadModel, StrictModel

InboundStatus = Literal["ticket", "reply", "rejected"]
OutboundStatus = Literal["held", "pending", "sent", "failed", "suppressed"]


class AcceptBody(StrictModel):
    override_reason: Annotated[str, NonBlank(2000)] = Field(
        description="why staff take it (recorded on the message, and as the ticket's "
        "override_reason when entitlement refuses the requester)"
    )
    contact_id: uuid.UUID | None = Field(
        default=None,
        description="the requester; required when the sender is no contact (create it first)",
    )
    organization_id: uuid.UUID | None = Field(
        default=None, description="optional check: the contact's organization"
    )
    severity: Severity | None = Field(default=None, description="default: the e-mail defaults")
    category: Category | None = Field(default=None, description="default: the e-mail defaults")


class AttachmentRead(ReadModel):
    id: uuid.UUID
    filename: str
    content_type: str = Field(description="as the sender declared it")
    size: int
    sha256: str
    inline: bool


class InboundResult(ReadModel):
    """What became of a delivered message."""

    id: uuid.UUID
    message_id: str
    status: InboundStatus
    reason: Reason | None = Field(description="why it was rejected")
    detail: str | None
    ticket_id: uuid.UUID | None
    duplicate: bool = Field(description="the Message-ID was delivered before: nothing new")


class InboundSummary(ReadModel):
    """A received message in a list: its text is in `GET /v1/mail/inbound/{id}`."""

    id: uuid.UUID
    message_id: str
    received_at: datetime
    source: Literal["smtp", "lmtp", "http"]
    from_address: str | None
    from_name: str | None
    subject: str
    size: int
    status: InboundStatus
    reason: Reason | None
    detail: str | None
    entitlement_reasons: list[str]
    organization_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    excerpt: str = Field(description="the start of the newest reply (500 characters)")
    attachments: list[AttachmentRead]


class InboundRead(ReadModel):
    id: uuid.UUID
    message_id: str
    received_at: datetime
    source: Literal["smtp", "lmtp", "http"]
    envelope_from: str | None
    envelope_to: list[str]
    from_address: str | None
    from_name: str | None
    subject: str
    in_reply_to: list[str]
    references: list[str]
    size: int
    status: InboundStatus
    reason: Reason | None
    detail: str | None
    entitlement_reasons: list[str]
    organization_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    ticket_id: uuid.UUID | None
    text: str
    reply_text: str = Field(description="the newest reply, quoted history cut")
    html: str | None = Field(description="sanitized")
    attachments: list[AttachmentRead]
    accepted_by: dict[str, Any] | None
    override_reason: str | None
    processed_at: datetime | None


class AttemptRead(ReadModel):
    number: int
    trigger: Literal["schedule", "resend"]
    started_at: datetime
    duration_ms: int
    outcome: Literal["sent", "failed"]
    smtp_code: int | None
    error: str | None


class OutboundRead(ReadModel):
    id: uuid.UUID
    message_id: str
    kind: Notice
    status: OutboundStatus
    reason: str | None = Field(
        description="suppressed: the loop rule (e.g. `rate_limited`); failed: `bounced`, "
        "`refused`, `exhausted`"
    )
    from_address: str
    to_address: str
    to_name: str | None
    subject: str
    language: str
    auto_submitted: str | None
    in_reply_to: str | None
    references: list[str]
    ticket_id: uuid.UUID | None
    organization_id: uuid.UUID | None
    contact_id: uuid.UUID | None
    inbound_id: uuid.UUID | None
    source_event_id: uuid.UUID | None
    attempt_count: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime
    text: str
    html: str
    attempts: list[AttemptRead]


class MessageRead(ReadModel):
    """One message of a ticket's conversation, received or sent."""

    id: uuid.UUID
    direction: Literal["in", "out"]
    at: datetime = Field(description="received (in) or composed (out)")
    message_id: str
    from_address: str | None
    to_address: str | None
    subject: str
    status: str = Field(description="in: ticket, reply (or rejected, staff only); out: held…")
    kind: str | None = Field(description="out: the notice (acknowledged, reply…)")
    text: str = Field(description="in: the newest reply; out: the text part")
    html: str | None = Field(description="sanitized (in) or as sent (out)")
    attachments: list[AttachmentRead]
    ticket_event_id: uuid.UUID | None
    sent_at: datetime | None
