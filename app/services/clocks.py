"""SLA clocks: persisting app.domain.sla.Clock in sla_clocks rows, and keeping the derived
columns (due_at, next_check_at, the ticket's next_due_at) true after every change.

Every change to a clock goes through :func:`store`, which recomputes the derived columns;
the writer then calls :func:`notify_timers` so the timer loop re-reads its next instant
when the transaction commits.

Timing lock: whatever writes clocks (intake, actions, the timer) holds the shared
*timing lock* for its transaction; calendar and plan edits, which re-time many tickets,
hold it exclusively. So an edit never misses a clock that a concurrent transaction is
computing under the old terms, and lock order stays simple: timing lock, then ticket rows
(in id order when several), then their clocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain import sla
from app.domain.calendar import Calendar
from app.domain.sla import BusinessTime, Clock, Crossing, Threshold, ThresholdKind
from app.domain.vocab import Category, Channel, ClockKind, Metric, Severity
from app.models.build import build
from app.models.calendar import CalendarRow, CalendarVersion
from app.models.tickets import SlaClock, SlaFiring, Ticket
from app.services import compiled
from app.services.plan_terms import TicketTerms

TIMER_CHANNEL = "sladesk_timers"
_TIMING_LOCK = 0x51AC_10C4
_US = timedelta(microseconds=1)


# --------------------------------------------------------------------- serialization


def _threshold_json(t: Threshold) -> dict[str, Any]:
    return {
        "key": t.key,
        "kind": t.kind.value,
        "mark_us": t.mark // _US,
        "percent": t.percent,
        "before_minutes": t.before_minutes,
    }


def _threshold(data: dict[str, Any]) -> Threshold:
    return Threshold(
        key=data["key"],
        kind=ThresholdKind(data["kind"]),
        mark=timedelta(microseconds=data["mark_us"]),
        percent=data.get("percent"),
        before_minutes=data.get("before_minutes"),
    )


def _fields(clock: Clock) -> dict[str, Any]:
    """A domain clock as the row's column values (instants as datetimes)."""
    return {
        "minutes": clock.minutes,
        "kind": clock.kind.value,
        "thresholds": [_threshold_json(t) for t in clock.thresholds],
        "started_at": clock.started_at,
        "changed_at": clock.changed_at,
        "running_since": clock.running_since,
        "elapsed_us": clock.elapsed // _US,
        "stopped_at": clock.stopped_at,
        "breached_at": clock.breached_at,
        "crossings": [
            {"threshold": _threshold_json(c.threshold), "at": c.at.isoformat()}
            for c in clock.crossings
        ],
        "final_due_at": clock.final_due_at,
    }


def _clock(metric: str, f: dict[str, Any]) -> Clock:
    return Clock(
        metric=Metric(metric),
        minutes=f["minutes"],
        kind=ClockKind(f["kind"]),
        thresholds=tuple(_threshold(t) for t in f["thresholds"]),
        started_at=f["started_at"],
        changed_at=f["changed_at"],
        running_since=f["running_since"],
        elapsed=timedelta(microseconds=f["elapsed_us"]),
        stopped_at=f["stopped_at"],
        breached_at=f["breached_at"],
        crossings=tuple(
            Crossing(_threshold(c["threshold"]), datetime.fromisoformat(c["at"]))
            for c in f["crossings"]
        ),
        final_due_at=f["final_due_at"],
    )


_INSTANTS = (
    "started_at",
    "changed_at",
    "running_since",
    "stopped_at",
    "breached_at",
    "final_due_at",
)
# The sla_clocks columns a domain clock is made of (the keys of _fields).
_COLUMNS = ("minutes", "kind", "thresholds", "elapsed_us", "crossings", *_INSTANTS)


def to_domain(row: SlaClock) -> Clock:
    return _clock(row.metric, {name: getattr(row, name) for name in _COLUMNS})


def _write(row: SlaClock, clock: Clock) -> None:
    for name, value in _fields(clock).items():
        setattr(row, name, value)


def clock_json(clock: Clock) -> dict[str, Any]:
    """A domain clock as JSON, to keep a copy of it outside its row."""
    fields = _fields(clock)
    for name in _INSTANTS:
        if fields[name] is not None:
            fields[name] = fields[name].isoformat()
    return {"metric": clock.metric.value, **fields}


def clock_from_json(data: dict[str, Any]) -> Clock:
    """The domain clock :func:`clock_json` wrote."""
    fields = {k: v for k, v in data.items() if k != "metric"}
    for name in _INSTANTS:
        if fields[name] is not None:
            fields[name] = datetime.fromisoformat(fields[name])
    return _clock(data["metric"], fields)


