"""A real server and a real Server-Sent Events client for the stream tests.

`serving(app)` runs the app under uvicorn (the `sladesk serve` server class) on an
ephemeral port of 127.0.0.1, with its lifespan (and so its workers, if the settings run
them). `SseClient` reads a stream over real HTTP with httpx, parsing the SSE wire format
as a browser does, in a task, into `messages` — cancelling it drops the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from app.server import Server
from tests.webhook_harness import eventually


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[tuple[str, Server]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    # As `sladesk serve`: uvicorn's own access line (with query strings) is off.
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10
    )
    server = Server(config, app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done(), what="the server started")
        assert server.started, "the server did not start"
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=30)
        sock.close()


@dataclass
class Message:
    id: int | None
    event: str | None
    data: dict[str, Any]
    received_at: datetime  # wall clock at receipt


@dataclass
class SseClient:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    status: int | None = None
    problem: dict[str, Any] | None = None
    ended: bool = False  # the server ended the stream
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseClient:
        self._task = asyncio.create_task(self._read())
        await eventually(
            lambda: self.opened.is_set() or (self._task is not None and self._task.done()),
            within=30,
            what="the stream answered",
        )
        if self._task.done() and self._task.exception() is not None:
            raise self._task.exception()  # type: ignore[misc]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drop()

    async def drop(self) -> None:
        """Close the connection from the client's side (as a network failure would)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_ended(self, within: float = 30) -> None:
        assert self._task is not None
        await asyncio.wait_for(asyncio.shield(self._task), within)

    def of_type(self, event_type: str) -> list[Message]:
        return [m for m in self.messages if m.event == event_type]

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.messages if m.id is not None]

    async def _read(self) -> None:
        timeout = httpx.Timeout(10.0, read=None)
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("GET", self.url, headers=self.headers) as response,
        ):
            self.status = response.status_code
            if response.status_code != 200:
                self.problem = json.loads(await response.aread())
                self.opened.set()
                return
            self.opened.set()
            fields: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line == "":
                    self._dispatch(fields)
                    fields = {}
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data" and "data" in fields:
                        fields["data"] += "\n" + value
                    else:
                        fields[name] = value
            self.ended = True

    def _dispatch(self, fields: dict[str, str]) -> None:
        if "retry" in fields:
            self.retry = int(fields["retry"])
        if "data" not in fields:
            return
        self.messages.append(
            Message(
                id=int(fields["id"]) if fields.get("id") else None,
                event=fields.get("event"),
                data=json.loads(fields["data"]),
                received_at=datetime.now(UTC),
            )
        )
