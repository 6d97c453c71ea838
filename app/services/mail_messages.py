"""Reading the e-mail channel: the rejected list, one received or sent message, the sent
log with its attempts, a ticket's conversation (in and out), attachments and originals;
and resending a sent message."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.mail.routing import Reason
from app.errors import NotFound
from app.models import InboundMail, MailAttachment, MailAttempt, OutboundMail
from app.pagination import keyset, page_of
from app.schemas.mail import (
    AttachmentRead,
    AttemptRead,
    InboundRead,
    InboundSummary,
    MessageRead,
    OutboundRead,
)
from app.security import Principal
from app.services import mail_compose, mail_parse, tickets

# What a customer key sees of a ticket's mail: what it sent that became the ticket or a
# reply, and what we wrote to it (a withheld answer was never meant for it).
_CUSTOMER_INBOUND = ("ticket", "reply")


async def _attachments(
    session: AsyncSession, inbound_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AttachmentRead]]:
    if not inbound_ids:
        return {}
    rows = (
        await session.execute(
            select(MailAttachment)
            .where(col(MailAttachment.inbound_id).in_(list(inbound_ids)))
            .order_by(col(MailAttachment.part))
        )
    ).scalars()
    found: dict[uuid.UUID, list[AttachmentRead]] = {}
    for row in rows:
        found.setdefault(row.inbound_id, []).append(AttachmentRead.model_validate(row))
    return found


EXCERPT = 500


def _inbound_summary(row: InboundMail, attachments: list[AttachmentRead]) -> InboundSummary:
    fields = set(InboundSummary.model_fields) - {"attachments", "excerpt"}
    data = {name: getattr(row, name) for name in fields}
    excerpt = (row.reply_text or row.text)[:EXCERPT]
    return InboundSummary.model_validate({**data, "excerpt": excerpt, "attachments": attachments})


def _inbound_read(row: InboundMail, attachments: list[AttachmentRead]) -> InboundRead:
    data = {name: getattr(row, name) for name in InboundRead.model_fields if name != "attachments"}
    return InboundRead.model_validate({**data, "attachments": attachments})


# -------------------------------------------------------------------------- received


async def list_rejected(
    session: AsyncSession,
    *,
    reason: Reason | None,
    organization_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[InboundSummary], str | None]:
    """Rejected messages, newest first."""
    stmt = select(InboundMail).where(col(InboundMail.status) == "rejected")
    if reason is not None:
        stmt = stmt.where(col(InboundMail.reason) == reason.value)
    if organization_id is not None:
        stmt = stmt.where(col(InboundMail.organization_id) == organization_id)
    stmt = keyset(
        stmt, [col(InboundMail.received_at), col(InboundMail.id)], cursor, limit, descending=True
    )
    rows = (await session.execute(stmt)).scalars().all()
    items, next_cursor = page_of(rows, limit, lambda r: (r.received_at, r.id))
    files = await _attachments(session, [r.id for r in items])
    return [_inbound_summary(r, files.get(r.id, [])) for r in items], next_cursor


async def get_inbound(session: AsyncSession, mail_id: uuid.UUID) -> InboundMail:
    row = await session.get(InboundMail, mail_id)
    if row is None:
        raise NotFound("No received message with that id.")
    return row


async def read_inbound(session: AsyncSession, row: InboundMail) -> InboundRead:
    files = await _attachments(session, [row.id])
    return _inbound_read(row, files.get(row.id, []))


# ------------------------------------------------------------------------------ sent


async def _attempts(
    session: AsyncSession, outbound_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[AttemptRead]]:
    if not outbound_ids:
        return {}
    rows = (
        await session.execute(
            select(MailAttempt)
            .where(col(MailAttempt.outbound_id).in_(list(outbound_ids)))
            .order_by(col(MailAttempt.outbound_id), col(MailAttempt.number))
        )
    ).scalars()
    found: dict[uuid.UUID, list[AttemptRead]] = {}
    for row in rows:
        found.setdefault(row.outbound_id, []).append(AttemptRead.model_validate(row))
    return found


def _outbound_read(row: OutboundMail, attempts: list[AttemptRead]) -> OutboundRead:
    data = {name: getattr(row, name) for name in OutboundRead.model_fields if name != "attempts"}
    return OutboundRead.model_validate({**data, "attempts": attempts})


async def list_outbound(
    session: AsyncSession,
    *,
    status: Sequence[str],
    ticket_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[OutboundRead], str | None]:
    """Every composed message with its attempts, newest first."""
    stmt = select(OutboundMail)
    if status:
        stmt = stmt.where(col(OutboundMail.status).in_(list(status)))
    if ticket_id is not None:
        stmt = stmt.where(col(OutboundMail.ticket_id) == ticket_id)
    stmt = keyset(
        stmt, [col(OutboundMail.created_at), col(OutboundMail.id)], cursor, limit, descending=True
    )
    rows = (await session.execute(stmt)).scalars().all()
    items, next_cursor = page_of(rows, limit, lambda r: (r.created_at, r.id))
    attempts = await _attempts(session, [r.id for r in items])
    return [_outbound_read(r, attempts.get(r.id, [])) for r in items], next_cursor


async def get_outbound(session: AsyncSession, mail_id: uuid.UUID) -> OutboundRead:
    row = await session.get(OutboundMail, mail_id)
    if row is None:
        raise NotFound("No sent message with that id.")
    attempts = await _attempts(session, [row.id])
    return _outbound_read(row, attempts.get(row.id, []))


async def resend(
    session: AsyncSession, mail_id: uuid.UUID, *, relay: bool, now: datetime
) -> OutboundRead:
    """Send it again (same Message-ID: a receiver that has it knows it is the same
    message). Without a relay it is held until one is configured."""
    row = (
        await session.execute(
            select(OutboundMail).where(col(OutboundMail.id) == mail_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No sent message with that id.")
    row.status = "pending" if relay else "held"
    row.reason = None
    # A send in flight no longer decides what becomes of it (it only logs its attempt).
    row.locked_until = row.lease_token = None
    row.next_attempt_at = now if relay else None
    row.resend_requested_at = now
    row.updated_at = now
    await session.flush()
    await mail_compose.notify(session)
    return await get_outbound(session, row.id)


# ---------------------------------------------------------------------- conversation


async def conversation(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[MessageRead], str | None]:
    """The ticket's messages in and out, oldest first (one cursor over both)."""
    await tickets.load(session, principal, ticket_id)
    inbound = select(InboundMail).where(col(InboundMail.ticket_id) == ticket_id)
    outbound = select(OutboundMail).where(col(OutboundMail.ticket_id) == ticket_id)
    if principal.is_customer:
        inbound = inbound.where(col(InboundMail.status).in_(_CUSTOMER_INBOUND))
        outbound = outbound.where(col(OutboundMail.status) != "suppressed")
    inbound = keyset(inbound, [col(InboundMail.received_at), col(InboundMail.id)], cursor, limit)
    outbound = keyset(outbound, [col(OutboundMail.created_at), col(OutboundMail.id)], cursor, limit)
    received = list((await session.execute(inbound)).scalars())
    sent = list((await session.execute(outbound)).scalars())
    files = await _attachments(session, [r.id for r in received])
    merged: list[MessageRead] = [_received(r, files.get(r.id, [])) for r in received]
    merged += [_sent(r) for r in sent]
    merged.sort(key=lambda m: (m.at, m.id))
    return page_of(merged[: limit + 1], limit, lambda m: (m.at, m.id))


