"""Work log entries: seed 004's charged time on a ticket (`/v1/tickets/{id}/worklogs`).

Entries are charged by app.domain.billing under the ticket's plan (its snapshot's billing
rules and calendar; a ticket taken under no plan is charged by the default rules, every
hour open). Entered by staff, or written by a ticket action itself (:func:`follow_up`):
seed 004 charges each public reply, information request and contact attempt as a
follow-up. An automatic entry never makes its action fail: what a manual entry is
refused for (after hours, a pending or declined authorization) makes it non-billable
with the reason.

When an entry happened: `occurred_at` is its start, `ended_at` its end (one or the
other); with neither it ends now, having started `minutes` ago. After-hours time is
charged x the multiplier only inside a window the client requested
(services/after_hours.py); the requests are looked up only for entries that are not
wholly in business hours.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain import billing, sla
from app.domain.billing import EntryKind
from app.domain.entitlement import Billing, UnrequestedAfterHours
from app.domain.lifecycle import FUTURE_TOLERANCE, Action
from app.errors import AfterHoursNotAllowed, AfterHoursNotRequested, field_error, invalid_field
from app.models.billing import Worklog
from app.models.build import build
from app.models.directory import Agent
from app.models.tickets import Ticket
from app.pagination import keyset, page_of
from app.schemas.billing import ContractUsage, WorklogCreate, WorklogRead
from app.security import Principal, actor_of
from app.services import after_hours, authorizations, contracts, tickets
from app.services import clocks as clock_store
from app.services.plan_terms import TicketTerms

# Seed 004: "progress, follow-up, conclusions and closures; information request; daily
# e-mails with the client" are each charged as a follow-up.
FOLLOW_UP_ACTIONS = frozenset({Action.REPLY, Action.REQUEST_INFO, Action.CONTACT_ATTEMPT})


@dataclass(frozen=True)
class _Entry:
    kind: EntryKind
    minutes: int
    consultants: int
    occurred_at: datetime
    agent_id: uuid.UUID | None
    note: str | None
    billable: bool
    source: str
    event_id: uuid.UUID | None = None


Charging = tuple[Billing, billing.OpenHours]


def charging_of(terms: TicketTerms | None, cals: clock_store.CalendarSet) -> Charging:
    """The billing rules and business hours a ticket's time is charged under: its plan's,
    or (taken under no plan) the default rules with every hour open. ``cals`` holds the
    plan's calendar."""
    if terms is None:
        return Billing(), sla.ALWAYS_OPEN
    return terms.coverage.plan.billing, cals.calendar(terms.calendar_id)


async def _charging(session: AsyncSession, ticket: Ticket) -> Charging:
    terms = TicketTerms.from_snapshot(ticket.plan_snapshot) if ticket.plan_snapshot else None
    cals = await clock_store.calendar_set(session, [terms.calendar_id] if terms else [])
    return charging_of(terms, cals)


