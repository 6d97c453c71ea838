"""Where an incoming message goes: a reply on a ticket, a new ticket, or kept as rejected.

The service looks up what the message refers to and who sent it, and asks :func:`route`.
In order:

1. No sender address: ``invalid``. From one of our own addresses: ``loop``.
2. With a trusted authserv-id set, a From we recognise (a contact's address, an address
   of an organization's ``email_domains``, a message threaded to a ticket) that does not
   authenticate: ``unauthenticated`` (seed 004: an authorized contact's address must not
   be forgeable into billable tickets). A sender we do not know is ``unknown_sender``
   whatever its authentication (and is not answered when it fails, see ``loops``).
3. Automatic mail: ``auto_reply`` or ``bounce``. Too large: ``too_large``.
4. A message threaded to a ticket (In-Reply-To/References of one of the ticket's
   messages, else the token in the subject) from someone of the ticket's organization (an
   active contact of it, or an address of one of its ``email_domains`` that is no contact
   of it) is a reply: ``customer_reply`` while the ticket is open (a paused clock resumes
   at the arrival); on a resolved ticket ``confirm`` when the reply's first word says so
   (``confirm``, ``confirmo``…), else ``reopen``; on a closed ticket a new ticket that
   follows it up (seed 004: help requested after a close is a new ticket). A threaded
   message from anyone else is routed as a new message.
5. A new message: the sender's contacts (the address, case-insensitive) decide. In one
   organization: an ``end_user`` is refused (``end_user``, seed 002: the customer supports
   its end users); any other contact makes a ticket through the entitlement decision. In
   several organizations: ``ambiguous_sender``. In none: an address of exactly one
   organization's ``email_domains`` is that organization's end user (``end_user``), of
   several ``ambiguous_sender``, else ``unknown_sender``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from app.domain.lifecycle import Action
from app.domain.mail.authresults import AuthVerdict
from app.domain.mail.loops import AutoKind
from app.domain.vocab import Category, ContactRole, Severity, TicketStatus

__all__ = [
    "CONFIRM_WORDS",
    "DEFAULT_CATEGORY",
    "DEFAULT_SEVERITY",
    "NewTicket",
    "Reason",
    "Reject",
    "Reply",
    "Route",
    "SenderContact",
    "ThreadTarget",
    "confirms",
    "email_defaults",
    "route",
]


class Reason(StrEnum):
    """Why a message is kept instead of becoming a ticket or a reply (stable codes)."""

    INVALID = "invalid"
    LOOP = "loop"
    UNAUTHENTICATED = "unauthenticated"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    TOO_LARGE = "too_large"
    UNKNOWN_SENDER = "unknown_sender"
    END_USER = "end_user"
    AMBIGUOUS_SENDER = "ambiguous_sender"
    NOT_ENTITLED = "not_entitled"
    FAILED = "failed"  # processing raised: kept whole for staff to accept


@dataclass(frozen=True)
class SenderContact:
    """A contact whose address is the sender's."""

    contact_id: uuid.UUID
    organization_id: uuid.UUID
    role: ContactRole
    active: bool


@dataclass(frozen=True)
class ThreadTarget:
    """The ticket a message refers to."""

    ticket_id: uuid.UUID
    organization_id: uuid.UUID
    status: TicketStatus
    organization_domains: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Reject:
    reason: Reason
    detail: str
    organization_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    ticket_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Reply:
    ticket_id: uuid.UUID
    organization_id: uuid.UUID
    action: Action  # customer_reply, confirm or reopen
    contact_id: uuid.UUID | None


@dataclass(frozen=True)
class NewTicket:
    organization_id: uuid.UUID
    contact_id: uuid.UUID
    follows_up_ticket_id: uuid.UUID | None = None


Route = Reject | Reply | NewTicket

# A reply to a resolved ticket whose first word is one of these confirms the resolution.
CONFIRM_WORDS = frozenset(
    {"confirm", "confirmed", "confirmo", "confirmado", "confirmada", "confirmar", "confirmamos"}
)


def confirms(text: str) -> bool:
    words = text.strip().split(None, 1)
    return bool(words) and words[0].strip(".,;:!¡").lower() in CONFIRM_WORDS


def _of_organization(
    thread: ThreadTarget, sender_domain: str | None, contacts: Sequence[SenderContact]
) -> tuple[bool, uuid.UUID | None]:
    """Whether the sender speaks for the ticket's organization, and as which contact."""
    own = [c for c in contacts if c.organization_id == thread.organization_id]
    active = [c for c in own if c.active]
    if active:
        return True, active[0].contact_id
    if not own and sender_domain is not None and sender_domain in thread.organization_domains:
        return True, None
    return False, None


