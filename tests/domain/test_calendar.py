"""Named cases for the business-time engine, computed by hand in the comments.

Seeds are the support policies in /work/shared/seeds ("seed 002" = 002_*.txt).
The random property tests against the brute-force oracle are in
test_calendar_properties.py.
"""

from __future__ import annotations

import ast
import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import app.domain.calendar as calendar_module
from app.domain.calendar import Calendar, CalendarSpecError
from tests.domain.calendar_oracle import Oracle

VANCOUVER = ZoneInfo("America/Vancouver")
MADRID = ZoneInfo("Europe/Madrid")
MEXICO = ZoneInfo("America/Mexico_City")
GMT_PLUS_1 = ZoneInfo("Etc/GMT-1")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")
SANTIAGO = ZoneInfo("America/Santiago")
HAVANA = ZoneInfo("America/Havana")

H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)
WEEKDAYS_ONLY = ("mon", "tue", "wed", "thu", "fri")


def hours(interval: str | list[str], days: tuple[str, ...] = WEEKDAYS_ONLY) -> dict[str, Any]:
    intervals = [interval] if isinstance(interval, str) else interval
    return {day: list(intervals) for day in days}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


SEED_002 = {  # Vitrium: Mon-Fri 12:00am-6:00pm Pacific, excluding Canadian or BC holidays
    "timezone": "America/Vancouver",
    "weekly_hours": hours("00:00-18:00"),
    "holidays": {"country": "CA", "subdivision": "BC"},
}
SEED_001 = {  # Vivvo: 9:00 AM to 6:00 PM GMT+1, Monday through Friday
    "timezone": "Etc/GMT-1",
    "weekly_hours": hours("09:00-18:00"),
}
SEED_004 = {  # Mon-Fri 8:30 am to 6:00 pm Mexico central time
    "timezone": "America/Mexico_City",
    "weekly_hours": hours("08:30-18:00"),
    "holidays": {"country": "MX"},
}
MADRID_ES = {
    "timezone": "Europe/Madrid",
    "weekly_hours": hours("09:00-18:00"),
    "holidays": {"country": "ES"},
}


@pytest.fixture(scope="module")
def seed_002() -> Calendar:
    return Calendar.from_spec(SEED_002)


# --------------------------------------------------------------------------- seed 002


def test_seed_002_eight_hours_from_friday_evening_cross_the_dst_weekend(seed_002: Calendar):
    # Fri 17:00-18:00 PST is 1 h; Sat, Sun closed (DST starts Sun 2026-03-08);
    # Mon 00:00 PDT + 7 h = 07:00 PDT = 14:00Z.
    start = datetime(2026, 3, 6, 17, tzinfo=VANCOUVER)
    due = seed_002.add(start, 8 * H)
    assert due == datetime(2026, 3, 9, 7, tzinfo=VANCOUVER) == utc(2026, 3, 9, 14)
    assert due.tzinfo is UTC
    assert seed_002.explain(start, 8 * H) == [
        (utc(2026, 3, 7, 1), utc(2026, 3, 7, 2)),
        (utc(2026, 3, 9, 7), utc(2026, 3, 9, 14)),
    ]
    assert seed_002.between(start, due) == 8 * H


def test_seed_002_bc_day_is_closed(seed_002: Calendar):
    assert not seed_002.is_open(datetime(2026, 8, 3, 10, tzinfo=VANCOUVER))
    assert not seed_002.is_business_day(date(2026, 8, 3))
    assert (date(2026, 8, 3), "British Columbia Day") in seed_002.holidays_in(2026)
    # Fri 2026-07-31 17:00-18:00 is 1 h; Mon 3 is BC Day; Tue 00:00 + 1 h.
    due = seed_002.add(datetime(2026, 7, 31, 17, tzinfo=VANCOUVER), 2 * H)
    assert due == datetime(2026, 8, 4, 1, tzinfo=VANCOUVER)


def test_seed_002_a_saturday_request_counts_from_monday_midnight(seed_002: Calendar):
    saturday_noon = datetime(2026, 3, 14, 12, tzinfo=VANCOUVER)
    monday = datetime(2026, 3, 16, 0, tzinfo=VANCOUVER)
    assert not seed_002.is_open(saturday_noon)
    assert seed_002.next_open(saturday_noon) == monday == utc(2026, 3, 16, 7)
    assert seed_002.add(saturday_noon, H) == monday + H
    assert seed_002.between(saturday_noon, monday + H) == H


