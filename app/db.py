"""Database access: the async engine, the request's unit of work, and the embedded server.

Rule 2 of DESIGN.md: a request is one unit of work. :func:`get_session` commits when the
handler returns and rolls back when it raises; nothing below the router commits.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.pagination import CURSOR_SECRET, cursor_key

logger = logging.getLogger("sladesk.db")

EMBEDDED_DATABASE = "sladesk"


def async_url(url: str) -> URL:
    """Accept ``postgres://``, ``postgresql://`` or ``postgresql+asyncpg://``; use asyncpg."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"not a PostgreSQL URL: {parsed.drivername}://…")


def make_engine(
    url: str | URL, settings: Settings, *, pooled: bool = True, **overrides: Any
) -> AsyncEngine:
    """An engine with an explicit pool and timeouts, so a sick database fails fast.

    ``pooled=False`` opens a connection per use: for code that runs each call in a new
    event loop (asyncpg connections belong to the loop that made them)."""
    target = async_url(url) if isinstance(url, str) else url
    options: dict[str, Any] = (
        {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout_seconds,
            "pool_pre_ping": True,
            "pool_recycle": 1800,
        }
        if pooled
        else {"poolclass": NullPool}
    )
    options |= {
        "connect_args": {
            "timeout": settings.db_connect_timeout_seconds,
            "server_settings": {
                "application_name": "sladesk",
                "statement_timeout": str(settings.db_statement_timeout_ms),
                "timezone": "UTC",
            },
        },
    }
    # Statement parameters are customer text: they must not reach logs with an error.
    options.setdefault("hide_parameters", True)
    options.update(overrides)
    return create_async_engine(target, **options)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


async def server_secret(engine: AsyncEngine, name: str) -> bytes:
    """The named secret of ``server_secrets``, made (random) by the first process that asks;
    its own transaction, so that a read-only unit of work can still have it."""
    candidate = secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO server_secrets (name, value) VALUES (:name, :value) "
                "ON CONFLICT (name) DO NOTHING"
            ),
            {"name": name, "value": candidate},
        )
        value = (
            await conn.execute(
                text("SELECT value FROM server_secrets WHERE name = :name"), {"name": name}
            )
        ).scalar_one()
    return str(value).encode()


async def _cursor_key(request: Request) -> bytes:
    key: bytes | None = getattr(request.app.state, "cursor_key", None)
    if key is None:
        key = await server_secret(request.app.state.engine, CURSOR_SECRET)
        request.app.state.cursor_key = key
    return key


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The unit of work of one request: commit on return, roll back on error. It also
    makes the cursor signing key current for the request (app.pagination)."""
    cursor_key.set(await _cursor_key(request))
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit happens before the response is sent, so a client never
# sees a 2xx for a change that then failed to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


class DataDirLocked(RuntimeError):
    """Another sladesk process already serves this data directory."""


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL (from the ``pgserver`` package) living in the data directory.

    One sladesk process owns a data directory at a time: an exclusive lock file says so,
    and a second process gets :class:`DataDirLocked` instead of sharing the server.
    """

    data_dir: Path
    _lock_file: IO[str] | None = None
    _server: Any = None

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir / "sladesk.lock"
        lock_file = lock_path.open("a+")
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            owner = lock_file.read().strip() or "another process"
            lock_file.close()
            raise DataDirLocked(
                f"the data directory {self.data_dir.resolve()} is in use by sladesk "
                f"(pid {owner}); stop it first or set SLADESK_DATA_DIR"
            ) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(str(os.getpid()))
        lock_file.flush()
        self._lock_file = lock_file

        import pgserver  # imported lazily: only the embedded mode needs it

        # pgserver stops the server when its last registered user exits; a sladesk that was
        # killed stays registered forever. We hold the lock, so we are the only user.
        (self.data_dir / "pg" / ".handle_pids.json").unlink(missing_ok=True)
        get_server = pgserver.get_server  # type: ignore[attr-defined]
        self._server = get_server(self.data_dir / "pg", cleanup_mode="stop")
        uri: str = self._server.get_uri()
        exists = self._server.psql(
            f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';"
        )
        if "1 row" not in exists:
            self._server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
        url = make_url(uri).set(database=EMBEDDED_DATABASE)
        return url.render_as_string(hide_password=False)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
