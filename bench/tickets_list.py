"""Benchmark: listing tickets with 100,000 of them in the database.

    python bench/tickets_list.py            # 100,000 tickets
    python bench/tickets_list.py --smoke    # 10,000 tickets, quick (CI)

Bulk-loads tickets (with two SLA clocks each) with generate_series, then times the
service call behind `GET /v1/tickets` (query, clock rows, calendar, and building the
response models for a page of 50) for the filters a support console uses, and prints the
plan of each query. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.domain.vocab import TicketStatus
from app.security import Principal, Role
from app.services import tickets
from bench.common import fresh_database, timed

BREACH = json.dumps(
    {"key": "breach", "kind": "breach", "mark_us": 3_600_000_000, "percent": 100,
     "before_minutes": None}
)  # fmt: skip

SEED = """
INSERT INTO calendars (id, name, timezone, spec, version)
VALUES (:cal, 'bench', 'UTC', '{"timezone": "UTC", "weekly_hours": "24x7"}', 1);
INSERT INTO organizations (id, name, active)
SELECT md5('org' || g)::uuid, 'Org ' || g, true FROM generate_series(1, 50) g;
INSERT INTO contacts (id, organization_id, name, email, role, active)
SELECT md5('contact' || g)::uuid, md5('org' || g)::uuid, 'C' || g, 'c' || g || '@x.example',
       'authorized', true
FROM generate_series(1, 50) g;
INSERT INTO agents (id, name, email, tier, active)
SELECT md5('agent' || g)::uuid, 'A' || g, 'a' || g || '@v.example', 1 + g % 4, true
FROM generate_series(1, 20) g;
CREATE TEMP TABLE bench_rows AS
SELECT g, CAST(:start AS timestamptz) - g * interval '1 minute' AS at, g % 8 < 4 AS running
FROM generate_series(1, :n) g;
INSERT INTO tickets (
    id, number, organization_id, contact_id, channel, severity, category, subject,
    description, status, tier, assignee_id, entitled, entitlement_reasons, plan_snapshot,
    after_hours, received_at, contact_attempts, last_event_at, version, next_due_at)
SELECT md5('t' || g)::uuid, nextval('ticket_number_seq'),
       md5('org' || (1 + g % 50))::uuid, md5('contact' || (1 + g % 50))::uuid, 'email',
       (ARRAY['critical','high','medium','low'])[1 + g % 4], 'technical', 'Ticket ' || g, '',
       (ARRAY['new','open','in_progress','waiting_on_customer','resolved','closed','closed',
              'closed'])[1 + g % 8],
       1 + g % 4, CASE WHEN g % 3 = 0 THEN NULL ELSE md5('agent' || (1 + g % 20))::uuid END,
       true, '[]', CAST(:snapshot AS jsonb), false, at, 0, at, 1,
       CASE WHEN running THEN at + interval '8 hours' END
FROM bench_rows;
INSERT INTO sla_clocks (id, ticket_id, metric, target, minutes, kind, calendar_id, started_at,
    changed_at, running_since, elapsed_us, stopped_at, breached_at, thresholds, crossings,
    due_at, next_check_at)
SELECT md5('fr' || g)::uuid, md5('t' || g)::uuid, 'first_response', '{}', 60, 'business', :cal,
       at, at + answered, NULL, extract(epoch FROM answered)::bigint * 1000000, at + answered,
       CASE WHEN late THEN at + interval '1 hour' END,
       jsonb_build_array(CAST(:breach AS jsonb)),
       CASE WHEN late THEN jsonb_build_array(jsonb_build_object(
           'threshold', CAST(:breach AS jsonb), 'at', to_json(at + interval '1 hour')))
       ELSE '[]' END,
       NULL, NULL
FROM (SELECT *, g % 10 = 0 AS late,
             CASE WHEN g % 10 = 0 THEN interval '90 min' ELSE interval '30 min' END AS answered
      FROM bench_rows) r;
INSERT INTO sla_clocks (id, ticket_id, metric, target, minutes, kind, calendar_id, started_at,
    changed_at, running_since, elapsed_us, stopped_at, breached_at, thresholds, crossings,
    due_at, next_check_at)
