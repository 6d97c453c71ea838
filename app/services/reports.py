"""Reports: SLA compliance (`GET /v1/reports/sla-compliance`) and the what-if simulator
(`POST /v1/reports/simulate`).

Both compute their figures with one SQL aggregate (:func:`_figures`) over a relation of
*clock facts*: one row per timed clock (finite target) of an entitled ticket received in
``[from, to)``, with its state at ``as_of`` and, when stopped, its business elapsed time.
The compliance report takes the facts from ``sla_clocks``; the simulator takes the actual
ones from there too, and the simulated ones from the replay (``app.domain.replay``)
passed in as arrays (``unnest``), so both columns of a simulation are computed by the same
statement, down to the rounding.

Clock state at ``as_of`` (as ``app.domain.sla.read`` reads it):

* ``breached``: a breach was recorded (``breached_at``), or the clock is running and its
  due instant is before ``as_of``;
* ``met``: stopped, not breached;
* ``pending``: running before its due instant, or paused.

Times are the business time (``elapsed_us``) of stopped clocks, median and 90th
percentile by ``percentile_cont``, in seconds rounded to the millisecond.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain import replay as replaying
from app.domain.entitlement import coverage_of
from app.domain.replay import ReplayTerms, TicketFacts, TimelineEvent
from app.domain.vocab import Category, Channel, Metric, Severity
from app.errors import NotFound, ValidationFailed, connection_lost, field_error, invalid_field
from app.models import Organization
from app.models.calendar import CalendarRow
from app.schemas.plans import PlanCreate
from app.schemas.reports import (
    MAX_SIMULATED_TICKETS,
    MAX_SPAN_DAYS,
    Breach,
    ChangedOutcome,
    ComplianceReport,
    Durations,
    Figures,
    FiguresSet,
    Group,
    GroupBy,
    SimulatedPlan,
    SimulationRead,
    SimulationRequest,
)
from app.security import Principal
from app.services import clocks as clock_store
from app.services import compiled, csv_export, plans
from app.services.plan_terms import TicketTerms
from app.services.tickets import display_number

CHUNK = 1_000  # tickets loaded (with their timelines) per round trip
_US = timedelta(microseconds=1)

# --------------------------------------------------------------------------- SQL

_STATE = """CASE
      WHEN c.breached_at IS NOT NULL OR (c.running_since IS NOT NULL AND c.due_at < :as_of)
        THEN 'breached'
      WHEN c.stopped_at IS NOT NULL THEN 'met'
      ELSE 'pending' END"""

_SCOPE = "t.received_at >= :from_ AND t.received_at < :to {org}"

_TICKET_COLUMNS = """t.organization_id, t.plan_id, t.plan_snapshot->'plan'->>'code' AS plan_code,
    t.severity, t.received_at, t.number"""

ACTUAL_FACTS = f"""
SELECT c.ticket_id, c.metric, {_STATE} AS state,
    CASE WHEN c.stopped_at IS NOT NULL THEN c.elapsed_us END AS stopped_us,
    COALESCE(c.due_at, c.breached_at) AS due_at,
    COALESCE(c.breached_at, c.due_at) AS breached_at,
    {_TICKET_COLUMNS}
FROM tickets t JOIN sla_clocks c ON c.ticket_id = t.id
WHERE {_SCOPE} AND t.entitled AND c.minutes IS NOT NULL"""

SIMULATED_FACTS = f"""
SELECT s.ticket_id, s.metric, s.state, s.stopped_us,
    NULL::timestamptz AS due_at, NULL::timestamptz AS breached_at,
    {_TICKET_COLUMNS}
FROM unnest(CAST(:sim_ids AS uuid[]), CAST(:sim_metrics AS text[]),
            CAST(:sim_states AS text[]), CAST(:sim_stopped AS bigint[]))
     AS s(ticket_id, metric, state, stopped_us)