# ------------------------------------------------------------------------- calendars


class CalendarSet:
    """The calendars counting a ticket's clocks: its plan's business calendar, or 24x7."""

    def __init__(
        self, rows: Iterable[CalendarRow] = (), archived: Iterable[CalendarVersion] = ()
    ) -> None:
        self._by_id: dict[uuid.UUID, Calendar] = {r.id: compiled.calendar(r) for r in rows}
        for version in archived:
            self._by_id[version.calendar_id] = compiled.calendar(version)

    @classmethod
    def of_versions(cls, versions: Iterable[tuple[uuid.UUID, int, dict[str, Any]]]) -> CalendarSet:
        """From (calendar id, version, spec) read along with something else."""
        found = cls()
        for calendar_id, version, spec in versions:
            found._by_id[calendar_id] = compiled.calendar_of(calendar_id, version, spec)
        return found

    def add(self, other: CalendarSet) -> None:
        self._by_id.update(other._by_id)

    def only(self, calendar_ids: Iterable[uuid.UUID | None]) -> CalendarSet:
        """The calendars of this set among `calendar_ids`."""
        found = CalendarSet()
        found._by_id = {i: self._by_id[i] for i in calendar_ids if i in self._by_id}
        return found

    def __contains__(self, calendar_id: uuid.UUID) -> bool:
        return calendar_id in self._by_id

    def business(self, calendar_id: uuid.UUID | None) -> BusinessTime:
        if calendar_id is None:
            return sla.ALWAYS_OPEN
        return self._by_id[calendar_id]

    def of(self, row: SlaClock) -> BusinessTime:
        return (
            sla.ALWAYS_OPEN
            if row.kind == ClockKind.ALWAYS.value
            else self.business(row.calendar_id)
        )

    def calendar(self, calendar_id: uuid.UUID) -> Calendar:
        """The business calendar itself (opening hours, business days)."""
        return self._by_id[calendar_id]

    def timezone(self, calendar_id: uuid.UUID) -> str | None:
        """The calendar's time zone, if it is in the set."""
        found = self._by_id.get(calendar_id)
        return found.timezone if found is not None else None


async def calendar_set(session: AsyncSession, ids: Iterable[uuid.UUID | None]) -> CalendarSet:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return CalendarSet()
    rows = list(
        (await session.execute(select(CalendarRow).where(col(CalendarRow.id).in_(wanted))))
        .scalars()
        .all()
    )
    # A deleted calendar still counts the tickets that ran under it: its last version.
    deleted = wanted - {r.id for r in rows}
    return CalendarSet(rows, await compiled.last_versions(session, deleted))


# ---------------------------------------------------------------------------- rows


def new_row(
    ticket: Ticket, target: sla.Target, target_json: dict[str, Any]
) -> tuple[SlaClock, Clock]:
    """A clock started at the ticket's receipt; :func:`store` fills the rest of the row."""
    clock = sla.start_clock(target, ticket.received_at)
    row = build(
        SlaClock,
        ticket_id=ticket.id,
        metric=target.metric.value,
        target=target_json,
        kind=target.clock.value,
        started_at=clock.started_at,
        changed_at=clock.changed_at,
    )
    return row, clock


async def fired_keys(
    session: AsyncSession, clock_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, set[str]]:
    return {clock_id: set(keys) for clock_id, keys in (await firings(session, clock_ids)).items()}


async def firings(
    session: AsyncSession, clock_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, datetime]]:
    """The thresholds fired on these clocks: key -> the instant each fired for."""
    if not clock_ids:
        return {}
    rows = await session.execute(
        select(col(SlaFiring.clock_id), col(SlaFiring.key), col(SlaFiring.instant)).where(
            col(SlaFiring.clock_id).in_(clock_ids)
        )
    )
    found: dict[uuid.UUID, dict[str, datetime]] = {}
    for clock_id, key, instant in rows:
        found.setdefault(clock_id, {})[key] = instant
    return found


def store(
    row: SlaClock,
    clock: Clock,
    cal: BusinessTime,
    fired: set[str],
    business_calendar_id: uuid.UUID | None,
) -> None:
    """Write the domain clock into its row and recompute the derived columns. The row
    names the business calendar only when that calendar counts it (calendar edits)."""
    _write(row, clock)
    row.calendar_id = business_calendar_id if clock.kind is ClockKind.BUSINESS else None
    due: datetime | None = None
    if clock.is_running and clock.minutes is not None:
        due = sla.read(clock, clock.changed_at, cal).due_at
    row.due_at = due
    pending = sla.next_threshold(clock, fired, cal)
    row.next_check_at = pending.at if pending is not None else None


