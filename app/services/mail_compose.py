"""Composing customer e-mail from the outbox: each event that calls for a message
(app.domain.mail.notices) becomes one ``mail_outbound`` row — its recipient, the rendered
template in the organization's language, its own Message-ID, the threading headers, and
the whole MIME message as it will be sent. The sender loop (app.workers.mail_sender)
delivers it; with no relay configured it is kept as ``held``.

An answer to a rejected message (a refusal) goes out only when loop protection allows
(app.domain.mail.loops); otherwise it is kept as ``suppressed`` with the reason.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.config import Settings
from app.domain.mail import authresults, loops, threading
from app.domain.mail.notices import AUTO_SUBMITTED, Notice, notice_for
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
from app.services import calendars, mail_parse, mail_templates
from app.services.mail_inbound import megabytes

logger = logging.getLogger("sladesk.mail")

# NOTIFY'd when a message becomes due (composed, resent): wakes the sender loops.
MAIL_CHANNEL = "sladesk_mail"
COMPOSE_LOCK_KEY = 0x51ADE5C0_3B00_0016  # one composer at a time (pg_try_advisory_xact_lock)
ANSWER_WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class OutboundPolicy:
    """The settings composing reads."""

    mail_from: str
    from_address: str
    desk_name: str
    own_addresses: frozenset[str]
    answers_per_hour: int
    default_locale: str
    templates_dir: Path | None
    relay: bool
    max_attachment_bytes: int
    trusted_authserv_id: str | None = None

    @property
    def domain(self) -> str:
        return self.from_address.rsplit("@", 1)[1]

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        name, address = parseaddr(settings.mail_from)
        own = {a.lower() for a in settings.mail_addresses} | {address.lower()}
        return cls(
            mail_from=settings.mail_from,
            from_address=address.lower(),
            desk_name=name or address,
            own_addresses=frozenset(own),
            answers_per_hour=settings.mail_auto_replies_per_hour,
            default_locale=settings.mail_locale,
            templates_dir=settings.mail_templates_dir,
            relay=settings.smtp_url is not None,
            max_attachment_bytes=settings.mail_max_attachment_bytes,
            trusted_authserv_id=settings.mail_trusted_authserv_id,
        )


@dataclass
class ComposeRound:
    handled: int = 0
    composed: int = 0
    blocked: bool = False
    more: bool = False
    skipped: bool = False  # events being marked by the webhook fan-out: look again soon


# Every variable a template may use, so that a template reading one it does not need
# still renders (StrictUndefined catches misspelled names).
_BASE: dict[str, Any] = {
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
class _Draft:
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


# ----------------------------------------------------------------------------- round


async def compose_pending(
    session: AsyncSession, policy: OutboundPolicy, *, now: datetime, batch: int = 200
) -> ComposeRound:
    """Look at the outbox events not yet looked at (one composer at a time), compose their
    messages, mark them. The caller commits."""
    result = ComposeRound()
    locked = await session.scalar(select(func.pg_try_advisory_xact_lock(COMPOSE_LOCK_KEY)))
    if not locked:
        result.blocked = True
        return result
    events = list(
        (
            await session.execute(
                select(OutboxEvent)
                .where(col(OutboxEvent.mailed_at).is_(None))
                .order_by(col(OutboxEvent.seq))
                .limit(batch)
                # Rows the webhook fan-out is marking right now are left for the next
                # round (never waited for: no deadlock with it).
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    for event in events:
        try:
            async with session.begin_nested():
                if await compose(session, event, policy, now=now) is not None:
                    result.composed += 1
        except Exception:
            # A message that cannot be composed is a bug: logged with the event (which
            # stays in the outbox), never a stuck queue.
            logger.exception(
                "could not compose the e-mail of an event",
                extra={"event_id": str(event.id), "event_type": event.type},
            )
        event.mailed_at = now
        result.handled += 1
    result.more = len(events) == batch
    if not result.more:
        result.skipped = bool(
            await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(
                    col(OutboxEvent.mailed_at).is_(None),
                    col(OutboxEvent.id).not_in([e.id for e in events] or [uuid.uuid4()]),
                )
            )
        )
    await session.flush()
    if result.composed:
        await notify(session)
    return result


async def notify(session: AsyncSession) -> None:
    await session.execute(text(f"NOTIFY {MAIL_CHANNEL}"))


# --------------------------------------------------------------------------- compose


async def compose(
    session: AsyncSession, event: OutboxEvent, policy: OutboundPolicy, *, now: datetime
) -> OutboundMail | None:
    """The message this event sends (added and flushed), or None."""
    notice = notice_for(event.type, event.data)
    if notice is None:
        return None
    if event.type == "mail.rejected":
        draft = await _answer(session, event, notice, policy, now)
    else:
        draft = await _ticket_notice(session, event, notice, policy)
    if draft is None:
        return None
    rendered = mail_templates.render(
        draft.notice,
        draft.locale,
        {**_BASE, "desk": policy.desk_name, **draft.variables},
        override=policy.templates_dir,
    )
    subject = rendered.subject
    if draft.ticket is not None:
        subject = threading.subject_with_token(draft.ticket.number, subject)
    parent, references = await _thread_of(session, draft)
    row_id = uuid.uuid4()
    message_id = threading.make_message_id(f"sladesk.{row_id.hex}", policy.domain)
    auto = AUTO_SUBMITTED.get(draft.notice)
    message = EmailMessage()
    message["From"] = policy.mail_from
    message["To"] = formataddr((draft.to_name or "", draft.to_address))
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    if parent:
        message["In-Reply-To"] = parent
    if references:
        message["References"] = " ".join(references)
    if auto:
        message["Auto-Submitted"] = auto
        # Ask other robots not to answer a robot (Exchange honours it).
        message["X-Auto-Response-Suppress"] = "All"
    if draft.ticket is not None:
        message["X-Sladesk-Ticket"] = draft.variables["ticket"]["number"]
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    raw = message.as_bytes(policy=email_policy.SMTP)
    status = "suppressed" if draft.suppressed else ("pending" if policy.relay else "held")
    row = OutboundMail(
        id=row_id,
        message_id=message_id,
        kind=draft.notice.value,
        source_event_id=event.id,
        ticket_id=draft.ticket.id if draft.ticket else None,
        organization_id=draft.organization_id,
        contact_id=draft.contact_id,
        inbound_id=draft.inbound.id if draft.inbound else None,
        from_address=policy.from_address,
        to_address=draft.to_address,
        to_name=draft.to_name,
        subject=subject,
        language=draft.locale,
        auto_submitted=auto,
        in_reply_to=parent,
        references=list(references),
        text=rendered.text,
        html=rendered.html,
        raw=raw,
        status=status,
        reason=draft.suppressed,
        next_attempt_at=now if status == "pending" else None,
        # Its own instant, not the round's: the messages of one round keep their order.
        created_at=max(now, datetime.now(UTC)),
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def _answer(
    session: AsyncSession,
    event: OutboxEvent,
    notice: Notice,
    policy: OutboundPolicy,
    now: datetime,
) -> _Draft | None:
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
    return _Draft(
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


async def _ticket_notice(
    session: AsyncSession, event: OutboxEvent, notice: Notice, policy: OutboundPolicy
) -> _Draft | None:
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
    return _Draft(
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
    at = calendars.compiled(row).add_business_days(
        datetime.fromisoformat(str(occurred)), notice_days
    )
    return mail_templates.local_date(at, row.timezone, locale)


async def _thread_of(session: AsyncSession, draft: _Draft) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) of the new message: the customer's latest message (else
    our previous one), after the thread's first message."""
    if draft.inbound is not None:
        parent = draft.inbound.message_id
        return parent, threading.references_for(None, draft.inbound.references, parent)
    if draft.ticket is None:
        return None, ()
    received = (
        await session.execute(
            select(col(InboundMail.received_at), col(InboundMail.message_id))
            .where(
                col(InboundMail.ticket_id) == draft.ticket.id,
                col(InboundMail.status).in_(["ticket", "reply"]),
            )
            .order_by(col(InboundMail.received_at))
        )
    ).all()
    sent = (
        await session.execute(
            select(col(OutboundMail.created_at), col(OutboundMail.message_id))
            .where(
                col(OutboundMail.ticket_id) == draft.ticket.id,
                col(OutboundMail.status) != "suppressed",
            )
            .order_by(col(OutboundMail.created_at))
        )
    ).all()
    everything = [mid for _, mid in sorted([*received, *sent])]
    if not everything:
        return None, ()
    parent = received[-1][1] if received else everything[-1]
    return parent, threading.references_for(everything[0], everything, parent)
