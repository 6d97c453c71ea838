"""Mail loops: which messages are automatic, and which may be answered automatically.

An answer we send by ourselves (a refusal) must never feed a loop with another robot:
no answer to anything that declares itself automatic (``Auto-Submitted`` other than
``no``, RFC 3834; ``X-Autoreply``/``X-Autorespond``), bulk or list mail (``Precedence:
bulk|junk|list``, ``List-Id``), notifications (the null sender, ``mailer-daemon`` and
``postmaster``), our own addresses, senders who asked not to be (``X-Auto-Response-
Suppress``), a From that failed authentication (the answer would go to whoever was
impersonated: backscatter), and no more than ``limit`` answers per sender per hour.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

from app.domain.mail.facts import MessageFacts

__all__ = ["AutoKind", "NoAnswer", "automatic_kind", "is_robot_address", "why_not_answer"]

_ROBOTS = frozenset({"mailer-daemon", "postmaster"})


class AutoKind(StrEnum):
    """A message no person wrote: it is kept, never made a ticket."""

    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"


class NoAnswer(StrEnum):
    """Why a message gets no automatic answer (stable codes, kept on the outbound log)."""

    NO_ADDRESS = "no_address"
    OWN_ADDRESS = "own_address"
    AUTOMATIC = "automatic"
    NOTIFICATION = "notification"
    BULK = "bulk"
    MAILING_LIST = "mailing_list"
    SUPPRESS_REQUESTED = "suppress_requested"
    UNAUTHENTICATED = "unauthenticated"
    RATE_LIMITED = "rate_limited"


def is_robot_address(address: str | None) -> bool:
    if not address or "@" not in address:
        return False
    return address.split("@", 1)[0].lower() in _ROBOTS


def automatic_kind(facts: MessageFacts) -> AutoKind | None:
    """Bounce: a delivery status notification, or a message from the null sender or
    from mailer-daemon/postmaster (many MTAs bounce without RFC 3464). Auto-reply:
    ``Auto-Submitted`` other than ``no``, or a vacation program's own marker."""
    if facts.dsn is not None or facts.envelope_from == "":
        return AutoKind.BOUNCE
    if is_robot_address(facts.from_address) or is_robot_address(facts.envelope_from):
        return AutoKind.BOUNCE
    if facts.auto_submitted not in (None, "no") or facts.autoreply_header:
        return AutoKind.AUTO_REPLY
    if facts.precedence == "auto_reply":
        return AutoKind.AUTO_REPLY
    return None


def why_not_answer(
    facts: MessageFacts,
    *,
    own_addresses: Collection[str],
    answers_last_hour: int,
    limit: int,
    authenticated: bool | None = None,
) -> NoAnswer | None:
    """None when an automatic answer to this message's sender is safe to send
    (``authenticated``: the trusted MTA's verdict on the From, None when not checked)."""
    address = facts.from_address
    if address is None:
        return NoAnswer.NO_ADDRESS
    if address in own_addresses:
        return NoAnswer.OWN_ADDRESS
    if facts.envelope_from == "" or is_robot_address(address):
        return NoAnswer.NOTIFICATION
    if automatic_kind(facts) is not None:
        return NoAnswer.AUTOMATIC
    if facts.precedence in ("bulk", "junk", "list"):
        return NoAnswer.BULK
    if facts.list_id:
        return NoAnswer.MAILING_LIST
    if facts.suppress_auto_response:
        return NoAnswer.SUPPRESS_REQUESTED
    if authenticated is False:
        return NoAnswer.UNAUTHENTICATED
    if answers_last_hour >= limit:
        return NoAnswer.RATE_LIMITED
    return None
