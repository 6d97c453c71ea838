"""SLA targets and clocks: what a plan promises, and how far each ticket is from it.

A **target** is one line of a plan ("first response to critical tickets within 60
minutes, around the clock, warn at 50/75/90 %, escalate to tier 2 on breach").
A **clock** is a ticket x target. It is plain data; every operation is a pure
function that takes the instant (`at`/`now`) and the calendar that counts the
clock (`BusinessTime`: the plan's business calendar, or an always-open one for
`24x7` targets). Nothing here reads the system clock.

Time model
----------
* `Clock.elapsed` is the business time counted up to the last transition; while
  running, the current segment `[running_since, now)` is counted on read.
* Every transition that closes a running segment (pause, stop, retarget,
  checkpoint) folds it into `elapsed` with the calendar passed in, so a later
  calendar or plan edit only changes the *remaining* time.
* The due instant is derived, never stored: `cal.add(running_since, minutes -
  elapsed)`. If nothing remains it is `running_since` (the clock is due "now"),
  or the recorded breach instant if there is one.
* All instants are timezone-aware; they are normalised to UTC. A naive datetime
  raises `NaiveDatetimeError` (a `ValueError`).

Thresholds and the crossing contract
------------------------------------
`thresholds_of(target)` lists the warnings and the breach of a target, each with
a `mark`: the elapsed business time at which it is reached. A clock carries a
snapshot of its target's thresholds (`Clock.thresholds`) and the tuple of
crossings recorded so far (`Clock.crossings`: threshold + exact instant).

* A warning is reached at the first instant at which elapsed >= mark
  (inclusive: a clock paused exactly at 30 min has reached its 50 % of 60 min).
* The breach is reached *strictly after* the due instant: a clock stopped or
  read exactly at its due instant is still on time. Its recorded instant is the
  due instant itself ("a breach is recorded at the due instant even if nobody
  looked"), and `Clock.breached_at` always equals it.
* Every transition that closes a running segment records every threshold the
  segment reached, with the instant computed from that segment, *before* the
  segment is folded away. A crossing is therefore never lost and its instant
  never changes afterwards, whether or not a timer was running at the time.
  Services persist `Clock.crossings` together with the clock.
* `crossings(clock, until, cal)` = the recorded crossings plus those reached by
  the running segment up to `until` (not recorded yet), oldest first. The
  escalation timer fires those whose key it has not fired yet;
  `next_threshold(clock, fired_keys, cal)` gives the earliest unfired one (a
  past instant when it is overdue), which is the clock's `next_check_at`.
* Each threshold key is crossed at most once per clock, across retargets: after
  a severity change, a key already crossed (for instance `warn:50` under the old
  target) is not crossed again. A recorded breach is history and survives a
  retarget to a longer target (its events and escalations happened).
* A retarget whose new marks are already behind the elapsed time records those
  crossings at the retarget instant (the new target did not apply earlier);
  the breach is recorded there only if elapsed is strictly beyond the new
  duration (exactly equal still means "due now").
* A firing is not a bound on back-dating: an action logged late may be dated
  before a threshold that already fired (a call answered at 10:05 and logged at
  10:20). The clock then takes the action at its instant, and
  `unheld_firings(clock, fired, until, cal)` names the fired thresholds the
  corrected history no longer supports (not crossed by `until`, or crossed at
  another instant), for the service to withdraw.

Transition rules (decisions)
----------------------------
* `at` before the clock's last transition (`Clock.changed_at`) is an error
  (`ClockTransitionError`), for every operation, no-ops included.
* Idempotent no-ops: pausing a paused clock, resuming or continuing a running
  one, stopping a stopped one, checkpointing a paused or stopped one, and
  retargeting a stopped one (stopped clocks are history and never change).
* Errors: pausing or resuming a stopped clock, continuing a paused clock,
  retargeting to a target of another metric.
* Best-effort targets (`minutes is None`) have no thresholds, no due instant and
  are never breached, but their clocks still count elapsed time so that a
  retarget to a timed target keeps it.
* A stopped timed clock keeps the due instant in force when it stopped
  (`Clock.final_due_at`, fixed by `stop` with the calendar of that moment, so a
  later calendar edit never rewrites history): the breach instant if it
  breached, else the instant the remaining time would have run out from the
  stop (for a clock running at the stop, that is exactly its due instant; for
  one stopped while paused, the instant it would have been due had it run on).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import combinations, pairwise, product
from typing import NamedTuple, Protocol

from app.domain.vocab import Category, Channel, ClockKind, Metric, Severity

__all__ = [
    "ALWAYS_OPEN",
    "AlwaysOpen",
    "AmbiguousTargets",
    "BusinessTime",
    "Clock",
    "ClockError",
    "ClockReading",
    "ClockState",
    "ClockTransitionError",
    "Crossing",
    "InvalidTarget",
    "NaiveDatetimeError",
    "SlaError",
    "Target",
    "Threshold",
    "ThresholdKind",
    "calendar_for",
    "check_targets",
    "checkpoint",
    "continue_stopped",
    "crossings",
    "find_ambiguous_targets",
    "next_threshold",
    "pause",
    "read",
    "resume",
    "retarget",
    "select_target",
    "start_clock",
    "stop",
    "targets_from_config",
    "thresholds_of",
    "unheld_firings",
]

MIN_TIER = 1
MAX_TIER = 4
_ZERO = timedelta(0)


# --------------------------------------------------------------------------- errors


class SlaError(ValueError):
    """Base of the errors raised by this module."""


class NaiveDatetimeError(SlaError):
    """An instant without a UTC offset: we never guess a timezone."""


class InvalidTarget(SlaError):
    """A target definition the API must refuse (422)."""


class AmbiguousTargets(InvalidTarget):
    """Two targets of a plan can both be the best match for the same ticket."""

    def __init__(self, pairs: Sequence[tuple[int, int]]) -> None:
        self.pairs = tuple(pairs)
        listed = ", ".join(f"{i} and {j}" for i, j in self.pairs)
        super().__init__(
            f"ambiguous targets (same metric, same specificity, can match the same "
            f"ticket): {listed}; add a more specific target or narrow their conditions"
        )


class ClockError(SlaError):
    """A clock whose fields contradict each other."""


class ClockTransitionError(SlaError):
    """A transition that is not allowed in the clock's current state."""

    def __init__(self, operation: str, reason: str) -> None:
        self.operation = operation
        self.reason = reason
        super().__init__(f"cannot {operation} clock: {reason}")


