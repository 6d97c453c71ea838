"""Benchmark: how late does a breach webhook arrive after its threshold's instant?

    python bench/escalation_latency.py            # 10,000 tickets, 60 s window, 1M clocks
    python bench/escalation_latency.py --smoke    # 500 tickets, 10 s window, 20k clocks
    python bench/escalation_latency.py --burst    # 1,500 breaches within 5 s (300/s)
    python bench/escalation_latency.py --burst --rate 450 --worker-processes 1

1. Starts `sladesk serve` (a subprocess: API, timer loop and webhook dispatcher, as in
   production) against a fresh database, and a webhook receiver on 127.0.0.1 that notes
   the arrival time of every request on its own clock.
2. Through the API: a plan whose first response is due 60 minutes after receipt around
   the clock, a customer holding it, a subscription to `sla.breached`; then N tickets
   whose `received_at` puts their breach instants evenly over a window that starts once
   they are all created.
3. Waits for the window to pass (plus a grace period) and prints, per threshold, the lag
   between its instant (`threshold.at` in the payload) and its arrival: p50, p99, max;
   thresholds that never arrived; thresholds that arrived under two different
   `webhook-id`s (a double firing) and plain redeliveries of one id (at-least-once).
4. Separately, bulk-loads a million open clocks (plus the due ones) into another fresh
   database and prints the plan and time of the timer loop's claim query, to show that
   its cost depends on the batch, not on the number of open tickets.

Prints figures; asserts nothing. Set `SLADESK_DATABASE_URL` to use a server instead of
the embedded one (a new database is created on it and dropped afterwards). The service
gets this process's environment: `SLADESK_WEBHOOK_PROCESSES=1` measures `serve` with the
dispatcher in a process of its own; `--worker-processes N` adds N `sladesk worker`
processes (every loop) beside it. The CPU figure is the sladesk processes' own (the
receiver and PostgreSQL are not counted); on a machine shared with other work the lags
vary from run to run, the CPU per threshold much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql
from sqlmodel import col

from app.config import Settings
from app.db import make_engine
from app.models.tickets import SlaClock
from bench.common import cpu_seconds, fresh_database

ROOT = Path(__file__).resolve().parents[1]
TARGET_MINUTES = 60


class Receiver:
    """HTTP/1.1 on 127.0.0.1 (keep-alive); records (arrival epoch seconds, headers, body)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, str], bytes]] = []
        self.port = 0

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                lines = head.decode("latin-1").split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.arrivals.append((arrived, headers, body))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_service(
    url: str, admin_key: str, *, workers: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "SLADESK_DATABASE_URL": url,
        "SLADESK_PORT": str(port),
        "SLADESK_BOOTSTRAP_ADMIN_KEY": admin_key,
        "SLADESK_WEBHOOKS_ALLOW_PRIVATE": "true",
        "SLADESK_WEBHOOKS_ALLOW_HTTP": "true",
        "SLADESK_LOG_LEVEL": "WARNING",
    }
    sladesk = Path(sys.executable).with_name("sladesk")
    command = [str(sladesk)] if sladesk.exists() else [sys.executable, "-m", "app.cli"]
    # A child process for the whole run, stopped with SIGTERM at the end (not awaited here).
    # Without ``workers``: serve's default (SLADESK_WORKERS, else the number of cores).
    serve = ["serve"] if workers is None else ["serve", "--workers", str(workers)]
    proc = subprocess.Popen([*command, *serve], env=env, cwd=ROOT)  # noqa: ASYNC220
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(600):
            if proc.poll() is not None:
                raise SystemExit(f"sladesk serve exited with {proc.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise SystemExit("sladesk serve did not become ready in 60 s")


async def post(api: httpx.AsyncClient, path: str, body: dict[str, object]) -> dict[str, object]:
    response = await api.post(path, json=body)
    if response.status_code != 201:
        raise SystemExit(f"POST {path}: {response.status_code} {response.text}")
    return dict(response.json())


async def set_up(api: httpx.AsyncClient, hook: str) -> tuple[str, str]:
    calendar = await post(
        api, "/v1/calendars", {"name": "Always", "timezone": "UTC", "weekly_hours": "24x7"}
    )
    plan = await post(
        api,
        "/v1/plans",
        {
            "code": "bench",
            "name": "Bench",
            "level": 1,
            "calendar_id": calendar["id"],
            "channels": ["email"],
            "targets": [{"metric": "first_response", "minutes": TARGET_MINUTES, "clock": "24x7"}],
        },
    )
    org = await post(api, "/v1/organizations", {"name": "Bench Org"})
    contact = await post(
        api,
        f"/v1/organizations/{org['id']}/contacts",
        {"name": "Bench Contact", "email": "bench@example.com"},
    )
    await post(
        api,
        "/v1/contracts",
        {"organization_id": org["id"], "plan_id": plan["id"], "starts_on": "2026-01-01"},
    )
    await post(api, "/v1/webhooks", {"url": hook, "event_types": ["sla.breached"]})
    return str(org["id"]), str(contact["id"])


async def create_tickets(
    api: httpx.AsyncClient, org: str, contact: str, instants: list[datetime], workers: int
) -> None:
    queue: asyncio.Queue[tuple[int, datetime]] = asyncio.Queue()
    for item in enumerate(instants):
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            i, instant = queue.get_nowait()
            received = instant - timedelta(minutes=TARGET_MINUTES)
            await post(
                api,
                "/v1/tickets",
                {
                    "organization_id": org,
                    "contact_id": contact,
                    "channel": "email",
                    "severity": "high",
                    "category": "technical",
                    "subject": f"Bench ticket {i}",
                    "description": "created by bench/escalation_latency.py",
                    "received_at": received.isoformat(),
                },
            )

    await asyncio.gather(*(worker() for _ in range(workers)))


async def firing_lags(url: str) -> tuple[float, float, float] | None:
    """p50, p99 and max milliseconds from each breach instant to its firing."""
    engine = make_engine(url, Settings(database_url=url))
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY lag),"
                    " max(lag) FROM (SELECT extract(epoch FROM fired_at - instant) * 1000"
                    " AS lag FROM sla_firings WHERE fired_at > instant - interval '1 hour'"
                    " AND instant <= now()) f"
                )
            )
        ).one()
    await engine.dispose()
    if row[0] is None:
        return None
    return float(row[0][0]), float(row[0][1]), float(row[1])


