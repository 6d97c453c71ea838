"""The event catalogue: every event type a webhook can carry, what it means, and an example.

No I/O. Services emit these names with ``app.services.outbox.emit``; subscriptions choose
among them (or ``*``); ``/docs`` shows one OpenAPI webhook per type with its example, and
``GET /v1/webhooks/event-types`` returns the catalogue.

Every delivery's body is ``{"type", "timestamp", "data"}`` (Standard Webhooks): ``type`` is
the name below, ``timestamp`` the instant the event happened (not the attempt's), and
``data`` the outbox event's ``data``. Ticket events carry the ticket, its SLA entries and,
for threshold events, the threshold that fired. Examples are illustrative: receivers
must ignore fields they do not know, as new ones may be added.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

WILDCARD = "*"


@dataclass(frozen=True)
class EventType:
    name: str
    summary: str
    description: str
    example: dict[str, Any] = field(repr=False)
    # Ticket events go out in event order per ticket and subscription.
    ticket: bool = True
    # Addressed events go only to the subscription named in ``data.subscription_id``
    # (never to ``*`` or to other subscriptions that list the type).
    addressed: bool = False


_TICKET_ID = "0b6f7c1e-4d0a-4c8e-9a55-6a8f2f0c1d11"
_ORG_ID = "5d1e2f3a-7b8c-4d9e-8f0a-1b2c3d4e5f60"

_TICKET: dict[str, Any] = {
    "id": _TICKET_ID,
    "number": "SD-000123",
    "organization_id": _ORG_ID,
    "contact_id": "a3b4c5d6-e7f8-4091-a2b3-c4d5e6f70812",
    "subject": "VPN drops every hour since the upgrade",
    "status": "open",
    "severity": "high",
    "category": "technical",
    "channel": "email",
    "tier": 1,
    "assignee_id": None,
    "received_at": "2026-03-06T17:00:00Z",
}

_SLA: list[dict[str, Any]] = [
    {
        "metric": "first_response",
        "target_minutes": 60,
        "calendar": "business",
        "state": "running",
        "elapsed_seconds": 2700,
        "due_at": "2026-03-09T09:15:00Z",
        "stopped_at": None,
        "breached": False,
    },
    {
        "metric": "resolution",
        "target_minutes": 960,
        "calendar": "business",
        "state": "running",
        "elapsed_seconds": 2700,
        "due_at": "2026-03-11T10:00:00Z",
        "stopped_at": None,
        "breached": False,
    },
]


def _ticket(**changes: Any) -> dict[str, Any]:
    return {**_TICKET, **changes}


def _sla(**changes: Any) -> list[dict[str, Any]]:
    return [{**_SLA[0], **changes}, dict(_SLA[1])]


def _ticket_event(ticket: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"ticket": ticket or _ticket(), "sla": _sla(), **extra}


_ACTOR = {"role": "agent", "agent_id": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f", "contact_id": None}

_TYPES = [
    EventType(
        "ticket.created",
        "A ticket was created",
        "A ticket was raised (by phone, email, portal, API…); its SLA clocks started at "
        "`received_at`.",
        _ticket_event(_ticket(status="new"), actor=_ACTOR),
    ),
    EventType(
        "ticket.acknowledged",
        "An agent answered the ticket for the first time",
        "The first public agent reply: the `first_response` clock stopped.",
        {
            "ticket": _ticket(status="in_progress", assignee_id=_ACTOR["agent_id"]),
            "sla": _sla(state="stopped", stopped_at="2026-03-06T17:45:00Z"),
            "actor": _ACTOR,
        },
    ),
    EventType(
        "ticket.status_changed",
        "The ticket's status changed",
        "Any status transition; `previous_status` is the status before it. Pausing statuses "
        "(e.g. `waiting_on_customer`) pause the SLA clocks.",
        _ticket_event(
            _ticket(status="waiting_on_customer"), previous_status="in_progress", actor=_ACTOR
        ),
    ),
    EventType(
        "ticket.escalated",
        "The ticket moved to a higher support tier",
        "Raised by an agent or by an escalation action of an SLA threshold "
        "(`threshold` is then the threshold that fired, else null).",
        _ticket_event(
            _ticket(tier=2),
            previous_tier=1,
            threshold={"metric": "resolution", "key": "breach", "kind": "breach", "percent": 100},
            actor=None,
        ),
    ),
    EventType(
        "ticket.severity_changed",
        "The ticket's severity changed",
        "The new severity's targets apply; elapsed business time is kept.",
        _ticket_event(_ticket(severity="critical"), previous_severity="high", actor=_ACTOR),
    ),
    EventType(
        "ticket.resolved",
        "The ticket was resolved",
        "An agent resolved the ticket: the `resolution` clock stopped.",
        _ticket_event(_ticket(status="resolved"), actor=_ACTOR),
    ),
    EventType(
        "ticket.closed",
        "The ticket was closed",
        "Closed by the customer's confirmation, by an agent, or automatically; `reason` says "
        "which (`confirmed`, `duplicate`, `out_of_scope`, `no_response`, `other`).",
        _ticket_event(_ticket(status="closed"), reason="confirmed", actor=None),
    ),
    EventType(
        "ticket.reopened",
        "A resolved or closed ticket was reopened",
        "The customer (or an agent) reopened the ticket; the `resolution` clock resumed.",
        _ticket_event(_ticket(status="open"), actor=_ACTOR),
    ),
    EventType(
        "ticket.auto_close_scheduled",
        "The ticket will close by itself unless someone acts",
        "After the plan's contact attempts with no answer, the ticket closes at "
        "`auto_close_at` unless the customer replies first.",
        _ticket_event(
            _ticket(status="waiting_on_customer"),
            auto_close_at="2026-03-13T17:00:00Z",
            contact_attempts=3,
        ),
    ),
    EventType(
        "ticket.updated",
        "The ticket's subject or description was edited",
        "`event.fields` lists the fields that changed (`PATCH /v1/tickets/{id}`).",
        _ticket_event(event={"kind": "edited", "fields": ["subject"], "actor": _ACTOR}),
    ),
    EventType(
        "ticket.replied",
        "An agent sent a public reply or asked the customer for information",
        "`event.kind` is `replied` or `info_requested`; the first one stops `first_response`.",
        _ticket_event(event={"kind": "replied", "actor": _ACTOR}),
    ),
    EventType(
        "ticket.contact_attempted",
        "An agent tried again to reach a customer who has not answered",
        "`event.attempt` counts the attempts; the plan's `auto_close.contact_attempts` "
        "schedules the auto-close.",
        _ticket_event(
            _ticket(status="waiting_on_customer"),
            event={"kind": "contact_attempted", "channel": "phone", "attempt": 2, "actor": _ACTOR},
        ),
    ),
    EventType(
        "ticket.customer_replied",
        "The customer answered",
        "Paused clocks resume; a scheduled auto-close is cancelled.",
        _ticket_event(
            _ticket(status="in_progress"),
            event={"kind": "customer_replied", "actor": {"role": "customer"}},
        ),
    ),
    EventType(
        "ticket.called_back",
        "An agent called the customer back",
        "The `callback` clock (and `first_response`) stopped.",
        _ticket_event(event={"kind": "called_back", "actor": _ACTOR}),
    ),
    EventType(
        "ticket.auto_close_cancelled",
        "A scheduled auto-close will not happen",
        "The ticket stopped waiting on the customer (a reply, a status change, a plan edit).",
        _ticket_event(event={"kind": "auto_close_cancelled", "reason": "status in_progress"}),
    ),
    EventType(
        "ticket.sla_recomputed",
        "The ticket's due times moved because its calendar or plan was edited",
        "Running clocks keep the business time already counted; what remains is counted "
        "under the new terms from the edit.",
        _ticket_event(event={"kind": "sla_recomputed", "calendar_id": _ORG_ID, "version": 2}),
    ),
    EventType(
        "sla.warning",
        "An SLA clock reached a warning threshold",
        "Fired once per clock and threshold, at the threshold's exact instant (a percentage "
        "of the target, or a number of minutes before the due time).",
        _ticket_event(
            threshold={
                "metric": "first_response",
                "key": "warn:75",
                "kind": "warning",
                "percent": 75,
                "before_minutes": None,
                "at": "2026-03-09T09:00:00Z",
            },
        ),
    ),
    EventType(
        "sla.breached",
        "An SLA clock passed its due time",
        "Fired once per clock at the due instant, even if nobody was looking.",
        _ticket_event(
            threshold={
                "metric": "first_response",
                "key": "breach",
                "kind": "breach",
                "percent": 100,
                "before_minutes": None,
                "at": "2026-03-09T09:15:00Z",
            },
        ),
    ),
    EventType(
        "authorization.required",
        "Work on a ticket needs the customer's authorization",
        "The estimate exceeds what the contract covers (e.g. its hour budget); work waits for "
        "an authorized contact's approval.",
        _ticket_event(
            _ticket(status="waiting_on_customer"),
            authorization={
                "id": "e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a8b9",
                "estimate_minutes": 240,
                "reason": "Estimate exceeds the remaining contract hours (90 minutes left).",
                "requested_at": "2026-03-06T18:10:00Z",
            },
        ),
    ),
    EventType(
        "webhook.ping",
        "A test event",
        "Sent by `POST /v1/webhooks/{id}/ping` through the normal delivery pipeline, only to "
        "that subscription, to check the URL and the signature verification.",
        {
            "subscription_id": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
            "message": "Ping from sladesk: your endpoint received and can verify this event.",
        },
        ticket=False,
        addressed=True,
    ),
]

CATALOGUE: dict[str, EventType] = {t.name: t for t in _TYPES}
EVENT_TYPES: tuple[str, ...] = tuple(CATALOGUE)

PING = "webhook.ping"


def example_message(name: str) -> dict[str, Any]:
    """A full example body of a delivery of this event type."""
    return {
        "type": name,
        "timestamp": "2026-03-09T09:00:00Z",
        "data": copy.deepcopy(CATALOGUE[name].example),
    }


def unknown_event_types(names: list[str]) -> list[int]:
    """Indexes of names that are neither a catalogue type nor the wildcard."""
    return [i for i, n in enumerate(names) if n != WILDCARD and n not in CATALOGUE]
