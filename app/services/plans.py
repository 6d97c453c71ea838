"""Support plans: validated against the domain (targets, requires, pause_on) on every write.

A plan edit bumps its `version` (the ETag) whenever something really changes; an edit of
what clocks depend on re-times the open tickets under the plan from the moment of the
edit (services.clock_edits: running clocks keep what elapsed).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from app.domain.entitlement import Period, find_requires_cycle, uncovered
from app.domain.lifecycle import PAUSABLE_STATUSES
from app.domain.sla import Target
from app.domain.vocab import Category, Channel, ClockKind, Severity, TicketStatus
from app.errors import (
    Conflict,
    NotFound,
    PreconditionFailed,
    if_match_unquoted,
    invalid_field,
    unquoted_etags,
)
from app.models import CalendarRow, Contract, Organization, Plan
from app.pagination import keyset, page_of
from app.schemas.plans import PlanCreate, PlanFields, PlanRead, PlanUpdate
from app.services import compiled
from app.services.clock_edits import plan_changed
from app.services.clocks import hold_timing
from app.services.common import flush_or_conflict

CONFLICTS = {"uq_plans_code": "A plan with this code already exists."}
_REQUIRES_GRAPH_LOCK = 7193552  # pg advisory lock key (app.migrate uses 7193551)

# The fields whose values the service normalizes and stores as given (besides these:
# code, requires -> requires_id).
_STORED = (
    "name",
    "description",
    "level",
    "calendar_id",
    "channels",
    "excluded_categories",
    "pause_on",
    "auto_close",
    "billing",
    "targets",
    "active",
    "email_defaults",
)


# ------------------------------------------------------------------------ reading


async def get_plan(session: AsyncSession, plan_id: uuid.UUID) -> Plan:
    row = await session.get(Plan, plan_id)
    if row is None:
        raise NotFound("No plan with that id.")
    return row


async def get_plan_by_code(session: AsyncSession, code: str) -> Plan | None:
    return (await session.execute(select(Plan).where(col(Plan.code) == code))).scalar_one_or_none()


async def codes_of(
    session: AsyncSession, plan_ids: Sequence[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    wanted = {i for i in plan_ids if i is not None}
    if not wanted:
        return {}
    rows = await session.execute(
        select(col(Plan.id), col(Plan.code)).where(col(Plan.id).in_(wanted))
    )
    return {row.id: row.code for row in rows}


async def list_plans(
    session: AsyncSession, *, active: bool | None, cursor: str | None, limit: int
) -> tuple[list[Plan], str | None]:
    stmt = select(Plan)
    if active is not None:
        stmt = stmt.where(col(Plan.active) == active)
    stmt = keyset(stmt, [col(Plan.level), col(Plan.code)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.level, r.code))


def read_plan(row: Plan, requires_code: str | None) -> PlanRead:
    return PlanRead.model_validate(
        {
            **{name: getattr(row, name) for name in _STORED},
            "id": row.id,
            "code": row.code,
            "requires": requires_code,
            "version": row.version,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


async def read(session: AsyncSession, row: Plan) -> PlanRead:
    codes = await codes_of(session, [row.requires_id])
    return read_plan(row, codes.get(row.requires_id) if row.requires_id else None)


def etag(row: Plan) -> str:
    return f'"v{row.version}"'


def check_if_match(row: Plan, if_match: str | None) -> None:
    """412 unless `If-Match` (when sent) names the current version (or is `*`)."""
    if if_match is None:
        return
    current = etag(row)
    tags = [t.strip().removeprefix("W/") for t in if_match.split(",")]
    if "*" not in tags and current not in tags and unquoted_etags(if_match):
        raise if_match_unquoted(if_match, current, etag=current)
    if "*" not in tags and current not in tags:
        raise PreconditionFailed(
            f"The plan changed (its ETag is {current}, not {if_match}); read it again.",
            etag=current,
        )


# --------------------------------------------------------------------- validation


def _sorted_values(values: Sequence[Any], vocabulary: Sequence[Any]) -> list[str]:
    order = [str(v) for v in vocabulary]
    return sorted({str(v) for v in values}, key=order.index)


def _normalize_target(target: Mapping[str, Any]) -> dict[str, Any]:
    on_breach = target.get("on_breach") or {}
    return {
        "metric": str(target["metric"]),
        "severities": _sorted_values(target.get("severities", []), list(Severity)),
        "categories": _sorted_values(target.get("categories", []), list(Category)),
        "channels": _sorted_values(target.get("channels", []), list(Channel)),
        "minutes": target.get("minutes"),
        "clock": str(target.get("clock", "business")),
        # Sorted, duplicates kept: the domain names a duplicate as an error.
        "warn_at_percent": sorted(target.get("warn_at_percent", [])),
        "warn_before_minutes": sorted(target.get("warn_before_minutes", [])),
        "on_breach": (
            {"escalate_to_tier": on_breach["escalate_to_tier"]}
            if on_breach.get("escalate_to_tier") is not None
            else None
        ),
    }


def _normalized(values: Mapping[str, Any]) -> dict[str, Any]:
    """The stored form of a plan's fields (JSON values, sorted lists)."""
    out = dict(values)
    out["channels"] = _sorted_values(values["channels"], list(Channel))
    out["excluded_categories"] = _sorted_values(values["excluded_categories"], list(Category))
    out["pause_on"] = _sorted_values(values["pause_on"], list(TicketStatus))
    out["targets"] = [_normalize_target(t) for t in values["targets"]]
    return out


