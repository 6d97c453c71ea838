"""The outbound mail loop: outbox events -> composed messages -> the relay.

Each round, in its own short transactions:

1. **Compose** (one composer at a time: a tried advisory lock) the customer messages of
   the outbox events not looked at yet (app.services.mail_compose), and mark the events.
2. **Hold or release.** With no relay configured (``SLADESK_SMTP_URL`` unset, the
   embedded default) every due message is kept as ``held``; with one, ``held`` messages
   become due: nothing composed while no relay existed is lost.
3. **Claim** due messages (``pending``, ``next_attempt_at`` reached, lease free or
   expired) ``FOR UPDATE SKIP LOCKED``, as many as there are free sending slots, lease
   them and commit.
4. **Send** each (aiosmtplib; ``smtp://`` with STARTTLS when the relay offers it,
   ``smtps://`` implicit TLS), outside any transaction, with its own Message-ID.
5. **Record** the attempt (its id chosen before sending: recorded once) and, if the lease
   is still ours, the message's next state: ``sent``; due again per the schedule
   (app.domain.mail.delivery) after a temporary failure; ``failed`` when the relay refused
   the message for good or the schedule ran out.

At least once: a worker that dies mid-send keeps its lease until it expires, then the
message is sent again with the same Message-ID (receivers recognise the repeat).
Wake-ups: ``NOTIFY sladesk_outbox`` (an event to compose) and ``NOTIFY sladesk_mail`` (a
message became due), a finished send, the earliest ``next_attempt_at``, and a periodic
safety re-check.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from app.config import Settings
from app.db import make_sessionmaker
from app.domain.mail.delivery import DEFAULT_SCHEDULE, next_attempt_at
from app.models import MailAttempt, OutboundMail
from app.services import mail_compose
from app.services.mail_compose import MAIL_CHANNEL
from app.services.mail_policy import OutboundPolicy
from app.services.outbox import OUTBOX_CHANNEL
from app.workers.listener import listen
from app.workers.rounds import run_rounds

logger = logging.getLogger("sladesk.mail")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Relay:
    """Where outbound mail goes, from ``SLADESK_SMTP_URL``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False

    @classmethod
    def parse(cls, url: str) -> Relay:
        parts = urlsplit(url)
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
        )

    @property
    def start_tls(self) -> bool | None:
        """smtp://: STARTTLS when the relay offers it; required when we log in (a password
        never crosses the network in clear). smtps:// is TLS from the first byte."""
        if self.implicit_tls:
            return False
        return True if self.username else None

    def __repr__(self) -> str:  # never the password
        return (
            f"Relay({self.host}:{self.port}, tls={'implicit' if self.implicit_tls else 'starttls'})"
        )


@dataclass(frozen=True)
class SenderConfig:
    """Everything the loop needs; tests shrink the schedule and the timeouts."""

    relay: Relay | None = None
    timeout: float = 30.0
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.1
    lease_margin: float = 30.0
    max_in_flight: int = 8
    claim_batch: int = 32
    compose_batch: int = 200
    safety_recheck: float = 30.0
    error_backoff_max: float = 5.0
    listener_health_interval: float = 15.0
    tls_context: ssl.SSLContext | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SenderConfig:
        relay = Relay.parse(settings.smtp_url.get_secret_value()) if settings.smtp_url else None
        base = cls(relay=relay, timeout=settings.smtp_timeout_seconds)
        return replace(base, **overrides)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout + self.lease_margin)


@dataclass
class Job:
    outbound_id: uuid.UUID
    token: uuid.UUID
    resend: bool
    sender: str
    recipient: str
    raw: bytes


@dataclass
class Result:
    attempt_id: uuid.UUID
    started_at: datetime
    duration_ms: int = 0
    code: int | None = None
    error: str | None = None
    permanent: bool = False

    @property
    def sent(self) -> bool:
        return self.error is None


