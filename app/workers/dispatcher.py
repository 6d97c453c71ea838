"""The webhook dispatcher: outbox events -> deliveries -> signed HTTP requests.

Each round, in its own short transactions:

1. **Fan-out** (one dispatcher at a time: a transaction-level advisory lock, tried, never
   waited for). Undispatched outbox events, in ``seq`` order, become one delivery per
   matching active subscription (``INSERT … ON CONFLICT DO NOTHING`` on
   event x subscription, so a repeated fan-out cannot duplicate a delivery) and are marked
   ``dispatched_at``. A sequence number is taken at insert but becomes visible at commit,
   so a hole in ``seq`` may be an event still being written: fan-out stops before it until
   every transaction that was running when the hole was seen has ended (checked twice on
   transaction-id snapshots), or ``gap_max_wait`` passes. So per ticket, deliveries are
   created in event order even when transactions commit out of order.
2. **Claim**. Due deliveries (``status = 'pending'``, ``next_attempt_at`` reached, lease
   free or expired, subscription active) are locked ``FOR UPDATE SKIP LOCKED``, only as
   many as there are free sending slots (overall and per subscription), leased
   (``locked_until`` = now + timeout + margin, with a token), and committed — one
   statement (app.workers.delivery_queue). A delivery of a ticket is due only when no
   earlier delivery of that ticket to that subscription is still pending (retrying or in
   flight): per-ticket order, across any number of dispatchers. Events without a ticket
   are unordered. A subscription's slot is taken from the claim until its receiver
   answers (recording the attempt holds an overall slot only).
3. **Send**, outside any transaction, each in its own task: Standard Webhooks headers and
   signatures (two during a secret rotation), a total timeout, no redirects, through
   keep-alive connections that check every address they connect to
   (app.services.webhook_http, on app.services.netguard).
4. **Record**, in a new transaction (one for every send that finished while the
   previous one ran; app.workers.delivery_queue's statements): the attempt (its id
   chosen before sending, so a retried record after a lost commit acknowledgement
   inserts it once) and, if this dispatcher still holds the lease, the delivery's next
   state — succeeded, retry at the later of the schedule (±jitter) and ``Retry-After``
   (429/5xx, capped), failed when the schedule is exhausted, failed at once on a 3xx
   (never followed, so never retried), or failed + subscription disabled on 410.

A sender that dies keeps its lease until it expires; the delivery is then claimed again
and re-sent with the same ``webhook-id`` (at-least-once). A cancelled dispatcher frees
the leases of what it had not recorded.

Wake-ups: a dedicated asyncpg connection LISTENs on ``sladesk_outbox`` (reconnecting with
backoff; a reconnect triggers a round, as it may have missed notifications), a finished
send wakes the loop, and otherwise it sleeps until the earliest due delivery — with a
safety re-check every ``safety_recheck`` seconds. Database errors end the round, not the
loop: it backs off and tries again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from sqlalchemy import (
    Table,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__
from app.config import Settings
from app.domain.webhooks import (
    DEFAULT_JITTER,
    DEFAULT_RETRY_AFTER_CAP,
    DEFAULT_SCHEDULE,
    Outcome,
    next_step,
    parse_retry_after,
    parse_target,
    signature_header,
    signing_secrets,
    webhook_id,
)
from app.events import CATALOGUE, WILDCARD
from app.models import metadata
from app.services import webhook_http
from app.services.netguard import AddressRefused
from app.services.outbox import OUTBOX_CHANNEL
from app.services.webhook_http import HttpError, Origin, WebhookClient, request_head
from app.workers import delivery_queue
from app.workers.listener import listen, listen_url_of
from app.workers.outbox_horizon import BOUNDS
from app.workers.rounds import run_rounds

logger = logging.getLogger("sladesk.webhooks")

EVENTS: Table = metadata.tables["outbox_events"]
SUBSCRIPTIONS: Table = metadata.tables["webhook_subscriptions"]
DELIVERIES: Table = metadata.tables["webhook_deliveries"]

# The pg_try_advisory_xact_lock key that makes fan-out one dispatcher at a time.
FANOUT_LOCK_KEY = 0x51ADE5C0_3B00_0001
EXCERPT_BYTES = 512
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


# Inserts of many rows go as one statement with its parameter list (SQLAlchemy batches it
# into multi-row VALUES and caches the compiled form), not as a statement built for each
# batch: compiling a 200-row VALUES clause cost more than sending it.
_INSERT_DELIVERIES = insert(DELIVERIES).on_conflict_do_nothing(
    index_elements=["event_id", "subscription_id"]
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DispatcherConfig:
    """Everything the loop needs; tests shrink the schedule and the timeouts."""

    allow_private: bool = False
    allow_http: bool = False
    timeout: float = 15.0  # total per request
    connect_timeout: float = 10.0
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
    jitter: float = DEFAULT_JITTER
    retry_after_cap: timedelta = DEFAULT_RETRY_AFTER_CAP
    lease_margin: float = 30.0  # lease = timeout + margin; also how long a record is retried
    max_in_flight: int = 64
    # A slow receiver holds at most this many of the slots.
    per_subscription: int = 16
    claim_batch: int = 64
    fanout_batch: int = 500
    safety_recheck: float = 30.0
    gap_poll: float = 0.05
    gap_max_wait: float = 10.0
    error_backoff_max: float = 5.0
    listener_health_interval: float = 15.0
    listen_url: str | None = field(default=None, repr=False)  # may hold a password
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)  # None: certifi's

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DispatcherConfig:
        base = cls(
            listen_url=listen_url_of(settings),
            allow_private=settings.webhooks_allow_private,
            allow_http=settings.webhooks_allow_http,
            timeout=settings.webhook_timeout_seconds,
            connect_timeout=min(settings.webhook_timeout_seconds, 10.0),
        )
        return replace(base, **overrides)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout + self.lease_margin)


@dataclass
class Job:
    """A claimed delivery and what sending it needs."""

    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    ticket_id: uuid.UUID | None
    token: uuid.UUID
    redeliver: bool
    url: str
    secrets: list[str] = field(repr=False)
    body: bytes = field(repr=False)


@dataclass
class Result:
    attempt_id: uuid.UUID
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after: timedelta | None = None


@dataclass
class _Gap:
    start: int
    phase: int
    xmax: int
    since: float


@dataclass
class _FanOut:
    more: bool = False
    blocked: bool = False


def message_body(event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> bytes:
    """``{"type", "timestamp", "data"}``, compact JSON: the exact bytes that are signed."""
    encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    return encoded_message_body(event_type, occurred_at, encoded)


def encoded_message_body(event_type: str, occurred_at: datetime, data_json: str) -> bytes:
    """:func:`message_body` around ``data`` that is JSON text already (as PostgreSQL
    renders the outbox's jsonb): sending a burst, decoding and re-encoding every event's
    data cost more than anything else the claim did."""
    timestamp = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    head = json.dumps({"type": event_type, "timestamp": timestamp}, separators=(",", ":"))
    return f'{head[:-1]},"data":{data_json}}}'.encode()


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    """Tell the sender waiting on ``done`` whether its attempt was recorded."""
    if done.done():  # the sender was cancelled meanwhile
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


class Dispatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        config: DispatcherConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
        name: str = "webhooks",
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.rng = rng or random.Random()
        self.name = name
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        self._wake = asyncio.Event()
        # Set when the outbox may hold events not fanned out yet (a NOTIFY, a full or
        # blocked fan-out, start-up); a round woken only by a finished send skips fan-out.
        self._outbox_moved = True
        self._last_fan_out = -math.inf
        self._in_flight: Counter[uuid.UUID] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unrecorded: dict[uuid.UUID, uuid.UUID] = {}  # delivery id -> lease token
        # Finished sends waiting to be recorded: one transaction records all that finished
        # while the previous one ran (group commit), not one transaction per send.
        self._to_record: list[tuple[Job, Result, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self._gap: _Gap | None = None
        self._client: WebhookClient | None = None
        # The claim's and the recorder's own connections, kept between rounds
        # (app.workers.delivery_queue).
        self._queue = delivery_queue.HeldConnection(engine)
        self._records = delivery_queue.HeldConnection(engine)

    # ---------------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        # Not httpx/httpcore: see app.services.webhook_http for why and what it keeps.
        client = WebhookClient(
            allow_private=self.config.allow_private,
            ssl_context=self.config.ssl_context or _default_ssl_context(),
            max_idle=self.config.max_in_flight,
        )
        listener = asyncio.create_task(self._listen(stop), name=f"sladesk-{self.name}-listen")
        stopper = asyncio.create_task(self._wake_on(stop))
        try:
            self._client = client
            try:
                async with self._queue.held(), self._records.held():
                    try:
                        await self._loop(stop)
                    finally:
                        await self._shutdown()
            finally:
                await client.aclose()
        finally:
            listener.cancel()
            stopper.cancel()
            await asyncio.gather(listener, stopper, return_exceptions=True)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def _loop(self, stop: asyncio.Event) -> None:
        await run_rounds(
            stop,
            self._wake,
            self._round,
            what="webhook dispatch",
            worker=self.name,
            backoff_max=self.config.error_backoff_max,
        )

    async def _round(self) -> float:
        # A missed NOTIFY (listener reconnecting) is caught by the periodic fan-out.
        stale = time.monotonic() - self._last_fan_out >= self.config.safety_recheck
        return await self.run_round(fan_out=self._outbox_moved or stale)

    async def _shutdown(self) -> None:
        """Cancel sends in flight and free their leases, so another dispatcher (or this one
        after a restart) sends them at once rather than after the lease expires."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._recorder is not None:
            self._recorder.cancel()
            await asyncio.gather(self._recorder, return_exceptions=True)
        tokens = dict(self._unrecorded)
        if not tokens:
            return
        try:
            async with asyncio.timeout(5):
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(DELIVERIES)
                        .where(
                            DELIVERIES.c.id.in_(list(tokens)),
                            DELIVERIES.c.lease_token.in_(list(set(tokens.values()))),
                            DELIVERIES.c.status == PENDING,
                        )
                        .values(locked_until=None, lease_token=None)
                    )
        except Exception:  # the leases expire by themselves
            logger.info("could not free webhook leases on shutdown", exc_info=True)

    def _outbox_notified(self) -> None:
        self._outbox_moved = True
        self._wake.set()

    async def run_round(self, *, fan_out: bool = True) -> float:
        """Fan out (unless told the outbox has not moved), claim and start sends; the
        seconds to wait before the next round."""
        now = self.clock()
        fan = _FanOut()
        if fan_out:
            self._outbox_moved = False
            self._last_fan_out = time.monotonic()
            try:
                fan = await self._fan_out(now)
            except BaseException:
                self._outbox_moved = True  # not done: the next round tries again
                raise
            self._outbox_moved = self._outbox_moved or fan.more or fan.blocked
        capacity = self.config.max_in_flight - len(self._tasks)
        again = fan.more
        if capacity > 0:
            limit = min(capacity, self.config.claim_batch)
            jobs, seen = await self._claim(now, limit)
            for job in jobs:
                self._start(job)
            again = again or (seen == limit and len(self._tasks) < self.config.max_in_flight)
        if again:
            return 0.0
        delay = self.config.safety_recheck
        if len(self._tasks) < self.config.max_in_flight:
            due = await self._next_due()
            if due is not None:
                # A due row that could not be claimed is locked by another transaction
                # for a moment: look again soon, without spinning.
                delay = min(delay, max((due - self.clock()).total_seconds(), 0.02))
        if fan.blocked:
            delay = min(delay, self.config.gap_poll)
        return delay

    # ------------------------------------------------------------------------ fan-out

    async def _fan_out(self, now: datetime) -> _FanOut:
        result = _FanOut()
        async with self.engine.begin() as conn:
            locked = (
                await conn.execute(select(func.pg_try_advisory_xact_lock(FANOUT_LOCK_KEY)))
            ).scalar_one()
            if not locked:  # another dispatcher is fanning out; look again shortly
                result.blocked = True
                return result
            xmin, xmax = (
                await conn.execute(text(f"SELECT {BOUNDS} FROM txid_current_snapshot() AS s"))
            ).one()
            watermark = (
                await conn.execute(
                    select(func.coalesce(func.max(EVENTS.c.seq), 0)).where(
                        EVENTS.c.dispatched_at.is_not(None)
                    )
                )
            ).scalar_one()
            events = (
                await conn.execute(
                    select(
                        EVENTS.c.id,
                        EVENTS.c.seq,
                        EVENTS.c.type,
                        EVENTS.c.ticket_id,
                        EVENTS.c.data,
                    )
                    .where(EVENTS.c.dispatched_at.is_(None))
                    .order_by(EVENTS.c.seq)
                    .limit(self.config.fanout_batch)
                )
            ).all()
            if not events:
                self._gap = None
                return result
            ready = []
            for event in events:
                if event.seq > watermark + 1 and not self._gap_resolved(watermark + 1, xmin, xmax):
                    result.blocked = True
                    break
                ready.append(event)
                watermark = max(watermark, event.seq)
            if not ready:
                return result
            subscriptions = (
                await conn.execute(
                    select(SUBSCRIPTIONS.c.id, SUBSCRIPTIONS.c.event_types, SUBSCRIPTIONS.c.active)
                )
            ).all()
            rows = [
                {
                    "id": uuid.uuid4(),
                    "event_id": event.id,
                    "subscription_id": subscription_id,
                    "event_seq": event.seq,
                    "event_type": event.type,
                    "ticket_id": event.ticket_id,
                    "status": PENDING,
                    "attempt_count": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for event in ready
                for subscription_id in _targets(event.type, event.data, subscriptions)
            ]
            if rows:
                await conn.execute(_INSERT_DELIVERIES, rows)
            await conn.execute(
                update(EVENTS)
                .where(EVENTS.c.id.in_([e.id for e in ready]))
                .values(dispatched_at=now)
            )
            result.more = len(events) == self.config.fanout_batch and not result.blocked
        return result

    def _gap_resolved(self, start: int, xmin: int, xmax: int) -> bool:
        """Whether the missing sequence numbers from ``start`` on can no longer appear
        (their transactions ended: rolled back, or committed and now visible)."""
        gap, now = self._gap, time.monotonic()
        if gap is None or gap.start != start:
            self._gap = _Gap(start, phase=1, xmax=xmax, since=now)
            return False
        if now - gap.since >= self.config.gap_max_wait:
            logger.warning(
                "outbox sequence %s still missing after %.0f s; going on without it",
                start,
                self.config.gap_max_wait,
                extra={"worker": self.name},
            )
            self._gap = None
            return True
        if xmin >= gap.xmax:
            if gap.phase == 1:
                # Every transaction running when the hole was seen has ended. One that took
                # its number just then but had no transaction id yet has one now: wait for
                # the transactions running now as well.
                gap.phase, gap.xmax = 2, xmax
                return False
            self._gap = None
            return True
        return False

    # -------------------------------------------------------------------------- claim

    async def _claim(self, now: datetime, limit: int) -> tuple[list[Job], int]:
        """Lease up to ``limit`` due deliveries that fit the free slots; (jobs, rows seen).
        One statement (app.workers.delivery_queue)."""
        token = uuid.uuid4()

        def work(conn: Any) -> Any:
            return delivery_queue.claim(
                conn,
                now=now,
                limit=limit,
                in_flight=self._in_flight,
                per_subscription=self.config.per_subscription,
                lease=self.config.lease,
                token=token,
            )

        rows, seen = await self._queue.run(work)
        jobs = [
            Job(
                delivery_id=row["id"],
                subscription_id=row["subscription_id"],
                event_id=row["event_id"],
                ticket_id=row["ticket_id"],
                token=token,
                redeliver=row["redeliver_requested_at"] is not None,
                url=row["url"],
                secrets=signing_secrets(
                    row["secret"],
                    row["previous_secret"],
                    row["previous_secret_expires_at"],
                    now,
                ),
                body=encoded_message_body(row["type"], row["occurred_at"], row["data_json"]),
            )
            for row in rows
        ]
        return jobs, seen

    async def _next_due(self) -> datetime | None:
        saturated = [s for s, n in self._in_flight.items() if n >= self.config.per_subscription]
        return await self._queue.run(lambda conn: delivery_queue.next_due(conn, saturated))

    # --------------------------------------------------------------------------- send

    def _start(self, job: Job) -> None:
        self._in_flight[job.subscription_id] += 1
        self._unrecorded[job.delivery_id] = job.token
        task = asyncio.create_task(self._deliver(job), name=f"sladesk-webhook-{job.delivery_id}")
        self._tasks.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            self._wake.set()

        task.add_done_callback(done)

    def _sent(self, job: Job) -> None:
        """The receiver is done with this request: its subscription's slot is free again
        (recording the attempt needs no slot of the receiver's: holding one until the group
        commit ended halved a burst's throughput to one receiver)."""
        self._in_flight[job.subscription_id] -= 1
        if self._in_flight[job.subscription_id] <= 0:
            del self._in_flight[job.subscription_id]
        self._wake.set()

    async def _deliver(self, job: Job) -> None:
        try:
            result = await self.send(job)
        finally:
            self._sent(job)
        await self._record(job, result)

    async def send(self, job: Job) -> Result:
        """One attempt. Never raises for anything the receiver or the network does."""
        assert self._client is not None
        started = self.clock()
        t0 = time.monotonic()
        result = Result(attempt_id=uuid.uuid4(), started_at=started, duration_ms=0)
        msg_id = webhook_id(job.event_id)
        try:
            url = _checked_target(job.url, self.config.allow_http)
        except (ValueError, httpx.InvalidURL) as exc:  # e.g. http, since disallowed
            result.error = f"URL refused: {exc}"
            return result
        try:
            timestamp = int(started.timestamp())
            signature = signature_header(job.secrets, msg_id, timestamp, job.body)
            head = request_head(
                url.target,
                (
                    (b"Host", url.host_header),
                    (b"Content-Type", b"application/json"),
                    (b"Content-Length", str(len(job.body)).encode()),
                    (b"User-Agent", _USER_AGENT),
                    (b"webhook-id", msg_id.encode()),
                    (b"webhook-timestamp", str(timestamp).encode()),
                    (b"webhook-signature", signature.encode()),
                ),
            )
            async with asyncio.timeout(self.config.timeout):
                reply = await self._client.post(
                    url.origin,
                    head,
                    job.body,
                    connect_timeout=min(self.config.connect_timeout, self.config.timeout),
                )
            result.status_code = reply.status
            retry_after = reply.headers.get(b"retry-after")
            result.retry_after = parse_retry_after(
                retry_after.decode("latin-1") if retry_after else None, self.clock()
            )
            result.excerpt = _excerpt(reply)
            location = reply.headers.get(b"location")
            result.error = _status_error(
                reply.status, location.decode("latin-1") if location else None
            )
        except AddressRefused as exc:
            result.error = f"address refused (SSRF protection): {exc}"
        except TimeoutError:
            result.error = f"no complete answer within {self.config.timeout:g} s"
        except HttpError as exc:
            result.error = f"{exc.name}: {exc}" if str(exc) else exc.name
        except Exception as exc:  # never let one receiver break the loop
            logger.exception("unexpected error sending a webhook", extra={"worker": self.name})
            result.error = f"unexpected error: {type(exc).__name__}"
        result.duration_ms = round((time.monotonic() - t0) * 1000)
        return result

    # ------------------------------------------------------------------------- record

    async def _record(self, job: Job, result: Result) -> None:
        deadline = time.monotonic() + self.config.lease_margin
        pause = 0.05
        while True:
            try:
                await self._record_grouped(job, result)
                break
            except Exception:
                if time.monotonic() + pause > deadline:
                    logger.warning(
                        "could not record a webhook attempt; the delivery is retried when "
                        "its lease expires",
                        exc_info=True,
                        extra={"worker": self.name, "delivery_id": str(job.delivery_id)},
                    )
                    break
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
        if self._unrecorded.get(job.delivery_id) == job.token:
            del self._unrecorded[job.delivery_id]

    async def _record_grouped(self, job: Job, result: Result) -> None:
        """Record with whatever else finished meanwhile; raises if that transaction failed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_record.append((job, result, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(
                self._drain_records(), name=f"sladesk-{self.name}-record"
            )
        await done

    async def _drain_records(self) -> None:
        while self._to_record:
            batch, self._to_record = self._to_record, []
            try:
                await self._record_batch([(job, result) for job, result, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][2], exc)
                    continue
                # One bad entry must not fail the others: record them one by one.
                for job, result, done in batch:
                    try:
                        await self._record_batch([(job, result)])
                    except Exception as single:
                        _settle(done, single)
                    else:
                        _settle(done, None)
                continue
            for _, _, done in batch:
                _settle(done, None)

    async def _record_batch(self, items: Sequence[tuple[Job, Result]]) -> None:
        """Record finished sends in one transaction of a few set-based statements (not a
        few statements per send: at a burst's rate the round trips were the cost), on the
        recorder's own held connection (app.workers.delivery_queue)."""
        now = self.clock()
        logs: list[tuple[Job, Result, bool, int]] = []

        async def work(conn: asyncpg.Connection) -> None:
            logs.clear()  # what a failed try noted did not happen
            ids = sorted({job.delivery_id for job, _ in items})
            rows = {r["id"]: r for r in await conn.fetch(delivery_queue.LOCK_FOR_RECORD, ids)}
            counts = {i: r["attempt_count"] for i, r in rows.items()}
            # A delivery re-claimed after its lease expired may finish twice in one batch:
            # each wave holds a delivery once, so attempt numbers follow each other.
            pending = [(job, result) for job, result in items if job.delivery_id in rows]
            while pending:
                wave: dict[uuid.UUID, tuple[Job, Result]] = {}
                later: list[tuple[Job, Result]] = []
                for job, result in pending:
                    if job.delivery_id in wave:
                        later.append((job, result))
                    else:
                        wave[job.delivery_id] = (job, result)
                pending = later
                recorded = await self._apply_attempts(conn, list(wave.values()), counts, rows, now)
                for job, result, succeeded in recorded:
                    counts[job.delivery_id] += 1
                    logs.append((job, result, succeeded, counts[job.delivery_id]))

        await self._records.run(work, transaction=True)
        for job, result, succeeded, number in logs:
            self._log_attempt(job, result, succeeded, number)

    async def _apply_attempts(
        self,
        conn: asyncpg.Connection,
        wave: Sequence[tuple[Job, Result]],
        counts: Mapping[uuid.UUID, int],
        rows: Mapping[uuid.UUID, Any],
        now: datetime,
    ) -> list[tuple[Job, Result, bool]]:
        """Write the attempts of a wave (one send per delivery) and their deliveries' next
        states; those recorded now (an attempt recorded already — its acknowledgement was
        lost — is skipped), with whether each succeeded."""
        inserted = {
            r["id"]
            for r in await conn.fetch(
                delivery_queue.INSERT_ATTEMPTS,
                *_columns(
                    [
                        (
                            result.attempt_id,
                            job.delivery_id,
                            counts[job.delivery_id] + 1,
                            "redeliver" if job.redeliver else "schedule",
                            result.started_at,
                            result.duration_ms,
                            result.status_code,
                            SUCCEEDED if _succeeded(result) else FAILED,
                            result.error,
                            result.excerpt,
                        )
                        for job, result in wave
                    ],
                    10,
                ),
            )
        }
        recorded: list[tuple[Job, Result, bool]] = []
        updates: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        finished_tickets: list[uuid.UUID] = []
        for job, result in wave:
            if result.attempt_id not in inserted:
                continue
            number = counts[job.delivery_id] + 1
            succeeded = _succeeded(result)
            recorded.append((job, result, succeeded))
            values: dict[str, Any] = {
                "id": job.delivery_id,
                "attempt_count": number,
                "last_attempt_at": result.started_at,
                "last_status_code": result.status_code,
                "last_error": result.error,
            }
            owner = rows[job.delivery_id]["lease_token"] == job.token
            if owner:
                step = next_step(
                    status_code=result.status_code,
                    attempts_made=number,
                    now=now,
                    retry_after=result.retry_after,
                    schedule=self.config.schedule,
                    jitter=self.config.jitter,
                    u=self.rng.random(),
                    retry_after_cap=self.config.retry_after_cap,
                )
                retry = step.outcome is Outcome.RETRY
                values |= {
                    "status": PENDING
                    if retry
                    else (SUCCEEDED if step.outcome is Outcome.SUCCEEDED else FAILED),
                    "completed_at": None if retry else now,
                    "next_attempt_at": step.next_attempt_at if retry else None,
                }
                if step.outcome is Outcome.FAILED:
                    values["last_error"] = f"{result.error}; retries exhausted"
                elif step.outcome is Outcome.REDIRECTED:
                    values["last_error"] = f"{result.error}; not retried"
                if step.outcome is Outcome.GONE:
                    await self._disable(conn, job, now)
                if not retry and job.ticket_id is not None:
                    finished_tickets.append(job.delivery_id)
            updates[owner].append(values)
        if updates[True]:
            # The owner of the lease moves the delivery on (and gives the lease back).
            await conn.execute(
                delivery_queue.RECORD_OWNED,
                *_columns(
                    [
                        (
                            v["id"],
                            v["attempt_count"],
                            v["last_attempt_at"],
                            v["last_status_code"],
                            v["last_error"],
                            v["status"],
                            v["completed_at"],
                            v["next_attempt_at"],
                        )
                        for v in updates[True]
                    ],
                    8,
                ),
            )
        if updates[False]:
            # A send whose lease expired (another dispatcher owns it now) only counts.
            await conn.execute(
                delivery_queue.RECORD_COUNTED,
                *_columns(
                    [
                        (
                            v["id"],
                            v["attempt_count"],
                            v["last_attempt_at"],
                            v["last_status_code"],
                            v["last_error"],
                        )
                        for v in updates[False]
                    ],
                    5,
                ),
            )
        if finished_tickets:
            # The next delivery of these tickets (if one waits) may go now, perhaps from
            # another process: tell them, once.
            await conn.execute(delivery_queue.NOTIFY_NEXT_OF_TICKETS, finished_tickets)
        return recorded

    def _log_attempt(self, job: Job, result: Result, succeeded: bool, number: int) -> None:
        log = logger.info if succeeded else logger.warning
        log(
            "webhook attempt %s",
            "succeeded" if succeeded else "failed",
            extra={
                "worker": self.name,
                "delivery_id": str(job.delivery_id),
                "subscription_id": str(job.subscription_id),
                "host": _host(job.url),
                "attempt": number,
                "status_code": result.status_code,
                "error": result.error,
                "duration_ms": result.duration_ms,
            },
        )

    async def _disable(self, conn: asyncpg.Connection, job: Job, now: datetime) -> None:
        reason = (
            f"the receiver answered 410 Gone on {now.isoformat(timespec='seconds')} "
            f"(delivery {job.delivery_id})"
        )
        await conn.execute(delivery_queue.DISABLE, job.subscription_id, now, reason)
        logger.warning(
            "webhook subscription disabled: %s",
            reason,
            extra={"worker": self.name, "subscription_id": str(job.subscription_id)},
        )

    # ------------------------------------------------------------------------- listen

    async def _listen(self, stop: asyncio.Event) -> None:
        await listen(
            self.engine,
            OUTBOX_CHANNEL,
            wake=self._outbox_notified,
            stop=stop,
            listening=self.listening,
            name=self.name,
            health_interval=self.config.listener_health_interval,
            backoff_max=self.config.error_backoff_max,
            url=self.config.listen_url,
        )


def _targets(event_type: str, data: Any, subscriptions: Sequence[Any]) -> list[uuid.UUID]:
    """The subscriptions an event goes to: active ones listing its type or ``*``; an
    addressed event (webhook.ping) only to the one it names."""
    kind = CATALOGUE.get(event_type)
    if kind is not None and kind.addressed:
        named = data.get("subscription_id") if isinstance(data, dict) else None
        return [s.id for s in subscriptions if str(s.id) == named]
    return [
        s.id
        for s in subscriptions
        if s.active and (WILDCARD in s.event_types or event_type in s.event_types)
    ]


@dataclass(frozen=True)
class _Target:
    origin: Origin
    target: bytes  # path and query, as the request line carries them
    host_header: bytes


@lru_cache(maxsize=1024)
def _checked_target(url: str, allow_http: bool) -> _Target:
    """:func:`_target` of a URL that ``parse_target`` accepts now (it raises ValueError
    otherwise, every time: exceptions are not cached)."""
    parse_target(url, allow_http=allow_http)
    return _target(url)


@lru_cache(maxsize=1024)
def _target(url: str) -> _Target:
    """A subscription URL as the client wants it (parsed once per URL, not per send)."""
    parsed = httpx.URL(url)
    host = parsed.raw_host
    if b":" in host:  # an IPv6 literal
        host = b"[" + host + b"]"
    if parsed.port is not None and parsed.port != _DEFAULT_PORTS.get(parsed.raw_scheme):
        host += b":" + str(parsed.port).encode()
    scheme = parsed.scheme
    origin = Origin(
        scheme=scheme,
        host=parsed.raw_host.decode("ascii"),  # IDNA-encoded, as DNS and TLS want it
        port=parsed.port or _DEFAULT_PORTS[parsed.raw_scheme],
    )
    return _Target(origin=origin, target=parsed.raw_path, host_header=host)


@lru_cache(maxsize=1)
def _default_ssl_context() -> ssl.SSLContext:
    """The certificate authorities httpx trusts (certifi), no proxy or SSLKEYLOGFILE from
    the environment; built once (loading the bundle takes milliseconds)."""
    return httpx.create_ssl_context(trust_env=False)


_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_USER_AGENT = f"sladesk-webhooks/{__version__}".encode()


def _excerpt(reply: webhook_http.Answer) -> str | None:
    """The start of the answer, for the delivery log (compressed answers are not read)."""
    if reply.headers.get(b"content-encoding", b"identity").lower() not in (b"", b"identity"):
        return None
    if not reply.body:
        return None
    return reply.body[:EXCERPT_BYTES].decode("utf-8", errors="replace")


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column: the arrays that ``unnest`` turns back into rows."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


def _succeeded(result: Result) -> bool:
    return result.status_code is not None and 200 <= result.status_code <= 299


def _status_error(status: int, location: str | None) -> str | None:
    if 200 <= status <= 299:
        return None
    if 300 <= status <= 399:
        to = f" (Location: {location[:200]})" if location else ""
        return (
            f"HTTP {status}{to}: redirects are not followed, so the delivery failed without "
            "retries; update the subscription's URL, then redeliver"
        )
    if status == 410:
        return "HTTP 410 Gone: the subscription is disabled"
    return f"HTTP {status}"


async def run_dispatcher(engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """The loop registered in app.workers.runner."""
    await Dispatcher(engine, DispatcherConfig.from_settings(settings)).run(stop)


__all__ = ["Dispatcher", "DispatcherConfig", "Job", "Result", "message_body", "run_dispatcher"]
