"""After-hours requests: the client asking for attention outside business hours.

Seed 004: "If the client requires attention after hours, they must request it in
advance and via email. Attention after hours has an extra cost." A request records who
asked (a contact of the organization), when, how, and for which window; on a ticket, or
on a contract as a standing agreement for every ticket taken under it. Work logs charge
after-hours time x the plan's multiplier only inside a requested window
(app.domain.billing); :func:`windows` gives them the requests that apply.

Rules: the plan must offer after-hours attention (`billing.after_hours.allowed`); the
request comes in advance (`requested_at` <= `starts_at`) and never from the future; the
window is at most 366 days; who asked is an active, authorized contact (seed 004: the
client defines the persons authorized). Customer keys ask now, as their contact. A
request an entry relies on cannot be deleted (409).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain import lifecycle
from app.domain.billing import RequestWindow
from app.domain.entitlement import Billing
from app.domain.vocab import ContactRole
from app.errors import Conflict, NotFound, ValidationFailed, field_error, invalid_field
from app.models import Contact, Contract, Plan
from app.models.billing import AfterHoursRequest, Worklog
from app.models.tickets import Ticket
from app.pagination import keyset, page_of
from app.schemas.after_hours import (
    MAX_WINDOW_DAYS,
    AfterHoursRequestCreate,
    AfterHoursRequestRead,
)
from app.security import Principal
from app.services import contracts, tickets
from app.services.plan_terms import TicketTerms


def _offered(rules: Billing, what: str) -> None:
    if not rules.after_hours_allowed:
        raise ValidationFailed(
            f"The {what} does not offer after-hours attention (billing.after_hours.allowed is "
            "false): there is nothing to request.",
            [field_error("body", "after-hours attention not offered", "after_hours_not_offered")],
        )


async def create_for_ticket(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: AfterHoursRequestCreate,
    *,
    now: datetime,
) -> AfterHoursRequestRead:
    ticket = await tickets.load(session, principal, ticket_id)
    terms = TicketTerms.from_snapshot(ticket.plan_snapshot) if ticket.plan_snapshot else None
    _offered(terms.coverage.plan.billing if terms else Billing(), "ticket's plan")
    row = await _new(session, principal, data, ticket.organization_id, now)
    row.ticket_id = ticket.id
    return await _store(session, principal, row)


async def create_for_contract(
    session: AsyncSession,
    principal: Principal,
    contract_id: uuid.UUID,
    data: AfterHoursRequestCreate,
    *,
    now: datetime,
) -> AfterHoursRequestRead:
    contract = await contracts.get_contract(session, principal, contract_id)
    plan = await session.get(Plan, contract.plan_id)
    after_hours = ((plan.billing if plan else None) or {}).get("after_hours") or {}
    _offered(Billing(after_hours_allowed=bool(after_hours.get("allowed"))), "contract's plan")
    row = await _new(session, principal, data, contract.organization_id, now)
    row.contract_id = contract.id
    return await _store(session, principal, row)


async def _new(
    session: AsyncSession,
    principal: Principal,
    data: AfterHoursRequestCreate,
    organization_id: uuid.UUID,
    now: datetime,
) -> AfterHoursRequest:
    if principal.is_customer and data.requested_at is not None:
        raise invalid_field(
            "body.requested_at", "customer keys ask now; only staff record an earlier request"
        )
    requested = now
    if data.requested_at is not None:
        try:
            requested = lifecycle.resolve_occurred_at(data.requested_at, now, None)
        except lifecycle.InvalidOccurredAt as exc:
            raise invalid_field("body.requested_at", str(exc), exc.code) from None
    if data.ends_at <= data.starts_at:
        raise invalid_field("body.ends_at", "must be after starts_at", "empty_window")
    if data.ends_at - data.starts_at > timedelta(days=MAX_WINDOW_DAYS):
        raise invalid_field(
            "body.ends_at", f"a window spans at most {MAX_WINDOW_DAYS} days", "window_too_long"
        )
    if requested > data.starts_at:
        raise invalid_field(
            "body.starts_at",
            f"after-hours attention is requested in advance (seed 004): the request at "
            f"{requested.isoformat()} comes after the window starts",
            "not_in_advance",
        )
    contact = await _contact(session, principal, data, organization_id)
    return AfterHoursRequest(
        organization_id=organization_id,
        contact_id=contact.id,
        requested_at=requested,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        channel=data.channel.value,
        reference=data.reference,
        recorded_by=principal.actor(),
    )


async def _contact(
    session: AsyncSession,
    principal: Principal,
    data: AfterHoursRequestCreate,
    organization_id: uuid.UUID,
) -> Contact:
    contact_id = data.contact_id
    if principal.is_customer and principal.contact_id is not None:
        if contact_id is not None and contact_id != principal.contact_id:
            raise invalid_field("body.contact_id", "this key asks as its own contact")
        contact_id = principal.contact_id
    if contact_id is None:
        raise invalid_field("body.contact_id", "name who asked (a contact)", "missing")
    contact = await session.get(Contact, contact_id)
    if contact is None or contact.organization_id != organization_id:
        raise invalid_field(
            "body.contact_id", "no contact with this id in the organization", "not_found"
        )
    if not contact.active:
        raise invalid_field("body.contact_id", "the contact was deactivated", "contact_inactive")
    if contact.role != ContactRole.AUTHORIZED.value:
        raise invalid_field(
            "body.contact_id",
            "only a contact the client authorized may request after-hours attention",
            "contact_not_authorized",
        )
    return contact


async def _store(
    session: AsyncSession, principal: Principal, row: AfterHoursRequest
) -> AfterHoursRequestRead:
    session.add(row)
    await session.flush()
    return read(row, principal)


def read(row: AfterHoursRequest, principal: Principal) -> AfterHoursRequestRead:
    recorded_by: dict[str, Any] = dict(row.recorded_by)
    if principal.is_customer:
        recorded_by = tickets.customer_view_of_actor(recorded_by)
    return AfterHoursRequestRead(
        id=row.id,
        organization_id=row.organization_id,
        scope="ticket" if row.ticket_id is not None else "contract",
        ticket_id=row.ticket_id,
        contract_id=row.contract_id,
        contact_id=row.contact_id,
        requested_at=row.requested_at,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        channel=row.channel,
        reference=row.reference,
        recorded_by=recorded_by,
        created_at=row.created_at,
    )


# ------------------------------------------------------------------------- reading


def _applying_to(ticket: Ticket) -> ColumnElement[bool]:
    """The ticket's own requests and its contract's standing ones."""
    own = col(AfterHoursRequest.ticket_id) == ticket.id
    if ticket.contract_id is None:
        return own
    return or_(own, col(AfterHoursRequest.contract_id) == ticket.contract_id)


async def _page(
    session: AsyncSession,
    principal: Principal,
    where: ColumnElement[bool],
    cursor: str | None,
    limit: int,
) -> tuple[list[AfterHoursRequestRead], str | None]:
    stmt = select(AfterHoursRequest).where(where)
    columns = [col(AfterHoursRequest.starts_at), col(AfterHoursRequest.id)]
    found = (await session.execute(keyset(stmt, columns, cursor, limit))).scalars().all()
    items, next_cursor = page_of(found, limit, lambda r: (r.starts_at, r.id))
    return [read(r, principal) for r in items], next_cursor


async def list_for_ticket(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[AfterHoursRequestRead], str | None]:
    ticket = await tickets.load(session, principal, ticket_id)
    return await _page(session, principal, _applying_to(ticket), cursor, limit)


async def list_for_contract(
    session: AsyncSession,
    principal: Principal,
    contract_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[AfterHoursRequestRead], str | None]:
    contract: Contract = await contracts.get_contract(session, principal, contract_id)
    where = col(AfterHoursRequest.contract_id) == contract.id
    return await _page(session, principal, where, cursor, limit)


async def windows(
    session: AsyncSession, ticket: Ticket, start: datetime, end: datetime
) -> list[RequestWindow]:
    """The requested windows meeting ``[start, end]`` that apply to the ticket: its own
    first, then its contract's, each by when the client asked (the domain cites the
    first on a tie)."""
    stmt = (
        select(AfterHoursRequest)
        .where(
            _applying_to(ticket),
            col(AfterHoursRequest.starts_at) <= end,
            col(AfterHoursRequest.ends_at) > start,
        )
        .order_by(
            col(AfterHoursRequest.ticket_id).is_(None),
            col(AfterHoursRequest.requested_at),
            col(AfterHoursRequest.id),
        )
    )
    rows = (await session.execute(stmt)).scalars()
    return [RequestWindow(r.starts_at, r.ends_at, r.id) for r in rows]


# ------------------------------------------------------------------------ deleting


async def delete(session: AsyncSession, principal: Principal, request_id: uuid.UUID) -> None:
    """A request recorded by mistake goes, unless an entry's charge relies on it."""
    row = await session.get(AfterHoursRequest, request_id, with_for_update=True)
    if row is None or not principal.can_see_organization(row.organization_id):
        raise NotFound("No after-hours request with that id.")
    used = await session.scalar(
        select(func.count())
        .select_from(Worklog)
        .where(col(Worklog.after_hours_request_id) == row.id)
    )
    if used:
        raise Conflict(
            f"{used} work log entr{'y relies' if used == 1 else 'ies rely'} on this request "
            "for their after-hours charge; it is part of the billing record.",
            worklogs=used,
        )
    await session.delete(row)
    await session.flush()
