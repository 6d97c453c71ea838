"""Who sent a received message, and which ticket it refers to (the facts routing needs)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.mail import threading
from app.domain.mail.facts import MessageFacts
from app.domain.mail.routing import SenderContact, ThreadTarget
from app.domain.vocab import ContactRole, TicketStatus
from app.models import Contact, InboundMail, Organization, OutboundMail, Ticket


async def is_ours(session: AsyncSession, message_id: str) -> bool:
    """Our own message came back (a forwarding loop)."""
    found = await session.scalar(
        select(func.count())
        .select_from(OutboundMail)
        .where(col(OutboundMail.message_id) == message_id)
    )
    return bool(found)


async def sender_contacts(session: AsyncSession, address: str) -> list[SenderContact]:
    rows = (
        await session.execute(
            select(Contact).where(func.lower(col(Contact.email)) == address.lower())
        )
    ).scalars()
    return [
        SenderContact(
            contact_id=c.id,
            organization_id=c.organization_id,
            role=ContactRole(c.role),
            active=c.active,
        )
        for c in rows
    ]


async def domain_organizations(session: AsyncSession, domain: str) -> list[uuid.UUID]:
    rows = await session.execute(
        select(col(Organization.id)).where(col(Organization.email_domains).contains([domain]))
    )
    return [r for (r,) in rows]


async def thread_of(session: AsyncSession, facts: MessageFacts) -> ThreadTarget | None:
    """The ticket the message refers to: by one of the ticket's messages in In-Reply-To /
    References (ours or the customer's), else by the token in the subject."""
    ticket_id: uuid.UUID | None = None
    ids = list(facts.thread_ids)
    if ids:
        found: dict[str, uuid.UUID] = {}
        for model in (OutboundMail, InboundMail):
            rows = await session.execute(
                select(col(model.message_id), col(model.ticket_id)).where(
                    col(model.message_id).in_(ids), col(model.ticket_id).is_not(None)
                )
            )
            found.update({mid: tid for mid, tid in rows if tid is not None})
        ticket_id = next((found[i] for i in ids if i in found), None)
    ticket: Ticket | None = None
    if ticket_id is not None:
        ticket = await session.get(Ticket, ticket_id)
    else:
        number = threading.ticket_number_in(facts.subject)
        if number is not None:
            ticket = (
                await session.execute(select(Ticket).where(col(Ticket.number) == number))
            ).scalar_one_or_none()
    if ticket is None:
        return None
    organization = await session.get(Organization, ticket.organization_id)
    return ThreadTarget(
        ticket_id=ticket.id,
        organization_id=ticket.organization_id,
        status=TicketStatus(ticket.status),
        organization_domains=frozenset(organization.email_domains if organization else ()),
    )