def _utc(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


# ------------------------------------------------------------------------- calendar


class BusinessTime(Protocol):
    """What a clock needs from a calendar (app.domain.calendar.Calendar provides it).

    `add(start, d)` is the earliest instant at which `d` of open time has elapsed
    since `start`; `between(a, b)` is the open time in `[a, b)`.
    """

    def add(self, start: datetime, duration: timedelta) -> datetime: ...

    def between(self, a: datetime, b: datetime) -> timedelta: ...


class AlwaysOpen:
    """The `24x7` calendar: every instant counts."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        return start + duration

    def between(self, a: datetime, b: datetime) -> timedelta:
        return max(b - a, _ZERO)

    def is_open(self, t: datetime) -> bool:
        return True


ALWAYS_OPEN = AlwaysOpen()


def calendar_for(kind: ClockKind, business: BusinessTime) -> BusinessTime:
    """The calendar that counts a target of this kind."""
    return ALWAYS_OPEN if kind is ClockKind.ALWAYS else business


# -------------------------------------------------------------------------- targets


@dataclass(frozen=True, kw_only=True)
class Target:
    """One line of a plan. Empty condition sets mean "any"."""

    metric: Metric
    minutes: int | None
    clock: ClockKind = ClockKind.BUSINESS
    severities: frozenset[Severity] = frozenset()
    categories: frozenset[Category] = frozenset()
    channels: frozenset[Channel] = frozenset()
    warn_at_percent: tuple[int, ...] = ()
    warn_before_minutes: tuple[int, ...] = ()
    escalate_to_tier: int | None = None
    index: int = 0

    def __post_init__(self) -> None:
        # Coerce so that values straight from JSON (strings, lists) become the
        # typed, hashable form; validation below then sees one representation.
        try:
            object.__setattr__(self, "metric", Metric(self.metric))
            object.__setattr__(self, "clock", ClockKind(self.clock))
            object.__setattr__(self, "severities", frozenset(map(Severity, self.severities)))
            object.__setattr__(self, "categories", frozenset(map(Category, self.categories)))
            object.__setattr__(self, "channels", frozenset(map(Channel, self.channels)))
        except ValueError as exc:
            raise InvalidTarget(str(exc)) from exc
        object.__setattr__(self, "warn_at_percent", tuple(self.warn_at_percent))
        object.__setattr__(self, "warn_before_minutes", tuple(self.warn_before_minutes))
        self._validate()

    def _validate(self) -> None:
        where = f"target {self.index}"
        if not _is_int(self.index) or self.index < 0:
            raise InvalidTarget(f"{where}: index must be a non-negative integer")
        if self.minutes is not None and (not _is_int(self.minutes) or self.minutes < 1):
            # "Immediate" in a policy must be written as a short duration: a zero
            # target would be breached by the very first second of business time.
            raise InvalidTarget(f"{where}: minutes must be a positive integer or null")
        for p in self.warn_at_percent:
            if not _is_int(p) or not 1 <= p <= 99:
                raise InvalidTarget(f"{where}: warn_at_percent values must be within 1..99")
        if not _strictly_increasing(self.warn_at_percent):
            raise InvalidTarget(f"{where}: warn_at_percent must be sorted and unique")
        for b in self.warn_before_minutes:
            if not _is_int(b) or b < 1:
                raise InvalidTarget(f"{where}: warn_before_minutes values must be positive")
        if not _strictly_increasing(self.warn_before_minutes):
            raise InvalidTarget(f"{where}: warn_before_minutes must be sorted and unique")
        if self.escalate_to_tier is not None and (
            not _is_int(self.escalate_to_tier) or not MIN_TIER <= self.escalate_to_tier <= MAX_TIER
        ):
            raise InvalidTarget(f"{where}: escalate_to_tier must be within {MIN_TIER}..{MAX_TIER}")
        if self.minutes is None and (
            self.warn_at_percent or self.warn_before_minutes or self.escalate_to_tier is not None
        ):
            # A best-effort target has no due time, so these could never fire:
            # refusing them tells the plan author instead of silently ignoring.
            raise InvalidTarget(f"{where}: a best-effort target cannot have warnings or escalation")

    @property
    def specificity(self) -> int:
        """How many condition lists are non-empty."""
        return sum(1 for s in (self.severities, self.categories, self.channels) if s)

    @property
    def best_effort(self) -> bool:
        return self.minutes is None

    def matches(
        self, severity: Severity, category: Category | None, channel: Channel | None
    ) -> bool:
        """Whether this target applies to a ticket (an unknown category or channel
        only matches targets that do not condition on it)."""
        return (
            (not self.severities or severity in self.severities)
            and (not self.categories or (category is not None and category in self.categories))
            and (not self.channels or (channel is not None and channel in self.channels))
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, object], index: int) -> Target:
        """Parse the plan's JSON shape, e.g. ``{"metric": "first_response",
        "severities": ["critical"], "minutes": 60, "clock": "24x7",
        "warn_at_percent": [50, 75, 90], "warn_before_minutes": [15],
        "on_breach": {"escalate_to_tier": 2}}``. Percent and T-minus lists are
        sorted; duplicates are refused."""
        known = {
            "metric",
            "severities",
            "categories",
            "channels",
            "minutes",
            "clock",
            "warn_at_percent",
            "warn_before_minutes",
            "on_breach",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidTarget(f"target {index}: unknown fields {unknown}")
        on_breach = data.get("on_breach") or {}
        if not isinstance(on_breach, Mapping) or set(on_breach) - {"escalate_to_tier"}:
            raise InvalidTarget(f"target {index}: on_breach supports only escalate_to_tier")
        tier = on_breach.get("escalate_to_tier")
        minutes = data.get("minutes")
        metric = data.get("metric")
        clock = data.get("clock", ClockKind.BUSINESS.value)
        if tier is not None and not isinstance(tier, int):
            raise InvalidTarget(f"target {index}: escalate_to_tier must be an integer")
        if minutes is not None and not isinstance(minutes, int):
            raise InvalidTarget(f"target {index}: minutes must be an integer or null")
        if not isinstance(metric, str) or not isinstance(clock, str):
            raise InvalidTarget(f"target {index}: metric and clock must be strings")
        try:
            return cls(
                metric=Metric(metric),
                minutes=minutes,
                clock=ClockKind(clock),
                severities=frozenset(Severity(s) for s in _str_list(data, "severities", index)),
                categories=frozenset(Category(s) for s in _str_list(data, "categories", index)),
                channels=frozenset(Channel(s) for s in _str_list(data, "channels", index)),
                warn_at_percent=tuple(sorted(_int_list(data, "warn_at_percent", index))),
                warn_before_minutes=tuple(sorted(_int_list(data, "warn_before_minutes", index))),
                escalate_to_tier=tier,
                index=index,
            )
        except InvalidTarget:
            raise
        except ValueError as exc:
            raise InvalidTarget(f"target {index}: {exc}") from exc


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strictly_increasing(values: Sequence[int]) -> bool:
    return all(a < b for a, b in pairwise(values))


def _str_list(data: Mapping[str, object], key: str, index: int) -> list[str]:
    value = data.get(key) or []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidTarget(f"target {index}: {key} must be a list of strings")
    return [str(v) for v in value]


def _int_list(data: Mapping[str, object], key: str, index: int) -> list[int]:
    value = data.get(key) or []
    if not isinstance(value, list | tuple) or not all(_is_int(v) for v in value):
        raise InvalidTarget(f"target {index}: {key} must be a list of integers")
    return [int(v) for v in value]


def targets_from_config(items: Sequence[Mapping[str, object]]) -> tuple[Target, ...]:
    """Parse a plan's target list; each target's index is its position."""
    return tuple(Target.from_dict(item, i) for i, item in enumerate(items))


def select_target(
    targets: Iterable[Target],
    metric: Metric,
    severity: Severity,
    category: Category | None,
    channel: Channel | None,
) -> Target | None:
    """The target that counts this metric for a ticket: among the matching ones,
    the most specific wins, then the earliest in the plan. None: no commitment."""
    best: tuple[int, int, int] | None = None
    chosen: Target | None = None
    for position, target in enumerate(targets):
        if target.metric != metric or not target.matches(severity, category, channel):
            continue
        rank = (-target.specificity, target.index, position)
        if best is None or rank < best:
            best, chosen = rank, target
    return chosen


def find_ambiguous_targets(targets: Sequence[Target]) -> list[tuple[int, int]]:
    """Pairs (by index, smaller first) of same-metric targets with equal
    specificity that can both be the winner for one ticket, so that only their
    order in the list would decide.

    Decision: overlap alone is not enough. A pair whose whole overlap is covered
    by a strictly more specific target is not ambiguous, because that target
    wins wherever both match (seed 004 style plans stay valid when the author
    adds "critical + technical" targets to settle "critical" vs "technical").
    The ticket space is finite (severity x category-or-none x channel-or-none,
    under 400 combinations), so this is checked exhaustively rather than by
    reasoning about set algebra.
    """
    pairs: set[tuple[int, int]] = set()
    categories: list[Category | None] = [None, *Category]
    channels: list[Channel | None] = [None, *Channel]
    by_metric: dict[Metric, list[Target]] = {}
    for target in targets:
        by_metric.setdefault(target.metric, []).append(target)
    for group in by_metric.values():
        for severity, category, channel in product(Severity, categories, channels):
            matching = [t for t in group if t.matches(severity, category, channel)]
            if len(matching) < 2:
                continue
            top = max(t.specificity for t in matching)
            winners = sorted(t.index for t in matching if t.specificity == top)
            pairs.update(combinations(winners, 2))
    return sorted(pairs)


def check_targets(targets: Sequence[Target]) -> None:
    """Raise `AmbiguousTargets` naming the pairs, or return if the plan is clear."""
    pairs = find_ambiguous_targets(targets)
    if pairs:
        raise AmbiguousTargets(pairs)


# ----------------------------------------------------------------------- thresholds


class ThresholdKind(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """A point on a clock's elapsed-time axis where something fires.

    `key` is stable (``warn:50``, ``before:15``, ``breach``) and is what the
    escalation timer uses to fire each threshold once.
    """

    key: str
    kind: ThresholdKind
    mark: timedelta
    percent: int | None = None
    before_minutes: int | None = None


def thresholds_of(target: Target) -> list[Threshold]:
    """Warnings and breach of a target, in mark order (the breach last).

    * Percent marks are rounded *up* to the second, so a warning never fires
      before its percentage has really elapsed.
    * Decision: T-minus warnings that are not shorter than the duration are
      dropped (a plan-wide "15 minutes before" makes no sense on a 10-minute
      target, and clamping would fire it at the very start).
    * Best-effort targets have none.
    """
    if target.minutes is None:
        return []
    total_seconds = target.minutes * 60
    result = [
        Threshold(
            key=f"warn:{p}",
            kind=ThresholdKind.WARNING,
            mark=timedelta(seconds=-(-total_seconds * p // 100)),
            percent=p,
        )
        for p in target.warn_at_percent
    ]
    result.extend(
        Threshold(
            key=f"before:{b}",
            kind=ThresholdKind.WARNING,
            mark=timedelta(minutes=target.minutes - b),
            before_minutes=b,
        )
        for b in target.warn_before_minutes
        if b < target.minutes
    )
    result.sort(key=lambda t: (t.mark, t.key))
    result.append(
        Threshold(
            key="breach",
            kind=ThresholdKind.BREACH,
            mark=timedelta(minutes=target.minutes),
            percent=100,
        )
    )
    return result


class Crossing(NamedTuple):
    """A threshold and the exact instant the clock reached it."""

    threshold: Threshold
    at: datetime


# --------------------------------------------------------------------------- clocks


@dataclass(frozen=True, kw_only=True)
class Clock:
    """A ticket x target. See the module docstring for the model and contract.

    `changed_at` is the instant of the last transition (start included); no
    transition may be dated before it. `kind` says which calendar counts it.
    """

    metric: Metric
    minutes: int | None
    kind: ClockKind
    thresholds: tuple[Threshold, ...]
    started_at: datetime
    changed_at: datetime
    running_since: datetime | None
    elapsed: timedelta = _ZERO
    stopped_at: datetime | None = None
    breached_at: datetime | None = None
    crossings: tuple[Crossing, ...] = ()
    # The due instant in force when it stopped (None while not stopped, for best effort,
    # and on clocks stored before it was kept: `read` then derives it).
    final_due_at: datetime | None = None

    def __post_init__(self) -> None:
        for name in (
            "started_at",
            "changed_at",
            "running_since",
            "stopped_at",
            "breached_at",
            "final_due_at",
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _utc(name, value))
        object.__setattr__(self, "thresholds", tuple(self.thresholds))
        object.__setattr__(
            self,
            "crossings",
            tuple(Crossing(t, _utc("crossing instant", at)) for t, at in self.crossings),
        )
        self._validate()

    def _validate(self) -> None:
        if self.running_since is not None and self.stopped_at is not None:
            raise ClockError("a clock cannot be running and stopped")
        if self.elapsed < _ZERO:
            raise ClockError("elapsed must not be negative")
        if self.minutes is not None and (not _is_int(self.minutes) or self.minutes < 1):
            raise ClockError("minutes must be a positive integer or None")
        if self.minutes is None and self.thresholds:
            raise ClockError("a best-effort clock has no thresholds")
        if self.changed_at < self.started_at:
            raise ClockError("changed_at precedes started_at")
        if self.final_due_at is not None and self.stopped_at is None:
            raise ClockError("only a stopped clock has a final due instant")
        for name in ("running_since", "stopped_at"):
            value: datetime | None = getattr(self, name)
            if value is not None and not self.started_at <= value <= self.changed_at:
                raise ClockError(f"{name} must lie between started_at and changed_at")
        keys = [t.key for t in self.thresholds]
        if len(set(keys)) != len(keys):
            raise ClockError("threshold keys must be unique")
        crossed = [c.threshold.key for c in self.crossings]
        if len(set(crossed)) != len(crossed):
            raise ClockError("a threshold key can be crossed only once")
        breach = [c.at for c in self.crossings if c.threshold.kind is ThresholdKind.BREACH]
        if (breach[0] if breach else None) != self.breached_at:
            raise ClockError("breached_at must equal the instant of the recorded breach crossing")

    @property
    def is_running(self) -> bool:
        return self.running_since is not None

    @property
    def is_stopped(self) -> bool:
        return self.stopped_at is not None

    @property
    def is_paused(self) -> bool:
        return self.running_since is None and self.stopped_at is None

    @property
    def crossed_keys(self) -> frozenset[str]:
        return frozenset(c.threshold.key for c in self.crossings)


def start_clock(target: Target, at: datetime) -> Clock:
    """A running clock for `target`, started at the ticket's `received_at`."""
    at = _utc("at", at)
    return Clock(
        metric=target.metric,
        minutes=target.minutes,
        kind=target.clock,
        thresholds=tuple(thresholds_of(target)),
        started_at=at,
        changed_at=at,
        running_since=at,
    )


