"""What a customer message says: its recipient, language and template variables, drawn
from the outbox event and the rows it names (the ticket, its contact and organization, the
timeline event's words, the plan's auto-close terms; or the rejected message answered)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.mail import authresults, loops, threading
from app.domain.mail.notices import Notice
from app.domain.mail.routing import Reason
from app.domain.vocab import DEFAULT_LOCALE
from app.models import (
    CalendarRow,
    Contact,
    InboundMail,
    MailAttachment,
    Organization,
    OutboundMail,
    OutboxEvent,
    Ticket,
    TicketEvent,
)
from app.services import compiled, mail_parse, mail_templates
from app.services.mail_inbound import megabytes
from app.services.mail_policy import OutboundPolicy

ANSWER_WINDOW = timedelta(hours=1)

# Every variable a template may use, so that a template reading one it does not need
# still renders (StrictUndefined catches misspelled names).
BASE: dict[str, Any] = {
    "desk": "",
    "token": None,
    "contact_name": "",
    "organization_name": None,
    "ticket": None,
    "message": None,
    "due": [],
    "timezone": "UTC",
    "attempt": None,
    "attempts_total": None,
    "notice_days": None,
    "close_on": None,
    "close_on_scheduled": False,
    "channel": None,
    "close_reason": None,
    "resolution": None,
    "authorization": None,
    "reasons": [],
    "original_subject": "",
    "sender": None,
    "filename": None,
    "size": None,
    "limit": None,
}


@dataclass
class Draft:
    """Who a message goes to, in which language, and what its template is told."""

    notice: Notice
    to_address: str
    to_name: str | None
    locale: str
    variables: dict[str, Any]
    ticket: Ticket | None = None
    organization_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    inbound: InboundMail | None = None
    suppressed: str | None = None


async def answer(
    session: AsyncSession,
    event: OutboxEvent,
    notice: Notice,
    policy: OutboundPolicy,
    now: datetime,
) -> Draft | None:
    """The answer to a rejected message: to its sender, unless loop protection says no."""
    summary = event.data.get("mail") or {}
    inbound = await session.get(InboundMail, uuid.UUID(str(summary.get("id"))))
    if inbound is None or inbound.from_address is None:
        return None
    organization = (
        await session.get(Organization, inbound.organization_id)
        if inbound.organization_id
        else None
    )
    contact = await session.get(Contact, inbound.contact_id) if inbound.contact_id else None
    facts = mail_parse.header_facts(inbound.raw, envelope_from=inbound.envelope_from)
    answered = await session.scalar(
        select(func.count())
        .select_from(OutboundMail)
        .where(
            col(OutboundMail.to_address) == inbound.from_address,
            col(OutboundMail.auto_submitted) == "auto-replied",
            col(OutboundMail.status) != "suppressed",
            col(OutboundMail.created_at) > now - ANSWER_WINDOW,
        )
    )
    authenticated = None
    if policy.trusted_authserv_id:
        authenticated = authresults.verdict(
            facts.authentication_results, policy.trusted_authserv_id, facts.from_domain
        ).passed
    why = loops.why_not_answer(
        facts,
        own_addresses=policy.own_addresses,
        answers_last_hour=int(answered or 0),
        limit=policy.answers_per_hour,
        authenticated=authenticated,
    )
    variables: dict[str, Any] = {
        "contact_name": contact.name if contact else (inbound.from_name or ""),
        "organization_name": organization.name if organization else None,
        "original_subject": inbound.subject or "(no subject)",
        "sender": inbound.from_address,
        "reasons": list(inbound.entitlement_reasons),
    }
    if inbound.reason == Reason.TOO_LARGE.value:
        largest = (
            await session.execute(
                select(MailAttachment)
                .where(col(MailAttachment.inbound_id) == inbound.id)
                .order_by(col(MailAttachment.size).desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        variables |= {
            "filename": largest.filename if largest else "",
            "size": megabytes(largest.size) if largest else "",
            "limit": megabytes(policy.max_attachment_bytes),
        }
    return Draft(
        notice=notice,
        to_address=inbound.from_address,
        to_name=contact.name if contact else inbound.from_name,
        locale=organization.locale if organization else policy.default_locale,
        variables=variables,
        organization_id=inbound.organization_id,
        contact_id=inbound.contact_id,
        inbound=inbound,
        suppressed=why.value if why else None,
    )


async def ticket_notice(session: AsyncSession, event: OutboxEvent, notice: Notice) -> Draft | None:
    """A message about a ticket, to the ticket's contact."""
    if event.ticket_id is None:
        return None
    ticket = await session.get(Ticket, event.ticket_id)
    if ticket is None:
        return None
    if notice is Notice.ACKNOWLEDGED and await _acknowledged_before(session, ticket.id):
        return None  # a reassignment is no news to the customer
    contact = await session.get(Contact, ticket.contact_id)
    organization = await session.get(Organization, ticket.organization_id)
    if contact is None or organization is None:
        return None
    data = event.data
    payload: dict[str, Any] = data.get("ticket") or {}
    happened: dict[str, Any] = data.get("event") or {}
    locale = organization.locale or DEFAULT_LOCALE
    snapshot = ticket.plan_snapshot or {}
    top = (snapshot.get("chain") or [{}])[0]
    timezone = str(top.get("timezone") or "UTC")
    auto_close = top.get("auto_close") or None
    body = None
    if event.ticket_event_id is not None:
        timeline = await session.get(TicketEvent, event.ticket_event_id)
        body = timeline.body if timeline is not None and timeline.public else None
    variables: dict[str, Any] = {
        "token": threading.ticket_token(ticket.number),
        "contact_name": contact.name,
        "organization_name": organization.name,
        "ticket": {
            "number": payload.get("number") or f"SD-{ticket.number:06d}",
            "subject": ticket.subject,
            "status": payload.get("status", ticket.status),
            "severity": payload.get("severity", ticket.severity),
            "category": payload.get("category", ticket.category),
        },
        "message": body,
        "timezone": timezone,
        "channel": happened.get("channel"),
        "close_reason": payload.get("close_reason"),
        "resolution": happened.get("resolution"),
    }
    if notice is Notice.ACKNOWLEDGED:
        variables["due"] = _due_lines(data.get("sla") or [], timezone, locale)
    if auto_close:
        variables["attempts_total"] = int(auto_close.get("contact_attempts", 0)) or None
        variables["notice_days"] = int(auto_close.get("notice_business_days", 0))
    if notice in (Notice.CONTACT_ATTEMPT, Notice.INFO_REQUESTED):
        attempt = int(happened.get("attempt") or payload.get("contact_attempts") or 1)
        variables["attempt"] = attempt
        if variables["attempts_total"] and attempt > variables["attempts_total"]:
            variables["attempts_total"] = None  # past the count: the date is what matters
        scheduled = payload.get("auto_close_at")
        if scheduled:
            at = datetime.fromisoformat(str(scheduled))
            variables["close_on"] = mail_templates.local_date(at, timezone, locale)
            variables["close_on_scheduled"] = True
        elif notice is Notice.CONTACT_ATTEMPT and auto_close and variables["attempts_total"]:
            variables["close_on"] = await _earliest_close(
                session, top, happened, int(auto_close.get("notice_business_days", 0)), locale
            )
    if notice is Notice.AUTO_CLOSED:
        variables["attempt"] = variables["attempts_total"] or payload.get("contact_attempts")
    if notice is Notice.AUTHORIZATION_REQUIRED:
        variables["authorization"] = data.get("authorization") or {}
    return Draft(
        notice=notice,
        to_address=contact.email.lower(),
        to_name=contact.name,
        locale=locale,
        variables=variables,
        ticket=ticket,
        organization_id=ticket.organization_id,
        contact_id=contact.id,
    )


