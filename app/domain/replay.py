"""Replaying a ticket's real timeline through the clock rules of a plan (the what-if).

Pure: no I/O, no clock (`now` is a parameter). Given what a ticket was at intake
(:class:`TicketFacts`), its timeline in order (:class:`TimelineEvent`: the kind the
services record, when it happened, and the few arguments that change clocks), and the
terms of a plan (:class:`ReplayTerms`: target selection through an entitlement
`Coverage`, its pause rules, and the calendar counting business time), :func:`replay`
rebuilds the SLA clocks the plan would have given the ticket and reads each one at `now`.

The transitions are the live system's, not a re-implementation: intake starts one clock
per metric with `Coverage.select` (services.intake); each action goes through
`lifecycle.apply_action` and `lifecycle.apply_clock_ops` (services.ticket_actions); a
severity/category `change` re-chooses the targets exactly as `services.clocks.rechoose`
does (retarget keeping elapsed time, withdrawn target -> best effort, a metric gaining a
target starts from the change unless the ticket was answered already), before the
action's clock operations.

Decisions
---------
* Statuses do not depend on the plan, so the replayed status follows the real one;
  only the clocks differ (targets, calendar, `pause_on`).
* Every action kind goes through the lifecycle (a `noted` changes nothing). Ignored
  kinds: `created` (intake is the start), the timer's own events (`sla_warning`,
  `sla_breached`, and `escalated` by the system: a tier change, never a status change),
  `edited`, `auto_close_*`, `sla_recomputed` and any kind this module does not know.
  The auto-close itself is a `closed` event and is replayed like any close.
* A plan or calendar edit in the ticket's life (`sla_recomputed`) is not re-enacted:
  the replay applies the given terms to the whole life. `Replay.retimed` says so.
* Events are replayed in the order they happened (`at`; among equal instants, the
  order given, which is the order they were recorded): an action logged late, dated
  before system events already recorded, takes its place in the history.
* A system event later withdrawn (`TimelineEvent.withdrawn`: an auto-close that a
  customer reply logged late showed should not have happened) is skipped.
* An event the lifecycle refuses (a timeline this module cannot follow) is skipped and
  counted in `Replay.skipped`, never raised: a report must not fail for one ticket.
* Outcome at `now`, as `sla.read` says: `breached` if the clock breached (recorded, or
  running past its due instant), `met` if stopped without breach, `pending` while
  running or paused, `best_effort` without a timed target (not counted in compliance).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from app.domain import lifecycle, sla
from app.domain.entitlement import Coverage
from app.domain.lifecycle import Action, CloseReason, LifecycleError, LifecyclePolicy, TicketState
from app.domain.sla import BusinessTime, Clock, ClockState
from app.domain.vocab import Category, Channel, Metric, Severity, TicketStatus

__all__ = [
    "ACTION_OF_KIND",
    "RESPONSE_KINDS",
    "MetricOutcome",
    "Outcome",
    "Replay",
    "ReplayTerms",
    "TicketFacts",
    "TimelineEvent",
    "replay",
]

# The timeline kind each action records (services.ticket_actions._KIND), inverted.
ACTION_OF_KIND: Mapping[str, Action] = {
    "acknowledged": Action.ASSIGN,
    "replied": Action.REPLY,
    "noted": Action.NOTE,
    "info_requested": Action.REQUEST_INFO,
    "contact_attempted": Action.CONTACT_ATTEMPT,
    "customer_replied": Action.CUSTOMER_REPLY,
    "escalated": Action.ESCALATE,
    "changed": Action.CHANGE,
    "called_back": Action.CALLBACK,
    "resolved": Action.RESOLVE,
    "confirmed": Action.CONFIRM,
    "reopened": Action.REOPEN,
    "closed": Action.CLOSE,
}
# Public answers to the customer (services.tickets._RESPONSES): after one, a first
# response target that starts applying later does not start a clock.
RESPONSE_KINDS = frozenset({"replied", "info_requested", "called_back"})
RETIMING_KINDS = frozenset({"sla_recomputed"})


class Outcome(StrEnum):
    MET = "met"
    BREACHED = "breached"
    PENDING = "pending"
    BEST_EFFORT = "best_effort"


@dataclass(frozen=True, kw_only=True)
class TicketFacts:
    """The ticket as it was received (severity/category before any change)."""

    received_at: datetime
    channel: Channel
    severity: Severity
    category: Category
    entitled: bool = True


@dataclass(frozen=True, kw_only=True)
class TimelineEvent:
    """One timeline line. `system`: recorded by the service itself (the timer).
    `withdrawn`: a system event the service withdrew later (skipped). `to_tier` for
    `escalated`, `close_reason` for `closed`, `severity`/`category` (the values after
    the change) for `changed`."""

    kind: str
    at: datetime
    system: bool = False
    withdrawn: bool = False
    to_tier: int | None = None
    close_reason: str | None = None
    severity: Severity | None = None
    category: Category | None = None


@dataclass(frozen=True, kw_only=True)
class ReplayTerms:
    """A plan as the replay needs it: target selection (its chain) and pause rules from
    the coverage, and the business calendar (24x7 targets are always open)."""

    coverage: Coverage
    business: BusinessTime

    @property
    def policy(self) -> LifecyclePolicy:
        return LifecyclePolicy(pause_on=self.coverage.pause_on)

    def calendar_of(self, clock: Clock) -> BusinessTime:
        return sla.calendar_for(clock.kind, self.business)


@dataclass(frozen=True, kw_only=True)
class MetricOutcome:
    metric: Metric
    outcome: Outcome
    minutes: int | None
    elapsed: timedelta
    stopped_at: datetime | None
    due_at: datetime | None
    breached_at: datetime | None

    @property
    def counted(self) -> bool:
        """Whether the clock counts toward compliance (it has a finite target)."""
        return self.outcome is not Outcome.BEST_EFFORT


@dataclass(frozen=True, kw_only=True)
class Replay:
    outcomes: Mapping[Metric, MetricOutcome]
    clocks: Mapping[Metric, Clock]
    skipped: int = 0  # events the lifecycle refused (see the module docstring)
    retimed: bool = False  # the real ticket saw a plan/calendar edit


_OUTCOME = {
    ClockState.MET: Outcome.MET,
    ClockState.BREACHED: Outcome.BREACHED,
    ClockState.RUNNING: Outcome.PENDING,
    ClockState.PAUSED: Outcome.PENDING,
    ClockState.BEST_EFFORT: Outcome.BEST_EFFORT,
}


def outcome_of(clock: Clock, now: datetime, cal: BusinessTime) -> MetricOutcome:
    """A clock's outcome at `now` (`sla.read`)."""
    reading = sla.read(clock, now, cal)
    return MetricOutcome(
        metric=clock.metric,
        outcome=_OUTCOME[reading.state],
        minutes=clock.minutes,
        elapsed=reading.elapsed,
        stopped_at=reading.stopped_at,
        due_at=reading.due_at or reading.breached_at,
        breached_at=reading.breached_at,
    )


