"""Received e-mail: one pipeline for both doors (the SMTP/LMTP listener run by the
workers, and ``POST /v1/mail/inbound`` for cloud relays).

:func:`receive` stores the message whole first — deduplicated by its Message-ID: the
same message delivered twice is one row and one ticket — then, in a savepoint, works out
where it goes (app.domain.mail.routing) and does it through the services the API uses:
a new ticket through ``intake.create_ticket`` (the same entitlement decision, ``channel:
email``, ``received_at`` = its arrival), a reply through ``ticket_actions.perform`` (the
customer's ``customer_reply``, ``reopen`` or ``confirm`` at its arrival). Whatever is no
ticket or reply stays as ``rejected`` with its reason and a ``mail.rejected`` event
(which answers the sender when that is safe, see app.services.mail_compose); an error
while routing rolls the savepoint back and keeps the message as ``rejected`` /
``failed``: nothing received is ever lost. Staff turn a rejected message into a ticket
(app.services.mail_accept).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.lifecycle import Action
from app.domain.mail import authresults, loops, routing, threading
from app.domain.mail.facts import MessageFacts
from app.domain.mail.routing import NewTicket, Reason, Reject, Reply
from app.domain.vocab import Category, Channel, Severity
from app.errors import AppError, EntitlementDenied
from app.models import (
    InboundMail,
    MailAttachment,
    Organization,
    Plan,
    TicketEvent,
)
from app.schemas.tickets import EmptyBody, MessageBody, TicketCreate
from app.security import Principal, Role
from app.services import clocks as clock_store
from app.services import (
    entitlement,
    intake,
    mail_bounces,
    mail_lookup,
    mail_parse,
    outbox,
    ticket_actions,
    tickets,
)
from app.services.mail_parse import ParsedMail, clean_text
from app.services.mail_policy import InboundPolicy

logger = logging.getLogger("sladesk.mail")

MAX_SUBJECT = 300
MAX_BODY = 50_000
NO_SUBJECT = "(no subject)"
NO_TEXT = "(no text; see the attached files)"
# The actor of what arrives by SMTP (no API key): like the loader's, a fixed id.
NO_KEY = uuid.UUID(int=0)


@dataclass(frozen=True)
class Delivery:
    """What a door hands over: the bytes and the envelope."""

    raw: bytes
    source: str  # smtp, lmtp, http
    received_at: datetime
    envelope_from: str | None = None  # "" = the null sender; None = not known (HTTP)
    envelope_to: tuple[str, ...] = ()
    key_id: uuid.UUID | None = None  # the mail key of an HTTP delivery


@dataclass(frozen=True)
class Received:
    row: InboundMail
    duplicate: bool


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def megabytes(size: int) -> str:
    """A size as people read it: ``8 KB``, ``10.0 MB``."""
    if size < 1_048_576:
        return f"{max(size // 1024, 1)} KB"
    return f"{size / 1_048_576:.1f} MB"


# --------------------------------------------------------------------------- receive


async def receive(
    session: AsyncSession, delivery: Delivery, policy: InboundPolicy, *, now: datetime
) -> Received:
    """Store the message (or find the copy already stored) and route it."""
    parsed: ParsedMail | None
    try:
        parsed = mail_parse.parse(delivery.raw, envelope_from=delivery.envelope_from)
    except Exception:  # the parser must never lose a message
        logger.exception("could not parse a received message; kept as failed")
        parsed = None
    message_id = parsed.message_id if parsed else mail_parse.synthetic_message_id(delivery.raw)
    facts = parsed.facts if parsed else MessageFacts(message_id=None, from_address=None)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "message_id": message_id,
        "received_at": delivery.received_at,
        "source": delivery.source,
        "envelope_from": clean_text(delivery.envelope_from)[:998]
        if delivery.envelope_from is not None
        else None,
        "envelope_to": [clean_text(a)[:998] for a in delivery.envelope_to],
        "from_address": facts.from_address[:998] if facts.from_address else None,
        "from_name": clean_text(facts.from_name) or None,
        "subject": clean_text(facts.subject),
        "in_reply_to": list(facts.in_reply_to),
        "references": list(facts.references),
        "raw": delivery.raw,
        "size": len(delivery.raw),
        "text": parsed.text if parsed else "",
        "reply_text": parsed.reply_text if parsed else "",
        "html": parsed.html if parsed else None,
        # Until routed: what it is if anything below fails.
        "status": "rejected",
        "reason": Reason.FAILED.value,
        "detail": "not processed",
        "entitlement_reasons": [],
        "created_at": now,
        "updated_at": now,
    }
    inserted = await session.scalar(
        insert(InboundMail)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(col(InboundMail.id))
    )
    if inserted is None:
        stored = (
            await session.execute(
                select(InboundMail).where(col(InboundMail.message_id) == message_id)
            )
        ).scalar_one()
        logger.info(
            "duplicate message ignored",
            extra={"mail_id": str(stored.id), "source": delivery.source},
        )
        return Received(stored, duplicate=True)
    row = await session.get(InboundMail, inserted)
    assert row is not None
    if parsed is not None:
        session.add_all(
            MailAttachment(
                inbound_id=row.id,
                part=a.part,
                filename=a.filename,
                content_type=a.content_type,
                size=a.size,
                sha256=a.sha256,
                inline=a.inline,
            )
            for a in parsed.attachments
        )
        await session.flush()
        await _route(session, row, parsed, policy, delivery.key_id, now)
    else:
        row.detail = "the message could not be parsed"
        await _announce_rejection(session, row)
    row.processed_at = now
    await session.flush()
    return Received(row, duplicate=False)


async def _route(
    session: AsyncSession,
    row: InboundMail,
    parsed: ParsedMail,
    policy: InboundPolicy,
    key_id: uuid.UUID | None,
    now: datetime,
) -> None:
    try:
        async with session.begin_nested():
            await _route_in_savepoint(session, row, parsed, policy, key_id, now)
    except Exception as exc:
        if isinstance(exc, AppError):
            detail = f"{type(exc).__name__}: {exc.detail}"
        else:
            logger.exception("routing a received message failed; kept as failed")
            detail = f"processing failed ({type(exc).__name__}); staff may accept it"
        await session.refresh(row)
        _reject(row, Reject(Reason.FAILED, detail, row.organization_id, row.contact_id))
        await _announce_rejection(session, row)


async def _route_in_savepoint(
    session: AsyncSession,
    row: InboundMail,
    parsed: ParsedMail,
    policy: InboundPolicy,
    key_id: uuid.UUID | None,
    now: datetime,
) -> None:
    facts = parsed.facts
    sender = facts.from_address
    own = sender in policy.own_addresses or await mail_lookup.is_ours(session, row.message_id)
    auth = None
    if policy.trusted_authserv_id:
        auth = authresults.verdict(
            facts.authentication_results, policy.trusted_authserv_id, facts.from_domain
        )
    too_large = None
    for attachment in parsed.attachments:
        if attachment.size > policy.max_attachment_bytes:
            too_large = (
                f"the attachment {attachment.filename!r} is {megabytes(attachment.size)}, "
                f"more than the limit of {megabytes(policy.max_attachment_bytes)}"
            )
            break
    contacts = await mail_lookup.sender_contacts(session, sender) if sender else []
    domain = facts.from_domain
    domain_orgs = (
        await mail_lookup.domain_organizations(session, domain) if domain and not contacts else []
    )
    thread = await mail_lookup.thread_of(session, facts)
    decision = routing.route(
        sender=sender,
        own_address=own,
        auth=auth,
        automatic=loops.automatic_kind(facts),
        too_large=too_large,
        thread=thread,
        contacts=contacts,
        domain_organizations=domain_orgs,
        reply_text=row.reply_text or row.text,
    )
    if isinstance(decision, Reject):
        _reject(row, decision)
        if decision.reason is Reason.BOUNCE and facts.dsn is not None and facts.dsn.failed:
            await mail_bounces.bounced(session, row, facts, now)
        await _announce_rejection(session, row)
    elif isinstance(decision, Reply):
        await _reply(session, row, decision, key_id, now)
    else:
        await _new_ticket(session, row, decision, key_id, now)


def _reject(row: InboundMail, decision: Reject, reasons: list[str] | None = None) -> None:
    row.status = "rejected"
    row.reason = decision.reason.value
    row.detail = decision.detail
    row.entitlement_reasons = reasons or []
    row.organization_id = decision.organization_id
    row.contact_id = decision.contact_id
    row.ticket_id = decision.ticket_id


async def _announce_rejection(session: AsyncSession, row: InboundMail) -> None:
    """``mail.rejected``: staff tooling hears of it, and the composer answers the sender
    when the reason calls for it and loop protection allows."""
    await outbox.emit(
        session,
        "mail.rejected",
        occurred_at=row.received_at,
        data={"mail": rejected_summary(row)},
        organization_id=row.organization_id,
    )


def rejected_summary(row: InboundMail) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "message_id": row.message_id,
        "received_at": row.received_at.isoformat(),
        "from": row.from_address,
        "subject": row.subject,
        "reason": row.reason,
        "detail": row.detail,
        "entitlement_reasons": list(row.entitlement_reasons),
        "organization_id": str(row.organization_id) if row.organization_id else None,
        "contact_id": str(row.contact_id) if row.contact_id else None,
        "ticket_id": str(row.ticket_id) if row.ticket_id else None,
    }


# ------------------------------------------------------------------------- outcomes


def _actor(
    key_id: uuid.UUID | None, organization_id: uuid.UUID, contact_id: uuid.UUID | None
) -> Principal:
    """The sender, acting through the mail channel (role ``mail`` on the timeline)."""
    return Principal(
        key_id=key_id or NO_KEY,
        role=Role.MAIL,
        organization_id=organization_id,
        contact_id=contact_id,
    )


def _body_of(row: InboundMail) -> str:
    text = (row.reply_text or row.text).strip()
    return truncate(text, MAX_BODY) if text else NO_TEXT


async def _reply(
    session: AsyncSession,
    row: InboundMail,
    decision: Reply,
    key_id: uuid.UUID | None,
    now: datetime,
) -> None:
    principal = _actor(key_id, decision.organization_id, decision.contact_id)
    await clock_store.share_timing(session)
    ticket = await tickets.load(session, principal, decision.ticket_id, for_update=True)
    # At its arrival (a paused clock resumes then), or just after the latest event.
    occurred = max(row.received_at, ticket.last_event_at)
    body: EmptyBody | MessageBody
    if decision.action is Action.CONFIRM:
        body = EmptyBody(occurred_at=occurred)
    else:
        body = MessageBody(occurred_at=occurred, body=_body_of(row))
    await ticket_actions.perform(
        session, principal, ticket.id, decision.action, body, if_match=None, now=now
    )
    row.status = "reply"
    row.reason = row.detail = None
    row.organization_id = decision.organization_id
    row.contact_id = decision.contact_id
    row.ticket_id = ticket.id
    row.ticket_event_id = await latest_event(session, ticket.id)


async def latest_event(session: AsyncSession, ticket_id: uuid.UUID) -> uuid.UUID | None:
    """The timeline event just written (the ticket is locked: nothing came after it)."""
    return await session.scalar(
        select(col(TicketEvent.id))
        .where(col(TicketEvent.ticket_id) == ticket_id)
        .order_by(col(TicketEvent.seq).desc())
        .limit(1)
    )


async def _new_ticket(
    session: AsyncSession,
    row: InboundMail,
    decision: NewTicket,
    key_id: uuid.UUID | None,
    now: datetime,
) -> None:
    principal = _actor(key_id, decision.organization_id, decision.contact_id)
    severity, category = await defaults_for(session, principal, decision.organization_id, row)
    data = TicketCreate(
        organization_id=decision.organization_id,
        contact_id=decision.contact_id,
        channel=Channel.EMAIL,
        severity=severity,
        category=category,
        subject=ticket_subject(row.subject),
        description=truncate(row.text.strip(), MAX_BODY),
        received_at=row.received_at,
        follows_up_ticket_id=decision.follows_up_ticket_id,
    )
    try:
        view, _ = await intake.create_ticket(
            session, principal, data, idempotency_key=None, now=now
        )
    except EntitlementDenied as exc:
        reasons = list(exc.extra.get("reasons", []))
        _reject(
            row,
            Reject(
                Reason.NOT_ENTITLED,
                "not entitled to support: " + ", ".join(reasons),
                decision.organization_id,
                decision.contact_id,
            ),
            reasons,
        )
        await _announce_rejection(session, row)
        return
    row.status = "ticket"
    row.reason = row.detail = None
    row.organization_id = decision.organization_id
    row.contact_id = decision.contact_id
    row.ticket_id = view.id
    row.ticket_event_id = await latest_event(session, view.id)


def ticket_subject(subject: str) -> str:
    cleaned = threading.clean_subject(clean_text(subject))
    return truncate(cleaned, MAX_SUBJECT) if cleaned else NO_SUBJECT


async def defaults_for(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, row: InboundMail
) -> tuple[Severity, Category]:
    """Severity and category: the organization's override, else the plan that applies at
    the arrival (the same entitlement decision, before the category is known)."""
    organization = await session.get(Organization, organization_id)
    plan_defaults = None
    if not (organization and organization.email_defaults and _complete(organization)):
        decision = await entitlement.decide_for(
            session, principal, organization_id, at=row.received_at
        )
        coverage = decision.entitlement.coverage
        if coverage is not None:
            plan = await session.get(Plan, coverage.plan.id)
            plan_defaults = plan.email_defaults if plan else None
    return routing.email_defaults(
        organization.email_defaults if organization else None, plan_defaults
    )


def _complete(organization: Organization) -> bool:
    defaults = organization.email_defaults or {}
    return bool(defaults.get("severity") and defaults.get("category"))
