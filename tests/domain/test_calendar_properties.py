"""Property tests: the business-time engine against the brute-force oracle.

Random calendars (several intervals a day, boundaries biased to the hours where
clocks change, 24x7, holidays, extra holidays, closures) in zones with every
kind of transition (DST at 02:00, at midnight, half-hour DST, none), random
starts concentrated around those transitions and around holidays and closures,
random durations. Starts and durations carry seconds and microseconds half the
time; calendars are whole minutes, so the oracle answers exactly.

Run more examples with ``SLADESK_HYPOTHESIS_PROFILE=thorough`` (see conftest).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.domain.calendar import Calendar
from tests.domain.calendar_oracle import WEEKDAYS, Oracle

ZONES = (
    "America/Vancouver",  # 02:00 -> 03:00, 02:00 -> 01:00
    "Europe/Madrid",  # 02:00 -> 03:00, 03:00 -> 02:00
    "America/Mexico_City",  # no DST since 2022
    "Australia/Lord_Howe",  # 30-minute DST
    "Etc/GMT-1",  # fixed GMT+1
    "UTC",
    "America/Havana",  # 00:00 -> 01:00, 01:00 -> 00:00
    "America/Santiago",  # 24:00 -> 23:00 the day before, 00:00 -> 01:00
)
HOLIDAYS = (
    {"country": "CA", "subdivision": "BC"},
    {"country": "ES"},
    {"country": "ES", "subdivision": "MD"},
    {"country": "MX"},
    {"country": "AU", "subdivision": "NSW"},
    {"country": "CL"},
)
YEARS = range(2025, 2028)
# Wall-clock minutes where something happens in one of the zones above.
SPECIAL_MINUTES = (0, 30, 60, 90, 120, 150, 180, 210, 1380, 1410, 1440, 510, 540, 1080)


def profile(share: float = 1.0) -> hypothesis_settings:
    """The active profile (see tests/domain/conftest.py), optionally scaled."""
    name = "sladesk-domain-" + os.environ.get("SLADESK_HYPOTHESIS_PROFILE", "default")
    base = hypothesis_settings.get_profile(name)
    return hypothesis_settings(base, max_examples=max(10, round(base.max_examples * share)))


@cache
def transitions(key: str) -> tuple[datetime, ...]:
    """UTC instants where the zone's offset changes in YEARS (found by a plain scan)."""
    zone = ZoneInfo(key)
    found = []
    t = datetime(YEARS[0], 1, 1, tzinfo=UTC)
    end = datetime(YEARS[-1] + 1, 1, 1, tzinfo=UTC)
    previous = t.astimezone(zone).utcoffset()
    while t < end:
        t += timedelta(minutes=30)
        offset = t.astimezone(zone).utcoffset()
        if offset != previous:
            found.append(t)
            previous = offset
    return tuple(found)


@cache
def holiday_dates(country: str, subdivision: str | None) -> tuple[date, ...]:
    return tuple(sorted(holidays.country_holidays(country, subdiv=subdivision, years=list(YEARS))))


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# Strategies are built once: building them inside the composites costs more
# than the tests themselves.
_POINT = st.one_of(st.sampled_from(SPECIAL_MINUTES), st.integers(0, 1440))
_POINTS = st.lists(_POINT, max_size=6)
_BOOL = st.booleans()
_SCALE = 1_000_000
_FRACTION = st.integers(0, _SCALE)
_ZONE = st.sampled_from(ZONES)
_HOLIDAYS = st.one_of(st.none(), st.sampled_from(HOLIDAYS))
_ONE_IN_TWELVE = st.integers(0, 11)
_KIND = st.integers(0, 9)
_SUB_KIND = st.integers(0, 3)
_SECONDS = st.integers(0, 59)
_MICROSECONDS = st.integers(0, 59_999_999)
_ANY_MINUTE = st.integers(0, 3 * 365 * 1440)
_NEAR_MINUTE = st.one_of(st.integers(-180, 180), st.integers(-3 * 1440, 2 * 1440))
_EXTRA_DAYS = st.lists(st.integers(-2, 6), max_size=2, unique=True)
_CLOSURE_COUNT = st.sampled_from((0, 0, 1, 2))
_CLOSURE_OFFSET = st.integers(-1440, 5 * 1440)
_CLOSURE_LENGTH = st.integers(1, 3 * 1440)
_SHORT = st.integers(0, 180)


