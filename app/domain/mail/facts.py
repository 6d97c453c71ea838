"""What the rules need to know about one message, read from its header fields.

The service parses the MIME structure (the standard library's ``email`` package); this
module reads header *values* (already decoded to text) into :class:`MessageFacts`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

__all__ = [
    "Dsn",
    "MessageFacts",
    "address_of",
    "addresses_of",
    "domain_of",
    "message_ids",
    "parse_delivery_status",
    "read_facts",
]

_MSG_ID = re.compile(r"<([^<>\s]+)>")
# An unbracketed id (some clients send In-Reply-To without brackets).
_BARE_ID = re.compile(r"^\s*([^<>\s@]+@[^<>\s@]+)\s*$")


def message_ids(value: str | None) -> tuple[str, ...]:
    """The Message-IDs of a Message-ID / In-Reply-To / References field, each as
    ``<left@right>``, in order, without repeats."""
    if not value:
        return ()
    found = _MSG_ID.findall(value)
    if not found:
        bare = _BARE_ID.match(value)
        found = [bare.group(1)] if bare else []
    seen: dict[str, None] = {}
    for item in found:
        seen.setdefault(f"<{item}>", None)
    return tuple(seen)


def address_of(value: str | None) -> tuple[str, str | None]:
    """(display name, lower-cased addr-spec or None) of a single-address field."""
    if not value:
        return "", None
    name, address = parseaddr(value)
    address = address.strip().lower()
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        return name.strip(), None
    return name.strip(), address


def addresses_of(values: Sequence[str]) -> tuple[str, ...]:
    """Lower-cased addresses of To/Cc-like fields, in order, without repeats."""
    seen: dict[str, None] = {}
    for _, address in getaddresses(list(values)):
        address = address.strip().lower()
        if "@" in address:
            seen.setdefault(address, None)
    return tuple(seen)


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    return address.rsplit("@", 1)[1].strip().lower().rstrip(".") or None


@dataclass(frozen=True)
class Dsn:
    """A delivery status notification (RFC 3464) about one message we sent."""

    original_message_id: str | None
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str | None = None  # e.g. 5.1.1
    recipient: str | None = None
    diagnostic: str | None = None

    @property
    def failed(self) -> bool:
        return self.action == "failed"


def parse_delivery_status(text: str, original_message_id: str | None) -> Dsn:
    """The first recipient's fields of a ``message/delivery-status`` part."""
    fields: dict[str, str] = {}
    blocks = re.split(r"\r?\n\s*\r?\n", text.strip())
    # Block 0 is per message; the next ones are per recipient (the first one is ours).
    for block in blocks[1:2] or blocks[:1]:
        name = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and name is not None:
                fields[name] += " " + line.strip()
                continue
            name, sep, value = line.partition(":")
            if not sep:
                name = None
                continue
            name = name.strip().lower()
            fields[name] = value.strip()
    recipient = fields.get("final-recipient") or fields.get("original-recipient")
    if recipient and ";" in recipient:
        recipient = recipient.split(";", 1)[1].strip()
    return Dsn(
        original_message_id=original_message_id,
        action=fields.get("action", "").lower() or "failed",
        status=fields.get("status") or None,
        recipient=(recipient or "").lower() or None,
        diagnostic=fields.get("diagnostic-code") or None,
    )


@dataclass(frozen=True)
class MessageFacts:
    """The header facts of one message. Addresses are lower-cased; Message-IDs keep
    their brackets (``<id@host>``)."""

    message_id: str | None
    from_address: str | None
    from_name: str = ""
    to: tuple[str, ...] = ()
    subject: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    auto_submitted: str | None = None
    precedence: str | None = None
    list_id: str | None = None
    # X-Autoreply / X-Autorespond (vacation programs that do not set Auto-Submitted).
    autoreply_header: bool = False
    # Exchange's X-Auto-Response-Suppress: the sender asks not to be auto-answered.
    suppress_auto_response: bool = False
    # MAIL FROM (or Return-Path): "" is the null sender of notifications; None unknown.
    envelope_from: str | None = None
    dsn: Dsn | None = None
    authentication_results: tuple[str, ...] = ()

    @property
    def from_domain(self) -> str | None:
        return domain_of(self.from_address)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """In-Reply-To then References, newest reference first (the likeliest parent)."""
        seen: dict[str, None] = {}
        for item in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(item, None)
        return tuple(seen)


def _first(headers: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = headers.get(name) or ()
    return str(values[0]).strip() if values else None


_SUPPRESS = frozenset({"all", "autoreply", "oof"})


def read_facts(
    headers: Mapping[str, Sequence[str]],
    *,
    envelope_from: str | None = None,
    dsn: Dsn | None = None,
) -> MessageFacts:
    """Facts of a message whose header fields are given by lower-cased name (each name
    with its values, topmost first)."""
    name, address = address_of(_first(headers, "from"))
    ids = message_ids(_first(headers, "message-id"))
    return_path = _first(headers, "return-path")
    if envelope_from is None and return_path is not None:
        envelope_from = "" if return_path.strip() in ("<>", "") else address_of(return_path)[1]
    suppress = {
        token.strip().lower()
        for value in headers.get("x-auto-response-suppress", ())
        for token in str(value).split(",")
    }
    return MessageFacts(
        message_id=ids[0] if ids else None,
        from_address=address,
        from_name=name,
        to=addresses_of([*headers.get("to", ()), *headers.get("cc", ())]),
        subject=(_first(headers, "subject") or "").strip(),
        in_reply_to=message_ids(_first(headers, "in-reply-to")),
        references=message_ids(" ".join(str(v) for v in headers.get("references", ()))),
        auto_submitted=(_first(headers, "auto-submitted") or "").split(";")[0].strip().lower()
        or None,
        precedence=(_first(headers, "precedence") or "").strip().lower() or None,
        list_id=_first(headers, "list-id"),
        autoreply_header=bool(headers.get("x-autoreply") or headers.get("x-autorespond")),
        suppress_auto_response=bool(suppress & _SUPPRESS),
        envelope_from=envelope_from.lower() if envelope_from else envelope_from,
        dsn=dsn,
        authentication_results=tuple(str(v) for v in headers.get("authentication-results", ())),
    )
