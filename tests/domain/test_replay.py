"""app.domain.replay: pure, around the clock (ALWAYS_OPEN) so every figure is obvious."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.domain.entitlement import Coverage, PlanTerms
from app.domain.replay import Outcome, ReplayTerms, TicketFacts, TimelineEvent, replay
from app.domain.sla import ALWAYS_OPEN, Target
from app.domain.vocab import Category, Channel, Metric, Severity, TicketStatus

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
M = timedelta(minutes=1)


def terms(*targets: Target, pause_on: frozenset[TicketStatus] | None = None) -> ReplayTerms:
    plan = PlanTerms(
        id=uuid.uuid4(),
        code="p",
        level=1,
        calendar_id=uuid.uuid4(),
        timezone="UTC",
        channels=frozenset({Channel.EMAIL}),
        targets=tuple(Target(**{**t.__dict__, "index": i}) for i, t in enumerate(targets)),
        **({"pause_on": pause_on} if pause_on is not None else {}),
    )
    return ReplayTerms(coverage=Coverage(plan=plan, chain=(plan,)), business=ALWAYS_OPEN)


FACTS = TicketFacts(
    received_at=T0, channel=Channel.EMAIL, severity=Severity.HIGH, category=Category.TECHNICAL
)
STANDARD = terms(
    Target(metric=Metric.FIRST_RESPONSE, minutes=60),
    Target(metric=Metric.RESOLUTION, minutes=240),
)


def ev(kind: str, minutes: int, **kw: object) -> TimelineEvent:
    return TimelineEvent(kind=kind, at=T0 + minutes * M, **kw)  # type: ignore[arg-type]


def test_pause_resume_reply_resolve_reopen() -> None:
    timeline = [
        ev("created", 0),
        ev("info_requested", 30),  # FR stops at 30; resolution pauses at 30
        ev("customer_replied", 90),  # resumes at 90
        ev("resolved", 150),  # 30 + 60 = 90 elapsed
        ev("reopened", 160),
        ev("resolved", 170),  # + 10
        ev("sla_warning", 171, system=True),
        ev("escalated", 172, system=True, to_tier=2),  # the timer's: ignored
    ]
    result = replay(FACTS, timeline, STANDARD, T0 + 1000 * M)
    fr, res = result.outcomes[Metric.FIRST_RESPONSE], result.outcomes[Metric.RESOLUTION]
    assert (fr.outcome, fr.elapsed) == (Outcome.MET, 30 * M)
    assert (res.outcome, res.elapsed) == (Outcome.MET, 100 * M)
    assert result.skipped == 0


def test_a_tighter_plan_breaches_and_running_clocks_breach_at_their_due_instant() -> None:
    tight = terms(Target(metric=Metric.FIRST_RESPONSE, minutes=20))
    result = replay(FACTS, [ev("replied", 30)], tight, T0 + 60 * M)
    fr = result.outcomes[Metric.FIRST_RESPONSE]
    assert fr.outcome is Outcome.BREACHED and fr.breached_at == T0 + 20 * M
    assert Metric.RESOLUTION not in result.outcomes
    running = replay(FACTS, [], STANDARD, T0 + 241 * M).outcomes[Metric.RESOLUTION]
    assert running.outcome is Outcome.BREACHED and running.due_at == T0 + 240 * M
    exactly = replay(FACTS, [], STANDARD, T0 + 240 * M).outcomes[Metric.RESOLUTION]
    assert exactly.outcome is Outcome.PENDING


def test_pause_on_vendor_and_best_effort() -> None:
    vendor = terms(
        Target(metric=Metric.RESOLUTION, minutes=100),
        pause_on=frozenset({TicketStatus.WAITING_ON_CUSTOMER, TicketStatus.WAITING_ON_VENDOR}),
    )
    timeline = [ev("escalated", 10, to_tier=4), ev("escalated", 500, to_tier=2)]
    res = replay(FACTS, timeline, vendor, T0 + 520 * M).outcomes[Metric.RESOLUTION]
    assert (res.outcome, res.elapsed) == (Outcome.PENDING, 30 * M)
    best = terms(Target(metric=Metric.RESOLUTION, minutes=None))
    assert not replay(FACTS, [], best, T0).outcomes[Metric.RESOLUTION].counted


def test_change_retargets_and_unentitled_tickets_get_no_clocks() -> None:
    by_severity = terms(
        Target(metric=Metric.RESOLUTION, minutes=240),
        Target(metric=Metric.RESOLUTION, minutes=60, severities=frozenset({Severity.CRITICAL})),
    )
    timeline = [ev("changed", 30, severity=Severity.CRITICAL), ev("resolved", 70)]
    res = replay(FACTS, timeline, by_severity, T0 + 100 * M).outcomes[Metric.RESOLUTION]
    assert res.outcome is Outcome.BREACHED and res.breached_at == T0 + 60 * M
    facts = TicketFacts(**{**FACTS.__dict__, "entitled": False})
    assert replay(facts, timeline, by_severity, T0).outcomes == {}


def test_an_impossible_event_is_skipped_not_raised() -> None:
    result = replay(FACTS, [ev("confirmed", 5), ev("sla_recomputed", 6)], STANDARD, T0)
    assert result.skipped == 1 and result.retimed


def test_a_late_event_takes_its_place_and_withdrawn_events_are_skipped() -> None:
    with_close = terms(Target(metric=Metric.RESOLUTION, minutes=600))
    # Recorded in this order: the auto-close at 500, then (logged late, dated 400) the
    # customer's reply that came before it, which withdrew the close.
    timeline = [
        ev("info_requested", 10),
        ev("sla_warning", 300, system=True),
        ev("closed", 500, system=True, close_reason="no_response", withdrawn=True),
        ev("customer_replied", 400),
        ev("auto_close_withdrawn", 501, system=True),
        ev("resolved", 520),
    ]
    res = replay(FACTS, timeline, with_close, T0 + 1000 * M).outcomes[Metric.RESOLUTION]
    # 10 minutes, paused from 10 to 400, then 400 to 520: 130 minutes, met.
    assert (res.outcome, res.elapsed, res.stopped_at) == (Outcome.MET, 130 * M, T0 + 520 * M)
    assert replay(FACTS, timeline, with_close, T0).skipped == 0
    # Without the withdrawal the close would stand (at 500), and the resolve cannot follow.
    standing = [replace(e, withdrawn=False) for e in timeline]
    result = replay(FACTS, standing, with_close, T0 + 1000 * M)
    assert result.skipped == 1
    assert result.outcomes[Metric.RESOLUTION].stopped_at == T0 + 500 * M
