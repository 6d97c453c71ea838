"""Benchmark: 500 concurrent event streams on one server process; lag from a warning's
instant to its arrival on each stream.

    python bench/stream.py            # 500 streams, 200 warnings over 20 s
    python bench/stream.py --smoke    # 50 streams, 20 warnings over 5 s

1. Starts `sladesk serve --workers 1` (a subprocess: API, timer loop and stream hub in
   one process) against a fresh database.
2. Opens the streams (`GET /v1/events/stream?types=sla.warning`, staff keys) from this
   process over real HTTP, and waits until every one has started.
3. Creates tickets whose `sla.warning` instants fall evenly over a window that starts
   once they are all created, and reads every stream until the window has passed.
4. Prints, over every (stream, warning) delivery, the lag between the threshold's
   instant (`threshold.at`) and its arrival on the stream (this process's clock): p50,
   p99, max; deliveries missing and repeated; and, from the database, the timer's own
   part (instant to firing) to tell it from the stream's.

The clients run in this one Python process: on a small machine their parsing is part of
the lag measured. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine
from bench.common import fresh_database
from bench.escalation_latency import percentile, post, start_service

WARN_AFTER = timedelta(minutes=30)  # a one-hour target warns at 50 %


async def set_up(api: httpx.AsyncClient) -> tuple[str, str]:
    calendar = await post(
        api, "/v1/calendars", {"name": "Always", "timezone": "UTC", "weekly_hours": "24x7"}
    )
    target = {"metric": "first_response", "minutes": 60, "clock": "24x7", "warn_at_percent": [50]}
    plan = await post(
        api,
        "/v1/plans",
        {
            "code": "bench",
            "name": "Bench",
            "level": 1,
            "calendar_id": calendar["id"],
            "channels": ["email"],
            "targets": [target],
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
    return str(org["id"]), str(contact["id"])


class Stream:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.arrivals: list[tuple[float, int, str]] = []  # (epoch s, event id, threshold.at)

    async def read(self, client: httpx.AsyncClient, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with client.stream(
            "GET", "/v1/events/stream", params={"types": "sla.warning"}, headers=headers
        ) as response:
            if response.status_code != 200:
                raise SystemExit(f"stream: {response.status_code} {await response.aread()!r}")
            self.started.set()
            event_id = 0
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: "):
                    arrived = time.time()
                    at = json.loads(line[6:])["data"]["threshold"]["at"]
                    self.arrivals.append((arrived, event_id, at))


async def main(connections: int, warnings: int, window: float) -> None:
    async with fresh_database("sladesk_bench_stream") as url:
        admin_key = "sk_bench_" + secrets.token_urlsafe(24)
        os.environ |= {
            "SLADESK_STREAM_MAX_PER_KEY": str(connections),
            "SLADESK_STREAM_MAX_SECONDS": "3600",
            "SLADESK_STREAM_HEARTBEAT_SECONDS": "15",
        }
        proc, base = await start_service(url, admin_key, workers=1)  # one process's streams
        try:
            limits = httpx.Limits(max_connections=connections + 20, max_keepalive_connections=0)
            timeout = httpx.Timeout(60, read=None)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
                api_headers = {"Authorization": f"Bearer {admin_key}"}
                api = httpx.AsyncClient(base_url=base, headers=api_headers, timeout=60)
                org, contact = await set_up(api)
                streams = [Stream() for _ in range(connections)]
                opened = time.monotonic()
                readers = [asyncio.create_task(s.read(client, admin_key)) for s in streams]
                await asyncio.wait_for(
                    asyncio.gather(*(s.started.wait() for s in streams)), timeout=300
                )
                print(f"{connections} streams open in {time.monotonic() - opened:.1f} s")

                # Warnings spread over the window, which starts once the tickets exist.
                margin = 5 + warnings * 0.05
                start = datetime.now(UTC) + timedelta(seconds=margin)
                step = window / max(warnings - 1, 1)
                instants = [start + timedelta(seconds=i * step) for i in range(warnings)]
                created = time.monotonic()
                for i, instant in enumerate(instants):
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
                            "received_at": (instant - WARN_AFTER).isoformat(),
                        },
                    )
                took = time.monotonic() - created
                late = datetime.now(UTC) > start
                print(
                    f"created {warnings} tickets in {took:.1f} s"
                    + (" (after the window began: lags include intake)" if late else "")
                )
                expected = connections * warnings
                deadline = time.monotonic() + (instants[-1] - datetime.now(UTC)).total_seconds()
                while time.monotonic() < deadline + 20:
                    await asyncio.sleep(0.5)
                    got = sum(len(s.arrivals) for s in streams)
                    if got >= expected and time.monotonic() > deadline + 2:
                        break
                for reader in readers:
                    reader.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await api.aclose()
            firing = await firing_lags(url)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)

    lags: list[float] = []
    repeated = 0
    for stream in streams:
        seen = Counter(event_id for _, event_id, _ in stream.arrivals)
        repeated += sum(n - 1 for n in seen.values())
        for arrived, _, at in stream.arrivals:
            instant = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
            lags.append((arrived - instant) * 1000)
    lags.sort()
    delivered = len(lags)
    print(f"\ndeliveries: {delivered:,} of {expected:,} ({connections} streams x {warnings})")
    print(f"missing: {expected - delivered + repeated:,}, repeated: {repeated:,}")
    if lags:
        print(
            f"instant -> arrival on the stream: p50 {percentile(lags, 0.5):.0f} ms, "
            f"p99 {percentile(lags, 0.99):.0f} ms, max {lags[-1]:.0f} ms"
        )
    if firing is not None:
        print(
            f"of which instant -> firing (timer loop): p50 {firing[0]:.0f} ms, "
            f"p99 {firing[1]:.0f} ms, max {firing[2]:.0f} ms"
        )


async def firing_lags(url: str) -> tuple[float, float, float] | None:
    """p50, p99 and max milliseconds from each warning instant to its firing."""
    engine = make_engine(url, Settings(database_url=url))
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY lag),"
                    " max(lag) FROM (SELECT extract(epoch FROM fired_at - instant) * 1000"
                    " AS lag FROM sla_firings) f"
                )
            )
        ).one()
    await engine.dispose()
    if row[0] is None:
        return None
    return float(row[0][0]), float(row[0][1]), float(row[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="50 streams, 20 warnings")
    args = parser.parse_args()
    if args.smoke:
        asyncio.run(main(50, 20, 5.0))
    else:
        asyncio.run(main(500, 200, 20.0))
