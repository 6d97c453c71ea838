"""When an outbound message is tried again.

The first attempt is immediate; after a temporary failure (connection refused or lost, a
timeout, a 4xx reply) the next one waits per the schedule (±10 % jitter so that a relay
coming back is not hit by every message at once); a permanent failure (a 5xx reply to the
message) or an exhausted schedule is final: the message is ``failed`` (staff may resend).
"""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["DEFAULT_SCHEDULE", "next_attempt_at"]

DEFAULT_SCHEDULE: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 86400)
)


def next_attempt_at(
    attempts_made: int,
    now: datetime,
    *,
    permanent: bool,
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE,
    jitter: float = 0.1,
    u: float = 0.5,
) -> datetime | None:
    """The instant of the next attempt after ``attempts_made`` failed ones (``u`` in
    [0, 1) draws the jitter), or None when there is none."""
    if permanent or attempts_made < 1 or attempts_made > len(schedule):
        return None
    wait = schedule[attempts_made - 1]
    return now + wait * (1 + jitter * (2 * u - 1))
