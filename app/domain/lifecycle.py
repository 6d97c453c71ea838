"""Ticket statuses and actions: what may happen to a ticket, and what it implies.

Everything here is data and pure functions. A service loads the ticket, calls
`apply_action` (or the smaller pieces), writes the outcome, applies the
`ClockOps` to the ticket's SLA clocks at the action's `occurred_at`
(`apply_clock_ops` does the state-dependent part), and writes outbox events.

Status table (KEEP = status unchanged)
---------------------------------------
======================  ==================================================================
status                  allowed actions -> new status
======================  ==================================================================
new                     assign->open, reply->in_progress, callback->in_progress,
                        request_info->waiting_on_customer, note, customer_reply, change,
                        escalate*, resolve->resolved, close->closed
open                    as new, but assign keeps open
in_progress             assign, reply, note, callback, customer_reply, change (KEEP),
                        request_info->waiting_on_customer, escalate*, resolve, close
waiting_on_customer     assign, reply, note, callback, contact_attempt, change (KEEP),
                        customer_reply->in_progress, escalate*, resolve, close
waiting_on_vendor       assign, reply, note, callback, customer_reply, change (KEEP),
                        request_info->waiting_on_customer, escalate*, resolve, close
resolved                note, reply (KEEP), confirm->closed(confirmed),
                        reopen->in_progress, close->closed
closed                  note; reopen->in_progress only if the close reason allows it
======================  ==================================================================

escalate* (to_tier 1-4): tier 4 is the product vendor (seed 004's "Level 4:
Microsoft"), so the ticket becomes `waiting_on_vendor`; escalating to tiers 1-3
from `waiting_on_vendor` brings it back to `in_progress`; otherwise KEEP.

Decisions
---------
* A public `reply` while waiting on the customer or the vendor keeps the status:
  the ball stays in their court (a reminder or a progress note), and the clocks
  stay paused. To take the ball back the customer replies, or the agent
  escalates/resolves. A reply on a resolved ticket is allowed and keeps it
  resolved; nothing but a note may be added to a closed ticket.
* `customer_reply` moves `waiting_on_customer` to `in_progress` only; on a new
  or open ticket it is extra information and keeps the status (nobody has
  started working); on a resolved ticket the customer must `reopen` or
  `confirm` explicitly.
* `request_info` is not allowed while already waiting on the customer: further
  chasing is a `contact_attempt`, which is what the auto-close rule counts.
* `change` (severity/category) is only allowed while the ticket is open, so the
  retarget never meets a stopped resolution clock that a reopen would continue.
* Reopening a closed ticket: allowed after `duplicate`, `out_of_scope`, `other`
  (agent judgements that can be wrong); refused after `no_response` (seed 004:
  help requested later is a new ticket) and after `confirmed` (the customer
  validated the fix; a new problem is a new incident, seed 000).
* Clock stops: `reply` and `request_info` (both public agent messages) stop
  `first_response`; `callback` stops `callback` and `first_response` (reaching
  the customer by phone is a response); `resolve`, `confirm` and `close` stop
  every clock (a resolution is also a response; a ticket closed as duplicate
  has no breach afterwards). `reopen` continues `resolution` only: the first
  response and the callback stay history.
* Pause/resume follow the plan's `pause_on` statuses (default
  `waiting_on_customer`; `waiting_on_vendor` pauses only if listed): entering
  the set pauses every clock that is not being stopped, leaving it for an open
  status resumes them. Moving to resolved/closed neither pauses nor resumes:
  the stop covers it.
* Contact attempts: `request_info` sets 1, each `contact_attempt` adds 1, and
  any status other than `waiting_on_customer` resets them to 0.
* `occurred_at` may be up to `FUTURE_TOLERANCE` (2 s) ahead of the server's
  `now` to absorb client clock skew; such an instant is recorded as `now`.
* Back-dating is bounded by what *people* recorded: an action may be dated at or
  after the ticket's receipt and its latest event recorded by a person (an
  agent, a customer, an API key acting for one, or an administrator's plan or
  calendar edit, which re-timed the clocks from its instant). The system's own
  events (threshold firings, the escalation at a breach, the auto-close) do not
  bound it: they follow from the history and are re-derived when it changes.
* An auto-close that fired at `closed_at` still stands after an action dated
  before it only if the ticket still waits on the customer with that close
  pending (`auto_close_stands`); otherwise the late action shows it should not
  have happened (a customer reply logged late), and the service withdraws it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum

from app.domain import sla
from app.domain.sla import BusinessTime, Clock
from app.domain.vocab import Metric, TicketStatus

__all__ = [
    "AGENT_CLOSE_REASONS",
    "ALL_METRICS",
    "CUSTOMER_ACTIONS",
    "DEFAULT_PAUSE_ON",
    "DEFAULT_POLICY",
    "FUTURE_TOLERANCE",
    "OPEN_STATUSES",
    "PAUSABLE_STATUSES",
    "REOPENABLE_CLOSE_REASONS",
    "Action",
    "ActionNotAllowed",
    "ActionOutcome",
    "AutoCloseDirective",
    "AutoClosePolicy",
    "ClockOps",
    "CloseReason",
    "InvalidActionArgument",
    "InvalidOccurredAt",
    "LifecycleError",
    "LifecyclePolicy",
    "TicketState",
    "allowed_actions",
    "allowed_customer_actions",
    "apply_action",
    "apply_clock_ops",
    "auto_close_directive",
    "auto_close_stands",
    "check_escalation",
    "check_occurred_at",
    "clock_ops",
    "contact_attempts_after",
    "next_status",
    "resolve_occurred_at",
]

S = TicketStatus


class Action(StrEnum):
    ASSIGN = "assign"
    REPLY = "reply"
    NOTE = "note"
    REQUEST_INFO = "request_info"
    CONTACT_ATTEMPT = "contact_attempt"
    CUSTOMER_REPLY = "customer_reply"
    ESCALATE = "escalate"
    CHANGE = "change"
    CALLBACK = "callback"
    RESOLVE = "resolve"
    CONFIRM = "confirm"
    REOPEN = "reopen"
    CLOSE = "close"


class CloseReason(StrEnum):
    CONFIRMED = "confirmed"  # set by `confirm` only
    DUPLICATE = "duplicate"
    OUT_OF_SCOPE = "out_of_scope"
    NO_RESPONSE = "no_response"
    OTHER = "other"


OPEN_STATUSES = frozenset(
    {S.NEW, S.OPEN, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER, S.WAITING_ON_VENDOR}
)
CUSTOMER_ACTIONS = frozenset({Action.CUSTOMER_REPLY, Action.CONFIRM, Action.REOPEN})
AGENT_CLOSE_REASONS = frozenset(
    {CloseReason.DUPLICATE, CloseReason.OUT_OF_SCOPE, CloseReason.NO_RESPONSE, CloseReason.OTHER}
)
REOPENABLE_CLOSE_REASONS = frozenset(
    {CloseReason.DUPLICATE, CloseReason.OUT_OF_SCOPE, CloseReason.OTHER}
)
PAUSABLE_STATUSES = frozenset({S.WAITING_ON_CUSTOMER, S.WAITING_ON_VENDOR})
DEFAULT_PAUSE_ON = frozenset({S.WAITING_ON_CUSTOMER})
ALL_METRICS = frozenset(Metric)
MIN_TIER, MAX_TIER, VENDOR_TIER = 1, 4, 4
FUTURE_TOLERANCE = timedelta(seconds=2)


# --------------------------------------------------------------------------- errors


class LifecycleError(Exception):
    """Base of the errors raised by this module."""


class ActionNotAllowed(LifecycleError):
    """The action is not allowed in the ticket's status (the API's 409)."""

    def __init__(
        self,
        status: TicketStatus,
        action: Action,
        allowed: Collection[Action],
        close_reason: CloseReason | None = None,
    ) -> None:
        self.status = status
        self.action = action
        self.close_reason = close_reason
        # Declaration order, so the message and the API payload are stable.
        self.allowed = tuple(a for a in Action if a in allowed)
        closed_as = f" (closed as {close_reason})" if close_reason is not None else ""
        listed = ", ".join(self.allowed) or "none"
        super().__init__(
            f"action {action!s} is not allowed in status {status!s}{closed_as}; "
            f"allowed actions: {listed}"
        )


class InvalidActionArgument(LifecycleError, ValueError):
    """An action's argument is missing or out of range (the API's 422); `field` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidOccurredAt(LifecycleError, ValueError):
    """A command's `occurred_at` is naive, in the future, or before the ticket's
    latest event. `code` is stable: `naive`, `in_future`, `before_last_event`."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


# ---------------------------------------------------------------------------- table


class _To(Enum):
    """Status outcomes that are not a fixed status."""

    KEEP = "keep"
    ESCALATION = "escalation"


_Outcome = TicketStatus | _To
_KEEP, _ESC = _To.KEEP, _To.ESCALATION

_WORKING: Mapping[Action, _Outcome] = {
    Action.ASSIGN: _KEEP,
    Action.REPLY: _KEEP,
    Action.NOTE: _KEEP,
    Action.REQUEST_INFO: S.WAITING_ON_CUSTOMER,
    Action.CUSTOMER_REPLY: _KEEP,
    Action.ESCALATE: _ESC,
    Action.CHANGE: _KEEP,
    Action.CALLBACK: _KEEP,
    Action.RESOLVE: S.RESOLVED,
    Action.CLOSE: S.CLOSED,
}

_TABLE: Mapping[TicketStatus, Mapping[Action, _Outcome]] = {
    S.NEW: {
        **_WORKING,
        Action.ASSIGN: S.OPEN,
        Action.REPLY: S.IN_PROGRESS,
        Action.CALLBACK: S.IN_PROGRESS,
    },
    S.OPEN: {**_WORKING, Action.REPLY: S.IN_PROGRESS, Action.CALLBACK: S.IN_PROGRESS},
    S.IN_PROGRESS: dict(_WORKING),
    S.WAITING_ON_CUSTOMER: {
        **{a: o for a, o in _WORKING.items() if a is not Action.REQUEST_INFO},
        Action.CONTACT_ATTEMPT: _KEEP,
        Action.CUSTOMER_REPLY: S.IN_PROGRESS,
    },
    S.WAITING_ON_VENDOR: dict(_WORKING),
    S.RESOLVED: {
        Action.NOTE: _KEEP,
        Action.REPLY: _KEEP,
        Action.CONFIRM: S.CLOSED,
        Action.REOPEN: S.IN_PROGRESS,
        Action.CLOSE: S.CLOSED,
    },
    S.CLOSED: {Action.NOTE: _KEEP, Action.REOPEN: S.IN_PROGRESS},
}


def allowed_actions(
    status: TicketStatus, close_reason: CloseReason | None = None
) -> frozenset[Action]:
    """Actions allowed in `status`; for a closed ticket, `close_reason` decides
    whether it may be reopened."""
    actions = frozenset(_TABLE[status])
    if status is S.CLOSED and close_reason not in REOPENABLE_CLOSE_REASONS:
        actions -= {Action.REOPEN}
    return actions


def allowed_customer_actions(
    status: TicketStatus, close_reason: CloseReason | None = None
) -> frozenset[Action]:
    return allowed_actions(status, close_reason) & CUSTOMER_ACTIONS


def _check_allowed(
    status: TicketStatus, action: Action, close_reason: CloseReason | None
) -> _Outcome:
    allowed = allowed_actions(status, close_reason)
    if action not in allowed:
        raise ActionNotAllowed(status, action, allowed, close_reason)
    return _TABLE[status][action]


def _check_tier(action: Action, to_tier: int | None) -> None:
    if action is Action.ESCALATE:
        if to_tier is None or isinstance(to_tier, bool) or not MIN_TIER <= to_tier <= MAX_TIER:
            raise InvalidActionArgument(f"escalate needs to_tier within {MIN_TIER}..{MAX_TIER}")
    elif to_tier is not None:
        raise InvalidActionArgument(f"to_tier only applies to escalate, not {action}")


def check_escalation(
    current_tier: int,
    to_tier: int,
    *,
    reason: str | None,
    vendor: str | None,
    vendor_case_ref: str | None,
) -> None:
    """Seeds 003/004's tiers: moving to the tier it is at is pointless; going down needs a
    reason; tier 4 is the product vendor (seed 004: "Microsoft") and needs the vendor and
    its case reference, which only tier 4 takes."""
    if to_tier == current_tier:
        raise InvalidActionArgument(f"the ticket is already at tier {current_tier}", "to_tier")
    if to_tier < current_tier and reason is None:
        raise InvalidActionArgument("going down a tier needs a reason", "reason")
    if to_tier == VENDOR_TIER:
        for name, value in (("vendor", vendor), ("vendor_case_ref", vendor_case_ref)):
            if value is None:
                raise InvalidActionArgument(
                    "tier 4 (the product vendor) needs vendor and vendor_case_ref", name
                )
    elif vendor is not None or vendor_case_ref is not None:
        raise InvalidActionArgument(
            "vendor and vendor_case_ref apply to tier 4 (the product vendor) only",
            "vendor" if vendor is not None else "vendor_case_ref",
        )


def next_status(
    status: TicketStatus,
    action: Action,
    *,
    close_reason: CloseReason | None = None,
    to_tier: int | None = None,
) -> TicketStatus:
    """The status after `action`. `close_reason` is the ticket's current one
    (it decides whether a closed ticket may be reopened); `to_tier` is required
    for `escalate`. Raises ActionNotAllowed or InvalidActionArgument."""
    outcome = _check_allowed(status, action, close_reason)
    _check_tier(action, to_tier)
    if outcome is _To.KEEP:
        return status
    if outcome is _To.ESCALATION:
        if to_tier == VENDOR_TIER:
            return S.WAITING_ON_VENDOR
        return S.IN_PROGRESS if status is S.WAITING_ON_VENDOR else status
    return outcome


# ----------------------------------------------------------------------- clock ops


@dataclass(frozen=True)
class ClockOps:
    """Clock operations an action implies, by metric, to apply at `occurred_at`
    in this order: continue_stopped, resume, pause, stop. Each applies to the
    ticket's clock of that metric when it exists and is in a state the operation
    makes sense for (see `apply_clock_ops`). `retarget`: severity or category
    changed, the service selects the new targets and calls `sla.retarget`."""

    continue_stopped: frozenset[Metric] = frozenset()
    resume: frozenset[Metric] = frozenset()
    pause: frozenset[Metric] = frozenset()
    stop: frozenset[Metric] = frozenset()
    retarget: bool = False

    @property
    def is_empty(self) -> bool:
        return not (
            self.continue_stopped or self.resume or self.pause or self.stop or self.retarget
        )


_STOPS: Mapping[Action, frozenset[Metric]] = {
    Action.REPLY: frozenset({Metric.FIRST_RESPONSE}),
    Action.REQUEST_INFO: frozenset({Metric.FIRST_RESPONSE}),
    Action.CALLBACK: frozenset({Metric.CALLBACK, Metric.FIRST_RESPONSE}),
    Action.RESOLVE: ALL_METRICS,
    Action.CONFIRM: ALL_METRICS,
    Action.CLOSE: ALL_METRICS,
}
_CONTINUES: Mapping[Action, frozenset[Metric]] = {
    Action.REOPEN: frozenset({Metric.RESOLUTION}),
}


def _check_pause_on(pause_on: Collection[TicketStatus]) -> frozenset[TicketStatus]:
    statuses = frozenset(TicketStatus(s) for s in pause_on)
    if not statuses <= PAUSABLE_STATUSES:
        bad = ", ".join(sorted(statuses - PAUSABLE_STATUSES))
        raise InvalidActionArgument(f"pause_on may only list waiting statuses, not {bad}")
    return statuses


def clock_ops(
    action: Action,
    old_status: TicketStatus,
    new_status: TicketStatus,
    pause_on: Collection[TicketStatus] = DEFAULT_PAUSE_ON,
) -> ClockOps:
    """The clock operations implied by `action` moving the ticket from
    `old_status` to `new_status` under a plan pausing on `pause_on`."""
    paused_set = _check_pause_on(pause_on)
    stop_metrics = _STOPS.get(action, frozenset())
    running_after = ALL_METRICS - stop_metrics
    pause_metrics: frozenset[Metric] = frozenset()
    resume_metrics: frozenset[Metric] = frozenset()
    if new_status in OPEN_STATUSES:
        # Reopen comes from resolved/closed, where nothing is paused: the
        # continued clock must still pause if it lands in a pausing status.
        was_paused = old_status in paused_set
        now_paused = new_status in paused_set
        if now_paused and not was_paused:
            pause_metrics = running_after
        elif was_paused and not now_paused:
            resume_metrics = running_after
    return ClockOps(
        continue_stopped=_CONTINUES.get(action, frozenset()),
        resume=resume_metrics,
        pause=pause_metrics,
        stop=stop_metrics,
        retarget=action is Action.CHANGE,
    )


def apply_clock_ops(
    clocks: Mapping[Metric, Clock],
    ops: ClockOps,
    at: datetime,
    calendar_of: Callable[[Clock], BusinessTime],
) -> dict[Metric, Clock]:
    """Apply `ops` (except retarget) to a ticket's clocks at `at`.

    Each operation only touches clocks it makes sense for: continue -> stopped,
    resume -> paused, pause -> running, stop -> running or paused; the others are
    left alone, so "pause everything" does not trip over a first-response clock
    stopped long ago. `calendar_of(clock)` gives the calendar counting a clock
    (the plan's business calendar or always-open, by `clock.kind`)."""
    result = dict(clocks)
    for metric in ops.continue_stopped:
        clock = result.get(metric)
        if clock is not None and clock.is_stopped:
            result[metric] = sla.continue_stopped(clock, at)
    for metric in ops.resume:
        clock = result.get(metric)
        if clock is not None and clock.is_paused:
            result[metric] = sla.resume(clock, at)
    for metric in ops.pause:
        clock = result.get(metric)
        if clock is not None and clock.is_running:
            result[metric] = sla.pause(clock, at, calendar_of(clock))
    for metric in ops.stop:
        clock = result.get(metric)
        if clock is not None and not clock.is_stopped:
            result[metric] = sla.stop(clock, at, calendar_of(clock))
    return result


# ------------------------------------------------------------ contacts, auto-close


@dataclass(frozen=True)
class AutoClosePolicy:
    """Seed 004: close for lack of response after `contact_attempts` attempts,
    `notice_business_days` business days after the last one."""

    contact_attempts: int = 3
    notice_business_days: int = 5

    def __post_init__(self) -> None:
        if self.contact_attempts < 1 or self.notice_business_days < 0:
            raise InvalidActionArgument(
                "auto_close needs contact_attempts >= 1 and notice_business_days >= 0"
            )


class AutoCloseDirective(StrEnum):
    """What the service does with the ticket's pending auto-close."""

    NONE = "none"  # nothing to do
    SCHEDULE = "schedule"  # at cal.add_business_days(occurred_at, notice_business_days)
    CANCEL = "cancel"  # drop a pending auto-close: no longer waiting on the customer


def contact_attempts_after(action: Action, attempts: int, new_status: TicketStatus) -> int:
    """Contact attempts counted after `action` (see the module docstring)."""
    if new_status is not S.WAITING_ON_CUSTOMER:
        return 0
    if action is Action.REQUEST_INFO:
        return 1
    if action is Action.CONTACT_ATTEMPT:
        return attempts + 1
    return attempts


def auto_close_directive(
    attempts_before: int,
    attempts_after: int,
    new_status: TicketStatus,
    policy: AutoClosePolicy | None,
) -> AutoCloseDirective:
    """Schedule when this action reaches the attempt threshold; cancel when the
    ticket stops waiting on the customer after it was reached. Attempts beyond
    the threshold do not push the deadline back (the notice already ran)."""
    if policy is None:
        return AutoCloseDirective.NONE
    n = policy.contact_attempts
    if new_status is not S.WAITING_ON_CUSTOMER:
        return AutoCloseDirective.CANCEL if attempts_before >= n else AutoCloseDirective.NONE
    if attempts_before < n <= attempts_after:
        return AutoCloseDirective.SCHEDULE
    return AutoCloseDirective.NONE


# ------------------------------------------------------------------ whole action


@dataclass(frozen=True)
class LifecyclePolicy:
    """The plan settings the lifecycle needs."""

    pause_on: frozenset[TicketStatus] = DEFAULT_PAUSE_ON
    auto_close: AutoClosePolicy | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "pause_on", _check_pause_on(self.pause_on))


