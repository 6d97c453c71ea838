"""A delivery failure (DSN) of one of our messages: that message is ``failed`` and its
ticket gets an internal note, so that staff know the customer did not hear from us."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.lifecycle import Action
from app.domain.mail.facts import MessageFacts
from app.models import InboundMail, OutboundMail, Ticket
from app.schemas.tickets import MessageBody
from app.services import clocks as clock_store
from app.services import ticket_actions
from app.services.mail_parse import clean_text

MAX_NOTE = 50_000


async def bounced(
    session: AsyncSession, row: InboundMail, facts: MessageFacts, now: datetime
) -> None:
    """A delivery failure of one of our messages: that message is ``failed`` and its
    ticket gets an internal note (the customer did not hear from us)."""
    dsn = facts.dsn
    if dsn is None or dsn.original_message_id is None:
        return
    sent = (
        await session.execute(
            select(OutboundMail)
            .where(col(OutboundMail.message_id) == dsn.original_message_id)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if sent is None:
        return
    why = " ".join(x for x in (dsn.status, dsn.diagnostic) if x) or "no reason given"
    sent.status = "failed"
    sent.reason = "bounced"
    sent.last_error = clean_text(f"bounced: {why}")[:2000]
    sent.next_attempt_at = None
    row.organization_id = sent.organization_id
    row.ticket_id = sent.ticket_id
    if sent.ticket_id is None:
        return
    await clock_store.share_timing(session)
    ticket = await session.get(Ticket, sent.ticket_id, with_for_update={"key_share": True})
    if ticket is None:
        return
    note = (
        f"The e-mail {sent.subject!r} to {sent.to_address} bounced ({why}): the customer "
        "did not receive it. Check the address or reach them another way."
    )
    await ticket_actions.apply(
        session,
        ticket,
        None,
        Action.NOTE,
        MessageBody(body=clean_text(note)[:MAX_NOTE]),
        occurred=max(now, ticket.last_event_at),
        now=now,
    )