def test_seed_002_tier_3_one_hour_before_closing(seed_002: Calendar):
    # Thu 17:30-18:00 is 30 min, Fri 00:00-00:30 the rest.
    start = datetime(2026, 3, 19, 17, 30, tzinfo=VANCOUVER)
    assert seed_002.add(start, H) == datetime(2026, 3, 20, 0, 30, tzinfo=VANCOUVER)


def test_seed_002_2000_business_hours_match_the_oracle(seed_002: Calendar):
    start = datetime(2026, 1, 5, 9, tzinfo=VANCOUVER)
    oracle = Oracle(SEED_002, start)
    due = seed_002.add(start, 2000 * H)
    assert due == oracle.add(start, 2000 * H)
    assert seed_002.between(start, due) == 2000 * H
    year_end = datetime(2027, 1, 1, tzinfo=VANCOUVER)
    assert seed_002.between(start, year_end) == oracle.between(start, year_end)


class _CountingCalendar(Calendar):
    __slots__ = ()
    computed = 0

    def _compute_day(self, ordinal: int) -> tuple[int, ...]:
        type(self).computed += 1
        return super()._compute_day(ordinal)


def test_long_durations_skip_whole_weeks():
    calendar = _CountingCalendar.from_spec(SEED_002)
    _CountingCalendar.computed = 0
    calendar.add(datetime(2026, 1, 5, 9, tzinfo=VANCOUVER), 2000 * H)  # ~ 160 days later
    # Only days near holidays and DST changes are looked at one by one.
    assert _CountingCalendar.computed < 60


# --------------------------------------------------------------------------- seed 001


def test_seed_001_24_business_hours_from_monday_morning():
    calendar = Calendar.from_spec(SEED_001)
    assert calendar.timezone == "Etc/GMT-1"
    # Mon 10:00-18:00 = 8 h, Tue 9 h (17 h), Wed 09:00 + 7 h = Wed 16:00 GMT+1.
    monday = datetime(2026, 1, 12, 10, tzinfo=GMT_PLUS_1)
    assert monday.utcoffset() == H  # Etc/GMT-1 is GMT+1
    assert calendar.add(monday, 24 * H) == datetime(2026, 1, 14, 16, tzinfo=GMT_PLUS_1)
    assert calendar.add(monday, 24 * H) == utc(2026, 1, 14, 15)
    # Premium: 12 h = Mon 8 h + Tue 09:00 + 4 h.
    assert calendar.add(monday, 12 * H) == datetime(2026, 1, 13, 13, tzinfo=GMT_PLUS_1)


def test_seed_001_second_precision():
    calendar = Calendar.from_spec(SEED_001)
    start = datetime(2026, 1, 12, 17, 59, 30, tzinfo=GMT_PLUS_1)
    # 30 s on Monday, 15 s on Tuesday.
    assert calendar.add(start, 45 * S) == datetime(2026, 1, 13, 9, 0, 15, tzinfo=GMT_PLUS_1)
    a = datetime(2026, 1, 12, 17, 59, 30, 250_000, tzinfo=GMT_PLUS_1)
    b = datetime(2026, 1, 13, 9, 0, 0, 500_000, tzinfo=GMT_PLUS_1)
    assert calendar.between(a, b) == timedelta(seconds=30, microseconds=250_000)
    # microseconds are kept, not truncated
    tick = datetime(2026, 1, 12, 10, 0, 0, 1, tzinfo=GMT_PLUS_1)
    assert calendar.add(tick, timedelta(microseconds=1)) == tick + timedelta(microseconds=1)
    assert calendar.between(tick, calendar.add(tick, 90 * M + 7 * S)) == 90 * M + 7 * S


def test_opening_boundaries_are_half_open():
    calendar = Calendar.from_spec(SEED_001)
    opening = datetime(2026, 1, 12, 9, tzinfo=GMT_PLUS_1)
    closing = datetime(2026, 1, 12, 18, tzinfo=GMT_PLUS_1)
    assert calendar.is_open(opening)
    assert not calendar.is_open(opening - timedelta(microseconds=1))
    assert calendar.is_open(closing - timedelta(microseconds=1))
    assert not calendar.is_open(closing)
    # a due time that ends exactly at closing is the closing instant itself
    assert calendar.add(opening, 9 * H) == closing
    assert calendar.next_open(closing) == opening + timedelta(days=1)


# --------------------------------------------------------------------------- seed 004


