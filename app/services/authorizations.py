"""A ticket's estimate and the customer's authorizations of more time (seed 004: "if more
budgeted time is required, the client will be notified for authorization").

The estimate is in charged minutes. A billable entry that takes the ticket's charged
total past it is still recorded (services.worklogs), and :func:`request` opens the one
pending authorization the ticket may have; until the customer approves a new estimate
or declines, further billable time is refused (:func:`check_billable`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain import billing
from app.errors import (
    AuthorizationDeclined,
    AuthorizationPending,
    Conflict,
    NotFound,
    invalid_field,
)
from app.models.billing import TicketAuthorization, Worklog
from app.models.tickets import Ticket
from app.pagination import keyset, page_of
from app.schemas.billing import (
    ApproveBody,
    AuthorizationRead,
    DeclineBody,
    EstimateRead,
    EstimateUpdate,
)
from app.security import Principal, actor_of
from app.services import tickets

PENDING, APPROVED, DECLINED = "pending", "approved", "declined"


# ----------------------------------------------------------------------- reading


async def charged_minutes(session: AsyncSession, ticket_id: uuid.UUID) -> int:
    """Billable minutes charged on the ticket so far (non-billable rows charge 0)."""
    total = await session.scalar(
        select(func.coalesce(func.sum(Worklog.charged_minutes), 0)).where(
            col(Worklog.ticket_id) == ticket_id
        )
    )
    return int(total or 0)


async def latest(session: AsyncSession, ticket_id: uuid.UUID) -> TicketAuthorization | None:
    stmt = (
        select(TicketAuthorization)
        .where(col(TicketAuthorization.ticket_id) == ticket_id)
        .order_by(col(TicketAuthorization.requested_at).desc(), col(TicketAuthorization.id).desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def read(row: TicketAuthorization, principal: Principal) -> AuthorizationRead:
    view = AuthorizationRead.model_validate(row)
    if principal.is_customer and view.decided_by:
        view.decided_by = tickets.customer_view_of_actor(view.decided_by)
    return view


async def estimate(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID
) -> EstimateRead:
    ticket = await tickets.load(session, principal, ticket_id)
    return await _estimate_of(session, principal, ticket)


async def _estimate_of(session: AsyncSession, principal: Principal, ticket: Ticket) -> EstimateRead:
    charged = await charged_minutes(session, ticket.id)
    last = await latest(session, ticket.id)
    pending = last if last is not None and last.status == PENDING else None
    return EstimateRead(
        ticket_id=ticket.id,
        estimate_minutes=ticket.estimate_minutes,
        charged_minutes=charged,
        remaining_minutes=None
        if ticket.estimate_minutes is None
        else ticket.estimate_minutes - charged,
        pending_authorization=read(pending, principal) if pending is not None else None,
    )


async def list_authorizations(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[AuthorizationRead], str | None]:
    await tickets.load(session, principal, ticket_id)
    stmt = select(TicketAuthorization).where(col(TicketAuthorization.ticket_id) == ticket_id)
    columns = [col(TicketAuthorization.requested_at), col(TicketAuthorization.id)]
    rows = (await session.execute(keyset(stmt, columns, cursor, limit))).scalars().all()
    items, next_cursor = page_of(rows, limit, lambda r: (r.requested_at, r.id))
    return [read(r, principal) for r in items], next_cursor


# ------------------------------------------------------------------ the blocking rule


class Blocked(Exception):
    """Billable time may not be added now; ``reason`` is the worklog's unbilled reason."""

    def __init__(self, reason: str, error: Conflict) -> None:
        super().__init__(error.detail)
        self.reason = reason
        self.error = error


async def check_billable(
    session: AsyncSession, ticket: Ticket, charged_so_far: int, entry_minutes: int
) -> None:
    """Raise :class:`Blocked` when billable time waits on the customer: an authorization
    is pending, or the customer declined and this entry would pass the estimate (the
    caller holds the ticket lock)."""
    last = await latest(session, ticket.id)
    if last is None:
        return
    if last.status == PENDING:
        raise Blocked(
            "authorization_pending",
            AuthorizationPending(
                f"The ticket passed its estimate of {last.estimate_minutes} minutes and "
                "waits for the customer to approve a new estimate or decline; billable "
                "time cannot be added until then (non-billable entries can).",
                authorization_id=str(last.id),
            ),
        )
    if last.status == DECLINED and billing.needs_authorization(
        estimate_minutes=ticket.estimate_minutes,
        charged_so_far=charged_so_far,
        entry_minutes=entry_minutes,
    ):
        raise Blocked(
            "authorization_declined",
            AuthorizationDeclined(
                f"The customer declined time beyond the estimate of "
                f"{ticket.estimate_minutes} minutes; record this entry as non-billable, or "
                "set a new estimate the customer agreed to (PUT .../estimate).",
                authorization_id=str(last.id),
            ),
        )


