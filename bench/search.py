"""Benchmark: ticket search (`GET /v1/tickets?q=`) over 1,000,000 tickets.

    python bench/search.py            # 1,000,000 tickets
    python bench/search.py --smoke    # 20,000 tickets, quick (CI)
    python bench/search.py --keep     # load, measure, keep the database (prints its URL)
    python bench/search.py --database URL   # measure again on a kept database (migrated
                                            # to head first), loading nothing

Bulk-loads tickets through the real schema — their search documents are written by the
database's own triggers, as in production — with subjects and descriptions drawn from a
support vocabulary (a few very common words, many rarer ones, error codes and product
names that occur in a few dozen tickets), a tenth of the customers writing Spanish; a
third of the tickets get a public reply and a tenth an internal note (also through the
triggers). Then times the service call behind `GET /v1/tickets?q=…` (the ranked page
query and the response models of a page of 50) for the searches a console makes, with
a staff key and a customer key, and prints p50 / p95 per search, the p95 over the
whole mix, the rows matched, and the plan of the query. Prints figures; asserts
nothing. The target: p95 <= 50 ms for a page of 50.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.domain.vocab import TicketStatus
from app.migrate import upgrade
from app.models.search import TicketSearch
from app.security import Principal, Role
from app.services import search, tickets
from bench.common import fresh_database

# The first eight words are the very common ones; the others are domain words.
ENGLISH = """error problem please help issue since today again export fails login password user
install upgrade slow timeout network printer email vpn access database backup license
crash screen sync mobile app settings configuration certificate permission customer
order payment api integration import file upload download dashboard chart calendar
notification alert firewall proxy cluster node memory disk cpu latency query index
migration schema token session cookie browser chrome windows linux macos ios android
tablet keyboard mouse monitor scanner camera microphone headset bluetooth wifi router
switch cable power battery charger warranty replacement refund shipping delivery
tracking invoice quote contract renewal subscription plan tier support escalation""".split()  # noqa: SIM905
SPANISH = """error problema favor ayuda falla desde hoy otra factura facturas sistema usuario
usuarios contraseña acceso servidor reporte
reportes pago pagos cliente clientes pedido pedidos correo impresora red lenta lento
actualización instalación respaldo licencia pantalla configuración certificado
certificados permiso permisos archivo archivos descarga carga tablero gráfica
calendario notificación alerta conexión base datos consulta índice sesión navegador
teclado garantía reemplazo reembolso envío entrega seguimiento contrato renovación
suscripción no se genera generan funciona falla fallan desde ayer hoy lunes urgente""".split()  # noqa: SIM905

SEED = """
INSERT INTO organizations (id, name, active, locale)
SELECT md5('org' || g)::uuid, 'Org ' || g, true, CASE WHEN g % 10 = 0 THEN 'es-MX' ELSE 'en' END
FROM generate_series(1, 100) g;
INSERT INTO contacts (id, organization_id, name, email, role, active)
SELECT md5('contact' || g)::uuid, md5('org' || g)::uuid, 'C' || g, 'c' || g || '@x.example',
       'authorized', true
FROM generate_series(1, 100) g;
CREATE TEMP TABLE bench_words AS
SELECT g, (1 + g % 100) AS org, (1 + g % 100) % 10 = 0 AS es,
       CAST(:start AS timestamptz) - g * interval '30 seconds' AS at