def test_seed_004_constitution_day_is_skipped():
    calendar = Calendar.from_spec(SEED_004)
    # Fri 16:00-18:00 = 2 h; Mon 2026-02-02 is Constitution Day; Tue 08:30 + 2 h.
    start = datetime(2026, 1, 30, 16, tzinfo=MEXICO)
    assert calendar.add(start, 4 * H) == datetime(2026, 2, 3, 10, 30, tzinfo=MEXICO)
    assert calendar.add(start, 4 * H) == utc(2026, 2, 3, 16, 30)  # CST all year since 2022


def test_seed_004_maintenance_36_hours():
    calendar = Calendar.from_spec(SEED_004)
    # 9.5 h a day: Mon 9.5, Tue 19, Wed 28.5, Thu 08:30 + 7.5 h = 16:00.
    start = datetime(2026, 1, 5, 8, 30, tzinfo=MEXICO)
    assert calendar.add(start, 36 * H) == datetime(2026, 1, 8, 16, tzinfo=MEXICO)


def test_seed_004_five_business_days_notice_skips_a_holiday():
    calendar = Calendar.from_spec(SEED_004)
    # Thu 12 -> Fri 13 (1), Mon 16 is Benito Juarez's birthday, Tue 17 (2), Wed 18 (3),
    # Thu 19 (4), Fri 20 (5).
    start = datetime(2026, 3, 12, 10, tzinfo=MEXICO)
    assert not calendar.is_business_day(date(2026, 3, 16))
    assert calendar.add_business_days(start, 5) == datetime(2026, 3, 20, 10, tzinfo=MEXICO)


# --------------------------------------------------------------------------- Madrid


def test_madrid_good_friday_is_closed():
    calendar = Calendar.from_spec(MADRID_ES)
    # Thu 16:00-18:00 = 2 h; Fri 2026-04-03 Good Friday; Mon (not a national holiday) 09:00 + 2.
    start = datetime(2026, 4, 2, 16, tzinfo=MADRID)
    assert calendar.add(start, 4 * H) == datetime(2026, 4, 6, 11, tzinfo=MADRID)
    assert calendar.add(start, 4 * H) == utc(2026, 4, 6, 9)
    names = dict(calendar.holidays_in(2026))
    assert names[date(2026, 4, 3)] == "Good Friday"
    assert names[date(2026, 1, 6)] == "Epiphany"
    assert date(2026, 5, 2) not in names  # Madrid Day is regional ...
    madrid = Calendar.from_spec({**MADRID_ES, "holidays": {"country": "ES", "subdivision": "MD"}})
    assert date(2026, 5, 2) in dict(madrid.holidays_in(2026))  # ... for subdivision MD


def test_lunch_break():
    calendar = Calendar.from_spec(
        {"timezone": "Europe/Madrid", "weekly_hours": hours(["14:00-18:00", "08:30-13:00"])}
    )
    start = datetime(2026, 2, 2, 12, tzinfo=MADRID)  # Monday, CET
    assert calendar.add(start, 2 * H) == datetime(2026, 2, 2, 15, tzinfo=MADRID)
    assert calendar.explain(start, 2 * H) == [
        (utc(2026, 2, 2, 11), utc(2026, 2, 2, 12)),
        (utc(2026, 2, 2, 13), utc(2026, 2, 2, 14)),
    ]
    lunch = datetime(2026, 2, 2, 13, 30, tzinfo=MADRID)
    assert not calendar.is_open(lunch)
    assert calendar.next_open(lunch) == datetime(2026, 2, 2, 14, tzinfo=MADRID)
    day = datetime(2026, 2, 2, tzinfo=MADRID)
    assert calendar.between(day, day + timedelta(days=1)) == 8.5 * H


def test_touching_intervals_are_merged():
    calendar = Calendar.from_spec(
        {"timezone": "UTC", "weekly_hours": {"mon": ["09:00-12:00", "12:00-18:00"]}}
    )
    start = utc(2026, 2, 2, 11)
    assert calendar.explain(start, 2 * H) == [(start, start + 2 * H)]


# --------------------------------------------------------------------------- DST rules