DEFAULT_POLICY = LifecyclePolicy()


@dataclass(frozen=True)
class TicketState:
    """The part of a ticket the lifecycle reads."""

    status: TicketStatus
    close_reason: CloseReason | None = None
    contact_attempts: int = 0


@dataclass(frozen=True)
class ActionOutcome:
    status: TicketStatus
    close_reason: CloseReason | None
    contact_attempts: int
    clock_ops: ClockOps = field(default_factory=ClockOps)
    auto_close: AutoCloseDirective = AutoCloseDirective.NONE
    to_tier: int | None = None


def apply_action(
    ticket: TicketState,
    action: Action,
    *,
    to_tier: int | None = None,
    reason: CloseReason | None = None,
    policy: LifecyclePolicy = DEFAULT_POLICY,
) -> ActionOutcome:
    """Everything `action` does to a ticket: status, close reason, contact
    attempts, clock operations and the auto-close directive. `reason` is
    required by `close` (not `confirmed`, which only `confirm` sets)."""
    status = next_status(ticket.status, action, close_reason=ticket.close_reason, to_tier=to_tier)
    if action is Action.CLOSE:
        if reason is None or reason not in AGENT_CLOSE_REASONS:
            allowed = ", ".join(sorted(AGENT_CLOSE_REASONS))
            raise InvalidActionArgument(f"close needs a reason among {allowed}")
        close_reason: CloseReason | None = reason
    elif reason is not None:
        raise InvalidActionArgument(f"a close reason only applies to close, not {action}")
    elif action is Action.CONFIRM:
        close_reason = CloseReason.CONFIRMED
    elif action is Action.REOPEN:
        close_reason = None
    else:
        close_reason = ticket.close_reason
    attempts = contact_attempts_after(action, ticket.contact_attempts, status)
    return ActionOutcome(
        status=status,
        close_reason=close_reason,
        contact_attempts=attempts,
        clock_ops=clock_ops(action, ticket.status, status, policy.pause_on),
        auto_close=auto_close_directive(
            ticket.contact_attempts, attempts, status, policy.auto_close
        ),
        to_tier=to_tier,
    )