JOIN tickets t ON t.id = s.ticket_id"""

_KEY = {
    GroupBy.ORGANIZATION: "f.organization_id::text",
    GroupBy.PLAN: "f.plan_id::text",
    GroupBy.SEVERITY: "f.severity",
    GroupBy.METRIC: "f.metric",
    GroupBy.MONTH: "to_char(f.received_at AT TIME ZONE :tz, 'YYYY-MM')",
}
_LABEL = {GroupBy.PLAN: "f.plan_code"}


def _durations(metric: str) -> str:
    only = f"FILTER (WHERE metric = '{metric}')"
    return f"""count(stopped_us) {only} AS {metric}_n,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY stopped_us) {only} AS {metric}_median,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY stopped_us) {only} AS {metric}_p90"""


def _aggregate(facts: str, group_by: GroupBy) -> str:
    label = _LABEL.get(group_by, "NULL::text")
    return f"""
WITH facts AS ({facts}),
g AS (SELECT {_KEY[group_by]} AS gkey, {label} AS glabel, f.* FROM facts f)
SELECT gkey, max(glabel) AS glabel, GROUPING(gkey) AS is_total,
    count(DISTINCT ticket_id) AS tickets, count(*) AS clocks,
    count(*) FILTER (WHERE state = 'met') AS met,
    count(*) FILTER (WHERE state = 'breached') AS breached,
    count(*) FILTER (WHERE state = 'pending') AS pending,
    {_durations("first_response")},
    {_durations("resolution")}
FROM g
GROUP BY GROUPING SETS ((gkey), ())
ORDER BY is_total, gkey NULLS LAST"""


def _breaches_sql(group_by: GroupBy) -> str:
    return f"""
WITH facts AS ({ACTUAL_FACTS}),
g AS (SELECT {_KEY[group_by]} AS gkey, f.* FROM facts f WHERE f.state = 'breached'),
ranked AS (
    SELECT g.*, row_number() OVER (
        PARTITION BY gkey ORDER BY breached_at, number, metric) AS rn
    FROM g)