def one_day(calendar: Calendar, day: date, zone: ZoneInfo) -> timedelta:
    """Open time of a local date, from its midnight to the next one."""
    start = datetime.combine(day, datetime.min.time(), zone)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone)
    return calendar.between(start, end)


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        ("Europe/Madrid", date(2026, 3, 29), 23 * H),  # 02:00 -> 03:00
        ("Europe/Madrid", date(2026, 10, 25), 25 * H),  # 03:00 -> 02:00
        ("America/Vancouver", date(2026, 3, 8), 23 * H),
        ("America/Vancouver", date(2026, 11, 1), 25 * H),
        ("Australia/Lord_Howe", date(2026, 4, 5), 24.5 * H),  # 02:00 -> 01:30
        ("Australia/Lord_Howe", date(2026, 10, 4), 23.5 * H),  # 02:00 -> 02:30
        ("America/Havana", date(2026, 3, 8), 23 * H),  # 00:00 -> 01:00
        ("America/Santiago", date(2026, 4, 4), 25 * H),  # 24:00 -> 23:00 the same day
        ("America/Mexico_City", date(2026, 4, 5), 24 * H),  # no DST since 2022
        ("Etc/GMT-1", date(2026, 3, 29), 24 * H),
    ],
)
def test_a_24x7_day_lasts_as_long_as_the_wall_clock_says(zone: str, day: date, expected):
    calendar = Calendar.from_spec({"timezone": zone, "weekly_hours": "24x7"})
    assert calendar.is_always_open  # every instant is open, whatever the zone
    assert one_day(calendar, day, ZoneInfo(zone)) == expected


@pytest.mark.parametrize(
    ("interval", "day", "expected"),
    [
        # 00:00-18:00 is 17 h when clocks spring forward and 19 h when they fall back
        ("00:00-18:00", date(2026, 3, 8), 17 * H),
        ("00:00-18:00", date(2026, 11, 1), 19 * H),
        # a boundary in the gap (02:00-03:00) falls on the transition
        ("02:30-03:00", date(2026, 3, 8), 0 * H),
        ("02:30-04:00", date(2026, 3, 8), 1 * H),
        ("00:00-02:30", date(2026, 3, 8), 2 * H),
        # fall back (01:00-02:00 happens twice): an interval runs from the first time
        # the clock shows its start to the first time it shows its end
        ("01:00-02:00", date(2026, 11, 1), 2 * H),
        ("01:15-01:45", date(2026, 11, 1), 30 * M),
        ("01:30-05:00", date(2026, 11, 1), 4.5 * H),
        ("00:00-01:30", date(2026, 11, 1), 1.5 * H),
    ],
)
def test_vancouver_sunday_intervals_on_dst_days(interval: str, day: date, expected):
    calendar = Calendar.from_spec(
        {"timezone": "America/Vancouver", "weekly_hours": {"sun": [interval]}}
    )
    assert one_day(calendar, day, VANCOUVER) == expected
    oracle = Oracle(
        {"timezone": "America/Vancouver", "weekly_hours": {"sun": [interval]}},
        datetime.combine(day, datetime.min.time(), VANCOUVER),
    )
    assert one_day(calendar, day, VANCOUVER) == one_day(oracle, day, VANCOUVER)  # type: ignore[arg-type]


def test_the_repeated_hour_keeps_the_state_from_before_the_clocks_went_back():
    # 2026-11-01: 01:59:59 PDT is followed by 01:00:00 PST (09:00Z).
    late = Calendar.from_spec(
        {"timezone": "America/Vancouver", "weekly_hours": {"sun": ["01:30-05:00"]}}
    )
    early = Calendar.from_spec(
        {"timezone": "America/Vancouver", "weekly_hours": {"sun": ["01:15-01:45"]}}
    )
    second_0110 = utc(2026, 11, 1, 9, 10)  # 01:10 PST, the second 01:10
    second_0120 = utc(2026, 11, 1, 9, 20)
    second = datetime(2026, 11, 1, 1, 10, fold=1, tzinfo=VANCOUVER)
    assert second.astimezone(UTC) == second_0110
    assert late.is_open(second_0110)  # opened at the first 01:30 and stays open
    assert not early.is_open(second_0120)  # closed at the first 01:45
    assert early.explain(datetime(2026, 11, 1, tzinfo=VANCOUVER), 30 * M) == [
        (utc(2026, 11, 1, 8, 15), utc(2026, 11, 1, 8, 45))
    ]
    assert late.explain(datetime(2026, 11, 1, tzinfo=VANCOUVER), 4.5 * H) == [
        (utc(2026, 11, 1, 8, 30), utc(2026, 11, 1, 13))
    ]