def _check_order(clock: Clock, at: datetime, operation: str) -> datetime:
    at = _utc("at", at)
    if at < clock.changed_at:
        raise ClockTransitionError(
            operation,
            f"{at.isoformat()} precedes the clock's last transition {clock.changed_at.isoformat()}",
        )
    return at


def _reach_instant(clock: Clock, threshold: Threshold, cal: BusinessTime) -> datetime:
    """When the running segment reaches `threshold` (its due instant for the breach).

    A mark already behind `elapsed` is reached at the segment start: that only
    happens when the clock is due "now" (remaining exactly zero)."""
    assert clock.running_since is not None
    need = threshold.mark - clock.elapsed
    if need > _ZERO:
        return cal.add(clock.running_since, need)
    return clock.running_since


def _reached(threshold: Threshold, instant: datetime, until: datetime) -> bool:
    # Warnings are inclusive; the breach needs time to pass after the due instant,
    # so that stopping exactly at the due instant is "met".
    if threshold.kind is ThresholdKind.BREACH:
        return instant < until
    return instant <= until


def _segment_crossings(clock: Clock, until: datetime, cal: BusinessTime) -> list[Crossing]:
    """Unrecorded thresholds the running segment reaches by `until`, in order."""
    if clock.running_since is None or until < clock.running_since:
        return []
    done = clock.crossed_keys
    found: list[Crossing] = []
    for threshold in clock.thresholds:  # mark order, so instants are non-decreasing
        if threshold.key in done:
            continue
        instant = _reach_instant(clock, threshold, cal)
        if not _reached(threshold, instant, until):
            break
        found.append(Crossing(threshold, instant))
    return found


