"""Re-evaluating a ticket after an action logged late: dated before the system's own events.

The system's events (threshold firings, the escalation at a breach, the timer's
auto-close) follow from what people recorded, so they never bound back-dating
(app.domain.lifecycle): a call answered at 10:05 and logged at 10:20 counts from 10:05
even if the 50 % warning fired at 10:10. When an action is dated at or before the
ticket's latest event, :mod:`app.services.ticket_actions` takes it at its instant and
this module makes the rest of the ticket true again:

* **The bound** (:func:`person_bound`): the ticket's receipt and its latest event
  recorded by a person (the actor is not the system), or by a plan or calendar edit,
  which re-timed the clocks from its instant (`sla_recomputed`: history the replay
  cannot re-enact). Only looked up when the action is dated before the latest event.
* **The clocks.** Every clock transition after the bound is the system's, and only the
  auto-close makes one (it stops the clocks). So the stored clocks are those in force
  at the bound, except after an auto-close: :func:`rewind_auto_close` restores what the
  close left (kept in ``tickets.auto_closed_from`` by :func:`keep_auto_close`), the
  action is taken at its instant by the normal code, and :func:`settle_auto_close`
  closes the ticket again at the same instant if the close still stands
  (``lifecycle.auto_close_stands``), or says it is withdrawn:
  :func:`withdraw_auto_close` records why (``auto_close_withdrawn``, public) and, when
  the ticket is open again, a ``ticket.reopened`` webhook.
* **The firings.** A fired threshold the recomputed clocks no longer support
  (``sla.unheld_firings``: not reached, or reached at another instant) is withdrawn by
  :func:`withdraw_firings`: its ``sla_firings`` row is deleted (the timer fires it
  again, at its new instant, if the corrected clock reaches it), and an internal
  ``sla_retracted`` timeline event and an ``sla.retracted`` webhook name the threshold
  and the ``webhook-id`` of the delivery withdrawn. The clock's breach is gone with its
  crossing, so reports count the final truth. A tier raised by a withdrawn breach is
  not lowered: an internal ``escalation_cause_withdrawn`` note says so (lowering is an
  agent's decision).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain import lifecycle, sla
from app.domain.lifecycle import Action, CloseReason, LifecyclePolicy, TicketState
from app.domain.vocab import Metric, TicketStatus
from app.domain.webhooks import webhook_id
from app.models.outbox import OutboxEvent
from app.models.tickets import SlaClock, SlaFiring, Ticket, TicketEvent
from app.services import tickets
from app.services.clocks import clock_from_json, clock_json

SYSTEM = "system"
# Timeline kinds that re-timed the clocks (a plan or calendar edit): a bound like a person's.
RETIMING_KINDS = ("sla_recomputed",)
FIRING_TYPES = ("sla.warning", "sla.breached")


async def person_bound(session: AsyncSession, ticket: Ticket) -> datetime:
    """The instant no action may precede: the receipt, or the latest event recorded by a
    person (or by an edit that re-timed the clocks), whichever is later."""
    role = col(TicketEvent.actor)["role"].astext
    latest = await session.scalar(
        select(func.max(col(TicketEvent.occurred_at))).where(
            col(TicketEvent.ticket_id) == ticket.id,
            or_(role.is_distinct_from(SYSTEM), col(TicketEvent.kind).in_(RETIMING_KINDS)),
        )
    )
    return max(ticket.received_at, latest) if latest is not None else ticket.received_at


def cause_of(event: TicketEvent) -> dict[str, Any]:
    """How a re-evaluation names the late action that caused it."""
    return {"event_id": str(event.id), "kind": event.kind, "occurred_at": event.occurred_at}


# ------------------------------------------------------------------------- auto-close


def keep_auto_close(
    ticket: Ticket, clocks: Mapping[Metric, sla.Clock], closed_at: datetime
) -> dict[str, Any]:
    """What an auto-close at `closed_at` is about to close (the ticket waits on the
    customer): enough to take a late action before it (``tickets.auto_closed_from``)."""
    return {
        "closed_at": closed_at.isoformat(),
        "event_id": None,  # the `closed` event, set once it is recorded
        "contact_attempts": ticket.contact_attempts,
        "clocks": {m.value: clock_json(c) for m, c in clocks.items()},
    }


@dataclass(frozen=True)
class Rewind:
    """An auto-close undone to take a late action dated before it."""

    closed_at: datetime
    event_id: str | None  # the timeline event of the close
    status: TicketStatus  # what the ticket was before the rewind (closed)


def rewind_auto_close(
    ticket: Ticket, clocks: dict[Metric, sla.Clock], occurred: datetime
) -> Rewind | None:
    """If the timer auto-closed the ticket after `occurred`, put the ticket and `clocks`
    (updated in place) back as the close found them, with the close pending."""
    kept = ticket.auto_closed_from
    closed_at = ticket.closed_at
    if (
        kept is None
        or closed_at is None
        or ticket.status != TicketStatus.CLOSED.value
        or ticket.close_reason != CloseReason.NO_RESPONSE.value
        or occurred >= closed_at
    ):
        return None
    rewind = Rewind(closed_at, kept.get("event_id"), TicketStatus(ticket.status))
    ticket.status = TicketStatus.WAITING_ON_CUSTOMER.value
    ticket.close_reason = None
    ticket.closed_at = None
    ticket.contact_attempts = int(kept["contact_attempts"])
    ticket.auto_close_at = closed_at
    ticket.auto_closed_from = None
    for metric, data in kept["clocks"].items():
        clocks[Metric(metric)] = clock_from_json(data)
    return rewind


def settle_auto_close(
    ticket: Ticket,
    rewind: Rewind,
    clocks: dict[Metric, sla.Clock],
    policy: LifecyclePolicy,
    calendar_of: Callable[[sla.Clock], sla.BusinessTime],
) -> bool:
    """After the late action: close the ticket again at the same instant if the close
    still stands (True; `clocks` updated in place), else leave it as the action left it
    (False: the caller withdraws the close)."""
    status = TicketStatus(ticket.status)
    if not lifecycle.auto_close_stands(status, ticket.auto_close_at, rewind.closed_at):
        return False
    outcome = lifecycle.apply_action(
        TicketState(status, None, ticket.contact_attempts),
        Action.CLOSE,
        reason=CloseReason.NO_RESPONSE,
        policy=policy,
    )
    kept = keep_auto_close(ticket, clocks, rewind.closed_at) | {"event_id": rewind.event_id}
    closed = lifecycle.apply_clock_ops(clocks, outcome.clock_ops, rewind.closed_at, calendar_of)
    clocks.update(closed)
    ticket.status = outcome.status.value
    ticket.close_reason = CloseReason.NO_RESPONSE.value
    ticket.contact_attempts = outcome.contact_attempts
    ticket.closed_at = rewind.closed_at
    ticket.auto_close_at = None
    ticket.auto_closed_from = kept
    return True


async def withdraw_auto_close(
    session: AsyncSession, ticket: Ticket, rewind: Rewind, cause: TicketEvent, now: datetime
) -> None:
    """The timeline says why the auto-close no longer holds; subscribers hear that the
    ticket is open again (``ticket.reopened``) when it is."""
    reopened = TicketStatus(ticket.status) in lifecycle.OPEN_STATUSES
    await tickets.record(
        session,
        ticket,
        None,
        kind="auto_close_withdrawn",
        occurred_at=max(now, ticket.last_event_at),
        now=now,
        data={
            "event_id": rewind.event_id,
            "closed_at": rewind.closed_at.isoformat(),
            "status": ticket.status,
            "reason": f"{cause.kind} at {cause.occurred_at.isoformat()}, logged late, came "
            f"before the auto-close at {rewind.closed_at.isoformat()}: the ticket was no "
            "longer waiting on the customer then, so it was not closed for lack of response",
            "cause": _json(cause_of(cause)),
        },
        outbox_type="ticket.reopened" if reopened else None,
    )


# ---------------------------------------------------------------------------- firings


@dataclass(frozen=True)
class Unheld:
    """A fired threshold the recomputed clock no longer supports."""

    row: SlaClock
    key: str
    instant: datetime


def unheld(
    rows: Mapping[Metric, SlaClock],
    clocks: Mapping[Metric, sla.Clock],
    fired: Mapping[uuid.UUID, Mapping[str, datetime]],
    until: datetime,
    calendar_of: Callable[[sla.Clock], sla.BusinessTime],
) -> list[Unheld]:
    found: list[Unheld] = []
    for metric, clock in clocks.items():
        row = rows[metric]
        keys = fired.get(row.id) or {}
        if keys:
            for key in sla.unheld_firings(clock, keys, until, calendar_of(clock)):
                found.append(Unheld(row, key, keys[key]))
    return sorted(found, key=lambda u: (u.instant, u.row.metric, u.key))


async def delete_firings(session: AsyncSession, withdrawn: Iterable[Unheld]) -> None:
    """Forget the firings (the timer may fire the threshold again, at its new instant)."""
    pairs = [(u.row.id, u.key) for u in withdrawn]
    if pairs:
        await session.execute(
            delete(SlaFiring).where(tuple_(col(SlaFiring.clock_id), col(SlaFiring.key)).in_(pairs))
        )


async def withdraw_firings(
    session: AsyncSession,
    ticket: Ticket,
    withdrawn: list[Unheld],
    cause: TicketEvent,
    now: datetime,
) -> None:
    """Announce each withdrawn firing (oldest first): the threshold as it fired, the
    ``webhook-id`` of its delivery, the late action that caused it."""
    if not withdrawn:
        return
    originals = await _firing_events(session, ticket.id)
    escalations = (
        await _breach_escalations(session, ticket.id)
        if any(u.key == "breach" for u in withdrawn)
        else {}
    )
    at = max(now, ticket.last_event_at)
    reason = _json(cause_of(cause))
    for u in withdrawn:
        original = originals.get((u.row.metric, u.key))
        threshold = original.data.get("threshold") if original else None
        if not isinstance(threshold, dict):  # not announced (cannot happen): say what we know
            threshold = _threshold(u)
        retracted = {
            "type": original.type if original else None,
            "webhook_id": webhook_id(original.id) if original else None,
        }
        await tickets.record(
            session,
            ticket,
            None,
            kind="sla_retracted",
            occurred_at=at,
            now=now,
            public=False,
            data={"threshold": threshold, "retracted": retracted, "cause": reason},
        )
        await tickets.emit(
            session,
            ticket,
            "sla.retracted",
            occurred_at=at,
            now=now,
            threshold=threshold,
            retracted=retracted,
            cause=reason,
        )
        escalated = escalations.get(u.row.metric)
        if u.key == "breach" and escalated is not None:
            await tickets.record(
                session,
                ticket,
                None,
                kind="escalation_cause_withdrawn",
                occurred_at=at,
                now=now,
                public=False,
                data={
                    "escalated_event_id": str(escalated.id),
                    "from_tier": escalated.data.get("from_tier"),
                    "to_tier": escalated.data.get("to_tier"),
                    "tier": ticket.tier,
                    "threshold": threshold,
                    "reason": f"the {u.row.metric} breach that raised the tier was withdrawn; "
                    "the tier stays: lowering it is an agent's decision",
                },
            )


def _threshold(u: Unheld) -> dict[str, Any]:
    breach = u.key == "breach"
    return {
        "metric": u.row.metric,
        "key": u.key,
        "kind": "breach" if breach else "warning",
        "percent": 100 if breach else None,
        "before_minutes": None,
        "at": u.instant.isoformat().replace("+00:00", "Z"),
    }


def _json(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in value.items()}


async def _firing_events(
    session: AsyncSession, ticket_id: uuid.UUID
) -> dict[tuple[str, str], OutboxEvent]:
    """The latest ``sla.warning`` / ``sla.breached`` of each clock threshold: the one in
    force (an earlier one of the same threshold was withdrawn before it fired again)."""
    rows = await session.execute(
        select(OutboxEvent)
        .where(col(OutboxEvent.ticket_id) == ticket_id, col(OutboxEvent.type).in_(FIRING_TYPES))
        .order_by(col(OutboxEvent.seq))
    )
    found: dict[tuple[str, str], OutboxEvent] = {}
    for event in rows.scalars():
        threshold = event.data.get("threshold") or {}
        found[(str(threshold.get("metric")), str(threshold.get("key")))] = event
    return found


async def _breach_escalations(
    session: AsyncSession, ticket_id: uuid.UUID
) -> dict[str, TicketEvent]:
    """The tier raises the timer made at a breach, by the clock's metric (the latest)."""
    role = col(TicketEvent.actor)["role"].astext
    rows = await session.execute(
        select(TicketEvent)
        .where(
            and_(
                col(TicketEvent.ticket_id) == ticket_id,
                col(TicketEvent.kind) == "escalated",
                role == SYSTEM,
            )
        )
        .order_by(col(TicketEvent.seq))
    )
    found: dict[str, TicketEvent] = {}
    for event in rows.scalars():
        threshold = event.data.get("threshold") or {}
        if threshold.get("key") == "breach":
            found[str(threshold.get("metric"))] = event
    return found
