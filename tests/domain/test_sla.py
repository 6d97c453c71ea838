"""SLA targets and clocks, against small test calendars (no app.domain.calendar)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from app.domain.sla import (
    ALWAYS_OPEN,
    AmbiguousTargets,
    BusinessTime,
    Clock,
    ClockError,
    ClockState,
    ClockTransitionError,
    Crossing,
    InvalidTarget,
    NaiveDatetimeError,
    Target,
    ThresholdKind,
    calendar_for,
    check_targets,
    checkpoint,
    continue_stopped,
    crossings,
    find_ambiguous_targets,
    next_threshold,
    pause,
    read,
    resume,
    retarget,
    select_target,
    start_clock,
    stop,
    targets_from_config,
    thresholds_of,
    unheld_firings,
)
from app.domain.vocab import Category, Channel, ClockKind, Metric, Severity

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


# ------------------------------------------------------------------ test calendars


class AlwaysOpenCal:
    def add(self, start: datetime, duration: timedelta) -> datetime:
        return start + duration

    def between(self, a: datetime, b: datetime) -> timedelta:
        return max(b - a, timedelta(0))

    def is_open(self, t: datetime) -> bool:
        return True


class WeeklyCal:
    """Opening hours per weekday in UTC, walked day by day (brute force is fine).

    `add` returns the *earliest* instant at which the duration has elapsed, as
    the real calendar does: add(Fri 16:00, 1 h) is Fri 17:00, not Mon 09:00."""

    def __init__(self, hours: Mapping[int, tuple[int, int]]) -> None:
        self.hours = dict(hours)  # weekday -> (open hour, close hour)

    def _day(self, day: datetime) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.hours:
            return None
        start, end = self.hours[day.weekday()]
        midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight + timedelta(hours=start), midnight + timedelta(hours=end)

    def between(self, a: datetime, b: datetime) -> timedelta:
        total = timedelta(0)
        day = a.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < b:
            span = self._day(day)
            if span is not None:
                lo, hi = max(span[0], a), min(span[1], b)
                if lo < hi:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    def add(self, start: datetime, duration: timedelta) -> datetime:
        assert duration > timedelta(0)
        left = duration
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        for _ in range(10_000):
            span = self._day(day)
            if span is not None:
                lo, hi = max(span[0], start), span[1]
                if lo < hi:
                    if left <= hi - lo:
                        return lo + left
                    left -= hi - lo
            day += timedelta(days=1)
        raise AssertionError("calendar never opens")

    def is_open(self, t: datetime) -> bool:
        span = self._day(t)
        return span is not None and span[0] <= t < span[1]


ALWAYS = AlwaysOpenCal()
NINE_FIVE = WeeklyCal({d: (9, 17) for d in range(5)})  # Mon-Fri 09:00-17:00 UTC
TEN_TWO = WeeklyCal({d: (10, 14) for d in range(6)})  # Mon-Sat 10:00-14:00 UTC


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """June 2024: the 3rd is a Monday, the 7th a Friday, the 8th a Saturday."""
    return datetime(2024, 6, day, hour, minute, tzinfo=UTC)


def target(minutes: int | None, **kw: object) -> Target:
    kw.setdefault("metric", Metric.RESOLUTION)
    return Target(minutes=minutes, **kw)  # type: ignore[arg-type]


def test_weekly_calendar_agrees_with_a_minute_walk() -> None:
    start = at(7, 15, 30)
    for minutes in (1, 30, 90, 480, 1000):
        due = NINE_FIVE.add(start, minutes * MIN)
        t, counted = start, 0
        while counted < minutes:
            counted += NINE_FIVE.is_open(t)
            t += MIN
        assert due == t
        assert NINE_FIVE.between(start, due) == minutes * MIN


# ---------------------------------------------------------------------- targets


SEED_002 = [  # Vitrium: tiers 3/2/1 are severities critical / high / the rest
    {
        "metric": "first_response",
        "severities": ["critical"],
        "minutes": 60,
        "clock": "24x7",
        "warn_at_percent": [50, 75, 90],
        "on_breach": {"escalate_to_tier": 2},
    },
    {"metric": "resolution", "severities": ["critical"], "minutes": 480, "clock": "24x7"},
    {"metric": "first_response", "severities": ["high"], "minutes": 120, "clock": "business"},
    {"metric": "first_response", "minutes": 480, "clock": "business"},
]

SEED_004 = [  # attention time by severity, resolution time by incident type
    {"metric": "first_response", "severities": ["critical"], "minutes": 30},
    {
        "metric": "first_response",
        "severities": ["high"],
        "minutes": 240,
        "warn_before_minutes": [180],
    },
    {"metric": "first_response", "severities": ["medium"], "minutes": 480},
    {
        "metric": "first_response",
        "severities": ["low"],
        "minutes": 1440,
        "warn_before_minutes": [480],
    },
    {"metric": "resolution", "categories": ["technical"], "minutes": 360},
    {"metric": "resolution", "categories": ["technical_urgent"], "minutes": 240},
    {"metric": "resolution", "categories": ["maintenance"], "minutes": 2160},
    {"metric": "resolution", "categories": ["research_debugging"], "minutes": 480},
    {"metric": "callback", "channels": ["voicemail"], "minutes": 120},
]


def test_parse_seed_002_and_select_by_severity() -> None:
    targets = targets_from_config(SEED_002)
    assert [t.index for t in targets] == [0, 1, 2, 3]
    assert targets[0].clock is ClockKind.ALWAYS and targets[0].escalate_to_tier == 2
    assert targets[0].warn_at_percent == (50, 75, 90)

    def pick(metric: Metric, severity: Severity) -> int | None:
        chosen = select_target(targets, metric, severity, Category.TECHNICAL, Channel.EMAIL)
        return None if chosen is None else chosen.index

    assert pick(Metric.FIRST_RESPONSE, Severity.CRITICAL) == 0  # tier 3: 1 h around the clock
    assert pick(Metric.RESOLUTION, Severity.CRITICAL) == 1  # ... and fixed within 8 h
    assert pick(Metric.FIRST_RESPONSE, Severity.HIGH) == 2  # tier 2: 2 business hours
    assert pick(Metric.FIRST_RESPONSE, Severity.LOW) == 3  # tier 1: 8 business hours
    assert pick(Metric.RESOLUTION, Severity.HIGH) is None  # no resolution commitment
    assert find_ambiguous_targets(targets) == []


def test_seed_004_severity_and_category_targets_are_not_ambiguous() -> None:
    targets = targets_from_config(SEED_004)
    assert find_ambiguous_targets(targets) == []
    check_targets(targets)
    first = select_target(targets, Metric.FIRST_RESPONSE, Severity.HIGH, Category.MAINTENANCE, None)
    fix = select_target(targets, Metric.RESOLUTION, Severity.HIGH, Category.MAINTENANCE, None)
    assert first is not None and first.minutes == 240
    assert fix is not None and fix.minutes == 2160
    # Incident types without a resolution time (how-to) get no resolution clock.
    assert select_target(targets, Metric.RESOLUTION, Severity.LOW, Category.HOW_TO, None) is None
    assert select_target(targets, Metric.RESOLUTION, Severity.LOW, None, None) is None
    cb = select_target(targets, Metric.CALLBACK, Severity.LOW, None, Channel.VOICEMAIL)
    assert cb is not None and cb.index == 8
    assert select_target(targets, Metric.CALLBACK, Severity.LOW, None, Channel.EMAIL) is None


def test_severity_and_category_resolution_targets_are_ambiguous_until_settled() -> None:
    config = [*SEED_004, {"metric": "resolution", "severities": ["critical"], "minutes": 120}]
    targets = targets_from_config(config)
    # critical x technical matches "critical" (9) and "technical" (4), both specificity 1.
    assert find_ambiguous_targets(targets) == [(4, 9), (5, 9), (6, 9), (7, 9)]
    with pytest.raises(AmbiguousTargets) as err:
        check_targets(targets)
    assert err.value.pairs == ((4, 9), (5, 9), (6, 9), (7, 9))
    assert "4 and 9" in str(err.value)
    # More specific targets for every overlap settle it: no refusal any more.
    settled = config + [
        {"metric": "resolution", "severities": ["critical"], "categories": [c], "minutes": 120}
        for c in ("technical", "technical_urgent", "maintenance", "research_debugging")
    ]
    settled_targets = targets_from_config(settled)
    assert find_ambiguous_targets(settled_targets) == []
    win = select_target(
        settled_targets, Metric.RESOLUTION, Severity.CRITICAL, Category.MAINTENANCE, None
    )
    assert win is not None and win.index == 12


def test_specificity_then_order() -> None:
    a = target(60, index=0)
    b = target(30, severities=frozenset({Severity.HIGH}), index=1)
    c = target(
        20, severities=frozenset({Severity.HIGH}), channels=frozenset({Channel.PHONE}), index=2
    )
    d = target(10, severities=frozenset({Severity.HIGH}), index=3)
    assert (a.specificity, b.specificity, c.specificity) == (0, 1, 2)
    pick = select_target([a, b, c, d], Metric.RESOLUTION, Severity.HIGH, None, Channel.PHONE)
    assert pick is c
    pick = select_target([a, b, c, d], Metric.RESOLUTION, Severity.HIGH, None, Channel.EMAIL)
    assert pick is b  # b and d tie: the earliest wins ... and the plan is refused:
    assert find_ambiguous_targets([a, b, c, d]) == [(1, 3)]
    pick = select_target([a, b, c, d], Metric.RESOLUTION, Severity.LOW, None, Channel.PHONE)
    assert pick is a
    assert select_target([a], Metric.FIRST_RESPONSE, Severity.LOW, None, None) is None
    assert not c.matches(Severity.HIGH, None, None)  # unknown channel: no channel condition met


def test_disjoint_and_other_metric_targets_are_not_ambiguous() -> None:
    a = target(60, severities=frozenset({Severity.HIGH}), index=0)
    b = target(60, severities=frozenset({Severity.LOW}), index=1)
    c = target(60, severities=frozenset({Severity.HIGH}), metric=Metric.FIRST_RESPONSE, index=2)
    d = target(60, categories=frozenset({Category.BUG}), channels=frozenset({Channel.WEB}), index=3)
    e = target(
        60, severities=frozenset({Severity.LOW}), channels=frozenset({Channel.PHONE}), index=4
    )
    assert find_ambiguous_targets([a, b, c]) == []
    assert find_ambiguous_targets([a, b, c, d, e]) == []  # d needs web, e needs phone
    f = target(60, categories=frozenset({Category.BUG}), index=5)
    g = target(60, channels=frozenset({Channel.PHONE}), index=6)
    # a (high) overlaps f (bug) and g (phone); b (low) too; f and g overlap on bug + phone
    assert find_ambiguous_targets([a, b, f, g]) == [(0, 5), (0, 6), (1, 5), (1, 6), (5, 6)]


def test_target_validation() -> None:
    with pytest.raises(InvalidTarget):
        target(0)
    with pytest.raises(InvalidTarget):
        target(60, warn_at_percent=(100,))
    with pytest.raises(InvalidTarget):
        target(60, warn_at_percent=(75, 50))
    with pytest.raises(InvalidTarget):
        target(60, warn_before_minutes=(0,))
    with pytest.raises(InvalidTarget):
        target(None, warn_at_percent=(50,))
    with pytest.raises(InvalidTarget):
        target(60, escalate_to_tier=5)
    with pytest.raises(InvalidTarget, match="unknown fields"):
        Target.from_dict({"metric": "resolution", "minutes": 5, "minuts": 3}, 0)
    with pytest.raises(InvalidTarget):
        Target.from_dict({"metric": "resolution", "minutes": 5, "severities": ["urgent"]}, 0)
    with pytest.raises(InvalidTarget, match="sorted and unique"):
        Target.from_dict({"metric": "resolution", "minutes": 5, "warn_at_percent": [50, 50]}, 0)
    with pytest.raises(InvalidTarget):
        Target.from_dict({"metric": "resolution", "minutes": True}, 0)
    parsed = Target.from_dict(
        {"metric": "resolution", "minutes": 60, "warn_at_percent": [90, 50]}, 4
    )
    assert parsed.warn_at_percent == (50, 90) and parsed.index == 4
    assert parsed.clock is ClockKind.BUSINESS


# -------------------------------------------------------------------- thresholds


def test_thresholds_marks_keys_and_order() -> None:
    t = target(60, warn_at_percent=(50, 75, 90), warn_before_minutes=(15,))
    got = [(th.key, th.kind, th.percent, th.mark) for th in thresholds_of(t)]
    assert got == [
        ("warn:50", ThresholdKind.WARNING, 50, 30 * MIN),
        ("before:15", ThresholdKind.WARNING, None, 45 * MIN),
        ("warn:75", ThresholdKind.WARNING, 75, 45 * MIN),
        ("warn:90", ThresholdKind.WARNING, 90, 54 * MIN),
        ("breach", ThresholdKind.BREACH, 100, 60 * MIN),
    ]


def test_t_minus_not_shorter_than_the_duration_is_dropped() -> None:
    t = target(60, warn_before_minutes=(15, 60, 120))
    assert [th.key for th in thresholds_of(t)] == ["before:15", "breach"]


def test_percent_marks_round_up_to_the_second() -> None:
    t = target(1, warn_at_percent=(33,))
    assert thresholds_of(t)[0].mark == timedelta(seconds=20)  # 19.8 s -> 20 s


def test_best_effort_has_no_thresholds() -> None:
    assert thresholds_of(target(None)) == []


# ---------------------------------------------------------- clocks, hand-computed


def test_pause_across_a_weekend() -> None:
    t = target(480)  # 8 business hours
    c = start_clock(t, at(7, 13))  # Friday 13:00
    assert read(c, at(7, 13), NINE_FIVE).due_at == at(10, 13)  # Monday 13:00 unpaused
    c = pause(c, at(7, 15), NINE_FIVE)  # waiting on the customer after 2 h
    assert c.elapsed == 2 * HOUR and c.running_since is None
    weekend = read(c, at(9, 12), NINE_FIVE)
    assert weekend.state is ClockState.PAUSED and weekend.due_at is None
    assert weekend.elapsed == 2 * HOUR and weekend.remaining == 6 * HOUR
    c = resume(c, at(10, 10))  # customer replies Monday 10:00
    r = read(c, at(10, 12), NINE_FIVE)
    assert r.state is ClockState.RUNNING
    assert r.due_at == at(10, 16)  # 6 h left from Monday 10:00
    assert r.elapsed == 4 * HOUR and r.remaining == 4 * HOUR and r.overdue == timedelta(0)


def test_breach_is_recorded_at_the_due_instant_when_stopped_later() -> None:
    c = start_clock(target(60, warn_at_percent=(50,)), at(3, 9))  # Monday 09:00, due 10:00
    c = stop(c, at(3, 11, 30), NINE_FIVE)
    assert c.breached_at == at(3, 10)
    assert [(x.threshold.key, x.at) for x in c.crossings] == [
        ("warn:50", at(3, 9, 30)),
        ("breach", at(3, 10)),
    ]
    r = read(c, at(4, 9), NINE_FIVE)
    assert r.state is ClockState.BREACHED and r.breached_at == at(3, 10)
    assert r.elapsed == 150 * MIN and r.overdue == 90 * MIN and r.remaining == timedelta(0)
    # A finished clock keeps its due instant: the one it breached at.
    assert r.due_at == at(3, 10) and r.stopped_at == at(3, 11, 30) and r.met_by is None


def test_nobody_looked_running_clock_reads_breached_at_due_instant() -> None:
    c = start_clock(target(60), at(3, 16, 30))  # due Tuesday 09:30
    assert read(c, at(4, 9, 30), NINE_FIVE).state is ClockState.RUNNING  # exactly due: on time
    r = read(c, at(5, 12), NINE_FIVE)
    assert r.state is ClockState.BREACHED and r.breached_at == at(4, 9, 30)
    assert c.breached_at is None  # reading never changes the clock


def test_saturday_resolution_after_friday_due_is_breached() -> None:
    c = start_clock(target(240), at(7, 13))  # due Friday 17:00
    late = stop(c, at(8, 10), NINE_FIVE)  # resolved Saturday 10:00
    assert late.elapsed == 4 * HOUR  # no business time passed after the due time ...
    r = read(late, at(8, 10), NINE_FIVE)
    assert r.state is ClockState.BREACHED  # ... but the promise was Friday 17:00
    assert r.breached_at == at(7, 17) and r.overdue == timedelta(0)
    on_time = stop(c, at(7, 17), NINE_FIVE)  # exactly at the due instant: met
    assert read(on_time, at(8, 10), NINE_FIVE).state is ClockState.MET


def test_a_finished_clock_keeps_the_due_instant_in_force_when_it_stopped() -> None:
    c = start_clock(target(240), at(7, 13))  # Friday 13:00, due 17:00
    met = stop(c, at(7, 15), NINE_FIVE)  # answered at 15:00: two business hours to spare
    r = read(met, at(10, 9), NINE_FIVE)
    assert (r.state, r.due_at, r.met_by, r.overdue) == (
        ClockState.MET, at(7, 17), 2 * HOUR, timedelta(0)
    )  # fmt: skip
    assert met.final_due_at == at(7, 17)
    # Stopped while paused (resolved while waiting on the customer): the instant it would
    # have been due had it run on from the stop (3 h left on Friday 16:00 -> Monday 11:00).
    paused = pause(c, at(7, 14), NINE_FIVE)
    resolved = stop(paused, at(7, 16), NINE_FIVE)
    assert read(resolved, at(10, 9), NINE_FIVE).due_at == at(10, 11)
    # History: a later calendar (here: always open) does not move it...
    assert read(met, at(10, 9), ALWAYS_OPEN).due_at == at(7, 17)
    # ...and a clock stored before the instant was kept derives it with the calendar.
    legacy = replace(met, final_due_at=None)
    assert read(legacy, at(10, 9), NINE_FIVE).due_at == at(7, 17)
    # Reopened, it runs again: its due instant is the running one.
    again = continue_stopped(met, at(10, 9))
    assert again.final_due_at is None
    assert read(again, at(10, 9), NINE_FIVE).due_at == at(10, 11)
    with pytest.raises(ClockError):
        replace(c, final_due_at=at(7, 17))  # only a stopped clock has one
    best = stop(start_clock(target(None), at(7, 13)), at(7, 14), NINE_FIVE)
    assert best.final_due_at is None and read(best, at(7, 15), NINE_FIVE).due_at is None


def test_firings_a_late_stop_no_longer_supports_are_named() -> None:
    c = start_clock(target(60, warn_at_percent=(50,)), at(3, 9))  # warn 09:30, breach 10:00
    fired = {"warn:50": at(3, 9, 30), "breach": at(3, 10)}
    assert unheld_firings(c, fired, at(3, 11), NINE_FIVE) == []
    # The reply happened at 09:20, logged at 11:00: neither threshold was reached.
    answered = stop(c, at(3, 9, 20), NINE_FIVE)
    assert unheld_firings(answered, fired, at(3, 11), NINE_FIVE) == ["warn:50", "breach"]
    # At 09:45: the warning stands, the breach does not; exactly at 10:00, on time too.
    assert unheld_firings(stop(c, at(3, 9, 45), NINE_FIVE), fired, at(3, 11), NINE_FIVE) == [
        "breach"
    ]
    assert unheld_firings(stop(c, at(3, 10), NINE_FIVE), fired, at(3, 11), NINE_FIVE) == ["breach"]
    # Paused at 09:10 and resumed at 10:30: the warning is reached again, but at 10:50.
    moved = resume(pause(c, at(3, 9, 10), NINE_FIVE), at(3, 10, 30))
    assert unheld_firings(moved, fired, at(3, 11), NINE_FIVE) == ["warn:50", "breach"]
    assert crossings(moved, at(3, 11), NINE_FIVE)[0].at == at(3, 10, 50)


def test_retarget_keeps_elapsed_and_recomputes_due() -> None:
    low = target(480, warn_at_percent=(50,))
    critical = target(120, warn_at_percent=(50, 75))
    c = start_clock(low, at(3, 9))
    c = retarget(c, critical, at(3, 10), NINE_FIVE)  # severity raised after 1 h
    assert c.elapsed == HOUR and c.minutes == 120 and c.running_since == at(3, 10)
    # warn:50 of the new target (60 min) is reached exactly now
    assert [(x.threshold.key, x.at) for x in c.crossings] == [("warn:50", at(3, 10))]
    r = read(c, at(3, 10, 30), NINE_FIVE)
    assert r.due_at == at(3, 11) and r.elapsed == 90 * MIN
    assert next_threshold(c, {"warn:50"}, NINE_FIVE) == Crossing(c.thresholds[1], at(3, 10, 30))


def test_retarget_to_a_target_already_exceeded_breaches_at_the_change() -> None:
    c = start_clock(target(480), at(3, 9))
    c = retarget(c, target(30), at(3, 10), NINE_FIVE)
    assert c.breached_at == at(3, 10)  # the new target did not apply before 10:00
    assert read(c, at(3, 10), NINE_FIVE).state is ClockState.BREACHED
    # exactly at the new duration: due now, met if stopped now
    d = retarget(start_clock(target(480), at(3, 9)), target(60), at(3, 10), NINE_FIVE)
    assert d.breached_at is None
    assert read(stop(d, at(3, 10), NINE_FIVE), at(3, 12), NINE_FIVE).state is ClockState.MET
    assert read(d, at(3, 10, 1), NINE_FIVE).breached_at == at(3, 10)


def test_a_recorded_breach_survives_a_retarget_to_a_longer_target() -> None:
    c = stop(start_clock(target(60), at(3, 9)), at(3, 9), NINE_FIVE)
    c = continue_stopped(c, at(3, 9))
    c = pause(c, at(3, 11), NINE_FIVE)
    assert c.breached_at == at(3, 10)
    c = retarget(c, target(480), at(3, 12), NINE_FIVE)
    r = read(c, at(3, 12), NINE_FIVE)
    assert r.state is ClockState.BREACHED and r.breached_at == at(3, 10)
    assert r.remaining == 6 * HOUR


def test_checkpoint_then_another_calendar_recomputes_only_the_rest() -> None:
    c = start_clock(target(480), at(3, 9))  # Monday 09:00 on 09-17: due Monday 17:00
    assert read(c, at(3, 11), NINE_FIVE).due_at == at(3, 17)
    c = checkpoint(c, at(3, 11), NINE_FIVE)  # the plan moves to a 10-14 calendar
    assert c.elapsed == 2 * HOUR and c.running_since == at(3, 11)
    r = read(c, at(3, 11), TEN_TWO)
    assert r.due_at == at(4, 13)  # 3 h Monday 11-14, then 3 h Tuesday 10-13
    assert r.elapsed == 2 * HOUR
    stopped = stop(c, at(3, 12), TEN_TWO)
    assert checkpoint(stopped, at(4, 9), ALWAYS) is stopped  # history never changes
    paused = pause(c, at(3, 12), TEN_TWO)
    assert checkpoint(paused, at(3, 13), ALWAYS) is paused


def test_24x7_clock() -> None:
    t = target(60, clock=ClockKind.ALWAYS, warn_at_percent=(50,), metric=Metric.FIRST_RESPONSE)
    cal = calendar_for(t.clock, NINE_FIVE)
    assert cal is ALWAYS_OPEN
    assert calendar_for(ClockKind.BUSINESS, NINE_FIVE) is NINE_FIVE
    c = start_clock(t, at(8, 23, 30))  # Saturday 23:30
    r = read(c, at(9, 0, 10), cal)
    assert r.due_at == at(9, 0, 30) and r.elapsed == 40 * MIN
    assert [(x.threshold.key, x.at) for x in crossings(c, at(9, 0, 10), cal)] == [
        ("warn:50", at(9, 0)),
    ]


def test_best_effort_clock() -> None:
    c = start_clock(target(None), at(3, 9))
    r = read(c, at(10, 9), NINE_FIVE)
    assert r.state is ClockState.BEST_EFFORT and r.due_at is None and r.remaining is None
    assert r.elapsed == 40 * HOUR
    assert next_threshold(c, set(), NINE_FIVE) is None
    s = stop(c, at(4, 9), NINE_FIVE)
    r = read(s, at(10, 9), NINE_FIVE)
    assert r.state is ClockState.BEST_EFFORT and r.stopped_at == at(4, 9)
    # retarget from best effort keeps the elapsed time
    timed = retarget(c, target(600), at(4, 9), NINE_FIVE)
    assert read(timed, at(4, 9), NINE_FIVE).due_at == at(4, 11)


def test_reopen_continues_the_stopped_clock() -> None:
    c = start_clock(target(120), at(3, 9))
    c = stop(c, at(3, 10), NINE_FIVE)  # resolved
    assert read(c, at(4, 9), NINE_FIVE).state is ClockState.MET
    c = continue_stopped(c, at(4, 9))  # reopened next morning
    r = read(c, at(4, 9), NINE_FIVE)
    assert r.state is ClockState.RUNNING and r.elapsed == HOUR and r.due_at == at(4, 10)
    assert r.stopped_at is None


def test_threshold_instants_across_segments() -> None:
    t = target(60, warn_at_percent=(50,))
    c = start_clock(t, at(3, 16, 40))  # Monday 16:40
    warn, breach = c.thresholds
    assert next_threshold(c, set(), NINE_FIVE) == Crossing(warn, at(4, 9, 10))
    assert crossings(c, at(4, 9, 40), NINE_FIVE) == [Crossing(warn, at(4, 9, 10))]
    assert crossings(c, at(4, 9, 41), NINE_FIVE) == [
        Crossing(warn, at(4, 9, 10)),
        Crossing(breach, at(4, 9, 40)),
    ]
    assert crossings(c, at(4, 9, 41), NINE_FIVE, exclude={"warn:50"}) == [
        Crossing(breach, at(4, 9, 40))
    ]
    c = pause(c, at(4, 9, 20), NINE_FIVE)  # nobody fired warn:50: it is recorded
    assert c.crossings == (Crossing(warn, at(4, 9, 10)),)
    assert next_threshold(c, set(), NINE_FIVE) == Crossing(warn, at(4, 9, 10))  # in the past
    assert next_threshold(c, {"warn:50"}, NINE_FIVE) is None  # paused: nothing ahead
    c = resume(c, at(4, 12))  # 40 min elapsed (20 on Monday, 20 on Tuesday), 20 to go
    assert next_threshold(c, {"warn:50"}, NINE_FIVE) == Crossing(breach, at(4, 12, 20))
    # a threshold fired by the timer but not recorded yet is skipped
    fresh = start_clock(t, at(3, 9))
    assert next_threshold(fresh, {"warn:50"}, NINE_FIVE) == Crossing(breach, at(3, 10))


def test_warning_reached_exactly_at_pause_is_recorded() -> None:
    c = start_clock(target(60, warn_at_percent=(50,)), at(3, 9))
    c = pause(c, at(3, 9, 30), NINE_FIVE)
    assert [x.threshold.key for x in c.crossings] == ["warn:50"]


def test_invalid_and_idempotent_transitions() -> None:
    c = start_clock(target(60), at(3, 9))
    with pytest.raises(ClockTransitionError):
        pause(c, at(3, 8), NINE_FIVE)  # before the clock's last transition
    assert resume(c, at(3, 10)) is c
    assert continue_stopped(c, at(3, 10)) is c
    p = pause(c, at(3, 9, 10), NINE_FIVE)
    assert pause(p, at(3, 9, 20), NINE_FIVE) is p
    with pytest.raises(ClockTransitionError):
        continue_stopped(p, at(3, 9, 20))
    with pytest.raises(ClockTransitionError):
        resume(p, at(3, 9))  # before the pause
    s = stop(p, at(3, 9, 30), NINE_FIVE)
    assert s.stopped_at == at(3, 9, 30) and s.elapsed == 10 * MIN
    assert stop(s, at(3, 10), NINE_FIVE) is s
    assert retarget(s, target(5), at(3, 10), NINE_FIVE) is s
    refused: list[Callable[[], Clock]] = [
        lambda: pause(s, at(3, 10), NINE_FIVE),
        lambda: resume(s, at(3, 10)),
        lambda: retarget(c, target(5, metric=Metric.CALLBACK), at(3, 10), NINE_FIVE),
    ]
    for op in refused:
        with pytest.raises(ClockTransitionError):
            op()


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2024, 6, 3, 9)
    with pytest.raises(NaiveDatetimeError):
        start_clock(target(60), naive)
    c = start_clock(target(60), at(3, 9))
    with pytest.raises(ValueError):
        pause(c, naive, NINE_FIVE)
    with pytest.raises(ValueError):
        read(c, naive, NINE_FIVE)
    with pytest.raises(ValueError):
        crossings(c, naive, NINE_FIVE)


def test_clock_invariants_are_checked() -> None:
    c = start_clock(target(60), at(3, 9))
    with pytest.raises(ClockError):
        replace(c, stopped_at=at(3, 9))  # running and stopped
    with pytest.raises(ClockError):
        replace(c, breached_at=at(3, 10))  # no breach crossing
    with pytest.raises(ClockError):
        replace(c, elapsed=-MIN)


def test_read_before_last_transition_reads_as_of_it() -> None:
    c = checkpoint(start_clock(target(60), at(3, 9)), at(3, 9, 30), NINE_FIVE)
    assert read(c, at(3, 9, 29), NINE_FIVE).elapsed == 30 * MIN


def test_non_utc_instants_are_normalised() -> None:
    from datetime import timezone

    cest = timezone(timedelta(hours=2))
    c = start_clock(target(60), datetime(2024, 6, 3, 11, tzinfo=cest))
    assert c.started_at == at(3, 9) and c.started_at.tzinfo is UTC


# --------------------------------------------------------------- stateful property

MACHINE_TARGETS = [
    target(60, warn_at_percent=(25, 50, 75), warn_before_minutes=(15,)),
    target(240, warn_at_percent=(50,), warn_before_minutes=(30, 300)),
    target(8, warn_at_percent=(25, 75)),
    target(480),
    target(None),
]
MACHINE_CALENDARS: Sequence[AlwaysOpenCal | WeeklyCal] = [NINE_FIVE, TEN_TWO, ALWAYS]
BASE = at(3, 0)


class ClockMachine(RuleBasedStateMachine):
    """Random transitions and time steps against a minute-by-minute oracle.

    Everything happens on whole minutes so the oracle can walk time with the
    calendar's `is_open` only (independent of `add`/`between`): elapsed grows by
    one per open minute while running; a warning is crossed when elapsed reaches
    its mark; the breach happens at instant t if the clock is still running at
    t with elapsed >= duration (so stopping or pausing exactly at the due
    instant is on time), or at a retarget that leaves elapsed beyond it."""

    clock: Clock
    cal: AlwaysOpenCal | WeeklyCal

    @initialize(
        tgt=st.sampled_from(MACHINE_TARGETS),
        cal=st.sampled_from(MACHINE_CALENDARS),
        offset=st.integers(0, 7 * 24 * 60 - 1),
    )
    def start(self, tgt: Target, cal: AlwaysOpenCal | WeeklyCal, offset: int) -> None:
        self.now = BASE + offset * MIN
        self.cal = cal
        self.clock = start_clock(tgt, self.now)
        self.elapsed = 0  # oracle, in minutes
        self.running, self.stopped = True, False
        self.minutes = tgt.minutes
        self.thresholds = thresholds_of(tgt)
        self.oracle: dict[str, datetime] = {}
        self.seen: dict[str, datetime] = {}
        self.fired: dict[str, datetime] = {}
        self.last_read = timedelta(0)
        self.last_recorded: tuple[Crossing, ...] = ()

    # -- oracle

    def _mark(self, threshold_mark: timedelta) -> int:
        assert threshold_mark % MIN == timedelta(0)
        return threshold_mark // MIN

    def _event_check(self) -> None:
        for th in self.thresholds:
            if th.key in self.oracle:
                continue
            mark = self._mark(th.mark)
            if th.kind is ThresholdKind.WARNING and self.elapsed >= mark:
                self.oracle[th.key] = self.now
            if th.kind is ThresholdKind.BREACH and self.elapsed > mark:
                self.oracle[th.key] = self.now

    def _walk(self, end: datetime) -> None:
        t = self.now
        while t < end and self.running:
            for th in self.thresholds:
                if (
                    th.kind is ThresholdKind.BREACH
                    and th.key not in self.oracle
                    and self.elapsed >= self._mark(th.mark)
                ):
                    self.oracle[th.key] = t
            if self.cal.is_open(t):
                self.elapsed += 1
                for th in self.thresholds:
                    if (
                        th.kind is ThresholdKind.WARNING
                        and th.key not in self.oracle
                        and self.elapsed >= self._mark(th.mark)
                    ):
                        self.oracle[th.key] = t + MIN
            t += MIN
        self.now = end

    # -- rules

    @rule(minutes=st.one_of(st.integers(0, 90), st.integers(0, 3 * 24 * 60)))
    def advance(self, minutes: int) -> None:
        self._walk(self.now + minutes * MIN)

    @rule(delta=st.sampled_from([-1, 0, 0, 1]))
    def advance_to_next_threshold(self, delta: int) -> None:
        # Random steps rarely land on an exact instant; boundaries are where the
        # inclusive/strict rules matter, so aim for them (the oracle still judges).
        reached = {c.threshold.key for c in crossings(self.clock, self.now, self.cal)}
        nxt = next_threshold(self.clock, reached, self.cal)
        if nxt is not None and nxt.at + delta * MIN >= self.now:
            self._walk(nxt.at + delta * MIN)

    @rule()
    def pause(self) -> None:
        if self.stopped:
            with pytest.raises(ClockTransitionError):
                pause(self.clock, self.now, self.cal)
            return
        before = self.clock
        self.clock = pause(self.clock, self.now, self.cal)
        if not self.running:
            assert self.clock is before
        self.running = False

    @rule()
    def resume(self) -> None:
        if self.stopped:
            with pytest.raises(ClockTransitionError):
                resume(self.clock, self.now)
            return
        self.clock = resume(self.clock, self.now)
        self.running = True

    @rule()
    def stop(self) -> None:
        before = self.clock
        self.clock = stop(self.clock, self.now, self.cal)
        if self.stopped:
            assert self.clock is before
        self.running, self.stopped = False, True

    @rule()
    def continue_(self) -> None:
        if not self.running and not self.stopped:
            with pytest.raises(ClockTransitionError):
                continue_stopped(self.clock, self.now)
            return
        self.clock = continue_stopped(self.clock, self.now)
        self.running, self.stopped = True, False

    @rule(tgt=st.sampled_from(MACHINE_TARGETS))
    def retarget(self, tgt: Target) -> None:
        before = self.clock
        self.clock = retarget(self.clock, tgt, self.now, self.cal)
        if self.stopped:
            assert self.clock is before
            return
        self.minutes = tgt.minutes
        self.thresholds = thresholds_of(tgt)
        self._event_check()

    @rule(cal=st.sampled_from(MACHINE_CALENDARS))
    def calendar_edit(self, cal: AlwaysOpenCal | WeeklyCal) -> None:
        before = self.clock
        self.clock = checkpoint(self.clock, self.now, self.cal)
        if not self.running:
            assert self.clock is before
        self.cal = cal

    @rule()
    def backdated_transition_is_refused(self) -> None:
        if self.clock.changed_at > BASE:
            with pytest.raises(ClockTransitionError):
                checkpoint(self.clock, self.clock.changed_at - MIN, self.cal)

    @rule()
    def timer(self) -> None:
        due = crossings(self.clock, self.now, self.cal, exclude=set(self.fired))
        for c in due:
            assert c.threshold.key not in self.fired  # each threshold fires once
            assert all(c.at >= earlier for earlier in self.fired.values())  # oldest first
            self.fired[c.threshold.key] = c.at

    # -- invariants

    @invariant()
    def reading_agrees_with_the_oracle(self) -> None:
        r = read(self.clock, self.now, self.cal)
        assert r.elapsed == self.elapsed * MIN  # between-consistency
        assert r.elapsed >= self.last_read  # elapsed never decreases
        assert self.clock.elapsed <= r.elapsed
        self.last_read = r.elapsed
        assert r.running is self.running
        breach = self.oracle.get("breach")
        assert r.breached_at == breach
        if self.minutes is None:
            assert r.state is ClockState.BEST_EFFORT
        elif breach is not None:
            assert r.state is ClockState.BREACHED
        elif self.stopped:
            assert r.state is ClockState.MET
        else:
            assert r.state is (ClockState.RUNNING if self.running else ClockState.PAUSED)
        if self.running and self.minutes is not None and breach is None:
            assert r.due_at is not None and r.due_at >= self.now  # not breached: due now or later
        if not self.running:
            # a paused clock does not move; a stopped one never changes
            assert read(self.clock, self.now + timedelta(days=5), self.cal) == r
            assert read(self.clock, self.now + timedelta(days=5), ALWAYS) == r

    @invariant()
    def crossings_agree_with_the_oracle(self) -> None:
        got = crossings(self.clock, self.now, self.cal)
        assert [c.at for c in got] == sorted(c.at for c in got)
        as_dict = {c.threshold.key: c.at for c in got}
        assert len(as_dict) == len(got)  # each threshold crossed at most once
        assert as_dict == self.oracle
        for key, instant in self.seen.items():  # never lost, never moved
            assert as_dict[key] == instant
        self.seen.update(as_dict)
        # recorded crossings only ever grow
        recorded = self.clock.crossings
        assert recorded[: len(self.last_recorded)] == self.last_recorded
        self.last_recorded = recorded
        # within one target, crossing order follows mark order
        current = {th.key: th.mark for th in self.thresholds}
        ours = [c for c in got if current.get(c.threshold.key) == c.threshold.mark]
        assert [current[c.threshold.key] for c in ours] == sorted(
            current[c.threshold.key] for c in ours
        )

    @invariant()
    def next_threshold_is_the_earliest_unfired(self) -> None:
        pending = crossings(self.clock, self.now, self.cal, exclude=set(self.fired))
        nxt = next_threshold(self.clock, set(self.fired), self.cal)
        if pending:
            assert nxt == pending[0]
        elif nxt is not None:
            assert self.running
            assert nxt.at > self.now or (
                nxt.threshold.kind is ThresholdKind.BREACH and nxt.at == self.now
            )


ClockMachine.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClockMachine = ClockMachine.TestCase


def test_business_time_protocol_is_satisfied_by_test_calendars() -> None:
    cals: list[BusinessTime] = [ALWAYS, NINE_FIVE, TEN_TWO, ALWAYS_OPEN]
    assert all(c.between(at(3, 9), at(3, 10)) <= HOUR for c in cals)
