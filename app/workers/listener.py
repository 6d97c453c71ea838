"""A LISTEN connection that survives: the wake-up line of the background loops.

Both loops sleep until their next known instant *or* until PostgreSQL tells them that
something changed (``NOTIFY``, delivered at commit). The notification is only a hint: a
loop that is woken re-reads its queue, and a loop whose LISTEN connection died may have
missed hints, so every (re)connect wakes it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from app import dburl
from app.config import Settings

logger = logging.getLogger("sladesk.workers")


async def listen(
    engine: AsyncEngine,
    channel: str,
    *,
    wake: Callable[[], None],
    stop: asyncio.Event,
    listening: asyncio.Event,
    name: str,
    health_interval: float = 15.0,
    backoff_max: float = 5.0,
    url: str | None = None,
    notify: Callable[[str], object] | None = None,
) -> None:
    """LISTEN on ``channel`` on a dedicated connection until ``stop``; call ``wake`` on
    every notification and every (re)connect; reconnect with backoff when it dies.
    ``listening`` is set while the connection is up (tests wait for it).

    The connection is made to ``url`` when given (SLADESK_LISTEN_DATABASE_URL), else to
    the engine's database: a transaction pooler would hand LISTEN a server connection
    that other clients' transactions then use, and notifications would be lost.

    With ``notify``, a notification calls it with its payload instead of ``wake`` (which
    then means only "notifications may have been missed")."""
    dsn = dburl.dsn(url) if url is not None else dburl.dsn(engine.url)
    backoff = 0.1
    while not stop.is_set():
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(
                dsn, timeout=10, server_settings={"application_name": f"sladesk-{name}-listen"}
            )
            lost = asyncio.Event()
            conn.add_termination_listener(_setter(lost))
            await conn.add_listener(channel, _handler(wake, notify))
            listening.set()
            wake()  # notifications may have been missed while away
            backoff = 0.1
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), timeout=health_interval)
                except TimeoutError:
                    # A silently dead connection (no FIN) is only found by using it.
                    await conn.fetchval("SELECT 1", timeout=5)
            logger.info("LISTEN connection lost", extra={"worker": name})
        except Exception as exc:
            logger.info("LISTEN connection failed: %s", type(exc).__name__, extra={"worker": name})
        finally:
            listening.clear()
            if conn is not None and not conn.is_closed():
                conn.terminate()
        wake()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=backoff)
        backoff = min(backoff * 2, backoff_max)


def listen_url_of(settings: Settings) -> str | None:
    """The URL the LISTEN connections use, if not the engine's own."""
    chosen = settings.listen_database_url
    return chosen.get_secret_value() if chosen is not None else None


def check_listen_url(settings: Settings) -> None:
    """Behind a transaction pooler, LISTEN needs a direct connection: refuse to run the
    workers without one rather than lose every wake-up silently."""
    if settings.db_transaction_pooling and settings.listen_database_url is None:
        raise ValueError(
            "SLADESK_DB_TRANSACTION_POOLING is on: set SLADESK_LISTEN_DATABASE_URL to a direct "
            "PostgreSQL URL for the workers' LISTEN connections (or run the workers with a "
            "direct SLADESK_DATABASE_URL)"
        )


def _handler(
    wake: Callable[[], None], notify: Callable[[str], object] | None
) -> Callable[[object, int, str, str], object]:
    if notify is None:
        return lambda *_args: wake()
    return lambda _conn, _pid, _channel, payload: notify(payload)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _connection: event.set()
