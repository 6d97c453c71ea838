"""Benchmark: the SLA compliance report over 1,000,000 tickets, and a simulation of its
largest batch (10,000 tickets).

    python bench/compliance.py            # 1,000,000 tickets over a year, ~2.3 M clocks
    python bench/compliance.py --smoke    # 20,000 tickets, quick (CI)

Bulk-loads tickets received over the past year (generate_series), each with a timed
first-response clock (10 % breached) and a resolution clock (stopped 75 %, running or
paused the rest), and timelines (created, replied, resolved) for the tickets of the last
days, up to the simulator's cap. Times the service calls behind
`GET /v1/reports/sla-compliance` (full year, each group_by) and `POST /v1/reports/simulate`
(own plans, then a stored plan), and prints the plan of the aggregate. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.schemas.reports import GroupBy, SimulationRequest
from app.security import Principal, Role
from app.services import reports
from bench.common import fresh_database, timed

PLAN = {
    "code": "bench",
    "name": "Bench",
    "level": 1,
    "channels": ["email"],
    "excluded_categories": [],
    "pause_on": ["waiting_on_customer"],
    "auto_close": None,
    "billing": {},
    "targets": [
        {"metric": "first_response", "minutes": 60, "clock": "24x7"},
        {"metric": "resolution", "minutes": 480, "clock": "24x7"},
    ],
    "version": 1,
    "active": True,
}

SEED = """
INSERT INTO calendars (id, name, timezone, spec, version)
VALUES (:cal, 'bench', 'UTC', '{"timezone": "UTC", "weekly_hours": "24x7"}', 1);
INSERT INTO plans (id, code, name, level, calendar_id, channels, excluded_categories, pause_on,
    billing, targets, version, active)
VALUES (:plan, 'bench', 'Bench', 1, :cal, '["email"]', '[]', '["waiting_on_customer"]', '{}',
    CAST(:targets AS jsonb), 1, true);
INSERT INTO plans (id, code, name, level, calendar_id, channels, excluded_categories, pause_on,
    billing, targets, version, active)
VALUES (:premium, 'premium', 'Premium', 2, :cal, '["email"]', '[]', '["waiting_on_customer"]',
    '{}', '[{"metric": "first_response", "minutes": 20, "clock": "24x7"},
            {"metric": "resolution", "minutes": 240, "clock": "24x7"}]', 1, true);
INSERT INTO organizations (id, name, active)
SELECT md5('org' || g)::uuid, 'Org ' || g, true FROM generate_series(1, 200) g;
INSERT INTO contacts (id, organization_id, name, email, role, active)
SELECT md5('contact' || g)::uuid, md5('org' || g)::uuid, 'C' || g, 'c' || g || '@x.example',
       'authorized', true
FROM generate_series(1, 200) g;
CREATE TEMP TABLE bench_rows AS
SELECT g, CAST(:start AS timestamptz) - g * (interval '365 days' / :n) AS at,
       (interval '1 minute') * (5 + (g::bigint * 7919) % 80) AS answered,
       (interval '1 minute') * (60 + (g::bigint * 104729) % 600) AS resolved,
       g % 4 <> 0 AS done
FROM generate_series(1, :n) g;
INSERT INTO tickets (
    id, number, organization_id, contact_id, channel, severity, category, subject,
    description, status, tier, entitled, entitlement_reasons, plan_id, plan_snapshot,
    after_hours, received_at, contact_attempts, last_event_at, version)
SELECT md5('t' || g)::uuid, nextval('ticket_number_seq'),
       md5('org' || (1 + g % 200))::uuid, md5('contact' || (1 + g % 200))::uuid, 'email',
       (ARRAY['critical','high','medium','low'])[1 + g % 4], 'technical', 'Ticket ' || g, '',
       CASE WHEN done THEN 'resolved' ELSE 'in_progress' END, 1, true, '[]', :plan,
       CAST(:snapshot AS jsonb), false, at, 0, at, 1
FROM bench_rows;
INSERT INTO sla_clocks (id, ticket_id, metric, target, minutes, kind, calendar_id, started_at,
    changed_at, running_since, elapsed_us, stopped_at, breached_at, thresholds, crossings,
    due_at, next_check_at)
SELECT md5('fr' || g)::uuid, md5('t' || g)::uuid, 'first_response', '{}', 60, '24x7', NULL,
       at, at + answered, NULL, (extract(epoch FROM answered) * 1000000)::bigint,
       at + answered, CASE WHEN answered > interval '60 min' THEN at + interval '60 min' END,
       '[]', '[]', NULL, NULL
FROM bench_rows;
INSERT INTO sla_clocks (id, ticket_id, metric, target, minutes, kind, calendar_id, started_at,
    changed_at, running_since, elapsed_us, stopped_at, breached_at, thresholds, crossings,
    due_at, next_check_at)
SELECT md5('res' || g)::uuid, md5('t' || g)::uuid, 'resolution', '{}', 480, '24x7', NULL,
       at, CASE WHEN done THEN at + resolved ELSE at END,
       CASE WHEN done THEN NULL ELSE at END,
       CASE WHEN done THEN (extract(epoch FROM resolved) * 1000000)::bigint ELSE 0 END,
       CASE WHEN done THEN at + resolved END,
       CASE WHEN done AND resolved > interval '480 min' THEN at + interval '480 min' END,
       '[]', '[]', CASE WHEN NOT done THEN at + interval '480 min' END, NULL