def day_hours(draw: st.DrawFn) -> list[str]:
    """Up to three intervals from up to six boundary points (sometimes touching)."""
    points = sorted(set(draw(_POINTS)))
    pairs = [[points[2 * i], points[2 * i + 1]] for i in range(len(points) // 2)]
    if len(pairs) >= 2 and draw(_BOOL):
        pairs[1][0] = pairs[0][1]  # touching intervals are allowed
    return [f"{clock(start)}-{clock(end)}" for start, end in pairs]


def weekly_hours(draw: st.DrawFn) -> Any:
    if draw(_ONE_IN_TWELVE) == 0:
        return "24x7"
    week = {}
    for day in WEEKDAYS:
        hours = day_hours(draw)
        if hours or draw(_BOOL):  # a closed day is either missing or []
            week[day] = hours
    if not any(week.values()):
        week["mon"] = ["09:00-17:00"]
    return week


def week_minutes(hours: Any) -> int:
    if hours == "24x7":
        return 7 * 1440
    total = 0
    for intervals in hours.values():
        for item in intervals:
            start, end = item.split("-")
            total += int(end[:2]) * 60 + int(end[3:]) - int(start[:2]) * 60 - int(start[3:])
    return total


def sub_minute(draw: st.DrawFn) -> timedelta:
    """Whole minutes half the time, else seconds and sometimes microseconds."""
    kind = draw(_SUB_KIND)
    if kind <= 1:
        return timedelta(0)
    if kind == 2:
        return timedelta(seconds=draw(_SECONDS))
    return timedelta(microseconds=draw(_MICROSECONDS))


@cache
def anchors(key: str, holiday_index: int | None) -> tuple[datetime, ...]:
    """Instants to start near: the zone's offset changes and the holidays' midnights."""
    found = list(transitions(key))
    if holiday_index is not None:
        spec = HOLIDAYS[holiday_index]
        zone = ZoneInfo(key)
        dates = holiday_dates(spec["country"], spec.get("subdivision"))
        found += [datetime.combine(day, datetime.min.time(), zone) for day in dates]
    return tuple(found)


@dataclass
class Scenario:
    spec: dict[str, Any]
    start: datetime
    duration: timedelta
    week_minutes: int


@st.composite
def scenarios(draw: st.DrawFn, max_weeks: float = 1.3) -> Scenario:
    key = draw(_ZONE)
    zone = ZoneInfo(key)
    hours = weekly_hours(draw)
    spec: dict[str, Any] = {"timezone": key, "weekly_hours": hours}
    holiday_spec = draw(_HOLIDAYS)
    if holiday_spec is not None:
        spec["holidays"] = holiday_spec

    # Where to start: near an offset change, a holiday, or anywhere.
    near = anchors(key, None if holiday_spec is None else HOLIDAYS.index(holiday_spec))
    if draw(_KIND) == 0 or not near:
        anchor = datetime(YEARS[0], 1, 1, tzinfo=UTC) + timedelta(minutes=draw(_ANY_MINUTE))
    else:
        anchor = near[draw(_FRACTION) % len(near)]
    start = anchor + timedelta(minutes=draw(_NEAR_MINUTE)) + sub_minute(draw)

    local_day = start.astimezone(zone).date()
    extra = draw(_EXTRA_DAYS)
    if extra:
        spec["extra_holidays"] = [(local_day + timedelta(days=n)).isoformat() for n in extra]
    closures = []
    for _ in range(draw(_CLOSURE_COUNT)):
        begin = start.replace(second=0, microsecond=0) + timedelta(minutes=draw(_CLOSURE_OFFSET))
        end = begin + timedelta(minutes=draw(_CLOSURE_LENGTH))
        closures.append(
            {
                "start": begin.astimezone(UTC).isoformat(),
                "end": end.astimezone(zone).isoformat(),
                "reason": "test",
            }
        )
    if closures:
        spec["closures"] = closures

    minutes = week_minutes(hours)
    if draw(_BOOL):
        duration = timedelta(minutes=draw(_SHORT))
    else:
        duration = timedelta(minutes=int(minutes * max_weeks) * draw(_FRACTION) // _SCALE)
    duration += sub_minute(draw)
    return Scenario(spec, start, duration, minutes)


_SPAN = st.integers(-600, 9 * 1440)
_LATER = st.integers(0, 3 * 1440)
_LONG_HOURS = st.integers(0, 24 * 7 * 60)


def is_utc(t: datetime) -> bool:
    return t.utcoffset() == timedelta(0)


# --------------------------------------------------------------------------- properties


@profile()
@given(scenarios())
def test_add_and_explain_match_the_oracle(s: Scenario) -> None:
    calendar = Calendar.from_spec(s.spec)
    oracle = Oracle(s.spec, s.start)
    due = calendar.add(s.start, s.duration)
    assert is_utc(due)
    pieces = calendar.explain(s.start, s.duration)
    expected = oracle.explain(s.start, s.duration)
    assert pieces == expected
    # (compare in UTC: a fold-sensitive local datetime never == another zone, PEP 495)
    assert due == (expected[-1][1] if expected else s.start.astimezone(UTC))
    assert sum((end - begin for begin, end in pieces), timedelta(0)) == s.duration
    # the inverse property
    assert calendar.between(s.start, due) == s.duration


@profile()
@given(scenarios(max_weeks=0.5), st.data())
def test_between_matches_the_oracle(s: Scenario, data: st.DataObject) -> None:
    calendar = Calendar.from_spec(s.spec)
    span = timedelta(minutes=data.draw(_SPAN)) + sub_minute(data.draw)
    a, b = s.start, s.start + span
    oracle = Oracle(s.spec, min(a, b))
    assert calendar.between(a, b) == oracle.between(a, b)
    if b > a:
        middle = a + (b - a) * data.draw(_FRACTION) / _SCALE
        assert calendar.between(a, middle) + calendar.between(middle, b) == calendar.between(a, b)


@profile()
@given(scenarios(max_weeks=0))
def test_is_open_and_next_open_match_the_oracle(s: Scenario) -> None:
    calendar = Calendar.from_spec(s.spec)
    oracle = Oracle(s.spec, s.start)
    assert calendar.is_open(s.start) == oracle.is_open(s.start)
    following = calendar.next_open(s.start)
    assert following == oracle.next_open(s.start)
    assert is_utc(following)
    assert calendar.is_open(following)
    assert (following == s.start.astimezone(UTC)) == calendar.is_open(s.start)
    assert calendar.between(s.start, following) == timedelta(0)


@profile()
@given(scenarios(max_weeks=40), st.data())
def test_monotonic_and_additive(s: Scenario, data: st.DataObject) -> None:
    """No oracle: long durations (weeks are skipped), checked by the algebra."""
    calendar = Calendar.from_spec(s.spec)
    a, d = s.start, s.duration
    due = calendar.add(a, d)
    assert calendar.between(a, due) == d
    split = d * data.draw(_FRACTION) // _SCALE
    assert calendar.add(calendar.add(a, split), d - split) == due
    assert calendar.add(a, split) <= due
    later = a.astimezone(UTC) + timedelta(minutes=data.draw(_LATER))
    assert calendar.add(later, d) >= due
    assert calendar.between(later, due) <= d
    assert calendar.between(a, due + timedelta(hours=1)) >= d


class _NoSkip(Calendar):
    """The same engine with week skipping switched off: it walks every day."""

    __slots__ = ()

    def _regular_days(self, ordinal: int) -> int:
        return 0


@profile(0.5)
@given(scenarios(max_weeks=60), st.data())
def test_week_skipping_changes_nothing(s: Scenario, data: st.DataObject) -> None:
    fast = Calendar.from_spec(s.spec)
    slow = _NoSkip.from_spec(s.spec)
    due = fast.add(s.start, s.duration)
    assert due == slow.add(s.start, s.duration)
    end = s.start + timedelta(hours=data.draw(_LONG_HOURS))
    assert fast.between(s.start, end) == slow.between(s.start, end)
    assert fast.between(s.start, due) == s.duration
