"""Database URLs as providers hand them out, against a real TLS PostgreSQL of our own:
every sslmode, sslrootcert, unix-socket hosts, options, a password that needs escaping.
Anything sladesk cannot use is one line naming SLADESK_DATABASE_URL, never a traceback."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import text

from app import dburl
from app.config import Settings
from app.db import make_engine
from app.workers.listener import listen
from tests.servers import PASSWORD, TlsPostgres


@pytest.fixture(scope="module")
def tls_server() -> Iterator[TlsPostgres]:
    server = TlsPostgres.start()
    try:
        yield server
    finally:
        server.stop()


def _url(server: TlsPostgres, host: str = "127.0.0.1", query: str = "", **more: str) -> str:
    user = f"sladesk:{quote(PASSWORD, safe='')}"
    extra = "&".join(f"{k}={quote(v, safe='')}" for k, v in more.items())
    joined = "&".join(p for p in (query, extra) if p)
    return f"postgresql://{user}@{host}:{server.port}/sladesk" + (f"?{joined}" if joined else "")


async def _session_facts(url: str) -> tuple[str, bool, str]:
    engine = make_engine(url, Settings(database_url=url), pooled=False)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT current_user, ssl, current_setting('search_path') "
                        "FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return str(row[0]), bool(row[1]), str(row[2])


@pytest.mark.parametrize(
    ("case", "host", "params", "encrypted"),
    [
        ("sslmode=disable", "127.0.0.1", {"sslmode": "disable"}, False),
        ("sslmode=allow", "127.0.0.1", {"sslmode": "allow"}, False),
        ("sslmode=prefer", "127.0.0.1", {"sslmode": "prefer"}, True),
        ("sslmode=require (managed providers)", "127.0.0.1", {"sslmode": "require"}, True),
        ("verify-ca", "127.0.0.1", {"sslmode": "verify-ca", "sslrootcert": "CA"}, True),
        ("verify-full", "localhost", {"sslmode": "verify-full", "sslrootcert": "CA"}, True),
        ("no parameters", "127.0.0.1", {}, True),
    ],
)
async def test_sslmodes_and_a_password_that_needs_escaping(
    tls_server: TlsPostgres, case: str, host: str, params: dict[str, str], encrypted: bool
) -> None:
    wanted = {k: (str(tls_server.ca) if v == "CA" else v) for k, v in params.items()}
    user, ssl, _ = await _session_facts(_url(tls_server, host, **wanted))
    assert (user, ssl) == ("sladesk", encrypted), case


@pytest.mark.parametrize(
    ("case", "host", "params", "error"),
    [
        # The certificate names localhost only: verify-full checks the host name.
        ("verify-full, wrong host", "127.0.0.1", {"sslmode": "verify-full", "sslrootcert": "CA"},
         "127.0.0.1"),
        ("verify-ca, another CA", "127.0.0.1", {"sslmode": "verify-ca", "sslrootcert": "OTHER"},
         "certificate verify failed"),
    ],
)  # fmt: skip
async def test_verification_really_verifies(
    tls_server: TlsPostgres, case: str, host: str, params: dict[str, str], error: str
) -> None:
    ca = {"CA": str(tls_server.ca), "OTHER": str(tls_server.other_ca)}
    wanted = {k: ca.get(v, v) for k, v in params.items()}
    with pytest.raises(Exception, match=error):
        await _session_facts(_url(tls_server, host, **wanted))


async def test_unix_socket_hosts_and_options(tls_server: TlsPostgres) -> None:
    sock = str(tls_server.socket_dir)
    port = tls_server.port
    tls_server.psql("CREATE SCHEMA IF NOT EXISTS desk AUTHORIZATION sladesk")
    for url in (
        f"postgresql://sladesk@/sladesk?host={quote(sock, safe='')}&port={port}",
        f"postgresql://sladesk@{quote(sock, safe='')}:{port}/sladesk",
        f"postgres://sladesk@/sladesk?host={sock}&port={port}&options=-c%20search_path%3Ddesk",
    ):
        user, ssl, search_path = await _session_facts(url)
        assert (user, ssl) == ("sladesk", False), url
    assert search_path == "desk"  # options=-c … reached the server


async def test_the_listen_connection_uses_the_same_url_rules(tls_server: TlsPostgres) -> None:
    url = _url(tls_server, "localhost", sslmode="verify-full", sslrootcert=str(tls_server.ca))
    engine = make_engine(url, Settings(database_url=url))
    stop, listening = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        listen(engine, "sladesk_x", wake=lambda: None, stop=stop, listening=listening, name="t")
    )
    try:
        async with asyncio.timeout(30):
            await listening.wait()
    finally:
        stop.set()
        task.cancel()  # the loop's owner cancels it (app.workers.escalation does)
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://u:secret@h/db", "mysql:// is not PostgreSQL"),
        ("postgresql://u:secret@h/db?sslmode=requir", "sslmode='requir' is not one of"),
        ("postgresql://u:secret@h/db?sslrootcert=/no/such.crt", "sslrootcert: no such file"),
        ("postgresql://u:secret@h/db?connect_timeout=5", "SLADESK_DB_CONNECT_TIMEOUT_SECONDS"),
        ("postgresql://u:secret@h/db?pool=5", "the parameter 'pool' is not supported"),
        ("postgresql://u:secret@h:70000/db", "port"),
        ("localhost:5432", "expected postgresql://"),
    ],
)
async def test_an_unusable_url_is_one_line_naming_the_setting(url: str, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        dburl.parse(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "migrate",
        env={**env, "SLADESK_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    message = err.decode().strip()
    assert proc.returncode == 2 and out == b""
    assert message.startswith("sladesk: error: invalid setting SLADESK_DATABASE_URL: ")
    assert named in message and "\n" not in message and "secret" not in message


async def test_a_wrong_password_is_one_line_without_the_password(tls_server: TlsPostgres) -> None:
    url = f"postgresql://sladesk:Wr0ng-s3cret@127.0.0.1:{tls_server.port}/sladesk?sslmode=require"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "migrate",
        env={**env, "SLADESK_DATABASE_URL": url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1
    assert lines[-1].startswith("sladesk: error: cannot use the database postgresql://sladesk:***@")
    assert "password authentication failed" in lines[-1]
    assert "Wr0ng-s3cret" not in err.decode() and "Traceback" not in err.decode()