def _check_reachable(targets: Sequence[Target], calendar_row: CalendarRow, now: datetime) -> None:
    calendar = compiled.calendar(calendar_row)
    available: timedelta | None = None
    for target in targets:
        if target.minutes is None or target.clock is ClockKind.ALWAYS:
            continue
        if available is None:
            available = calendar.between(now, now + compiled.HORIZON)
        if timedelta(minutes=target.minutes) > available:
            raise invalid_field(
                f"body.targets[{target.index}].minutes",
                f"{target.minutes} business minutes do not fit in 5 years of calendar "
                f"{calendar_row.name!r} (open {available // timedelta(minutes=1)} minutes "
                "in the next 5 years)",
            )


def _check_pause_on(statuses: Sequence[Any]) -> None:
    """Only waiting statuses pause clocks (app.domain.lifecycle.PAUSABLE_STATUSES)."""
    for i, status in enumerate(statuses):
        if TicketStatus(status) not in PAUSABLE_STATUSES:
            allowed = ", ".join(sorted(PAUSABLE_STATUSES))
            raise invalid_field(
                f"body.pause_on[{i}]", f"{status} does not pause clocks; use {allowed}"
            )


async def _validate(
    session: AsyncSession,
    values: dict[str, Any],
    *,
    code: str,
    row: Plan | None,
    now: datetime,
) -> uuid.UUID | None:
    """Check a plan's complete, normalized fields; returns the required plan's id."""
    calendar_row = await session.get(CalendarRow, values["calendar_id"])
    if calendar_row is None:
        raise invalid_field("body.calendar_id", "no calendar with this id")
    targets = compiled.parse_targets(values["targets"])
    _check_reachable(targets, calendar_row, now)

    required: Plan | None = None
    requires = values.get("requires")
    if requires is not None:
        if requires == code:
            raise invalid_field("body.requires", f"requires cycle: {code} -> {code}", "cycle")
        required = await get_plan_by_code(session, requires)
        if required is None:
            raise invalid_field("body.requires", f"no plan with code {requires!r}")
        # Serialize the plan writes that touch the requires graph, so that two
        # concurrent edits cannot close a cycle that neither sees alone.
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _REQUIRES_GRAPH_LOCK}
        )
        graph = await _requires_graph(session)
        graph[code] = requires
        cycle = find_requires_cycle(graph)
        if cycle is not None:
            if code in cycle:  # tell it from the plan being written
                start = cycle.index(code)
                cycle = [*cycle[start:-1], *cycle[:start], code]
            raise invalid_field("body.requires", "requires cycle: " + " -> ".join(cycle), "cycle")
        if values["level"] < required.level:
            raise invalid_field(
                "body.level",
                f"an add-on ranks at least as high as the plan it requires "
                f"({required.code}, level {required.level})",
            )
    if row is not None and required is not None and required.id != row.requires_id:
        await _ensure_contracts_hold(session, row, required)
    if row is not None:
        dependents = (
            (await session.execute(select(Plan).where(col(Plan.requires_id) == row.id)))
            .scalars()
            .all()
        )
        lower = sorted(
            f"{p.code} (level {p.level})" for p in dependents if p.level < values["level"]
        )
        if lower:
            raise invalid_field(
                "body.level",
                f"plans that require this one must rank at least as high: {', '.join(lower)}",
            )
    return required.id if required else None


async def _ensure_contracts_hold(session: AsyncSession, row: Plan, required: Plan) -> None:
    """A plan that starts requiring another (or another one) keeps its existing contracts
    valid: every organization holding it must hold the required plan over the same days
    (409 naming the first contract that would lose its base)."""
    held = list(
        (await session.execute(select(Contract).where(col(Contract.plan_id) == row.id)))
        .scalars()
        .all()
    )
    if not held:
        return
    orgs = sorted({c.organization_id for c in held})
    # Lock the organizations as contract writes do, so that none changes underneath.
    await session.execute(
        select(col(Organization.id)).where(col(Organization.id).in_(orgs)).with_for_update()
    )
    bases = (
        await session.execute(
            select(Contract).where(
                col(Contract.plan_id) == required.id, col(Contract.organization_id).in_(orgs)
            )
        )
    ).scalars()
    by_org: dict[uuid.UUID, list[Period]] = {}
    for base in bases:
        by_org.setdefault(base.organization_id, []).append(Period(base.starts_on, base.ends_on))
    for contract in sorted(held, key=lambda c: (c.starts_on, str(c.id))):
        period = Period(contract.starts_on, contract.ends_on)
        if uncovered(period, by_org.get(contract.organization_id, [])):
            raise Conflict(
                f"Contract {contract.id} (organization {contract.organization_id}) holds "
                f"{row.code} on days without {required.code}; it would lose its coverage. "
                f"Give that organization {required.code} first.",
                contract_id=str(contract.id),
            )


