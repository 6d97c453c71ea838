"""/v1/mail: raw messages from cloud relays, the rejected list, the sent log; and a
ticket's conversation and attachments under /v1/tickets."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from app.config import Settings
from app.db import SessionDep
from app.domain.mail.routing import Reason
from app.errors import PayloadTooLarge, UnsupportedMediaType, invalid_field
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import problems
from app.schemas.mail import (
    AcceptBody,
    InboundRead,
    InboundResult,
    InboundSummary,
    MessageRead,
    OutboundRead,
    OutboundStatus,
)
from app.security import AnyKey, MailKey, StaffKey
from app.services import mail_accept, mail_inbound, mail_messages
from app.services.mail_policy import InboundPolicy

router = APIRouter(prefix="/v1/mail", tags=["mail"])
ticket_router = APIRouter(prefix="/v1/tickets", tags=["mail"])

INBOUND_PATH = "/v1/mail/inbound"
RFC822 = "message/rfc822"
# A message starts with a header field: a name of printable characters but ":", then ":".
_FIRST_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")

_BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}


def _file(description: str, media_type: str) -> dict[int | str, dict[str, Any]]:
    """A 200 that is a file, and the 404 of a download."""
    return {200: {"description": description, "content": {media_type: _BINARY}}} | problems(404)


def _now() -> datetime:
    return datetime.now(UTC)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _unsupported_media_type() -> dict[int | str, dict[str, Any]]:
    entry = problems(415)[415]
    return {415: {**entry, "description": f"The body is not sent as {RFC822}"}}


@router.post(
    "/inbound",
    status_code=201,
    response_model=InboundResult,
    responses={
        200: {
            "model": InboundResult,
            "description": "This Message-ID was delivered before: nothing new happened",
        },
        **_unsupported_media_type(),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The raw message (RFC 5322 / MIME) exactly as received, at most "
            "`SLADESK_MAIL_MAX_MESSAGE_BYTES`.",
            "content": {RFC822: _BINARY},
        }
    },
)
async def deliver(request: Request, session: SessionDep, principal: MailKey) -> JSONResponse:
    """For cloud relays that POST raw MIME (a key of role `mail`, or an admin). The message
    is stored whole first (a repeated Message-ID is a 200 and changes nothing), then goes
    where an e-mail goes: a new ticket, a reply on one, or the rejected list with its
    reason."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != RFC822:
        raise UnsupportedMediaType(
            f"Send the raw message with Content-Type: {RFC822} (not {media_type or 'none'})."
        )
    settings = _settings(request)
    limit = settings.mail_max_message_bytes
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(f"The message exceeds the limit of {limit} bytes.")
    if not raw.strip():
        raise invalid_field("body", "the message is empty", "empty")
    if not _FIRST_FIELD.match(raw.lstrip(b"\r\n")):
        raise invalid_field(
            "body", "not an RFC 5322 message: it must start with header fields", "not_a_message"
        )
    now = _now()
    received = await mail_inbound.receive(
        session,
        mail_inbound.Delivery(raw=raw, source="http", received_at=now, key_id=principal.key_id),
        InboundPolicy.from_settings(settings),
        now=now,
    )
    row = received.row
    result = InboundResult(
        id=row.id,
        message_id=row.message_id,
        status=row.status,
        reason=Reason(row.reason) if row.reason else None,
        detail=row.detail,
        ticket_id=row.ticket_id,
        duplicate=received.duplicate,
    )
    return JSONResponse(
        result.model_dump(mode="json"), status_code=200 if received.duplicate else 201
    )