FROM generate_series(1, :n) g;
-- A ticket's text: a few of the very common words (found in most tickets), a few domain
-- words (each in a few percent of tickets), a long tail of rarer words (each in a few
-- hundred), and now and then an error code or product model (each in a few tickets).
CREATE FUNCTION pg_temp.words(seed bigint, how_many int, vocabulary text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT string_agg(CASE
      WHEN k < 30 THEN vocabulary[1 + abs(hashtext(seed || '/' || i)) % 8]
      WHEN k < 55
        THEN vocabulary[9 + abs(hashtext(seed || '/' || i)) % (array_length(vocabulary, 1) - 8)]
      WHEN k < 96 THEN 'w' || (abs(hashtext(seed || '#' || i)) % 50000)::text
      ELSE 'E' || (abs(hashtext(seed || '#' || i)) % 100000)::text
    END, ' ')
  FROM generate_series(1, how_many) i,
       LATERAL (SELECT abs(hashtext(seed || ':' || i)) % 100 AS k) kind
$$;
INSERT INTO tickets (
    id, number, organization_id, contact_id, channel, severity, category, subject,
    description, status, tier, entitled, entitlement_reasons, after_hours, received_at,
    contact_attempts, last_event_at, version)
SELECT md5('t' || g)::uuid, nextval('ticket_number_seq'),
       md5('org' || org)::uuid, md5('contact' || org)::uuid, 'email',
       (ARRAY['critical','high','medium','low'])[1 + g % 4], 'technical',
       pg_temp.words(g, 5, CASE WHEN es THEN CAST(:es AS text[]) ELSE CAST(:en AS text[]) END),
       pg_temp.words(-g, 25, CASE WHEN es THEN CAST(:es AS text[]) ELSE CAST(:en AS text[]) END),
       (ARRAY['new','open','in_progress','waiting_on_customer','resolved','closed'])[1 + g % 6],
       1 + g % 4, true, '[]', false, at, 0, at, 1
FROM bench_words;
INSERT INTO ticket_events (id, ticket_id, kind, public, actor, body, data, occurred_at,
    recorded_at)
SELECT md5('reply' || g)::uuid, md5('t' || g)::uuid, 'replied', true, '{"role": "agent"}',
       pg_temp.words(g * 7, 20, CASE WHEN es THEN CAST(:es AS text[]) ELSE CAST(:en AS text[]) END),
       '{}', at + interval '1 hour', at + interval '1 hour'
FROM bench_words WHERE g % 3 = 0;
INSERT INTO ticket_events (id, ticket_id, kind, public, actor, body, data, occurred_at,
    recorded_at)
SELECT md5('note' || g)::uuid, md5('t' || g)::uuid, 'noted', false, '{"role": "agent"}',
       'internal ' || pg_temp.words(g * 11, 10, CAST(:en AS text[])),
       '{}', at + interval '2 hours', at + interval '2 hours'
FROM bench_words WHERE g % 10 = 0;
VACUUM ANALYZE ticket_search;
ANALYZE
"""

# (label, q, staff key?, extra filters)
SEARCHES: list[tuple[str, str, bool, dict[str, Any]]] = [
    ("error code", "E12345", True, {}),
    ("product word", "bluetooth", True, {}),
    ("two words", "printer timeout", True, {}),
    ("phrase", '"export fails"', True, {}),
    ("word -word", "vpn -proxy", True, {}),
    ("stemmed (invoices)", "invoices", True, {}),
    ("Spanish, stemmed", "facturas generar", True, {}),
    ("internal note word", "internal warranty", True, {}),
    ("customer key, code", "E2345", False, {}),
    ("customer key", "certificate", False, {}),
    ("+ status filter", "license", True, {"status": ["open"]}),
    ("common word", "problem", True, {}),
    ("common, newest first", "problem", True, {"sort": "-received_at"}),
    ("long-tail word", "w4242", True, {}),
]


async def main(
    n: int, repeat: int, keep: bool, database: str | None, plans: list[str] | None
) -> None:
    if database is not None:
        await reuse(database, repeat, plans)
        return
    async with fresh_database("sladesk_bench_search", keep=keep) as url:
        settings = Settings(database_url=url, db_statement_timeout_ms=0)
        engine = make_engine(url, settings)
        started = time.perf_counter()
        async with engine.begin() as conn:
            params = {"n": n, "start": _NOW, "en": ENGLISH, "es": SPANISH}
            for statement in SEED.strip().split(";\n"):
                if statement.lstrip().startswith("VACUUM"):
                    continue
                used = {k: v for k, v in params.items() if f":{k}" in statement}
                await conn.execute(text(statement), used)
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE ticket_search"))
            size = await conn.scalar(
                text("SELECT pg_size_pretty(pg_total_relation_size('ticket_search'))")
            )
        took = time.perf_counter() - started
        print(f"loaded {n:,} tickets (and their search documents, by trigger) in {took:.0f} s;")
        print(f"ticket_search with its GIN indexes: {size}")
        if keep:
            print(f"kept: python bench/search.py --database {url}")
        await measure(engine, repeat, plans)
        await engine.dispose()


async def reuse(url: str, repeat: int, plans: list[str] | None) -> None:
    """Measure on a database a `--keep` run loaded, after migrating it to head (so that a
    new migration is measured on the very rows the previous figures came from)."""
    settings = Settings(database_url=url, db_statement_timeout_ms=0)
    engine = make_engine(url, settings)
    started = time.perf_counter()
    await upgrade(engine)
    print(f"migrated to head in {time.perf_counter() - started:.0f} s")
    async with engine.connect() as conn:
        n = await conn.scalar(text("SELECT count(*) FROM tickets"))
        size = await conn.scalar(
            text("SELECT pg_size_pretty(pg_total_relation_size('ticket_search'))")
        )
    print(f"reusing {n:,} tickets; ticket_search with its indexes: {size}")
    await measure(engine, repeat, plans)
    await engine.dispose()


async def measure(engine: Any, repeat: int, plans: list[str] | None = None) -> None:
    """Time the searches on a database loaded by :data:`SEED`; beside each, what its page
    query touched by EXPLAIN (ANALYZE, BUFFERS): shared buffers (hit + read) and the
    ticket_search rows its scans returned — figures another process's load does not move."""
    sessionmaker = make_sessionmaker(engine)
    admin = Principal(key_id=uuid.uuid4(), role=Role.ADMIN)
    async with engine.connect() as conn:
        org = await conn.scalar(text("SELECT md5('org7')::uuid"))
    customer = Principal(key_id=uuid.uuid4(), role=Role.CUSTOMER, organization_id=org)
    print(
        f"\n{'search':24} {'q':20} {'matches':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'buffers':>8} {'rows':>8} {'exec ms':>8}  scan"
    )
    mix: list[float] = []
    for label, q, staff, filters in SEARCHES:
        principal = admin if staff else customer
        f = dict(filters)
        sort = f.pop("sort", "relevance")
        if "status" in f:
            f["status"] = [TicketStatus(v) for v in f["status"]]

        async def call(
            principal: Principal = principal, q: str = q, f: dict = f, sort: str = sort
        ) -> Any:
            async with sessionmaker() as session:
                return await tickets.list_tickets(
                    session, principal, now=_NOW, cursor=None, limit=50, q=q, sort=sort, **f
                )

        await call()  # warm-up
        samples = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - t0) * 1000)
        samples.sort()
        mix += samples
        async with sessionmaker() as session:
            parsed = await search.parse(session, q)
        matches = await _matches(engine, principal, parsed)
        p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
        stmt = tickets.list_statement(principal, now=_NOW, cursor=None, limit=50, q=parsed,
                                      sort=sort, **f)  # fmt: skip
        plan = await _plan(engine, stmt)
        top = plan["Plan"]
        buffers = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
        rows, scans = _scans(top)
        print(
            f"{label:24} {q:20} {matches:8,} {statistics.median(samples):8.1f} {p95:8.1f} "
            f"{buffers:8,} {rows:8,} {plan['Execution Time']:8.1f}  {' + '.join(scans)}"
        )
        if plans is not None and (label in plans or "all" in plans):
            text_plan = await _plan(engine, stmt, as_text=True)
            print("\n".join("    " + line for line in text_plan) + "\n")
    mix.sort()
    p95_all = mix[max(0, int(len(mix) * 0.95) - 1)]
    print(f"\nwhole mix: p50 {statistics.median(mix):.1f} ms, p95 {p95_all:.1f} ms "
          f"(target: p95 <= 50 ms)")  # fmt: skip


