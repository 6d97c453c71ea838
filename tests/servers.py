"""Real peers the operations tests start: a TLS PostgreSQL of our own, PgBouncer.

Binaries come from Debian's packages (``postgresql``, ``pgbouncer``); a test that needs one
skips where it is missing, but fails under CI (``CI`` set), where .ci/run installs them.
PostgreSQL and PgBouncer refuse to run as root: as root, they run as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# A password that needs every kind of URL escaping.
PASSWORD = "p@ss:w/o#rd %&?=é"


def need(binary: str | None, what: str) -> str:
    """The binary's path; skip (or, under CI, fail) when it is not installed."""
    if binary and Path(binary).exists():
        return binary
    message = f"{what} is not installed (apt-get install it; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def debian_postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return str(Path(found[-1]).parent) if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_server_user(user: str = "postgres") -> dict[str, Any]:
    """subprocess keywords that run a server as a non-root user."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)  # KeyError: no such user (Debian's postgresql makes postgres)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def own_dir(prefix: str, user: str = "postgres") -> Path:
    """A private directory the server user owns (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, user, user)
    return path


def _chown_tree(path: Path) -> None:
    if os.geteuid() == 0:
        for entry in [path, *path.rglob("*")]:
            shutil.chown(entry, "postgres", "postgres")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> None:
    """ca.crt signs server.crt (for DNS:localhost only); other-ca.crt signs nothing."""
    for ca in ("ca", "other-ca"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-subj", f"/CN=sladesk test {ca}",
            cwd=directory,
        )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost", cwd=directory,
    )  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.key").chmod(0o600)


@dataclass
class TlsPostgres:
    """A PostgreSQL cluster with TLS, password (SCRAM) authentication over TCP, trust over
    its unix socket, a role ``sladesk`` with :data:`PASSWORD` and a database ``sladesk``."""

    home: Path
    port: int
    bin: str

    @property
    def socket_dir(self) -> Path:
        return self.home / "sock"

    @property
    def ca(self) -> Path:
        return self.home / "ca.crt"

    @property
    def other_ca(self) -> Path:
        return self.home / "other-ca.crt"

    @classmethod
    def start(cls) -> TlsPostgres:
        bin_dir = need(debian_postgres_bin(), "PostgreSQL (Debian's postgresql package)")
        need(shutil.which("openssl"), "openssl")
        home = own_dir("sladesk-tls-pg-")
        make_certificates(home)
        (home / "sock").mkdir()
        _chown_tree(home)
        run = as_server_user()
        subprocess.run(
            [f"{bin_dir}/initdb", "-D", str(home / "data"), "-U", "postgres",
             "--auth-local=trust", "--auth-host=scram-sha-256"],
            check=True, capture_output=True, **run,
        )  # fmt: skip
        port = free_port()
        with (home / "data" / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{home / 'sock'}'\nssl = on\n"
                f"ssl_cert_file = '{home / 'server.crt'}'\n"
                f"ssl_key_file = '{home / 'server.key'}'\n"
                "password_encryption = 'scram-sha-256'\nfsync = off\n"
            )
        server = cls(home, port, bin_dir)
        server.pg_ctl("start", "-w", "-l", str(home / "log"))
        escaped = PASSWORD.replace("'", "''")
        server.psql(f"CREATE ROLE sladesk LOGIN PASSWORD '{escaped}'")
        server.psql("CREATE DATABASE sladesk OWNER sladesk")
        return server

    def pg_ctl(self, *args: str) -> None:
        # No pipes: the server pg_ctl starts would inherit them and hold them open forever.
        subprocess.run(
            [f"{self.bin}/pg_ctl", "-D", str(self.home / "data"), *args],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60,
            **as_server_user(),
        )  # fmt: skip

    def psql(self, sql: str) -> str:
        done = subprocess.run(
            [f"{self.bin}/psql", "-h", str(self.socket_dir), "-p", str(self.port),
             "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            check=True, capture_output=True, text=True, **as_server_user(),
        )  # fmt: skip
        return done.stdout

    def stop(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "fast")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class PgBouncer:
    """Debian's PgBouncer in transaction mode in front of one database, with a small
    server pool so that client connections really share server connections."""

    home: Path
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, database_url: str, *, pool_size: int = 2) -> PgBouncer:
        from sqlalchemy import make_url

        binary = need(
            shutil.which("pgbouncer") or "/usr/sbin/pgbouncer",
            "PgBouncer (Debian's pgbouncer package)",
        )
        url = make_url(database_url)
        host = url.query.get("host") or url.host or "127.0.0.1"
        assert isinstance(host, str)
        # Through a unix socket, PgBouncer must be able to open it: run as its owner.
        user = Path(host).owner() if host.startswith("/") else "postgres"
        home = own_dir("sladesk-pgbouncer-", user)
        port = free_port()
        target = f"host={host} port={url.port or 5432} dbname={url.database} user={url.username}"
        if url.password:
            target += f" password={url.password}"
        (home / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"sladesk = {target}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
            "max_client_conn = 200\nignore_startup_parameters = extra_float_digits\n"
            f"logfile = {home / 'pgbouncer.log'}\npidfile = {home / 'pgbouncer.pid'}\n"
        )
        _chown_tree_to(home, user)
        process = subprocess.Popen(
            [binary, str(home / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **as_server_user(user),
        )  # fmt: skip
        bouncer = cls(home, port, process)
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return bouncer
            if process.poll() is not None or time.monotonic() > deadline:
                log = (
                    (home / "pgbouncer.log").read_text()
                    if (home / "pgbouncer.log").exists()
                    else ""
                )
                bouncer.stop()
                raise RuntimeError(f"pgbouncer did not start: {log[-2000:]}")
            time.sleep(0.05)

    def url(self) -> str:
        return f"postgresql://sladesk@127.0.0.1:{self.port}/sladesk"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)


def _chown_tree_to(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        for entry in [path, *path.rglob("*")]:
            shutil.chown(entry, user, user)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """The app on a real HTTP server at an ephemeral port of 127.0.0.1; its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:  # noqa: ASYNC110 (uvicorn has no started event)
            await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
