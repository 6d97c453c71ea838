"""Ticket intake: `POST /v1/tickets`.

The entitlement decision (app.domain.entitlement, through services.entitlement) says
whether the requester is covered and under which plan; the ticket keeps a snapshot of
that plan and starts one clock per metric whose target matches, at `received_at`.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain import lifecycle, sla
from app.domain.vocab import Metric, TicketStatus
from app.errors import Conflict, EntitlementDenied, Forbidden, NotFound, invalid_field
from app.models.build import build
from app.models.directory import Contact, Organization
from app.models.outbox import OutboxEvent
from app.models.tickets import IdempotencyKey, SlaClock, Ticket
from app.schemas.tickets import TicketCreate, TicketRead
from app.security import Principal
from app.services import clocks as clock_store
from app.services import entitlement, inserts, tickets
from app.services.plan_terms import TicketTerms, snapshot_of

# How long a retry with the same Idempotency-Key returns the first ticket (as payment APIs
# do); after it the key may be used again, and the retention worker prunes it.
IDEMPOTENCY_WINDOW = timedelta(hours=24)


def _request_hash(data: TicketCreate) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_ticket(
    session: AsyncSession,
    principal: Principal,
    data: TicketCreate,
    *,
    idempotency_key: str | None,
    now: datetime,
) -> tuple[TicketRead, bool]:
    """The new ticket (or, for a retried Idempotency-Key, the first one) and whether it
    is a replay."""
    if idempotency_key is not None:
        replay = await _replay(session, principal, idempotency_key, data, now)
        if replay is not None:
            return replay, True

    received_at = _received_at(principal, data, now)
    # The timing lock, the organization and the requester in one round trip (the lock
    # guards the plan terms the decision reads next, in a later statement).
    wanted_contact = _requester_id(principal, data)
    organization, _ = (
        await session.execute(
            _LOCK_ORGANIZATION_CONTACT,
            {"organization_id": data.organization_id, "contact_id": wanted_contact},
        )
    ).one()
    if organization is None or not principal.can_see_organization(organization.id):
        raise NotFound("No organization with that id.")
    contact = await _requester(session, principal, data)  # loaded above: no round trip
    if data.follows_up_ticket_id is not None:
        earlier = await session.get(Ticket, data.follows_up_ticket_id)
        if earlier is None or earlier.organization_id != organization.id:
            raise invalid_field(
                "body.follows_up_ticket_id", "no ticket with this id in the organization"
            )

    decision = await entitlement.decide_for(
        session,
        principal,
        organization.id,
        at=received_at,
        contact_id=contact.id,
        channel=data.channel,
        category=data.category,
        contact_field="body.contact_id",
    )
    verdict = decision.entitlement
    reasons = [r.value for r in verdict.reasons]
    if data.override_reason is not None and not principal.is_staff:
        raise Forbidden("Only staff keys may accept a request that entitlement refuses.")
    if data.override_reason is not None and verdict.allowed:
        raise invalid_field(
            "body.override_reason",
            "the requester is entitled; an override applies only to a refused request",
        )
    if not verdict.allowed and data.override_reason is None:
        raise EntitlementDenied(
            "The requester is not entitled to support for this request: "
            + ", ".join(reasons)
            + ". Staff may accept it anyway with override_reason.",
            reasons=reasons,
        )
    entitled = verdict.allowed
    snapshot = (
        snapshot_of(verdict.coverage, decision.plans)
        if entitled and verdict.coverage is not None
        else None
    )
    terms = TicketTerms.from_snapshot(snapshot) if snapshot else None

    # No number: the column's default (the sequence) gives it, and the INSERT returns it.
    ticket = build(
        Ticket,
        organization_id=organization.id,
        contact_id=contact.id,
        channel=data.channel.value,
        severity=data.severity.value,
        category=data.category.value,
        subject=data.subject,
        description=data.description,
        status=TicketStatus.NEW.value,
        entitled=entitled,
        entitlement_reasons=reasons,
        override_reason=data.override_reason,
        plan_id=terms.plan_id if terms else None,
        contract_id=verdict.contract.id if entitled and verdict.contract else None,
        plan_snapshot=snapshot,
        received_at=received_at,
        follows_up_ticket_id=data.follows_up_ticket_id,
        last_event_at=received_at,
    )

    # The clocks are made before anything is written, so the ticket goes in complete
    # (after_hours, next_due_at): one INSERT, no UPDATE after it.
    rows: list[SlaClock] = []
    cals = clock_store.CalendarSet()
    if terms is not None:
        # The decision loaded the plan's calendar with it (same statement): no re-read.
        cals = clock_store.CalendarSet([decision.calendars[terms.calendar_id]])
        business = cals.calendar(terms.calendar_id)
        # Seeds 002/004: a request outside business hours is answered from the next opening.
        ticket.after_hours = not business.is_open(received_at)
        for metric in Metric:
            chosen = terms.target_for(metric, data.severity, data.category, data.channel)
            if chosen is None:
                continue
            target, target_json = chosen
            row, clock = clock_store.new_row(ticket, target, target_json)
            cal = sla.calendar_for(clock.kind, business)
            clock_store.store(row, clock, cal, set(), terms.calendar_id)
            rows.append(row)
        ticket.next_due_at = clock_store.next_due(rows)
    # The ticket first, its number returned (the column's default): the payloads show it.
    values = inserts.values_of(ticket, omit=("number",))
    ticket.number = (await session.execute(_INSERT_TICKET, values)).scalar_one()

    # Everything the event's payload and the answer read is at hand — the new clocks (in
    # the order a read gives them), their calendar, no firings yet — so nothing is read
    # back, and the rest goes in with one statement: clocks, timeline and outbox events,
    # the idempotency record, and the NOTIFYs.
    rows.sort(key=lambda r: r.metric)
    context = tickets.PayloadContext(rows={ticket.id: rows}, cals=cals, fired={})
    # The answer, read at now (never before the receipt): the event's payload is its
    # public part, so the ticket is read once.
    view = tickets.ticket_read(ticket, rows, cals, now, principal, context.fired)
    event = await tickets.record(
        session,
        ticket,
        principal,
        kind="created",
        occurred_at=received_at,
        now=now,
        body=data.description or None,
        data={
            "channel": data.channel.value,
            "severity": data.severity.value,
            "category": data.category.value,
            "entitled": entitled,
            "reasons": reasons,
            # The override reason is staff-only: on the ticket, not in this public event.
            "overridden": data.override_reason is not None,
        },
        outbox_type="ticket.created",
        context=context,
        view=view,
    )
    # record() added the timeline and outbox events to the session: they go in below,
    # not with a flush.
    made = [event, *(o for o in session.new if isinstance(o, OutboxEvent))]
    for new in made:
        session.expunge(new)
    if idempotency_key is not None:
        made.append(
            build(
                IdempotencyKey,
                api_key_id=principal.key_id,
                key=idempotency_key,
                request_hash=_request_hash(data),
                ticket_id=ticket.id,
                response=view.model_dump(mode="json"),
                created_at=now,
            )
        )
    hint = clock_store.timer_hint(rows)
    channels: list[str | tuple[str, str]] = [tickets.outbox_channel]
    if hint is not None:
        channels.append(hint)
    await inserts.insert_all(session, [*rows, *made], notify=channels)
    return view, False


def _received_at(principal: Principal, data: TicketCreate, now: datetime) -> datetime:
    if principal.is_customer:
        if data.received_at is not None:
            raise invalid_field(
                "body.received_at", "customer keys report now; only staff record earlier receipts"
            )
        return now
    if data.received_at is None:
        return now
    try:
        return lifecycle.resolve_occurred_at(data.received_at, now, None)
    except lifecycle.InvalidOccurredAt as exc:
        raise invalid_field("body.received_at", str(exc), exc.code) from None


def _requester_id(principal: Principal, data: TicketCreate) -> uuid.UUID | None:
    """The requester: a customer key's own contact, else the body's (:func:`_requester`
    checks it; None when there is none)."""
    if principal.is_customer and principal.contact_id is not None:
        return principal.contact_id
    return data.contact_id


_INSERT_TICKET = insert(Ticket).returning(col(Ticket.number))

_LOCK_ORGANIZATION_CONTACT = (
    select(Organization, Contact)
    .select_from(select(clock_store.SHARE_TIMING.label("timing")).subquery())
    .outerjoin(Organization, col(Organization.id) == bindparam("organization_id"))
    .outerjoin(Contact, col(Contact.id) == bindparam("contact_id"))
)


async def _requester(session: AsyncSession, principal: Principal, data: TicketCreate) -> Contact:
    contact_id = _requester_id(principal, data)
    if data.contact_id is not None and data.contact_id != contact_id:
        raise invalid_field("body.contact_id", "this key raises tickets as its own contact")
    if contact_id is None:
        raise invalid_field("body.contact_id", "name the requester (a contact of the organization)")
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.organization_id != data.organization_id:
        raise invalid_field("body.contact_id", "no contact with this id in the organization")
    return contact


async def _replay(
    session: AsyncSession, principal: Principal, key: str, data: TicketCreate, now: datetime
) -> TicketRead | None:
    """Serialize requests with one key; the first response comes back for a retry."""
    lock = int.from_bytes(
        hashlib.sha256(f"{principal.key_id}:{key}".encode()).digest()[:8], "big", signed=True
    )
    await session.execute(select(func.pg_advisory_xact_lock(lock)))
    stored = await session.get(IdempotencyKey, (principal.key_id, key))
    if stored is None:
        return None
    if stored.created_at <= now - IDEMPOTENCY_WINDOW:
        await session.delete(stored)  # expired: this request is a new one
        await session.flush()
        return None
    if stored.request_hash != _request_hash(data):
        raise Conflict(
            "This Idempotency-Key was used with a different request body; use a new key "
            "for a new ticket.",
            ticket_id=str(stored.ticket_id),
        )
    return TicketRead.model_validate(stored.response)
