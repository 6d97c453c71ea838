"""`sladesk load FILE…`: create calendars, plans and (demo) organizations from TOML files.

A file (see ``examples/``) has up to four arrays of tables, loaded in this order:

``[[calendars]]``
    the body of ``POST /v1/calendars`` (``name``, ``timezone``, ``weekly_hours``, …).
``[[plans]]`` with ``[[plans.targets]]``
    the body of ``POST /v1/plans``, except that the calendar is named (``calendar =
    "<calendar name>"``) instead of given by id, and, TOML having no null, a best-effort
    target says ``minutes = "best_effort"``. A key left out takes its API default (no
    ``requires``, ``auto_close`` or ``description``: null), so a file states the whole
    plan. A plan's ``requires`` must name a plan loaded earlier (in this file, an earlier
    file, or the database).
``[[agents]]``
    the body of ``POST /v1/agents`` (``name``, ``email``, ``tier``).
``[[organizations]]`` with ``[[organizations.contacts]]`` and ``[[organizations.contracts]]``
    demo customers: the bodies of the directory endpoints (a contact may say ``active =
    false``: a person who left); a contract names its plan (``plan = "<code>"``) and is
    identified by plan and ``starts_on``. An organization the load creates gets a
    customer API key, returned (``Loaded.secret``) to be shown once.

Everything goes through the services the API uses, so every rule and every 422 applies.
Loading is an upsert and idempotent: calendars are matched by name, plans by code,
agents and organizations by name or email, contacts by email, contracts by (plan,
starts_on); a record that
already says the same is left alone (no version bump). One transaction for all files:
an error anywhere loads nothing.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import AppError, invalid_field
from app.models import Agent, CalendarRow, Contact, Contract, Organization
from app.schemas.api_keys import ApiKeyCreate
from app.schemas.calendars import CalendarCreate, CalendarUpdate
from app.schemas.contracts import ContractCreate, ContractUpdate
from app.schemas.directory import (
    AgentCreate,
    AgentUpdate,
    ContactCreate,
    ContactUpdate,
    OrganizationCreate,
    OrganizationUpdate,
)
from app.schemas.plans import PlanCreate
from app.security import Principal, Role
from app.services import api_keys, calendars, contracts, directory, plans

BEST_EFFORT = "best_effort"
SECTIONS = ("calendars", "plans", "agents", "organizations")

# The loader acts as an administrator (it runs with the database's credentials).
LOADER = Principal(key_id=uuid.UUID(int=0), role=Role.ADMIN)


class LoadError(Exception):
    """A file that cannot be loaded: the message names the file and the record."""


@dataclass(frozen=True)
class Loaded:
    kind: str  # calendar, plan, agent, organization, contact, contract
    key: str
    outcome: str  # created, updated, unchanged
    id: uuid.UUID | None = field(default=None, compare=False)
    # A created organization's customer API key: shown once, never stored in clear.
    secret: str | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.kind} {self.key!r} (id {self.id}): {self.outcome}"

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": self.kind,
            "key": self.key,
            "id": str(self.id) if self.id else None,
            "outcome": self.outcome,
        }
        if self.secret is not None:
            entry["customer_api_key"] = self.secret
        return entry


def read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise LoadError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise LoadError(f"{path}: not valid TOML: {exc}") from None


async def load_files(
    session: AsyncSession, paths: Sequence[Path], *, now: datetime
) -> list[tuple[Path, list[Loaded]]]:
    """Read and load the files in order, in the caller's transaction."""
    return await load_documents(session, [(path, read_file(path)) for path in paths], now=now)


async def load_documents(
    session: AsyncSession, documents: Sequence[tuple[Path, Mapping[str, Any]]], *, now: datetime
) -> list[tuple[Path, list[Loaded]]]:
    """Load documents already read (by :func:`read_file`), in order."""
    results = []
    for path, document in documents:
        results.append((path, await load_document(session, document, now=now, source=str(path))))
    return results


async def load_document(
    session: AsyncSession, document: Mapping[str, Any], *, now: datetime, source: str = "<doc>"
) -> list[Loaded]:
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise LoadError(f"{source}: unknown section(s) {unknown}; expected {list(SECTIONS)}")
    done: list[Loaded] = []
    for name in SECTIONS:
        items = document.get(name, [])
        if not isinstance(items, list):
            raise LoadError(f"{source}: {name} must be an array of tables ([[{name}]])")
        for i, item in enumerate(items):
            where = f"{source}: {name}[{i}]"
            if isinstance(item, Mapping) and isinstance(item.get("name") or item.get("code"), str):
                where += f" ({item.get('code') or item.get('name')})"
            if not isinstance(item, Mapping):
                raise LoadError(f"{where}: must be a table")
            try:
                if name == "calendars":
                    done.append(await _calendar(session, dict(item), now))
                elif name == "plans":
                    done.append(await _plan(session, dict(item), now))
                elif name == "agents":
                    done.append(await _agent(session, dict(item)))
                else:
                    done.extend(await _organization(session, dict(item)))
            except ValidationError as exc:
                raise LoadError(f"{where}: {_pydantic_message(exc)}") from None
            except AppError as exc:
                raise LoadError(f"{where}: {exc.detail}") from None
    return done


def _pydantic_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------- calendars


