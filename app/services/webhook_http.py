"""The HTTP/1.1 client the webhook dispatcher sends with: one POST, one answer.

Why not httpcore (what httpx uses): under a burst the dispatcher keeps 64 requests in
flight, and httpcore's pool re-examines every queued request against every connection on
each request and answer, on top of its anyio and h11 layers — 2.2 ms of CPU per request
at 64 in flight on the burst bench's machine, more than everything else a delivery cost.
This client does what a delivery needs and nothing else: asyncio streams, keep-alive
connections reused per origin (scheme, host, port), the request written in one piece,
the answer's status, headers and the start of its body.

What it keeps from netguard's guarded pool: every *new* connection resolves the host
itself, is refused if any address is forbidden (app.services.netguard), and connects to
an address it checked; TLS verifies the certificate against the host name. No proxies,
no HTTP/2, no redirects (the caller never follows them).

A connection is reused only when the answer was read to its end (a length the receiver
stated, or a chunked body, within ``BODY_LIMIT``) and neither side asked to close it; an
idle connection that the receiver closed meanwhile is dropped when next picked, and a
request whose reused connection fails before the first byte of an answer is sent once
more on a new connection (the receiver may have closed it while we wrote; deliveries are
at-least-once with a stable ``webhook-id``, so a repeat is harmless).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.services.netguard import ResolutionFailed, checked_addresses

BODY_LIMIT = 64 * 1024  # read at most this much of an answer; a longer one closes
HEAD_LIMIT = 64 * 1024  # status line and headers
_NO_BODY = frozenset({204, 304})


class HttpError(Exception):
    """A transport failure; ``name`` is the word the delivery log uses for it (the
    names operators know from httpx)."""

    name = "HttpError"


class ConnectError(HttpError):
    name = "ConnectError"


class ReadError(HttpError):
    name = "ReadError"


class WriteError(HttpError):
    name = "WriteError"


class RemoteProtocolError(HttpError):
    name = "RemoteProtocolError"


@dataclass(frozen=True)
class Origin:
    scheme: str  # "http" or "https"
    host: str  # as TLS verifies it and netguard resolves it (no brackets)
    port: int


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]  # names lower-cased; a repeated header keeps its last
    body: bytes  # at most BODY_LIMIT bytes of it


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = field(default=0.0)

    def usable(self, now: float, expiry: float) -> bool:
        # Bytes that arrived while it was idle (a 408 before a close, a stray answer) would
        # be read as the next request's answer: such a connection is never reused.
        return (
            now - self.idle_since < expiry
            and not self.writer.is_closing()
            and not self.reader.at_eof()
            and not _buffered(self.reader)
        )

    def close(self) -> None:
        self.writer.close()


class _Reused(Exception):
    """A reused connection failed before any byte of the answer (see the module doc)."""


class WebhookClient:
    """Keep-alive connections by origin; ``post`` sends one request on one of them."""

    def __init__(
        self,
        *,
        allow_private: bool,
        ssl_context: ssl.SSLContext,
        max_idle: int = 64,
        keepalive_expiry: float = 5.0,
        resolve_timeout: float = 10.0,
    ) -> None:
        self.allow_private = allow_private
        self.ssl_context = ssl_context
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        self.resolve_timeout = resolve_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._idle_count = 0
        self._swept = time.monotonic()

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for conn in connections:
                conn.close()
        self._idle.clear()
        self._idle_count = 0

    async def post(
        self,
        origin: Origin,
        head: bytes,
        body: bytes,
        *,
        connect_timeout: float,
    ) -> Answer:
        """Send ``head`` (request line and headers, ending with the blank line) and
        ``body``; the answer. Raises HttpError subclasses, AddressRefused, TimeoutError
        (connecting); the caller bounds the whole exchange with its own timeout."""
        conn = self._take(origin)
        if conn is not None:
            try:
                return await self._exchange(origin, conn, head, body, reused=True)
            except _Reused:
                pass
        conn = await self._connect(origin, connect_timeout)
        return await self._exchange(origin, conn, head, body, reused=False)

    # ------------------------------------------------------------------ connections

    def _take(self, origin: Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        now = time.monotonic()
        while connections:
            conn = connections.pop()  # the most recently used: the least likely closed
            self._idle_count -= 1
            if conn.usable(now, self.keepalive_expiry):
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Connection) -> None:
        now = time.monotonic()
        if now - self._swept >= self.keepalive_expiry:
            self._sweep(now)
        if self._idle_count >= self.max_idle:
            conn.close()
            return
        conn.idle_since = now
        self._idle.setdefault(origin, []).append(conn)
        self._idle_count += 1

    def _sweep(self, now: float) -> None:
        """Close the idle connections past their expiry (those of a receiver no longer
        sent to would otherwise stay open until the dispatcher stops)."""
        self._swept = now
        for origin, connections in list(self._idle.items()):
            kept = [c for c in connections if c.usable(now, self.keepalive_expiry)]
            for c in connections:
                if c not in kept:
                    c.close()
            self._idle_count -= len(connections) - len(kept)
            if kept:
                self._idle[origin] = kept
            else:
                del self._idle[origin]

    async def _connect(self, origin: Origin, timeout: float) -> _Connection:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            try:
                addresses = await checked_addresses(
                    origin.host,
                    origin.port,
                    allow_private=self.allow_private,
                    limit=min(timeout, self.resolve_timeout),
                )
            except ResolutionFailed as exc:
                raise ConnectError(str(exc)) from None
            tls = origin.scheme == "https"
            error: Exception | None = None
            for ip in addresses:
                try:
                    reader, writer = await asyncio.open_connection(
                        str(ip),
                        origin.port,
                        ssl=self.ssl_context if tls else None,
                        server_hostname=origin.host if tls else None,
                        limit=HEAD_LIMIT,
                    )
                except (OSError, ssl.SSLError) as exc:  # SSLError is an OSError; kept clear
                    error = exc
                    continue
                return _Connection(reader, writer)
            assert error is not None
            raise ConnectError(str(error) or type(error).__name__) from None

    # --------------------------------------------------------------------- exchange

    async def _exchange(
        self, origin: Origin, conn: _Connection, head: bytes, body: bytes, *, reused: bool
    ) -> Answer:
        keep = False
        try:
            try:
                conn.writer.write(head + body)
                await conn.writer.drain()
            except OSError as exc:
                if reused:
                    raise _Reused from None
                raise WriteError(str(exc) or type(exc).__name__) from None
            try:
                answer, keep = await _read_answer(conn.reader)
            except _NothingYet as nothing:
                if reused:
                    raise _Reused from None
                raise nothing.error from None
            return answer
        finally:
            if keep:
                self._give_back(origin, conn)
            else:
                conn.close()


class _NothingYet(Exception):
    """The connection ended (or failed) before the first byte of an answer."""

    def __init__(self, error: HttpError) -> None:
        super().__init__(str(error))
        self.error = error


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    """The final answer (informational 1xx answers skipped) and whether the connection
    may carry another request."""
    first = True
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if first and not exc.partial:
                raise _NothingYet(
                    RemoteProtocolError("Server disconnected without sending a response.")
                ) from None
            raise RemoteProtocolError("the server closed the connection mid-answer") from None
        except asyncio.LimitOverrunError:
            raise RemoteProtocolError("the answer's headers are too long") from None
        except OSError as exc:
            error = ReadError(str(exc) or type(exc).__name__)
            if first:
                raise _NothingYet(error) from None
            raise error from None
        first = False
        version, status, headers = _parse_head(head)
        if 100 <= status <= 199:
            if status == 101:
                raise RemoteProtocolError("the server switched protocols")
            continue  # e.g. 100 Continue: the real answer follows
        break
    keep = version == b"HTTP/1.1" and b"close" not in headers.get(b"connection", b"").lower()
    try:
        body, complete = await _read_body(reader, status, headers)
    except asyncio.IncompleteReadError:
        raise RemoteProtocolError("the server closed the connection mid-answer") from None
    except (asyncio.LimitOverrunError, ValueError):
        raise RemoteProtocolError("malformed chunked body") from None
    except OSError as exc:
        raise ReadError(str(exc) or type(exc).__name__) from None
    # Anything the receiver sent past the end of this answer (a body after a 204, a
    # Content-Length shorter than the body, a second answer) would become the answer of
    # the next request on this connection — another delivery's, perhaps another
    # organization's: a connection with bytes left over is closed, never reused.
    return Answer(status, headers, body), keep and complete and not _buffered(reader)


def _buffered(reader: asyncio.StreamReader) -> bool:
    """Whether the reader holds bytes nobody has read yet (asyncio keeps them in
    ``_buffer``; there is no public accessor)."""
    return bool(getattr(reader, "_buffer", b""))


def _parse_head(head: bytes) -> tuple[bytes, int, dict[bytes, bytes]]:
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
    status = int(parts[1])
    if not 100 <= status <= 999:
        raise RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise RemoteProtocolError(f"malformed header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return parts[0], status, headers


async def _read_body(
    reader: asyncio.StreamReader, status: int, headers: dict[bytes, bytes]
) -> tuple[bytes, bool]:
    """(the body, up to BODY_LIMIT; whether it was read to its end)."""
    if status in _NO_BODY:
        # Such an answer has no body; one that announces one anyway is not trusted to
        # have ended where it should.
        framed = b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"
        return b"", not framed
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return await _read_chunked(reader)
    length = headers.get(b"content-length")
    if length is not None:
        if not length.isdigit():
            raise RemoteProtocolError("malformed Content-Length")
        n = int(length)
        if n <= BODY_LIMIT:
            return await reader.readexactly(n), True
        return await reader.read(BODY_LIMIT), False
    # Neither: the body ends when the connection does.
    chunks = bytearray()
    while len(chunks) < BODY_LIMIT:
        chunk = await reader.read(BODY_LIMIT - len(chunks))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks), False


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    chunks = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)  # ValueError: malformed
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(chunks), True
        if len(chunks) + size > BODY_LIMIT:
            chunks += await reader.read(BODY_LIMIT - len(chunks))
            return bytes(chunks), False
        chunks += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise ValueError("chunk without its CRLF")


def request_head(target: bytes, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """``POST target HTTP/1.1`` and the header lines, up to the blank line."""
    lines = [b"POST " + target + b" HTTP/1.1"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


__all__ = [
    "Answer",
    "ConnectError",
    "HttpError",
    "Origin",
    "ReadError",
    "RemoteProtocolError",
    "WebhookClient",
    "WriteError",
    "request_head",
]