SELECT gkey, ticket_id, number, metric, due_at, breached_at FROM ranked
WHERE rn <= :breach_limit ORDER BY gkey, rn"""


# ------------------------------------------------------------------------ checks


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class Scope:
    from_: datetime
    to: datetime
    organization_id: uuid.UUID | None
    tz: str
    as_of: datetime

    @property
    def params(self) -> dict[str, Any]:
        return {
            "from_": self.from_,
            "to": self.to,
            "org": self.organization_id,
            "tz": self.tz,
            "as_of": self.as_of,
        }

    def sql(self, template: str) -> str:
        org = "AND t.organization_id = :org" if self.organization_id is not None else ""
        return template.replace("{org}", org)


async def _scope(
    session: AsyncSession,
    principal: Principal,
    from_: datetime,
    to: datetime,
    organization_id: uuid.UUID | None,
    tz: str,
    as_of: datetime,
    prefix: str,
) -> Scope:
    if from_ >= to:
        raise invalid_field(f"{prefix}.to", "must be after from")
    if to - from_ > timedelta(days=MAX_SPAN_DAYS):
        raise invalid_field(
            f"{prefix}.to", f"the period may span at most {MAX_SPAN_DAYS} days; split it"
        )
    if tz not in _zones():
        raise invalid_field(f"{prefix}.tz", "unknown IANA time zone (e.g. Europe/Madrid)")
    if tz != "UTC":
        try:
            async with session.begin_nested():
                await session.execute(text("SELECT now() AT TIME ZONE :tz"), {"tz": tz})
        except DBAPIError as error:
            if connection_lost(error):
                raise  # not the zone's fault: a 503 (app.errors)
            raise invalid_field(f"{prefix}.tz", "time zone unknown to the database") from None
    if principal.is_customer:
        if organization_id is not None and organization_id != principal.organization_id:
            raise NotFound("No organization with that id.")
        organization_id = principal.organization_id
    elif organization_id is not None and await session.get(Organization, organization_id) is None:
        raise NotFound("No organization with that id.")
    return Scope(from_, to, organization_id, tz, as_of)


# ------------------------------------------------------------------------ figures


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value / 1_000_000, 3)


def _figures_of(row: Any) -> dict[str, Any]:
    met, breached = int(row.met), int(row.breached)
    decided = met + breached
    return {
        "tickets": int(row.tickets),
        "clocks": int(row.clocks),
        "met": met,
        "breached": breached,
        "pending": int(row.pending),
        "compliance_pct": round(met * 100 / decided, 2) if decided else None,
        "first_response": Durations(
            count=int(row.first_response_n),
            median_seconds=_seconds(row.first_response_median),
            p90_seconds=_seconds(row.first_response_p90),
        ),
        "resolution": Durations(
            count=int(row.resolution_n),
            median_seconds=_seconds(row.resolution_median),
            p90_seconds=_seconds(row.resolution_p90),
        ),
    }


_EMPTY = Figures(
    tickets=0,
    clocks=0,
    met=0,
    breached=0,
    pending=0,
    compliance_pct=None,
    first_response=Durations(count=0, median_seconds=None, p90_seconds=None),
    resolution=Durations(count=0, median_seconds=None, p90_seconds=None),
)


async def _figures(
    session: AsyncSession,
    scope: Scope,
    group_by: GroupBy,
    facts: str,
    extra: dict[str, Any] | None = None,
) -> FiguresSet:
    """The one aggregate behind every figure of both reports."""
    rows = (
        await session.execute(
            text(scope.sql(_aggregate(facts, group_by))), {**scope.params, **(extra or {})}
        )
    ).all()
    groups: list[Group] = []
    total = _EMPTY
    for row in rows:
        if row.is_total:
            total = Figures(**_figures_of(row))
        else:
            groups.append(Group(key=row.gkey, label=row.glabel or row.gkey, **_figures_of(row)))
    if group_by is GroupBy.ORGANIZATION and groups:
        ids = [uuid.UUID(g.key) for g in groups if g.key]
        names: dict[str, str] = dict(
            (
                await session.execute(
                    text("SELECT id::text, name FROM organizations WHERE id = ANY(:ids)"),
                    {"ids": ids},
                )
            ).all()
        )
        for group in groups:
            group.label = names.get(group.key or "", group.key)
    return FiguresSet(groups=groups, total=total)


async def sla_compliance(
    session: AsyncSession,
    principal: Principal,
    *,
    from_: datetime,
    to: datetime,
    group_by: GroupBy,
    organization_id: uuid.UUID | None,
    tz: str,
    include_breaches: bool,
    breach_limit: int,
    now: datetime,
) -> ComplianceReport:
    scope = await _scope(session, principal, from_, to, organization_id, tz, now, "query")
    figures = await _figures(session, scope, group_by, ACTUAL_FACTS)
    if include_breaches:
        found: dict[str | None, list[Breach]] = {}
        rows = await session.execute(
            text(scope.sql(_breaches_sql(group_by))),
            {**scope.params, "breach_limit": breach_limit},
        )
        for row in rows:
            found.setdefault(row.gkey, []).append(
                Breach(
                    ticket_id=row.ticket_id,
                    number=display_number(row.number),
                    metric=row.metric,
                    due_at=row.due_at,
                    breached_at=row.breached_at,
                )
            )
        for group in figures.groups:
            group.breaches = found.get(group.key, [])
            group.breaches_truncated = group.breached > len(group.breaches)
    return ComplianceReport(
        from_=scope.from_,
        to=scope.to,
        group_by=group_by,
        tz=tz,
        organization_id=scope.organization_id,
        as_of=now,
        groups=figures.groups,
        total=figures.total,
    )


_CSV_COLUMNS = (
    "group_by",
    "key",
    "label",
    "tickets",
    "clocks",
    "met",
    "breached",
    "pending",
    "compliance_pct",
    "first_response_count",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_count",
    "resolution_median_seconds",
    "resolution_p90_seconds",
)


def to_csv(report: ComplianceReport) -> str:
    """One row per group, then the total (key `*`)."""
    entries: list[tuple[str | None, str | None, Figures]] = [
        (g.key, g.label, g) for g in report.groups
    ]
    entries.append(("*", "total", report.total))
    return csv_export.to_csv(
        _CSV_COLUMNS,
        (
            (
                report.group_by.value,
                key,
                label,
                f.tickets,
                f.clocks,
                f.met,
                f.breached,
                f.pending,
                f.compliance_pct,
                f.first_response.count,
                f.first_response.median_seconds,
                f.first_response.p90_seconds,
                f.resolution.count,
                f.resolution.median_seconds,
                f.resolution.p90_seconds,
            )
            for key, label, f in entries
        ),
    )


# ---------------------------------------------------------------------- simulator


@dataclass
class _Plan:
    """The terms the simulation applies to every ticket (None: each ticket's own)."""

    terms: ReplayTerms | None
    summary: SimulatedPlan


async def _stored_plan(session: AsyncSession, plan_id: uuid.UUID) -> _Plan:
    terms, rows, cal_rows = await compiled.load_terms(session, [plan_id])
    row = next((r for r in rows.values() if r.id == plan_id), None)
    if row is None:
        raise NotFound("No plan with that id.")
    coverage = coverage_of(row.code, terms)
    business = compiled.calendar(cal_rows[coverage.calendar_id])
    return _Plan(
        ReplayTerms(coverage=coverage, business=business),
        SimulatedPlan(id=row.id, code=row.code, name=row.name),
    )


def _under_plan(error: ValidationFailed) -> ValidationFailed:
    """The plan validation names fields `body.x`; here they live in `body.plan.x`."""
    errors = [
        {**e, "field": str(e.get("field", "body")).replace("body", "body.plan", 1)}
        for e in error.extra.get("errors", [])
    ]
    detail = error.detail.replace("body.", "body.plan.")
    extra = {k: v for k, v in error.extra.items() if k != "errors"}
    return ValidationFailed(detail, errors, **extra)


async def _inline_plan(session: AsyncSession, data: PlanCreate, now: datetime) -> _Plan:
    """Validated as POST /v1/plans validates (same 422s), never stored."""
    try:
        row = await plans.unsaved_plan(session, data, now=now)
    except ValidationFailed as exc:
        raise _under_plan(exc) from None
    requires_id = row.requires_id
    chain, _, _ = await compiled.load_terms(session, [requires_id] if requires_id else [])
    calendar_rows = await clock_store.calendar_set(session, [data.calendar_id])
    calendar_row = await session.get(CalendarRow, data.calendar_id)
    assert calendar_row is not None  # _validate checked it
    inline = compiled.terms_of(row, calendar_row.timezone, data.requires)
    coverage = coverage_of(data.code, {**chain, data.code: inline})
    return _Plan(
        ReplayTerms(coverage=coverage, business=calendar_rows.calendar(data.calendar_id)),
        SimulatedPlan(id=None, code=data.code, name=data.name),
    )


def _withdrawn(events: Sequence[Any]) -> set[str]:
    """Ids of the system events a later event withdrew (an auto-close a late customer
    reply showed should not have happened: services/reevaluation.py)."""
    return {
        str(e.data["event_id"])
        for e in events
        if e.kind == "auto_close_withdrawn" and (e.data or {}).get("event_id")
    }


def _event(
    kind: str,
    at: datetime,
    actor: dict[str, Any],
    data: dict[str, Any],
    withdrawn: bool = False,
) -> TimelineEvent:
    to_tier = data.get("to_tier")
    reason = data.get("reason")
    after = data.get("to") if kind == "changed" else None
    severity = category = None
    if isinstance(after, dict):
        severity = Severity(after["severity"]) if after.get("severity") else None
        category = Category(after["category"]) if after.get("category") else None
    return TimelineEvent(
        kind=kind,
        at=at,
        system=actor.get("role") == "system",
        withdrawn=withdrawn,
        to_tier=to_tier if isinstance(to_tier, int) and not isinstance(to_tier, bool) else None,
        close_reason=reason if kind == "closed" and isinstance(reason, str) else None,
        severity=severity,
        category=category,
    )


class _OwnTerms:
    """Each ticket's own plan (its snapshot), with its current calendar; cached."""

    def __init__(self) -> None:
        self._terms: dict[str, ReplayTerms] = {}

    async def of(self, session: AsyncSession, snapshot: dict[str, Any]) -> ReplayTerms:
        key = json.dumps(snapshot, sort_keys=True, default=str)
        found = self._terms.get(key)
        if found is None:
            terms = TicketTerms.from_snapshot(snapshot)
            cals = await clock_store.calendar_set(session, [terms.calendar_id])
            found = ReplayTerms(coverage=terms.coverage, business=cals.business(terms.calendar_id))
            self._terms[key] = found
        return found


_TICKETS = """
SELECT t.id, t.number, t.channel, t.severity, t.category, t.entitled, t.received_at,
    t.plan_snapshot
FROM tickets t
WHERE {scope} AND (t.received_at, t.id) > (:after_at, :after_id)
ORDER BY t.received_at, t.id
LIMIT :chunk"""

_EVENTS = """
SELECT e.id, e.ticket_id, e.kind, e.occurred_at, e.actor, e.data
FROM ticket_events e WHERE e.ticket_id = ANY(:ids)
ORDER BY e.ticket_id, e.seq"""

_CLOCK_STATES = f"""
SELECT c.ticket_id, c.metric,
    CASE WHEN c.minutes IS NULL OR NOT t.entitled THEN 'best_effort' ELSE {_STATE} END AS state
FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id
WHERE c.ticket_id = ANY(:ids)"""


async def simulate(
    session: AsyncSession, principal: Principal, body: SimulationRequest, *, now: datetime
) -> SimulationRead:
    # Writes nothing, whatever a bug below might try: the database refuses.
    await session.execute(text("SET TRANSACTION READ ONLY"))
    scope = await _scope(
        session, principal, body.from_, body.to, body.organization_id, body.tz, now, "body"
    )
    if body.plan_id is not None:
        chosen = await _stored_plan(session, body.plan_id)
    elif body.plan is not None:
        chosen = await _inline_plan(session, body.plan, now)
    else:
        chosen = _Plan(None, SimulatedPlan(id=None, code=None, name=None))
    where = scope.sql(_SCOPE)
    count = int(
        (
            await session.execute(
                text(f"SELECT count(*) FROM tickets t WHERE {where}"), scope.params
            )
        ).scalar_one()
    )
    if count > MAX_SIMULATED_TICKETS:
        raise ValidationFailed(
            f"{count} tickets were received in this period; a simulation replays at most "
            f"{MAX_SIMULATED_TICKETS}. Narrow the period or choose an organization.",
            [field_error("body.to", "too many tickets in the period", "too_many_tickets")],
            tickets=count,
            limit=MAX_SIMULATED_TICKETS,
        )
    own = _OwnTerms()
    sim_ids: list[uuid.UUID] = []
    sim_metrics: list[str] = []
    sim_states: list[str] = []
    sim_stopped: list[int | None] = []
    changed: list[ChangedOutcome] = []
    changed_total = retimed = skipped = 0
    after_at, after_id = datetime.min.replace(tzinfo=now.tzinfo), uuid.UUID(int=0)
    while True:
        tickets = (
            await session.execute(
                text(_TICKETS.format(scope=where)),
                {**scope.params, "after_at": after_at, "after_id": after_id, "chunk": CHUNK},
            )
        ).all()
        if not tickets:
            break
        after_at, after_id = tickets[-1].received_at, tickets[-1].id
        ids = [t.id for t in tickets]
        timelines: dict[uuid.UUID, list[Any]] = {}
        for row in await session.execute(text(_EVENTS), {"ids": ids}):
            timelines.setdefault(row.ticket_id, []).append(row)
        actual: dict[tuple[uuid.UUID, str], str] = {
            (r.ticket_id, r.metric): r.state
            for r in await session.execute(text(_CLOCK_STATES), {**scope.params, "ids": ids})
        }
        for ticket in tickets:
            events = timelines.get(ticket.id, [])
            first: dict[str, Any] | None = next(
                (e.data for e in events if e.kind == "created"), None
            )
            created = first or {}
            facts = TicketFacts(
                received_at=ticket.received_at,
                channel=Channel(created.get("channel", ticket.channel)),
                severity=Severity(created.get("severity", ticket.severity)),
                category=Category(created.get("category", ticket.category)),
                entitled=bool(ticket.entitled),
            )
            terms = chosen.terms
            if terms is None:
                if ticket.plan_snapshot is None or not ticket.entitled:
                    facts = TicketFacts(**{**facts.__dict__, "entitled": False})
                    terms = _NO_TERMS
                else:
                    terms = await own.of(session, ticket.plan_snapshot)
            withdrawn = _withdrawn(events)
            result = replaying.replay(
                facts,
                [
                    _event(e.kind, e.occurred_at, e.actor or {}, e.data or {},
                           str(e.id) in withdrawn)
                    for e in events
                ],
                terms,
                now,
            )  # fmt: skip
            retimed += result.retimed
            skipped += result.skipped
            for metric in Metric:
                outcome = result.outcomes.get(metric)
                simulated = outcome.outcome.value if outcome is not None else "none"
                if outcome is not None and outcome.counted:
                    sim_ids.append(ticket.id)
                    sim_metrics.append(metric.value)
                    sim_states.append(simulated)
                    sim_stopped.append(
                        outcome.elapsed // _US if outcome.stopped_at is not None else None
                    )
                was = actual.get((ticket.id, metric.value), "none")
                if was != simulated:
                    changed_total += 1
                    if len(changed) < body.changed_limit:
                        changed.append(
                            ChangedOutcome(
                                ticket_id=ticket.id,
                                number=display_number(ticket.number),
                                metric=metric.value,
                                actual=was,
                                simulated=simulated,
                            )
                        )
        if len(tickets) < CHUNK:
            break
    actual_figures = await _figures(session, scope, body.group_by, ACTUAL_FACTS)
    simulated_figures = await _figures(
        session,
        scope,
        body.group_by,
        SIMULATED_FACTS,
        {
            "sim_ids": sim_ids,
            "sim_metrics": sim_metrics,
            "sim_states": sim_states,
            "sim_stopped": sim_stopped,
        },
    )
    return SimulationRead(
        from_=scope.from_,
        to=scope.to,
        organization_id=scope.organization_id,
        group_by=body.group_by,
        tz=scope.tz,
        as_of=now,
        plan=chosen.summary,
        tickets=count,
        retimed_tickets=retimed,
        skipped_events=skipped,
        actual=actual_figures,
        simulated=simulated_figures,
        changed=changed,
        changed_total=changed_total,
    )


def _no_terms() -> ReplayTerms:
    """Terms for a ticket without a plan: it gets no clocks (facts say not entitled)."""
    from app.domain.entitlement import Coverage, PlanTerms
    from app.domain.sla import ALWAYS_OPEN

    plan = PlanTerms(
        id=uuid.UUID(int=0),
        code="none",
        level=0,
        calendar_id=uuid.UUID(int=0),
        timezone="UTC",
        channels=frozenset(),
    )
    return ReplayTerms(coverage=Coverage(plan=plan, chain=(plan,)), business=ALWAYS_OPEN)


_NO_TERMS = _no_terms()

__all__: Sequence[str] = ("simulate", "sla_compliance", "to_csv")
