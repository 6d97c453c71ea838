"""A small desk whose SLA figures are computed by hand (tests of reports and simulator).

Calendar: UTC, Mon-Fri 09:00-17:00, Wednesday 2026-03-04 an extra holiday.
Plan A (org A): first_response 60 business min (warn 50 %, escalate to tier 2 on breach),
resolution 480 business min. Plan B (org B): first_response 60 min 24x7, resolution best
effort. Minutes below are business minutes after receipt.

* T1 (A) Mon 03-02 09:00: reply 09:30 (FR 30), resolve 13:00, reopen 14:00, resolve 15:00
  (resolution 240 + 60 = 300 min = 18000 s, met).
* T2 (A) Mon 10:00: reply 11:30 (FR 90: breached at 11:00), resolve Tue 10:00
  (420 + 60 = 480: exactly due, met).
* T3 (A) Mon 12:00: request_info 12:10 (FR 10, met; resolution paused), customer reply
  on the holiday Wed 12:00 (resumes; counts from Thu 09:00), never resolved: resolution
  breached while running; the timer fires the breach (and escalates to tier 2).
* T7 (A) Fri 03-27 09:00: request_info 09:20 (FR 20, met), waits forever: resolution
  paused, pending.
* T5 (B) Mon 03-02 09:00: reply 09:05 (FR 5 min 24x7, met); resolution best effort.
* T6 (A) Wed 04-01 00:00: outside [March): not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.workers.escalation import TimerConfig, TimerLoop
from tests.factories import create_contact, create_org
from tests.plan_factories import create_calendar, create_contract, create_plan, target
from tests.ticket_factories import Desk, act, open_ticket

FROM, TO = "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"


@dataclass
class Dataset:
    a: Desk
    b: Desk
    tickets: dict[str, dict[str, Any]]


async def _desk(
    api: httpx.AsyncClient, calendar: dict[str, Any], targets: list[Any], **org: Any
) -> Desk:
    plan = await create_plan(api, calendar["id"], targets=targets)
    o = await create_org(api, **org)
    contact = await create_contact(api, o["id"])
    contract = await create_contract(api, o["id"], plan["id"], starts_on="2025-01-01")
    return Desk(calendar, plan, o, contact, contract)


async def build(api: httpx.AsyncClient, engine: AsyncEngine) -> Dataset:
    calendar = await create_calendar(
        api, timezone="UTC", hours="09:00-17:00", extra_holidays=["2026-03-04"]
    )
    a = await _desk(
        api,
        calendar,
        [
            target("first_response", 60, warn_at_percent=[50], on_breach={"escalate_to_tier": 2}),
            target("resolution", 480),
        ],
    )
    b = await _desk(
        api,
        calendar,
        [target("first_response", 60, clock="24x7"), target("resolution", None)],
        name='=HYPERLINK("x")',
    )
    t: dict[str, dict[str, Any]] = {}

    async def ticket(name: str, desk: Desk, at: str) -> str:
        t[name] = await open_ticket(api, desk, received_at=at)
        return str(t[name]["id"])

    t1 = await ticket("T1", a, "2026-03-02T09:00:00Z")
    t2 = await ticket("T2", a, "2026-03-02T10:00:00Z")
    t5 = await ticket("T5", b, "2026-03-02T09:00:00Z")
    t3 = await ticket("T3", a, "2026-03-02T12:00:00Z")
    await act(api, t5, "reply", body="hi", occurred_at="2026-03-02T09:05:00Z")
    await act(api, t1, "reply", body="on it", occurred_at="2026-03-02T09:30:00Z")
    await act(api, t3, "request_info", body="logs?", occurred_at="2026-03-02T12:10:00Z")
    await act(api, t2, "reply", body="late", occurred_at="2026-03-02T11:30:00Z")
    await act(api, t1, "resolve", resolution="fix", body="x", occurred_at="2026-03-02T13:00:00Z")
    await act(api, t1, "reopen", body="again", occurred_at="2026-03-02T14:00:00Z")
    await act(api, t1, "resolve", resolution="fix", body="x", occurred_at="2026-03-02T15:00:00Z")
    await act(api, t2, "resolve", resolution="fix", body="x", occurred_at="2026-03-03T10:00:00Z")
    await act(api, t3, "customer_reply", body="here", occurred_at="2026-03-04T12:00:00Z")
    t7 = await ticket("T7", a, "2026-03-27T09:00:00Z")
    await act(api, t7, "request_info", body="logs?", occurred_at="2026-03-27T09:20:00Z")
    await ticket("T6", a, "2026-04-01T00:00:00Z")
    now = datetime.now(UTC)
    loop = TimerLoop(engine, TimerConfig(), clock=lambda: now)
    while (await loop.fire_thresholds(now)).more:
        pass
    return Dataset(a, b, t)
