"""Contracts: which organization holds which plan, from when to when.

Every write locks the organization row (``SELECT … FOR UPDATE``), so that two concurrent
writes for one organization are checked one after the other, then checks the whole set of
the organization's contracts as it would be after the write:

* two contracts for the same plan may not overlap (409 naming the other one);
* a contract for a plan that `requires` another needs that plan held on every day of its
  period, by one contract or back-to-back ones (422, ``reason: requires_plan``);
* moving, ending, shortening or deleting a base contract that a dependent contract still
  needs is refused (409 naming the dependent contract).

The dates are compared as dates (each contract's are local dates of its plan's calendar).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.entitlement import Period, uncovered
from app.errors import Conflict, NotFound, ValidationFailed, field_error, invalid_field
from app.models import Contract, Organization, Plan, Ticket
from app.pagination import keyset, page_of
from app.schemas.contracts import ContractCreate, ContractRead, ContractUpdate
from app.security import Principal
from app.services.plans import codes_of


@dataclass(frozen=True)
class _Held:
    """A contract as the checks see it."""

    id: uuid.UUID
    plan_id: uuid.UUID
    period: Period
    reference: str | None


def _describe(held: _Held | Contract, plans: dict[uuid.UUID, Plan]) -> str:
    period = held.period if isinstance(held, _Held) else Period(held.starts_on, held.ends_on)
    ends = period.ends_on.isoformat() if period.ends_on else "open end"
    ref = f", reference {held.reference}" if held.reference else ""
    return f"contract {held.id} ({plans[held.plan_id].code}, {period.starts_on} to {ends}{ref})"


def _period_json(period: Period) -> dict[str, str | None]:
    return {
        "starts_on": period.starts_on.isoformat(),
        "ends_on": period.ends_on.isoformat() if period.ends_on else None,
    }


# ------------------------------------------------------------------------ reading


def read_contract(row: Contract, plan_code: str) -> ContractRead:
    return ContractRead.model_validate({**row.model_dump(), "plan_code": plan_code})


async def read(session: AsyncSession, row: Contract) -> ContractRead:
    return (await read_many(session, [row]))[0]


async def get_contract(
    session: AsyncSession, principal: Principal, contract_id: uuid.UUID
) -> Contract:
    row = await session.get(Contract, contract_id)
    if row is None or not principal.can_see_organization(row.organization_id):
        raise NotFound("No contract with that id.")
    return row


async def list_contracts(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None,
    plan_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Contract], str | None]:
    stmt = select(Contract)
    if principal.is_customer:
        stmt = stmt.where(col(Contract.organization_id) == principal.organization_id)
    if organization_id is not None:
        stmt = stmt.where(col(Contract.organization_id) == organization_id)
    if plan_id is not None:
        stmt = stmt.where(col(Contract.plan_id) == plan_id)
    stmt = keyset(stmt, [col(Contract.created_at), col(Contract.id)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def read_many(session: AsyncSession, rows: list[Contract]) -> list[ContractRead]:
    codes = await codes_of(session, [r.plan_id for r in rows])
    return [read_contract(r, codes[r.plan_id]) for r in rows]


# ------------------------------------------------------------------------ writing


async def _lock_organization(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    """Serialize contract writes of one organization (released at commit/rollback)."""
    stmt = select(Organization).where(col(Organization.id) == organization_id).with_for_update()
    org = (await session.execute(stmt)).scalar_one_or_none()
    if org is None:
        raise invalid_field("body.organization_id", "no organization with this id")
    return org


async def _organization_contracts(
    session: AsyncSession, organization_id: uuid.UUID
) -> list[Contract]:
    stmt = select(Contract).where(col(Contract.organization_id) == organization_id)
    return list((await session.execute(stmt)).scalars().all())


async def _all_plans(session: AsyncSession, plan_ids: set[uuid.UUID]) -> dict[uuid.UUID, Plan]:
    """These plans and the plans that require or are required by them."""
    stmt = select(Plan).where(col(Plan.id).in_(plan_ids) | col(Plan.requires_id).in_(plan_ids))
    plans = {p.id: p for p in (await session.execute(stmt)).scalars()}
    missing = {p.requires_id for p in plans.values() if p.requires_id} - set(plans)
    if missing:
        more = await session.execute(select(Plan).where(col(Plan.id).in_(missing)))
        plans.update({p.id: p for p in more.scalars()})
    return plans


def _held(row: Contract) -> _Held:
    return _Held(row.id, row.plan_id, Period(row.starts_on, row.ends_on), row.reference)


def _check(
    after: list[_Held],
    changed: _Held | None,
    removed: _Held | None,
    plans: dict[uuid.UUID, Plan],
    *,
    requires_field: str,
) -> None:
    """Check the organization's contracts as they would be after a write of `changed`
    (created or updated) or the removal of `removed`."""
    if changed is not None:
        for other in after:
            if (
                other.id != changed.id
                and other.plan_id == changed.plan_id
                and other.period.overlaps(changed.period)
            ):
                raise Conflict(
                    f"This overlaps {_describe(other, plans)}: contracts for the same plan "
                    "and organization may not overlap; change that one instead.",
                    overlapping_contract_id=str(other.id),
                )
        plan = plans[changed.plan_id]
        if plan.requires_id is not None:
            base = plans[plan.requires_id]
            gaps = uncovered(changed.period, [h.period for h in after if h.plan_id == base.id])
            if gaps:
                listed = ", ".join(f"{g.starts_on} to {g.ends_on or 'open end'}" for g in gaps)
                raise ValidationFailed(
                    f"Plan {plan.code} requires plan {base.code}, which the organization "
                    f"does not hold on every day of this contract (not held: {listed}).",
                    [field_error(requires_field, f"requires plan {base.code}", "requires_plan")],
                    reason="requires_plan",
                    required_plan=base.code,
                    uncovered=[_period_json(g) for g in gaps],
                )
    # Dependents of the plan whose contracts shrank: still covered?
    shrunk = removed if removed is not None else changed
    if shrunk is None:
        return
    for dependent in after:
        required_id = plans[dependent.plan_id].requires_id if dependent.plan_id in plans else None
        if required_id != shrunk.plan_id or (changed is not None and dependent.id == changed.id):
            continue
        gaps = uncovered(dependent.period, [h.period for h in after if h.plan_id == required_id])
        if gaps:
            raise Conflict(
                f"{_describe(dependent, plans)} requires plan {plans[required_id].code} on "
                f"every day of its period; this change would leave "
                f"{gaps[0].starts_on} to {gaps[0].ends_on or 'open end'} uncovered. "
                "End or change the dependent contract first.",
                dependent_contract_id=str(dependent.id),
            )


async def create_contract(session: AsyncSession, data: ContractCreate) -> Contract:
    if data.ends_on is not None and data.ends_on < data.starts_on:
        raise invalid_field("body.ends_on", "must not be before starts_on")
    await _lock_organization(session, data.organization_id)
    plan = await session.get(Plan, data.plan_id)
    if plan is None:
        raise invalid_field("body.plan_id", "no plan with this id")
    if not plan.active:
        raise invalid_field("body.plan_id", f"plan {plan.code} is inactive: no new contracts")
    existing = await _organization_contracts(session, data.organization_id)
    plans = await _all_plans(session, {c.plan_id for c in existing} | {plan.id})
    row = Contract(**data.model_dump())
    if row.hours_budget is not None:
        row.hours_budget = round(row.hours_budget, 2)  # as stored (numeric(10, 2))
    candidate = _held(row)
    _check(
        [*map(_held, existing), candidate],
        candidate,
        None,
        plans,
        requires_field="body.plan_id",
    )
    session.add(row)
    await session.flush()
    return row


async def update_contract(
    session: AsyncSession, principal: Principal, contract_id: uuid.UUID, data: ContractUpdate
) -> Contract:
    row = await get_contract(session, principal, contract_id)
    changes = data.changes()
    await _lock_organization(session, row.organization_id)
    await session.refresh(row)  # read again under the lock
    starts_on: date = changes.get("starts_on", row.starts_on)
    ends_on: date | None = changes.get("ends_on", row.ends_on)
    if ends_on is not None and ends_on < starts_on:
        field = "body.ends_on" if "ends_on" in changes else "body.starts_on"
        raise invalid_field(field, "the contract would end before it starts")
    if starts_on != row.starts_on or ends_on != row.ends_on:
        existing = await _organization_contracts(session, row.organization_id)
        plans = await _all_plans(session, {c.plan_id for c in existing})
        candidate = _Held(row.id, row.plan_id, Period(starts_on, ends_on), row.reference)
        after = [candidate if c.id == row.id else _held(c) for c in existing]
        date_field = "body.starts_on" if "starts_on" in changes else "body.ends_on"
        # Also checks the dependents the old period covered and the new one may not.
        _check(after, candidate, None, plans, requires_field=date_field)
    if changes.get("hours_budget") is not None:
        changes["hours_budget"] = round(changes["hours_budget"], 2)  # as stored
    for name, value in changes.items():
        setattr(row, name, value)
    await session.flush()
    return row


async def delete_contract(
    session: AsyncSession, principal: Principal, contract_id: uuid.UUID
) -> None:
    row = await get_contract(session, principal, contract_id)
    await _lock_organization(session, row.organization_id)
    tickets = (
        await session.execute(
            select(func.count()).select_from(Ticket).where(col(Ticket.contract_id) == row.id)
        )
    ).scalar_one()
    if tickets:
        raise Conflict(
            f"{tickets} ticket(s) were taken under this contract; end it (ends_on) instead of "
            "deleting it.",
            tickets=tickets,
        )
    existing = await _organization_contracts(session, row.organization_id)
    plans = await _all_plans(session, {c.plan_id for c in existing})
    after = [_held(c) for c in existing if c.id != row.id]
    _check(after, None, _held(row), plans, requires_field="body")
    await session.delete(row)
    await session.flush()
