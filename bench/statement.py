"""Benchmark: the monthly statement with 1,000,000 work log entries.

    python bench/statement.py            # 1,000,000 entries over a year, 2,000 organizations
    python bench/statement.py --smoke    # 20,000 entries, quick (CI)

Bulk-loads organizations, tickets (10 per organization) and work log entries spread over
the past year (generate_series), plus ~20,000 entries of one month for one large
organization (a tenth of them non-billable). Times the service call behind
`GET /v1/reports/statement` for that month: totals + first page (1000 lines), walking
every page, and the CSV of a 5000-line page. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.security import Principal, Role
from app.services import statements
from bench.common import fresh_database, timed

SEED = """
INSERT INTO organizations (id, name, active)
SELECT md5('org' || g)::uuid, 'Org ' || g, true FROM generate_series(1, :orgs) g;
INSERT INTO contacts (id, organization_id, name, email, role, active)
SELECT md5('contact' || g)::uuid, md5('org' || g)::uuid, 'C' || g, 'c' || g || '@x.example',
       'authorized', true
FROM generate_series(1, :orgs) g;
INSERT INTO tickets (
    id, number, organization_id, contact_id, channel, severity, category, subject,
    description, status, tier, entitled, entitlement_reasons, plan_snapshot,
    after_hours, received_at, contact_attempts, last_event_at, version)
SELECT md5('t' || g)::uuid, nextval('ticket_number_seq'),
       md5('org' || (1 + g % :orgs))::uuid, md5('contact' || (1 + g % :orgs))::uuid, 'email',
       'high', 'technical', 'Ticket ' || g, '', 'in_progress', 1, true, '[]',
       CAST(:snapshot AS jsonb), false, CAST(:start AS timestamptz) - interval '400 days', 0,
       CAST(:start AS timestamptz), 1
FROM generate_series(0, :orgs * 10 - 1) g;
INSERT INTO worklogs (id, ticket_id, organization_id, kind, occurred_at, minutes,
    consultants, multiplier, after_hours_minutes, charged_minutes, billable, source)
SELECT gen_random_uuid(), md5('t' || (g % (:orgs * 10)))::uuid,
       md5('org' || (1 + g % :orgs))::uuid,
       (ARRAY['follow_up','session','work'])[1 + g % 3],
       CAST(:start AS timestamptz) - g * (interval '365 days' / :n), 30, 1, 1, 0,
       CASE WHEN g % 10 = 0 THEN 0 ELSE 30 END, g % 10 <> 0, 'manual'
FROM generate_series(1, :n) g;
INSERT INTO worklogs (id, ticket_id, organization_id, kind, occurred_at, minutes,
    consultants, multiplier, after_hours_minutes, charged_minutes, billable, source, note)
SELECT gen_random_uuid(), md5('t' || (1 + (g % 10) * :orgs))::uuid, md5('org2')::uuid,
       (ARRAY['follow_up','session','work'])[1 + g % 3],
       CAST(:month_start AS timestamptz) + g * (interval '27 days' / :big), 45, 1 + g % 3,
       1.5, CASE WHEN g % 7 = 0 THEN 45 ELSE 0 END,
       CASE WHEN g % 10 = 0 THEN 0 ELSE 45 * (1 + g % 3) END, g % 10 <> 0, 'auto', 'n' || g
FROM generate_series(1, :big) g;
ANALYZE;
"""


async def main(n: int, big: int, orgs: int, repeat: int) -> None:
    async with fresh_database() as url:
        engine = make_engine(url, Settings(database_url=url, db_statement_timeout_ms=0))
        start = datetime.now(UTC).replace(microsecond=0)
        # Last month, whole and past: its entries start at its first local midnight in
        # Mexico City (06:00 UTC) and span 27 days.
        year, prev = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
        month_start = datetime(year, prev, 1, 6, tzinfo=UTC)
        month = f"{year:04d}-{prev:02d}"
        params = {
            "orgs": orgs, "n": n, "big": big, "start": start, "month_start": month_start,
            "snapshot": json.dumps({"plan": {"id": str(uuid.uuid4()), "code": "b"}}),
        }  # fmt: skip
        loaded = time.perf_counter()
        async with engine.begin() as conn:
            for statement in filter(str.strip, SEED.split(";\n")):
                used = {k: v for k, v in params.items() if f":{k}" in statement}
                await conn.execute(text(statement), used)
        took = time.perf_counter() - loaded
        print(f"loaded {n + big:,} worklogs ({orgs:,} organizations) in {took:.1f} s")
        async with engine.connect() as conn:
            org = (await conn.execute(text("SELECT md5('org2')::uuid"))).scalar_one()
        admin = Principal(key_id=uuid.uuid4(), role=Role.ADMIN)
        sessions = make_sessionmaker(engine)

        async def page(limit: int = 1000, cursor: str | None = None) -> statements.Statement:
            async with sessions() as session:
                return await statements.statement(
                    session, admin, organization_id=org, month=month, tz="America/Mexico_City",
                    cursor=cursor, limit=limit,
                )  # fmt: skip

        first = await page()
        t = first.totals
        print(f"month {month}: {t.entries:,} billable lines, {t.charged_hours} h charged, "
              f"{t.unbilled.entries:,} unbilled")  # fmt: skip

        async def walk() -> int:
            pages, cursor = 0, None
            while True:
                result = await page(1000, cursor)
                pages += 1
                cursor = result.next_cursor
                if cursor is None:
                    return pages

        async def as_csv() -> str:
            return statements.to_csv(await page(5000), staff=True)

        print(f"{'statement (large org, a month)':36} {'median ms':>10} {'p95 ms':>8}")
        for name, fn, times in (
            ("totals + first page (1000 lines)", page, repeat),
            (f"walk all pages ({await walk()} x 1000)", walk, max(3, repeat // 3)),
            ("CSV, 5000 lines", as_csv, repeat),
        ):
            median, p95 = await timed(fn, times)
            print(f"  {name:34} {median:10.1f} {p95:8.1f}")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20,000 entries, few repeats")
    args = parser.parse_args()
    if args.smoke:
        asyncio.run(main(15_000, 5_000, 200, 3))
    else:
        asyncio.run(main(1_000_000, 20_000, 2_000, 9))