class MailSender:
    def __init__(
        self,
        engine: AsyncEngine,
        config: SenderConfig,
        policy: OutboundPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        name: str = "mail",
    ) -> None:
        self.engine = engine
        self.sessions = make_sessionmaker(engine)
        self.config = config
        self.policy = replace(policy, relay=config.relay is not None)
        self.clock = clock
        self.rng = rng or random.Random()
        self.name = name
        self.listening = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        listeners = [
            asyncio.create_task(self._listen(stop, channel), name=f"sladesk-{self.name}-{channel}")
            for channel in (OUTBOX_CHANNEL, MAIL_CHANNEL)
        ]
        stopper = asyncio.create_task(self._wake_on(stop))
        try:
            await run_rounds(
                stop,
                self._wake,
                self.run_round,
                what="mail",
                worker=self.name,
                backoff_max=self.config.error_backoff_max,
            )
        finally:
            for task in [*listeners, stopper, *self._tasks]:
                task.cancel()
            await asyncio.gather(*listeners, stopper, *self._tasks, return_exceptions=True)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _listen(self, stop: asyncio.Event, channel: str) -> None:
        listening = asyncio.Event() if channel == OUTBOX_CHANNEL else self.listening
        await listen(
            self.engine,
            channel,
            wake=self._wake.set,
            stop=stop,
            listening=listening,
            name=f"{self.name}-{channel}",
            health_interval=self.config.listener_health_interval,
            backoff_max=self.config.error_backoff_max,
        )

    async def run_round(self) -> float:
        """Compose, hold or release, claim and start sends; seconds until the next round."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            composed = await mail_compose.compose_pending(
                session, self.policy, now=now, batch=self.config.compose_batch
            )
            await self._hold_or_release(session, now)
        again = composed.more
        if self.config.relay is not None:
            capacity = self.config.max_in_flight - len(self._tasks)
            if capacity > 0:
                limit = min(capacity, self.config.claim_batch)
                jobs = await self._claim(now, limit)
                # One recipient's messages go one after another, in the order they were
                # composed (a contact attempt before the close it announces); recipients
                # in parallel.
                by_recipient: dict[str, list[Job]] = {}
                for job in jobs:
                    by_recipient.setdefault(job.recipient.lower(), []).append(job)
                for in_order in by_recipient.values():
                    self._start(in_order)
                again = again or len(jobs) == limit
        if again:
            return 0.0
        delay = self.config.safety_recheck
        if composed.blocked:
            delay = min(delay, 0.2)  # another composer is at it; look again soon
        if composed.skipped:
            delay = min(delay, 0.05)
        if self.config.relay is not None and len(self._tasks) < self.config.max_in_flight:
            due = await self._next_due()
            if due is not None:
                delay = min(delay, max((due - self.clock()).total_seconds(), 0.02))
        return delay

    async def _hold_or_release(self, session: Any, now: datetime) -> None:
        if self.config.relay is None:
            await session.execute(
                update(OutboundMail)
                .where(
                    col(OutboundMail.status) == "pending",
                    or_(
                        col(OutboundMail.locked_until).is_(None),
                        col(OutboundMail.locked_until) <= now,
                    ),
                )
                .values(status="held", next_attempt_at=None, updated_at=now)
            )
        else:
            released = await session.execute(
                update(OutboundMail)
                .where(col(OutboundMail.status) == "held")
                .values(status="pending", next_attempt_at=now, updated_at=now)
            )
            if released.rowcount:
                logger.info(
                    "%d held messages released to the relay",
                    released.rowcount,
                    extra={"worker": self.name},
                )

    # -------------------------------------------------------------------------- claim

    def _due(self, now: datetime) -> Any:
        return and_(
            col(OutboundMail.status) == "pending",
            col(OutboundMail.next_attempt_at) <= now,
            or_(col(OutboundMail.locked_until).is_(None), col(OutboundMail.locked_until) <= now),
        )

    async def _claim(self, now: datetime, limit: int) -> list[Job]:
        token = uuid.uuid4()
        async with self.sessions() as session, session.begin():
            rows = list(
                (
                    await session.execute(
                        select(OutboundMail)
                        .where(self._due(now))
                        .order_by(col(OutboundMail.next_attempt_at), col(OutboundMail.created_at))
                        .limit(limit)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            for row in rows:
                row.locked_until = now + self.config.lease
                row.lease_token = token
        return [
            Job(
                outbound_id=row.id,
                token=token,
                resend=row.resend_requested_at is not None,
                sender=row.from_address,
                recipient=row.to_address,
                raw=row.raw,
            )
            for row in rows
        ]

    async def _next_due(self) -> datetime | None:
        due_at = func.greatest(
            func.coalesce(col(OutboundMail.locked_until), col(OutboundMail.next_attempt_at)),
            col(OutboundMail.next_attempt_at),
        )
        async with self.engine.connect() as conn:
            value: datetime | None = (
                await conn.execute(
                    select(func.min(due_at)).where(col(OutboundMail.status) == "pending")
                )
            ).scalar_one()
            await conn.rollback()
        return value

    # --------------------------------------------------------------------------- send

    def _start(self, jobs: list[Job]) -> None:
        task = asyncio.create_task(
            self._deliver_all(jobs), name=f"sladesk-mail-{jobs[0].outbound_id}"
        )
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._wake.set()

        task.add_done_callback(done)

    async def _deliver_all(self, jobs: list[Job]) -> None:
        for job in jobs:
            await self._deliver(job)

    async def _deliver(self, job: Job) -> None:
        result = await self.send(job)
        deadline = time.monotonic() + self.config.lease_margin
        pause = 0.05
        while True:
            try:
                await self._record(job, result)
                return
            except Exception:
                if time.monotonic() + pause > deadline:
                    logger.warning(
                        "could not record a mail attempt; it is retried when its lease expires",
                        exc_info=True,
                        extra={"worker": self.name, "outbound_id": str(job.outbound_id)},
                    )
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def send(self, job: Job) -> Result:
        """One hand-over to the relay. Never raises for anything the relay does."""
        relay = self.config.relay
        assert relay is not None
        result = Result(attempt_id=uuid.uuid4(), started_at=self.clock())
        t0 = time.monotonic()
        try:
            await aiosmtplib.send(
                job.raw,
                sender=job.sender,
                recipients=[job.recipient],
                hostname=relay.host,
                port=relay.port,
                username=relay.username,
                password=relay.password,
                use_tls=relay.implicit_tls,
                start_tls=relay.start_tls,
                timeout=self.config.timeout,
                tls_context=self.config.tls_context,
            )
            result.code = 250
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            result.code = codes[0] if codes else None
            result.permanent = bool(codes) and all(code >= 500 for code in codes)
            result.error = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)[:2000]
        except (
            aiosmtplib.SMTPRecipientRefused,
            aiosmtplib.SMTPSenderRefused,
            aiosmtplib.SMTPDataError,
        ) as exc:
            # The relay refused this message: a 5xx is final, a 4xx worth another try.
            result.code = exc.code
            result.permanent = exc.code >= 500
            result.error = f"{exc.code} {exc.message}"[:2000]
        except aiosmtplib.SMTPResponseException as exc:
            # The relay itself (greeting, authentication, TLS): fix it and it goes.
            result.code = exc.code
            result.error = f"{exc.code} {exc.message}"[:2000]
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:2000] if str(exc) else type(exc).__name__
        except Exception as exc:  # never let one message break the loop
            logger.exception("unexpected error sending mail", extra={"worker": self.name})
            result.error = f"unexpected error: {type(exc).__name__}"
        result.duration_ms = round((time.monotonic() - t0) * 1000)
        return result

    # ------------------------------------------------------------------------- record

    async def _record(self, job: Job, result: Result) -> None:
        now = self.clock()
        async with self.sessions() as session, session.begin():
            row = (
                await session.execute(
                    select(OutboundMail)
                    .where(col(OutboundMail.id) == job.outbound_id)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                return
            number = row.attempt_count + 1
            inserted = await session.scalar(
                insert(MailAttempt)
                .values(
                    id=result.attempt_id,
                    outbound_id=row.id,
                    number=number,
                    trigger="resend" if job.resend else "schedule",
                    started_at=result.started_at,
                    duration_ms=result.duration_ms,
                    outcome="sent" if result.sent else "failed",
                    smtp_code=result.code,
                    error=result.error,
                )
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(col(MailAttempt.id))
            )
            if inserted is None:  # recorded already; the acknowledgement was lost
                return
            row.attempt_count = number
            row.last_attempt_at = result.started_at
            row.last_error = result.error
            row.updated_at = now
            if row.lease_token != job.token:
                return  # another worker owns it now (our lease expired): it decides
            row.locked_until = None
            row.lease_token = None
            row.resend_requested_at = None
            if row.reason == "bounced":
                # Its delivery failure came back before this acceptance was recorded (a
                # relay that bounces at once; a busy sender): the bounce is the later news
                # and stays, with its ticket's note. A resend clears it.
                return
            if result.sent:
                row.status, row.sent_at, row.next_attempt_at, row.reason = "sent", now, None, None
            else:
                # A resend starts the schedule again: count the failures since the last one.
                resent = await session.scalar(
                    select(func.max(col(MailAttempt.number))).where(
                        col(MailAttempt.outbound_id) == row.id, col(MailAttempt.trigger) == "resend"
                    )
                )
                when = next_attempt_at(
                    number - (resent - 1 if resent else 0),
                    now,
                    permanent=result.permanent,
                    schedule=self.config.schedule,
                    jitter=self.config.jitter,
                    u=self.rng.random(),
                )
                if when is None:
                    row.status, row.next_attempt_at = "failed", None
                    row.reason = "refused" if result.permanent else "exhausted"
                else:
                    row.next_attempt_at = when
        log = logger.info if result.sent else logger.warning
        log(
            "mail attempt %s",
            "sent" if result.sent else "failed",
            extra={
                "worker": self.name,
                "outbound_id": str(job.outbound_id),
                "attempt": number,
                "smtp_code": result.code,
                "error": result.error,
                "duration_ms": result.duration_ms,
            },
        )


async def run_mail_sender(engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """The loop registered in app.workers.runner."""
    sender = MailSender(
        engine, SenderConfig.from_settings(settings), OutboundPolicy.from_settings(settings)
    )
    await sender.run(stop)


__all__ = ["Job", "MailSender", "Relay", "Result", "SenderConfig", "run_mail_sender"]
