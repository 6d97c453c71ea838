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
    EntryKind,
    charge,
    needs_authorization,
    round_half_up,
)
from app.domain.calendar import Calendar
from app.domain.entitlement import Billing

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
TUESDAY_10 = datetime(2026, 11, 10, 10, tzinfo=MEXICO)
TUESDAY_20 = datetime(2026, 11, 10, 20, tzinfo=MEXICO)


def _charge(
    kind: EntryKind,
    minutes: int,
    consultants: int = 1,
    at: datetime = TUESDAY_10,
    rules: Billing = RULES,
) -> int:
    return charge(
        kind=kind,
        minutes=minutes,
        consultants=consultants,
        occurred_at=at,
        rules=rules,
        calendar=SEED_004,
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
    )
    assert (c.charged_minutes, c.after_hours_minutes, c.multiplier) == (90, 60, Decimal("1.5"))


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
    )
    assert (
        minutes <= c.charged_minutes <= round_half_up(Fraction(minutes) * Fraction(str(multiplier)))
    )
    assert 0 <= c.after_hours_minutes <= minutes
    open_minutes = SEED_004.between(at, at + timedelta(minutes=minutes)) / timedelta(minutes=1)
    assert c.after_hours_minutes == round_half_up(Fraction(minutes) - Fraction(open_minutes))
