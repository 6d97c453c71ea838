"""The SMTP/LMTP listener (aiosmtpd) run by the workers: what a forwarding rule, Postfix
(``relay`` or ``lmtp:`` transport) or any MTA delivers to.

Each message goes through app.services.mail_inbound in one transaction, and the
delivery is acknowledged (``250``) only once that transaction committed: the message is
then stored whole (a later failure cannot lose it). A database that does not answer is
a ``451`` (temporary): the sending MTA keeps the message and tries again, and the repeat
is recognised by its Message-ID. Messages over ``SLADESK_MAIL_MAX_MESSAGE_BYTES`` are
refused with ``552`` (the limit is announced with ``SIZE``).

``SLADESK_MAIL_LISTEN=host:port`` (default ``127.0.0.1:2525``; empty disables it);
``SLADESK_MAIL_LISTEN_PROTOCOL=lmtp`` speaks LMTP (one answer per recipient).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__
from app.config import Settings
from app.db import make_sessionmaker
from app.services import mail_inbound
from app.services.mail_policy import InboundPolicy

logger = logging.getLogger("sladesk.mail")

ACCEPTED = "250 2.0.0 OK: message stored"
DUPLICATE = "250 2.0.0 OK: message already stored (same Message-ID)"
TEMPORARY = "451 4.3.0 Temporary failure storing the message; please try again later"


class Handler:
    """aiosmtpd's handler: every message through the inbound pipeline."""

    def __init__(self, engine: AsyncEngine, settings: Settings, protocol: str) -> None:
        self.sessions = make_sessionmaker(engine)
        self.policy = InboundPolicy.from_settings(settings)
        self.protocol = protocol

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        if raw is None:
            content = envelope.content
            raw = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else b""
        status = await self.deliver(raw, envelope.mail_from, [str(r) for r in envelope.rcpt_tos])
        if self.protocol == "lmtp":  # LMTP: one reply per recipient
            return "\r\n".join([status] * max(len(envelope.rcpt_tos), 1))
        return status

    async def deliver(self, raw: bytes, mail_from: str | None, rcpt_tos: list[str]) -> str:
        now = datetime.now(UTC)
        delivery = mail_inbound.Delivery(
            raw=raw,
            source=self.protocol,
            received_at=now,
            envelope_from="" if mail_from in (None, "", "<>") else mail_from,
            envelope_to=tuple(rcpt_tos),
        )
        try:
            async with self.sessions() as db, db.begin():
                received = await mail_inbound.receive(db, delivery, self.policy, now=now)
        except Exception:
            logger.exception("could not store a received message; the sender will retry")
            return TEMPORARY
        logger.info(
            "message received",
            extra={
                "mail_id": str(received.row.id),
                "status": received.row.status,
                "reason": received.row.reason,
                "duplicate": received.duplicate,
                "source": self.protocol,
            },
        )
        return DUPLICATE if received.duplicate else ACCEPTED


class MailListener:
    """The listening socket; ``start`` returns the bound address (port 0: any free one)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        listen_host, _, listen_port = settings.mail_listen.rpartition(":")
        self.host = host if host is not None else listen_host.strip("[]")
        self.port = port if port is not None else int(listen_port)
        self.protocol = settings.mail_listen_protocol
        self.handler = Handler(engine, settings, self.protocol)
        self.limit = settings.mail_max_message_bytes
        # Our name in the greeting (looking up the machine's FQDN can hang without DNS).
        self.hostname = parseaddr(settings.mail_from)[1].rsplit("@", 1)[-1] or "sladesk"
        self._server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        # aiosmtpd narrates every SMTP command at INFO; our own line per message says enough.
        chatty = logging.getLogger("mail.log")
        if chatty.level < logging.WARNING:
            chatty.setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        kind = LMTP if self.protocol == "lmtp" else SMTP

        def protocol() -> Any:
            return kind(
                self.handler,
                data_size_limit=self.limit,
                enable_SMTPUTF8=True,
                hostname=self.hostname,
                ident=f"sladesk {__version__}",
                loop=loop,
            )

        self._server = await loop.create_server(protocol, self.host, self.port)
        sockname = self._server.sockets[0].getsockname()
        self.port = int(sockname[1])
        logger.info(
            "mail listener ready",
            extra={"host": self.host, "port": self.port, "protocol": self.protocol},
        )
        return self.host, self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def run_mail_listener(engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """The loop registered in app.workers.runner (nothing to do when disabled)."""
    if not settings.mail_listen:
        return
    listener = MailListener(engine, settings)
    try:
        await listener.start()
    except OSError as exc:
        # Another replica on this host has the port: the others still run.
        logger.error("mail listener could not bind %s: %s", settings.mail_listen, exc)
        return
    try:
        await stop.wait()
    finally:
        await listener.stop()