def _close_segment(clock: Clock, at: datetime, cal: BusinessTime) -> Clock:
    """Record what the running segment crossed, fold it into elapsed, and start
    a new segment at `at` (callers pause or stop it when needed)."""
    assert clock.running_since is not None
    new = _segment_crossings(clock, at, cal)
    counted = cal.between(clock.running_since, at)
    if counted < _ZERO:
        # A calendar bug, not a caller's mistake: refuse rather than run time backwards.
        raise ClockError("the calendar returned a negative duration")
    breached_at = clock.breached_at
    for crossing in new:
        if crossing.threshold.kind is ThresholdKind.BREACH:
            breached_at = crossing.at
    return replace(
        clock,
        elapsed=clock.elapsed + counted,
        running_since=at,
        changed_at=at,
        crossings=clock.crossings + tuple(new),
        breached_at=breached_at,
    )


def pause(clock: Clock, at: datetime, cal: BusinessTime) -> Clock:
    """Stop counting (the ticket waits on the customer). Paused: no-op."""
    at = _check_order(clock, at, "pause")
    if clock.is_stopped:
        raise ClockTransitionError("pause", "it is stopped")
    if clock.is_paused:
        return clock
    return replace(_close_segment(clock, at, cal), running_since=None)


def resume(clock: Clock, at: datetime) -> Clock:
    """Count again from `at`. Running: no-op. Stopped: error (see continue_stopped)."""
    at = _check_order(clock, at, "resume")
    if clock.is_stopped:
        raise ClockTransitionError("resume", "it is stopped; use continue_stopped on reopen")
    if clock.is_running:
        return clock
    return replace(clock, running_since=at, changed_at=at)


