"""Seed 004's billing rules computed by hand (seed 004 = /work/shared/seeds/004_*.txt)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.billing import (
    AfterHoursNotAllowed,
    AfterHoursNotRequested,
    EntryKind,
    RequestWindow,
    charge,
    needs_authorization,
    round_half_up,
    within_hours,
)
from app.domain.calendar import Calendar
from app.domain.entitlement import Billing, UnrequestedAfterHours

MEXICO = ZoneInfo("America/Mexico_City")
WEEKDAY = ["08:30-18:00"]
SEED_004 = Calendar.from_spec(
    {
        "timezone": "America/Mexico_City",
        "weekly_hours": {d: WEEKDAY for d in ("mon", "tue", "wed", "thu", "fri")},
    }
)
RULES = Billing()  # 15-min follow-ups, sessions per consultant, after hours not allowed
AFTER_OK = Billing(after_hours_allowed=True, after_hours_multiplier=1.5)
REFUSING = Billing(
    after_hours_allowed=True,
    after_hours_multiplier=1.5,
    after_hours_unrequested=UnrequestedAfterHours.REFUSE,
)
TUESDAY_10 = datetime(2026, 11, 10, 10, tzinfo=MEXICO)
TUESDAY_20 = datetime(2026, 11, 10, 20, tzinfo=MEXICO)
# The client asked for after-hours attention the whole week (seed 004: in advance).
WEEK = (
    RequestWindow(
        datetime(2026, 11, 2, tzinfo=MEXICO), datetime(2026, 11, 23, tzinfo=MEXICO), "week"
    ),
)


def _hm(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=MEXICO)


def _charge(
    kind: EntryKind,
    minutes: int,
    consultants: int = 1,
    at: datetime = TUESDAY_10,
    rules: Billing = RULES,
    requests: tuple[RequestWindow, ...] = WEEK,
) -> int:
    return charge(
        kind=kind,
        minutes=minutes,
        consultants=consultants,
        occurred_at=at,
        rules=rules,
        calendar=SEED_004,
        requests=requests,
    ).charged_minutes


def test_three_follow_ups_are_45_minutes_whatever_their_length() -> None:
    assert sum(_charge(EntryKind.follow_up, m) for m in (1, 15, 240)) == 45


def test_two_hour_session_with_three_consultants_is_six_hours() -> None:
    assert _charge(EntryKind.session, 120, consultants=3) == 360
    assert _charge(EntryKind.session, 120, 3, rules=Billing(sessions_per_consultant=False)) == 120


def test_work_is_charged_as_entered() -> None:
    assert _charge(EntryKind.work, 37, consultants=4) == 37


def test_an_after_hours_hour_at_1_5_is_90_minutes() -> None:
    c = charge(
        kind=EntryKind.work,
        minutes=60,
        consultants=1,
        occurred_at=TUESDAY_20,
        rules=AFTER_OK,
        calendar=SEED_004,
        requests=WEEK,
    )
    assert (c.charged_minutes, c.after_hours_minutes, c.multiplier) == (90, 60, Decimal("1.5"))
    assert (c.unrequested_minutes, c.request) == (0, "week")


def test_after_hours_refused_when_not_allowed() -> None:
    with pytest.raises(AfterHoursNotAllowed):
        _charge(EntryKind.work, 60, at=TUESDAY_20)
    with pytest.raises(AfterHoursNotAllowed):
        _charge(EntryKind.follow_up, 0, at=TUESDAY_20)


def test_an_entry_across_closing_time_is_split() -> None:
    # 17:30-18:30: 30 min open + 30 min after hours x 1.5 = 75; session x 2 consultants = 150.
    at = datetime(2026, 11, 10, 17, 30, tzinfo=MEXICO)
    assert _charge(EntryKind.work, 60, at=at, rules=AFTER_OK) == 75
    c = charge(
        kind=EntryKind.session,
        minutes=60,
        consultants=2,
        occurred_at=at,
        rules=AFTER_OK,
        calendar=SEED_004,
        requests=WEEK,
    )
    assert (c.charged_minutes, c.after_hours_minutes) == (150, 60)


def test_after_hours_follow_up_is_multiplied() -> None:
    assert _charge(EntryKind.follow_up, 5, at=TUESDAY_20, rules=AFTER_OK) == 23  # 22.5 -> 23


def test_rounding_is_half_up() -> None:
    assert round_half_up(Fraction(45, 2)) == 23
    assert round_half_up(Fraction(89, 4)) == 22
    assert round_half_up(Fraction(0)) == 0


def test_estimate_check() -> None:
    assert not needs_authorization(estimate_minutes=None, charged_so_far=10_000, entry_minutes=1)
    assert not needs_authorization(estimate_minutes=60, charged_so_far=45, entry_minutes=15)
    assert needs_authorization(estimate_minutes=60, charged_so_far=45, entry_minutes=16)


@given(
    minutes=st.integers(0, 3000),
    start=st.integers(0, 60 * 24 * 14),
    multiplier=st.sampled_from([1.0, 1.25, 1.5, 2.0]),
)
def test_charge_is_between_base_and_base_times_multiplier(
    minutes: int, start: int, multiplier: float
) -> None:
    at = datetime(2026, 11, 2, tzinfo=MEXICO) + timedelta(minutes=start)
    rules = Billing(after_hours_allowed=True, after_hours_multiplier=multiplier)
    c = charge(
        kind=EntryKind.work,
        minutes=minutes,
        consultants=1,
        occurred_at=at,
        rules=rules,
        calendar=SEED_004,
        requests=WEEK,
    )
    assert (
        minutes <= c.charged_minutes <= round_half_up(Fraction(minutes) * Fraction(str(multiplier)))
    )
    assert 0 <= c.after_hours_minutes <= minutes
    open_minutes = SEED_004.between(at, at + timedelta(minutes=minutes)) / timedelta(minutes=1)
    assert c.after_hours_minutes == round_half_up(Fraction(minutes) - Fraction(open_minutes))


# ------------------------------------------------------------- after hours as agreed


def _c(
    kind: EntryKind,
    minutes: int,
    at: datetime,
    requests: tuple[RequestWindow, ...],
    rules: Billing = AFTER_OK,
) -> tuple[int, int, int, Decimal, object]:
    c = charge(
        kind=kind,
        minutes=minutes,
        consultants=1,
        occurred_at=at,
        rules=rules,
        calendar=SEED_004,
        requests=requests,
    )
    return (
        c.charged_minutes,
        c.after_hours_minutes,
        c.unrequested_minutes,
        c.multiplier,
        c.request,
    )


EVENING = RequestWindow(_hm(10, 18), _hm(10, 20), "evening")  # Tuesday 18:00-20:00


def test_without_a_request_after_hours_time_is_charged_as_business_time() -> None:
    assert _c(EntryKind.work, 60, TUESDAY_20, ()) == (60, 60, 60, Decimal(1), None)
    assert _c(EntryKind.follow_up, 0, TUESDAY_20, ()) == (15, 15, 15, Decimal(1), None)


def test_only_the_part_inside_the_window_is_multiplied() -> None:
    # 19:00-21:00: 60 inside (x 1.5 = 90) + 60 outside (60) = 150.
    assert _c(EntryKind.work, 120, _hm(10, 19), (EVENING,)) == (
        150, 120, 60, Decimal("1.5"), "evening"
    )  # fmt: skip
    # 17:00-19:00: 60 in business hours + 60 after hours inside the window = 150.
    assert _c(EntryKind.work, 120, _hm(10, 17), (EVENING,)) == (
        150, 60, 0, Decimal("1.5"), "evening"
    )  # fmt: skip
    # A window over business hours multiplies nothing: business time is business time.
    day = RequestWindow(_hm(10, 9), _hm(10, 12), "day")
    assert _c(EntryKind.work, 60, _hm(10, 10), (day,)) == (60, 0, 0, Decimal(1), None)
    # A follow-up counts at its instant: inside [start, end), not at the end.
    assert _c(EntryKind.follow_up, 0, _hm(10, 19, 59), (EVENING,))[3:] == (
        Decimal("1.5"),
        "evening",
    )
    assert _c(EntryKind.follow_up, 0, _hm(10, 20), (EVENING,))[3:] == (Decimal(1), None)


def test_overlapping_windows_count_once_and_the_largest_share_is_cited() -> None:
    late = RequestWindow(_hm(10, 19), _hm(10, 23), "late")  # overlaps EVENING 19:00-20:00
    # 18:00-22:00 after hours, 240 minutes, all covered by the union: x 1.5 = 360. "late"
    # covers 180 of them, "evening" 120.
    c = _c(EntryKind.work, 240, _hm(10, 18), (EVENING, late))
    assert c == (360, 240, 0, Decimal("1.5"), "late")
    # On a tie the first given wins (the service lists the ticket's own requests first).
    twin = RequestWindow(_hm(10, 18), _hm(10, 20), "twin")
    assert _c(EntryKind.work, 120, _hm(10, 18), (EVENING, twin))[4] == "evening"


def test_a_plan_may_refuse_unrequested_after_hours_time() -> None:
    with pytest.raises(AfterHoursNotRequested) as refused:
        _c(EntryKind.work, 120, _hm(10, 19), (EVENING,), REFUSING)
    assert refused.value.unrequested_minutes == 60
    with pytest.raises(AfterHoursNotRequested):
        _c(EntryKind.follow_up, 0, TUESDAY_20, (), REFUSING)
    assert _c(EntryKind.work, 60, _hm(10, 18), (EVENING,), REFUSING)[0] == 90
    assert _c(EntryKind.work, 60, TUESDAY_10, (), REFUSING)[0] == 60  # business hours
    # A plan without after-hours work refuses first, request or not.
    with pytest.raises(AfterHoursNotAllowed):
        _c(EntryKind.work, 60, _hm(10, 18), (EVENING,), RULES)


def test_within_hours() -> None:
    assert within_hours(kind=EntryKind.work, minutes=60, occurred_at=TUESDAY_10, calendar=SEED_004)
    assert not within_hours(
        kind=EntryKind.work, minutes=60, occurred_at=_hm(10, 17, 30), calendar=SEED_004
    )
    assert not within_hours(
        kind=EntryKind.follow_up, minutes=0, occurred_at=TUESDAY_20, calendar=SEED_004
    )
    assert within_hours(kind=EntryKind.work, minutes=0, occurred_at=TUESDAY_20, calendar=SEED_004)


@given(
    minutes=st.integers(1, 1440),
    start=st.integers(0, 60 * 24 * 7),
    windows=st.lists(st.tuples(st.integers(0, 60 * 24 * 8), st.integers(1, 600)), max_size=4),
)
def test_requested_minutes_match_a_minute_by_minute_count(
    minutes: int, start: int, windows: list[tuple[int, int]]
) -> None:
    """The oracle: walk the entry minute by minute (whole-minute instants keep it exact)."""
    base = datetime(2026, 11, 2, tzinfo=MEXICO)
    at = base + timedelta(minutes=start)
    requests = tuple(
        RequestWindow(base + timedelta(minutes=a), base + timedelta(minutes=a + n), i)
        for i, (a, n) in enumerate(windows)
    )
    c = charge(
        kind=EntryKind.work, minutes=minutes, consultants=1, occurred_at=at,
        rules=AFTER_OK, calendar=SEED_004, requests=requests,
    )  # fmt: skip
    closed = requested = 0
    for i in range(minutes):
        t = at + timedelta(minutes=i)
        if not SEED_004.is_open(t):
            closed += 1
            requested += any(w.starts_at <= t < w.ends_at for w in requests)
    assert c.after_hours_minutes == closed
    assert c.unrequested_minutes == closed - requested
    assert c.charged_minutes == round_half_up(
        Fraction(minutes - requested) + Fraction(requested) * Fraction(3, 2)
    )
    assert (c.request is None) == (requested == 0)
