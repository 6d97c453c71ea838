"""Where webhooks may connect (SSRF protection), enforced at the moment of connecting.

A URL is checked when a subscription is saved, and again on every connection: the
HTTP client's network backend resolves the host itself, refuses the connection if *any*
address it resolves to is forbidden (app.domain.webhooks.address_refusal), and connects
to the address it checked — so DNS that changes between the check and the connection
(rebinding) gains nothing. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing

import httpcore
import httpx

from app.domain.webhooks import IPAddress, address_refusal


class AddressRefused(Exception):
    """The destination resolves to an address webhooks may not reach (``ip``, if one)."""

    def __init__(self, reason: str, ip: IPAddress | None = None) -> None:
        super().__init__(reason)
        self.ip = ip


class ResolutionFailed(Exception):
    """The host name does not resolve."""


async def resolve(host: str, port: int, limit: float) -> list[IPAddress]:
    """Every address of ``host`` (literal addresses resolve to themselves), in the
    resolver's order of preference."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(limit):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise ResolutionFailed(f"resolving {host} timed out") from None
    except (OSError, UnicodeError) as exc:
        raise ResolutionFailed(f"{host} does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise ResolutionFailed(f"{host} does not resolve")
    return addresses


async def checked_addresses(
    host: str, port: int, *, allow_private: bool, limit: float
) -> list[IPAddress]:
    """The addresses of ``host`` if every one of them is allowed; else AddressRefused."""
    addresses = await resolve(host, port, limit)
    for ip in addresses:
        reason = address_refusal(ip, allow_private=allow_private)
        if reason is not None:
            if host != str(ip):
                reason = f"{host} resolves to a forbidden address: {reason}"
            raise AddressRefused(reason, ip)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that checks every address before connecting to it."""

    def __init__(self, *, allow_private: bool, resolve_timeout: float = 10.0) -> None:
        self.allow_private = allow_private
        self.resolve_timeout = resolve_timeout
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await checked_addresses(
                host,
                port,
                allow_private=self.allow_private,
                limit=min(timeout or self.resolve_timeout, self.resolve_timeout),
            )
        except ResolutionFailed as exc:
            raise httpcore.ConnectError(str(exc)) from None
        error: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("webhooks do not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def guarded_pool(
    *,
    allow_private: bool,
    max_connections: int,
    ssl_context: ssl.SSLContext | None = None,
) -> httpcore.AsyncConnectionPool:
    """An HTTP/1.1 connection pool on a :class:`GuardedBackend`: no proxies from the
    environment (they would connect on our behalf, unchecked), no HTTP/2 (a plain,
    predictable request per delivery). The dispatcher sends through it directly."""
    return httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
        http1=True,
        http2=False,
        network_backend=GuardedBackend(allow_private=allow_private),
    )


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on :func:`guarded_pool`."""

    def __init__(
        self,
        *,
        allow_private: bool,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool in __init__ without a way to pass a network backend; the
        # pool is replaced by the same one on the guarded backend.
        self._pool = guarded_pool(
            allow_private=allow_private, max_connections=max_connections, ssl_context=ssl_context
        )