def _received(row: InboundMail, attachments: list[AttachmentRead]) -> MessageRead:
    return MessageRead(
        id=row.id,
        direction="in",
        at=row.received_at,
        message_id=row.message_id,
        from_address=row.from_address,
        to_address=", ".join(row.envelope_to) or None,
        subject=row.subject,
        status=row.status,
        kind=None,
        text=row.reply_text or row.text,
        html=row.html,
        attachments=attachments,
        ticket_event_id=row.ticket_event_id,
        sent_at=None,
    )


def _sent(row: OutboundMail) -> MessageRead:
    return MessageRead(
        id=row.id,
        direction="out",
        at=row.created_at,
        message_id=row.message_id,
        from_address=row.from_address,
        to_address=row.to_address,
        subject=row.subject,
        status=row.status,
        kind=row.kind,
        text=row.text,
        html=row.html,
        attachments=[],
        ticket_event_id=None,
        sent_at=row.sent_at,
    )


async def original(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, message_id: uuid.UUID
) -> bytes:
    """The message of this ticket exactly as received or sent."""
    await tickets.load(session, principal, ticket_id)
    inbound = await session.get(InboundMail, message_id)
    if (
        inbound is not None
        and inbound.ticket_id == ticket_id
        and (not principal.is_customer or inbound.status in _CUSTOMER_INBOUND)
    ):
        return inbound.raw
    outbound = await session.get(OutboundMail, message_id)
    if (
        outbound is not None
        and outbound.ticket_id == ticket_id
        and (not principal.is_customer or outbound.status != "suppressed")
    ):
        return outbound.raw
    raise NotFound("No message with that id on this ticket.")


async def attachment(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, attachment_id: uuid.UUID
) -> tuple[bytes, str]:
    """An attachment of one of the ticket's received messages: its bytes and file name."""
    await tickets.load(session, principal, ticket_id)
    row = await session.get(MailAttachment, attachment_id)
    inbound = await session.get(InboundMail, row.inbound_id) if row is not None else None
    if row is None or inbound is None or inbound.ticket_id != ticket_id:
        raise NotFound("No attachment with that id on this ticket.")
    if principal.is_customer and inbound.status not in _CUSTOMER_INBOUND:
        raise NotFound("No attachment with that id on this ticket.")
    return _bytes_of(inbound, row)


async def staff_attachment(
    session: AsyncSession, mail_id: uuid.UUID, attachment_id: uuid.UUID
) -> tuple[bytes, str]:
    """An attachment of any received message (a rejected one too), for staff."""
    row = await session.get(MailAttachment, attachment_id)
    if row is None or row.inbound_id != mail_id:
        raise NotFound("No attachment with that id on this message.")
    inbound = await get_inbound(session, mail_id)
    return _bytes_of(inbound, row)


def _bytes_of(inbound: InboundMail, row: MailAttachment) -> tuple[bytes, str]:
    found = mail_parse.attachment(inbound.raw, row.part)
    if found is None:  # the parser changed since it was stored: say so, do not guess
        raise NotFound("The attachment can no longer be located in the message.")
    return found[0], row.filename


def content_disposition(filename: str) -> dict[str, Any]:
    """Download headers: always a download, never rendered by a browser on our origin."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'")
    return {
        "Content-Disposition": f'attachment; filename="{ascii_name}"; '
        f"filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }
