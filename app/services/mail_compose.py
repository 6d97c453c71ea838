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
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.mail import threading
from app.domain.mail.notices import AUTO_SUBMITTED, NOTICE_TYPES, notice_for
from app.models import (
    InboundMail,
    OutboundMail,
    OutboxEvent,
)
from app.services import mail_drafts, mail_templates
from app.services.mail_policy import OutboundPolicy

logger = logging.getLogger("sladesk.mail")

# NOTIFY'd when a message becomes due (composed, resent): wakes the sender loops.
MAIL_CHANNEL = "sladesk_mail"
COMPOSE_LOCK_KEY = 0x51ADE5C0_3B00_0016  # one composer at a time (pg_try_advisory_xact_lock)
# Events that send nothing are marked this many batches at a time (one UPDATE).
SILENT_FACTOR = 25


@dataclass
class ComposeRound:
    handled: int = 0
    composed: int = 0
    blocked: bool = False
    more: bool = False
    skipped: bool = False  # events being marked by the webhook fan-out: look again soon


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
    # Events that never send mail (SLA alarms, notes, ...) are marked in one statement: a
    # burst of breaches must not cost the composer a row-by-row pass. Rows the webhook
    # fan-out is marking right now are left for the next round (never waited for: no
    # deadlock with it).
    silent = (
        select(col(OutboxEvent.id))
        .where(
            col(OutboxEvent.mailed_at).is_(None),
            col(OutboxEvent.type).not_in(sorted(NOTICE_TYPES)),
        )
        .order_by(col(OutboxEvent.seq))
        .limit(batch * SILENT_FACTOR)
        .with_for_update(skip_locked=True)
    )
    marked_result = cast(
        "CursorResult[Any]",
        await session.execute(
            update(OutboxEvent)
            .where(col(OutboxEvent.id).in_(silent.scalar_subquery()))
            .values(mailed_at=now)
            .execution_options(synchronize_session=False)
        ),
    )
    marked = int(marked_result.rowcount or 0)
    result.handled += marked
    events = list(
        (
            await session.execute(
                select(OutboxEvent)
                .where(
                    col(OutboxEvent.mailed_at).is_(None),
                    col(OutboxEvent.type).in_(sorted(NOTICE_TYPES)),
                )
                .order_by(col(OutboxEvent.seq))
                .limit(batch)
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
    await session.flush()
    result.more = len(events) == batch or marked == batch * SILENT_FACTOR
    if not result.more:
        # What is still unmarked (after this transaction's own marks) was locked by the
        # webhook fan-out: look again soon.
        result.skipped = bool(
            await session.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(col(OutboxEvent.mailed_at).is_(None))
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
        draft = await mail_drafts.answer(session, event, notice, policy, now)
    else:
        draft = await mail_drafts.ticket_notice(session, event, notice)
    if draft is None:
        return None
    rendered = mail_templates.render(
        draft.notice,
        draft.locale,
        {**mail_drafts.BASE, "desk": policy.desk_name, **draft.variables},
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


async def _thread_of(
    session: AsyncSession, draft: mail_drafts.Draft
) -> tuple[str | None, tuple[str, ...]]:
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
