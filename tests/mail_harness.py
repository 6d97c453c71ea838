"""Real mail for tests: our listener on an ephemeral port fed by ``smtplib``, a real SMTP
relay (aiosmtpd) on 127.0.0.1 that records what we send, and the sender loop.

The relay can be stopped (connection refused) and started again on the same port, and
told to refuse messages with a given reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import smtplib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.services.mail_policy import OutboundPolicy
from app.workers.mail_listener import MailListener
from app.workers.mail_sender import MailSender, SenderConfig

DESK = "soporte@desk.example"


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content()).replace("\r\n", "\n")

    @property
    def html(self) -> str:
        body = self.message.get_body(preferencelist=("html",))
        assert body is not None
        return str(body.get_content()).replace("\r\n", "\n")

    def __getitem__(self, header: str) -> str:
        return str(self.message[header])


@dataclass
class Relay:
    """A real SMTP server: records every message it accepts; ``refuse`` answers DATA."""

    port: int = 0
    received: list[Delivered] = field(default_factory=list)
    refuse: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            return self.refuse
        self.received.append(
            Delivered(
                str(envelope.mail_from),
                [str(r) for r in envelope.rcpt_tos],
                bytes(envelope.original_content or b""),
            )
        )
        self.changed.set()
        return "250 OK"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="relay.test", loop=loop),
            "127.0.0.1",
            self.port,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Delivered]:
        return [d for d in self.received if address in d.rcpt_tos]

    async def wait_for(self, count: int, within: float = 20.0) -> list[Delivered]:
        """Wait until at least ``count`` messages arrived (no sleeping on a guess)."""
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.received


def mail_settings(settings: Settings, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "mail_from": f"Soporte <{DESK}>",
        "mail_addresses": [DESK],
        "mail_listen": "127.0.0.1:0",
    }
    return Settings(**{**settings.model_dump(), **base, **changes})


def message(
    sender: str,
    subject: str,
    body: str,
    *,
    to: str = DESK,
    message_id: str | None = None,
    html: str | None = None,
    attachments: list[tuple[str, str, bytes]] = (),  # type: ignore[assignment]
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(__import__("datetime").datetime.now(__import__("datetime").UTC))
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">"))
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, content_type, data in attachments:
        maintype, subtype = content_type.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=policy.SMTP)


async def smtp_send(
    port: int,
    raw: bytes,
    *,
    mail_from: str = "sender@example.net",
    to: tuple[str, ...] = (DESK,),
    lmtp: bool = False,
) -> dict[str, Any]:
    """Deliver with the standard library's client, as an MTA would (in a thread: the
    listener runs on this event loop)."""

    def deliver() -> dict[str, Any]:
        client: smtplib.SMTP = (
            smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port)
        )
        try:
            return dict(client.sendmail(mail_from, list(to), raw))
        finally:
            client.quit()

    return await asyncio.to_thread(deliver)


@contextlib.asynccontextmanager
async def listening(engine: AsyncEngine, settings: Settings) -> AsyncIterator[int]:
    """Our SMTP (or LMTP) listener on a free port; yields the port."""
    listener = MailListener(engine, settings, host="127.0.0.1", port=0)
    _, port = await listener.start()
    try:
        yield port
    finally:
        await listener.stop()


FAST = SenderConfig(
    schedule=tuple(timedelta(seconds=s) for s in (0.2, 0.4, 0.8, 1.6)),
    jitter=0.0,
    timeout=5.0,
    lease_margin=2.0,
    safety_recheck=0.5,
    listener_health_interval=2.0,
)


@contextlib.asynccontextmanager
async def sending(
    engine: AsyncEngine, settings: Settings, **config: Any
) -> AsyncIterator[MailSender]:
    """The outbound loop, running until the block ends."""
    relay = SenderConfig.from_settings(settings).relay
    sender = MailSender(
        engine,
        replace(FAST, relay=relay, **config),
        OutboundPolicy.from_settings(settings),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        async with asyncio.timeout(10):
            await sender.listening.wait()
        yield sender
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def until(check: Callable[[], Any], within: float = 20.0, every: float = 0.05) -> Any:
    """Poll a condition (an async or plain callable) until it is truthy."""
    async with asyncio.timeout(within):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(every)


def raw_mail() -> Any:
    """A Hypothesis strategy of raw messages for the fuzz test: well-formed ones from all
    kinds of senders (with odd header values), and arbitrary bytes."""
    from hypothesis import strategies as st

    senders = st.sampled_from(
        ["a@example.com", "Ana <ana@x.example>", "", "no address", "MAILER-DAEMON@mx.example", DESK]
    )
    headers = st.dictionaries(
        st.sampled_from(
            ["Subject", "In-Reply-To", "References", "Auto-Submitted", "Precedence", "List-Id",
             "Content-Type", "Authentication-Results", "Message-ID"]
        ),
        st.text(max_size=60).map(lambda v: v.replace("\r", " ").replace("\n", " ")),
        max_size=4,
    )  # fmt: skip

    def build(sender: str, fields: dict[str, str], body: str) -> bytes:
        head = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        return f"From: {sender}\r\n{head}\r\n{body}".encode("utf-8", "surrogateescape")

    return st.one_of(
        st.builds(build, senders, headers, st.text(max_size=300)), st.binary(max_size=600)
    )