async def _write(
    session: AsyncSession,
    ticket: Ticket,
    principal: Principal | None,
    entry: _Entry,
    *,
    charging: Charging,
    strict: bool,
    now: datetime,
) -> Worklog:
    """Charge and store one entry (the caller holds the ticket's row lock, so the
    ticket's charged total cannot move meanwhile). ``strict`` (a manual entry): what
    cannot be billed is refused; otherwise it is recorded unbilled with the reason."""
    rules, hours = charging
    requests: list[billing.RequestWindow] = []
    if not billing.within_hours(
        kind=entry.kind, minutes=entry.minutes, occurred_at=entry.occurred_at, calendar=hours
    ):
        end = entry.occurred_at
        if entry.kind is not EntryKind.follow_up:
            end += timedelta(minutes=entry.minutes)
        requests = await after_hours.windows(session, ticket, entry.occurred_at, end)

    def charge_under(rules: Billing) -> billing.Charge:
        return billing.charge(
            kind=entry.kind,
            minutes=entry.minutes,
            consultants=entry.consultants,
            occurred_at=entry.occurred_at,
            rules=rules,
            calendar=hours,
            requests=requests,
        )

    reason = None if entry.billable else "not_billable"
    charged_so_far = await authorizations.charged_minutes(session, ticket.id)
    charge: billing.Charge | None = None
    if entry.billable:
        try:
            charge = charge_under(rules)
            await authorizations.check_billable(
                session, ticket, charged_so_far, charge.charged_minutes
            )
        except billing.AfterHoursNotAllowed as exc:
            if strict:
                raise AfterHoursNotAllowed(
                    f"{exc} Ask the customer to request after-hours work in advance (a plan "
                    "that allows it), or record the entry with billable: false.",
                    [field_error("body.occurred_at", "outside the plan's hours", "after_hours")],
                    after_hours_minutes=exc.after_hours_minutes,
                ) from None
            charge, reason = None, "after_hours_not_allowed"
        except billing.AfterHoursNotRequested as exc:
            if strict:
                raise AfterHoursNotRequested(
                    f"{exc} The plan charges after-hours time only when the client requested "
                    "it in advance: record the client's request (POST .../after-hours-"
                    "requests) if there was one, or record the entry with billable: false.",
                    [
                        field_error(
                            "body.occurred_at", "outside any requested window", "not_requested"
                        )
                    ],
                    unrequested_minutes=exc.unrequested_minutes,
                ) from None
            charge, reason = None, "after_hours_not_requested"
        except authorizations.Blocked as blocked:
            if strict:
                raise blocked.error from None
            charge, reason = None, blocked.reason
    # What the time was, billed or not: after-hours minutes are told either way.
    figures = charge or charge_under(
        dataclasses.replace(
            rules,
            after_hours_allowed=True,
            after_hours_unrequested=UnrequestedAfterHours.BUSINESS_RATE,
        )
    )
    row = build(
        Worklog,
        ticket_id=ticket.id,
        organization_id=ticket.organization_id,
        contract_id=ticket.contract_id,
        kind=entry.kind.value,
        agent_id=entry.agent_id,
        occurred_at=entry.occurred_at,
        minutes=entry.minutes,
        consultants=entry.consultants,
        multiplier=figures.multiplier,
        after_hours_minutes=figures.after_hours_minutes,
        charged_minutes=charge.charged_minutes if charge is not None else 0,
        billable=charge is not None,
        unbilled_reason=reason,
        source=entry.source,
        event_id=entry.event_id,
        note=entry.note,
        unrequested_minutes=figures.unrequested_minutes,
        # The request's id, which services/after_hours.windows gave as the window's ref.
        after_hours_request_id=uuid.UUID(str(figures.request)) if figures.request else None,
        actor=actor_of(principal),
    )
    session.add(row)
    await session.flush()
    if charge is not None and billing.needs_authorization(
        estimate_minutes=ticket.estimate_minutes,
        charged_so_far=charged_so_far,
        entry_minutes=charge.charged_minutes,
    ):
        await authorizations.request(
            session, ticket, principal, charged=charged_so_far + charge.charged_minutes, now=now
        )
    return row


# ------------------------------------------------------------------------- manual


async def add_entry(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: WorklogCreate,
    *,
    now: datetime,
) -> WorklogRead:
    ticket = await tickets.load(session, principal, ticket_id, for_update=True)
    entry = await _manual_entry(session, principal, ticket, data, now)
    charging = await _charging(session, ticket)
    row = await _write(session, ticket, principal, entry, charging=charging, strict=True, now=now)
    return read(row, principal)


