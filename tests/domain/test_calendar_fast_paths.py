"""The calendar's fast paths (offset tables, template days) agree with the exact ones.

``Calendar._compute_day`` shifts a weekday's template by one UTC offset when the whole day
lies in a stretch of constant offset, and ``_local_ordinal`` finds offsets in per-year
tables: both must give exactly what the first-principles code (``_exact_day``, ZoneInfo)
gives, on every day, in zones with every kind of offset change — a 24-hour jump
(Pacific/Apia 2011), a negative DST (Europe/Dublin), 30-minute and 2-hour DST, DST that
changes several times a year (Africa/Casablanca around Ramadan), midnight transitions and
historic zones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.domain.calendar import Calendar

ZONES = (
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "Europe/Dublin",
    "Australia/Lord_Howe",
    "Antarctica/Troll",
    "Africa/Casablanca",
    "America/Santiago",
    "America/Havana",
    "America/St_Johns",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Europe/Moscow",
    "Europe/Madrid",
    "America/Mexico_City",
    "America/Vancouver",
    "UTC",
)
HOURS = {
    day: ["00:00-01:30", "01:45-02:30", "02:45-03:00", "09:00-13:00", "14:00-24:00"]
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
}
FIRST, LAST = date(1970, 1, 2).toordinal(), date(2045, 12, 31).toordinal()


@pytest.mark.parametrize("zone", ZONES)
def test_every_day_matches_the_exact_computation(zone: str) -> None:
    calendar = Calendar.from_spec({"timezone": zone, "weekly_hours": HOURS})
    fast = [calendar._compute_day(ordinal) for ordinal in range(FIRST, LAST)]
    exact = [calendar._exact_day(ordinal) for ordinal in range(FIRST, LAST)]
    mismatches = [
        date.fromordinal(FIRST + i) for i, (a, b) in enumerate(zip(fast, exact, strict=True))
        if a != b
    ]  # fmt: skip
    assert mismatches == []


@pytest.mark.parametrize("zone", ZONES)
def test_local_dates_match_zoneinfo_around_every_offset_change(zone: str) -> None:
    calendar = Calendar.from_spec({"timezone": zone, "weekly_hours": "24x7"})
    info = ZoneInfo(zone)
    t = datetime(1970, 1, 1, tzinfo=UTC)
    end = datetime(2046, 1, 1, tzinfo=UTC)
    previous = t.astimezone(info).utcoffset()
    probes: list[datetime] = []
    while t < end:  # transitions found by a plain scan, then probed at close range
        t += timedelta(hours=3)
        offset = t.astimezone(info).utcoffset()
        if offset != previous:
            probes.extend(t + timedelta(seconds=s) for s in range(-7200, 7200, 599))
            previous = offset
        elif t.hour == 0 and t.day % 9 == 0:
            probes.append(t + timedelta(microseconds=t.month * 37_777))
    # Jump around in time: the remembered stretch must never leak into another one.
    probes = probes[::2] + probes[1::2][::-1]
    for probe in probes:
        u = (probe - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        assert calendar._local_ordinal(u) == probe.astimezone(info).toordinal(), probe
