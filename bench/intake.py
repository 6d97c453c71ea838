"""Benchmark: ticket intake against the platform's floor, side by side in one run.

    python bench/intake.py              # 16 connections, 10 s per load, 1.5x load too
    python bench/intake.py --smoke      # 8 connections, 3 s (CI)

1. A fresh database; `sladesk serve` (API and workers, as in production; `--workers`
   API processes) and the floor app (`bench/floor_app.py`: bare FastAPI + asyncpg, one
   `INSERT … RETURNING`, as many processes) on the same PostgreSQL.
2. Single requests, unloaded: the median and p90 of create, `GET /v1/tickets/{id}` and one
   action (`reply`), one after another over a kept-alive connection.
3. Load: wrk (Debian's `wrk`) drives `POST /v1/tickets` on both with the same body and
   the same number of connections, after a warm-up, then again at 1.5x the connections.
   Every sladesk request is a real entitled ticket with its SLA clocks, timeline event and
   outbox event: the bench counts them afterwards.

Prints requests/s, p50 and p99 for each and the ratio sladesk / floor, and the CPU each
request cost the service's processes and PostgreSQL. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg
import httpx

from bench.common import _dsn, cpu_seconds, fresh_database, postgres_cpu_seconds
from bench.escalation_latency import free_port, post, start_service

ROOT = Path(__file__).resolve().parents[1]


async def set_up(api: httpx.AsyncClient) -> dict[str, str]:
    calendar = await post(
        api,
        "/v1/calendars",
        {
            "name": "Madrid office",
            "timezone": "Europe/Madrid",
            "weekly_hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": {"country": "ES"},
        },
    )
    plan = await post(
        api,
        "/v1/plans",
        {
            "code": "bench",
            "name": "Bench",
            "level": 1,
            "calendar_id": calendar["id"],
            "channels": ["email", "web"],
            "targets": [
                {"metric": "first_response", "minutes": 240, "warn_at_percent": [50, 75]},
                {"metric": "resolution", "minutes": 2400, "warn_at_percent": [90]},
                {
                    "metric": "first_response",
                    "severities": ["critical"],
                    "minutes": 30,
                    "clock": "24x7",
                    "on_breach": {"escalate_to_tier": 2},
                },
            ],
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
    agent = await post(api, "/v1/agents", {"name": "Bench Agent", "email": "agent@example.com"})
    return {"org": str(org["id"]), "contact": str(contact["id"]), "agent": str(agent["id"])}


def ticket_body(ids: dict[str, str]) -> dict[str, str]:
    return {
        "organization_id": ids["org"],
        "contact_id": ids["contact"],
        "channel": "email",
        "severity": "high",
        "category": "technical",
        "subject": "The VPN drops every hour since the upgrade",
        "description": "Since Tuesday's upgrade the VPN disconnects every hour, on the hour.",
    }


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.9) - 1]


async def single_requests(base: str, key: str, ids: dict[str, str], n: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
        creates, reads, replies, made = [], [], [], []
        for _ in range(n + 3):  # the first three warm the connection and caches
            began = time.perf_counter()
            response = await api.post("/v1/tickets", json=ticket_body(ids))
            creates.append((time.perf_counter() - began) * 1000)
            made.append(response.json()["id"])
        for ticket in made:
            began = time.perf_counter()
            (await api.get(f"/v1/tickets/{ticket}")).raise_for_status()
            reads.append((time.perf_counter() - began) * 1000)
        for ticket in made:
            began = time.perf_counter()
            response = await api.post(
                f"/v1/tickets/{ticket}/actions/reply", json={"body": "Looking at it now."}
            )
            replies.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"reply: {response.status_code} {response.text}")
    print(f"single requests, unloaded ({n} each, one connection):")
    for name, samples in (("create", creates), ("GET ticket", reads), ("reply", replies)):
        p50, p90 = quantiles(samples[3:])
        print(f"  {name:<11} p50 {p50:6.2f} ms   p90 {p90:6.2f} ms")


WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, body: str, headers: dict[str, str], connections: int, seconds: float) -> dict:
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115
    with script:
        script.write('wrk.method = "POST"\n')
        script.write(f"wrk.body = {json.dumps(body)}\n")
        for name, value in {"Content-Type": "application/json", **headers}.items():
            script.write(f'wrk.headers["{name}"] = "{value}"\n')
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                # wrk's own 2 s timeout drops slow answers from the latencies (and
                # counts them nowhere we printed): wait for them, and count failures.
                "--timeout",
                "30s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    latency = {p: float(v) * UNITS[u] for p, v, u in WRK_LATENCY.findall(out)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": latency.get("50", float("nan")),
        "p99": latency.get("99", float("nan")),
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
    }


def start_floor(url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "FLOOR_DATABASE_URL": _dsn(url)}
    command = [sys.executable, "-m", "uvicorn", "bench.floor_app:app", "--port", str(port)]
    command += ["--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, cwd=ROOT)
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc, f"http://127.0.0.1:{port}"
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the floor app did not start")


async def count_work(url: str) -> tuple[int, int, int, int]:
    conn = await asyncpg.connect(_dsn(url))
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM tickets),"
            " (SELECT count(DISTINCT ticket_id) FROM sla_clocks),"
            " (SELECT count(*) FROM ticket_events WHERE kind = 'created'),"
            " (SELECT count(*) FROM outbox_events WHERE type = 'ticket.created')"
        )
        return tuple(row)  # type: ignore[return-value]
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="8 connections, 3 s (CI)")
    parser.add_argument("--connections", type=int, help="wrk connections (default 16)")
    parser.add_argument("--seconds", type=float, help="seconds per measured load (default 10)")
    parser.add_argument(
        "--workers", type=int, default=0, help="API processes (0: sladesk's default)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    connections = args.connections or (8 if args.smoke else 16)
    seconds = args.seconds or (3.0 if args.smoke else 10.0)
    # The same number of API processes for both: sladesk's default is the number of cores.
    workers = args.workers or (os.cpu_count() or 1)

    async with fresh_database("sladesk_bench_intake") as url:
        floor_conn = await asyncpg.connect(_dsn(url))
        from bench.floor_app import TABLE

        await floor_conn.execute(TABLE)
        await floor_conn.close()
        key = "sk_bench_" + secrets.token_urlsafe(24)
        proc, base = await start_service(url, key, workers=workers)
        floor, floor_base = start_floor(url, workers)
        try:
            async with httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as api:
                ids = await set_up(api)
            print(f"sladesk serve and the floor app, {workers} API process(es) each; wrk -t1\n")
            await single_requests(base, key, ids, 15 if args.smoke else 50)
            body = json.dumps(ticket_body(ids))
            headers = {"Authorization": f"Bearer {key}"}
            before = await count_work(url)
            print(f"\nload: POST, {seconds:.0f} s per run after a 2 s warm-up")
            for load in (connections, (connections * 3) // 2):
                results = {}
                for name, target, extra, pid in (
                    ("sladesk", f"{base}/v1/tickets", headers, proc.pid),
                    ("floor", f"{floor_base}/tickets", {}, floor.pid),
                ):
                    wrk(target, body, extra, load, 2)
                    # CPU per request as well as requests/s: on a shared machine whose
                    # speed drifts, where the time goes (the app's processes or the
                    # database) is steadier than how much of it there is.
                    app_cpu, db_cpu = cpu_seconds(pid), postgres_cpu_seconds()
                    results[name] = wrk(target, body, extra, load, seconds)
                    done = max(results[name]["requests"], 1)
                    results[name]["app_ms"] = (cpu_seconds(pid) - app_cpu) * 1000 / done
                    results[name]["db_ms"] = (postgres_cpu_seconds() - db_cpu) * 1000 / done
                for name, r in results.items():
                    print(
                        f"  {load:>3} conns  {name:<8} {r['rps']:8.0f} req/s   "
                        f"p50 {r['p50']:7.1f} ms   p99 {r['p99']:7.1f} ms   errors {r['errors']}"
                        f"   socket errors/timeouts {r['socket_errors']}"
                    )
                for name, r in results.items():
                    print(
                        f"  {load:>3} conns  {name:<8} CPU per request: its processes "
                        f"{r['app_ms']:.2f} ms, PostgreSQL {r['db_ms']:.2f} ms"
                    )
                ratio = results["sladesk"]["rps"] / results["floor"]["rps"]
                print(f"  {load:>3} conns  ratio sladesk / floor: {ratio:.3f}")
            after = await count_work(url)
            made = [a - b for a, b in zip(after, before, strict=True)]
            print(
                f"\nsladesk tickets created under load: {made[0]:,}; with clocks {made[1]:,}, "
                f"'created' timeline events {made[2]:,}, ticket.created outbox events {made[3]:,}"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            floor.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            floor.wait(timeout=60)


if __name__ == "__main__":
    asyncio.run(main())
