"""Ticket statuses, actions and the clock operations they imply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.lifecycle import (
    ALL_METRICS,
    CUSTOMER_ACTIONS,
    DEFAULT_PAUSE_ON,
    FUTURE_TOLERANCE,
    OPEN_STATUSES,
    Action,
    ActionNotAllowed,
    AutoCloseDirective,
    AutoClosePolicy,
    ClockOps,
    CloseReason,
    InvalidActionArgument,
    InvalidOccurredAt,
    LifecyclePolicy,
    TicketState,
    allowed_actions,
    allowed_customer_actions,
    apply_action,
    apply_clock_ops,
    auto_close_directive,
    auto_close_stands,
    check_occurred_at,
    clock_ops,
    contact_attempts_after,
    next_status,
    resolve_occurred_at,
)
from app.domain.sla import ALWAYS_OPEN, Clock, ClockState, Target, read, start_clock, stop
from app.domain.vocab import Metric, TicketStatus

S = TicketStatus
A = Action
FR, RES, CB = Metric.FIRST_RESPONSE, Metric.RESOLUTION, Metric.CALLBACK
T0 = datetime(2024, 6, 3, 9, tzinfo=UTC)
MIN = timedelta(minutes=1)


# ------------------------------------------------------------------------ statuses


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        (S.NEW, A.ASSIGN, S.OPEN),
        (S.OPEN, A.ASSIGN, S.OPEN),
        (S.IN_PROGRESS, A.ASSIGN, S.IN_PROGRESS),
        (S.WAITING_ON_CUSTOMER, A.ASSIGN, S.WAITING_ON_CUSTOMER),
        (S.NEW, A.REPLY, S.IN_PROGRESS),
        (S.OPEN, A.REPLY, S.IN_PROGRESS),
        (S.WAITING_ON_CUSTOMER, A.REPLY, S.WAITING_ON_CUSTOMER),
        (S.WAITING_ON_VENDOR, A.REPLY, S.WAITING_ON_VENDOR),
        (S.RESOLVED, A.REPLY, S.RESOLVED),
        (S.NEW, A.NOTE, S.NEW),
        (S.CLOSED, A.NOTE, S.CLOSED),
        (S.OPEN, A.REQUEST_INFO, S.WAITING_ON_CUSTOMER),
        (S.WAITING_ON_VENDOR, A.REQUEST_INFO, S.WAITING_ON_CUSTOMER),
        (S.WAITING_ON_CUSTOMER, A.CONTACT_ATTEMPT, S.WAITING_ON_CUSTOMER),
        (S.WAITING_ON_CUSTOMER, A.CUSTOMER_REPLY, S.IN_PROGRESS),
        (S.NEW, A.CUSTOMER_REPLY, S.NEW),
        (S.WAITING_ON_VENDOR, A.CUSTOMER_REPLY, S.WAITING_ON_VENDOR),
        (S.IN_PROGRESS, A.CHANGE, S.IN_PROGRESS),
        (S.NEW, A.CALLBACK, S.IN_PROGRESS),
        (S.WAITING_ON_CUSTOMER, A.CALLBACK, S.WAITING_ON_CUSTOMER),
        (S.WAITING_ON_CUSTOMER, A.RESOLVE, S.RESOLVED),
        (S.NEW, A.RESOLVE, S.RESOLVED),
        (S.RESOLVED, A.CONFIRM, S.CLOSED),
        (S.RESOLVED, A.REOPEN, S.IN_PROGRESS),
        (S.RESOLVED, A.CLOSE, S.CLOSED),
        (S.NEW, A.CLOSE, S.CLOSED),
    ],
)
def test_status_table(status: TicketStatus, action: Action, expected: TicketStatus) -> None:
    assert next_status(status, action) is expected


@pytest.mark.parametrize(
    ("status", "to_tier", "expected"),
    [
        (S.IN_PROGRESS, 2, S.IN_PROGRESS),
        (S.NEW, 3, S.NEW),
        (S.IN_PROGRESS, 4, S.WAITING_ON_VENDOR),  # L4: the product vendor (seed 004)
        (S.WAITING_ON_CUSTOMER, 4, S.WAITING_ON_VENDOR),
        (S.WAITING_ON_VENDOR, 3, S.IN_PROGRESS),  # back from the vendor
        (S.WAITING_ON_CUSTOMER, 2, S.WAITING_ON_CUSTOMER),
    ],
)
def test_escalation(status: TicketStatus, to_tier: int, expected: TicketStatus) -> None:
    assert next_status(status, A.ESCALATE, to_tier=to_tier) is expected


@pytest.mark.parametrize("to_tier", [None, 0, 5, True])
def test_escalation_needs_a_tier_within_1_to_4(to_tier: int | None) -> None:
    with pytest.raises(InvalidActionArgument):
        next_status(S.OPEN, A.ESCALATE, to_tier=to_tier)


def test_to_tier_is_only_for_escalate() -> None:
    with pytest.raises(InvalidActionArgument):
        next_status(S.OPEN, A.REPLY, to_tier=2)


def test_disallowed_action_names_status_and_allowed_actions() -> None:
    with pytest.raises(ActionNotAllowed) as err:
        next_status(S.NEW, A.CONTACT_ATTEMPT)
    assert err.value.status is S.NEW and err.value.action is A.CONTACT_ATTEMPT
    assert A.REPLY in err.value.allowed and A.CONTACT_ATTEMPT not in err.value.allowed
    assert "contact_attempt" in str(err.value) and "new" in str(err.value)
    with pytest.raises(ActionNotAllowed):
        next_status(S.WAITING_ON_CUSTOMER, A.REQUEST_INFO)  # chase with contact_attempt
    with pytest.raises(ActionNotAllowed):
        next_status(S.RESOLVED, A.CHANGE)
    with pytest.raises(ActionNotAllowed):
        next_status(S.IN_PROGRESS, A.CONFIRM)


def test_closed_ticket_reopen_depends_on_the_reason() -> None:
    for reason in (CloseReason.DUPLICATE, CloseReason.OUT_OF_SCOPE, CloseReason.OTHER):
        assert allowed_actions(S.CLOSED, reason) == {A.NOTE, A.REOPEN}
        assert next_status(S.CLOSED, A.REOPEN, close_reason=reason) is S.IN_PROGRESS
    for final in (CloseReason.NO_RESPONSE, CloseReason.CONFIRMED, None):
        assert allowed_actions(S.CLOSED, final) == {A.NOTE}
    # seed 004: closed for lack of response -> a new ticket must be opened
    with pytest.raises(ActionNotAllowed) as err:
        next_status(S.CLOSED, A.REOPEN, close_reason=CloseReason.NO_RESPONSE)
    assert err.value.allowed == (A.NOTE,)
    assert err.value.close_reason is CloseReason.NO_RESPONSE
    assert "closed as no_response" in str(err.value)


def test_customer_actions() -> None:
    assert {A.CUSTOMER_REPLY, A.CONFIRM, A.REOPEN} == CUSTOMER_ACTIONS
    assert allowed_customer_actions(S.RESOLVED) == {A.CONFIRM, A.REOPEN}
    assert allowed_customer_actions(S.WAITING_ON_CUSTOMER) == {A.CUSTOMER_REPLY}
    assert allowed_customer_actions(S.CLOSED, CloseReason.DUPLICATE) == {A.REOPEN}
    assert allowed_customer_actions(S.CLOSED, CloseReason.NO_RESPONSE) == frozenset()


def test_every_status_has_a_row() -> None:
    for status in TicketStatus:
        assert A.NOTE in allowed_actions(status, CloseReason.OTHER)
    for status in OPEN_STATUSES:
        assert {A.RESOLVE, A.CLOSE, A.ESCALATE, A.CHANGE} <= allowed_actions(status)


# ------------------------------------------------------------------------ clock ops


def test_first_reply_stops_first_response() -> None:
    assert clock_ops(A.REPLY, S.OPEN, S.IN_PROGRESS) == ClockOps(stop=frozenset({FR}))


def test_request_info_pauses_and_customer_reply_resumes() -> None:
    ops = clock_ops(A.REQUEST_INFO, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER)
    assert ops == ClockOps(stop=frozenset({FR}), pause=frozenset({RES, CB}))
    ops = clock_ops(A.CUSTOMER_REPLY, S.WAITING_ON_CUSTOMER, S.IN_PROGRESS)
    assert ops == ClockOps(resume=ALL_METRICS)


def test_waiting_on_vendor_pauses_only_if_the_plan_says_so() -> None:
    assert clock_ops(A.ESCALATE, S.IN_PROGRESS, S.WAITING_ON_VENDOR).is_empty
    both = DEFAULT_PAUSE_ON | {S.WAITING_ON_VENDOR}
    ops = clock_ops(A.ESCALATE, S.IN_PROGRESS, S.WAITING_ON_VENDOR, both)
    assert ops == ClockOps(pause=ALL_METRICS)
    # customer -> vendor: paused before, paused after: nothing to do
    assert clock_ops(A.ESCALATE, S.WAITING_ON_CUSTOMER, S.WAITING_ON_VENDOR, both).is_empty
    # customer -> vendor with the default plan: our problem again, clocks run
    ops = clock_ops(A.ESCALATE, S.WAITING_ON_CUSTOMER, S.WAITING_ON_VENDOR)
    assert ops == ClockOps(resume=ALL_METRICS)
    with pytest.raises(InvalidActionArgument):
        clock_ops(A.NOTE, S.OPEN, S.OPEN, {S.IN_PROGRESS})


def test_resolve_close_callback_reopen_change() -> None:
    assert clock_ops(A.RESOLVE, S.WAITING_ON_CUSTOMER, S.RESOLVED) == ClockOps(stop=ALL_METRICS)
    assert clock_ops(A.CLOSE, S.NEW, S.CLOSED) == ClockOps(stop=ALL_METRICS)
    assert clock_ops(A.CALLBACK, S.NEW, S.IN_PROGRESS) == ClockOps(stop=frozenset({CB, FR}))
    reopen = clock_ops(A.REOPEN, S.RESOLVED, S.IN_PROGRESS)
    assert reopen == ClockOps(continue_stopped=frozenset({RES}))
    assert clock_ops(A.CHANGE, S.OPEN, S.OPEN) == ClockOps(retarget=True)
    assert clock_ops(A.NOTE, S.OPEN, S.OPEN).is_empty


def _clocks() -> dict[Metric, Clock]:
    return {
        FR: start_clock(Target(metric=FR, minutes=60), T0),
        RES: start_clock(Target(metric=RES, minutes=480), T0),
    }


def test_apply_clock_ops_touches_only_clocks_in_the_right_state() -> None:
    cal = ALWAYS_OPEN
    clocks = _clocks()
    ops = clock_ops(A.REQUEST_INFO, S.IN_PROGRESS, S.WAITING_ON_CUSTOMER)
    clocks = apply_clock_ops(clocks, ops, T0 + 10 * MIN, lambda c: cal)
    assert clocks[FR].is_stopped and clocks[RES].is_paused
    assert clocks[RES].elapsed == 10 * MIN
    ops = clock_ops(A.CUSTOMER_REPLY, S.WAITING_ON_CUSTOMER, S.IN_PROGRESS)
    clocks = apply_clock_ops(clocks, ops, T0 + 70 * MIN, lambda c: cal)
    assert clocks[FR].is_stopped and clocks[RES].is_running  # stopped stays history
    assert read(clocks[FR], T0 + 300 * MIN, cal).state is ClockState.MET
    ops = clock_ops(A.RESOLVE, S.IN_PROGRESS, S.RESOLVED)
    resolved = apply_clock_ops(clocks, ops, T0 + 100 * MIN, lambda c: cal)
    assert resolved[RES].is_stopped and resolved[RES].elapsed == 40 * MIN
    ops = clock_ops(A.REOPEN, S.RESOLVED, S.IN_PROGRESS)
    reopened = apply_clock_ops(resolved, ops, T0 + 200 * MIN, lambda c: cal)
    assert reopened[RES].is_running and reopened[RES].elapsed == 40 * MIN
    assert reopened[FR] is resolved[FR]


def test_closed_as_duplicate_has_no_breach_afterwards() -> None:
    cal = ALWAYS_OPEN
    ops = clock_ops(A.CLOSE, S.NEW, S.CLOSED)
    clocks = apply_clock_ops(_clocks(), ops, T0 + 5 * MIN, lambda c: cal)
    for clock in clocks.values():
        assert read(clock, T0 + timedelta(days=30), cal).state is ClockState.MET


def test_apply_clock_ops_ignores_missing_clocks() -> None:
    only_res = {RES: stop(_clocks()[RES], T0, ALWAYS_OPEN)}
    ops = clock_ops(A.CALLBACK, S.NEW, S.IN_PROGRESS)
    assert apply_clock_ops(only_res, ops, T0, lambda c: ALWAYS_OPEN) == only_res


# --------------------------------------------------------- attempts and auto-close


def test_seed_004_three_attempts_then_auto_close() -> None:
    policy = LifecyclePolicy(auto_close=AutoClosePolicy(contact_attempts=3, notice_business_days=5))
    t = TicketState(S.IN_PROGRESS)
    out = apply_action(t, A.REQUEST_INFO, policy=policy)
    assert (out.status, out.contact_attempts, out.auto_close) == (
        S.WAITING_ON_CUSTOMER,
        1,
        AutoCloseDirective.NONE,
    )
    assert out.clock_ops.pause == {RES, CB}
    t = TicketState(out.status, out.close_reason, out.contact_attempts)
    out = apply_action(t, A.CONTACT_ATTEMPT, policy=policy)
    assert out.contact_attempts == 2 and out.auto_close is AutoCloseDirective.NONE
    t = TicketState(out.status, out.close_reason, out.contact_attempts)
    out = apply_action(t, A.CONTACT_ATTEMPT, policy=policy)
    assert out.contact_attempts == 3 and out.auto_close is AutoCloseDirective.SCHEDULE
    t = TicketState(out.status, out.close_reason, out.contact_attempts)
    fourth = apply_action(t, A.CONTACT_ATTEMPT, policy=policy)
    assert fourth.auto_close is AutoCloseDirective.NONE  # the notice already runs
    # the customer answers in time: the pending auto-close is cancelled
    replied = apply_action(t, A.CUSTOMER_REPLY, policy=policy)
    assert replied.status is S.IN_PROGRESS and replied.contact_attempts == 0
    assert replied.auto_close is AutoCloseDirective.CANCEL
    assert replied.clock_ops.resume == ALL_METRICS
    # ... or not: the timer closes it for lack of response, and it stays closed
    closed = apply_action(t, A.CLOSE, reason=CloseReason.NO_RESPONSE, policy=policy)
    assert closed.status is S.CLOSED and closed.close_reason is CloseReason.NO_RESPONSE
    assert closed.clock_ops.stop == ALL_METRICS
    with pytest.raises(ActionNotAllowed):
        apply_action(TicketState(S.CLOSED, CloseReason.NO_RESPONSE), A.REOPEN)


def test_no_auto_close_without_policy() -> None:
    assert auto_close_directive(2, 3, S.WAITING_ON_CUSTOMER, None) is AutoCloseDirective.NONE
    assert auto_close_directive(0, 1, S.WAITING_ON_CUSTOMER, AutoClosePolicy(1, 5)) is (
        AutoCloseDirective.SCHEDULE
    )
    with pytest.raises(InvalidActionArgument):
        AutoClosePolicy(contact_attempts=0)


def test_contact_attempts_reset_when_not_waiting() -> None:
    assert contact_attempts_after(A.ESCALATE, 2, S.WAITING_ON_VENDOR) == 0
    assert contact_attempts_after(A.NOTE, 2, S.WAITING_ON_CUSTOMER) == 2
    assert contact_attempts_after(A.REQUEST_INFO, 0, S.WAITING_ON_CUSTOMER) == 1


def test_close_reasons() -> None:
    t = TicketState(S.OPEN)
    with pytest.raises(InvalidActionArgument):
        apply_action(t, A.CLOSE)
    with pytest.raises(InvalidActionArgument):
        apply_action(t, A.CLOSE, reason=CloseReason.CONFIRMED)  # only confirm sets it
    with pytest.raises(InvalidActionArgument):
        apply_action(t, A.REPLY, reason=CloseReason.OTHER)
    confirmed = apply_action(TicketState(S.RESOLVED), A.CONFIRM)
    assert confirmed.status is S.CLOSED and confirmed.close_reason is CloseReason.CONFIRMED
    dup = apply_action(t, A.CLOSE, reason=CloseReason.DUPLICATE)
    reopened = apply_action(TicketState(dup.status, dup.close_reason), A.REOPEN)
    assert reopened.status is S.IN_PROGRESS and reopened.close_reason is None
    assert reopened.clock_ops.continue_stopped == {RES}


def test_escalate_outcome_carries_the_tier() -> None:
    out = apply_action(TicketState(S.IN_PROGRESS), A.ESCALATE, to_tier=4)
    assert out.status is S.WAITING_ON_VENDOR and out.to_tier == 4
    vendor_pauses = LifecyclePolicy(pause_on=frozenset({S.WAITING_ON_VENDOR}))
    out = apply_action(TicketState(S.IN_PROGRESS), A.ESCALATE, to_tier=4, policy=vendor_pauses)
    assert out.clock_ops.pause == ALL_METRICS
    with pytest.raises(InvalidActionArgument):
        LifecyclePolicy(pause_on=frozenset({S.RESOLVED}))


# ---------------------------------------------------------------------- occurred_at


def test_occurred_at_rules() -> None:
    now = T0 + timedelta(hours=1)
    check_occurred_at(T0, now, None)
    check_occurred_at(T0, now, T0)  # same instant as the latest event is fine
    assert resolve_occurred_at(now + timedelta(seconds=1), now, T0) == now  # skew: clamped
    assert resolve_occurred_at(now + FUTURE_TOLERANCE, now, None) == now
    with pytest.raises(InvalidOccurredAt) as err:
        check_occurred_at(now + timedelta(seconds=3), now, None)
    assert err.value.code == "in_future"
    with pytest.raises(InvalidOccurredAt) as err:
        check_occurred_at(T0 - MIN, now, T0)
    assert err.value.code == "before_last_event"
    with pytest.raises(InvalidOccurredAt) as err:
        check_occurred_at(datetime(2024, 6, 3, 9), now, None)
    assert err.value.code == "naive"
    assert isinstance(err.value, ValueError)
    # another replica recorded the latest event a second "ahead" of our now
    ahead = now + timedelta(seconds=1)
    assert resolve_occurred_at(ahead, now, ahead) == ahead


def test_phone_call_logged_later_counts_from_when_it_happened() -> None:
    taken, logged = T0 + 5 * MIN, T0 + 20 * MIN
    assert resolve_occurred_at(taken, logged, T0) == taken


# ---------------------------------------------------------------- property: actions


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(list(Action)),
            st.sampled_from([None, 1, 2, 3, 4]),
            st.sampled_from([None, *CloseReason]),
        ),
        max_size=40,
    ),
    pause_vendor=st.booleans(),
)
def test_random_action_sequences_keep_the_lifecycle_consistent(
    steps: list[tuple[Action, int | None, CloseReason | None]], pause_vendor: bool
) -> None:
    pause_on = DEFAULT_PAUSE_ON | ({S.WAITING_ON_VENDOR} if pause_vendor else set())
    policy = LifecyclePolicy(pause_on=frozenset(pause_on), auto_close=AutoClosePolicy())
    ticket = TicketState(S.NEW)
    for action, tier, reason in steps:
        tier = tier if action is A.ESCALATE else None
        reason = reason if action is A.CLOSE else None
        allowed = allowed_actions(ticket.status, ticket.close_reason)
        try:
            out = apply_action(ticket, action, to_tier=tier, reason=reason, policy=policy)
        except ActionNotAllowed as err:
            assert action not in allowed
            assert set(err.allowed) == allowed
            continue
        except InvalidActionArgument:
            assert action in {A.ESCALATE, A.CLOSE}
            continue
        assert action in allowed
        assert out.status is next_status(
            ticket.status, action, close_reason=ticket.close_reason, to_tier=tier
        )
        assert (out.close_reason is not None) == (out.status is S.CLOSED)
        assert (out.contact_attempts > 0) <= (out.status is S.WAITING_ON_CUSTOMER)
        ops = out.clock_ops
        assert not (ops.pause & ops.resume) and not (ops.pause & ops.stop)
        if out.status in (S.RESOLVED, S.CLOSED) and ticket.status in OPEN_STATUSES:
            assert ops.stop == ALL_METRICS
        if ops.pause:
            assert out.status in pause_on and ticket.status not in pause_on
        if ops.resume:
            assert ticket.status in pause_on and out.status not in pause_on
        if out.close_reason is CloseReason.NO_RESPONSE:
            assert allowed_actions(out.status, out.close_reason) == {A.NOTE}
        ticket = TicketState(out.status, out.close_reason, out.contact_attempts)


def test_an_auto_close_stands_only_if_the_late_action_leaves_the_customer_awaited() -> None:
    closed_at = T0 + timedelta(days=7)
    assert auto_close_stands(S.WAITING_ON_CUSTOMER, closed_at, closed_at)
    assert not auto_close_stands(S.IN_PROGRESS, None, closed_at)  # a customer reply
    assert not auto_close_stands(S.RESOLVED, None, closed_at)
    assert not auto_close_stands(S.WAITING_ON_CUSTOMER, None, closed_at)  # cancelled
    assert not auto_close_stands(S.WAITING_ON_CUSTOMER, closed_at + timedelta(1), closed_at)