async def _acknowledged_before(session: AsyncSession, ticket_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(func.count())
        .select_from(OutboundMail)
        .where(
            col(OutboundMail.ticket_id) == ticket_id,
            col(OutboundMail.kind) == Notice.ACKNOWLEDGED.value,
        )
    )
    return bool(found)


def _due_lines(
    entries: Sequence[dict[str, Any]], timezone: str, locale: str
) -> list[dict[str, Any]]:
    """First response and resolution, as the customer reads them (seed 000)."""
    lines = []
    for metric in ("first_response", "resolution"):
        entry = next((e for e in entries if e.get("metric") == metric), None)
        if entry is None:
            continue
        at = None
        if entry.get("minutes") is None:
            state = "best_effort"
        elif entry.get("stopped_at"):
            state = "met"
        elif not entry.get("running"):
            state = "paused"
        else:
            state = "due"
            due = datetime.fromisoformat(str(entry["due_at"]))
            at = mail_templates.local_datetime(due, timezone, locale)
        lines.append({"metric": metric, "state": state, "at": at})
    return lines


async def _earliest_close(
    session: AsyncSession,
    plan: dict[str, Any],
    happened: dict[str, Any],
    notice_days: int,
    locale: str,
) -> str | None:
    """The earliest the ticket can close: the notice counted from this attempt, as if the
    last one were now (seed 004: "5 business days" after the third attempt)."""
    calendar_id = plan.get("calendar_id")
    occurred = happened.get("occurred_at")
    if not calendar_id or not occurred:
        return None
    row = await session.get(CalendarRow, uuid.UUID(str(calendar_id)))
    if row is None:
        return None
    at = compiled.calendar(row).add_business_days(
        datetime.fromisoformat(str(occurred)), notice_days
    )
    return mail_templates.local_date(at, row.timezone, locale)
