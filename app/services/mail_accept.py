"""Staff turn a rejected message into a ticket (``POST /v1/mail/rejected/{id}/accept``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.vocab import Channel
from app.errors import Conflict, NotFound, invalid_field
from app.models import Contact, InboundMail
from app.schemas.mail import AcceptBody
from app.schemas.tickets import TicketCreate
from app.security import Principal
from app.services import entitlement, intake
from app.services.mail_inbound import (
    MAX_BODY,
    defaults_for,
    latest_event,
    ticket_subject,
    truncate,
)


async def accept(
    session: AsyncSession,
    principal: Principal,
    inbound_id: uuid.UUID,
    data: AcceptBody,
    *,
    now: datetime,
) -> InboundMail:
    """Staff turn a rejected message into a ticket: the requester is the contact named
    (or the one recognised), ``received_at`` is the arrival, and when entitlement refuses
    the ticket is taken with ``override_reason`` (recorded on the message as well)."""
    row = (
        await session.execute(
            select(InboundMail).where(col(InboundMail.id) == inbound_id).with_for_update()
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("No received message with that id.")
    if row.status != "rejected":
        raise Conflict(
            f"This message is already a {row.status} on ticket {row.ticket_id}.",
            mail_status=row.status,
            ticket_id=str(row.ticket_id) if row.ticket_id else None,
        )
    contact_id = data.contact_id or row.contact_id
    if contact_id is None:
        raise invalid_field(
            "body.contact_id",
            "the sender is no contact: name the requester (create the contact first)",
            "missing",
        )
    contact = await session.get(Contact, contact_id)
    if contact is None:
        raise invalid_field("body.contact_id", "no contact with this id")
    if data.organization_id is not None and data.organization_id != contact.organization_id:
        raise invalid_field("body.organization_id", "the contact is of another organization")
    severity, category = await defaults_for(session, principal, contact.organization_id, row)
    severity, category = data.severity or severity, data.category or category
    verdict = await entitlement.decide_for(
        session,
        principal,
        contact.organization_id,
        at=row.received_at,
        contact_id=contact.id,
        channel=Channel.EMAIL,
        category=category,
        contact_field="body.contact_id",
    )
    ticket = TicketCreate(
        organization_id=contact.organization_id,
        contact_id=contact.id,
        channel=Channel.EMAIL,
        severity=severity,
        category=category,
        subject=ticket_subject(row.subject),
        description=truncate(row.text.strip(), MAX_BODY),
        received_at=row.received_at,
        # Staff's word stands for a refused request (recorded as on POST /v1/tickets).
        override_reason=None if verdict.entitlement.allowed else data.override_reason,
    )
    view, _ = await intake.create_ticket(session, principal, ticket, idempotency_key=None, now=now)
    row.status = "ticket"
    row.organization_id = contact.organization_id
    row.contact_id = contact.id
    row.ticket_id = view.id
    row.ticket_event_id = await latest_event(session, view.id)
    row.accepted_by = principal.actor()
    row.override_reason = data.override_reason
    row.processed_at = now
    await session.flush()
    return row
