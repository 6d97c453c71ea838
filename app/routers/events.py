"""/v1/events: live updates as Server-Sent Events, and the stream tokens browsers use."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from pydantic import Field
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.config import Settings
from app.db import SessionDep
from app.errors import TooManyRequests
from app.events import CATALOGUE
from app.schemas.common import problems
from app.schemas.events import StreamTokenRead
from app.security import AnyKey, StreamKey
from app.services import event_stream
from app.workers.stream_hub import HubRegistry, TooManyStreams

# What a client may send (the catalogue decides what is known: an unknown type is a 422).
EVENT_TYPE_PATTERN = r"^(\*|[a-z_]{1,40}(\.[a-z_]{1,40}){1,3})$"
EVENT_ID_PATTERN = r"^[0-9]{1,19}$"

router = APIRouter(prefix="/v1/events", tags=["events"])

EVENT_STREAM = "text/event-stream"

_EXAMPLE = (
    "retry: 2000\n: connected\n\n"
    "id: 18734\nevent: sla.warning\n"
    'data: {"type":"sla.warning","timestamp":"2026-03-09T09:00:00Z","data":{"ticket":{…},'
    '"sla":[…],"threshold":{…},"actor":{"role":"system"}}}\n\n'
    ": heartbeat\n\n"
)


class EventStreamResponse(StreamingResponse):
    """An SSE response that starts (status and headers: a browser's `open`) only with
    its first chunk — the stream knows its position then, so whatever commits after
    `open` is on it —, notices a client going away whatever the server's ASGI version
    (a quiet stream would not otherwise learn it before its next write), and always
    runs ``on_close``, also when the stream never started."""

    media_type = EVENT_STREAM

    def __init__(
        self, content: AsyncIterator[bytes], *, on_close: Callable[[], Awaitable[None]]
    ) -> None:
        # no-cache: never stored; X-Accel-Buffering: a proxy (nginx) must not buffer it.
        super().__init__(content, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def stream_response(self, send: Send) -> None:
        chunks = aiter(self.body_iterator)
        first = await anext(chunks, None)
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if first is not None:
            await send({"type": "http.response.body", "body": _bytes(first), "more_body": True})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": _bytes(chunk), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                iterator = self.body_iterator
                if hasattr(iterator, "aclose"):
                    await iterator.aclose()
                await self._on_close()


def _bytes(chunk: str | bytes | memoryview) -> bytes:
    return chunk.encode() if isinstance(chunk, str) else bytes(chunk)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


# One server-sent event (the stream's schema describes each event, as OpenAPI 3.2 and SSE
# clients read it): its id (the outbox sequence number), type and JSON data, the webhook
# body. The first message carries only the position (`id`) and the reconnection delay.
_EVENT_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": r"^[0-9]{1,19}$"},
        "event": {"type": "string", "examples": ["sla.warning"]},
        "retry": {"type": "integer", "minimum": 0},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "required": ["type", "timestamp", "data"],
                "properties": {
                    "type": {"type": "string"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "data": {"type": "object"},
                },
            },
        },
    },
}


@router.post(
    "/stream-tokens",
    status_code=201,
    response_model=StreamTokenRead,
    summary="Create a stream token (for EventSource)",
)
async def create_stream_token(
    request: Request, session: SessionDep, principal: AnyKey
) -> StreamTokenRead:
    """A short-lived token that opens `GET /v1/events/stream` for this key, for clients
    that cannot send an `Authorization` header (a browser's `EventSource`): it rides in
    the URL (`?access_token=…`), opens nothing else, may open streams until `expires_at`
    (`SLADESK_STREAM_TOKEN_TTL_SECONDS`, default 60), is never logged, and stops working
    when its key is revoked. Streams opened with it see what the key sees."""
    ttl = _settings(request).stream_token_ttl_seconds
    token, expires_at = await event_stream.create_token(
        session, principal, now=datetime.now(UTC), ttl_seconds=ttl
    )
    return StreamTokenRead(
        token=token, expires_at=expires_at, url=f"/v1/events/stream?access_token={token}"
    )


@router.get(
    "/stream",
    status_code=200,
    summary="Live updates (Server-Sent Events)",
    response_class=EventStreamResponse,
    response_model=None,
    responses={
        200: {
            "description": "Server-Sent Events until the stream's maximum duration",
            "content": {EVENT_STREAM: {"schema": _EVENT_SCHEMA, "example": _EXAMPLE}},
        },
        **problems(404, 429),
    },
)
async def stream(
    request: Request,
    session: SessionDep,
    principal: StreamKey,
    types: Annotated[
        list[Annotated[str, Field(pattern=EVENT_TYPE_PATTERN)]] | None,
        Query(
            max_length=len(CATALOGUE) + 1,
            description="only these event types (repeat the parameter); default: every "
            "type the key may receive",
        ),
    ] = None,
    ticket_id: Annotated[uuid.UUID | None, Query(description="only this ticket's events")] = None,
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=20,
            description="resume after this event (EventSource sends it when it reconnects)",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            max_length=20,
            pattern=EVENT_ID_PATTERN,
            description="resume after this event (a new EventSource)",
        ),
    ] = None,
) -> EventStreamResponse:
    """Live updates: the webhook catalogue's events, in the same payload shapes, as
    Server-Sent Events (`id`: the event's sequence number, `event`: its type, `data`:
    the webhook body). Staff keys receive every event; a customer key its own
    organization's events that its timeline shows (not the desk's SLA alarms), actors
    shown as on its timeline. Without `Last-Event-ID` the stream starts now; with it, it
    resumes right after that event, from the outbox, with nothing lost or repeated —
    also on another replica. An idle stream gets a `: heartbeat` comment every
    `SLADESK_STREAM_HEARTBEAT_SECONDS`; each stream ends after
    `SLADESK_STREAM_MAX_SECONDS` (EventSource reconnects by itself with `Last-Event-ID`).
    Authenticate with the `Authorization` header, or `access_token` (a stream token).
    429: the key has `SLADESK_STREAM_MAX_PER_KEY` streams open already."""
    settings = _settings(request)
    scope = event_stream.scope_of(principal, types, ticket_id)
    if ticket_id is not None:
        await event_stream.check_ticket(session, principal, ticket_id)
    after = event_stream.last_event_id(last_event_id_header, last_event_id)
    registry: HubRegistry = request.app.state.stream_hubs
    try:
        hub, subscription = await registry.subscribe(principal.key_id, settings.stream_max_per_key)
    except TooManyStreams as exc:
        raise TooManyRequests(
            f"This key has {exc.open_streams} event streams open, the most it may; close one "
            "(or use one stream with filters) and retry.",
            retry_after=max(1, round(settings.stream_heartbeat_seconds)),
        ) from None
    body = event_stream.events(
        hub,
        subscription,
        scope,
        customer=principal.is_customer,
        after=after,
        max_seconds=settings.stream_max_seconds,
        heartbeat=settings.stream_heartbeat_seconds,
    )
    return EventStreamResponse(body, on_close=lambda: registry.unsubscribe(hub, subscription))