def percentile(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, round(p * len(sorted_values)) - 1))]


def start_workers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    """Extra `sladesk worker` processes (timer and dispatcher loops) beside serve's."""
    env = {
        **os.environ,
        "SLADESK_DATABASE_URL": url,
        "SLADESK_WEBHOOKS_ALLOW_PRIVATE": "true",
        "SLADESK_WEBHOOKS_ALLOW_HTTP": "true",
        "SLADESK_LOG_LEVEL": "WARNING",
    }
    sladesk = Path(sys.executable).with_name("sladesk")
    command = [str(sladesk)] if sladesk.exists() else [sys.executable, "-m", "app.cli"]
    return [subprocess.Popen([*command, "worker"], env=env, cwd=ROOT) for _ in range(count)]


async def latency(n: int, window: float, workers: int, worker_processes: int = 0) -> None:
    async with fresh_database("sladesk_bench_latency") as url:
        receiver = Receiver()
        server = await receiver.start()
        admin_key = "sk_bench_" + secrets.token_urlsafe(24)
        proc, base = await start_service(url, admin_key)
        extra = start_workers(url, worker_processes)
        try:
            headers = {"Authorization": f"Bearer {admin_key}"}
            limits = httpx.Limits(max_connections=workers)
            async with httpx.AsyncClient(
                base_url=base, headers=headers, limits=limits, timeout=60
            ) as api:
                org, contact = await set_up(api, f"http://127.0.0.1:{receiver.port}/hook")
                # Measure the intake rate on a pilot, then put the window after the time
                # the rest needs (with a margin), so that every instant is in the future.
                pilot = min(200, n)
                started = time.monotonic()
                t0 = datetime.now(UTC)
                pilot_instants = [t0 + timedelta(seconds=600 + i) for i in range(pilot)]
                await create_tickets(api, org, contact, pilot_instants, workers)
                rate = pilot / (time.monotonic() - started)
                margin = 1.3 * (n - pilot) / rate + 5
                window_start = datetime.now(UTC) + timedelta(seconds=margin)
                step = window / max(n - pilot, 1)
                instants = [window_start + timedelta(seconds=i * step) for i in range(n - pilot)]
                print(f"intake: {rate:.0f} tickets/s on the pilot; window starts in {margin:.0f} s")
                started = time.monotonic()
                await create_tickets(api, org, contact, instants, workers)
                took = time.monotonic() - started
                late = datetime.now(UTC) > window_start
                print(
                    f"created {n - pilot:,} tickets in {took:.1f} s"
                    + (" (after the window began: lags include intake)" if late else "")
                )
            expected = {t.isoformat().replace("+00:00", "Z") for t in instants}
            await asyncio.sleep(max((window_start - datetime.now(UTC)).total_seconds() - 1, 0))
            cpu_before = sum(cpu_seconds(p.pid) for p in (proc, *extra))
            deadline = time.time() + max((instants[-1] - datetime.now(UTC)).total_seconds(), 0)
            while time.time() < deadline + 15:
                await asyncio.sleep(0.5)
                if len(receiver.arrivals) >= len(instants) and time.time() > deadline + 2:
                    break
            cpu = sum(cpu_seconds(p.pid) for p in (proc, *extra)) - cpu_before
            fired = await firing_lags(url)
        finally:
            for child in (proc, *extra):
                child.send_signal(signal.SIGTERM)
            for child in (proc, *extra):
                child.wait(timeout=60)
            server.close()

    lags: list[float] = []
    ids_by_threshold: dict[tuple[str, str], set[str]] = defaultdict(set)
    deliveries = Counter[str]()
    for arrived, hdrs, body in receiver.arrivals:
        payload = json.loads(body)
        threshold = payload["data"]["threshold"]
        key = (payload["data"]["ticket"]["id"], threshold["key"])
        deliveries[hdrs["webhook-id"]] += 1
        if hdrs["webhook-id"] in ids_by_threshold[key]:
            continue
        ids_by_threshold[key].add(hdrs["webhook-id"])
        if threshold["at"] not in expected:
            continue  # a pilot ticket's threshold (not due within the run)
        instant = datetime.fromisoformat(threshold["at"]).timestamp()
        lags.append(arrived - instant)
    lags.sort()
    arrived_instants = {
        json.loads(b)["data"]["threshold"]["at"] for _, _, b in receiver.arrivals
    } & expected
    doubles = sum(1 for ids in ids_by_threshold.values() if len(ids) > 1)
    redelivered = sum(1 for c in deliveries.values() if c > 1)
    processes = (
        f"sladesk serve + {worker_processes} sladesk worker"
        if worker_processes
        else ("one sladesk serve")
    )
    print(
        f"\nthresholds: {len(instants):,} over {window:.0f} s "
        f"({len(instants) / window:.0f}/s, {processes}); arrived {len(lags):,}"
    )
    if lags:
        print(
            f"lag from instant to arrival: p50 {statistics.median(lags) * 1000:.0f} ms, "
            f"p99 {percentile(lags, 0.99) * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms "
            f"(min {lags[0] * 1000:.0f} ms)"
        )
    print(
        f"CPU of the sladesk processes from the window to the last arrival: {cpu:.1f} s "
        f"({cpu / max(len(lags), 1) * 1000:.2f} ms per threshold fired and delivered)"
    )
    if fired:
        print(
            "   of which firing (instant to the start of the round that fired it): "
            f"p50 {fired[0]:.0f} ms, "
            f"p99 {fired[1]:.0f} ms, max {fired[2]:.0f} ms"
        )
    print(
        f"missing: {len(expected - arrived_instants)}   duplicated (two webhook-ids for "
        f"one threshold): {doubles}   redelivered ids (at-least-once): {redelivered}"
    )