FROM bench_rows;
INSERT INTO ticket_events (id, ticket_id, kind, public, actor, data, occurred_at, recorded_at)
SELECT gen_random_uuid(), md5('t' || g)::uuid, k.kind, true, '{"role": "agent"}',
       CASE WHEN k.kind = 'created' THEN jsonb_build_object('channel', 'email',
            'severity', (ARRAY['critical','high','medium','low'])[1 + g % 4],
            'category', 'technical') ELSE '{}' END,
       at + k.after, at + k.after
FROM bench_rows,
     LATERAL (VALUES (1, 'created', interval '0'), (2, 'replied', answered),
                     (3, 'resolved', resolved)) AS k(n, kind, after)
WHERE g <= :batch AND (k.kind <> 'resolved' OR done)
ORDER BY g, k.n;
ANALYZE;
"""


async def main(n: int, repeat: int) -> None:
    async with fresh_database() as url:
        engine = make_engine(url, Settings(database_url=url, db_statement_timeout_ms=0))
        cal, plan, premium = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        snapshot = {
            "plan": {"id": str(plan), "code": "bench", "name": "Bench", "version": 1},
            "calendar_id": str(cal),
            "chain": [
                {"id": str(plan), "calendar_id": str(cal), "timezone": "UTC", "requires": None,
                 **PLAN}
            ],
        }  # fmt: skip
        start = datetime.now(UTC).replace(microsecond=0)
        batch = 9_000
        params = {
            "cal": cal,
            "plan": plan,
            "premium": premium,
            "targets": json.dumps(PLAN["targets"]),
            "snapshot": json.dumps(snapshot),
            "start": start,
            "n": n,
            "batch": batch,
        }
        loaded = time.perf_counter()
        async with engine.begin() as conn:
            for statement in filter(str.strip, SEED.split(";\n")):
                used = {k: v for k, v in params.items() if f":{k}" in statement}
                await conn.execute(text(statement), used)
        print(f"loaded {n:,} tickets and {2 * n:,} clocks in {time.perf_counter() - loaded:.1f} s")
        admin = Principal(key_id=uuid.uuid4(), role=Role.ADMIN)
        sessions = make_sessionmaker(engine)
        year_from, year_to = start - timedelta(days=365), start + timedelta(seconds=1)
        print(f"{'sla-compliance (a year)':34} {'median ms':>10} {'p95 ms':>8}  groups")
        for group_by in GroupBy:

            async def call(group_by: GroupBy = group_by) -> object:
                async with sessions() as session:
                    return await reports.sla_compliance(
                        session, admin, from_=year_from, to=year_to, group_by=group_by,
                        organization_id=None, tz="Europe/Madrid", include_breaches=False,
                        breach_limit=100, now=start,
                    )  # fmt: skip

            result = await call()
            median, p95 = await timed(call, repeat)
            print(f"  group_by={group_by.value:23} {median:10.1f} {p95:8.1f}  {len(result.groups)}")  # type: ignore[attr-defined]

        async def with_breaches() -> object:
            async with sessions() as session:
                return await reports.sla_compliance(
                    session, admin, from_=year_from, to=year_to, group_by=GroupBy.ORGANIZATION,
                    organization_id=None, tz="UTC", include_breaches=True, breach_limit=100,
                    now=start,
                )  # fmt: skip

        median, p95 = await timed(with_breaches, max(1, repeat // 2))
        print(f"  {'organization + breaches':32} {median:10.1f} {p95:8.1f}")
        async with engine.connect() as conn:
            last = (
                await conn.execute(
                    text(
                        "SELECT min(received_at) FROM (SELECT received_at FROM tickets "
                        "ORDER BY received_at DESC LIMIT :b) x"
                    ),
                    {"b": batch},
                )
            ).scalar_one()
        print(f"simulate ({batch:,} tickets, their timelines replayed)")
        for name, plan_id in (("own plans", None), ("premium plan", premium)):
            body = SimulationRequest.model_validate(
                {"from": last.isoformat(), "to": year_to.isoformat(),
                 "plan_id": str(plan_id) if plan_id else None}
            )  # fmt: skip

            async def sim(body: SimulationRequest = body) -> object:
                async with sessions() as session, session.begin():
                    return await reports.simulate(session, admin, body, now=start)

            result = await sim()
            median, p95 = await timed(sim, max(1, repeat // 3))
            print(
                f"  {name:32} {median:10.1f} {p95:8.1f}  tickets={result.tickets:,} "  # type: ignore[attr-defined]
                f"changed={result.changed_total:,}"  # type: ignore[attr-defined]
            )
        print()
        print("plan of the aggregate (group_by=organization, a year):")
        sql = reports.Scope(year_from, year_to, None, "UTC", start).sql(
            reports._aggregate(reports.ACTUAL_FACTS, GroupBy.ORGANIZATION)
        )
        async with engine.connect() as conn:
            plan_rows = (
                (
                    await conn.execute(
                        text("EXPLAIN (ANALYZE, BUFFERS OFF) " + sql),
                        {"from_": year_from, "to": year_to, "as_of": start, "tz": "UTC"},
                    )
                )
                .scalars()
                .all()
            )
        for line in plan_rows:
            if any(k in line for k in ("Scan", "Join", "Aggregate", "Execution Time", "Workers")):
                print("   " + line.strip())
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20,000 tickets, few repeats")
    parser.add_argument("--tickets", type=int, default=None)
    args = parser.parse_args()
    count = args.tickets or (20_000 if args.smoke else 1_000_000)
    asyncio.run(main(count, 3 if args.smoke else 5))