def stop(clock: Clock, at: datetime, cal: BusinessTime) -> Clock:
    """The clock's event happened (reply, resolution, callback) or the ticket
    closed. Stopping a paused clock is allowed (resolved while waiting).
    Stopped: no-op."""
    at = _check_order(clock, at, "stop")
    if clock.is_stopped:
        return clock
    if clock.is_running:
        clock = _close_segment(clock, at, cal)
    stopped = replace(clock, running_since=None, stopped_at=at, changed_at=at)
    return replace(stopped, final_due_at=_stopped_due(stopped, cal))


def _stopped_due(clock: Clock, cal: BusinessTime) -> datetime | None:
    """The due instant in force when `clock` stopped (see the module docstring)."""
    if clock.minutes is None or clock.stopped_at is None:
        return None
    if clock.breached_at is not None:
        return clock.breached_at
    remaining = timedelta(minutes=clock.minutes) - clock.elapsed
    if remaining > _ZERO:
        return cal.add(clock.stopped_at, remaining)
    return clock.stopped_at  # stopped exactly at its due instant


def continue_stopped(clock: Clock, at: datetime) -> Clock:
    """Reopen: a stopped clock runs again from `at`, keeping its elapsed time,
    crossings and breach. Running: no-op. Paused: error."""
    at = _check_order(clock, at, "continue")
    if clock.is_running:
        return clock
    if clock.is_paused:
        raise ClockTransitionError("continue", "it is paused, not stopped; use resume")
    return replace(clock, stopped_at=None, running_since=at, changed_at=at, final_due_at=None)


