"""Entitlement decisions and SLA previews: load the rows, ask app.domain.entitlement.

:func:`decide_for` is what ticket intake calls: it loads an organization's contracts, the
plans they name (with their bases) and the contact, and returns the domain's
:class:`~app.domain.entitlement.Entitlement` unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.calendar import Calendar
from app.domain.entitlement import (
    ContactInfo,
    ContractTerms,
    Coverage,
    Entitlement,
    RequiresCycle,
    coverage_of,
    decide,
    plan_reasons,
)
from app.domain.sla import Target, ThresholdKind, thresholds_of
from app.domain.vocab import Category, Channel, ClockKind, ContactRole, Metric
from app.errors import Conflict, NotFound, invalid_field
from app.models import CalendarRow, Contact, Contract, Organization, Plan
from app.schemas.common import local_time
from app.schemas.entitlement import EntitlementRead, PreviewRead, PreviewRequest
from app.security import Principal
from app.services import compiled
from app.services.compiled import HORIZON, load_terms


@dataclass(frozen=True)
class Decision:
    """A domain decision with the rows behind it (for the API's answer)."""

    entitlement: Entitlement
    organization_id: uuid.UUID | None
    plans: dict[str, Plan]
    calendars: dict[uuid.UUID, CalendarRow]


async def _organization(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID
) -> Organization:
    principal.ensure_organization(organization_id)
    org = await session.get(Organization, organization_id)
    if org is None:
        raise NotFound("No organization with that id.")
    return org


async def _contact(
    session: AsyncSession, organization_id: uuid.UUID, contact_id: uuid.UUID, field: str
) -> ContactInfo:
    row = await session.get(Contact, contact_id)
    if row is None or row.organization_id != organization_id:
        raise invalid_field(field, "no contact with this id in this organization")
    return ContactInfo(id=row.id, role=ContactRole(row.role), active=row.active)


def _holdings() -> Select[Any]:
    # One statement: the plans the organization holds and those they require, each with
    # its calendar and the organization's contracts for it (none for a plan it only
    # requires through another). Built once (a recursive CTE costs more to build than to
    # run); the organization is its parameter.
    organization: BindParameter[uuid.UUID] = bindparam("organization_id")
    held = select(col(Contract.plan_id)).where(col(Contract.organization_id) == organization)
    return (
        compiled.with_calendars(Contract)
        .outerjoin(
            Contract,
            and_(
                col(Contract.plan_id) == col(Plan.id),
                col(Contract.organization_id) == organization,
            ),
        )
        .where(col(Plan.id).in_(compiled.plan_chain(held)))
        .order_by(col(Contract.created_at), col(Contract.id))
    )


_HOLDINGS = _holdings()


async def decide_for(
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    *,
    at: datetime,
    contact_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    category: Category | None = None,
    contact_field: str = "query.contact_id",
) -> Decision:
    """The entitlement of a request from this organization at `at` (404 for an
    organization the key may not see; 422 for a contact of another organization)."""
    await _organization(session, principal, organization_id)
    contact = (
        await _contact(session, organization_id, contact_id, contact_field)
        if contact_id is not None
        else None
    )
    found = (await session.execute(_HOLDINGS, {"organization_id": organization_id})).all()
    rows = [contract for _, _, contract in found if contract is not None]
    terms, plans, calendars = compiled.terms_from((p, c) for p, c, _ in found)
    code_by_id = {p.id: code for code, p in plans.items()}
    contracts = [
        ContractTerms(
            id=r.id, plan_code=code_by_id[r.plan_id], starts_on=r.starts_on, ends_on=r.ends_on
        )
        for r in rows
    ]
    entitlement = decide(at, contracts, terms, contact, channel, category)
    return Decision(entitlement, organization_id, plans, calendars)


async def decide_for_plan(
    session: AsyncSession,
    plan_id: uuid.UUID,
    *,
    at: datetime,
    channel: Channel | None,
    category: Category | None,
) -> Decision:
    """As if an organization held this plan (and its bases): the plan's own checks."""
    terms, plans, calendars = await load_terms(session, [plan_id])
    code = next((c for c, p in plans.items() if p.id == plan_id), None)
    if code is None:
        raise NotFound("No plan with that id.")
    try:
        coverage = coverage_of(code, terms)
    except RequiresCycle as exc:  # refused on every write; kept from a 500 all the same
        raise Conflict(f"Plan {code} cannot apply: {exc}.") from None
    reasons = tuple(plan_reasons(coverage, channel, category))
    entitlement = Entitlement(at=at, allowed=not reasons, reasons=reasons, coverage=coverage)
    return Decision(entitlement, None, plans, calendars)


# ------------------------------------------------------------------------ shaping


def _summary(plan: Plan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "code": plan.code,
        "name": plan.name,
        "level": plan.level,
        "version": plan.version,
    }


def _contract(contract: ContractTerms) -> dict[str, Any]:
    return {
        "id": contract.id,
        "plan_code": contract.plan_code,
        "starts_on": contract.starts_on,
        "ends_on": contract.ends_on,
    }


def _target(plan_code: str, stored: dict[str, Any], index: int) -> dict[str, Any]:
    return {**stored, "plan": plan_code, "index": index}


def entitlement_read(decision: Decision) -> EntitlementRead:
    e = decision.entitlement
    coverage = e.coverage
    plan = coverage.plan if coverage else None
    row = decision.plans[plan.code] if plan else None
    return EntitlementRead.model_validate(
        {
            "organization_id": decision.organization_id,
            "at": e.at,
            "allowed": e.allowed,
            "reasons": list(e.reasons),
            "plan": _summary(row) if row else None,
            "plans": [p.code for p in coverage.chain] if coverage else [],
            "contract": _contract(e.contract) if e.contract else None,
            "contracts": [_contract(c) for c in e.contracts],
            "calendar_id": coverage.calendar_id if coverage else None,
            "timezone": coverage.timezone if coverage else None,
            "channels": sorted(coverage.channels, key=list(Channel).index) if coverage else [],
            "excluded_categories": (
                sorted(coverage.excluded_categories, key=list(Category).index) if coverage else []
            ),
            "pause_on": sorted(coverage.pause_on) if coverage else [],
            "auto_close": row.auto_close if row else None,
            "billing": row.billing if row else None,
            "targets": [
                _target(
                    t.plan_code, decision.plans[t.plan_code].targets[t.target.index], t.target.index
                )
                for t in e.targets
            ],
        }
    )


# ------------------------------------------------------------------------ preview


def _calendar_of(coverage: Coverage, decision: Decision) -> Calendar:
    return compiled.calendar(decision.calendars[coverage.calendar_id])


async def preview(
    session: AsyncSession, principal: Principal, data: PreviewRequest, *, now: datetime
) -> PreviewRead:
    """When would each target of the applicable plan be due for such a ticket, and why."""
    if (data.organization_id is None) == (data.plan_id is None):
        raise invalid_field("body.organization_id", "give either organization_id or plan_id")
    if data.contact_id is not None and data.organization_id is None:
        raise invalid_field("body.contact_id", "a contact needs organization_id")
    received_at = data.received_at or now
    if data.organization_id is not None:
        decision = await decide_for(
            session,
            principal,
            data.organization_id,
            at=received_at,
            contact_id=data.contact_id,
            channel=data.channel,
            category=data.category,
            contact_field="body.contact_id",
        )
    else:
        assert data.plan_id is not None
        decision = await decide_for_plan(
            session, data.plan_id, at=received_at, channel=data.channel, category=data.category
        )
    coverage = decision.entitlement.coverage
    after_hours = False
    targets: list[dict[str, Any]] = []
    plan_summary = None
    if coverage is not None:
        business = _calendar_of(coverage, decision)
        after_hours = not business.is_open(received_at)
        plan_summary = _summary(decision.plans[coverage.plan.code])
        chosen = coverage.select_all(data.severity, data.category, data.channel)
        for metric, picked in chosen.items():
            target = picked.target
            calendar = compiled.ALWAYS_OPEN if target.clock is ClockKind.ALWAYS else business
            previewed = _preview_target(metric, picked.plan_code, target, calendar, received_at)
            previewed["due_local"] = local_time(previewed["due_at"], business.timezone)
            targets.append(previewed)
    return PreviewRead.model_validate(
        {
            "received_at": received_at,
            "after_hours": after_hours,
            "severity": data.severity,
            "category": data.category,
            "channel": data.channel,
            "plan": plan_summary,
            "entitlement": entitlement_read(decision),
            "targets": targets,
        }
    )


def _preview_target(
    metric: Metric, plan_code: str, target: Target, calendar: Calendar, received_at: datetime
) -> dict[str, Any]:
    common = {
        "metric": metric,
        "plan": plan_code,
        "index": target.index,
        "minutes": target.minutes,
        "clock": target.clock,
        "escalate_to_tier": target.escalate_to_tier,
    }
    if target.minutes is None:  # best effort: nothing is ever due
        return {**common, "counting_from": None, "due_at": None, "warnings": [], "intervals": []}
    duration = timedelta(minutes=target.minutes)
    if (
        not calendar.is_always_open
        and calendar.between(received_at, received_at + HORIZON) < duration
    ):
        # Plans are checked against their calendar when written; a calendar edited to
        # (almost) never open afterwards must not make a preview run for years of days.
        raise Conflict(
            f"Target {target.index} of plan {plan_code} needs {target.minutes} business "
            "minutes, more than its calendar opens in the next 5 years; fix the calendar or "
            "the plan.",
        )
    intervals = calendar.explain(received_at, duration)
    warnings = [
        {
            "key": t.key,
            "percent": t.percent,
            "before_minutes": t.before_minutes,
            "at": calendar.add(received_at, t.mark),
        }
        for t in thresholds_of(target)
        if t.kind is ThresholdKind.WARNING
    ]
    return {
        **common,
        "counting_from": intervals[0][0] if intervals else calendar.next_open(received_at),
        "due_at": calendar.add(received_at, duration),
        "warnings": warnings,
        "intervals": intervals,
    }
