"""Compiled plan terms and calendars by (id, version) (app.services.compiled): the
per-process cache, its NOTIFY, and an edit seen by the very next request of another
server process (issue 18: "never stale for a request that follows an edit")."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_sessionmaker
from app.errors import ValidationFailed
from app.models.plan import Plan
from app.security import Principal, Role
from app.services import compiled, entitlement, plans
from app.services.compiled import VersionedCache
from app.services.plan_terms import TicketTerms
from tests.conftest import auth, make_key, raw_connect
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------- the cache itself


class Builds:
    """Counts builds, so that a test sees whether an entry was reused."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, value: str) -> Any:
        def build() -> str:
            self.count += 1
            return value

        return build


def test_lru_evicts_the_least_recently_used_entry() -> None:
    cache: VersionedCache[str] = VersionedCache(2)
    builds = Builds()
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cache.get(a, 1, "src", builds("a1"))
    cache.get(b, 1, "src", builds("b1"))
    assert cache.get(a, 1, "src", builds("again")) == "a1"  # a hit refreshes a
    cache.get(c, 1, "src", builds("c1"))  # evicts b, the least recently used
    assert len(cache) == 2
    assert set(cache.held()) == {(a, 1), (c, 1)}
    assert builds.count == 3
    assert cache.get(b, 1, "src", builds("b1 again")) == "b1 again"
    assert builds.count == 4


def test_entries_are_keyed_by_version_and_checked_against_their_source() -> None:
    cache: VersionedCache[str] = VersionedCache(10)
    builds = Builds()
    plan = uuid.uuid4()
    assert cache.get(plan, 1, {"minutes": 60}, builds("v1")) == "v1"
    assert cache.get(plan, 2, {"minutes": 90}, builds("v2")) == "v2"  # a newer version
    assert cache.get(plan, 1, {"minutes": 60}, builds("no")) == "v1"  # the old one kept
    # The same (id, version) with other stored values (changed without a bump): rebuilt.
    assert cache.get(plan, 2, {"minutes": 120}, builds("v2'")) == "v2'"
    assert builds.count == 3


def test_the_source_kept_is_a_copy() -> None:
    cache: VersionedCache[str] = VersionedCache(10)
    builds = Builds()
    plan, source = uuid.uuid4(), {"targets": [{"minutes": 60}]}
    cache.get(plan, 1, source, builds("60"))
    source["targets"][0]["minutes"] = 90  # the caller's JSON changed in place
    assert cache.get(plan, 1, source, builds("90")) == "90"


def test_a_failed_build_caches_nothing() -> None:
    cache: VersionedCache[str] = VersionedCache(10)
    plan = uuid.uuid4()

    def fail() -> str:
        raise ValueError("bad spec")

    with pytest.raises(ValueError):
        cache.get(plan, 1, "src", fail)
    assert len(cache) == 0


def test_forget_drops_older_versions_of_one_id() -> None:
    cache: VersionedCache[str] = VersionedCache(10)
    builds = Builds()
    plan, other = uuid.uuid4(), uuid.uuid4()
    for version in (1, 2, 3):
        cache.get(plan, version, "src", builds(f"v{version}"))
    cache.get(other, 1, "src", builds("other"))
    assert cache.forget(plan, below=3) == 2
    assert set(cache.held()) == {(plan, 3), (other, 1)}
    assert cache.forget(plan) == 1  # deleted: every version
    assert set(cache.held()) == {(other, 1)}


def _plan(targets: list[dict[str, Any]], version: int = 1) -> Plan:
    return Plan(
        id=uuid.uuid4(),
        code=f"p{uuid.uuid4().hex[:6]}",
        name="Plan",
        level=1,
        calendar_id=uuid.uuid4(),
        channels=["email"],
        excluded_categories=[],
        pause_on=["waiting_on_customer"],
        auto_close=None,
        billing={},
        targets=targets,
        version=version,
        active=True,
    )


def _snapshot_item(row: Plan, timezone: str = "UTC") -> dict[str, Any]:
    return {
        "id": str(row.id),
        "calendar_id": str(row.calendar_id),
        "timezone": timezone,
        "requires": None,
        **{name: getattr(row, name) for name in compiled.PLAN_FIELDS},
    }


