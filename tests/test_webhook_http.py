"""app.services.webhook_http, the dispatcher's HTTP/1.1 client, against raw servers on
127.0.0.1: what it reads of an answer, when it reuses a connection, the checks it keeps
from netguard (the checked address, TLS host name verification)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from app.services.netguard import AddressRefused
from app.services.webhook_http import (
    BODY_LIMIT,
    Answer,
    ConnectError,
    Origin,
    RemoteProtocolError,
    WebhookClient,
    request_head,
)

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(serve: Serve, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(guarded, "127.0.0.1", 0, ssl=ssl_context)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


def client(**kwargs: object) -> WebhookClient:
    options: dict[str, object] = {
        "allow_private": True,
        "ssl_context": ssl.create_default_context(),
    }
    return WebhookClient(**(options | kwargs))  # type: ignore[arg-type]


async def post(c: WebhookClient, origin: Origin, body: bytes = b"{}") -> Answer:
    head = request_head(b"/hook?x=1", [(b"Host", b"h"), (b"Content-Length", b"%d" % len(body))])
    async with asyncio.timeout(5):
        return await c.post(origin, head, body, connect_timeout=2)


async def test_keep_alive_reuses_one_connection_and_reads_bodies() -> None:
    seen: list[tuple[bytes, bytes]] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        answers = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRetry-After: 7\r\n\r\nok",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        ]
        for answer in answers:
            seen.append(await read_request(reader))
            writer.write(answer)
            await writer.drain()
        await reader.read()

    async with server(serve) as port:
        c = client()
        origin = Origin("http", "127.0.0.1", port)
        first, second, third = [await post(c, origin, b'{"n":%d}' % i) for i in range(3)]
        await c.aclose()
    assert connections == 1
    assert (first.status, first.body, first.headers[b"retry-after"]) == (200, b"ok", b"7")
    assert (second.status, second.body) == (201, b"abcde")
    assert (third.status, third.body) == (204, b"")
    assert [body for _, body in seen] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert all(head.startswith(b"POST /hook?x=1 HTTP/1.1\r\n") for head, _ in seen)


async def test_close_long_and_unframed_answers_are_not_reused() -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        if connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na")
        elif connections == 2:
            big = b"x" * (BODY_LIMIT + 10)
            writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        else:
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
            writer.close()
            return
        await writer.drain()
        await reader.read()

    async with server(serve) as port:
        c = client()
        origin = Origin("http", "127.0.0.1", port)
        a = await post(c, origin)
        b = await post(c, origin)
        d = await post(c, origin)
        await c.aclose()
    assert connections == 3
    assert a.body == b"a" and b.status == 500 and len(b.body) <= BODY_LIMIT
    assert d.body == b"until the end"


async def test_a_kept_connection_the_receiver_closed_is_replaced() -> None:
    """The receiver closes an idle keep-alive connection (its own idle timeout, a
    restart): the next request goes on a new connection instead of failing."""
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        if connections == 1:
            return  # closes after answering, without saying so

        await reader.read()

    async with server(serve) as port:
        c = client()
        origin = Origin("http", "127.0.0.1", port)
        assert (await post(c, origin)).status == 204
        await asyncio.sleep(0.1)
        assert (await post(c, origin)).status == 204
        await c.aclose()
    assert connections == 2


async def test_failures_are_named() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    c = client()
    async with server(hang_up) as port:
        with pytest.raises(RemoteProtocolError, match="without sending a response"):
            await post(c, Origin("http", "127.0.0.1", port))
    async with server(garbage) as port:
        with pytest.raises(RemoteProtocolError, match="malformed status line"):
            await post(c, Origin("http", "127.0.0.1", port))
    with pytest.raises(ConnectError):
        await post(c, Origin("http", "127.0.0.1", port))  # closed now
    refusing = client(allow_private=False)
    with pytest.raises(AddressRefused, match="loopback"):
        await post(refusing, Origin("http", "localhost", port))


async def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
    localhost_cert: tuple[Path, Path],
) -> None:
    cert, key = localhost_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    seen: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        seen.append(head.split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
        await writer.drain()

    trusting = ssl.create_default_context(cafile=str(cert))
    async with server(serve, server_ctx) as port:
        c = client(ssl_context=trusting)
        assert (await post(c, Origin("https", "localhost", port))).status == 204
        with pytest.raises(ConnectError, match="IP address mismatch"):
            await post(c, Origin("https", "127.0.0.1", port))
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await post(client(), Origin("https", "localhost", port))
        with pytest.raises(AddressRefused, match="localhost resolves to a forbidden"):
            await post(
                client(allow_private=False, ssl_context=trusting),
                Origin("https", "localhost", port),
            )
    assert seen == [b"POST /hook?x=1 HTTP/1.1"]


async def test_idle_connections_past_their_expiry_are_closed() -> None:
    """A receiver no longer sent to does not keep a connection open for ever: an answer
    received later (from anyone) sweeps the expired ones."""
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                closed.set()  # the client closed its kept connection
                return
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with server(serve) as first, server(serve) as second:
        c = client(keepalive_expiry=0.2)
        await post(c, Origin("http", "127.0.0.1", first))
        await asyncio.sleep(0.3)
        assert not closed.is_set()
        await post(c, Origin("http", "127.0.0.1", second))
        async with asyncio.timeout(5):
            await closed.wait()
        await c.aclose()


async def test_bytes_past_an_answer_never_become_the_next_answer() -> None:
    """A receiver that sends more than its answer (a body after a 204, a second answer):
    the leftover must not be read as the answer to the next request on that connection,
    which would record another delivery's result (perhaps another organization's)."""
    requests = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        while True:
            await read_request(reader)
            requests += 1
            if requests == 1:
                stray = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n" + stray)
            else:
                writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nfail")
            await writer.drain()

    async def idle_408(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        # Later, while the connection is idle: a 408 (and the connection stays open).
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await read_request(reader)  # a second request here would have been answered by 408
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    c = client()
    async with server(serve) as port:
        origin = Origin("http", "127.0.0.1", port)
        assert (await post(c, origin)).status == 204
        # Every later request gets its own answer: the server's 500, never the stray 200.
        assert [(await post(c, origin)).status for _ in range(3)] == [500, 500, 500]
    async with server(idle_408) as port:
        origin = Origin("http", "127.0.0.1", port)
        assert (await post(c, origin)).status == 200
        await asyncio.sleep(0.2)
        # The idle connection holds the 408: it is dropped, and the request goes on a new
        # connection (whose server answers 200 first).
        assert (await post(c, origin)).status == 200
    await c.aclose()