CLAIM_SEED = """
INSERT INTO calendars (id, name, timezone, spec, version)
VALUES (md5('cal')::uuid, 'bench', 'UTC', '{"timezone": "UTC", "weekly_hours": "24x7"}', 1);
INSERT INTO organizations (id, name, active) VALUES (md5('org')::uuid, 'Org', true);
INSERT INTO contacts (id, organization_id, name, email, role, active)
VALUES (md5('contact')::uuid, md5('org')::uuid, 'C', 'c@x.example', 'authorized', true);
INSERT INTO tickets (
    id, number, organization_id, contact_id, channel, severity, category, subject,
    description, status, tier, entitled, entitlement_reasons, after_hours, received_at,
    contact_attempts, last_event_at, version)
SELECT md5('t' || g)::uuid, nextval('ticket_number_seq'), md5('org')::uuid,
       md5('contact')::uuid, 'email', 'high', 'technical', 'T' || g, '', 'open', 1, true,
       '[]', false, CAST(:start AS timestamptz) - g * interval '1 second', 0,
       CAST(:start AS timestamptz) - g * interval '1 second', 1
FROM generate_series(1, :n) g;
INSERT INTO sla_clocks (id, ticket_id, metric, target, minutes, kind, calendar_id, started_at,
    changed_at, running_since, elapsed_us, thresholds, crossings, due_at, next_check_at)
SELECT md5('c' || g)::uuid, md5('t' || g)::uuid, 'resolution', '{}', 600, '24x7',
       md5('cal')::uuid, CAST(:start AS timestamptz) - g * interval '1 second',
       CAST(:start AS timestamptz) - g * interval '1 second',
       CAST(:start AS timestamptz) - g * interval '1 second', 0, '[]', '[]',
       CAST(:start AS timestamptz) + interval '1 hour' + g * interval '1 second',
       CASE WHEN g <= :due THEN CAST(:start AS timestamptz) - interval '1 second'
            ELSE CAST(:start AS timestamptz) + interval '1 hour' + g * interval '1 second' END
FROM generate_series(1, :n) g;
ANALYZE;
"""