def test_a_snapshot_of_a_plan_version_shares_its_compiled_terms() -> None:
    row = _plan([{"metric": "first_response", "minutes": 60, "clock": "24x7"}])
    terms = compiled.terms_of(row, "UTC", None)
    assert compiled.terms_of_snapshot(_snapshot_item(row)) is terms
    # Same id and version, but the snapshot recorded another time zone: its own terms.
    other_zone = compiled.terms_of_snapshot(_snapshot_item(row, "Europe/Madrid"))
    assert other_zone is not terms and other_zone.timezone == "Europe/Madrid"


def test_a_snapshot_that_differs_from_the_cached_version_gets_its_own_terms() -> None:
    row = _plan([{"metric": "first_response", "minutes": 60, "clock": "24x7"}])
    compiled.terms_of(row, "UTC", None)
    item = _snapshot_item(row)
    item["targets"] = [{"metric": "first_response", "minutes": 45, "clock": "24x7"}]
    snapshot = {"plan": {"id": item["id"]}, "calendar_id": item["calendar_id"], "chain": [item]}
    terms = TicketTerms.from_snapshot(snapshot)
    assert [t.minutes for t in terms.coverage.plan.targets] == [45]


def test_a_newer_plan_version_is_compiled_again() -> None:
    row = _plan([{"metric": "first_response", "minutes": 60, "clock": "24x7"}])
    assert [t.minutes for t in compiled.terms_of(row, "UTC", None).targets] == [60]
    row.targets = [{"metric": "first_response", "minutes": 90, "clock": "24x7"}]
    row.version = 2
    assert [t.minutes for t in compiled.terms_of(row, "UTC", None).targets] == [90]


def test_invalid_stored_targets_are_refused_and_not_cached() -> None:
    duplicate = {"metric": "first_response", "minutes": 60}
    row = _plan([duplicate, dict(duplicate)])  # two equally specific targets
    before = len(compiled.plans)
    with pytest.raises(ValidationFailed):
        compiled.terms_of(row, "UTC", None)
    assert (row.id, 1) not in compiled.plans.held()
    assert len(compiled.plans) <= before


def test_notifications_free_the_older_versions() -> None:
    row = _plan([{"metric": "first_response", "minutes": 60, "clock": "24x7"}])
    compiled.terms_of(row, "UTC", None)
    assert compiled.forget_notified(f"plan:{row.id}:2") == 1
    assert (row.id, 1) not in compiled.plans.held()
    # Not understood: only a hint, nothing happens.
    assert compiled.forget_notified("plan:not-a-uuid:2") == 0
    assert compiled.forget_notified(f"webhook:{row.id}:2") == 0


# ------------------------------------------------------------------- the NOTIFY of edits


