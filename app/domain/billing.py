"""Seed 004's billing rules, pure: what a work log entry is charged, and when a ticket's
estimate needs the customer's authorization.

* ``follow_up``: charged the plan's ``follow_up_minutes`` (default 15) whatever its
  entered length; it happens at the instant ``occurred_at``.
* ``session``: ``minutes`` x ``consultants`` (x 1 when ``sessions_per_consultant`` is
  false); it covers ``[occurred_at, occurred_at + minutes)``.
* ``work``: ``minutes`` as entered; covers ``[occurred_at, occurred_at + minutes)``.

After hours: the part of the covered time outside the calendar's open time (split with
``Calendar.between``; a follow-up is after hours when the calendar is closed at its
instant). An entry with any after-hours part is refused when the plan does not allow
after-hours work. Otherwise (seed 004: "if the client requires attention after hours,
they must request it in advance and via email"):

* the after-hours part inside the windows of the client's requests
  (:class:`RequestWindow`, their union) is charged x ``after_hours_multiplier``; the
  charge names the request whose window covers most of it (the first given on a tie;
  the service lists the ticket's own requests before its contract's standing ones);
* the rest (``unrequested_minutes``) is charged as business time, or refused
  (``AfterHoursNotRequested``) when the plan says ``refuse``.

Arithmetic is exact (``Fraction``); the charged total is rounded **half up to whole
minutes** once, at the end. ``after_hours_minutes`` (the base minutes that fell after
hours, before the multiplier) and ``unrequested_minutes`` are rounded the same way.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Protocol

from app.domain.entitlement import Billing, UnrequestedAfterHours

_MICROS_PER_MINUTE = 60_000_000


class OpenHours(Protocol):
    """What charging needs of a calendar: app.domain.calendar.Calendar, or
    app.domain.sla.ALWAYS_OPEN for a ticket taken under no plan."""

    def is_open(self, t: datetime) -> bool: ...

    def between(self, a: datetime, b: datetime) -> timedelta: ...


class EntryKind(StrEnum):
    follow_up = "follow_up"
    session = "session"
    work = "work"


class AfterHoursNotAllowed(ValueError):
    """The entry has after-hours time and the plan does not allow after-hours work."""

    def __init__(self, after_hours_minutes: int) -> None:
        super().__init__(
            f"{after_hours_minutes} minute(s) of this entry fall outside the plan's "
            "business hours, and the plan does not allow after-hours work."
        )
        self.after_hours_minutes = after_hours_minutes


class AfterHoursNotRequested(ValueError):
    """The entry has after-hours time outside every window the client requested, and
    the plan refuses such time."""

    def __init__(self, unrequested_minutes: int) -> None:
        super().__init__(
            f"{unrequested_minutes} minute(s) of this entry fall outside the plan's "
            "business hours and outside every after-hours window the client requested."
        )
        self.unrequested_minutes = unrequested_minutes


@dataclass(frozen=True)
class RequestWindow:
    """A client's request for after-hours attention over ``[starts_at, ends_at)``;
    ``ref`` names it (the service's request id)."""

    starts_at: datetime
    ends_at: datetime
    ref: Hashable


@dataclass(frozen=True, kw_only=True)
class Charge:
    """What one entry costs. ``base_minutes`` is before the after-hours multiplier;
    ``unrequested_minutes`` is the part of ``after_hours_minutes`` outside every
    requested window (charged as business time); ``request`` is the window the rest
    relies on (None when no after-hours time is charged the multiplier)."""

    base_minutes: int
    after_hours_minutes: int
    multiplier: Decimal
    charged_minutes: int
    unrequested_minutes: int = 0
    request: Hashable | None = None

    @property
    def after_hours(self) -> bool:
        return self.after_hours_minutes > 0


def round_half_up(value: Fraction) -> int:
    """Round a non-negative exact quantity half up to a whole number."""
    floor = value.numerator // value.denominator
    return floor + (1 if value - floor >= Fraction(1, 2) else 0)


def multiplier_of(rules: Billing) -> Decimal:
    """The plan's after-hours multiplier as an exact decimal (1.5 -> Decimal('1.5'))."""
    return Decimal(str(rules.after_hours_multiplier))


def _span(kind: EntryKind, minutes: int, occurred_at: datetime) -> tuple[datetime, datetime]:
    if kind is EntryKind.follow_up:
        return occurred_at, occurred_at
    return occurred_at, occurred_at + timedelta(minutes=minutes)


def within_hours(
    *, kind: EntryKind, minutes: int, occurred_at: datetime, calendar: OpenHours
) -> bool:
    """Whether the entry lies wholly in the calendar's open time (no after-hours part)."""
    start, end = _span(kind, minutes, occurred_at)
    if start == end:
        return kind is not EntryKind.follow_up or calendar.is_open(start)
    return calendar.between(start, end) == end - start


def _closed(calendar: OpenHours, a: datetime, b: datetime) -> timedelta:
    return (b - a) - calendar.between(a, b)


def _requested(
    start: datetime, end: datetime, windows: Sequence[RequestWindow], calendar: OpenHours
) -> tuple[timedelta, Hashable | None]:
    """The closed time of ``[start, end)`` inside the union of the windows, and the
    window covering most of it (the first on a tie)."""
    clipped = [
        (max(w.starts_at, start), min(w.ends_at, end), w.ref)
        for w in windows
        if w.starts_at < end and w.ends_at > start
    ]
    best: Hashable | None = None
    most = timedelta(0)
    for a, b, ref in clipped:
        share = _closed(calendar, a, b)
        if share > most:
            best, most = ref, share
    covered = timedelta(0)
    reach: datetime | None = None  # end of the union so far, walking by start
    for a, b, _ in sorted(clipped, key=lambda w: w[0]):
        if reach is not None and a < reach:
            a = reach
        if b > a:
            covered += _closed(calendar, a, b)
        reach = b if reach is None else max(reach, b)
    return covered, best


def charge(
    *,
    kind: EntryKind,
    minutes: int,
    consultants: int,
    occurred_at: datetime,
    rules: Billing,
    calendar: OpenHours,
    requests: Sequence[RequestWindow] = (),
) -> Charge:
    """The charge of one entry under the client's after-hours ``requests``; raises
    ``AfterHoursNotAllowed`` when it has after-hours time and the plan does not allow
    it, ``AfterHoursNotRequested`` when some of it is outside every requested window
    and the plan refuses that. ``minutes`` >= 0 and ``consultants`` >= 1."""
    if minutes < 0:
        raise ValueError("minutes must be >= 0")
    if consultants < 1:
        raise ValueError("consultants must be >= 1")
    chosen: Hashable | None = None
    if kind is EntryKind.follow_up:
        base = Fraction(rules.follow_up_minutes)
        closed = requested = Fraction(0)
        if not calendar.is_open(occurred_at):
            closed = Fraction(1)
            covering = [w for w in requests if w.starts_at <= occurred_at < w.ends_at]
            if covering:
                chosen, requested = covering[0].ref, Fraction(1)
    else:
        factor = consultants if kind is EntryKind.session and rules.sessions_per_consultant else 1
        base = Fraction(minutes * factor)
        closed = requested = Fraction(0)
        if minutes > 0:
            start, end = _span(kind, minutes, occurred_at)
            span_us = minutes * _MICROS_PER_MINUTE
            closed_us = _closed(calendar, start, end) // timedelta(microseconds=1)
            closed = Fraction(closed_us, span_us)
            if closed_us:
                covered, chosen = _requested(start, end, requests, calendar)
                requested = Fraction(covered // timedelta(microseconds=1), span_us)
    after = base * closed
    premium = base * requested  # after-hours time inside a requested window
    plain = after - premium
    multiplier = multiplier_of(rules)
    after_minutes = round_half_up(after)
    unrequested_minutes = round_half_up(plain)
    if after > 0 and not rules.after_hours_allowed:
        raise AfterHoursNotAllowed(max(after_minutes, 1))
    if plain > 0 and rules.after_hours_unrequested is UnrequestedAfterHours.REFUSE:
        raise AfterHoursNotRequested(max(unrequested_minutes, 1))
    charged = (base - premium) + premium * Fraction(multiplier)
    return Charge(
        base_minutes=round_half_up(base),
        after_hours_minutes=after_minutes,
        unrequested_minutes=unrequested_minutes,
        multiplier=multiplier if premium > 0 else Decimal(1),
        charged_minutes=round_half_up(charged),
        request=chosen if premium > 0 else None,
    )


def needs_authorization(
    *, estimate_minutes: int | None, charged_so_far: int, entry_minutes: int
) -> bool:
    """Whether recording an entry charging ``entry_minutes`` takes the ticket's charged
    total past its estimate (no estimate: never). Reaching it exactly is fine."""
    if estimate_minutes is None:
        return False
    return charged_so_far + entry_minutes > estimate_minutes
