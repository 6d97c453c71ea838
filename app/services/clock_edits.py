"""Calendar and plan edits reaching the SLA clocks of open tickets.

DESIGN: "running clocks keep what elapsed and recompute only the remaining time from
the moment of the edit; stopped clocks are history and never change". Each affected
ticket is locked (in id order, like every multi-ticket writer, so writers never
deadlock), its clocks are checkpointed under the old terms at the edit instant and
re-stored under the new ones, and a timeline event says why its due times moved.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain import lifecycle, sla
from app.domain.calendar import Calendar
from app.domain.entitlement import coverage_of
from app.domain.vocab import Metric, TicketStatus
from app.models.calendar import CalendarRow
from app.models.plan import Plan
from app.models.tickets import SlaClock, Ticket
from app.services import clocks as clock_store
from app.services import compiled
from app.services import tickets as ticket_service
from app.services.plan_terms import TicketTerms, snapshot_of

_OPEN = [s.value for s in TicketStatus if s is not TicketStatus.CLOSED]


async def _locked(session: AsyncSession, ticket_ids: Sequence[uuid.UUID]) -> list[Ticket]:
    if not ticket_ids:
        return []
    stmt = (
        select(Ticket)
        .where(col(Ticket.id).in_(ticket_ids))
        .order_by(col(Ticket.id))
        .with_for_update()
    )
    return list((await session.execute(stmt)).scalars())


async def calendar_changed(
    session: AsyncSession, row: CalendarRow, old: Calendar, now: datetime
) -> int:
    """After a calendar edit; returns how many tickets were re-timed."""
    ids = (
        await session.execute(
            select(col(SlaClock.ticket_id))
            .where(col(SlaClock.calendar_id) == row.id, col(SlaClock.stopped_at).is_(None))
            .distinct()
        )
    ).scalars()
    new = compiled.calendar(row)
    tickets = await _locked(session, list(ids))
    for ticket in tickets:
        rows = await ticket_service.clock_rows(session, [ticket.id])
        fired = await clock_store.fired_keys(session, [r.id for r in rows])
        for clock_row in rows:
            if clock_row.calendar_id != row.id or clock_row.stopped_at is not None:
                continue
            clock = clock_store.to_domain(clock_row)
            at = max(now, clock.changed_at)
            clock = sla.checkpoint(clock, at, sla.calendar_for(clock.kind, old))
            clock_store.store(
                clock_row,
                clock,
                sla.calendar_for(clock.kind, new),
                fired.get(clock_row.id, set()),
                row.id,
            )
        await _retimed(
            session, ticket, rows, now, {"calendar_id": str(row.id), "version": row.version}
        )
    if tickets:
        await clock_store.notify_timers(session)
    return len(tickets)


async def plan_changed(session: AsyncSession, plan: Plan, now: datetime) -> int:
    """After a plan edit: open tickets whose coverage includes the plan get the new
    terms (targets, calendar, pause rules) from ``now``; returns how many."""
    containing = col(Ticket.plan_snapshot)["chain"].contains([{"id": str(plan.id)}])
    ids = (
        await session.execute(
            select(col(Ticket.id)).where(containing, col(Ticket.status).in_(_OPEN))
        )
    ).scalars()
    tickets = await _locked(session, list(ids))
    for ticket in tickets:
        await _apply_new_terms(session, ticket, now)
    if tickets:
        await clock_store.notify_timers(session)
    return len(tickets)


async def _apply_new_terms(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    assert ticket.plan_snapshot is not None and ticket.plan_id is not None
    old_terms = TicketTerms.from_snapshot(ticket.plan_snapshot)
    terms, rows_by_code, _ = await compiled.load_terms(session, [ticket.plan_id])
    coverage = coverage_of(old_terms.code, terms)
    snapshot = snapshot_of(coverage, rows_by_code)
    new_terms = TicketTerms.from_snapshot(snapshot)
    cals = await clock_store.calendar_set(session, [old_terms.calendar_id, new_terms.calendar_id])
    old_business = cals.business(old_terms.calendar_id)
    new_business = cals.business(new_terms.calendar_id)
    status = TicketStatus(ticket.status)
    pausing = status in new_terms.coverage.pause_on
    rows = {Metric(r.metric): r for r in await ticket_service.clock_rows(session, [ticket.id])}
    fired = await clock_store.fired_keys(session, [r.id for r in rows.values()])
    clocks = {m: clock_store.to_domain(r) for m, r in rows.items()}
    at = max([now, *(c.changed_at for c in clocks.values())])
    may_start = await ticket_service.startable_metrics(session, ticket)
    created = clock_store.rechoose(
        ticket,
        new_terms,
        rows,
        clocks,
        at,
        lambda clock: sla.calendar_for(clock.kind, old_business),
        pausing=pausing,
        may_start=may_start,
    )
    for metric, clock in clocks.items():
        if clock.is_stopped:
            continue  # history
        new_cal = sla.calendar_for(clock.kind, new_business)
        if pausing and clock.is_running:
            clock = sla.pause(clock, at, new_cal)
        elif not pausing and clock.is_paused and status in lifecycle.OPEN_STATUSES:
            clock = sla.resume(clock, at)
        clocks[metric] = clock
        row = rows[metric]
        clock_store.store(row, clock, new_cal, fired.get(row.id, set()), new_terms.calendar_id)
    session.add_all(created)
    ticket.plan_snapshot = snapshot
    cancelled = ticket.auto_close_at is not None and new_terms.auto_close is None
    if cancelled:
        ticket.auto_close_at = None  # the plan no longer closes tickets for lack of response
    await _retimed(session, ticket, list(rows.values()), now, {"plan": snapshot["plan"]})
    if cancelled:
        await ticket_service.record(
            session,
            ticket,
            None,
            kind="auto_close_cancelled",
            occurred_at=max(now, ticket.last_event_at),
            now=now,
            data={"reason": "plan_changed"},
            outbox_type="ticket.auto_close_cancelled",
        )


async def _retimed(
    session: AsyncSession,
    ticket: Ticket,
    rows: Sequence[SlaClock],
    now: datetime,
    data: dict[str, object],
) -> None:
    ticket.next_due_at = clock_store.next_due(rows)
    ticket.version += 1
    await session.flush()
    await ticket_service.record(
        session,
        ticket,
        None,
        kind="sla_recomputed",
        occurred_at=max(now, ticket.last_event_at),
        now=now,
        data=data,
        outbox_type="ticket.sla_recomputed",
    )