def route(
    *,
    sender: str | None,
    own_address: bool,
    auth: AuthVerdict | None,
    automatic: AutoKind | None,
    too_large: str | None,
    thread: ThreadTarget | None,
    contacts: Sequence[SenderContact],
    domain_organizations: Sequence[uuid.UUID],
    reply_text: str,
) -> Route:
    """The route of one message (see the module docstring). ``auth`` is None when no
    trusted authserv-id is set; ``too_large`` says why when it is."""
    if sender is None:
        return Reject(Reason.INVALID, "the message has no From address")
    if own_address:
        return Reject(Reason.LOOP, f"{sender} is one of our own addresses")
    recognised = bool(contacts) or bool(domain_organizations) or thread is not None
    if auth is not None and not auth.passed and recognised:
        return Reject(Reason.UNAUTHENTICATED, auth.reason)
    known = _only_organization(contacts)
    context = {
        "organization_id": known.organization_id if known else None,
        "contact_id": known.contact_id if known else None,
        "ticket_id": thread.ticket_id if thread else None,
    }
    if automatic is not None:
        detail = "an automatic reply" if automatic is AutoKind.AUTO_REPLY else "a bounce"
        return Reject(Reason(automatic.value), f"the message is {detail}", **context)
    if too_large is not None:
        return Reject(Reason.TOO_LARGE, too_large, **context)

    follows_up: uuid.UUID | None = None
    if thread is not None:
        domain = sender.rsplit("@", 1)[1] if "@" in sender else None
        belongs, contact_id = _of_organization(thread, domain, contacts)
        if belongs:
            status = thread.status
            if status is TicketStatus.CLOSED:
                follows_up = thread.ticket_id
                # The thread tells which of the sender's organizations is meant.
                known = next(
                    (c for c in contacts if c.organization_id == thread.organization_id), known
                )
                if known is not None and known.organization_id == thread.organization_id:
                    contacts = [known]
            elif status is TicketStatus.RESOLVED:
                action = Action.CONFIRM if confirms(reply_text) else Action.REOPEN
                return Reply(thread.ticket_id, thread.organization_id, action, contact_id)
            else:
                return Reply(
                    thread.ticket_id, thread.organization_id, Action.CUSTOMER_REPLY, contact_id
                )

    organizations = {c.organization_id for c in contacts}
    if len(organizations) > 1:
        return Reject(
            Reason.AMBIGUOUS_SENDER,
            f"{sender} is a contact of {len(organizations)} organizations",
        )
    if known is not None:
        if known.role is ContactRole.END_USER:
            return Reject(
                Reason.END_USER,
                f"{sender} is an end user of the organization: the customer supports its end users",
                organization_id=known.organization_id,
                contact_id=known.contact_id,
            )
        return NewTicket(known.organization_id, known.contact_id, follows_up)
    domains = sorted(set(domain_organizations))
    if len(domains) == 1:
        return Reject(
            Reason.END_USER,
            f"{sender} is no contact of the organization whose e-mail domain it uses",
            organization_id=domains[0],
        )
    if len(domains) > 1:
        return Reject(
            Reason.AMBIGUOUS_SENDER,
            f"the domain of {sender} belongs to {len(domains)} organizations",
        )
    return Reject(Reason.UNKNOWN_SENDER, f"{sender} is no contact of any organization")


def _only_organization(contacts: Sequence[SenderContact]) -> SenderContact | None:
    """The sender's contact when all its contacts are of one organization (the active
    one first)."""
    if not contacts or len({c.organization_id for c in contacts}) != 1:
        return None
    return sorted(contacts, key=lambda c: not c.active)[0]


DEFAULT_SEVERITY = Severity.MEDIUM
DEFAULT_CATEGORY = Category.OTHER


def email_defaults(
    organization: Mapping[str, str | None] | None, plan: Mapping[str, str | None] | None
) -> tuple[Severity, Category]:
    """Severity and category of a ticket made from an e-mail: the organization's
    override, else its plan's default, else medium / other (agents correct them with
    the ``change`` action)."""

    def pick(key: str) -> str | None:
        for source in (organization, plan):
            if source and source.get(key):
                return source[key]
        return None

    severity = pick("severity")
    category = pick("category")
    return (
        Severity(severity) if severity else DEFAULT_SEVERITY,
        Category(category) if category else DEFAULT_CATEGORY,
    )