@router.get("/rejected", response_model=Page[InboundSummary])
async def list_rejected(
    session: SessionDep,
    principal: StaffKey,
    reason: Reason | None = Query(default=None, description="only this reason"),
    organization_id: uuid.UUID | None = Query(
        default=None, description="only messages recognised as this organization's"
    ),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[InboundSummary]:
    """Received messages that are no ticket and no reply, newest first, with the reason
    (`unknown_sender`, `end_user`, `ambiguous_sender`, `not_entitled` and its
    `entitlement_reasons`, `auto_reply`, `bounce`, `too_large`, `unauthenticated`, `loop`,
    `invalid`, `failed`)."""
    items, next_cursor = await mail_messages.list_rejected(
        session, reason=reason, organization_id=organization_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/rejected/{mail_id}/accept",
    status_code=201,
    response_model=InboundRead,
    responses=problems(404, 409),
)
async def accept(
    mail_id: uuid.UUID, data: AcceptBody, session: SessionDep, principal: StaffKey
) -> InboundRead:
    """Staff turn a rejected message into a ticket (`received_at` = its arrival; when
    entitlement refuses the requester, `override_reason` is the ticket's, as on
    `POST /v1/tickets`)."""
    row = await mail_accept.accept(session, principal, mail_id, data, now=_now())
    return await mail_messages.read_inbound(session, row)


@router.get("/inbound/{mail_id}", response_model=InboundRead, responses=problems(404))
async def get_inbound(mail_id: uuid.UUID, session: SessionDep, principal: StaffKey) -> InboundRead:
    row = await mail_messages.get_inbound(session, mail_id)
    return await mail_messages.read_inbound(session, row)


@router.get(
    "/inbound/{mail_id}/raw",
    response_class=Response,
    responses=_file("The message as received", RFC822),
)
async def get_inbound_raw(mail_id: uuid.UUID, session: SessionDep, principal: StaffKey) -> Response:
    """The original, byte for byte."""
    row = await mail_messages.get_inbound(session, mail_id)
    return Response(
        row.raw, media_type=RFC822, headers=mail_messages.content_disposition(f"{row.id}.eml")
    )


@router.get(
    "/inbound/{mail_id}/attachments/{attachment_id}",
    response_class=Response,
    responses=_file("The file", "application/octet-stream"),
)
async def get_inbound_attachment(
    mail_id: uuid.UUID, attachment_id: uuid.UUID, session: SessionDep, principal: StaffKey
) -> Response:
    """An attachment of any received message (a rejected one too)."""
    data, filename = await mail_messages.staff_attachment(session, mail_id, attachment_id)
    return _download(data, filename)


@router.get("/outbound", response_model=Page[OutboundRead])
async def list_outbound(
    session: SessionDep,
    principal: StaffKey,
    status: Annotated[list[OutboundStatus] | None, Query()] = None,
    ticket_id: uuid.UUID | None = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[OutboundRead]:
    """Every message composed for a customer, newest first, with its attempts: `held` (no
    relay configured: sent once one is), `pending`, `sent`, `failed`, `suppressed`."""
    items, next_cursor = await mail_messages.list_outbound(
        session, status=status or [], ticket_id=ticket_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/outbound/{mail_id}", response_model=OutboundRead, responses=problems(404))
async def get_outbound(
    mail_id: uuid.UUID, session: SessionDep, principal: StaffKey
) -> OutboundRead:
    return await mail_messages.get_outbound(session, mail_id)


@router.post("/outbound/{mail_id}/resend", response_model=OutboundRead, responses=problems(404))
async def resend(
    request: Request, mail_id: uuid.UUID, session: SessionDep, principal: StaffKey
) -> OutboundRead:
    """Send it again, with the same Message-ID (a withheld answer too: staff decide)."""
    relay = _settings(request).smtp_url is not None
    return await mail_messages.resend(session, mail_id, relay=relay, now=_now())


# ------------------------------------------------------------------ a ticket's mail


@ticket_router.get(
    "/{ticket_id}/messages", response_model=Page[MessageRead], responses=problems(404)
)
async def list_messages(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[MessageRead]:
    """The ticket's e-mail conversation, received and sent, oldest first (customer keys
    see what they sent that reached the ticket and what we wrote to them)."""
    items, next_cursor = await mail_messages.conversation(
        session, principal, ticket_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


@ticket_router.get(
    "/{ticket_id}/messages/{message_id}/raw",
    response_class=Response,
    responses=_file("The message as sent or received", RFC822),
)
async def get_message_raw(
    ticket_id: uuid.UUID, message_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> Response:
    """The full original of one message of the conversation."""
    raw = await mail_messages.original(session, principal, ticket_id, message_id)
    return Response(
        raw, media_type=RFC822, headers=mail_messages.content_disposition(f"{message_id}.eml")
    )


@ticket_router.get(
    "/{ticket_id}/attachments/{attachment_id}",
    response_class=Response,
    responses=_file("The file", "application/octet-stream"),
)
async def get_attachment(
    ticket_id: uuid.UUID, attachment_id: uuid.UUID, session: SessionDep, principal: AnyKey
) -> Response:
    """An attachment of a message of the ticket, as a download (always
    `application/octet-stream`: the declared type is in the message's `attachments`)."""
    data, filename = await mail_messages.attachment(session, principal, ticket_id, attachment_id)
    return _download(data, filename)


def _download(data: bytes, filename: str) -> Response:
    return Response(
        data,
        media_type="application/octet-stream",
        headers=mail_messages.content_disposition(filename),
    )