def retarget(clock: Clock, new_target: Target, at: datetime, cal: BusinessTime) -> Clock:
    """Severity/category change or plan edit: keep the elapsed business time,
    apply the new duration and thresholds from `at`.

    `cal` is the calendar that counted the clock until now; later transitions
    use the one of the new target (`Clock.kind`). Stopped clocks are history:
    returned unchanged."""
    at = _check_order(clock, at, "retarget")
    if new_target.metric != clock.metric:
        raise ClockTransitionError(
            "retarget", f"target metric {new_target.metric} differs from {clock.metric}"
        )
    if clock.is_stopped:
        return clock
    if clock.is_running:
        clock = _close_segment(clock, at, cal)
    thresholds = tuple(thresholds_of(new_target))
    done = clock.crossed_keys
    late: list[Crossing] = []
    breached_at = clock.breached_at
    for threshold in thresholds:
        if threshold.key in done:
            continue
        if threshold.kind is ThresholdKind.WARNING and threshold.mark <= clock.elapsed:
            late.append(Crossing(threshold, at))
        elif threshold.kind is ThresholdKind.BREACH and threshold.mark < clock.elapsed:
            late.append(Crossing(threshold, at))
            breached_at = at
    return replace(
        clock,
        minutes=new_target.minutes,
        kind=new_target.clock,
        thresholds=thresholds,
        changed_at=at,
        crossings=clock.crossings + tuple(late),
        breached_at=breached_at,
    )


