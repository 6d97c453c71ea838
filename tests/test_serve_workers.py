"""`sladesk serve --workers 2` as it runs in production: a real process tree on a port.

What is checked, from outside, with the operating system's and PostgreSQL's own views:
- two API processes (children of `serve`) accept on the one port, and requests are
  answered by both: the server side of the test's connections is held by each of them
  (psutil: which process owns which established socket);
- the background loops run once, in the supervising process: every LISTEN connection of
  a loop appears once in `pg_stat_activity`, made from a socket `serve` itself holds;
  one breach fires once and makes one webhook delivery; the event stream (in an API
  process) still carries the breach the supervisor's timer fired;
- the start-up lines are printed once; SIGTERM ends the stream at once, `serve` exits 0
  and no process it started is left;
- an API process that dies is replaced, and the server keeps answering.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from app.config import Settings
from app.security import new_key
from tests.plan_factories import target
from tests.servers import free_port
from tests.sse_harness import SseClient
from tests.ticket_factories import make_desk
from tests.webhook_harness import Receiver, eventually

ROOT = Path(__file__).resolve().parent.parent
LOOP_LISTENERS = {"sladesk-timers-listen", "sladesk-webhooks-listen"}
# LISTEN connections every API process has of its own (not loops).
PER_PROCESS_LISTENERS = {"sladesk-stream-listen", "sladesk-compiled-listen"}


async def _start(
    database_url: str, port: int, key: str, *extra: str, env_extra: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    env |= {
        "SLADESK_DATABASE_URL": database_url,
        "SLADESK_BOOTSTRAP_ADMIN_KEY": key,
        "SLADESK_WEBHOOKS_ALLOW_PRIVATE": "true",
        "SLADESK_WEBHOOKS_ALLOW_HTTP": "true",
        "SLADESK_MAIL_LISTEN": f"127.0.0.1:{free_port()}",
    }
    env |= env_extra or {}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2", *extra,
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _read_until(proc: asyncio.subprocess.Process, marker: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(120):
        while not lines or marker not in lines[-1]:
            raw = await proc.stdout.readline()
            assert raw, f"serve exited before {marker!r}: {lines}"
            lines.append(raw.decode().rstrip())
    return lines


def _api_processes(serve_pid: int, port: int) -> list[int]:
    """The children of `serve` that accept connections on ``port``."""
    found = []
    for child in psutil.Process(serve_pid).children():
        try:
            sockets = child.net_connections(kind="tcp")
        except psutil.NoSuchProcess:  # a child that just died
            continue
        listening = [c for c in sockets if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        if listening:
            found.append(child.pid)
    return sorted(found)


def _holders(pids: list[int], port: int) -> dict[int, int]:
    """Client port -> the process holding the server side of that connection."""
    held = {}
    for pid in pids:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port and c.raddr:
                held[c.raddr.port] = pid
    return held


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _desk(api: httpx.AsyncClient, hook: str) -> tuple[dict[str, Any], str]:
    """A customer with a 60-minute first response around the clock; a breach webhook."""
    desk = await make_desk(api, targets=[target("first_response", 60, clock="24x7")])
    subscription = await _post(api, "/v1/webhooks", {"url": hook, "event_types": ["sla.breached"]})
    ticket = {
        "organization_id": desk.org["id"],
        "contact_id": desk.contact["id"],
        "channel": "email",
        "severity": "high",
        "category": "technical",
        "subject": "Served by whichever process",
        "description": "created by tests/test_serve_workers.py",
    }
    return ticket, str(subscription["secret"])


async def _listen_backends(db: AsyncEngine) -> list[tuple[str, int]]:
    async with db.connect() as conn:
        result = await conn.execute(
            text(
                "SELECT application_name, client_port FROM pg_stat_activity"
                " WHERE datname = current_database()"
                " AND application_name LIKE 'sladesk-%-listen'"
            )
        )
        return [(str(name), int(port or -1)) for name, port in result]


def _owner(pids: list[int], client_port: int) -> int | None:
    """The process holding the client side of a database connection from ``client_port``."""
    for pid in pids:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.laddr.port == client_port and c.raddr:
                return pid
    return None


async def test_two_api_processes_one_set_of_loops(db: AsyncEngine, database_url: str) -> None:
    port, key = free_port(), new_key()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    receiver = Receiver()
    await receiver.start()
    serve = await _start(database_url, port, key)
    stream: SseClient | None = None
    try:
        lines = await _read_until(serve, "API docs at")
        assert lines[-1] == f"sladesk: API docs at {base}/docs"
        api_pids = _api_processes(serve.pid, port)
        assert len(api_pids) == 2, api_pids
        assert serve.pid not in api_pids

        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as api:
            ticket, secret = await _desk(api, receiver.url())

        # Both processes answer: batches of concurrent requests, each on its own
        # kept-alive connection, until the server sides are held by both (the kernel
        # hands each connection to whichever process accepts first).
        seen: set[int] = set()
        for _ in range(30):
            limits = httpx.Limits(max_connections=12, max_keepalive_connections=12)
            async with httpx.AsyncClient(
                base_url=base, headers=auth, timeout=30, limits=limits
            ) as api:
                made = await asyncio.gather(
                    *(api.post("/v1/tickets", json=ticket) for _ in range(12))
                )
                assert all(r.status_code == 201 for r in made), [r.text for r in made]
                seen |= set(_holders(api_pids, port).values())
            if seen == set(api_pids):
                break
        assert seen == set(api_pids), f"only {seen} of {api_pids} answered"

        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as api:
            metrics = await api.get("/metrics")
            assert metrics.status_code == 200
            # Each process counts its own requests (README "Running at scale").
            assert "sladesk_http_requests_total" in metrics.text

            stream = SseClient(f"{base}/v1/events/stream", headers=auth)
            await stream.__aenter__()
            assert stream.status == 200
            received = datetime.now(UTC) - timedelta(hours=2)  # due an hour ago
            late = await _post(api, "/v1/tickets", ticket | {"received_at": received.isoformat()})

        await eventually(lambda: len(receiver.requests) >= 1, within=60, what="the breach hook")
        breaches = stream.of_type
        await eventually(
            lambda: any(
                m.data["data"]["ticket"]["id"] == late["id"] for m in breaches("sla.breached")
            ),
            within=60,
            what="the breach on the event stream",
        )

        # The loops' LISTEN connections: each once, all made by `serve` itself; the
        # stream's (the per-process hub) by an API process.
        async def listeners_up() -> bool:
            names = {name for name, _ in await _listen_backends(db)}
            return names >= LOOP_LISTENERS and "sladesk-stream-listen" in names

        await eventually(listeners_up, within=30, what="the LISTEN connections")
        backends = await _listen_backends(db)
        loop_backends = [b for b in backends if b[0] not in PER_PROCESS_LISTENERS]
        names = [name for name, _ in loop_backends]
        assert len(names) == len(set(names)), f"a loop runs more than once: {sorted(names)}"
        if all(client_port > 0 for _, client_port in backends):  # TCP: who holds them
            everyone = [serve.pid, *api_pids]
            assert {_owner(everyone, p) for _, p in loop_backends} == {serve.pid}
            [stream_port] = [p for n, p in backends if n == "sladesk-stream-listen"]
            assert _owner(everyone, stream_port) in api_pids
            # Every process that compiles plans and calendars frees replaced versions:
            # each API process and the loops' own process, once each.
            compiled = [p for n, p in backends if n == "sladesk-compiled-listen"]
            assert sorted(_owner(everyone, p) for p in compiled) == sorted(everyone)

        descendants = psutil.Process(serve.pid).children(recursive=True)
        assert {p.pid for p in descendants} >= set(api_pids)
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            out, err = await serve.communicate()
        if stream is not None:
            await stream.wait_ended(within=30)
        await receiver.stop()

    assert serve.returncode == 0, err.decode()[-3000:]
    # The stream was ended by the server (not cut), at once on SIGTERM.
    assert stream is not None and stream.ended
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert alive == [], f"left running after SIGTERM: {alive}"
    printed = "\n".join(lines) + out.decode()
    assert printed.count("API docs at") == 1
    assert "admin API key" not in printed  # the bootstrap key was given

    # One breach, fired once, delivered once.
    await _one_breach_delivered_once(db, receiver, secret, late["id"])


async def test_the_dispatcher_in_processes_of_its_own_delivers_once_signed(
    db: AsyncEngine, database_url: str
) -> None:
    """SLADESK_WEBHOOK_PROCESSES=2: two dispatcher processes under `serve` (children that
    are not API processes), none in the supervisor, which keeps the other loops. A
    breach is fired once and delivered once, signed; one that is killed is replaced;
    SIGTERM stops them all."""
    port, key = free_port(), new_key()
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}"}
    receiver = Receiver()
    await receiver.start()
    serve = await _start(database_url, port, key, env_extra={"SLADESK_WEBHOOK_PROCESSES": "2"})
    try:
        await _read_until(serve, "API docs at")
        api_pids = _api_processes(serve.pid, port)
        assert len(api_pids) == 2, api_pids
        loop_pids = [p.pid for p in psutil.Process(serve.pid).children() if p.pid not in api_pids]
        assert len(loop_pids) == 2, loop_pids

        async def listeners() -> dict[str, list[int | None]]:
            found: dict[str, list[int | None]] = {}
            everyone = [serve.pid, *api_pids, *loop_pids]
            for name, client_port in await _listen_backends(db):
                owner = _owner(everyone, client_port) if client_port > 0 else None
                found.setdefault(name, []).append(owner)
            return found

        async def dispatchers_listen() -> bool:
            return len((await listeners()).get("sladesk-webhooks-listen", [])) == 2

        await eventually(dispatchers_listen, within=60, what="both dispatchers listening")
        found = await listeners()
        if all(o is not None for owners in found.values() for o in owners):  # TCP
            assert sorted(found["sladesk-webhooks-listen"]) == sorted(loop_pids)  # type: ignore[type-var]
            assert found["sladesk-timers-listen"] == [serve.pid]

        psutil.Process(loop_pids[0]).kill()

        def replaced() -> bool:
            now = [p.pid for p in psutil.Process(serve.pid).children() if p.pid not in api_pids]
            return len(now) == 2 and loop_pids[0] not in now

        await eventually(replaced, within=90, what="a replacement dispatcher process")

        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as api:
            ticket, secret = await _desk(api, receiver.url())
            received = datetime.now(UTC) - timedelta(hours=2)  # due an hour ago
            late = await _post(api, "/v1/tickets", ticket | {"received_at": received.isoformat()})
        await eventually(lambda: len(receiver.requests) >= 1, within=60, what="the breach hook")
        await asyncio.sleep(1)  # room for a second delivery, were there one
        descendants = psutil.Process(serve.pid).children(recursive=True)
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            _, err = await serve.communicate()
        await receiver.stop()
    assert serve.returncode == 0, err.decode()[-3000:]
    assert f"webhook process (pid {loop_pids[0]}) exited with status -9" in err.decode()
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert alive == [], f"left running after SIGTERM: {alive}"
    await _one_breach_delivered_once(db, receiver, secret, late["id"])


async def test_a_dead_api_process_is_replaced(db: AsyncEngine, database_url: str) -> None:
    """And --no-workers still means no background loop, in any process."""
    port, key = free_port(), new_key()
    base = f"http://127.0.0.1:{port}"
    serve = await _start(database_url, port, key, "--no-workers")
    try:
        await _read_until(serve, "API docs at")
        first = _api_processes(serve.pid, port)
        assert len(first) == 2
        psutil.Process(first[0]).kill()

        def replaced() -> bool:
            now = _api_processes(serve.pid, port)
            return len(now) == 2 and first[0] not in now and first[1] in now

        await eventually(replaced, within=90, what="a replacement API process")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            for _ in range(10):
                assert (await api.get("/healthz")).status_code == 200
        descendants = psutil.Process(serve.pid).children(recursive=True)
        # Served for a while, processes started and replaced: no loop ever listened
        # (each API process keeps only its compiled-terms hint).
        names = [name for name, _ in await _listen_backends(db)]
        assert set(names) <= {"sladesk-compiled-listen"}, names
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            _, err = await serve.communicate()
    assert serve.returncode == 0
    log = err.decode()
    assert "workers started" not in log
    assert f"API process (pid {first[0]}) exited with status -9; starting another" in log
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert alive == []


async def test_the_api_processes_sockets_answer_without_nagle_delay() -> None:
    """Each API process's own socket (SO_REUSEPORT) says it is TCP, so asyncio turns
    Nagle off on what it accepts: with it on, a small answer waits for the client's
    delayed ACK (~40 ms on Linux)."""
    from app.api_process import listening_socket

    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    sock = listening_socket("127.0.0.1", 0, reuse_port=True)
    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
        assert await asyncio.wait_for(accepted, 30) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_without_reuse_port_the_processes_share_the_supervisors_socket(
    settings: Settings, db: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback where SO_REUSEPORT does not balance (not Linux): one socket, bound
    and listening in the supervisor, passed to every API process."""
    from app import supervisor

    monkeypatch.setattr(supervisor, "REUSE_PORT", False)
    sock = supervisor.bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    processes = supervisor.ApiProcesses(settings.model_copy(update={"port": port}), sock, 2)
    serving = asyncio.Event()
    running = asyncio.create_task(processes.run(serving.set))
    try:
        await eventually(lambda: serving.is_set() or running.done(), within=120, what="serving")
        assert serving.is_set(), "the API processes did not start"
        api_pids = _api_processes(os.getpid(), port)
        assert sorted(api_pids) == sorted(processes.pids)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            for _ in range(5):
                assert (await api.get("/healthz")).status_code == 200
            # The server sides are in the API processes: the supervisor only listens.
            assert set(_holders(api_pids, port).values()) <= set(api_pids)
            assert _holders(api_pids, port)
    finally:
        processes.stop()
        code = await asyncio.wait_for(running, 90)
        sock.close()
    assert code == 0
    assert all(not psutil.pid_exists(pid) for pid in api_pids)


async def _one_breach_delivered_once(
    db: AsyncEngine, receiver: Any, secret: str, ticket_id: str
) -> None:
    """The ticket's breach fired once and was delivered once, signed."""
    [request] = receiver.on("/hook")
    payload = Webhook(secret).verify(request.body, request.headers)
    assert payload["data"]["ticket"]["id"] == ticket_id
    async with db.connect() as conn:
        firings = await conn.scalar(text("SELECT count(*) FROM sla_firings"))
        attempts = await conn.scalar(text("SELECT count(*) FROM webhook_attempts"))
    assert (firings, attempts) == (1, 1)