async def request(
    session: AsyncSession,
    ticket: Ticket,
    principal: Principal | None,
    *,
    charged: int,
    now: datetime,
) -> TicketAuthorization:
    """Open the ticket's pending authorization (its charged total just passed the
    estimate): a public timeline event and an ``authorization.required`` webhook."""
    row = TicketAuthorization(
        ticket_id=ticket.id,
        status=PENDING,
        requested_at=now,
        charged_minutes=charged,
        estimate_minutes=ticket.estimate_minutes,
    )
    session.add(row)
    ticket.version += 1  # its billable state changed: an If-Match read before is stale
    await session.flush()
    reason = (
        f"{charged} minutes are charged, past the estimate of {ticket.estimate_minutes}: "
        "further billable time waits for the customer."
    )
    await _announce(
        session, ticket, principal, row, "authorization_requested", "authorization.required",
        now=now, reason=reason,
    )  # fmt: skip
    return row


async def _announce(
    session: AsyncSession,
    ticket: Ticket,
    principal: Principal | None,
    row: TicketAuthorization,
    kind: str,
    type_: str,
    *,
    now: datetime,
    **extra: Any,
) -> None:
    """A public timeline event about the authorization, and its webhook (which also
    carries ``extra``), both at the ticket's latest instant."""
    details = _details(row)
    at = max(now, ticket.last_event_at)
    await tickets.record(
        session, ticket, principal, kind=kind, occurred_at=at, now=now, data=details
    )
    await tickets.emit(
        session,
        ticket,
        type_,
        occurred_at=at,
        now=now,
        authorization=details | extra,
        actor=actor_of(principal),
    )


def _details(row: TicketAuthorization) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "status": row.status,
        "charged_minutes": row.charged_minutes,
        "estimate_minutes": row.estimate_minutes,
        "approved_estimate_minutes": row.approved_estimate_minutes,
        "requested_at": row.requested_at.isoformat(),
    }


# ----------------------------------------------------------------------- writing


async def set_estimate(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: EstimateUpdate,
    *,
    now: datetime,
) -> EstimateRead:
    """Staff set (or remove) the estimate the customer was told. Refused while an
    authorization is pending (it is the customer's turn), and below what is charged."""
    ticket = await tickets.load(session, principal, ticket_id, for_update=True)
    last = await latest(session, ticket.id)
    if last is not None and last.status == PENDING:
        raise AuthorizationPending(
            "An authorization is pending: the customer approves a new estimate or "
            "declines it first.",
            authorization_id=str(last.id),
        )
    charged = await charged_minutes(session, ticket.id)
    if data.minutes is not None and data.minutes < charged:
        raise invalid_field(
            "body.minutes",
            f"{charged} minutes are already charged on this ticket; the estimate cannot be lower",
            "below_charged",
        )
    if data.minutes != ticket.estimate_minutes:
        previous = ticket.estimate_minutes
        ticket.estimate_minutes = data.minutes
        ticket.version += 1
        await tickets.record(
            session,
            ticket,
            principal,
            kind="estimate_set",
            occurred_at=max(now, ticket.last_event_at),
            now=now,
            data={"from": previous, "to": data.minutes, "charged_minutes": charged},
        )
    return await _estimate_of(session, principal, ticket)


async def decide(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    authorization_id: uuid.UUID,
    body: ApproveBody | DeclineBody,
    *,
    now: datetime,
) -> AuthorizationRead:
    """The customer approves a new estimate or declines. A customer key decides for its
    organization; staff record the customer's decision and must cite it in ``note``."""
    ticket = await tickets.load(session, principal, ticket_id, for_update=True)
    row = await session.get(TicketAuthorization, authorization_id)
    if row is None or row.ticket_id != ticket.id:
        raise NotFound(f"No authorization {authorization_id} on this ticket.")
    if row.status != PENDING:
        raise Conflict(
            f"This authorization was already {row.status} at {row.decided_at}.",
            authorization_status=row.status,
        )
    if principal.is_staff and body.note is None:
        raise invalid_field(
            "body.note",
            "staff record the customer's decision: cite the e-mail that says it",
            "required_for_staff",
        )
    if isinstance(body, ApproveBody):
        charged = await charged_minutes(session, ticket.id)
        if body.estimate_minutes < charged:
            raise invalid_field(
                "body.estimate_minutes",
                f"{charged} minutes are already charged; approve at least that",
                "below_charged",
            )
        row.status, row.approved_estimate_minutes = APPROVED, body.estimate_minutes
        ticket.estimate_minutes = body.estimate_minutes
    else:
        row.status = DECLINED
    row.decided_by = principal.actor()
    row.decided_at = now
    row.note = body.note
    ticket.version += 1
    type_ = "authorization.approved" if row.status == APPROVED else "authorization.declined"
    await _announce(
        session, ticket, principal, row, f"authorization_{row.status}", type_,
        now=now, decided_by=row.decided_by, note=row.note,
    )  # fmt: skip
    return read(row, principal)