async def _calendar_by_name(session: AsyncSession, name: str) -> CalendarRow | None:
    stmt = select(CalendarRow).where(func.lower(col(CalendarRow.name)) == name.lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def _calendar(session: AsyncSession, item: dict[str, Any], now: datetime) -> Loaded:
    data = CalendarCreate.model_validate(item)
    row = await _calendar_by_name(session, data.name)
    if row is None:
        created = await calendars.create_calendar(session, data)
        return Loaded("calendar", data.name, "created", created.id)
    spec = data.to_spec()
    if spec == row.spec and data.name == row.name:
        return Loaded("calendar", data.name, "unchanged", row.id)
    # The whole spec, so that a field removed from the file is removed from the calendar.
    full = {"holidays": None, **spec, "name": data.name}
    await calendars.update_calendar(session, row.id, CalendarUpdate.model_validate(full), now=now)
    return Loaded("calendar", data.name, "updated", row.id)


# -------------------------------------------------------------------------- plans


async def _plan(session: AsyncSession, item: dict[str, Any], now: datetime) -> Loaded:
    calendar_name = item.pop("calendar", None)
    if "calendar_id" not in item:
        if not isinstance(calendar_name, str):
            raise invalid_field("calendar", 'name the plan\'s calendar: calendar = "<name>"')
        found = await _calendar_by_name(session, calendar_name)
        if found is None:
            raise invalid_field("calendar", f"no calendar named {calendar_name!r} (yet)")
        item["calendar_id"] = found.id
    targets = item.get("targets", [])
    if isinstance(targets, list):
        item["targets"] = [_target(t) for t in targets]
    data = PlanCreate.model_validate(item)
    row = await plans.get_plan_by_code(session, data.code)
    if row is None:
        created = await plans.create_plan(session, data, now=now)
        return Loaded("plan", data.code, "created", created.id)
    changes = data.model_dump(exclude={"code"})
    changed = await plans.apply_changes(session, row, changes, now=now)
    return Loaded("plan", data.code, "updated" if changed else "unchanged", row.id)


def _target(item: Any) -> Any:
    if isinstance(item, Mapping) and item.get("minutes") == BEST_EFFORT:
        return {**item, "minutes": None}
    return item


# ------------------------------------------------------------------------- agents


async def _agent(session: AsyncSession, item: dict[str, Any]) -> Loaded:
    data = AgentCreate.model_validate(item)
    stmt = select(Agent).where(func.lower(col(Agent.email)) == str(data.email).lower())
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        created = await directory.create_agent(session, data)
        return Loaded("agent", str(data.email), "created", created.id)
    diff = {k: v for k, v in data.model_dump().items() if getattr(row, k) != v}
    if diff:
        await directory.update_agent(session, row.id, AgentUpdate.model_validate(diff))
    return Loaded("agent", str(data.email), "updated" if diff else "unchanged", row.id)


# ------------------------------------------------------------------ organizations


async def _organization(session: AsyncSession, item: dict[str, Any]) -> list[Loaded]:
    contacts = item.pop("contacts", [])
    held = item.pop("contracts", [])
    data = OrganizationCreate.model_validate(item)
    stmt = select(Organization).where(func.lower(col(Organization.name)) == data.name.lower())
    org = (await session.execute(stmt)).scalar_one_or_none()
    done: list[Loaded] = []
    if org is None:
        org = await directory.create_organization(session, data)
        _, key = await api_keys.create_api_key(
            session,
            ApiKeyCreate(
                name=f"{org.name}: customer key made by sladesk load",
                role=Role.CUSTOMER,
                organization_id=org.id,
            ),
        )
        done.append(Loaded("organization", data.name, "created", org.id, secret=key))
    else:
        wanted = data.model_dump()
        diff = {k: v for k, v in wanted.items() if getattr(org, k) != v}
        if diff:
            await directory.update_organization(
                session, LOADER, org.id, OrganizationUpdate.model_validate(diff)
            )
        done.append(Loaded("organization", data.name, "updated" if diff else "unchanged", org.id))
    for contact in contacts:
        done.append(await _contact(session, org, dict(contact)))
    for contract in held:
        done.append(await _contract(session, org, dict(contract)))
    return done


async def _contact(session: AsyncSession, org: Organization, item: dict[str, Any]) -> Loaded:
    active = item.pop("active", True)
    data = ContactCreate.model_validate(item)
    stmt = select(Contact).where(
        col(Contact.organization_id) == org.id,
        func.lower(col(Contact.email)) == str(data.email).lower(),
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    key = f"{org.name} / {data.email}"
    if row is None:
        row = await directory.create_contact(session, LOADER, org.id, data)
        if not active:
            await directory.update_contact(
                session, LOADER, org.id, row.id, ContactUpdate(active=False)
            )
        return Loaded("contact", key, "created", row.id)
    wanted = {**data.model_dump(), "active": active}
    diff = {k: v for k, v in wanted.items() if getattr(row, k) != v}
    if diff:
        await directory.update_contact(
            session, LOADER, org.id, row.id, ContactUpdate.model_validate(diff)
        )
    return Loaded("contact", key, "updated" if diff else "unchanged", row.id)


async def _contract(session: AsyncSession, org: Organization, item: dict[str, Any]) -> Loaded:
    code = item.pop("plan", None)
    plan = await plans.get_plan_by_code(session, code) if isinstance(code, str) else None
    if plan is None:
        raise invalid_field("contracts.plan", f"no plan with code {code!r} (yet)")
    data = ContractCreate.model_validate({**item, "organization_id": org.id, "plan_id": plan.id})
    key = f"{org.name} / {code} from {data.starts_on}"
    stmt = select(Contract).where(
        col(Contract.organization_id) == org.id,
        col(Contract.plan_id) == plan.id,
        col(Contract.starts_on) == data.starts_on,
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        created = await contracts.create_contract(session, data)
        return Loaded("contract", key, "created", created.id)
    wanted = data.model_dump(include={"ends_on", "reference", "hours_budget"})
    diff = {k: v for k, v in wanted.items() if getattr(row, k) != v}
    if diff:
        await contracts.update_contract(
            session, LOADER, row.id, ContractUpdate.model_validate(diff)
        )
    return Loaded("contract", key, "updated" if diff else "unchanged", row.id)