def test_lord_howe_half_hour_dst_boundaries():
    gap = Calendar.from_spec(
        {"timezone": "Australia/Lord_Howe", "weekly_hours": {"sun": ["02:00-03:00"]}}
    )
    # 2026-10-04 02:00 -> 02:30: the interval opens at the jump (15:30Z) for 30 min.
    assert one_day(gap, date(2026, 10, 4), LORD_HOWE) == 30 * M
    assert gap.next_open(datetime(2026, 10, 4, tzinfo=LORD_HOWE)) == utc(2026, 10, 3, 15, 30)
    repeat = Calendar.from_spec(
        {"timezone": "Australia/Lord_Howe", "weekly_hours": {"sun": ["01:30-02:00"]}}
    )
    # 2026-04-05 02:00 -> 01:30: 01:30-02:00 happens twice, the interval spans both.
    assert one_day(repeat, date(2026, 4, 5), LORD_HOWE) == H


def test_midnight_transitions():
    # Santiago 2026-04-04: 24:00 (-03) -> 23:00 (-04). Saturday 22:00-24:00 runs from
    # 22:00 -03 (01:00Z) until the clock first shows 24:00, at 04:00Z: 3 h.
    santiago = Calendar.from_spec(
        {
            "timezone": "America/Santiago",
            "weekly_hours": {"sat": ["22:00-24:00"], "sun": ["00:00-01:00"]},
        }
    )
    saturday = datetime(2026, 4, 4, 12, tzinfo=SANTIAGO)
    assert santiago.explain(saturday, 4 * H) == [(utc(2026, 4, 5, 1), utc(2026, 4, 5, 5))]
    # Havana 2026-03-08: 00:00 -> 01:00. Sunday 00:00-02:00 opens at the jump (05:00Z).
    havana = Calendar.from_spec(
        {
            "timezone": "America/Havana",
            "weekly_hours": {"sat": ["23:00-24:00"], "sun": ["00:00-02:00"]},
        }
    )
    assert havana.explain(datetime(2026, 3, 7, 12, tzinfo=HAVANA), 2 * H) == [
        (utc(2026, 3, 8, 4), utc(2026, 3, 8, 6))
    ]


# --------------------------------------------------------------------------- closures


SEED_002_WITH_CLOSURE = {
    **SEED_002,
    "extra_holidays": ["2026-12-24"],
    "closures": [
        {
            "start": "2026-01-15T17:00:00Z",
            "end": "2026-01-16T20:00:00Z",
            "reason": "office closed: snow",
        }
    ],
}


def test_a_closure_closes_instants_regardless_of_the_weekly_hours():
    calendar = Calendar.from_spec(SEED_002_WITH_CLOSURE)
    # The closure runs Thu 09:00 PST to Fri 12:00 PST.
    start = datetime(2026, 1, 15, 8, tzinfo=VANCOUVER)
    assert calendar.add(start, 2 * H) == datetime(2026, 1, 16, 13, tzinfo=VANCOUVER)
    assert calendar.explain(start, 2 * H) == [
        (utc(2026, 1, 15, 16), utc(2026, 1, 15, 17)),
        (utc(2026, 1, 16, 20), utc(2026, 1, 16, 21)),
    ]
    thursday_ten = datetime(2026, 1, 15, 10, tzinfo=VANCOUVER)
    assert not calendar.is_open(thursday_ten)
    assert calendar.next_open(thursday_ten) == utc(2026, 1, 16, 20)
    thursday = datetime(2026, 1, 15, tzinfo=VANCOUVER)
    assert calendar.between(thursday, thursday + 2 * timedelta(days=1)) == 9 * H + 6 * H
    assert calendar.is_business_day(date(2026, 1, 15))  # a closure is not a holiday


def test_a_long_closure_is_jumped_not_walked():
    calendar = _CountingCalendar.from_spec(
        {
            **MADRID_ES,
            "closures": [
                {"start": "2026-06-01T00:00:00+02:00", "end": "2026-09-01T00:00:00+02:00"}
            ],
        }
    )
    _CountingCalendar.computed = 0
    june = datetime(2026, 6, 10, 12, tzinfo=MADRID)
    assert calendar.next_open(june) == datetime(2026, 9, 1, 9, tzinfo=MADRID)  # a Tuesday
    # Fri 2026-05-29 17:00-18:00, then the summer closure, then Tue 09:00 + 1 h.
    friday = datetime(2026, 5, 29, 17, tzinfo=MADRID)
    assert calendar.add(friday, 2 * H) == datetime(2026, 9, 1, 10, tzinfo=MADRID)
    assert calendar.between(friday, datetime(2026, 9, 2, tzinfo=MADRID)) == 10 * H
    assert _CountingCalendar.computed < 20


