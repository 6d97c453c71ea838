"""A real webhook receiver on 127.0.0.1 and helpers to run dispatchers in tests.

The receiver is a few lines of asyncio: HTTP/1.1, one request per connection, every
request recorded when it arrives (before any answer), answers chosen per request by a
handler the test sets. Stopping it closes the port (connection refused) until started
again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_sessionmaker
from app.services.outbox import emit
from app.workers.dispatcher import Dispatcher, DispatcherConfig

REASONS = {200: "OK", 204: "No Content", 302: "Found", 410: "Gone", 429: "Too Many Requests"}


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"


Handler = Callable[[Received], Awaitable[Reply] | Reply]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.handler: Handler | None = None
        self.port = 0
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            self.changed.set()
            path = request.path
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), self.in_flight[path])
            try:
                reply = Reply()
                if self.handler is not None:
                    answer = self.handler(request)
                    reply = await answer if not isinstance(answer, Reply) else answer
            finally:
                self.in_flight[path] -= 1
            head = f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Status')}\r\n"
            headers = {"content-length": str(len(reply.body)), "connection": "close"}
            headers |= reply.headers
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(head.encode() + reply.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> Received | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode().split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, value = raw.decode().split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Received(method, path, headers, body)


# ------------------------------------------------------------------------ dispatchers

FAST_SCHEDULE = tuple(timedelta(seconds=s) for s in (0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0))


def config(**overrides: Any) -> DispatcherConfig:
    """Tiny delays; the safety re-check is long, so wake-ups must come from NOTIFY."""
    base: dict[str, Any] = {
        "allow_private": True,
        "allow_http": True,
        "timeout": 5.0,
        "connect_timeout": 2.0,
        "schedule": FAST_SCHEDULE,
        "lease_margin": 2.0,
        "safety_recheck": 30.0,
        "gap_poll": 0.02,
        "gap_max_wait": 10.0,
        "error_backoff_max": 0.2,
        "listener_health_interval": 1.0,
    }
    return DispatcherConfig(**(base | overrides))


@contextlib.asynccontextmanager
async def running(dispatcher: Dispatcher) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        yield task
    finally:
        stop.set()
        if not task.done():
            try:
                async with asyncio.timeout(10):
                    await task
            except TimeoutError:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    *,
    within: float = 15.0,
    what: str = "condition",
    tolerate: tuple[type[Exception], ...] = (),
) -> None:
    """Poll ``check`` (every 20 ms) until true; fail after ``within`` seconds. Errors of the
    ``tolerate`` types count as "not yet" (e.g. the test's own query hit by a kill)."""
    async with asyncio.timeout(within):
        while True:
            try:
                value = check()
                if not isinstance(value, bool):
                    value = await value
            except tolerate:
                value = False
            if value:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"{what} never became true")  # pragma: no cover


async def emit_events(
    engine: AsyncEngine,
    events: list[tuple[str, uuid.UUID | None, dict[str, Any]]],
) -> list[uuid.UUID]:
    """Emit each event in its own committed transaction; their ids, in order."""
    ids = []
    sessionmaker = make_sessionmaker(engine)
    for type_, ticket_id, data in events:
        async with sessionmaker() as session, session.begin():
            event = await emit(
                session, type_, occurred_at=datetime.now(UTC), data=data, ticket_id=ticket_id
            )
            ids.append(event.id)
    return ids


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def all_settled(engine: AsyncEngine, expected: int) -> bool:
    """``expected`` deliveries exist and none is pending."""
    counts = dict(
        await rows(engine, "SELECT status, count(*) FROM webhook_deliveries GROUP BY status")
    )
    return sum(counts.values()) == expected and counts.get("pending", 0) == 0


def msg_id(event_id: uuid.UUID) -> str:
    return f"msg_{event_id.hex}"