async def _requires_graph(session: AsyncSession) -> dict[str, str | None]:
    required = aliased(Plan)
    stmt = select(col(Plan.code), col(required.code)).outerjoin(
        required, col(required.id) == col(Plan.requires_id)
    )
    return {code: req for code, req in (await session.execute(stmt)).all()}


# ------------------------------------------------------------------------ writing


async def unsaved_plan(session: AsyncSession, data: PlanCreate, *, now: datetime) -> Plan:
    """The plan ``data`` describes, validated as `POST /v1/plans` validates it (same
    422s, fields named `body.x`), not added to the session (the what-if simulator runs
    inline plans this way)."""
    _check_pause_on(data.pause_on)
    values = _normalized(data.model_dump(mode="json", exclude={"code"}))
    values["calendar_id"] = data.calendar_id
    requires_id = await _validate(session, values, code=data.code, row=None, now=now)
    return Plan(code=data.code, requires_id=requires_id, **{k: values[k] for k in _STORED})


async def create_plan(session: AsyncSession, data: PlanCreate, *, now: datetime) -> Plan:
    if await get_plan_by_code(session, data.code) is not None:
        raise Conflict("A plan with this code already exists.", code=data.code)
    row = await unsaved_plan(session, data, now=now)
    session.add(row)
    await flush_or_conflict(session, CONFLICTS)
    return row


async def update_plan(
    session: AsyncSession,
    plan_id: uuid.UUID,
    data: PlanUpdate,
    *,
    now: datetime,
    if_match: str | None = None,
) -> Plan:
    row = await get_plan(session, plan_id)
    check_if_match(row, if_match)
    await apply_changes(session, row, data.changes(), now=now)
    return row


async def current_values(session: AsyncSession, row: Plan) -> dict[str, Any]:
    """The plan's fields as a PlanFields dict (requires as a code)."""
    codes = await codes_of(session, [row.requires_id])
    values = {name: getattr(row, name) for name in _STORED}
    values["requires"] = codes.get(row.requires_id) if row.requires_id else None
    return values


async def apply_changes(
    session: AsyncSession, row: Plan, changes: Mapping[str, Any], *, now: datetime
) -> bool:
    """Apply a partial update (PlanUpdate.changes()); True when something changed
    (and the version was bumped), False when every value was already so."""
    # Plan edits re-time open tickets: serialize them with every clock writer, and read
    # the plan again once no other edit can change it under us.
    await hold_timing(session)
    await session.refresh(row)
    current = await current_values(session, row)
    sent = PlanUpdate.model_validate(dict(changes)).model_dump(mode="json", include=set(changes))
    if sent.get("pause_on") is not None:
        _check_pause_on(sent["pause_on"])
    merged = {**current, **sent}
    merged = PlanFields.model_validate(merged).model_dump(mode="json")
    values = _normalized(merged)
    values["calendar_id"] = uuid.UUID(str(values["calendar_id"]))
    before = _normalized(PlanFields.model_validate(current).model_dump(mode="json"))
    before["calendar_id"] = row.calendar_id
    changed = sorted(k for k in [*_STORED, "requires"] if values.get(k) != before.get(k))
    if not changed:
        return False
    requires_id = await _validate(session, values, code=row.code, row=row, now=now)
    for name in _STORED:
        setattr(row, name, values[name])
    row.requires_id = requires_id
    row.version += 1
    await flush_or_conflict(session, CONFLICTS)
    await compiled.changed(session, "plan", row.id, row.version)
    if _CLOCK_FIELDS & set(changed):
        await plan_changed(session, row, now)
    return True


# What open tickets' clocks depend on: an edit of these re-times them from the edit.
_CLOCK_FIELDS = frozenset({"targets", "calendar_id", "pause_on", "requires", "auto_close"})


async def delete_plan(session: AsyncSession, plan_id: uuid.UUID) -> None:
    """Delete a plan nobody holds or requires (409 otherwise; deactivate it instead)."""
    row = await get_plan(session, plan_id)
    contracts = (
        await session.execute(
            select(func.count()).select_from(Contract).where(col(Contract.plan_id) == row.id)
        )
    ).scalar_one()
    if contracts:
        raise Conflict(
            f"Plan {row.code} has {contracts} contract(s); deactivate it (active: false) "
            "instead of deleting it.",
            contracts=contracts,
        )
    dependents = (
        (await session.execute(select(col(Plan.code)).where(col(Plan.requires_id) == row.id)))
        .scalars()
        .all()
    )
    if dependents:
        raise Conflict(
            f"Plans {', '.join(sorted(dependents))} require {row.code}; change them first.",
            required_by=sorted(dependents),
        )
    await session.delete(row)
    await session.flush()
    await compiled.changed(session, "plan", row.id, 0)
