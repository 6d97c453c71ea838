"""Benchmark: the e-mail channel, as in production (`sladesk serve`: API, workers, the
SMTP listener), with real SMTP on both sides.

    python bench/mail.py            # 1,000 messages in; 100 assignments at 100/min
    python bench/mail.py --smoke    # 100 messages in; 20 assignments at 100/min

1. Starts a recording SMTP relay (aiosmtpd) on 127.0.0.1 and `sladesk serve` (a subprocess)
   against a fresh database, listening for mail on a free port and relaying through it.
2. **Intake**: N messages from an authorized contact delivered with `smtplib` over C
   concurrent connections; each `250` means the message is stored and its ticket
   committed. Prints messages per second from the first delivery to the last `250`, and
   the per-message p50/p99 of SMTP DATA to `250`.
3. **Acknowledgments**: assigns tickets through the API at 100 per minute; the relay notes
   the arrival of each acknowledgment on its own clock. Prints the lag from the
   assignment's response (committed) to the relay accepting the acknowledgment: p50, p99,
   max (target: p99 <= 1 s), and how many never arrived or arrived twice.

Prints figures; asserts nothing. Set `SLADESK_DATABASE_URL` to use a server instead of
the embedded one (a new database is created on it and dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import smtplib
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.common import fresh_database
from bench.escalation_latency import free_port, percentile, post, start_service

CONTACT = "bench@customer.example"


class Relay:
    """Accepts every message; notes (arrival epoch seconds, ticket number, Message-ID)."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, str]] = []
        self.port = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        arrived = time.time()
        head = bytes(envelope.original_content or b"").split(b"\r\n\r\n", 1)[0].decode("latin-1")
        fields = {}
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        ticket, message_id = fields.get("x-sladesk-ticket", ""), fields.get("message-id", "")
        self.arrivals.append((arrived, ticket, message_id))
        return "250 OK"

    async def start(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(self, hostname="relay.bench", loop=loop), "127.0.0.1", 0
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


def _message(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Bench Customer <{CONTACT}>"
    msg["To"] = "support@desk.bench"
    msg["Subject"] = f"Bench incident {n}"
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg.set_content(f"Incident number {n}: the report server does not answer.\n")
    return msg.as_bytes()


def _deliver_batch(port: int, items: list[bytes]) -> list[float]:
    """One SMTP connection delivering its share; seconds per message (DATA to 250)."""
    took = []
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        for raw in items:
            started = time.perf_counter()
            client.sendmail(CONTACT, ["support@desk.bench"], raw)
            took.append(time.perf_counter() - started)
    return took


async def set_up(api: httpx.AsyncClient) -> str:
    calendar = await post(
        api, "/v1/calendars", {"name": "Always", "timezone": "UTC", "weekly_hours": "24x7"}
    )
    plan = await post(
        api,
        "/v1/plans",
        {
            "code": "bench-mail",
            "name": "Bench",
            "level": 1,
            "calendar_id": calendar["id"],
            "channels": ["email"],
            "email_defaults": {"severity": "high", "category": "technical"},
            "targets": [
                {"metric": "first_response", "minutes": 60, "clock": "24x7"},
                {"metric": "resolution", "minutes": 480, "clock": "24x7"},
            ],
        },
    )
    org = await post(api, "/v1/organizations", {"name": "Bench Customer"})
    await post(
        api,
        f"/v1/organizations/{org['id']}/contacts",
        {"name": "Bench Customer", "email": CONTACT},
    )
    await post(
        api,
        "/v1/contracts",
        {"organization_id": org["id"], "plan_id": plan["id"], "starts_on": "2020-01-01"},
    )
    agent = await post(api, "/v1/agents", {"name": "Bench Agent", "email": "agent@desk.bench"})
    return str(agent["id"])


async def intake(port: int, n: int, connections: int) -> None:
    messages = [_message(i) for i in range(n)]
    shares = [messages[i::connections] for i in range(connections)]
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, _deliver_batch, port, share) for share in shares)
        )
    elapsed = time.perf_counter() - started
    samples = sorted(s * 1000 for share in results for s in share)
    print(
        f"intake: {n:,} messages over {connections} SMTP connections in {elapsed:.1f} s = "
        f"{n / elapsed:.1f} messages/s (stored and ticket committed at each 250)"
    )
    print(
        f"  per message, DATA to 250: p50 {percentile(samples, 0.5):.0f} ms, "
        f"p99 {percentile(samples, 0.99):.0f} ms, max {samples[-1]:.0f} ms"
    )


async def acknowledgments(
    api: httpx.AsyncClient, relay: Relay, agent_id: str, count: int, per_minute: float
) -> None:
    tickets = []
    cursor = None
    while len(tickets) < count:
        params: dict[str, object] = {"limit": 200, "sort": "received_at", "status": "new"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/tickets", params=params)).json()
        tickets += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    tickets = tickets[:count]
    assigned: dict[str, float] = {}
    interval = 60.0 / per_minute
    start = time.monotonic()
    for i, ticket in enumerate(tickets):
        await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
        response = await api.post(
            f"/v1/tickets/{ticket['id']}/actions/assign", json={"agent_id": agent_id}
        )
        if response.status_code != 200:
            raise SystemExit(f"assign: {response.status_code} {response.text}")
        assigned[ticket["number"]] = time.time()  # committed: the response is back
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if {number for _, number, _ in relay.arrivals} >= set(assigned):
            break
        await asyncio.sleep(0.05)
    first: dict[str, float] = {}
    copies = Counter(number for _, number, _ in relay.arrivals)
    for arrived, number, _ in relay.arrivals:
        first.setdefault(number, arrived)
    lags = sorted((first[n] - t) * 1000 for n, t in assigned.items() if n in first)
    missing = len(assigned) - len(lags)
    doubled = sum(1 for n in assigned if copies[n] > 1)
    print(
        f"acknowledgments: {len(assigned)} assignments at {per_minute:.0f}/min; relay "
        f"acceptance lag p50 {percentile(lags, 0.5):.0f} ms, p99 {percentile(lags, 0.99):.0f} "
        f"ms, max {lags[-1]:.0f} ms (target p99 <= 1000 ms)"
        if lags
        else "acknowledgments: none arrived"
    )
    print(f"  never arrived: {missing}; arrived more than once: {doubled}")


async def main(n: int, connections: int, acks: int) -> None:
    async with fresh_database("sladesk_bench_mail") as url:
        relay = Relay()
        relay_server = await relay.start()
        mail_port = free_port()
        admin_key = "sk_bench_" + secrets.token_urlsafe(24)
        os.environ.update(
            {
                "SLADESK_MAIL_LISTEN": f"127.0.0.1:{mail_port}",
                "SLADESK_SMTP_URL": f"smtp://127.0.0.1:{relay.port}",
                "SLADESK_MAIL_FROM": "Support <support@desk.bench>",
                "SLADESK_MAIL_AUTO_REPLIES_PER_HOUR": "1000",
            }
        )
        proc, base = await start_service(url, admin_key)
        try:
            headers = {"Authorization": f"Bearer {admin_key}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as api:
                agent_id = await set_up(api)
                await intake(mail_port, n, connections)
                await acknowledgments(api, relay, agent_id, acks, per_minute=100)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            relay_server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a quick run")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--acks", type=int, default=None)
    args = parser.parse_args()
    messages = args.messages or (100 if args.smoke else 1000)
    acks = args.acks or (20 if args.smoke else 100)
    asyncio.run(main(messages, args.connections, min(acks, messages)))