def _rechoose(
    clocks: dict[Metric, Clock],
    terms: ReplayTerms,
    severity: Severity,
    category: Category,
    channel: Channel,
    at: datetime,
    *,
    pausing: bool,
    may_start: frozenset[Metric],
) -> None:
    """services.clocks.rechoose, on domain clocks only (updated in place)."""
    for metric in Metric:
        chosen = terms.coverage.select(metric, severity, category, channel)
        clock = clocks.get(metric)
        if clock is not None:
            if clock.is_stopped:
                continue
            target = (
                chosen.target if chosen is not None else sla.Target(metric=metric, minutes=None)
            )
            clocks[metric] = sla.retarget(clock, target, at, terms.calendar_of(clock))
        elif chosen is not None and metric in may_start:
            started = sla.start_clock(chosen.target, at)
            if pausing:
                started = sla.pause(started, at, sla.ALWAYS_OPEN)  # nothing has elapsed yet
            clocks[metric] = started


def _close_reason(value: str | None) -> CloseReason | None:
    try:
        return CloseReason(value) if value is not None else None
    except ValueError:
        return None


def replay(
    facts: TicketFacts,
    events: Iterable[TimelineEvent],
    terms: ReplayTerms,
    now: datetime,
) -> Replay:
    """The clocks `terms` would have given this ticket over its real timeline, and
    each metric's outcome at `now`. An unentitled ticket gets no clocks (as at intake)."""
    policy = terms.policy
    state = TicketState(TicketStatus.NEW)
    severity, category, channel = facts.severity, facts.category, facts.channel
    clocks: dict[Metric, Clock] = {}
    if facts.entitled:
        for metric in Metric:
            chosen = terms.coverage.select(metric, severity, category, channel)
            if chosen is not None:
                clocks[metric] = sla.start_clock(chosen.target, facts.received_at)
    answered = False
    skipped = 0
    retimed = False
    for event in sorted(events, key=lambda e: e.at):  # stable: equal instants keep order
        if event.withdrawn:
            continue
        if event.kind in RETIMING_KINDS:
            retimed = True
            continue
        action = ACTION_OF_KIND.get(event.kind)
        if action is None or (action is Action.ESCALATE and event.system):
            continue
        try:
            outcome = lifecycle.apply_action(
                state,
                action,
                to_tier=event.to_tier if action is Action.ESCALATE else None,
                reason=_close_reason(event.close_reason) if action is Action.CLOSE else None,
                policy=policy,
            )
            working = dict(clocks)
            if action is Action.CHANGE:
                severity = event.severity or severity
                category = event.category or category
                if facts.entitled:
                    may_start = (
                        frozenset(Metric) - ({Metric.FIRST_RESPONSE} if answered else set())
                        if state.status in lifecycle.OPEN_STATUSES
                        else frozenset()
                    )
                    _rechoose(
                        working,
                        terms,
                        severity,
                        category,
                        channel,
                        event.at,
                        pausing=state.status in policy.pause_on,
                        may_start=may_start,
                    )
            working = lifecycle.apply_clock_ops(
                working, outcome.clock_ops, event.at, terms.calendar_of
            )
        except (LifecycleError, sla.SlaError):
            skipped += 1
            continue
        clocks = working
        state = TicketState(outcome.status, outcome.close_reason, outcome.contact_attempts)
        if event.kind in RESPONSE_KINDS:
            answered = True
    outcomes = {m: outcome_of(c, now, terms.calendar_of(c)) for m, c in clocks.items()}
    return Replay(outcomes=outcomes, clocks=clocks, skipped=skipped, retimed=retimed)