def test_extra_holidays():
    calendar = Calendar.from_spec({**SEED_002, "extra_holidays": ["2026-12-24", "2026-12-25"]})
    assert not calendar.is_business_day(date(2026, 12, 24))
    listed = calendar.holidays_in(2026)
    assert (date(2026, 12, 24), "extra holiday") in listed
    # a date that is also a public holiday is listed once, with its public name
    assert [name for day, name in listed if day == date(2026, 12, 25)] == ["Christmas Day"]
    assert listed == sorted(listed)
    assert calendar.holidays_in(2027)[0] == (date(2027, 1, 1), "New Year's Day")
    assert Calendar.from_spec(SEED_001).holidays_in(2026) == []


def test_holidays_and_closures_apply_to_a_24x7_spec():
    calendar = Calendar.from_spec(
        {"timezone": "Europe/Madrid", "weekly_hours": "24x7", "holidays": {"country": "ES"}}
    )
    assert not calendar.is_always_open
    assert one_day(calendar, date(2026, 1, 6), MADRID) == timedelta(0)  # Epiphany
    assert one_day(calendar, date(2026, 1, 7), MADRID) == 24 * H
    closed = Calendar.from_spec(
        {
            "timezone": "UTC",
            "weekly_hours": "24x7",
            "closures": [{"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T12:00:00Z"}],
        }
    )
    assert not closed.is_always_open
    assert closed.add(utc(2026, 1, 1, 9), 2 * H) == utc(2026, 1, 1, 13)


# --------------------------------------------------------------------------- always open


def test_always_open():
    calendar = Calendar.always_open()
    assert calendar.is_always_open
    assert calendar.timezone == "UTC"
    start = datetime(2026, 3, 8, 1, 30, tzinfo=VANCOUVER).astimezone(UTC)  # UTC arithmetic
    assert calendar.add(start, 5 * H) == start + 5 * H
    assert calendar.between(start, start + 5 * H) == 5 * H
    assert calendar.between(start, start - H) == timedelta(0)
    assert calendar.is_open(start)
    assert calendar.next_open(start) == start
    assert calendar.explain(start, H) == [(start, start + H)]
    assert calendar.add_business_days(start, 3) == start + timedelta(days=3)
    assert calendar.is_business_day(date(2026, 12, 25))
    assert calendar.holidays_in(2026) == []
    spec_24x7 = Calendar.from_spec({"timezone": "UTC", "weekly_hours": "24x7"})
    assert spec_24x7.is_always_open
    assert spec_24x7.add(start, 5 * H) == start + 5 * H


def test_zero_duration_is_the_start_itself_even_when_closed(seed_002: Calendar):
    saturday = datetime(2026, 3, 14, 12, 0, 0, 123_456, tzinfo=VANCOUVER)
    assert seed_002.add(saturday, timedelta(0)) == saturday
    assert seed_002.add(saturday, timedelta(0)).tzinfo is UTC
    assert seed_002.explain(saturday, timedelta(0)) == []
    assert seed_002.between(saturday, saturday) == timedelta(0)
    assert seed_002.between(saturday + H, saturday) == timedelta(0)


def test_results_are_utc_even_for_an_ambiguous_local_start():
    calendar = Calendar.from_spec({"timezone": "America/Vancouver", "weekly_hours": "24x7"})
    second = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=VANCOUVER)  # 01:30 PST = 09:30Z
    due = calendar.add(second, timedelta(0))
    assert due.tzinfo is UTC
    assert due == utc(2026, 11, 1, 9, 30) == second.astimezone(UTC)
    # Python never finds a fold-sensitive local time equal to one in another zone
    # (PEP 495), so compare instants in UTC.
    assert (due == second) is False
    assert calendar.add(second, H) == utc(2026, 11, 1, 10, 30)


# --------------------------------------------------------------------------- business days


def test_add_business_days_over_a_weekend_and_a_holiday(seed_002: Calendar):
    seed_001 = Calendar.from_spec(SEED_001)
    friday = datetime(2026, 1, 16, 10, tzinfo=GMT_PLUS_1)
    assert seed_001.add_business_days(friday, 1) == datetime(2026, 1, 19, 10, tzinfo=GMT_PLUS_1)
    assert seed_001.add_business_days(friday, 5) == datetime(2026, 1, 23, 10, tzinfo=GMT_PLUS_1)
    # Thu 2026-07-30 -> Fri 31 (1), Mon Aug 3 is BC Day, Tue 4 (2)
    thursday = datetime(2026, 7, 30, 10, tzinfo=VANCOUVER)
    assert seed_002.add_business_days(thursday, 2) == datetime(2026, 8, 4, 10, tzinfo=VANCOUVER)
    # from a Saturday, the first business day is Monday
    saturday = datetime(2026, 3, 14, 20, tzinfo=VANCOUVER)
    assert seed_002.add_business_days(saturday, 1) == datetime(2026, 3, 16, 20, tzinfo=VANCOUVER)
    assert seed_002.add_business_days(saturday, 0) == saturday
    with pytest.raises(ValueError):
        seed_002.add_business_days(saturday, -1)