async def _plan(engine: Any, stmt: Any, as_text: bool = False) -> Any:
    sql = str(stmt.compile(dialect=postgresql.dialect(),
                           compile_kwargs={"literal_binds": True}))  # fmt: skip
    how = "ANALYZE, BUFFERS" if as_text else "ANALYZE, BUFFERS, FORMAT JSON"
    async with engine.connect() as conn:
        result = (await conn.execute(text(f"EXPLAIN ({how}) " + sql))).scalars().all()
    return result if as_text else result[0][0]


def _scans(node: dict[str, Any]) -> tuple[int, list[str]]:
    """Rows returned by the scans of ticket_search (and tickets) in a plan, and which."""
    rows, scans = 0, []
    if "Scan" in node["Node Type"] and node.get("Relation Name") in ("ticket_search", "tickets"):
        loops = node.get("Actual Loops", 1)
        rows += node["Actual Rows"] * loops
        name = node.get("Index Name") or node["Relation Name"]
        scans.append(f"{node['Node Type']} {name} x{loops}" if loops > 1 else
                     f"{node['Node Type']} {name}")  # fmt: skip
    for child in node.get("Plans", []):
        r, s = _scans(child)
        rows += r
        scans += s
    return rows, scans


async def _matches(engine: Any, principal: Principal, q: search.Parsed) -> int:
    found, _ = search.ticket_match(principal, q)
    stmt = select(func.count()).select_from(TicketSearch).where(found)
    if principal.is_customer:
        stmt = stmt.where(
            TicketSearch.ticket_id.in_(  # type: ignore[attr-defined]
                text("SELECT id FROM tickets WHERE organization_id = :org").bindparams(
                    org=principal.organization_id
                )
            )
        )
    async with engine.connect() as conn:
        return int(await conn.scalar(stmt) or 0)


_NOW = datetime(2026, 6, 1, tzinfo=UTC)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="20,000 tickets, few repeats")
    parser.add_argument("--tickets", type=int, help="this many tickets instead")
    parser.add_argument("--keep", action="store_true", help="keep the loaded database")
    parser.add_argument("--database", help="measure on this kept database, loading nothing")
    parser.add_argument("--repeat", type=int, help="timed calls per search")
    parser.add_argument("--plans", nargs="*", help="print these searches' plans (or: all)")
    args = parser.parse_args()
    n = args.tickets or (20_000 if args.smoke else 1_000_000)
    repeat = args.repeat or (5 if args.smoke else 40)
    asyncio.run(main(n, repeat, args.keep, args.database, args.plans))