# The shared timing lock as an expression, for a writer to take it in a statement that
# reads something else too (only what the lock does not guard: that statement's snapshot
# predates the lock).
SHARE_TIMING = func.pg_advisory_xact_lock_shared(_TIMING_LOCK)


async def share_timing(session: AsyncSession) -> None:
    """Writers of clocks: wait for any calendar or plan edit in progress (see the docstring)."""
    await session.execute(select(SHARE_TIMING))


async def hold_timing(session: AsyncSession) -> None:
    """Calendar and plan edits: no clock is being written under the old terms meanwhile."""
    await session.execute(select(func.pg_advisory_xact_lock(_TIMING_LOCK)))


async def notify_timers(session: AsyncSession) -> None:
    """Wake the timer loop (delivered at commit): a clock's next instant changed."""
    await session.execute(text(f"NOTIFY {TIMER_CHANNEL}"))


def timer_hint(rows: Iterable[SlaClock]) -> tuple[str, str] | None:
    """The NOTIFY for new clocks (None: none of them is ever checked), with the earliest
    instant they need the timer at as its payload. A timer already sleeping until that
    instant or an earlier one needs no round for them (workers/escalation.py): under a
    burst of intake it would otherwise run a whole round per ticket, and find nothing
    due. Other notifications carry no payload and always wake it."""
    checks = [r.next_check_at for r in rows if r.next_check_at is not None]
    return (TIMER_CHANNEL, min(checks).isoformat()) if checks else None


def hinted_instant(payload: str) -> datetime | None:
    """The instant of a :func:`timer_hint` payload; None for any other payload."""
    try:
        instant = datetime.fromisoformat(payload) if payload else None
    except ValueError:
        return None
    return instant if instant is not None and instant.tzinfo is not None else None


def next_due(rows: Iterable[SlaClock]) -> datetime | None:
    dues = [r.due_at for r in rows if r.due_at is not None]
    return min(dues) if dues else None


def rechoose(
    ticket: Ticket,
    terms: TicketTerms,
    rows: dict[Metric, SlaClock],
    clocks: dict[Metric, Clock],
    at: datetime,
    counted_by: Callable[[Clock], BusinessTime],
    *,
    pausing: bool,
    may_start: frozenset[Metric],
) -> list[SlaClock]:
    """Choose the ticket's targets again under `terms` at `at` (a severity or category
    change, or a plan edit); `clocks`/`rows` are updated in place.

    * A clock whose metric still has a target is retargeted: the business time already
      counted is kept, the new duration applies from `at`.
    * A clock whose metric no longer has a target becomes best effort: nothing is owed
      any more, its history (elapsed time, a breach already recorded) stays.
    * A metric in `may_start` that gains a target gets a new clock from `at` (paused if
      the ticket waits in a pausing status): the promise starts when the ticket qualifies.
    * Stopped clocks are history and never change.

    Returns the new rows, for the caller to add to the session."""
    severity, category = Severity(ticket.severity), Category(ticket.category)
    channel = Channel(ticket.channel)
    created: list[SlaClock] = []
    for metric in Metric:
        chosen = terms.target_for(metric, severity, category, channel)
        clock = clocks.get(metric)
        if clock is not None:
            if clock.is_stopped:
                continue
            if chosen is None:
                target, target_json = sla.Target(metric=metric, minutes=None), WITHDRAWN
            else:
                target, target_json = chosen
            clocks[metric] = sla.retarget(clock, target, at, counted_by(clock))
            rows[metric].target = target_json
        elif chosen is not None and metric in may_start:
            target, target_json = chosen
            clock = sla.start_clock(target, at)
            if pausing:
                clock = sla.pause(clock, at, sla.ALWAYS_OPEN)  # nothing has elapsed yet
            row = SlaClock(
                ticket_id=ticket.id,
                metric=metric.value,
                target=target_json,
                kind=target.clock.value,
                started_at=at,
                changed_at=at,
            )
            rows[metric], clocks[metric] = row, clock
            created.append(row)
    return created


# The target JSON of a clock whose commitment was withdrawn (it reads best effort).
WITHDRAWN: dict[str, Any] = {"plan": None, "index": None, "target": None, "withdrawn": True}
