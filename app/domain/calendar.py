"""The business-time engine: opening hours, holidays and closures in a time zone.

A :class:`Calendar` answers "when is this due?" (:meth:`Calendar.add`), "how much
business time passed?" (:meth:`Calendar.between`), "are we open?"
(:meth:`Calendar.is_open`, :meth:`Calendar.next_open`) and "which hours were
counted?" (:meth:`Calendar.explain`). It is pure: it never reads the clock and
imports only the standard library and the ``holidays`` package.

Rules (the tests check them against a brute-force minute-by-minute oracle):

* **Instants.** Every argument is a timezone-aware :class:`~datetime.datetime`; a
  naive one raises :class:`ValueError`. Results are aware datetimes in UTC.
  Arithmetic is done on integer microseconds, so results are exact to the
  microsecond (datetime's own resolution): nothing is rounded or truncated.
* **Opening hours are wall-clock hours** of the calendar's IANA time zone. An
  interval ``"s-e"`` of local date *D* opens at the first instant the wall clock
  of *D* shows ``s`` and closes at the first instant it shows ``e`` (``24:00`` is
  midnight at the end of *D*). Consequences:

  - a wall time that does not exist (spring-forward gap) is skipped: a boundary
    inside the gap falls on the transition instant, so ``00:00-18:00`` lasts 17
    real hours on a spring-forward day and ``02:30-03:00`` in a 02:00->03:00 gap
    lasts zero;
  - when clocks go back, the repeated wall times have the state the calendar had
    just before the clocks went back: ``00:00-18:00`` lasts 19 real hours on a
    fall-back day (both occurrences of 01:00-02:00 count), ``01:00-02:00`` lasts 2
    real hours, ``01:15-01:45`` lasts 30 minutes (only the first occurrence,
    since the clock first shows 01:45 before it goes back), and ``01:30-05:00``
    opens at the first 01:30 and stays open through the repeat until 05:00.
    Equivalently: an instant is open when the *highest* wall-clock reading seen
    so far (the reading never goes back) lies in an opening interval.
* **Holidays** (public ones from the ``holidays`` package by country and optional
  subdivision, observed days included, plus ``extra_holidays``) close the whole
  local day: the opening intervals of that date are dropped.
* **Closures** are instant ranges ``[start, end)`` closed regardless of the
  weekly hours.
* ``weekly_hours: "24x7"`` opens every day ``00:00-24:00``. Holidays, extra
  holidays and closures still apply to a 24x7 spec when given (a 24x7 calendar
  with holidays is closed on those local dates). :meth:`Calendar.always_open` and
  a plain ``{"timezone": ..., "weekly_hours": "24x7"}`` have none and are
  :attr:`Calendar.is_always_open`.

Speed: a day's open intervals are computed once and cached (bounded); a day that
lies in a stretch of constant UTC offset is its weekday's template shifted by that
offset (offsets come from per-year tables of the zone's changes, shared by every
calendar of the zone; days near a change are placed wall time by wall time); long
durations skip whole runs of regular weeks (no holiday, closure or UTC-offset
change) using the precomputed weekly open time; holidays, closures and offset
transitions are found by binary search in sorted arrays.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays as holidays_lib

__all__ = ["Calendar", "CalendarSpecError"]

_ONE_US: Final = timedelta(microseconds=1)
_ZERO: Final = timedelta(0)
_SECOND: Final = 1_000_000
_MINUTE: Final = 60 * _SECOND
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE: Final = datetime(1970, 1, 1)  # noqa: DTZ001 - local wall-clock arithmetic
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
# Instants whose year and both neighbours have offset tables (see Calendar._segment_at).
_SEGMENT_MIN: Final = (datetime(2, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
_SEGMENT_MAX: Final = (datetime(9998, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
_WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TOP_LEVEL_KEYS: Final = ("timezone", "weekly_hours", "holidays", "extra_holidays", "closures")
_INTERVAL_RE: Final = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EXTRA_HOLIDAY_NAME: Final = "extra holiday"

# Per-instance caches are bounded: when full they are emptied and refilled.
_DAY_CACHE_SIZE: Final = 4096  # about eleven years of days
_YEAR_CACHE_SIZE: Final = 64
# How far ahead week skipping looks for the next holiday / closure / DST change.
_SKIP_HORIZON_DAYS: Final = 731
# Offset transitions are located by sampling the zone this often, then bisecting
# to the exact second. Two offset changes less than this apart would be missed;
# no zone in tzdata has any since 1970 (checked against the TZif files).
_TRANSITION_SAMPLE_SECONDS: Final = 6 * 3600


class CalendarSpecError(ValueError):
    """A calendar spec is invalid: ``field`` is the dotted path, ``message`` says why."""

    field: str
    message: str

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# --------------------------------------------------------------------------- helpers


def _instant_us(value: datetime, name: str) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    if type(value) is datetime and value.tzinfo is UTC:  # the common case, checked cheaply
        return (value - _EPOCH) // _ONE_US
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware; got the naive datetime {value.isoformat()}"
        )
    return (value - _EPOCH) // _ONE_US


def _duration_us(value: timedelta, name: str) -> int:
    if type(value) is timedelta and value >= _ZERO:  # the common case, checked cheaply
        return value // _ONE_US
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a timedelta, got {type(value).__name__}")
    us = value // _ONE_US
    if us < 0:
        raise ValueError(f"{name} must not be negative; got {value}")
    return us


def _utc(us: int) -> datetime:
    return _EPOCH + timedelta(0, 0, us)  # positional: measurably faster in the hot path


def _offset_us(zone: ZoneInfo, us: int) -> int:
    """UTC offset (microseconds) of ``zone`` at the instant ``us``.

    Offsets change only on whole seconds in tzdata, so the second is enough.
    """
    offset = datetime.fromtimestamp(us // _SECOND, zone).utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always has an offset
        raise AssertionError("zone without UTC offset")
    return offset // _ONE_US


@lru_cache(maxsize=1024)
def _zone_transitions(key: str, year: int) -> tuple[int, ...]:
    """Instants (µs) in UTC year ``year`` at which the zone's UTC offset changes."""
    zone = ZoneInfo(key)
    lo_year = max(year, 1)
    start = (datetime(lo_year, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(seconds=1)
    end = (
        (datetime(year + 1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(seconds=1)
        if year < 9999
        else start + 365 * 86400
    )
    found: list[int] = []
    previous_s = start - 1  # so that a transition exactly at ``start`` is found
    previous = _offset_us(zone, previous_s * _SECOND)
    while previous_s < end - 1:
        s = min(previous_s + _TRANSITION_SAMPLE_SECONDS, end - 1)
        current = _offset_us(zone, s * _SECOND)
        if current != previous:
            lo, hi = previous_s, s
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if _offset_us(zone, mid * _SECOND) == previous:
                    lo = mid
                else:
                    hi = mid
            found.append(hi * _SECOND)
        previous_s, previous = s, current
    return tuple(found)


@lru_cache(maxsize=1024)
def _zone_year(key: str, year: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The zone's constant-offset stretches of UTC year ``year``: ``bounds`` (µs, from the
    year's first instant through each offset change to the next year's first instant) and
    ``offsets[i]``, the UTC offset (µs) in ``[bounds[i], bounds[i + 1])``. Lets the hot
    path find offsets with integer comparisons instead of ``ZoneInfo`` calls."""
    zone = ZoneInfo(key)
    first = (datetime(year, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
    last = (datetime(year + 1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
    bounds = (first, *_zone_transitions(key, year), last)
    offsets = tuple(_offset_us(zone, bound) for bound in bounds[:-1])
    return bounds, offsets


@lru_cache(maxsize=512)
def _holidays_built(
    country: str, subdivision: str | None, year: int
) -> tuple[tuple[date, str], ...]:
    """What the ``holidays`` package returns when asked for one year (any dates)."""
    built = holidays_lib.country_holidays(country, subdiv=subdivision, years=year)
    return tuple(sorted(built.items()))


@lru_cache(maxsize=512)
def _public_holidays(
    country: str, subdivision: str | None, year: int
) -> tuple[tuple[int, str], ...]:
    """(ordinal, name) of the public holidays dated in ``year``, sorted.

    Neighbouring years are consulted too, in case an observed day spills over
    the new year.
    """
    names: dict[int, str] = {}
    for built_year in (year - 1, year, year + 1):
        if not 1 <= built_year <= 9999:
            continue
        for day, name in _holidays_built(country, subdivision, built_year):
            if day.year != year:
                continue
            ordinal = day.toordinal()
            known = names.get(ordinal)
            if known is None:
                names[ordinal] = name
            elif name not in known.split("; "):
                names[ordinal] = f"{known}; {name}"
    return tuple(sorted(names.items()))


@lru_cache(maxsize=1)
def _supported_countries() -> dict[str, list[str]]:
    return holidays_lib.list_supported_countries()


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(available_timezones() - {"localtime", "posixrules"})


# --------------------------------------------------------------------------- spec parsing


def _parse_clock(hours: str, minutes: str, *, is_end: bool) -> int | None:
    h, m = int(hours), int(minutes)
    if m > 59:
        return None
    if h == 24 and m == 0 and is_end:
        return _DAY
    if h > 23:
        return None
    return h * _HOUR + m * _MINUTE


def _fmt_clock(us: int) -> str:
    minutes = us // _MINUTE
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_day(day: str, value: Any) -> tuple[tuple[int, int], ...]:
    field = f"weekly_hours.{day}"
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise CalendarSpecError(
            field, 'must be a list of intervals such as ["09:00-13:00", "14:00-18:00"]'
        )
    parsed: list[tuple[int, int, int]] = []
    for index, item in enumerate(value):
        item_field = f"{field}[{index}]"
        match = _INTERVAL_RE.fullmatch(item) if isinstance(item, str) else None
        if match is None:
            raise CalendarSpecError(
                item_field,
                f"{item!r} is not an interval; write it as 'HH:MM-HH:MM', e.g. '09:00-18:00'",
            )
        start = _parse_clock(match[1], match[2], is_end=False)
        end = _parse_clock(match[3], match[4], is_end=True)
        if start is None or end is None:
            raise CalendarSpecError(
                item_field,
                f"{item!r} has an impossible time; hours go from 00:00 to 23:59, "
                "and 24:00 may only end an interval",
            )
        if start >= end:
            raise CalendarSpecError(
                item_field,
                f"{item!r} ends before it starts; the end must be after the start "
                "(use 24:00 for the end of the day and split overnight hours over two days)",
            )
        parsed.append((start, end, index))
    parsed.sort()
    merged: list[tuple[int, int]] = []
    for position, (start, end, index) in enumerate(parsed):
        if position and start < parsed[position - 1][1]:
            other = parsed[position - 1][2]
            first, second = sorted((index, other))
            raise CalendarSpecError(
                f"{field}[{second}]",
                f"overlaps {field}[{first}] ({value[first]!r}); "
                "intervals of a day must not overlap",
            )
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _parse_instant(value: Any, field: str) -> int:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise CalendarSpecError(
                field,
                f"{value!r} is not an ISO 8601 instant; write it like '2026-01-15T17:00:00Z'",
            ) from None
    else:
        raise CalendarSpecError(field, "must be an ISO 8601 instant such as '2026-01-15T17:00:00Z'")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise CalendarSpecError(
            field,
            f"{value!s} has no UTC offset; add one, e.g. '2026-01-15T17:00:00Z' or "
            "'2026-01-15T09:00:00-08:00'",
        )
    return (parsed - _EPOCH) // _ONE_US


def _parse_closures(value: Any) -> tuple[tuple[int, int], ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise CalendarSpecError(
            "closures", 'must be a list of {"start": ..., "end": ..., "reason": ...} objects'
        )
    ranges: list[tuple[int, int]] = []
    for index, item in enumerate(value):
        field = f"closures[{index}]"
        if not isinstance(item, Mapping):
            raise CalendarSpecError(
                field, 'must be an object {"start": ..., "end": ..., "reason": ...}'
            )
        for key in item:
            if key not in ("start", "end", "reason"):
                raise CalendarSpecError(
                    f"{field}.{key}", "unknown field; a closure has start, end and reason"
                )
        for key in ("start", "end"):
            if key not in item:
                raise CalendarSpecError(f"{field}.{key}", "is required")
        start = _parse_instant(item["start"], f"{field}.start")
        end = _parse_instant(item["end"], f"{field}.end")
        if end <= start:
            raise CalendarSpecError(f"{field}.end", "must be after the closure's start")
        reason = item.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise CalendarSpecError(f"{field}.reason", "must be a string")
        ranges.append((start, end))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def _parse_extra_holidays(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise CalendarSpecError("extra_holidays", 'must be a list of dates such as ["2026-12-24"]')
    ordinals: set[int] = set()
    for index, item in enumerate(value):
        field = f"extra_holidays[{index}]"
        if isinstance(item, date) and not isinstance(item, datetime):
            ordinals.add(item.toordinal())
            continue
        if not isinstance(item, str) or _DATE_RE.fullmatch(item) is None:
            raise CalendarSpecError(field, f"{item!r} is not a date; write it as 'YYYY-MM-DD'")
        try:
            ordinals.add(date.fromisoformat(item).toordinal())
        except ValueError:
            raise CalendarSpecError(field, f"{item!r} is not a valid calendar date") from None
    return tuple(sorted(ordinals))


def _parse_holidays(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        raise CalendarSpecError(
            "holidays", 'must be an object such as {"country": "CA", "subdivision": "BC"}'
        )
    for key in value:
        if key not in ("country", "subdivision"):
            raise CalendarSpecError(
                f"holidays.{key}", "unknown field; holidays have country and subdivision"
            )
    supported = _supported_countries()
    country = value.get("country")
    if not isinstance(country, str) or country.upper() not in supported:
        raise CalendarSpecError(
            "holidays.country",
            f"unknown holiday country {country!r}; use a country code supported by the "
            "holidays package, e.g. 'CA', 'ES' or 'MX'",
        )
    country = country.upper()
    subdivision = value.get("subdivision")
    if subdivision is None:
        return country, None
    subdivisions = supported[country]
    if isinstance(subdivision, str):
        if subdivision in subdivisions:
            return country, subdivision
        for code in subdivisions:
            if code.upper() == subdivision.upper():
                return country, code
    known = ", ".join(subdivisions) if subdivisions else "none"
    raise CalendarSpecError(
        "holidays.subdivision",
        f"unknown subdivision {subdivision!r} of {country}; known subdivisions: {known}",
    )


def _parse_timezone(value: Any) -> str:
    if not isinstance(value, str) or value not in _known_timezones():
        raise CalendarSpecError(
            "timezone",
            f"unknown time zone {value!r}; use an IANA name such as 'America/Vancouver', "
            "'Europe/Madrid' or 'Etc/GMT-1' (which is GMT+1)",
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarSpecError("timezone", f"time zone {value!r} cannot be loaded") from None
    return value


# --------------------------------------------------------------------------- calendar

_Week = tuple[tuple[tuple[int, int], ...], ...]
_FULL_WEEK: Final[_Week] = tuple(((0, _DAY),) for _ in range(7))


class Calendar:
    """Business time in one IANA time zone. Build it with :meth:`from_spec` or
    :meth:`always_open`; instances are immutable (their caches aside)."""

    __slots__ = (
        "_always",
        "_business_weekdays",
        "_closure_ends",
        "_closure_starts",
        "_country",
        "_day_cache",
        "_extra",
        "_flat_week",
        "_holiday_ordinals",
        "_holiday_span",
        "_is_24x7",
        "_key",
        "_segment",
        "_subdivision",
        "_week",
        "_week_total",
        "_year_cache",
        "_zone",
    )

    def __init__(
        self,
        *,
        timezone: str,
        week: _Week,
        is_24x7: bool = False,
        country: str | None = None,
        subdivision: str | None = None,
        extra_holidays: tuple[int, ...] = (),
        closures: tuple[tuple[int, int], ...] = (),
    ) -> None:
        """Internal: use :meth:`from_spec` or :meth:`always_open`."""
        self._key = timezone
        self._zone = ZoneInfo(timezone)
        self._week = week
        self._week_total = sum(end - start for day in week for start, end in day)
        if self._week_total <= 0:
            raise CalendarSpecError("weekly_hours", "no opening hours on any day")
        self._business_weekdays = sum(1 for day in week if day)
        self._is_24x7 = is_24x7
        self._country = country
        self._subdivision = subdivision
        self._extra = extra_holidays
        self._closure_starts = tuple(start for start, _ in closures)
        self._closure_ends = tuple(end for _, end in closures)
        self._always = is_24x7 and country is None and not extra_holidays and not closures
        self._day_cache: dict[int, tuple[int, ...]] = {}
        self._year_cache: dict[int, tuple[tuple[int, ...], frozenset[int]]] = {}
        # Each weekday's intervals as flat offsets from local midnight (start0, end0, ...).
        self._flat_week = tuple(tuple(b for pair in day for b in pair) for day in week)
        # The stretch of constant UTC offset last used: (first µs, end µs, offset µs).
        # Consecutive days nearly always fall in the same one (see _fast_midnight).
        self._segment: tuple[int, int, int] = (0, 0, 0)
        # Holidays of the years seen so far, and the ordinals [lo, hi) those years cover.
        self._holiday_ordinals: set[int] = set()
        self._holiday_span: tuple[int, int] = (0, 0)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Calendar:
        """Validate a calendar spec (the REST API's JSON) and build the calendar.

        Raises :class:`CalendarSpecError` naming the first bad field.
        """
        if not isinstance(spec, Mapping):
            raise CalendarSpecError("spec", "a calendar spec must be a JSON object")
        for key in spec:
            if key not in _TOP_LEVEL_KEYS:
                raise CalendarSpecError(
                    str(key), f"unknown field; a calendar has {', '.join(_TOP_LEVEL_KEYS)}"
                )
        if "timezone" not in spec:
            raise CalendarSpecError("timezone", "is required, e.g. 'Europe/Madrid'")
        timezone = _parse_timezone(spec["timezone"])
        if "weekly_hours" not in spec:
            raise CalendarSpecError(
                "weekly_hours", 'is required: "24x7" or an object such as {"mon": ["09:00-18:00"]}'
            )
        weekly = spec["weekly_hours"]
        is_24x7 = weekly == "24x7"
        if is_24x7:
            week = _FULL_WEEK
        elif isinstance(weekly, Mapping):
            for key in weekly:
                if key not in _WEEKDAYS:
                    raise CalendarSpecError(
                        f"weekly_hours.{key}",
                        f"unknown weekday; use {', '.join(_WEEKDAYS)}",
                    )
            week = tuple(_parse_day(day, weekly.get(day, [])) for day in _WEEKDAYS)
            if not any(week):
                raise CalendarSpecError(
                    "weekly_hours",
                    "no opening hours on any day; give at least one interval "
                    'such as {"mon": ["09:00-18:00"]} or use "24x7"',
                )
        else:
            raise CalendarSpecError(
                "weekly_hours", 'must be "24x7" or an object such as {"mon": ["09:00-18:00"]}'
            )
        country, subdivision = _parse_holidays(spec.get("holidays"))
        extra = _parse_extra_holidays(spec.get("extra_holidays"))
        closures = _parse_closures(spec.get("closures"))
        return cls(
            timezone=timezone,
            week=week,
            is_24x7=is_24x7,
            country=country,
            subdivision=subdivision,
            extra_holidays=extra,
            closures=closures,
        )

    @classmethod
    def always_open(cls) -> Calendar:
        """Open around the clock in UTC, with no holidays or closures."""
        return cls(timezone="UTC", week=_FULL_WEEK, is_24x7=True)

    @property
    def timezone(self) -> str:
        """The IANA name of the calendar's time zone."""
        return self._key

    @property
    def is_always_open(self) -> bool:
        """True for a 24x7 calendar without holidays, extra holidays or closures."""
        return self._always

    def __repr__(self) -> str:
        hours = (
            "24x7"
            if self._is_24x7
            else {
                name: [f"{_fmt_clock(s)}-{_fmt_clock(e)}" for s, e in day]
                for name, day in zip(_WEEKDAYS, self._week, strict=True)
                if day
            }
        )
        return (
            f"Calendar(timezone={self._key!r}, weekly_hours={hours!r}, "
            f"holidays={(self._country, self._subdivision)!r}, "
            f"extra_holidays={len(self._extra)}, closures={len(self._closure_starts)})"
        )

    # ------------------------------------------------------------------ operations

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant at which ``duration`` of open time has passed since ``start``.

        A start outside opening hours counts from the next opening; a zero
        duration returns ``start`` itself (the same instant, in UTC) even when
        closed. (Python never finds an ambiguous local datetime equal to one in
        another zone, PEP 495: compare results with UTC datetimes.)
        """
        cursor = _instant_us(start, "start")
        remaining = _duration_us(duration, "duration")
        if remaining == 0 or self._always:
            return _utc(cursor + remaining)
        # Days before the local date of ``start`` end before it (see _local_ordinal).
        ordinal = self._local_ordinal(cursor)
        skip_from = ordinal + 2
        week_total = self._week_total
        cache = self._day_cache
        closures = self._closure_starts
        while True:
            if remaining > week_total and ordinal >= skip_from:
                regular = self._regular_days(ordinal)
                weeks = min((remaining - 1) // week_total, regular // 7)
                remaining -= weeks * week_total
                ordinal += 7 * weeks
                skip_from = ordinal + regular - 7 * weeks + 1
            bounds = cache.get(ordinal)
            if bounds is None:
                bounds = self._day(ordinal)
            if len(bounds) == 2:  # one interval, the usual day: unrolled (3x cheaper)
                begin, end = bounds
                if end > cursor:
                    if begin < cursor:
                        begin = cursor
                    if end - begin >= remaining:
                        return _utc(begin + remaining)
                    remaining -= end - begin
                    cursor = end
            elif bounds:
                pairs = iter(bounds)
                for begin, end in zip(pairs, pairs, strict=False):  # even length by build
                    if end <= cursor:
                        continue
                    if begin < cursor:
                        begin = cursor
                    if end - begin >= remaining:
                        return _utc(begin + remaining)
                    remaining -= end - begin
                    cursor = end
            ordinal = ordinal + 1 if bounds or not closures else self._after_closure(ordinal)

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Open time in ``[a, b)``; zero when ``b <= a``."""
        lo = _instant_us(a, "a")
        hi = _instant_us(b, "b")
        if hi <= lo:
            return timedelta(0)
        if self._always:
            return timedelta(microseconds=hi - lo)
        ordinal = self._local_ordinal(lo)
        last = self._local_ordinal(hi)
        skip_from = ordinal + 2
        total = 0
        while ordinal <= last + 1:
            if ordinal >= skip_from and ordinal + 7 <= last:
                regular = self._regular_days(ordinal)
                weeks = min((last - ordinal) // 7, regular // 7)
                total += weeks * self._week_total
                ordinal += 7 * weeks
                skip_from = ordinal + regular - 7 * weeks + 1
            bounds = self._day(ordinal)
            for i in range(0, len(bounds), 2):
                begin = max(bounds[i], lo)
                end = min(bounds[i + 1], hi)
                if end > begin:
                    total += end - begin
            ordinal = ordinal + 1 if bounds else self._after_closure(ordinal)
        return timedelta(microseconds=total)

    def is_open(self, t: datetime) -> bool:
        """Whether the instant ``t`` is inside opening hours."""
        u = _instant_us(t, "t")
        if self._always:
            return True
        ordinal = self._local_ordinal(u)
        # odd insertion point in (start0, end0, start1, ...) = inside an interval
        return any(bisect_right(self._day(day), u) % 2 for day in (ordinal, ordinal + 1))

    def next_open(self, t: datetime) -> datetime:
        """``t`` itself (in UTC) if open, else the next instant the calendar opens."""
        u = _instant_us(t, "t")
        if self._always:
            return _utc(u)
        ordinal = self._local_ordinal(u)
        while True:
            bounds = self._day(ordinal)
            i = bisect_right(bounds, u)
            if i % 2:
                return _utc(u)
            if i < len(bounds):
                return _utc(bounds[i])
            ordinal = self._after_closure(ordinal)

    def explain(self, start: datetime, duration: timedelta) -> list[tuple[datetime, datetime]]:
        """The open intervals counted by ``add(start, duration)``, in order.

        Adjacent intervals (e.g. across midnight) are merged; the lengths sum to
        ``duration``; the last end is ``add(start, duration)``. Empty for zero.
        """
        cursor = _instant_us(start, "start")
        remaining = _duration_us(duration, "duration")
        if remaining == 0:
            return []
        if self._always:
            return [(_utc(cursor), _utc(cursor + remaining))]
        pieces: list[tuple[int, int]] = []
        ordinal = self._local_ordinal(cursor)
        while remaining:
            bounds = self._day(ordinal)
            for i in range(0, len(bounds), 2):
                end = bounds[i + 1]
                if end <= cursor:
                    continue
                begin = max(bounds[i], cursor)
                end = min(end, begin + remaining)
                remaining -= end - begin
                cursor = end
                if pieces and pieces[-1][1] == begin:
                    pieces[-1] = (pieces[-1][0], end)
                else:
                    pieces.append((begin, end))
                if not remaining:
                    break
            ordinal = ordinal + 1 if bounds else self._after_closure(ordinal)
        return [(_utc(begin), _utc(end)) for begin, end in pieces]

    def prepare(self, first_year: int, last_year: int) -> None:
        """Build the process-wide tables (public holidays, the zone's offset changes) of
        these years ahead of use, so the first deadlines in them pay nothing extra. A
        service does it once per compiled calendar; calendars of one zone share them."""
        for year in range(max(first_year - 1, 2), min(last_year + 1, 9997) + 1):
            _zone_year(self._key, year)
            if self._country is not None:
                _public_holidays(self._country, self._subdivision, year)

    def holidays_in(self, year: int) -> list[tuple[date, str]]:
        """Public and extra holidays dated in ``year``, sorted, with their names.

        Extra holidays are named ``"extra holiday"``; a date that is both a public
        and an extra holiday is listed once, with its public name.
        """
        names: dict[int, str] = {}
        if self._country is not None:
            names.update(_public_holidays(self._country, self._subdivision, year))
        lo = bisect_left(self._extra, date(year, 1, 1).toordinal())
        hi = bisect_left(self._extra, date(year, 12, 31).toordinal() + 1)
        for ordinal in self._extra[lo:hi]:
            names.setdefault(ordinal, _EXTRA_HOLIDAY_NAME)
        return [(date.fromordinal(ordinal), names[ordinal]) for ordinal in sorted(names)]

    def is_business_day(self, d: date) -> bool:
        """The weekday has opening hours and ``d`` is not a (public or extra) holiday.

        Closures do not make a day a non-business day.
        """
        if isinstance(d, datetime) or not isinstance(d, date):
            raise TypeError("is_business_day takes a date (a local calendar date), not a datetime")
        return self._is_business_ordinal(d.toordinal())

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The same local wall-clock time as ``start`` on the ``days``-th following
        business day (the days after ``start``'s local date; ``start``'s own day
        does not count, whether or not it is a business day).

        The wall time is placed with the first occurrence when ambiguous; when it
        does not exist that day (spring-forward gap) it moves forward by the
        length of the gap (02:30 in a 02:00->03:00 gap becomes 03:30).
        ``days == 0`` returns ``start``. On a 24x7 calendar without holidays every
        day is a business day: the same wall-clock time ``days`` days later, which
        for :meth:`always_open` (UTC) is ``start + timedelta(days=days)``.
        Negative ``days`` raise ``ValueError``.
        """
        u = _instant_us(start, "start")
        if isinstance(days, bool) or not isinstance(days, int):
            raise TypeError("days must be an int")
        if days < 0:
            raise ValueError(f"days must not be negative; got {days}")
        if days == 0:
            return _utc(u)
        local = _utc(u).astimezone(self._zone)
        ordinal = local.toordinal()
        left = days
        per_week = self._business_weekdays
        while left:
            if left > per_week:
                closed = sum(
                    1
                    for holiday in self._holidays_in_range(ordinal + 1, ordinal + 7)
                    if self._week[(holiday - 1) % 7]
                )
                if left > per_week - closed:
                    left -= per_week - closed
                    ordinal += 7
                    continue
            ordinal += 1
            if self._is_business_ordinal(ordinal):
                left -= 1
        wall = datetime.combine(date.fromordinal(ordinal), local.time()).replace(
            tzinfo=self._zone, fold=0
        )
        return wall.astimezone(UTC)

    # ------------------------------------------------------------------ internals

    def _local_ordinal(self, u: int) -> int:
        """Ordinal of the local date the wall clock shows at instant ``u``.

        Intervals of earlier dates end at or before ``u``: they end by the first
        instant the clock shows this date's midnight, which is not after ``u``.
        Intervals of this date and the next may contain ``u`` (the next one only
        when clocks go back across midnight).
        """
        lo, hi, offset = self._segment
        if not lo <= u < hi:
            lo, hi, offset = self._segment_at(u)
        # Offsets are whole seconds, so local midnights fall on whole seconds too.
        return (u + offset) // _DAY + _EPOCH_ORDINAL

    def _segment_at(self, u: int) -> tuple[int, int, int]:
        """The stretch of constant UTC offset containing instant ``u`` (and remember it)."""
        if not _SEGMENT_MIN <= u < _SEGMENT_MAX:  # far outside any real use: no table
            return (u, u + 1, _offset_us(self._zone, u))
        year = _utc(u).year
        bounds, offsets = _zone_year(self._key, year)
        i = bisect_right(bounds, u) - 1
        lo, hi, offset = bounds[i], bounds[i + 1], offsets[i]
        if i == len(offsets) - 1:  # runs into next year: extend while the offset holds
            next_bounds, next_offsets = _zone_year(self._key, year + 1)
            if next_offsets[0] == offset:
                hi = next_bounds[1]
        if i == 0:
            previous_bounds, previous_offsets = _zone_year(self._key, year - 1)
            if previous_offsets[-1] == offset:
                lo = previous_bounds[-2]
        self._segment = (lo, hi, offset)
        return self._segment

    def _fast_midnight(self, midnight: int) -> int | None:
        """The instant the wall clock shows ``midnight`` (local µs) when the whole local day
        lies inside one stretch of constant offset, with two days of margin on each side
        (so no other instant shows the same wall time: offsets differ by under two days);
        None near an offset change, where the exact path decides."""
        lo, hi, offset = self._segment
        u0 = midnight - offset
        if not (lo + 2 * _DAY <= u0 and u0 + 3 * _DAY <= hi):
            lo, hi, offset = self._segment_at(u0)
            u0 = midnight - offset
            if not (lo + 2 * _DAY <= u0 and u0 + 3 * _DAY <= hi):
                return None
        return u0

    def _wall_to_utc(self, local: int) -> int:
        """First instant at which the wall clock shows ``local`` (µs since the naive
        epoch) or later: the first occurrence of an ambiguous time, the transition
        instant for a time inside a gap."""
        naive = _EPOCH_NAIVE + timedelta(microseconds=local)
        offset = self._zone.utcoffset(naive)
        if offset is None:  # pragma: no cover
            raise AssertionError("zone without UTC offset")
        before = offset // _ONE_US  # fold=0: the offset before any transition
        u = local - before
        if _offset_us(self._zone, u) == before:
            return u
        # ``local`` is in a gap: find the transition between the two readings.
        after_offset = self._zone.utcoffset(naive.replace(fold=1))
        if after_offset is None:  # pragma: no cover
            raise AssertionError("zone without UTC offset")
        lo = (local - after_offset // _ONE_US) // _SECOND
        hi = -(-u // _SECOND)
        start_offset = _offset_us(self._zone, lo * _SECOND)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _offset_us(self._zone, mid * _SECOND) == start_offset:
                lo = mid
            else:
                hi = mid
        return hi * _SECOND

    def _next_transition(self, after: int, limit: int) -> int | None:
        """The first UTC-offset change strictly after ``after`` and before ``limit``."""
        year = _utc(after).year
        last_year = min(_utc(limit).year, 9999)
        while year <= last_year:
            table = _zone_transitions(self._key, year)
            i = bisect_right(table, after)
            if i < len(table):
                return table[i] if table[i] < limit else None
            year += 1
        return None

    def _year_holidays(self, year: int) -> tuple[tuple[int, ...], frozenset[int]]:
        cached = self._year_cache.get(year)
        if cached is not None:
            return cached
        ordinals: set[int] = set()
        if self._country is not None and 1 <= year <= 9999:
            ordinals.update(o for o, _ in _public_holidays(self._country, self._subdivision, year))
        if 1 <= year <= 9999:
            lo = bisect_left(self._extra, date(year, 1, 1).toordinal())
            hi = bisect_left(self._extra, date(year, 12, 31).toordinal() + 1)
            ordinals.update(self._extra[lo:hi])
        result = (tuple(sorted(ordinals)), frozenset(ordinals))
        if len(self._year_cache) >= _YEAR_CACHE_SIZE:
            self._year_cache.clear()
        self._year_cache[year] = result
        return result

    def _is_holiday(self, ordinal: int) -> bool:
        if self._country is None and not self._extra:
            return False
        lo, hi = self._holiday_span
        if not lo <= ordinal < hi:
            year = date.fromordinal(ordinal).year
            first, end = date(year, 1, 1).toordinal(), date(year + 1, 1, 1).toordinal()
            if lo == hi or (first != hi and end != lo):  # not adjacent: start a new span
                self._holiday_ordinals = set()
                lo, hi = first, end
            self._holiday_ordinals.update(self._year_holidays(year)[1])
            self._holiday_span = (min(lo, first), max(hi, end))
        return ordinal in self._holiday_ordinals

    def _holidays_in_range(self, first: int, last: int) -> list[int]:
        """Holiday ordinals in ``[first, last]``, sorted."""
        if self._country is None and not self._extra:
            return []
        found: list[int] = []
        for year in range(date.fromordinal(first).year, date.fromordinal(last).year + 1):
            table = self._year_holidays(year)[0]
            found.extend(table[bisect_left(table, first) : bisect_right(table, last)])
        return found

    def _is_business_ordinal(self, ordinal: int) -> bool:
        return bool(self._week[(ordinal - 1) % 7]) and not self._is_holiday(ordinal)

    def _day(self, ordinal: int) -> tuple[int, ...]:
        """Open intervals of local date ``ordinal`` as a flat sorted tuple
        ``(start0, end0, start1, end1, ...)`` of UTC µs (strictly increasing)."""
        cached = self._day_cache.get(ordinal)
        if cached is None:
            cached = self._compute_day(ordinal)
            if len(self._day_cache) >= _DAY_CACHE_SIZE:
                self._day_cache.clear()
            self._day_cache[ordinal] = cached
        return cached

    def _compute_day(self, ordinal: int) -> tuple[int, ...]:
        weekday = (ordinal - 1) % 7
        flat = self._flat_week[weekday]
        if not flat or self._is_holiday(ordinal):
            return ()
        u0 = self._fast_midnight((ordinal - _EPOCH_ORDINAL) * _DAY)
        if u0 is None:
            return self._exact_day(ordinal)
        # A day of constant offset, far from any change: the template shifted to UTC.
        if not self._closure_starts:
            return tuple([u0 + b for b in flat])
        pairs = iter([u0 + b for b in flat])
        return tuple(
            bound
            for interval in self._subtract_closures(
                [[a, b] for a, b in zip(pairs, pairs, strict=True)]
            )
            for bound in interval
        )

    def _exact_day(self, ordinal: int) -> tuple[int, ...]:
        """:meth:`_compute_day` from first principles (wall times placed one by one), for
        days near an offset change; tests hold the fast path to it on every day."""
        template = self._week[(ordinal - 1) % 7]
        if not template or self._is_holiday(ordinal):
            return ()
        midnight = (ordinal - _EPOCH_ORDINAL) * _DAY
        u0 = self._wall_to_utc(midnight)
        u1 = self._wall_to_utc(midnight + _DAY)
        uniform = (
            u1 - u0 == _DAY
            and u0 + _offset_us(self._zone, u0) == midnight
            and self._next_transition(u0, u1) is None
        )
        intervals: list[list[int]] = []
        for start, end in template:
            if uniform:
                begin, finish = u0 + start, u0 + end
            else:
                begin = self._wall_to_utc(midnight + start)
                finish = u1 if end == _DAY else self._wall_to_utc(midnight + end)
            if finish <= begin:
                continue
            if intervals and intervals[-1][1] >= begin:
                intervals[-1][1] = max(intervals[-1][1], finish)
            else:
                intervals.append([begin, finish])
        if intervals and self._closure_starts:
            intervals = self._subtract_closures(intervals)
        return tuple(bound for interval in intervals for bound in interval)

    def _subtract_closures(self, intervals: list[list[int]]) -> list[list[int]]:
        starts, ends = self._closure_starts, self._closure_ends
        i = bisect_right(ends, intervals[0][0])
        last = intervals[-1][1]
        if i >= len(starts) or starts[i] >= last:
            return intervals
        result: list[list[int]] = []
        for begin, finish in intervals:
            j = i
            while j < len(starts) and starts[j] < finish:
                if ends[j] > begin:
                    if starts[j] > begin:
                        result.append([begin, starts[j]])
                    begin = max(begin, ends[j])
                    if begin >= finish:
                        break
                j += 1
            if begin < finish:
                result.append([begin, finish])
        return result

    def _after_closure(self, ordinal: int) -> int:
        """The next day worth looking at after ``ordinal``: the day after it, or,
        when a closure covers the next midnight, the local date the closure ends
        (every day in between lies inside the closure)."""
        if not self._closure_starts:
            return ordinal + 1
        midnight = self._wall_to_utc((ordinal + 1 - _EPOCH_ORDINAL) * _DAY)
        i = bisect_right(self._closure_starts, midnight) - 1
        if i < 0 or self._closure_ends[i] <= midnight:
            return ordinal + 1
        return max(ordinal + 1, self._local_ordinal(self._closure_ends[i]))

    def _regular_days(self, ordinal: int) -> int:
        """How many days from ``ordinal`` on are *regular*: not a holiday, touched by
        no closure and no UTC-offset change, so each is open exactly its weekly
        template. Conservative (may under-count), capped at about two years."""
        horizon = ordinal + _SKIP_HORIZON_DAYS
        midnight = self._wall_to_utc((ordinal - _EPOCH_ORDINAL) * _DAY)
        limit = self._wall_to_utc((horizon - _EPOCH_ORDINAL) * _DAY)
        stop = horizon
        holidays_ahead = self._holidays_in_range(ordinal, horizon)
        if holidays_ahead:
            stop = min(stop, holidays_ahead[0])
        i = bisect_right(self._closure_ends, midnight - _DAY)
        if i < len(self._closure_starts) and self._closure_starts[i] < limit:
            stop = min(stop, self._local_ordinal(self._closure_starts[i]) - 1)
        transition = self._next_transition(midnight - _DAY, limit)
        if transition is not None:
            stop = min(stop, self._local_ordinal(transition) - 1)
        return max(0, stop - ordinal)