def checkpoint(clock: Clock, at: datetime, cal: BusinessTime) -> Clock:
    """Fold the running segment into elapsed (counted with `cal`, the calendar in
    force until `at`) so that a calendar or plan edit only changes what remains.
    Paused and stopped clocks have nothing to fold: returned unchanged."""
    at = _check_order(clock, at, "checkpoint")
    if not clock.is_running:
        return clock
    return _close_segment(clock, at, cal)


# -------------------------------------------------------------------------- reading


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    MET = "met"
    BREACHED = "breached"
    BEST_EFFORT = "best_effort"


@dataclass(frozen=True, kw_only=True)
class ClockReading:
    """A clock as seen at `now`.

    * `remaining` is clamped at zero and `overdue` is the business time beyond
      the target (both None for best effort). A clock can be breached with zero
      overdue: resolved on Saturday after a Friday 18:00 due time.
    * `met_by`: for a met clock, the business time it had left when it stopped
      (None otherwise).
    * `due_at` while running, and on a stopped timed clock the due instant in
      force when it stopped (`Clock.final_due_at`); None while paused (a paused
      clock has no due instant) and for best effort.
    * `breached_at` is the due instant at which it breached, also for a running
      clock whose breach was not recorded by a transition yet.
    * `state`: best-effort clocks read `best_effort` even when stopped (there
      was nothing to meet; `stopped_at` says when it stopped). A paused or
      running clock past its due instant reads `breached`; `running` tells
      which.
    """

    state: ClockState
    metric: Metric
    minutes: int | None
    running: bool
    started_at: datetime
    elapsed: timedelta
    remaining: timedelta | None
    overdue: timedelta | None
    due_at: datetime | None
    stopped_at: datetime | None
    breached_at: datetime | None
    met_by: timedelta | None = None