async def claim_plan(n: int, due: int, batch: int) -> None:
    async with fresh_database("sladesk_bench_claim") as url:
        # A million rows take longer than the service's statement timeout: none here.
        engine = make_engine(url, Settings(database_url=url, db_statement_timeout_ms=0))
        start = datetime.now(UTC)
        loaded = time.monotonic()
        async with engine.begin() as conn:
            for statement in filter(str.strip, CLAIM_SEED.split(";\n")):
                params = {"start": start, "n": n, "due": due}
                used = {k: v for k, v in params.items() if f":{k}" in statement}
                await conn.execute(text(statement), used)
        print(
            f"\nloaded {n:,} open tickets and clocks ({due:,} due now) "
            f"in {time.monotonic() - loaded:.1f} s"
        )
        # The same statement as TimerLoop.fire_thresholds.
        claim = (
            select(SlaClock)
            .where(col(SlaClock.next_check_at) <= start)
            .order_by(col(SlaClock.next_check_at))
            .limit(batch)
            .with_for_update(skip_locked=True)
        )
        sql = str(
            claim.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        )
        async with engine.connect() as conn:
            plan = (await conn.execute(text("EXPLAIN ANALYZE " + sql))).scalars().all()
            await conn.rollback()
            samples = []
            for _ in range(20):
                began = time.perf_counter()
                await conn.execute(text(sql))
                samples.append((time.perf_counter() - began) * 1000)
                await conn.rollback()
        print(f"claim query (batch {batch}) over {n:,} open clocks:")
        for line in plan:
            print("   " + line)
        print(f"claim query round trip: median {statistics.median(samples):.2f} ms over 20 runs")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="500 tickets, 10 s, 20k clocks")
    parser.add_argument("--tickets", type=int, help="tickets (default 10,000)")
    parser.add_argument("--window", type=float, help="seconds the instants spread over")
    parser.add_argument("--clocks", type=int, help="open clocks for the claim plan")
    parser.add_argument("--workers", type=int, default=8, help="concurrent intake requests")
    parser.add_argument("--claim-only", action="store_true", help="only the claim query plan")
    parser.add_argument(
        "--burst", action="store_true", help="breaches at --rate per second (300) for 5 s"
    )
    parser.add_argument("--rate", type=float, default=300.0, help="--burst: breaches per second")
    parser.add_argument(
        "--worker-processes", type=int, default=0, help="extra `sladesk worker` processes"
    )
    args = parser.parse_args()
    pilot = 200  # tickets due after the window (they measure the intake rate)
    if args.burst:
        window = args.window or 5.0
        n = pilot + round(args.rate * window)
    else:
        n = args.tickets or (500 if args.smoke else 10_000)
        window = args.window or (10.0 if args.smoke else 60.0)
    clocks = args.clocks or (20_000 if args.smoke else 1_000_000)
    if not args.claim_only:
        asyncio.run(latency(n, window, args.workers, args.worker_processes))
    if not args.burst:
        asyncio.run(claim_plan(clocks, due=1_000, batch=200))
