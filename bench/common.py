"""Shared by the benchmarks: a fresh, migrated database for one run.

`SLADESK_DATABASE_URL` names a server to use (a new database is created on it and
dropped afterwards); without it a private embedded server is started in a temp dir.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
from sqlalchemy import make_url

from app.config import Settings
from app.db import make_engine
from app.migrate import upgrade


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def fresh_database(
    prefix: str = "sladesk_bench", *, keep: bool = False
) -> AsyncIterator[str]:
    """Yield the URL of a new, migrated database; drop it (and any server) afterwards —
    unless ``keep``: then it stays for a later run to reuse (a server of its own would be
    gone, so keeping needs `SLADESK_DATABASE_URL`)."""
    given = os.environ.get("SLADESK_DATABASE_URL")
    server = None
    if given:
        server_url = make_url(given)
    else:
        import pgserver

        server = pgserver.get_server(
            tempfile.mkdtemp(prefix="sladesk-bench-"), cleanup_mode="delete"
        )
        server_url = make_url(server.get_uri())
    if keep and server is not None:
        server.cleanup()
        raise SystemExit("keeping a database needs SLADESK_DATABASE_URL (a server that stays)")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_dsn(server_url.render_as_string(hide_password=False)))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = server_url.set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url, Settings(database_url=url))
        await upgrade(engine)
        await engine.dispose()
        yield url
    finally:
        if not keep:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
        if server is not None:
            server.cleanup()


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> tuple[float, float]:
    """Median and 95th percentile milliseconds of `repeat` calls (after one warm-up)."""
    await fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants (Linux /proc): a
    cost that, unlike wall-clock time, another process's load barely changes."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        pending.extend(int(c) for c in children)
    return total


def postgres_cpu_seconds() -> float:
    """CPU seconds of every PostgreSQL process on this machine (server and backends): read
    before and after a run on an otherwise idle server, what the run cost the database."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
