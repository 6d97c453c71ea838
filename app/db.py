"""Database access: the async engine, the request's unit of work, and the embedded server.

Rule 2 of DESIGN.md: a request is one unit of work. :func:`get_session` commits when the
handler returns and rolls back when it raises; nothing below the router commits.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import event, exc, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_

from app import dburl
from app.config import Settings
from app.errors import LOST_AT_COMMIT, DatabaseConnectionLost, connection_lost
from app.pagination import CURSOR_SECRET, cursor_key

logger = logging.getLogger("sladesk.db")

EMBEDDED_DATABASE = "sladesk"

F = TypeVar("F", bound=Callable[..., Any])


def async_url(url: str) -> URL:
    """Accept ``postgres://``, ``postgresql://`` or ``postgresql+asyncpg://``; use asyncpg.
    Raises ValueError (one line) for anything else (see app.dburl)."""
    return dburl.parse(url)


def server_settings(settings: Settings) -> dict[str, str]:
    """Session settings sent when connecting. A transaction pooler (PgBouncer) refuses
    startup parameters it cannot track, such as ``statement_timeout``: behind one, set
    the timeout on the role instead (README, "Running at scale").

    ``jit`` is off (behind a pooler, on the role too): every statement of this service
    is short, and on a large table the planner's cost estimate of a search can cross
    ``jit_above_cost`` and spend tens of milliseconds compiling a query that runs in a
    few."""
    values = {"application_name": "sladesk", "timezone": "UTC"}
    if not settings.db_transaction_pooling:
        values["statement_timeout"] = str(settings.db_statement_timeout_ms)
        values["jit"] = "off"
    return values


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
            # Behind a transaction pooler the client socket says nothing about the server
            # connection: ping every checkout there (_check_on_checkout does it otherwise).
            "pool_pre_ping": settings.db_transaction_pooling,
            "pool_recycle": 1800,
        }
        if pooled
        else {"poolclass": NullPool}
    )
    connect_args: dict[str, Any] = {"timeout": settings.db_connect_timeout_seconds}
    if settings.db_transaction_pooling:
        # A transaction pooler hands each transaction any server connection: no statement
        # may outlive its transaction under a name another client could reuse.
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
        }
    options["connect_args"] = connect_args
    # Read by code that talks to asyncpg directly (app.workers.delivery_queue).
    options["execution_options"] = {"sladesk_transaction_pooling": settings.db_transaction_pooling}
    # Statement parameters are customer text: they must not reach logs with an error.
    options.setdefault("hide_parameters", True)
    options.update(overrides)
    engine = create_async_engine(target, **options)
    _connect_with_dsn(engine, target, server_settings(settings))
    if pooled and not options.get("pool_pre_ping"):
        _check_on_checkout(engine)
    return engine


def _check_on_checkout(engine: AsyncEngine) -> None:
    """A cheaper pre-ping. SQLAlchemy's pings every checkout with three round trips
    (BEGIN, a statement, ROLLBACK, for the sake of transaction poolers); this one asks
    with one statement outside a transaction, after a look at the socket (a connection
    whose server closed it is refused without a round trip). A dead connection is
    replaced before the request uses it (DisconnectionError: the pool retries with a
    new one).

    Every checkout is asked, even one returned a moment ago: a server that ends a
    connection (a restart, pg_terminate_backend) sends its FATAL before it closes the
    socket, and a connection handed out in between fails its request (asyncpg: "another
    operation is in progress") instead of being replaced."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if driver.is_closed():
            raise exc.DisconnectionError("the server closed this connection")
        try:
            await_(driver.fetchval(_PING))
        except Exception as error:
            raise exc.DisconnectionError("the connection did not answer") from error


_PING = "SELECT 1"


def _unique_statement_name() -> str:
    return f"__sladesk_{uuid.uuid4().hex}__"


def _connect_with_dsn(engine: AsyncEngine, url: URL, settings: dict[str, str]) -> None:
    """asyncpg gets the URL as its ``dsn`` (app.dburl): the dialect's own translation would
    pass libpq parameters such as ``sslmode`` as keywords asyncpg does not take."""
    from_url = {"host", "port", "user", "password", "database", *url.query}
    wanted = dburl.dsn_connect_args(url, settings)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _use_dsn(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        for key in from_url:
            cparams.pop(key, None)
        cparams.update(wanted)


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


_READ_ONLY: set[Callable[..., Any]] = set()


def read_only(endpoint: F) -> F:
    """Mark a route whose request writes nothing: its session runs each statement in its
    own implicit transaction (autocommit), which spares the BEGIN and COMMIT round trips
    of a unit of work that has nothing to commit. Only for a route whose reads need no
    common snapshot (e.g. the key, then one statement for everything it shows). Behind
    a transaction pooler they keep their transaction (app.main._bind)."""
    _READ_ONLY.add(endpoint)
    return endpoint


def read_only_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


async def fetch_row(session: AsyncSession, sql: str, *args: Any) -> Any:
    """One row of ``sql`` (``$1`` parameters; an asyncpg ``Record`` or None), straight from
    the asyncpg connection under ``session``: SQLAlchemy's execution path costs more CPU
    than a short statement itself, and every request asks one (its API key).

    It runs on the session's connection (checked on checkout as usual), but outside the
    session's transaction when the session has run nothing yet: the driver's adapter
    sends BEGIN with the first SQLAlchemy statement. So: for reads that need no snapshot
    shared with the statements after them. tests/test_hot_path.py counts these too."""
    return await (await _driver(session)).fetchrow(sql, *args)


async def fetch_rows(session: AsyncSession, sql: str, *args: Any) -> list[Any]:
    """All rows of ``sql``, as :func:`fetch_row` (the same conditions)."""
    return list(await (await _driver(session)).fetch(sql, *args))


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's connection."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The unit of work of one request: commit on return, roll back on error. It also
    makes the cursor signing key current for the request (app.pagination)."""
    cursor_key.set(await _cursor_key(request))
    route = request.scope.get("route")
    sessionmaker: async_sessionmaker[AsyncSession] = (
        request.app.state.read_only_sessionmaker
        if getattr(route, "endpoint", None) in _READ_ONLY
        else request.app.state.sessionmaker
    )
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            # A connection lost mid-request (app.errors.connection_lost: a 503) took its
            # transaction with it: the server rolls back the transaction of a connection
            # that ends, so nothing the request wrote before is committed. This rollback
            # then only drops SQLAlchemy's side (the pool discards the dead connection).
            await session.rollback()
            raise
        try:
            await session.commit()
        except exc.DBAPIError as error:
            if connection_lost(error):
                # Lost during COMMIT: committed whole or not at all, the client cannot
                # know which (the answer says so rather than "retry").
                raise DatabaseConnectionLost(LOST_AT_COMMIT) from error
            raise


# scope="function": the commit happens before the response is sent, so a client never
# sees a 2xx for a change that then failed to commit.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


class DataDirLocked(RuntimeError):
    """Another sladesk process already holds this data directory."""

    def __init__(self, data_dir: Path, pid: int | None, command: str | None) -> None:
        self.data_dir, self.pid, self.command = data_dir, pid, command
        who = f"sladesk {command}" if command else "sladesk"
        if command == "serve":
            advice = "stop it first, or give this one its own SLADESK_DATA_DIR"
        else:
            advice = "run this again when it has finished"
        super().__init__(
            f"the data directory {data_dir.resolve()} is in use by {who} (pid {pid}); {advice}"
        )


PUBLISHED = "serve.json"


@dataclass
class EmbeddedPostgres:
    """A private PostgreSQL (from the ``pgserver`` package) living in the data directory.

    One sladesk process owns a data directory at a time: an exclusive lock file says so
    (with its pid and command). `sladesk serve` also publishes its server's URL there
    (:meth:`publish`) while it holds the lock, so that `load`, `create-key` and `migrate`
    use the running server (:meth:`wait_for_published`) instead of refusing.
    """

    data_dir: Path
    command: str = "serve"
    _lock_file: IO[str] | None = None
    _server: Any = None

    @property
    def pg_dir(self) -> Path:
        return (self.data_dir / "pg").resolve()

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.data_dir / "sladesk.lock"
        lock_file = lock_path.open("a+")
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            pid, command = _owner(lock_file.read())
            lock_file.close()
            raise DataDirLocked(self.data_dir, pid, command) from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"{os.getpid()} {self.command}")
        lock_file.flush()
        self._lock_file = lock_file
        # A server killed without stopping may have left its URL behind.
        (self.data_dir / PUBLISHED).unlink(missing_ok=True)

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

    def publish(self, url: str) -> None:
        """Tell other sladesk commands where the running server is (owner-only file)."""
        target = self.data_dir / PUBLISHED
        partial = target.with_suffix(".tmp")
        partial.unlink(missing_ok=True)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"pid": os.getpid(), "url": url}, handle)
        partial.replace(target)

    def wait_for_published(self, pid: int | None, *, timeout: float) -> str:
        """The URL published by the `serve` holding the lock (process ``pid``); waits while
        it is starting. TimeoutError if it never does, ProcessLookupError if it is gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                published = json.loads((self.data_dir / PUBLISHED).read_text())
                if published.get("pid") == pid and isinstance(published.get("url"), str):
                    return str(published["url"])
            except (OSError, ValueError):
                pass
            if pid is None or not _alive(pid):
                raise ProcessLookupError(pid)
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.2)

    def stop(self) -> None:
        if self._lock_file is not None:
            (self.data_dir / PUBLISHED).unlink(missing_ok=True)
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _owner(text: str) -> tuple[int | None, str | None]:
    parts = text.split()
    pid = int(parts[0]) if parts and parts[0].isdigit() else None
    return pid, (parts[1] if len(parts) > 1 else None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
