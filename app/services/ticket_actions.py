"""Ticket actions: `POST /v1/tickets/{id}/actions/{action}`.

One function, :func:`perform`: lock the ticket, check If-Match and `occurred_at`, ask the
domain (app.domain.lifecycle) what the action does, apply the clock operations at
`occurred_at`, write the ticket, its clocks, a timeline event and outbox events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import lifecycle, sla
from app.domain.entitlement import Reason, plan_reasons
from app.domain.lifecycle import (
    Action,
    ActionNotAllowed,
    AutoCloseDirective,
    CloseReason,
    InvalidActionArgument,
    InvalidOccurredAt,
    TicketState,
)
from app.domain.vocab import Category, Metric, Severity, TicketStatus
from app.errors import Conflict, Forbidden, invalid_field
from app.models.directory import Agent, Contact
from app.models.tickets import SlaClock, Ticket
from app.schemas.tickets import (
    ActionBase,
    AssignBody,
    ChangeBody,
    CloseBody,
    ContactAttemptBody,
    CustomerReplyBody,
    EscalateBody,
    ResolveBody,
    TicketRead,
)
from app.security import Principal, actor_of
from app.services import clocks as clock_store
from app.services import reevaluation, tickets, worklogs
from app.services.plan_terms import TicketTerms

# What each action is called on the timeline, and the outbox event it writes (if any).
_KIND: Mapping[Action, tuple[str, str | None]] = {
    Action.ASSIGN: ("acknowledged", "ticket.acknowledged"),
    Action.REPLY: ("replied", "ticket.replied"),
    Action.NOTE: ("noted", None),
    Action.REQUEST_INFO: ("info_requested", "ticket.replied"),
    Action.CONTACT_ATTEMPT: ("contact_attempted", "ticket.contact_attempted"),
    Action.CUSTOMER_REPLY: ("customer_replied", "ticket.customer_replied"),
    Action.ESCALATE: ("escalated", "ticket.escalated"),
    Action.CHANGE: ("changed", "ticket.severity_changed"),
    Action.CALLBACK: ("called_back", "ticket.called_back"),
    Action.RESOLVE: ("resolved", "ticket.resolved"),
    Action.CONFIRM: ("confirmed", "ticket.closed"),
    Action.REOPEN: ("reopened", "ticket.reopened"),
    Action.CLOSE: ("closed", "ticket.closed"),
}


@dataclass
class _Work:
    """What the action changes, gathered before anything is written."""

    ticket: Ticket
    rows: dict[Metric, SlaClock]
    clocks: dict[Metric, sla.Clock]
    cals: clock_store.CalendarSet
    terms: TicketTerms | None
    occurred: datetime
    data: dict[str, Any]
    # Thresholds fired on each clock (key -> instant), kept true as firings are withdrawn.
    firings: dict[Any, dict[str, datetime]] = field(default_factory=dict)
    created: list[SlaClock] = field(default_factory=list)


async def perform(
    session: AsyncSession,
    principal: Principal,
    ticket_id: Any,
    action: Action,
    body: ActionBase,
    *,
    if_match: str | None,
    now: datetime,
) -> Ticket:
    ticket, _ = await _perform(
        session, principal, ticket_id, action, body, if_match=if_match, now=now
    )
    return ticket


async def perform_and_read(
    session: AsyncSession,
    principal: Principal,
    ticket_id: Any,
    action: Action,
    body: ActionBase,
    *,
    if_match: str | None,
    now: datetime,
) -> TicketRead:
    """:func:`perform`, and the ticket as the answer shows it, read at ``now``: from the
    clocks the action stored, unless something after its events changed them (a late
    action's re-evaluation), which is read again."""
    ticket, context = await _perform(
        session, principal, ticket_id, action, body, if_match=if_match, now=now
    )
    if context is None:
        return await tickets.read_ticket(session, principal, ticket, now)
    rows = context.rows.get(ticket.id, [])
    return tickets.ticket_read(ticket, rows, context.cals, now, principal, context.fired)


async def _perform(
    session: AsyncSession,
    principal: Principal,
    ticket_id: Any,
    action: Action,
    body: ActionBase,
    *,
    if_match: str | None,
    now: datetime,
) -> tuple[Ticket, tickets.PayloadContext | None]:
    ticket = await tickets.lock_for_action(session, principal, ticket_id)
    if principal.is_customer and action not in lifecycle.CUSTOMER_ACTIONS:
        allowed = ", ".join(sorted(a.value for a in lifecycle.CUSTOMER_ACTIONS))
        raise Forbidden(f"A customer key may only {allowed}.")
    tickets.check_if_match(ticket, if_match)
    occurred = await _occurred_at(session, principal, body, ticket, now)
    # Dated at or before the ticket's latest event: the system's events after it (firings,
    # an auto-close) are re-evaluated (services/reevaluation.py). Ordinary actions skip it.
    late = occurred <= ticket.last_event_at
    context = await apply(
        session, ticket, principal, action, body, occurred=occurred, now=now, late=late
    )
    return ticket, context


async def apply(
    session: AsyncSession,
    ticket: Ticket,
    principal: Principal | None,
    action: Action,
    body: ActionBase,
    *,
    occurred: datetime,
    now: datetime,
    late: bool = False,
) -> tickets.PayloadContext | None:
    """Apply an action that was authorized and timed already: the caller holds the
    timing lock and the ticket's row lock. ``principal`` None is the system itself (the
    timer loop's auto-close), recorded as actor ``{"role": "system"}``. ``late``: dated at
    or before the ticket's latest event, so the system's events after it are re-evaluated
    (an auto-close it precedes, firings it withdraws).

    Returns what the action's events read (the ticket's clocks, calendars and firings)
    while it still holds when the action ends, else None (re-evaluation changed them)."""
    terms = TicketTerms.from_snapshot(ticket.plan_snapshot) if ticket.plan_snapshot else None
    policy = terms.policy if terms is not None else lifecycle.DEFAULT_POLICY
    # The clocks, their firings and calendars in one statement, after the row lock.
    loaded = await tickets.clocks_of(session, ticket.id)
    rows = {Metric(r.metric): r for r in loaded.rows}
    cals = loaded.cals
    if terms is not None and terms.calendar_id not in cals:
        cals.add(await clock_store.calendar_set(session, [terms.calendar_id]))
    work = _Work(
        ticket=ticket,
        rows=rows,
        clocks={m: clock_store.to_domain(r) for m, r in rows.items()},
        cals=cals,
        terms=terms,
        occurred=occurred,
        data={},
        firings={clock_id: dict(keys) for clock_id, keys in loaded.firings.items()},
    )
    announced_status = ticket.status  # what subscribers last heard
    rewind = reevaluation.rewind_auto_close(ticket, work.clocks, occurred) if late else None
    status = TicketStatus(ticket.status)
    close_reason = CloseReason(ticket.close_reason) if ticket.close_reason else None
    try:
        outcome = lifecycle.apply_action(
            TicketState(status, close_reason, ticket.contact_attempts),
            action,
            to_tier=body.to_tier if isinstance(body, EscalateBody) else None,
            reason=CloseReason(body.reason) if isinstance(body, CloseBody) else None,
            policy=policy,
        )
    except ActionNotAllowed as exc:
        raise _not_allowed(exc, ticket, principal) from None
    except InvalidActionArgument as exc:
        raise invalid_field(f"body.{exc.field}" if exc.field else "body", str(exc)) from None
    actor = await _actor(session, ticket, principal, body)
    await _apply_arguments(session, work, action, body)

    calendar_of = lambda c: _calendar(work, c)  # noqa: E731
    auto_closing = principal is None and action is Action.CLOSE  # the timer's auto-close
    if auto_closing:
        ticket.auto_closed_from = reevaluation.keep_auto_close(ticket, work.clocks, occurred)
    clocks = lifecycle.apply_clock_ops(work.clocks, outcome.clock_ops, occurred, calendar_of)

    old_status = ticket.status
    ticket.status = outcome.status.value
    ticket.close_reason = outcome.close_reason.value if outcome.close_reason else None
    ticket.contact_attempts = outcome.contact_attempts
    if action is Action.RESOLVE:
        ticket.resolved_at = occurred
    if outcome.status is TicketStatus.CLOSED and old_status != TicketStatus.CLOSED.value:
        ticket.closed_at = occurred
    if action is Action.REOPEN:
        ticket.resolved_at = ticket.closed_at = ticket.resolution = None
    auto_close = _auto_close(work, outcome.auto_close)
    close_stands = rewind is not None and reevaluation.settle_auto_close(
        ticket, rewind, clocks, policy, calendar_of
    )
    withdrawn = await _save_clocks(session, work, clocks, late=late, until=max(now, occurred))
    ticket.next_due_at = clock_store.next_due(work.rows.values())
    ticket.version += 1

    # The action's own events read the clocks as just stored, with their calendars and
    # firings: all at hand, so their payloads are built without reading anything back,
    # and they go in with the next flush (one UPDATE of the ticket, not one per step).
    stored = sorted(work.rows.values(), key=lambda r: r.metric)
    context = tickets.PayloadContext(
        rows={ticket.id: stored},
        # As a read has them: the calendars the clocks count on (a ticket whose clocks
        # are all 24x7 tells its due times in its snapshot's time zone).
        cals=work.cals.only(r.calendar_id for r in stored),
        fired={clock_id: set(keys) for clock_id, keys in work.firings.items()},
    )
    kind, outbox_type = _KIND[action]
    message = getattr(body, "body", None)
    event = await tickets.record(
        session,
        ticket,
        principal,
        kind=kind,
        occurred_at=occurred,
        now=now,
        body=message,
        public=action is not Action.NOTE,
        data=work.data,
        outbox_type=outbox_type,
        actor=actor,
        context=context,
    )
    emitted = outbox_type is not None
    if auto_closing and ticket.auto_closed_from is not None:
        ticket.auto_closed_from = {**ticket.auto_closed_from, "event_id": str(event.id)}
    await worklogs.follow_up(
        session, ticket, principal, action, event.id,
        charging=worklogs.charging_of(work.terms, work.cals), occurred=occurred, now=now,
    )  # fmt: skip
    if announced_status != ticket.status:
        await tickets.emit(
            session,
            ticket,
            "ticket.status_changed",
            occurred_at=occurred,
            now=now,
            context=context,
            event={
                "from": announced_status,
                "to": ticket.status,
                "action": action.value,
                "actor": actor,
            },
        )
        emitted = True
    if auto_close is AutoCloseDirective.SCHEDULE and ticket.auto_close_at is not None:
        await tickets.record(
            session,
            ticket,
            principal,
            kind="auto_close_scheduled",
            occurred_at=occurred,
            now=now,
            data={
                "auto_close_at": ticket.auto_close_at.isoformat(),
                "contact_attempts": ticket.contact_attempts,
            },
            outbox_type="ticket.auto_close_scheduled",
            actor=actor,
            context=context,
        )
        emitted = True
    elif auto_close is AutoCloseDirective.CANCEL:
        await tickets.record(
            session,
            ticket,
            principal,
            kind="auto_close_cancelled",
            occurred_at=occurred,
            now=now,
            data={"reason": f"status {ticket.status}"},
            outbox_type="ticket.auto_close_cancelled",
            actor=actor,
            context=context,
        )
        emitted = True
    await session.flush()
    if rewind is not None and not close_stands:
        await reevaluation.withdraw_auto_close(session, ticket, rewind, event, now)
    await reevaluation.withdraw_firings(session, ticket, withdrawn, event, now)
    timers = (
        auto_close is not AutoCloseDirective.NONE
        or not outcome.clock_ops.is_empty
        or bool(work.created)
        or rewind is not None
        or bool(withdrawn)
    )
    await tickets.wake(session, outbox=emitted, timers=timers)
    return context if rewind is None and not withdrawn else None


# -------------------------------------------------------------------------- checks


async def _actor(
    session: AsyncSession, ticket: Ticket, principal: Principal | None, body: ActionBase
) -> dict[str, Any]:
    """Who acted. A customer's message names its author: the key's contact, the
    ``contact_id`` given (staff logging an e-mail or call), or the ticket's requester."""
    if principal is None or not isinstance(body, CustomerReplyBody):
        return actor_of(principal)
    if principal.contact_id is not None and body.contact_id not in (None, principal.contact_id):
        raise invalid_field("body.contact_id", "this key writes as its own contact")
    author = body.contact_id or principal.contact_id or ticket.contact_id
    if author != ticket.contact_id:
        contact = await session.get(Contact, author)
        if contact is None or contact.organization_id != ticket.organization_id:
            raise invalid_field(
                "body.contact_id", "no contact with this id in the ticket's organization"
            )
    return principal.actor(contact_id=author)


async def _occurred_at(
    session: AsyncSession, principal: Principal, body: ActionBase, ticket: Ticket, now: datetime
) -> datetime:
    if body.occurred_at is not None and principal.is_customer:
        raise invalid_field(
            "body.occurred_at", "customer keys act now; only staff record past events"
        )
    if body.occurred_at is None:
        # "Now" is when the ticket lock was granted: a concurrent action that got the lock
        # first may carry a later clock reading than ours, and this one follows it.
        return max(now, ticket.last_event_at)
    bound = ticket.last_event_at
    if body.occurred_at < bound:
        # Before the latest event: only what people recorded bounds it, not the system.
        bound = await reevaluation.person_bound(session, ticket)
    try:
        return lifecycle.resolve_occurred_at(body.occurred_at, now, bound)
    except InvalidOccurredAt as exc:
        raise invalid_field("body.occurred_at", str(exc), exc.code) from None


def _not_allowed(exc: ActionNotAllowed, ticket: Ticket, principal: Principal | None) -> Conflict:
    customer = principal is not None and principal.is_customer
    allowed = [a.value for a in exc.allowed if not customer or a in lifecycle.CUSTOMER_ACTIONS]
    if exc.action is Action.REOPEN and ticket.close_reason == CloseReason.NO_RESPONSE.value:
        return Conflict(
            "This ticket was closed for lack of response and cannot be reopened (seed 004): "
            f"open a new ticket with follows_up_ticket_id={ticket.id}.",
            ticket_status=ticket.status,
            close_reason=ticket.close_reason,
            allowed_actions=allowed,
            follows_up_ticket_id=str(ticket.id),
        )
    return Conflict(
        f"{exc.action.value} is not allowed while the ticket is {exc.status.value}; "
        f"allowed: {', '.join(allowed) or 'none'}.",
        ticket_status=exc.status.value,
        allowed_actions=allowed,
    )


async def _apply_arguments(
    session: AsyncSession, work: _Work, action: Action, body: ActionBase
) -> None:
    """The action-specific part: arguments checked and applied to the ticket."""
    ticket = work.ticket
    if isinstance(body, AssignBody):
        agent = await session.get(Agent, body.agent_id)
        if agent is None or not agent.active:
            raise invalid_field("body.agent_id", "no active agent with this id")
        ticket.assignee_id = agent.id
        # Seed 000: once an engineer has it, the customer is told how long it will take.
        work.data = {"agent_id": str(agent.id), "due": _due_times(work)}
    elif isinstance(body, EscalateBody):
        _escalate(work, body)
    elif isinstance(body, ChangeBody):
        await _change(session, work, body)
    elif isinstance(body, ResolveBody):
        ticket.resolution = body.resolution
        work.data = {"resolution": body.resolution}
    elif isinstance(body, CloseBody):
        work.data = {"reason": body.reason}
    elif isinstance(body, ContactAttemptBody):
        work.data = {"channel": body.channel.value, "attempt": ticket.contact_attempts + 1}


def _due_times(work: _Work) -> dict[str, str | None]:
    due: dict[str, str | None] = {}
    for metric, clock in work.clocks.items():
        reading = sla.read(clock, work.occurred, _calendar(work, clock))
        running_due = reading.due_at if not clock.is_stopped else None
        due[metric.value] = running_due.isoformat() if running_due else None
    return due


def _escalate(work: _Work, body: EscalateBody) -> None:
    ticket = work.ticket
    try:
        lifecycle.check_escalation(
            ticket.tier,
            body.to_tier,
            reason=body.reason,
            vendor=body.vendor,
            vendor_case_ref=body.vendor_case_ref,
        )
    except InvalidActionArgument as exc:
        raise invalid_field(f"body.{exc.field}", str(exc)) from None
    work.data = {"from_tier": ticket.tier, "to_tier": body.to_tier, "reason": body.reason}
    ticket.tier = body.to_tier
    if body.vendor is not None:
        ticket.vendor, ticket.vendor_case_ref = body.vendor, body.vendor_case_ref
        work.data |= {"vendor": body.vendor, "vendor_case_ref": body.vendor_case_ref}


async def _change(session: AsyncSession, work: _Work, body: ChangeBody) -> None:
    """Severity/category change: the targets are chosen again (services.clocks.rechoose),
    the business time already counted is kept."""
    ticket = work.ticket
    severity = body.severity or Severity(ticket.severity)
    category = body.category or Category(ticket.category)
    if severity.value == ticket.severity and category.value == ticket.category:
        raise invalid_field("body", "give a severity or category different from the current one")
    terms = work.terms
    if terms is not None and Reason.CATEGORY_EXCLUDED in plan_reasons(
        terms.coverage, None, category
    ):
        raise invalid_field(
            "body.category",
            f"{category.value} is excluded by plan {terms.code} (category_excluded)",
        )
    work.data = {
        "from": {"severity": ticket.severity, "category": ticket.category},
        "to": {"severity": severity.value, "category": category.value},
        "reason": body.reason,
    }
    ticket.severity, ticket.category = severity.value, category.value
    if terms is None:
        return
    work.created = clock_store.rechoose(
        ticket,
        terms,
        work.rows,
        work.clocks,
        work.occurred,
        lambda clock: _calendar(work, clock),
        pausing=TicketStatus(ticket.status) in terms.coverage.pause_on,
        may_start=await tickets.startable_metrics(session, ticket),
    )
    session.add_all(work.created)


def _auto_close(work: _Work, directive: AutoCloseDirective) -> AutoCloseDirective:
    """What happened to the pending auto-close. Whatever the plan says now (it may have
    been edited since the close was scheduled), a ticket that no longer waits on the
    customer is not closed for lack of response."""
    ticket = work.ticket
    if directive is AutoCloseDirective.SCHEDULE and work.terms and work.terms.auto_close:
        business = work.cals.calendar(work.terms.calendar_id)
        days = work.terms.auto_close.notice_business_days
        ticket.auto_close_at = business.add_business_days(work.occurred, days)
        return AutoCloseDirective.SCHEDULE
    waiting = ticket.status == TicketStatus.WAITING_ON_CUSTOMER.value
    if ticket.auto_close_at is not None and (directive is AutoCloseDirective.CANCEL or not waiting):
        ticket.auto_close_at = None
        return AutoCloseDirective.CANCEL
    return AutoCloseDirective.NONE


def _calendar(work: _Work, clock: sla.Clock) -> sla.BusinessTime:
    """The calendar counting a clock: the ticket's plan calendar, or 24x7 by its kind."""
    calendar_id = work.terms.calendar_id if work.terms else None
    return sla.calendar_for(clock.kind, work.cals.business(calendar_id))


async def _save_clocks(
    session: AsyncSession,
    work: _Work,
    clocks: dict[Metric, sla.Clock],
    *,
    late: bool,
    until: datetime,
) -> list[reevaluation.Unheld]:
    """Store the clocks; for a late action, first withdraw the firings they no longer
    support (returned, for the caller to announce once the action is recorded)."""
    work.clocks = clocks
    calendar_id = work.terms.calendar_id if work.terms else None
    fired = work.firings
    withdrawn: list[reevaluation.Unheld] = []
    if late:
        withdrawn = reevaluation.unheld(
            work.rows, clocks, fired, until, lambda c: _calendar(work, c)
        )
        await reevaluation.delete_firings(session, withdrawn)
        for u in withdrawn:
            del fired[u.row.id][u.key]
    for metric, clock in clocks.items():
        row = work.rows[metric]
        keys = set(fired.get(row.id, {}))
        clock_store.store(row, clock, _calendar(work, clock), keys, calendar_id)
    return withdrawn