def test_add_business_days_across_dst_keeps_the_wall_clock(seed_002: Calendar):
    friday = datetime(2026, 3, 6, 10, tzinfo=VANCOUVER)  # PST
    assert seed_002.add_business_days(friday, 1) == datetime(2026, 3, 9, 10, tzinfo=VANCOUVER)
    assert seed_002.add_business_days(friday, 1) == utc(2026, 3, 9, 17)  # PDT


def test_add_business_days_moves_a_missing_wall_time_past_the_gap():
    calendar = Calendar.from_spec(
        {"timezone": "Europe/Madrid", "weekly_hours": hours("09:00-18:00", ("sat", "sun"))}
    )
    # Sun 2026-03-29 02:30 does not exist (02:00 -> 03:00): 03:30 CEST.
    saturday = datetime(2026, 3, 28, 2, 30, tzinfo=MADRID)
    assert calendar.add_business_days(saturday, 1) == utc(2026, 3, 29, 1, 30)
    # Sun 2026-10-25 02:30 happens twice: the first one (CEST).
    autumn = datetime(2026, 10, 24, 2, 30, tzinfo=MADRID)
    assert calendar.add_business_days(autumn, 1) == utc(2026, 10, 25, 0, 30)


def test_many_business_days_equal_one_at_a_time(seed_002: Calendar):
    start = datetime(2026, 1, 7, 10, tzinfo=VANCOUVER)
    stepped = start
    for _ in range(300):
        stepped = seed_002.add_business_days(stepped, 1)
    assert seed_002.add_business_days(start, 300) == stepped


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.add(datetime(2026, 1, 5, 9), H),
        lambda c: c.between(datetime(2026, 1, 5, 9), utc(2026, 1, 6)),
        lambda c: c.between(utc(2026, 1, 5), datetime(2026, 1, 6, 9)),
        lambda c: c.is_open(datetime(2026, 1, 5, 9)),
        lambda c: c.next_open(datetime(2026, 1, 5, 9)),
        lambda c: c.explain(datetime(2026, 1, 5, 9), H),
        lambda c: c.add_business_days(datetime(2026, 1, 5, 9), 1),
    ],
)
@pytest.mark.parametrize("calendar", [Calendar.always_open(), Calendar.from_spec(SEED_002)])
def test_naive_datetimes_raise_value_error(call: Any, calendar: Calendar):
    with pytest.raises(ValueError, match="timezone-aware"):
        call(calendar)


def test_negative_durations_raise_value_error(seed_002: Calendar):
    with pytest.raises(ValueError, match="negative"):
        seed_002.add(utc(2026, 1, 5), -H)
    with pytest.raises(ValueError, match="negative"):
        seed_002.explain(utc(2026, 1, 5), -S)