async def _manual_entry(
    session: AsyncSession, principal: Principal, ticket: Ticket, data: WorklogCreate, now: datetime
) -> _Entry:
    if data.kind is not EntryKind.follow_up and data.minutes is None:
        raise invalid_field("body.minutes", f"required for a {data.kind.value} entry", "missing")
    if data.kind is not EntryKind.session and data.consultants != 1:
        raise invalid_field(
            "body.consultants", "only a session has several consultants", "not_a_session"
        )
    minutes = data.minutes or 0
    length = timedelta(minutes=minutes)
    if data.occurred_at is not None and data.ended_at is not None:
        raise invalid_field(
            "body.ended_at",
            "give when the entry started (occurred_at) or when it ended (ended_at), not both",
            "conflicting",
        )
    if data.occurred_at is not None:
        occurred = data.occurred_at
        if occurred + length > now:
            raise invalid_field(
                "body.occurred_at",
                "the entry would end in the future: log time once it is worked",
                "in_future",
            )
    else:
        ended = now if data.ended_at is None else data.ended_at
        if ended > now + FUTURE_TOLERANCE:
            raise invalid_field(
                "body.ended_at", "in the future: log time once it is worked", "in_future"
            )
        # Without a start, the entry ends when it is logged (or at ended_at): it started
        # `minutes` before. A client clock a second ahead is skew, not the future.
        occurred = min(ended, now) - length
    if occurred < ticket.received_at:
        given = "occurred_at" if data.occurred_at else "ended_at" if data.ended_at else "minutes"
        raise invalid_field(
            f"body.{given}",
            f"the entry would start at {occurred.isoformat()}, before the ticket was received "
            f"({ticket.received_at.isoformat()})",
            "before_ticket",
        )
    agent_id = data.agent_id or principal.agent_id
    if agent_id is not None and await session.get(Agent, agent_id) is None:
        raise invalid_field("body.agent_id", "no agent with this id", "not_found")
    return _Entry(
        kind=data.kind,
        minutes=minutes,
        consultants=data.consultants,
        occurred_at=occurred,
        agent_id=agent_id,
        note=data.note,
        billable=data.billable,
        source="manual",
    )


# ---------------------------------------------------------------------- automatic


async def follow_up(
    session: AsyncSession,
    ticket: Ticket,
    principal: Principal | None,
    action: Action,
    event_id: uuid.UUID,
    *,
    charging: Charging,
    occurred: datetime,
    now: datetime,
) -> Worklog | None:
    """The follow-up an agent's action is charged (seed 004), or None for actions that
    are not one (notes, the customer's own actions, the system's). ``charging`` comes
    from the terms and calendars the action already loaded (:func:`charging_of`)."""
    if action not in FOLLOW_UP_ACTIONS or principal is None or not principal.is_staff:
        return None
    entry = _Entry(
        kind=EntryKind.follow_up,
        minutes=0,
        consultants=1,
        occurred_at=occurred,
        agent_id=principal.agent_id,
        note=None,
        billable=True,
        source="auto",
        event_id=event_id,
    )
    return await _write(session, ticket, principal, entry, charging=charging, strict=False, now=now)


# ------------------------------------------------------------------------ reading


def read(row: Worklog, principal: Principal) -> WorklogRead:
    view = WorklogRead.model_validate(row)
    if principal.is_customer:
        # Who worked it and the internal note stay with staff, as on the timeline.
        view.agent_id = view.note = None
        if view.actor is not None:
            view.actor = tickets.customer_view_of_actor(view.actor)
    return view


async def list_entries(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[WorklogRead], str | None]:
    await tickets.load(session, principal, ticket_id)
    stmt = select(Worklog).where(col(Worklog.ticket_id) == ticket_id)
    columns = [col(Worklog.occurred_at), col(Worklog.id)]
    rows = (await session.execute(keyset(stmt, columns, cursor, limit))).scalars().all()
    items, next_cursor = page_of(rows, limit, lambda r: (r.occurred_at, r.id))
    return [read(r, principal) for r in items], next_cursor


async def contract_usage(
    session: AsyncSession, principal: Principal, contract_id: uuid.UUID
) -> ContractUsage:
    """The contract's hour budget burnt down by the charged time of its tickets."""
    contract = await contracts.get_contract(session, principal, contract_id)
    used, entries = (
        await session.execute(
            select(
                func.coalesce(func.sum(Worklog.charged_minutes), 0),
                func.count().filter(col(Worklog.billable)),
            ).where(col(Worklog.contract_id) == contract.id)
        )
    ).one()
    used_hours = round(int(used) / 60, 2)
    budget = contract.hours_budget
    return ContractUsage(
        contract_id=contract.id,
        hours_budget=budget,
        used_minutes=int(used),
        used_hours=used_hours,
        remaining_hours=None if budget is None else round(max(budget * 60 - used, 0) / 60, 2),
        overage_hours=0.0 if budget is None else round(max(used - budget * 60, 0) / 60, 2),
        entries=int(entries),
    )