# ---------------------------------------------------------------------- occurred_at


def _aware(name: str, value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidOccurredAt("naive", f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def resolve_occurred_at(
    occurred_at: datetime,
    now: datetime,
    bound: datetime | None,
    *,
    tolerance: timedelta = FUTURE_TOLERANCE,
) -> datetime:
    """Validate a command's `occurred_at` and return the UTC instant to record:
    never in the future (up to `tolerance` ahead is clock skew and becomes
    `now`), never before `bound`, the ticket's latest event recorded by a person
    (see the module docstring; equal is fine: several things can happen in the
    same second)."""
    occurred_at = _aware("occurred_at", occurred_at)
    now = _aware("now", now)
    if occurred_at > now + tolerance:
        raise InvalidOccurredAt(
            "in_future", f"occurred_at {occurred_at.isoformat()} is in the future"
        )
    recorded = min(occurred_at, now)
    if bound is not None:
        bound = _aware("bound", bound)
        if occurred_at < bound:
            raise InvalidOccurredAt(
                "before_last_event",
                f"occurred_at {occurred_at.isoformat()} precedes the ticket's latest "
                f"event recorded by a person, at {bound.isoformat()}",
            )
        # Another replica's clock may run slightly ahead of ours: clamping to our
        # `now` must not move the instant before an event it legitimately follows.
        recorded = max(recorded, bound)
    return recorded


def check_occurred_at(occurred_at: datetime, now: datetime, bound: datetime | None) -> None:
    """Raise InvalidOccurredAt unless `occurred_at` is acceptable (see
    `resolve_occurred_at`, which also gives the instant to record)."""
    resolve_occurred_at(occurred_at, now, bound)


def auto_close_stands(
    status: TicketStatus, auto_close_at: datetime | None, closed_at: datetime
) -> bool:
    """Whether an auto-close that fired at `closed_at` still stands once an action dated
    before it is taken into account: the ticket, as the late action leaves it, still
    waits on the customer with a close pending by that instant."""
    return (
        status is S.WAITING_ON_CUSTOMER and auto_close_at is not None and auto_close_at <= closed_at
    )