SELECT md5('res' || g)::uuid, md5('t' || g)::uuid, 'resolution', '{}', 480, 'business', :cal,
       at, CASE WHEN running THEN at ELSE at + interval '2 hours' END,
       CASE WHEN running THEN at END, CASE WHEN running THEN 0 ELSE 7200000000 END,
       CASE WHEN NOT running THEN at + interval '2 hours' END, NULL, '[]', '[]',
       CASE WHEN running THEN at + interval '8 hours' END, NULL
FROM bench_rows;
ANALYZE;
"""


async def main(n: int, repeat: int) -> None:
    async with fresh_database() as url:
        settings = Settings(database_url=url)
        engine = make_engine(url, settings)
        cal = uuid.uuid4()
        snapshot = json.dumps(
            {"plan": {"id": str(uuid.uuid4()), "code": "bench", "name": "Bench", "version": 1}}
        )
        start = datetime.now(UTC)
        loaded = datetime.now(UTC)
        async with engine.begin() as conn:
            for statement in filter(str.strip, SEED.split(";\n")):
                params = {
                    "cal": cal,
                    "snapshot": snapshot,
                    "start": start,
                    "n": n,
                    "breach": BREACH,
                }
                used = {k: v for k, v in params.items() if f":{k}" in statement}
                await conn.execute(text(statement), used)
        took = (datetime.now(UTC) - loaded).total_seconds()
        print(f"loaded {n:,} tickets and {2 * n:,} clocks in {took:.1f} s")
        admin = Principal(key_id=uuid.uuid4(), role=Role.ADMIN)
        sessionmaker = make_sessionmaker(engine)
        async with engine.connect() as conn:
            org_id = (await conn.execute(text("SELECT md5('org7')::uuid"))).scalar_one()
            agent_id = (await conn.execute(text("SELECT md5('agent3')::uuid"))).scalar_one()
        customer = Principal(key_id=uuid.uuid4(), role=Role.CUSTOMER, organization_id=org_id)
        cases = {
            "newest first (default)": dict(principal=admin),
            "status=open,in_progress": dict(
                principal=admin, status=[TicketStatus.OPEN, TicketStatus.IN_PROGRESS]
            ),
            "one organization": dict(principal=admin, organization_id=org_id),
            "customer key (own org)": dict(principal=customer),
            "assignee": dict(principal=admin, assignee_id=agent_id),
            "breached=true": dict(principal=admin, breached=True),
            "due_before=now+1h": dict(principal=admin, due_before=start + timedelta(hours=1)),
            "sort=next_due": dict(principal=admin, sort="next_due"),
        }
        print(f"{'query':28} {'median ms':>10} {'p95 ms':>8}  rows")
        for name, kwargs in cases.items():
            principal = kwargs.pop("principal")

            async def call(principal: Principal = principal, kwargs: dict = kwargs) -> object:
                async with sessionmaker() as session:
                    items, cursor = await tickets.list_tickets(
                        session, principal, now=start, cursor=None, limit=50, **kwargs
                    )
                    return items, cursor

            items, cursor = await call()
            median, p95 = await timed(call, repeat)
            print(f"{name:28} {median:10.2f} {p95:8.2f}  {len(items)}")
            if cursor is not None:

                async def second(principal: Principal = principal, kwargs: dict = kwargs,
                                 cursor: str = cursor) -> object:  # fmt: skip
                    async with sessionmaker() as session:
                        return await tickets.list_tickets(
                            session, principal, now=start, cursor=cursor, limit=50, **kwargs
                        )

                median, p95 = await timed(second, repeat)
                print(f"{'  ... next page':28} {median:10.2f} {p95:8.2f}")
        print()
        print("query plans (EXPLAIN ANALYZE of the page query):")
        for name in ("breached=true", "sort=next_due", "one organization"):
            kwargs = dict(cases[name])
            kwargs.pop("principal", None)
            stmt = tickets.list_statement(admin, now=start, cursor=None, limit=50, **kwargs)
            sql = str(
                stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            )
            async with engine.connect() as conn:
                plan = (await conn.execute(text("EXPLAIN ANALYZE " + sql))).scalars().all()
            print(f"-- {name}")
            for line in plan:
                if any(k in line for k in ("Index", "Scan", "Limit", "Execution Time", "Sort")):
                    print("   " + line.strip())
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="10,000 tickets, few repeats")
    args = parser.parse_args()
    asyncio.run(main(10_000 if args.smoke else 100_000, 5 if args.smoke else 30))