async def _calendar(api: httpx.AsyncClient, name: str = "Office") -> dict[str, Any]:
    response = await api.post(
        "/v1/calendars",
        json={
            "name": name,
            "timezone": "UTC",
            "weekly_hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _plan_on(api: httpx.AsyncClient, calendar_id: str, minutes: int) -> dict[str, Any]:
    response = await api.post(
        "/v1/plans",
        json={
            "code": "gold",
            "name": "Gold",
            "level": 1,
            "calendar_id": calendar_id,
            "channels": ["email"],
            "targets": [{"metric": "first_response", "minutes": minutes, "clock": "24x7"}],
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_plan_and_calendar_edits_notify_their_new_version(
    admin: httpx.AsyncClient, database_url: str
) -> None:
    calendar = await _calendar(admin)
    plan = await _plan_on(admin, calendar["id"], 60)
    received: asyncio.Queue[str] = asyncio.Queue()
    conn = await raw_connect(database_url)
    try:
        await conn.add_listener(compiled.CHANNEL, lambda *args: received.put_nowait(args[3]))
        edited = await admin.patch(
            f"/v1/plans/{plan['id']}",
            json={"targets": [{"metric": "first_response", "minutes": 90, "clock": "24x7"}]},
        )
        assert edited.status_code == 200, edited.text
        async with asyncio.timeout(30):  # a bound on a hang, not a speed check
            assert await received.get() == f"plan:{plan['id']}:2"
        edited = await admin.patch(
            f"/v1/calendars/{calendar['id']}", json={"extra_holidays": ["2027-01-11"]}
        )
        assert edited.status_code == 200, edited.text
        async with asyncio.timeout(30):
            assert await received.get() == f"calendar:{calendar['id']}:2"
        # An edit refused (422) is rolled back: no notification for it.
        refused = await admin.patch(
            f"/v1/plans/{plan['id']}", json={"targets": [{"metric": "nonsense", "minutes": 5}]}
        )
        assert refused.status_code == 422
        other = await _calendar(admin, "Other")
        assert (await admin.delete(f"/v1/calendars/{other['id']}")).status_code == 204
        async with asyncio.timeout(30):
            assert await received.get() == f"calendar:{other['id']}:0"
    finally:
        await conn.close()


async def _customer(api: httpx.AsyncClient, plan_id: str) -> dict[str, str]:
    org = (await api.post("/v1/organizations", json={"name": "Acme"})).json()
    contact = (
        await api.post(
            f"/v1/organizations/{org['id']}/contacts",
            json={"name": "Ann", "email": "ann@example.com"},
        )
    ).json()
    contract = await api.post(
        "/v1/contracts",
        json={"organization_id": org["id"], "plan_id": plan_id, "starts_on": "2026-01-01"},
    )
    assert contract.status_code == 201, contract.text
    return {"org": org["id"], "contact": contact["id"]}


async def test_a_rolled_back_edit_never_lends_its_terms_to_the_committed_version(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    """An edit compiles its new version before it commits (re-timing open tickets); if it
    rolls back, another edit commits other values under the same version number."""
    calendar = await _calendar(admin)
    plan = await _plan_on(admin, calendar["id"], 60)
    ids = await _customer(admin, plan["id"])
    assert _first_response_minutes(await _ticket(admin, ids)) == 60  # an open ticket
    async with make_sessionmaker(db)() as session, session.begin():
        row = await plans.get_plan(session, uuid.UUID(plan["id"]))
        targets = [{"metric": "first_response", "minutes": 90, "clock": "24x7"}]
        assert await plans.apply_changes(session, row, {"targets": targets}, now=_now())
        assert row.version == 2
        await session.rollback()
    assert (uuid.UUID(plan["id"]), 2) in compiled.plans.held()  # compiled, never committed
    edited = await admin.patch(
        f"/v1/plans/{plan['id']}",
        json={"targets": [{"metric": "first_response", "minutes": 120, "clock": "24x7"}]},
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2, edited.text
    assert _first_response_minutes(await _ticket(admin, ids)) == 120


async def test_entitlement_loads_contracts_plans_and_calendars_in_one_statement(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    """Three plans deep (gold requires silver requires bronze): one statement loads the
    organization's contracts, the whole chain and the calendars."""
    office, other = await _calendar(admin), await _calendar(admin, "Night desk")
    made: dict[str, dict[str, Any]] = {}
    for level, (code, requires, calendar) in enumerate(
        [("bronze", None, office), ("silver", "bronze", other), ("gold", "silver", office)]
    ):
        response = await admin.post(
            "/v1/plans",
            json={
                "code": code,
                "name": code.title(),
                "level": level,
                "requires": requires,
                "calendar_id": calendar["id"],
                "channels": ["email"],
                "targets": [{"metric": "first_response", "minutes": 60 + level}],
            },
        )
        assert response.status_code == 201, response.text
        made[code] = response.json()
    ids = await _customer(admin, made["bronze"]["id"])
    for code in ("silver", "gold"):
        response = await admin.post(
            "/v1/contracts",
            json={
                "organization_id": ids["org"],
                "plan_id": made[code]["id"],
                "starts_on": "2026-01-01",
            },
        )
        assert response.status_code == 201, response.text

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    principal = Principal(key_id=uuid.uuid4(), role=Role.ADMIN)
    event.listen(db.sync_engine, "before_cursor_execute", count)
    try:
        async with make_sessionmaker(db)() as session:
            decision = await entitlement.decide_for(
                session, principal, uuid.UUID(ids["org"]), at=_now()
            )
    finally:
        event.remove(db.sync_engine, "before_cursor_execute", count)
    coverage = decision.entitlement.coverage
    assert decision.entitlement.allowed and coverage is not None
    assert [p.code for p in coverage.chain] == ["gold", "silver", "bronze"]
    assert [c.plan_code for c in decision.entitlement.contracts] == ["gold", "silver", "bronze"]
    assert set(decision.calendars) == {uuid.UUID(office["id"]), uuid.UUID(other["id"])}
    loading = [s for s in statements if "plans" in s or "contracts" in s]
    assert len(loading) == 1, statements
    assert len(statements) == 2, statements  # and the organization (scoping, 404)


# --------------------------------------------------------------- two server processes


async def _serve(database_url: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    env.update(SLADESK_DATABASE_URL=database_url, SLADESK_LOG_LEVEL="WARNING")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-workers",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as client, asyncio.timeout(90):
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"sladesk serve exited with {proc.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


@pytest.fixture
async def two_servers(db: AsyncEngine, database_url: str) -> AsyncIterator[list[str]]:
    """Two `sladesk serve --no-workers` processes on the test database: their base URLs."""
    procs: list[asyncio.subprocess.Process] = []
    bases: list[str] = []
    try:
        for _ in range(2):
            proc, base = await _serve(database_url)
            procs.append(proc)
            bases.append(base)
        yield bases
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            async with asyncio.timeout(60):
                await proc.wait()


async def _ticket(api: httpx.AsyncClient, ids: dict[str, str]) -> dict[str, Any]:
    response = await api.post(
        "/v1/tickets",
        json={
            "organization_id": ids["org"],
            "contact_id": ids["contact"],
            "channel": "email",
            "severity": "high",
            "category": "technical",
            "subject": "The VPN drops every hour",
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _first_response_minutes(ticket: dict[str, Any]) -> float:
    """How long after its receipt the ticket's first response is due (minutes)."""
    (clock,) = [c for c in ticket["sla"] if c["metric"] == "first_response"]
    due = datetime.fromisoformat(clock["due_at"]) - datetime.fromisoformat(ticket["received_at"])
    return due / timedelta(minutes=1)


async def _due(api: httpx.AsyncClient, calendar_id: str) -> datetime:
    # Friday 17:00 UTC + 2 business hours: 1 h on Friday, 1 h from the next opening.
    response = await api.get(
        f"/v1/calendars/{calendar_id}/due",
        params={"start": "2027-01-08T17:00:00Z", "minutes": 120},
    )
    assert response.status_code == 200, response.text
    return datetime.fromisoformat(response.json()["due_at"])


MONDAY_10 = datetime(2027, 1, 11, 10, tzinfo=UTC)
TUESDAY_10 = datetime(2027, 1, 12, 10, tzinfo=UTC)


async def test_an_edit_through_one_process_is_seen_by_the_next_request_of_another(
    two_servers: list[str], db: AsyncEngine
) -> None:
    key = await make_key(db, Role.ADMIN)
    base_a, base_b = two_servers
    async with (
        httpx.AsyncClient(base_url=base_a, headers=auth(key), timeout=30) as a,
        httpx.AsyncClient(base_url=base_b, headers=auth(key), timeout=30) as b,
    ):
        calendar = await _calendar(a)
        plan = await _plan_on(a, calendar["id"], 60)
        ids = await _customer(a, plan["id"])

        # Both processes compile (and keep) the plan's terms and the calendar.
        for api in (a, b):
            assert _first_response_minutes(await _ticket(api, ids)) == 60
            assert await _due(api, calendar["id"]) == MONDAY_10

        # A plan edit through A; B's very next request (no pause) uses the new target.
        edited = await a.patch(
            f"/v1/plans/{plan['id']}",
            json={"targets": [{"metric": "first_response", "minutes": 90, "clock": "24x7"}]},
        )
        assert edited.status_code == 200, edited.text
        assert _first_response_minutes(await _ticket(b, ids)) == 90
        assert _first_response_minutes(await _ticket(a, ids)) == 90

        # A calendar edit through A (Monday becomes a holiday); B counts on Tuesday.
        edited = await a.patch(
            f"/v1/calendars/{calendar['id']}", json={"extra_holidays": ["2027-01-11"]}
        )
        assert edited.status_code == 200, edited.text
        assert await _due(b, calendar["id"]) == TUESDAY_10
        assert await _due(a, calendar["id"]) == TUESDAY_10

        # And back, through B this time: A sees it at once too.
        edited = await b.patch(f"/v1/calendars/{calendar['id']}", json={"extra_holidays": []})
        assert edited.status_code == 200, edited.text
        assert await _due(a, calendar["id"]) == MONDAY_10
        edited = await b.patch(
            f"/v1/plans/{plan['id']}",
            json={"targets": [{"metric": "first_response", "minutes": 30, "clock": "24x7"}]},
        )
        assert edited.status_code == 200, edited.text
        assert _first_response_minutes(await _ticket(a, ids)) == 30
