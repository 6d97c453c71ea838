"""A brute-force reference for the business-time engine.

It shares no code with ``app.domain.calendar``. It walks the real timeline one
minute at a time, reads the local wall clock for each minute (``fromtimestamp``
in the calendar's zone), and decides whether that minute is open by the rule
written in the engine's docstring, stated the way a person would check it:

    keep the highest wall-clock reading seen so far (it never goes back when the
    clocks do); the minute is open when that reading's date is not a holiday,
    its time of day lies in an opening interval of that weekday, and the minute
    is not inside a closure.

Everything the engine is compared on (opening hours, closures) is whole
minutes, so a minute is entirely open or entirely closed; queries themselves
may carry seconds and microseconds and are answered exactly.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

MINUTE_US = 60_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_NAIVE = datetime(1970, 1, 1)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def to_us(t: datetime) -> int:
    assert t.tzinfo is not None
    return (t - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


@lru_cache(maxsize=50_000)
def wall_clock(key: str, utc_day: int) -> array[int]:
    """The local wall-clock reading, in minutes since 1970-01-01 00:00 local, for
    each UTC minute of one UTC day (the slow part, so it is remembered)."""
    zone = ZoneInfo(key)
    readings = array("q")
    for minute in range(utc_day * 1440, utc_day * 1440 + 1440):
        local = datetime.fromtimestamp(minute * 60, zone).replace(tzinfo=None)
        readings.append((local - EPOCH_NAIVE) // timedelta(minutes=1))
    return readings


def reading(key: str, minute: int) -> int:
    return wall_clock(key, minute // 1440)[minute % 1440]


def _clock(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class Oracle:
    """Open/closed flags for every UTC minute from ``origin`` on, grown on demand."""

    # Readings before the origin, for the high-water mark (clocks in these zones
    # never go back by more than two hours).
    WARMUP_MINUTES = 6 * 60
    LIMIT_MINUTES = 400 * 24 * 60

    def __init__(self, spec: Mapping[str, Any], origin: datetime) -> None:
        self.key: str = spec["timezone"]
        hours = spec["weekly_hours"]
        if hours == "24x7":
            self.week = [[(0, 1440)] for _ in WEEKDAYS]
        else:
            self.week = [
                [
                    (_clock(item.split("-")[0]), _clock(item.split("-")[1]))
                    for item in hours.get(day, [])
                ]
                for day in WEEKDAYS
            ]
        spec_holidays = spec.get("holidays")
        self.public = (
            holidays.country_holidays(
                spec_holidays["country"], subdiv=spec_holidays.get("subdivision")
            )
            if spec_holidays
            else None
        )
        self.extra = {date.fromisoformat(day) for day in spec.get("extra_holidays", [])}
        self.closures = []
        for closure in spec.get("closures", []):
            start = to_us(datetime.fromisoformat(closure["start"]))
            end = to_us(datetime.fromisoformat(closure["end"]))
            assert start % MINUTE_US == 0 and end % MINUTE_US == 0, "oracle needs whole minutes"
            self.closures.append((start // MINUTE_US, end // MINUTE_US))
        self.base = to_us(origin) // MINUTE_US
        self.flags = bytearray()
        self.high = max(
            reading(self.key, minute)
            for minute in range(self.base - self.WARMUP_MINUTES, self.base)
        )
        self._days: dict[int, list[tuple[int, int]]] = {}

    # -- the rule, minute by minute ------------------------------------------------

    def _hours_of(self, ordinal: int) -> list[tuple[int, int]]:
        hours = self._days.get(ordinal)
        if hours is None:
            day = date.fromordinal(ordinal)
            closed = day in self.extra or (self.public is not None and day in self.public)
            hours = [] if closed else self.week[day.weekday()]
            self._days[ordinal] = hours
        return hours

    def _grow(self, upto: int) -> None:
        if upto - self.base > self.LIMIT_MINUTES:
            raise RuntimeError("oracle window too large")
        minute = self.base + len(self.flags)
        flags, closures, high = self.flags, self.closures, self.high
        current_day, hours = -1, self._hours_of(EPOCH_ORDINAL)
        while minute <= upto:
            utc_day, index = divmod(minute, 1440)
            for wall in wall_clock(self.key, utc_day)[index:]:
                if wall > high:
                    high = wall
                day, time_of_day = divmod(high, 1440)
                if day != current_day:
                    current_day, hours = day, self._hours_of(day + EPOCH_ORDINAL)
                is_open = False
                for start, end in hours:
                    if start <= time_of_day < end:
                        is_open = True
                        break
                if is_open and closures:
                    is_open = not any(start <= minute < end for start, end in closures)
                flags.append(is_open)
                minute += 1
        self.high = high

    def open_minute(self, minute: int) -> bool:
        assert minute >= self.base, "oracle queried before its origin"
        index = minute - self.base
        if index >= len(self.flags):
            self._grow(minute + 1440)
        return bool(self.flags[index])

    # -- the operations --------------------------------------------------------------

    def is_open(self, t: datetime) -> bool:
        return self.open_minute(to_us(t) // MINUTE_US)

    def next_open(self, t: datetime) -> datetime:
        u = to_us(t)
        minute = u // MINUTE_US
        if self.open_minute(minute):
            return from_us(u)
        _, following = self._open_run(minute, self.base + self.LIMIT_MINUTES)
        return from_us(following * MINUTE_US)

    def _open_run(self, minute: int, limit: int) -> tuple[bool, int]:
        """Whether ``minute`` is open, and the first later minute that differs (or
        ``limit``, whichever comes first)."""
        state = self.open_minute(minute)
        index = minute - self.base
        while True:
            flags = self.flags
            found = flags.find(b"\x00" if state else b"\x01", index, limit - self.base)
            if found >= 0:
                return state, self.base + found
            if self.base + len(flags) >= limit:
                return state, limit
            index = len(flags)
            self._grow(min(limit, self.base + len(flags) + 7 * 1440))

    def between(self, a: datetime, b: datetime) -> timedelta:
        lo, hi = to_us(a), to_us(b)
        total = 0
        minute = lo // MINUTE_US
        while minute * MINUTE_US < hi:
            is_open, following = self._open_run(minute, -(-hi // MINUTE_US))
            if is_open:
                total += max(0, min(hi, following * MINUTE_US) - max(lo, minute * MINUTE_US))
            minute = following
        return timedelta(microseconds=total)

    def explain(self, start: datetime, duration: timedelta) -> list[tuple[datetime, datetime]]:
        cursor = to_us(start)
        remaining = duration // timedelta(microseconds=1)
        pieces: list[tuple[int, int]] = []
        minute = cursor // MINUTE_US
        while remaining > 0:
            is_open, following = self._open_run(minute, minute + remaining // MINUTE_US + 2)
            if is_open:
                begin = max(cursor, minute * MINUTE_US)
                end = min(following * MINUTE_US, begin + remaining)
                remaining -= end - begin
                pieces.append((begin, end))
            minute = following
        return [(from_us(begin), from_us(end)) for begin, end in pieces]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        pieces = self.explain(start, duration)
        return pieces[-1][1] if pieces else start