def _with(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(SEED_002)
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (_with(timezone="Mars/Olympus_Mons"), "timezone"),
        (_with(timezone="America/vancouver"), "timezone"),
        (_with(timezone=None), "timezone"),
        (_with(timezone=7), "timezone"),
        (_with(weekly_hours=None), "weekly_hours"),
        (_with(weekly_hours="24/7"), "weekly_hours"),
        (_with(weekly_hours={}), "weekly_hours"),
        (_with(weekly_hours={"mon": [], "sat": []}), "weekly_hours"),
        (_with(weekly_hours={"monday": ["09:00-18:00"]}), "weekly_hours.monday"),
        (_with(weekly_hours={"mon": "09:00-18:00"}), "weekly_hours.mon"),
        (_with(weekly_hours={"mon": ["9:00-18:00"]}), "weekly_hours.mon[0]"),
        (_with(weekly_hours={"mon": ["09:00-18:00", "18:00-09:00"]}), "weekly_hours.mon[1]"),
        (_with(weekly_hours={"mon": ["09:00-09:00"]}), "weekly_hours.mon[0]"),
        (_with(weekly_hours={"mon": ["09:00-13:00", "12:00-18:00"]}), "weekly_hours.mon[1]"),
        (_with(weekly_hours={"tue": ["12:00-18:00", "09:00-12:30"]}), "weekly_hours.tue[1]"),
        (_with(weekly_hours={"mon": ["09:60-10:00"]}), "weekly_hours.mon[0]"),
        (_with(weekly_hours={"mon": ["24:00-24:00"]}), "weekly_hours.mon[0]"),
        (_with(weekly_hours={"mon": ["09:00-24:30"]}), "weekly_hours.mon[0]"),
        (_with(weekly_hours={"mon": [900]}), "weekly_hours.mon[0]"),
        (_with(holidays={"country": "ZZ"}), "holidays.country"),
        (_with(holidays={"subdivision": "BC"}), "holidays.country"),
        (_with(holidays={"country": "CA", "subdivision": "XX"}), "holidays.subdivision"),
        (_with(holidays={"country": "MX", "subdivision": "BC"}), "holidays.subdivision"),
        (_with(holidays={"country": "CA", "region": "BC"}), "holidays.region"),
        (_with(holidays="CA"), "holidays"),
        (_with(extra_holidays=["2026-12-24", "2026-13-01"]), "extra_holidays[1]"),
        (_with(extra_holidays=["24/12/2026"]), "extra_holidays[0]"),
        (_with(extra_holidays=["20261224"]), "extra_holidays[0]"),
        (_with(extra_holidays="2026-12-24"), "extra_holidays"),
        (
            _with(closures=[{"start": "2026-01-16T20:00:00Z", "end": "2026-01-15T17:00:00Z"}]),
            "closures[0].end",
        ),
        (
            _with(closures=[{"start": "2026-01-15T17:00:00Z", "end": "2026-01-15T17:00:00Z"}]),
            "closures[0].end",
        ),
        (
            _with(closures=[{"start": "2026-01-15T17:00:00", "end": "2026-01-16T20:00:00Z"}]),
            "closures[0].start",
        ),
        (
            _with(
                closures=[
                    {"start": "2026-01-15T17:00:00Z", "end": "2026-01-16T20:00:00Z"},
                    {"start": "tomorrow", "end": "2026-01-16T20:00:00Z"},
                ]
            ),
            "closures[1].start",
        ),
        (_with(closures=[{"start": "2026-01-15T17:00:00Z"}]), "closures[0].end"),
        (
            _with(
                closures=[
                    {"start": "2026-01-15T17:00:00Z", "end": "2026-01-16T20:00:00Z", "why": "x"}
                ]
            ),
            "closures[0].why",
        ),
        (_with(closures=["snow"]), "closures[0]"),
        (_with(hours={"mon": ["09:00-18:00"]}), "hours"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], field: str):
    with pytest.raises(CalendarSpecError) as raised:
        Calendar.from_spec(spec)
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)
    assert len(raised.value.message) > 10
    assert str(raised.value).startswith(f"{field}: ")


def test_spec_that_is_not_an_object():
    with pytest.raises(CalendarSpecError):
        Calendar.from_spec(["UTC"])  # type: ignore[arg-type]


def test_lenient_but_unambiguous_spec_forms():
    calendar = Calendar.from_spec(
        {
            "timezone": "America/Vancouver",
            "weekly_hours": {"mon": ["14:00-18:00", "00:00-12:00"], "sun": []},
            "holidays": {
                "country": "ca",
                "subdivision": "bc",
            },
            "extra_holidays": [],
            "closures": [],
        }
    )
    assert calendar.timezone == "America/Vancouver"
    assert not calendar.is_business_day(date(2026, 8, 3))  # BC Day, from "ca"/"bc"
    assert not calendar.is_business_day(date(2026, 3, 8))  # Sunday: no hours
    with pytest.raises(TypeError):
        calendar.is_business_day(datetime(2026, 8, 4, tzinfo=UTC))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- purity


def test_the_calendar_module_imports_only_the_standard_library_and_holidays():
    tree = ast.parse(Path(calendar_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    allowed = {
        "__future__",
        "bisect",
        "collections",
        "datetime",
        "functools",
        "re",
        "typing",
        "zoneinfo",
        "holidays",
    }
    assert imported <= allowed


def test_per_instance_caches_are_bounded():
    calendar = Calendar.from_spec(SEED_002)
    start = datetime(2000, 1, 3, tzinfo=VANCOUVER)
    calendar.explain(start, 10 * 52 * 90 * H)  # ten years, day by day
    calendar.explain(start + timedelta(days=3700), 10 * 52 * 90 * H)
    assert len(calendar._day_cache) <= calendar_module._DAY_CACHE_SIZE
    assert len(calendar._year_cache) <= calendar_module._YEAR_CACHE_SIZE
