"""Test fixtures: a real PostgreSQL, the schema built by the migrations, real HTTP.

- ``SLADESK_TEST_DATABASE_URL`` set (CI: the server at 127.0.0.1:5432): a fresh database
  is created on that server for the run and dropped at the end.
- unset: a private embedded server (pgserver) is started in a temporary directory.

Each test that touches the database starts from empty tables (``db`` fixture), so tests
are isolated while still exercising real commits, as workers and webhooks need.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrate import upgrade
from app.models import metadata
from app.schemas.api_keys import ApiKeyCreate
from app.security import Role
from app.services.api_keys import create_api_key


def _plain(url: Any) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def raw_connect(url: str) -> asyncpg.Connection:
    """A plain asyncpg connection to a database URL (TCP, or a unix socket given as
    ``?host=/dir``, as the embedded server is)."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.connect(dsn)


async def _admin_execute(server_url: str, sql: str) -> None:
    conn = await raw_connect(server_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, empty database for this test run; its URL."""
    name = f"sladesk_test_{uuid.uuid4().hex[:12]}"
    given = os.environ.get("SLADESK_TEST_DATABASE_URL")
    server = None
    if given:
        server_url = make_url(given)
    else:
        import pgserver

        server = pgserver.get_server(tempfile.mkdtemp(prefix="sladesk-pg-"), cleanup_mode="delete")
        server_url = make_url(server.get_uri())
    asyncio.run(_admin_execute(_plain(server_url), f'CREATE DATABASE "{name}"'))
    try:
        yield _plain(server_url.set(database=name))
    finally:
        asyncio.run(_admin_execute(_plain(server_url), f'DROP DATABASE "{name}" WITH (FORCE)'))
        if server is not None:
            server.cleanup()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        run_workers=False,
        webhooks_allow_private=True,
        webhooks_allow_http=True,
        db_pool_size=5,
        db_max_overflow=5,
        # Event streams end quickly: tests that call every endpoint in-process (the
        # authorization matrix, the fuzz test) must not wait on one.
        stream_max_seconds=1.0,
        # Tests start their own SMTP listeners, on ephemeral ports.
        mail_listen="",
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    assert settings.database_url is not None
    eng = make_engine(settings.database_url.get_secret_value(), settings)
    await upgrade(eng)
    yield eng
    await eng.dispose()


_TABLES = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncEngine:
    """Empty tables for this test (committed data of earlier tests is gone)."""
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
    return engine


@pytest.fixture
def app(settings: Settings, db: AsyncEngine) -> Any:
    return create_app(settings, engine=db)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def make_key(
    engine: AsyncEngine,
    role: Role,
    organization_id: uuid.UUID | str | None = None,
    contact_id: uuid.UUID | str | None = None,
    agent_id: uuid.UUID | str | None = None,
) -> str:
    """Create an API key directly through the service; returns the key."""
    data = ApiKeyCreate(
        name=f"test {role.value}",
        role=role,
        organization_id=uuid.UUID(str(organization_id)) if organization_id else None,
        contact_id=uuid.UUID(str(contact_id)) if contact_id else None,
        agent_id=uuid.UUID(str(agent_id)) if agent_id else None,
    )
    async with make_sessionmaker(engine)() as session, session.begin():
        _, key = await create_api_key(session, data)
    return key


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def admin_key(db: AsyncEngine) -> str:
    return await make_key(db, Role.ADMIN)


@pytest.fixture
async def admin(app: Any, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client carrying an admin key."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=auth(admin_key)
    ) as c:
        yield c


@pytest.fixture
async def agent(app: Any, db: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client carrying an agent key."""
    transport = httpx.ASGITransport(app=app)
    key = await make_key(db, Role.AGENT)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=auth(key)
    ) as c:
        yield c


def client_for(app: Any, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=auth(key)
    )


@pytest.fixture
def localhost_cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` (certificate, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
