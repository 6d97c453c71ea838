"""Seed 004's billing rules, pure: what a work log entry is charged, and when a ticket's
estimate needs the customer's authorization.

* ``follow_up``: charged the plan's ``follow_up_minutes`` (default 15) whatever its
  entered length; it happens at the instant ``occurred_at``.
* ``session``: ``minutes`` x ``consultants`` (x 1 when ``sessions_per_consultant`` is
  false); it covers ``[occurred_at, occurred_at + minutes)``.
* ``work``: ``minutes`` as entered; covers ``[occurred_at, occurred_at + minutes)``.

After hours: the part of the covered time outside the calendar's open time (split with
``Calendar.between``; a follow-up is after hours when the calendar is closed at its
instant) is charged x ``after_hours_multiplier``. An entry with any after-hours part is
refused when the plan does not allow after-hours work.

Arithmetic is exact (``Fraction``); the charged total is rounded **half up to whole
minutes** once, at the end. ``after_hours_minutes`` (the base minutes that fell after
hours, before the multiplier) is rounded the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Protocol

from app.domain.entitlement import Billing

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


@dataclass(frozen=True, kw_only=True)
class Charge:
    """What one entry costs. ``base_minutes`` is before the after-hours multiplier."""

    base_minutes: int
    after_hours_minutes: int
    multiplier: Decimal
    charged_minutes: int

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


def charge(
    *,
    kind: EntryKind,
    minutes: int,
    consultants: int,
    occurred_at: datetime,
    rules: Billing,
    calendar: OpenHours,
) -> Charge:
    """The charge of one entry; raises ``AfterHoursNotAllowed`` when it has after-hours
    time and the plan does not allow it. ``minutes`` >= 0 and ``consultants`` >= 1."""
    if minutes < 0:
        raise ValueError("minutes must be >= 0")
    if consultants < 1:
        raise ValueError("consultants must be >= 1")
    if kind is EntryKind.follow_up:
        base = Fraction(rules.follow_up_minutes)
        closed = Fraction(0) if calendar.is_open(occurred_at) else Fraction(1)
    else:
        factor = consultants if kind is EntryKind.session and rules.sessions_per_consultant else 1
        base = Fraction(minutes * factor)
        if minutes == 0:
            closed = Fraction(0)
        else:
            end = occurred_at + timedelta(minutes=minutes)
            open_us = calendar.between(occurred_at, end) // timedelta(microseconds=1)
            closed = 1 - Fraction(open_us, minutes * _MICROS_PER_MINUTE)
    after = base * closed
    multiplier = multiplier_of(rules)
    after_minutes = round_half_up(after)
    if after > 0 and not rules.after_hours_allowed:
        raise AfterHoursNotAllowed(max(after_minutes, 1))
    charged = (base - after) + after * Fraction(multiplier)
    return Charge(
        base_minutes=round_half_up(base),
        after_hours_minutes=after_minutes,
        multiplier=multiplier if after > 0 else Decimal(1),
        charged_minutes=round_half_up(charged),
    )


def needs_authorization(
    *, estimate_minutes: int | None, charged_so_far: int, entry_minutes: int
) -> bool:
    """Whether recording an entry charging ``entry_minutes`` takes the ticket's charged
    total past its estimate (no estimate: never). Reaching it exactly is fine."""
    if estimate_minutes is None:
        return False
    return charged_so_far + entry_minutes > estimate_minutes
