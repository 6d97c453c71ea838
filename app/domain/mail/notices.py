"""What a customer hears by e-mail, for which event (seeds 000, 002, 004).

Sent: the acknowledgment when a ticket is assigned, with its due times (seed 000: "the
user will receive a message informing the time it will take ... after it is assigned");
every public reply; a request for information; each contact attempt, saying which attempt
it is and when the ticket will close (seed 004); the auto-close notice (closed for lack
of response: help asked later is a new ticket); resolved, asking to confirm; closed; an
authorization request (seed 004: "the client will be notified for authorization"); and
the answers to rejected mail: a refusal to end users and unknown senders (seed 002: the
customer supports its end users), the reasons when the sender is not entitled, the limit
when a message is too large. Internal notes, SLA alarms and other events: never.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

__all__ = ["ANSWERS", "AUTO_SUBMITTED", "NOTICE_TYPES", "Notice", "notice_for"]


class Notice(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    REPLY = "reply"
    INFO_REQUESTED = "info_requested"
    CONTACT_ATTEMPT = "contact_attempt"
    RESOLVED = "resolved"
    CLOSED = "closed"
    AUTO_CLOSED = "auto_closed"
    AUTHORIZATION_REQUIRED = "authorization_required"
    REFUSED = "refused"
    NOT_ENTITLED = "not_entitled"
    TOO_LARGE = "too_large"


# The Auto-Submitted field (RFC 3834) of messages no person wrote: "auto-replied" for
# answers to a message (they count against the per-sender hourly limit), "auto-generated"
# for notices the desk sends by itself. Messages carrying an agent's words have none.
AUTO_SUBMITTED: Mapping[Notice, str] = {
    Notice.ACKNOWLEDGED: "auto-generated",
    Notice.CLOSED: "auto-generated",
    Notice.AUTO_CLOSED: "auto-generated",
    Notice.AUTHORIZATION_REQUIRED: "auto-generated",
    Notice.REFUSED: "auto-replied",
    Notice.NOT_ENTITLED: "auto-replied",
    Notice.TOO_LARGE: "auto-replied",
}

# Answers to a rejected message, by its reason (other reasons get no answer: robots,
# forgeries, loops and ambiguous senders are for staff to look at).
ANSWERS: Mapping[str, Notice] = {
    "end_user": Notice.REFUSED,
    "unknown_sender": Notice.REFUSED,
    "not_entitled": Notice.NOT_ENTITLED,
    "too_large": Notice.TOO_LARGE,
}


# The only event types that may send a notice (notice_for gives None for every other):
# the composer marks the rest in one statement, so a burst of SLA alarms costs it nothing.
NOTICE_TYPES: frozenset[str] = frozenset(
    {
        "ticket.acknowledged",
        "ticket.replied",
        "ticket.contact_attempted",
        "ticket.resolved",
        "ticket.closed",
        "authorization.required",
        "mail.rejected",
    }
)


def notice_for(event_type: str, data: Mapping[str, Any]) -> Notice | None:
    """The notice an outbox event sends to the customer, or None."""
    if event_type not in NOTICE_TYPES:
        return None
    event = data.get("event") or {}
    ticket = data.get("ticket") or {}
    if event_type == "ticket.acknowledged":
        return Notice.ACKNOWLEDGED
    if event_type == "ticket.replied":
        return Notice.INFO_REQUESTED if event.get("kind") == "info_requested" else Notice.REPLY
    if event_type == "ticket.contact_attempted":
        return Notice.CONTACT_ATTEMPT
    if event_type == "ticket.resolved":
        return Notice.RESOLVED
    if event_type == "ticket.closed":
        return Notice.AUTO_CLOSED if ticket.get("close_reason") == "no_response" else Notice.CLOSED
    if event_type == "authorization.required":
        return Notice.AUTHORIZATION_REQUIRED
    if event_type == "mail.rejected":
        return ANSWERS.get(str((data.get("mail") or {}).get("reason")))
    return None
