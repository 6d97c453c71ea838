"""The settings the e-mail services read, taken once from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from app.config import Settings


@dataclass(frozen=True)
class InboundPolicy:
    """The settings the pipeline reads."""

    own_addresses: frozenset[str]
    trusted_authserv_id: str | None
    max_attachment_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> InboundPolicy:
        own = {a.lower() for a in settings.mail_addresses}
        own.add(parseaddr(settings.mail_from)[1].lower())
        return cls(
            own_addresses=frozenset(own),
            trusted_authserv_id=settings.mail_trusted_authserv_id,
            max_attachment_bytes=settings.mail_max_attachment_bytes,
        )


@dataclass(frozen=True)
class OutboundPolicy:
    """The settings composing reads."""

    mail_from: str
    from_address: str
    desk_name: str
    own_addresses: frozenset[str]
    answers_per_hour: int
    default_locale: str
    templates_dir: Path | None
    relay: bool
    max_attachment_bytes: int
    trusted_authserv_id: str | None = None

    @property
    def domain(self) -> str:
        return self.from_address.rsplit("@", 1)[1]

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        name, address = parseaddr(settings.mail_from)
        own = {a.lower() for a in settings.mail_addresses} | {address.lower()}
        return cls(
            mail_from=settings.mail_from,
            from_address=address.lower(),
            desk_name=name or address,
            own_addresses=frozenset(own),
            answers_per_hour=settings.mail_auto_replies_per_hour,
            default_locale=settings.mail_locale,
            templates_dir=settings.mail_templates_dir,
            relay=settings.smtp_url is not None,
            max_attachment_bytes=settings.mail_max_attachment_bytes,
            trusted_authserv_id=settings.mail_trusted_authserv_id,
        )
