"""Threading that mail clients honour: the ticket token in the subject, our Message-IDs,
In-Reply-To and References.

The token is the ticket's display number in brackets, ``[SD-001042]`` (the number
``GET /v1/tickets/{id}`` shows); ``[#1042]`` and ``[#SD-001042]`` are read as well, as a
customer may type them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "clean_subject",
    "make_message_id",
    "references_for",
    "subject_with_token",
    "ticket_number_in",
    "ticket_token",
]

_TOKEN = re.compile(r"\[\s*#?\s*(?:SD-)?0*(\d{1,12})\s*\]", re.IGNORECASE)
# Reply and forward prefixes of common clients, in several languages (Re, Fwd, AW, WG,
# RV, RE, TR, SV, VS, Antw, Doorst), possibly repeated or numbered ("Re[2]:").
_PREFIXES = re.compile(
    r"^(?:\s*(?:re|fwd?|aw|wg|rv|res|tr|sv|vs|antw|doorst)\s*(?:\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)


def ticket_token(number: int) -> str:
    return f"[SD-{number:06d}]"


def ticket_number_in(subject: str | None) -> int | None:
    """The ticket number of the first token in a subject, if any."""
    if not subject:
        return None
    found = _TOKEN.search(subject)
    return int(found.group(1)) if found else None


def clean_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and ticket tokens (a new ticket's
    subject, a notice's topic)."""
    text = _TOKEN.sub(" ", subject)
    text = _PREFIXES.sub("", text)
    return " ".join(text.split())


def subject_with_token(number: int, subject: str) -> str:
    """``subject`` carrying the ticket's token (added in front when missing)."""
    if ticket_number_in(subject) == number:
        return subject
    return f"{ticket_token(number)} {subject}".strip()


def make_message_id(local: str, domain: str) -> str:
    return f"<{local}@{domain}>"


def references_for(
    root: str | None, earlier: Sequence[str], parent: str | None, *, limit: int = 12
) -> tuple[str, ...]:
    """A References chain (RFC 5322 3.6.4): the thread's first message, the latest
    earlier ones (at most ``limit`` in all), and the parent last."""
    chain: list[str] = []
    for item in (root, *earlier):
        if item and item not in chain and item != parent:
            chain.append(item)
    if len(chain) > limit - 1:
        chain = chain[:1] + chain[-(limit - 2) :] if limit > 2 else chain[:1]
    if parent:
        chain.append(parent)
    return tuple(chain)