def _segment_due(clock: Clock, cal: BusinessTime) -> datetime:
    assert clock.running_since is not None and clock.minutes is not None
    remaining = timedelta(minutes=clock.minutes) - clock.elapsed
    if remaining > _ZERO:
        return cal.add(clock.running_since, remaining)
    if clock.breached_at is not None:
        return clock.breached_at
    return clock.running_since


def read(clock: Clock, now: datetime, cal: BusinessTime) -> ClockReading:
    """Read the clock at `now` (never changes it). A `now` before the last
    transition reads as of that transition: with time-stamped commands an event
    may be a second ahead of a reader's clock, and a read must not fail for it."""
    now = max(_utc("now", now), clock.changed_at)
    elapsed = clock.elapsed
    if clock.running_since is not None:
        elapsed += cal.between(clock.running_since, now)
    due_at: datetime | None = None
    breached_at = clock.breached_at
    remaining: timedelta | None = None
    overdue: timedelta | None = None
    if clock.minutes is not None:
        target = timedelta(minutes=clock.minutes)
        remaining = max(target - elapsed, _ZERO)
        overdue = max(elapsed - target, _ZERO)
        if clock.running_since is not None:
            due_at = _segment_due(clock, cal)
            if breached_at is None and due_at < now:
                breached_at = due_at
        elif clock.is_stopped:
            due_at = clock.final_due_at or _stopped_due(clock, cal)
    if clock.minutes is None:
        state = ClockState.BEST_EFFORT
    elif breached_at is not None:
        state = ClockState.BREACHED
    elif clock.is_stopped:
        state = ClockState.MET
    elif clock.is_running:
        state = ClockState.RUNNING
    else:
        state = ClockState.PAUSED
    return ClockReading(
        state=state,
        metric=clock.metric,
        minutes=clock.minutes,
        running=clock.is_running,
        started_at=clock.started_at,
        elapsed=elapsed,
        remaining=remaining,
        overdue=overdue,
        due_at=due_at,
        stopped_at=clock.stopped_at,
        breached_at=breached_at,
        met_by=remaining if state is ClockState.MET else None,
    )


# ------------------------------------------------------------- thresholds over time


def _order(crossing: Crossing) -> tuple[datetime, timedelta, str]:
    return (crossing.at, crossing.threshold.mark, crossing.threshold.key)


def crossings(
    clock: Clock,
    until: datetime,
    cal: BusinessTime,
    *,
    exclude: Collection[str] = frozenset(),
) -> list[Crossing]:
    """Every crossing with an instant up to `until`, oldest first: those recorded
    by earlier transitions (original instants) and those the running segment
    reached (breach: strictly before `until`). `exclude` drops keys already fired."""
    until = _utc("until", until)
    found = [c for c in clock.crossings if c.at <= until]
    found.extend(_segment_crossings(clock, until, cal))
    return sorted((c for c in found if c.threshold.key not in exclude), key=_order)


def next_threshold(clock: Clock, fired_keys: Collection[str], cal: BusinessTime) -> Crossing | None:
    """The earliest threshold not fired yet and the instant it is (or was)
    reached: the clock's `next_check_at`. Recorded but unfired crossings come
    first whatever the clock's state (their instant is in the past); a paused or
    stopped clock with nothing pending gives None."""
    pending = [c for c in clock.crossings if c.threshold.key not in fired_keys]
    if clock.is_running:
        done = clock.crossed_keys
        for threshold in clock.thresholds:
            if threshold.key not in done and threshold.key not in fired_keys:
                pending.append(Crossing(threshold, _reach_instant(clock, threshold, cal)))
                break
    return min(pending, key=_order, default=None)


def unheld_firings(
    clock: Clock, fired: Mapping[str, datetime], until: datetime, cal: BusinessTime
) -> list[str]:
    """Keys of fired thresholds (key -> the instant it fired for) that the clock, as it
    is now, does not support: not crossed by `until`, or crossed at another instant.
    That happens only after an action dated before a firing (a reply logged late that
    stopped the clock in time); the service withdraws them. Oldest firing first."""
    crossed = {c.threshold.key: c.at for c in crossings(clock, until, cal)}
    unheld = [key for key, at in fired.items() if crossed.get(key) != _utc("fired", at)]
    return sorted(unheld, key=lambda key: (fired[key], key))
