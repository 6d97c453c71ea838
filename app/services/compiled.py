"""Compiled plan terms and compiled calendars, by (id, version), kept per process.

Every request used to parse and check a plan's targets again (sla.check_targets looks
for ambiguous pairs) and to rebuild the calendar it counts on; both are pure functions
of a stored row, so each process keeps what it built, in a small LRU keyed by
``(id, version)``:

* **Never stale.** The version is read with the row (a plan's or a calendar's, or the
  one a ticket's snapshot names), and every effective edit bumps it, so a newer row
  never meets an older entry. Each entry also keeps the stored values it was built
  from and is used only for equal values: a row changed without a version bump (a hand
  edit in SQL, an unsaved what-if plan that reuses nothing) is compiled afresh rather
  than trusted. The cost of that check is a dict comparison, far below a compile. (An
  edit compiles its new version inside its transaction, to re-time clocks; were it
  rolled back, another edit could commit other values under that same version number:
  the check is what keeps the uncommitted entry from ever being used.)
* **Freed early.** An edit sends ``NOTIFY sladesk_compiled, '<kind>:<id>:<version>'``
  in its transaction (delivered at commit); each server process LISTENs
  (app.workers.compiled_listener) and drops the older versions of that id. This only
  frees memory sooner: correctness comes from the key alone, so a lost notification
  (a LISTEN connection down) costs nothing but a few stale entries until the LRU
  evicts them.

This module is the bottom of the plan/calendar/clock services: it imports none of
them (pyproject.toml's import-linter layers contract keeps it so).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.calendar import Calendar, CalendarSpecError
from app.domain.entitlement import Billing as BillingTerms
from app.domain.entitlement import PlanTerms, UnrequestedAfterHours
from app.domain.lifecycle import AutoClosePolicy
from app.domain.sla import AmbiguousTargets, InvalidTarget, Target, check_targets
from app.domain.vocab import Category, Channel, TicketStatus
from app.errors import ValidationFailed, field_error, invalid_field
from app.models.calendar import CalendarRow, CalendarVersion
from app.models.plan import Plan

CHANNEL = "sladesk_compiled"
ALWAYS_OPEN = Calendar.always_open()
# A business-time duration must come due within this horizon on its calendar: a calendar
# open a few minutes a week cannot honour a month of business time (and computing such a
# due time would walk thousands of years of calendar days).
HORIZON = timedelta(days=5 * 366)

V = TypeVar("V")


class VersionedCache(Generic[V]):
    """An LRU of values compiled from a stored row, by (id, version).

    An entry also keeps the source it was built from and answers only an equal source
    (see the module docstring); :meth:`forget` drops an id's versions below a newer one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[uuid.UUID, int], tuple[Any, V]] = OrderedDict()
        # Requests run on one event loop, but the cache is plain process state: a lock
        # keeps it sound for threads too (run_in_threadpool, tests), and costs nothing.
        self._lock = threading.Lock()

    def get(self, key_id: uuid.UUID, version: int, source: Any, build: Callable[[], V]) -> V:
        key = (key_id, version)
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0] == source:
                self._items.move_to_end(key)
                return found[1]
        value = build()  # outside the lock: a build that raises caches nothing
        # A copy: the row's (or snapshot's) JSON values stay the caller's to change.
        kept = copy.deepcopy(source)
        with self._lock:
            self._items[key] = (kept, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def forget(self, key_id: uuid.UUID, below: int | None = None) -> int:
        """Drop the entries of `key_id` (those with a version below `below`, if given);
        returns how many."""
        with self._lock:
            stale = [k for k in self._items if k[0] == key_id and (below is None or k[1] < below)]
            for key in stale:
                del self._items[key]
        return len(stale)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def held(self) -> list[tuple[uuid.UUID, int]]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


# A few hundred plans and calendars cover any installation's live ones; each entry is
# a few kilobytes (a calendar's day cache is bounded in app.domain.calendar).
calendars: VersionedCache[Calendar] = VersionedCache(256)
plans: VersionedCache[PlanTerms] = VersionedCache(512)


# ------------------------------------------------------------------------ calendars


def compile_spec(spec: dict[str, Any], prefix: str = "body") -> Calendar:
    """Validate a spec with the domain; a bad field is a 422 naming it."""
    try:
        return Calendar.from_spec(spec)
    except CalendarSpecError as exc:
        raise invalid_field(f"{prefix}.{exc.field}", exc.message, "calendar") from None


def calendar(row: CalendarRow | CalendarVersion) -> Calendar:
    """The compiled calendar of a stored (or archived) calendar version."""
    calendar_id = row.calendar_id if isinstance(row, CalendarVersion) else row.id
    return calendar_of(calendar_id, row.version, row.spec)


def calendar_of(calendar_id: uuid.UUID, version: int, spec: dict[str, Any]) -> Calendar:
    """The compiled calendar of a version read as columns (with a ticket, say)."""
    return calendars.get(calendar_id, version, spec, lambda: compile_spec(spec, "spec"))


async def last_versions(
    session: AsyncSession, calendar_ids: set[uuid.UUID]
) -> list[CalendarVersion]:
    """The last archived version of each of these (deleted) calendars."""
    if not calendar_ids:
        return []
    stmt = (
        select(CalendarVersion)
        .where(col(CalendarVersion.calendar_id).in_(calendar_ids))
        .order_by(col(CalendarVersion.version))
    )
    last = {v.calendar_id: v for v in (await session.execute(stmt)).scalars()}
    return list(last.values())


# ---------------------------------------------------------------------------- plans


def parse_targets(items: Sequence[Mapping[str, Any]], prefix: str = "body") -> tuple[Target, ...]:
    """Build the domain targets (app.domain.sla): a bad one is a 422 naming its index,
    and so are two equally specific targets that can match the same ticket."""
    targets: list[Target] = []
    for index, item in enumerate(items):
        try:
            targets.append(Target.from_dict(item, index))
        except InvalidTarget as exc:
            raise invalid_field(f"{prefix}.targets[{index}]", str(exc), "target") from None
    try:
        check_targets(targets)
    except AmbiguousTargets as exc:
        errors = [
            field_error(
                f"{prefix}.targets[{j}]",
                f"as specific as targets[{i}] and can match the same ticket for the same "
                "metric; narrow one of them or add a more specific target",
                "ambiguous_targets",
            )
            for i, j in exc.pairs
        ]
        listed = ", ".join(f"targets[{i}] and targets[{j}]" for i, j in exc.pairs)
        raise ValidationFailed(
            f"Ambiguous targets: {listed} are equally specific for the same metric and can "
            "match the same ticket; narrow one of them or add a more specific target.",
            errors,
            pairs=[list(p) for p in exc.pairs],
        ) from None
    return tuple(targets)


# What the domain terms are built from, besides id, calendar, time zone and requires:
# the plan's stored fields, which a ticket's snapshot also keeps (services.plan_terms).
PLAN_FIELDS = (
    "code",
    "name",
    "level",
    "channels",
    "excluded_categories",
    "pause_on",
    "auto_close",
    "billing",
    "targets",
    "version",
    "active",
)


def _build(
    plan_id: uuid.UUID,
    calendar_id: uuid.UUID,
    timezone: str,
    requires: str | None,
    fields: Mapping[str, Any],
) -> PlanTerms:
    billing = fields["billing"] or {}
    after_hours = billing.get("after_hours") or {}
    auto_close = fields["auto_close"]
    return PlanTerms(
        id=plan_id,
        code=fields["code"],
        name=fields["name"],
        level=fields["level"],
        requires=requires,
        calendar_id=calendar_id,
        timezone=timezone,
        channels=frozenset(Channel(c) for c in fields["channels"]),
        excluded_categories=frozenset(Category(c) for c in fields["excluded_categories"]),
        pause_on=frozenset(TicketStatus(s) for s in fields["pause_on"]),
        auto_close=AutoClosePolicy(**auto_close) if auto_close else None,
        billing=BillingTerms(
            follow_up_minutes=billing.get("follow_up_minutes", 15),
            sessions_per_consultant=billing.get("sessions_per_consultant", True),
            after_hours_allowed=after_hours.get("allowed", False),
            after_hours_multiplier=after_hours.get("multiplier", 1.5),
            after_hours_unrequested=UnrequestedAfterHours(
                after_hours.get("unrequested", UnrequestedAfterHours.BUSINESS_RATE)
            ),
        ),
        targets=parse_targets(fields["targets"], "plan"),
        version=fields["version"],
        active=fields["active"],
    )


def _terms(
    plan_id: uuid.UUID,
    calendar_id: uuid.UUID,
    timezone: str,
    requires: str | None,
    fields: Mapping[str, Any],
) -> PlanTerms:
    source = (calendar_id, timezone, requires, *(fields[name] for name in PLAN_FIELDS))
    return plans.get(
        plan_id,
        fields["version"],
        source,
        lambda: _build(plan_id, calendar_id, timezone, requires, fields),
    )


def terms_of(row: Plan, timezone: str, requires_code: str | None) -> PlanTerms:
    """The domain's view of a stored plan (its targets were validated when written)."""
    fields = {name: getattr(row, name) for name in PLAN_FIELDS}
    return _terms(row.id, row.calendar_id, timezone, requires_code, fields)


def terms_of_snapshot(item: Mapping[str, Any]) -> PlanTerms:
    """The domain's view of one plan of a ticket's snapshot chain: the same entry as the
    plan row of that version gives, when the snapshot kept exactly that row."""
    return _terms(
        uuid.UUID(item["id"]),
        uuid.UUID(item["calendar_id"]),
        item["timezone"],
        item["requires"],
        item,
    )


def plan_chain(seed: Select[Any]) -> Select[Any]:
    """The ids of the plans `seed` selects (one column of plan ids) and of every plan they
    require, transitively: a recursive CTE, to use in ``Plan.id IN (...)``."""
    chain = seed.cte("chain", recursive=True)
    chain = chain.union(
        select(col(Plan.requires_id))
        .join(chain, col(Plan.id) == chain.c[0])
        .where(col(Plan.requires_id).is_not(None))
    )
    return select(chain.c[0])


def with_calendars(*extra: Any) -> Select[Any]:
    """Plans with their calendars (and `extra` columns or entities), to filter."""
    return select(Plan, CalendarRow, *extra).join(
        CalendarRow, col(CalendarRow.id) == col(Plan.calendar_id)
    )


def terms_from(
    found: Iterable[tuple[Plan, CalendarRow]],
) -> tuple[dict[str, PlanTerms], dict[str, Plan], dict[uuid.UUID, CalendarRow]]:
    """Domain terms by code, the rows by code and the calendars by id, of loaded plans."""
    rows: dict[uuid.UUID, Plan] = {}
    calendar_rows: dict[uuid.UUID, CalendarRow] = {}
    for plan, calendar_row in found:
        rows[plan.id] = plan
        calendar_rows[calendar_row.id] = calendar_row
    terms: dict[str, PlanTerms] = {}
    by_code: dict[str, Plan] = {}
    for row in rows.values():
        requires = rows[row.requires_id].code if row.requires_id in rows else None
        terms[row.code] = terms_of(row, calendar_rows[row.calendar_id].timezone, requires)
        by_code[row.code] = row
    return terms, by_code, calendar_rows


async def load_terms(
    session: AsyncSession, plan_ids: Sequence[uuid.UUID]
) -> tuple[dict[str, PlanTerms], dict[str, Plan], dict[uuid.UUID, CalendarRow]]:
    """The plans with these ids and every plan they require (transitively), as domain
    terms by code; also the rows by code and their calendars by id. One statement."""
    if not plan_ids:
        return {}, {}, {}
    seed = select(col(Plan.id)).where(col(Plan.id).in_(set(plan_ids)))
    stmt = with_calendars().where(col(Plan.id).in_(plan_chain(seed)))
    found = (await session.execute(stmt)).all()
    return terms_from(found)


# --------------------------------------------------------------------- invalidation


async def changed(session: AsyncSession, kind: str, row_id: uuid.UUID, version: int) -> None:
    """Tell every process (at commit) that `kind` ``plan``/``calendar`` `row_id` is now at
    `version` (0: deleted), so they free its older entries."""
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": f"{kind}:{row_id}:{version}"},
    )


def forget_notified(payload: str) -> int:
    """Act on a notification of :func:`changed`; returns how many entries were dropped.
    A payload this version does not understand drops nothing (it is only a hint)."""
    kind, _, rest = payload.partition(":")
    raw_id, _, raw_version = rest.partition(":")
    try:
        row_id, version = uuid.UUID(raw_id), int(raw_version)
    except ValueError:
        return 0
    cache: VersionedCache[Any]
    if kind == "plan":
        cache = plans
    elif kind == "calendar":
        cache = calendars
    else:
        return 0
    return cache.forget(row_id, below=version if version > 0 else None)


def clear() -> None:
    """Drop everything (a LISTEN connection that was down may have missed changes)."""
    plans.clear()
    calendars.clear()
