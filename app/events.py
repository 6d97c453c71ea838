"""The event catalogue: every event type a webhook can carry, what it means, and an example.

No I/O. Services emit these names with ``app.services.outbox.emit``; subscriptions choose
among them (or ``*``); ``/docs`` shows one OpenAPI webhook per type with its example, and
``GET /v1/webhooks/event-types`` returns the catalogue.

Every delivery's body is ``{"type", "timestamp", "data"}`` (Standard Webhooks): ``type`` is
the name below, ``timestamp`` the instant the event happened (not the attempt's), and
``data`` the outbox event's ``data``. Ticket events carry the ticket, its SLA entries and,
for threshold events, the threshold that fired. Every payload says who caused it, as an
``actor`` (``data.event.actor`` in events with an ``event``, ``data.actor`` in the
others): ``{"role": "system"}`` for the timers, else the API key (``api_key_id``,
``api_key_name``), the agent it is bound to (``agent_id``) and the customer contact who
wrote or acted (``contact_id``). Examples are illustrative: receivers must ignore fields
they do not know, as new ones may be added.

The same events, in the same shapes, stream to consoles from ``GET /v1/events/stream``;
a customer key receives its organization's :data:`CUSTOMER_EVENT_TYPES` only.
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
    # Streamed to customer keys (their organization's): the events whose timeline entry
    # a customer can read. The desk's own alarms (SLA firings, internal timeline events)
    # and the webhook pipeline's test are the vendor's.
    customer: bool = True


_TICKET_ID = "0b6f7c1e-4d0a-4c8e-9a55-6a8f2f0c1d11"
_ORG_ID = "5d1e2f3a-7b8c-4d9e-8f0a-1b2c3d4e5f60"
_AGENT_ID = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"

# The shapes below are those of the real payloads (`tests/test_event_catalogue.py` checks
# every field name against events the service writes).
_TICKET: dict[str, Any] = {
    "id": _TICKET_ID,
    "number": "SD-000123",
    "organization_id": _ORG_ID,
    "contact_id": "a3b4c5d6-e7f8-4091-a2b3-c4d5e6f70812",
    "channel": "email",
    "severity": "high",
    "category": "technical",
    "subject": "VPN drops every hour since the upgrade",
    "description": "Since Tuesday's upgrade the VPN disconnects every hour.",
    "status": "open",
    "tier": 1,
    "assignee_id": None,
    "entitled": True,
    "entitlement_reasons": [],
    "plan": {
        "id": "eb5c3076-93f5-4eae-9757-5122733c920e",
        "code": "vitrium-standard",
        "name": "Standard",
        "version": 3,
    },
    "after_hours": False,
    "received_at": "2026-03-06T17:00:00Z",
    "contact_attempts": 0,
    "auto_close_at": None,
    "close_reason": None,
    "resolution": None,
    "resolved_at": None,
    "closed_at": None,
    "follows_up_ticket_id": None,
    "vendor": None,
    "vendor_case_ref": None,
    "next_due_at": "2026-03-09T09:15:00Z",
    "version": 2,
    "created_at": "2026-03-06T17:00:02.120000Z",
    "updated_at": "2026-03-06T17:45:00.000000Z",
}

_SLA: list[dict[str, Any]] = [
    {
        "metric": "first_response",
        "minutes": 60,
        "clock": "business",
        "state": "running",
        "running": True,
        "started_at": "2026-03-06T17:00:00Z",
        "due_at": "2026-03-09T09:15:00Z",
        "due_local": {"at": "2026-03-09T03:15:00-06:00", "timezone": "America/Mexico_City"},
        "elapsed_seconds": 2700,
        "remaining_seconds": 900,
        "overdue_seconds": 0,
        "met_by_seconds": None,
        "stopped_at": None,
        "breached_at": None,
        "next_threshold": {"key": "warn:75", "kind": "warning", "at": "2026-03-09T09:00:00Z"},
    },
    {
        "metric": "resolution",
        "minutes": 960,
        "clock": "business",
        "state": "running",
        "running": True,
        "started_at": "2026-03-06T17:00:00Z",
        "due_at": "2026-03-11T10:00:00Z",
        "due_local": {"at": "2026-03-11T04:00:00-06:00", "timezone": "America/Mexico_City"},
        "elapsed_seconds": 2700,
        "remaining_seconds": 54900,
        "overdue_seconds": 0,
        "met_by_seconds": None,
        "stopped_at": None,
        "breached_at": None,
        "next_threshold": {"key": "breach", "kind": "breach", "at": "2026-03-11T10:00:00Z"},
    },
]

_ACTOR = {
    "role": "agent",
    "api_key_id": "9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a",
    "api_key_name": "console: Ana Ruiz",
    "agent_id": _AGENT_ID,
    "contact_id": None,
}
_SYSTEM = {"role": "system"}
_CUSTOMER = {
    "role": "customer",
    "api_key_id": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
    "api_key_name": "customer portal",
    "agent_id": None,
    "contact_id": "a3b4c5d6-e7f8-4091-a2b3-c4d5e6f70812",
}
_AUTHORIZATION = {
    "id": "e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a8b9",
    "status": "pending",
    "charged_minutes": 255,
    "estimate_minutes": 240,
    "approved_estimate_minutes": None,
    "requested_at": "2026-03-06T18:10:00+00:00",
}
_WHEN = "2026-03-06T17:45:00+00:00"


def _ticket(**changes: Any) -> dict[str, Any]:
    return {**_TICKET, **changes}


def _sla(**changes: Any) -> list[dict[str, Any]]:
    return [{**_SLA[0], **changes}, dict(_SLA[1])]


def _recorded(
    kind: str,
    ticket: dict[str, Any] | None = None,
    *,
    actor: dict[str, Any] | None = None,
    sla: list[dict[str, Any]] | None = None,
    **details: Any,
) -> dict[str, Any]:
    """The payload of a timeline event: the ticket and its clocks after it, and the event
    (its kind, instant, actor and details)."""
    event = {"kind": kind, "occurred_at": _WHEN, "actor": actor or _ACTOR, **details}
    return {"ticket": ticket or _ticket(), "sla": sla or _sla(), "event": event}


def _threshold(key: str, kind: str, percent: int | None, at: str) -> dict[str, Any]:
    return {
        "metric": "first_response",
        "key": key,
        "kind": kind,
        "percent": percent,
        "before_minutes": None,
        "at": at,
    }


_BREACH = _threshold("breach", "breach", 100, "2026-03-09T09:15:00Z")
# Met 15 business minutes before its due instant, which a finished clock keeps.
_STOPPED = _sla(
    state="met",
    running=False,
    remaining_seconds=900,
    met_by_seconds=900,
    stopped_at="2026-03-06T17:45:00Z",
    next_threshold=None,
)

_CHANGE: dict[str, Any] = {
    "from": {"severity": "high", "category": "technical"},
    "to": {"severity": "critical", "category": "technical"},
}

_TYPES = [
    EventType(
        "ticket.created",
        "A ticket was created",
        "A ticket was raised (by phone, email, portal, API…); its SLA clocks started at "
        "`received_at`. `event.overridden` says whether staff accepted a refused request.",
        _recorded(
            "created",
            _ticket(status="new", version=1),
            channel="email",
            severity="high",
            category="technical",
            entitled=True,
            reasons=[],
            overridden=False,
        ),
    ),
    EventType(
        "ticket.acknowledged",
        "An agent took the ticket",
        "The ticket was assigned (`new` becomes `open`); `event.due` carries the due times "
        "the customer can be told (seed 000).",
        _recorded(
            "acknowledged",
            _ticket(assignee_id=_AGENT_ID),
            agent_id=_AGENT_ID,
            due={"first_response": "2026-03-09T09:15:00+00:00", "resolution": None},
        ),
    ),
    EventType(
        "ticket.status_changed",
        "The ticket's status changed",
        "Any status transition (`event.from`, `event.to`, and the action that caused it). "
        "Pausing statuses (e.g. `waiting_on_customer`) pause the SLA clocks.",
        {
            "ticket": _ticket(status="waiting_on_customer"),
            "sla": _sla(),
            "event": {
                "from": "in_progress",
                "to": "waiting_on_customer",
                "action": "request_info",
                "actor": _ACTOR,
            },
        },
    ),
    EventType(
        "ticket.escalated",
        "The ticket moved to another support tier",
        "Raised or lowered by an agent (`event.reason`; tier 4 carries the vendor and its "
        "case number), or raised by the timer at an SLA breach (`event.actor` is the system "
        "and `event.threshold` the breach that fired).",
        _recorded(
            "escalated",
            _ticket(tier=2),
            actor=_SYSTEM,
            from_tier=1,
            to_tier=2,
            reason="first_response SLA breached",
            threshold=_BREACH,
        ),
    ),
    EventType(
        "ticket.severity_changed",
        "The ticket's severity or category changed",
        "The new targets apply; elapsed business time is kept and due times are recomputed.",
        _recorded(
            "changed",
            _ticket(severity="critical"),
            reason="Production is down",
            **_CHANGE,
        ),
    ),
    EventType(
        "ticket.resolved",
        "The ticket was resolved",
        "An agent resolved the ticket (`event.resolution`: `fix`, `workaround` or `other`): "
        "its clocks stopped.",
        _recorded("resolved", _ticket(status="resolved"), sla=_STOPPED, resolution="fix"),
    ),
    EventType(
        "ticket.closed",
        "The ticket was closed",
        "Closed by the customer's confirmation, by an agent, or by the timer after the "
        "auto-close notice (`event.actor` is then the system); `ticket.close_reason` says "
        "which (`confirmed`, `duplicate`, `out_of_scope`, `no_response`, `other`).",
        _recorded(
            "closed",
            _ticket(status="closed", close_reason="no_response"),
            actor=_SYSTEM,
            sla=_STOPPED,
            reason="no_response",
        ),
    ),
    EventType(
        "ticket.reopened",
        "A resolved or closed ticket was reopened",
        "The customer (or an agent) reopened the ticket; the `resolution` clock resumed. "
        "Also sent, with `event.kind` `auto_close_withdrawn`, when a customer reply logged "
        "late turns out to precede an auto-close that already happened: the close is "
        "withdrawn (`event.event_id` is its timeline event, `event.reason` says why) and the "
        "ticket is open again.",
        _recorded("reopened", _ticket(status="in_progress")),
    ),
    EventType(
        "ticket.auto_close_scheduled",
        "The ticket will close by itself unless the customer answers",
        "After the plan's contact attempts with no answer, the ticket closes at "
        "`event.auto_close_at` unless the customer replies first.",
        _recorded(
            "auto_close_scheduled",
            _ticket(
                status="waiting_on_customer",
                auto_close_at="2026-03-13T17:00:00Z",
                contact_attempts=3,
            ),
            auto_close_at="2026-03-13T17:00:00+00:00",
            contact_attempts=3,
        ),
    ),
    EventType(
        "ticket.updated",
        "The ticket's subject or description was edited",
        "`event.fields` lists the fields that changed (`PATCH /v1/tickets/{id}`).",
        _recorded("edited", fields=["subject"]),
    ),
    EventType(
        "ticket.replied",
        "An agent sent a public reply or asked the customer for information",
        "`event.kind` is `replied` or `info_requested`; the first one stops `first_response`.",
        _recorded("replied", _ticket(status="in_progress"), sla=_STOPPED),
    ),
    EventType(
        "ticket.contact_attempted",
        "An agent tried again to reach a customer who has not answered",
        "`event.attempt` counts the attempts; the plan's `auto_close.contact_attempts` "
        "schedules the auto-close.",
        _recorded(
            "contact_attempted",
            _ticket(status="waiting_on_customer", contact_attempts=2),
            channel="phone",
            attempt=2,
        ),
    ),
    EventType(
        "ticket.customer_replied",
        "The customer answered",
        "Paused clocks resume; a scheduled auto-close is cancelled. `event.actor.contact_id` "
        "is who wrote: the customer key's contact, or the contact an agent logging the "
        "e-mail or call named (then `role` is the agent's).",
        _recorded(
            "customer_replied",
            _ticket(status="in_progress"),
            actor=_CUSTOMER,
        ),
    ),
    EventType(
        "ticket.called_back",
        "An agent called the customer back",
        "The `callback` clock (and `first_response`) stopped.",
        _recorded("called_back", _ticket(status="in_progress", channel="voicemail")),
    ),
    EventType(
        "ticket.auto_close_cancelled",
        "A scheduled auto-close will not happen",
        "The ticket stopped waiting on the customer (a reply, a status change, a plan edit).",
        _recorded(
            "auto_close_cancelled", _ticket(status="in_progress"), reason="status in_progress"
        ),
    ),
    EventType(
        "ticket.sla_recomputed",
        "The ticket's due times moved because its calendar or plan was edited",
        "Running clocks keep the business time already counted; what remains is counted "
        "under the new terms from the edit.",
        _recorded(
            "sla_recomputed",
            actor={
                "role": "admin",
                "api_key_id": "0e1d2c3b-4a59-4687-a5b4-c3d2e1f0a9b8",
                "api_key_name": "plan administration",
                "agent_id": None,
                "contact_id": None,
            },
            calendar_id="7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9",
            version=4,
        ),
    ),
    EventType(
        "sla.warning",
        "An SLA clock reached a warning threshold",
        "Fired once per clock and threshold by the timer, at the threshold's exact instant "
        "(a percentage of the target, or a number of minutes before the due time); the "
        "delivery's `timestamp` is that instant.",
        {
            "ticket": _ticket(),
            "sla": _sla(next_threshold={"key": "breach", "kind": "breach", "at": _BREACH["at"]}),
            "threshold": _threshold("warn:75", "warning", 75, "2026-03-09T09:00:00Z"),
            "actor": _SYSTEM,
        },
        customer=False,
    ),
    EventType(
        "sla.breached",
        "An SLA clock passed its due time",
        "Fired once per clock at the due instant, even if nobody was looking (a threshold "
        "missed while the service was down fires at its restart, with its original instant). "
        "A target's `on_breach.escalate_to_tier` follows as `ticket.escalated`.",
        {
            "ticket": _ticket(),
            "sla": _sla(
                state="breached",
                breached_at=_BREACH["at"],
                remaining_seconds=0,
                elapsed_seconds=3601,
                overdue_seconds=1,
                next_threshold=None,
            ),
            "threshold": _BREACH,
            "actor": _SYSTEM,
        },
        customer=False,
    ),
    EventType(
        "sla.retracted",
        "An SLA warning or breach that fired no longer holds",
        "An action logged late and dated before the firing (a reply answered on time, "
        "logged after the warning) changed the clock's history: the threshold would not "
        "have been reached, or not then. `threshold` is the one withdrawn, as it fired; "
        "`retracted.webhook_id` is the `webhook-id` of its `sla.warning` / `sla.breached` "
        "delivery; `cause` is the late action (its timeline event). The clock's "
        "`breached_at` is cleared. A tier raised by a withdrawn breach stays (lowering it is "
        "an agent's decision). If the corrected clock reaches the threshold later, it fires "
        "again, at its new instant.",
        {
            "ticket": _ticket(tier=2),
            "sla": _STOPPED,
            "threshold": _BREACH,
            "retracted": {
                "type": "sla.breached",
                "webhook_id": "msg_4f1c2a9be0d84c6f9a3b5e7d1c2f3a4b",
            },
            "cause": {
                "event_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
                "kind": "replied",
                "occurred_at": _WHEN,
            },
        },
    ),
    EventType(
        "authorization.required",
        "Work on a ticket needs the customer's authorization",
        "Seed 004: a billable entry took the ticket's charged time past its estimate. The "
        "entry was recorded; further billable time waits until the customer approves a new "
        "estimate or declines (`POST /v1/tickets/{id}/authorizations/{id}/approve`).",
        {
            "ticket": _ticket(status="in_progress"),
            "sla": _sla(),
            "authorization": {
                **_AUTHORIZATION,
                "reason": "255 minutes are charged, past the estimate of 240: further "
                "billable time waits for the customer.",
            },
            "actor": _ACTOR,
        },
    ),
    EventType(
        "authorization.approved",
        "The customer authorized more time",
        "`authorization.approved_estimate_minutes` is the ticket's new estimate; billable "
        "time can be logged again up to it. `decided_by` is the customer's key, or the "
        "agent who recorded the customer's e-mail (cited in `note`).",
        {
            "ticket": _ticket(status="in_progress"),
            "sla": _sla(),
            "authorization": {
                **_AUTHORIZATION,
                "status": "approved",
                "approved_estimate_minutes": 480,
                "decided_by": _CUSTOMER,
                "note": None,
            },
            "actor": _CUSTOMER,
        },
    ),
    EventType(
        "authorization.declined",
        "The customer declined more time",
        "The estimate stays; billable entries that would pass it are refused.",
        {
            "ticket": _ticket(status="in_progress"),
            "sla": _sla(),
            "authorization": {
                **_AUTHORIZATION,
                "status": "declined",
                "decided_by": _ACTOR,
                "note": "Customer's e-mail of 2026-03-06 18:30: no further hours.",
            },
            "actor": _ACTOR,
        },
    ),
    EventType(
        "mail.rejected",
        "A received e-mail did not become a ticket or a reply",
        "Kept whole with its `reason` (`unknown_sender`, `end_user`, `ambiguous_sender`, "
        "`not_entitled` with `entitlement_reasons`, `auto_reply`, `bounce`, `too_large`, "
        "`unauthenticated`, `loop`, `invalid`, `failed`): `GET /v1/mail/rejected` lists "
        "them and staff may accept one as a ticket (`POST /v1/mail/rejected/{id}/accept`). "
        "End users and unknown senders are answered (seed 002: contact your organization's "
        "administrator) when loop protection allows.",
        {
            "mail": {
                "id": "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9",
                "message_id": "<CAF=reader.42@mail.example.net>",
                "received_at": "2026-03-06T17:00:00+00:00",
                "from": "reader@standard.vitrium.example",
                "subject": "Cannot open the protected PDF",
                "reason": "end_user",
                "detail": "reader@standard.vitrium.example is an end user of the "
                "organization: the customer supports its end users",
                "entitlement_reasons": [],
                "organization_id": _ORG_ID,
                "contact_id": "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e",
                "ticket_id": None,
            }
        },
        ticket=False,
    ),
    EventType(
        "webhook.ping",
        "A test event",
        "Sent by `POST /v1/webhooks/{id}/ping` through the normal delivery pipeline, only to "
        "that subscription, to check the URL and the signature verification.",
        {
            "subscription_id": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
            "message": "Ping from sladesk: your endpoint received and can verify this event.",
            "actor": {**_ACTOR, "role": "admin", "agent_id": None, "api_key_name": "ops"},
        },
        ticket=False,
        addressed=True,
        customer=False,
    ),
]

CATALOGUE: dict[str, EventType] = {t.name: t for t in _TYPES}
EVENT_TYPES: tuple[str, ...] = tuple(CATALOGUE)

PING = "webhook.ping"
CUSTOMER_EVENT_TYPES: frozenset[str] = frozenset(n for n, t in CATALOGUE.items() if t.customer)


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
