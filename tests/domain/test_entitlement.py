"""Entitlement decisions, add-on coverage and contract periods (pure, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.entitlement import (
    ContactInfo,
    ContractTerms,
    Period,
    PlanTerms,
    Reason,
    RequiresCycle,
    coverage_of,
    decide,
    find_requires_cycle,
    local_date,
    requires_chain,
    uncovered,
)
from app.domain.sla import Target, targets_from_config
from app.domain.vocab import Category, Channel, ContactRole, Metric, Severity

D = date.fromisoformat
CAL = uuid.uuid4()


def plan(
    code: str,
    level: int = 1,
    *,
    requires: str | None = None,
    channels: tuple[str, ...] = ("email", "web"),
    excluded: tuple[str, ...] = (),
    targets: tuple[Target, ...] = (),
    timezone: str = "America/Vancouver",
) -> PlanTerms:
    return PlanTerms(
        id=uuid.uuid4(),
        code=code,
        level=level,
        requires=requires,
        calendar_id=CAL,
        timezone=timezone,
        channels=frozenset(Channel(c) for c in channels),
        excluded_categories=frozenset(Category(c) for c in excluded),
        targets=targets,
    )


def contract(code: str, starts: str, ends: str | None = None) -> ContractTerms:
    return ContractTerms(
        id=uuid.uuid4(), plan_code=code, starts_on=D(starts), ends_on=D(ends) if ends else None
    )


def plans_of(*items: PlanTerms) -> dict[str, PlanTerms]:
    return {p.code: p for p in items}


AT = datetime(2026, 3, 10, 18, 0, tzinfo=UTC)  # Tuesday 11:00 in Vancouver

# Seed 002: Standard (email, web; no custom work; tier targets) and Elite on top of it.
STANDARD_TARGETS = targets_from_config(
    [
        {"metric": "first_response", "severities": ["critical"], "minutes": 60, "clock": "24x7"},
        {"metric": "first_response", "severities": ["high"], "minutes": 120},
        {"metric": "first_response", "minutes": 480},
        {"metric": "resolution", "severities": ["critical"], "minutes": 480, "clock": "24x7"},
    ]
)
STANDARD = plan("standard", 1, excluded=("customization", "training"), targets=STANDARD_TARGETS)
ELITE = plan(
    "elite",
    2,
    requires="standard",
    channels=("phone",),
    excluded=("training",),
    targets=targets_from_config(
        [{"metric": "first_response", "severities": ["critical"], "minutes": 30, "clock": "24x7"}]
    ),
)
VITRIUM = plans_of(STANDARD, ELITE)


# --------------------------------------------------------------------- reasons


def test_allowed_under_the_only_contract() -> None:
    held = contract("standard", "2026-01-01", "2026-12-31")
    e = decide(AT, [held], VITRIUM, channel=Channel.EMAIL, category=Category.BUG)
    assert e.allowed and e.reasons == ()
    assert e.plan == STANDARD and e.contract == held and e.contracts == (held,)
    assert e.calendar_id == CAL
    assert e.channels == {Channel.EMAIL, Channel.WEB}


def test_no_contract_at_all_or_only_future_ones() -> None:
    assert decide(AT, [], VITRIUM).reasons == (Reason.NO_ACTIVE_CONTRACT,)
    future = contract("standard", "2026-06-01")
    e = decide(AT, [future], VITRIUM)
    assert not e.allowed and e.reasons == (Reason.NO_ACTIVE_CONTRACT,) and e.plan is None


def test_expired_when_every_contract_ended_before() -> None:
    old = [
        contract("standard", "2024-01-01", "2024-12-31"),
        contract("standard", "2025-01-01", "2026-03-09"),
    ]
    assert decide(AT, old, VITRIUM).reasons == (Reason.CONTRACT_EXPIRED,)
    # An expired contract and a renewal that has not started yet: not "expired".
    renewal = contract("standard", "2026-04-01")
    assert decide(AT, [*old, renewal], VITRIUM).reasons == (Reason.NO_ACTIVE_CONTRACT,)


def test_contacts_end_users_and_deactivated() -> None:
    held = [contract("standard", "2026-01-01")]
    end_user = ContactInfo(id=uuid.uuid4(), role=ContactRole.END_USER)
    e = decide(AT, held, VITRIUM, contact=end_user)
    assert e.reasons == (Reason.CONTACT_NOT_AUTHORIZED,) and e.plan == STANDARD
    gone = ContactInfo(id=uuid.uuid4(), role=ContactRole.END_USER, active=False)
    assert decide(AT, held, VITRIUM, contact=gone).reasons == (
        Reason.CONTACT_INACTIVE,
        Reason.CONTACT_NOT_AUTHORIZED,
    )
    fine = ContactInfo(id=uuid.uuid4(), role=ContactRole.AUTHORIZED)
    assert decide(AT, held, VITRIUM, contact=fine).allowed


def test_channel_and_category_of_the_plan() -> None:
    held = [contract("standard", "2026-01-01")]
    e = decide(AT, held, VITRIUM, channel=Channel.PHONE, category=Category.CUSTOMIZATION)
    assert e.reasons == (Reason.CHANNEL_NOT_IN_PLAN, Reason.CATEGORY_EXCLUDED)
    assert not e.allowed and e.plan == STANDARD  # the plan is still reported


def test_reasons_come_in_a_stable_order() -> None:
    gone = ContactInfo(id=uuid.uuid4(), role=ContactRole.END_USER, active=False)
    e = decide(AT, [], VITRIUM, contact=gone, channel=Channel.PHONE)
    # No plan: the plan-dependent reasons cannot be judged.
    assert e.reasons == (
        Reason.NO_ACTIVE_CONTRACT,
        Reason.CONTACT_INACTIVE,
        Reason.CONTACT_NOT_AUTHORIZED,
    )


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(datetime(2026, 3, 10, 12, 0), [], VITRIUM)


# --------------------------------------------------------------------- add-ons


def test_an_add_on_applies_on_top_of_its_base() -> None:
    base = contract("standard", "2026-01-01")
    addon = contract("elite", "2026-01-01", "2026-12-31")
    e = decide(AT, [base, addon], VITRIUM, channel=Channel.PHONE, category=Category.CUSTOMIZATION)
    assert e.allowed, e.reasons  # phone from Elite; custom work only Standard excludes
    assert e.plan == ELITE and e.contract == addon and e.contracts == (addon, base)
    assert e.coverage is not None
    assert [p.code for p in e.coverage.chain] == ["elite", "standard"]
    assert e.channels == {Channel.PHONE, Channel.EMAIL, Channel.WEB}
    assert e.coverage.excluded_categories == {Category.TRAINING}  # excluded by both
    assert decide(AT, [base, addon], VITRIUM, category=Category.TRAINING).reasons == (
        Reason.CATEGORY_EXCLUDED,
    )
    # Targets: Elite's critical response, Standard's for everything Elite does not promise.
    cov = e.coverage
    critical = cov.select(Metric.FIRST_RESPONSE, Severity.CRITICAL)
    assert critical is not None and (critical.plan_code, critical.target.minutes) == ("elite", 30)
    high = cov.select(Metric.FIRST_RESPONSE, Severity.HIGH)
    assert high is not None and (high.plan_code, high.target.minutes) == ("standard", 120)
    fix = cov.select(Metric.RESOLUTION, Severity.CRITICAL)
    assert fix is not None and (fix.plan_code, fix.target.minutes) == ("standard", 480)
    assert cov.select(Metric.RESOLUTION, Severity.LOW) is None
    assert set(cov.select_all(Severity.CRITICAL)) == {Metric.FIRST_RESPONSE, Metric.RESOLUTION}
    assert [t.plan_code for t in e.targets] == ["elite", *["standard"] * 4]


def test_an_add_on_without_its_base_does_not_count() -> None:
    addon = contract("elite", "2026-01-01")
    base_later = contract("standard", "2026-04-01")
    e = decide(AT, [addon, base_later], VITRIUM)
    assert e.reasons == (Reason.NO_ACTIVE_CONTRACT,) and e.plan is None


def test_the_highest_level_wins_and_add_ons_win_level_ties() -> None:
    premium = plan("premium", 2, requires="standard")
    plus = plan("premium-plus", 3, requires="standard")
    catalog = plans_of(STANDARD, premium, plus)
    held = [contract(c, "2026-01-01") for c in ("standard", "premium", "premium-plus")]
    e = decide(AT, held, catalog)
    # Two options on one base do not combine: only the higher one's chain applies.
    assert e.plan == plus and e.coverage is not None
    assert [p.code for p in e.coverage.chain] == ["premium-plus", "standard"]
    same_level = plan("same", 1, requires="standard")
    e = decide(AT, [held[0], contract("same", "2026-01-01")], plans_of(STANDARD, same_level))
    assert e.plan == same_level


def test_unrelated_equal_plans_are_chosen_deterministically() -> None:
    a, b = plan("a-plan", 1), plan("b-plan", 1)
    held = [contract("b-plan", "2026-01-01"), contract("a-plan", "2026-01-01")]
    assert decide(AT, held, plans_of(a, b)).plan == a
    assert decide(AT, held[::-1], plans_of(b, a)).plan == a


def test_contract_dates_are_local_dates_of_the_plan() -> None:
    # Vancouver: 2026-03-31 ends at 2026-04-01T07:00Z (PDT, UTC-7).
    held = [contract("standard", "2026-03-01", "2026-03-31")]
    last_minute = datetime(2026, 4, 1, 6, 59, tzinfo=UTC)
    assert decide(last_minute, held, VITRIUM).allowed
    next_day = datetime(2026, 4, 1, 7, 0, tzinfo=UTC)
    assert decide(next_day, held, VITRIUM).reasons == (Reason.CONTRACT_EXPIRED,)
    # ... and 2026-03-01 starts at 08:00Z (PST, UTC-8).
    assert decide(datetime(2026, 3, 1, 7, 59, tzinfo=UTC), held, VITRIUM).reasons == (
        Reason.NO_ACTIVE_CONTRACT,
    )
    assert decide(datetime(2026, 3, 1, 8, 0, tzinfo=UTC), held, VITRIUM).allowed
    # The same dates on a plan counted in UTC+1 (seed 001's Etc/GMT-1).
    vivvo = plan("vivvo", timezone="Etc/GMT-1")
    held = [contract("vivvo", "2026-03-01", "2026-03-31")]
    assert decide(datetime(2026, 3, 31, 22, 59, tzinfo=UTC), held, plans_of(vivvo)).allowed
    assert not decide(datetime(2026, 3, 31, 23, 0, tzinfo=UTC), held, plans_of(vivvo)).allowed


def test_local_date() -> None:
    at = datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    assert local_date(at, "America/Vancouver") == D("2025-12-31")
    assert local_date(at, "Etc/GMT-1") == D("2026-01-01")


# ---------------------------------------------------------------------- chains


def test_requires_chains_and_cycles() -> None:
    assert [p.code for p in requires_chain("elite", VITRIUM)] == ["elite", "standard"]
    assert coverage_of("standard", VITRIUM).chain == (STANDARD,)
    looped = plans_of(plan("a", requires="b"), plan("b", requires="a"))
    with pytest.raises(RequiresCycle, match="a -> b -> a"):
        requires_chain("a", looped)
    assert find_requires_cycle({"a": "b", "b": "c", "c": None}) is None
    assert find_requires_cycle({"a": "b", "b": "c", "c": "a"}) == ["a", "b", "c", "a"]
    assert find_requires_cycle({"x": "x"}) == ["x", "x"]
    # A contract whose plan sits in a cycle never counts (the API refuses cycles anyway).
    e = decide(AT, [contract("a", "2026-01-01"), contract("b", "2026-01-01")], looped)
    assert e.reasons == (Reason.NO_ACTIVE_CONTRACT,)


# --------------------------------------------------------------------- periods


def test_periods() -> None:
    year = Period(D("2026-01-01"), D("2026-12-31"))
    assert year.contains(D("2026-12-31")) and not year.contains(D("2027-01-01"))
    assert year.overlaps(Period(D("2026-12-31"))) and not year.overlaps(Period(D("2027-01-01")))
    assert Period(D("2020-01-01")).overlaps(Period(D("2030-01-01")))
    with pytest.raises(ValueError):
        Period(D("2026-02-01"), D("2026-01-31"))


def test_uncovered_finds_every_gap() -> None:
    want = Period(D("2026-01-01"), D("2026-12-31"))
    assert uncovered(want, [Period(D("2025-06-01"))]) == []
    back_to_back = [
        Period(D("2026-07-01"), D("2026-12-31")),
        Period(D("2026-01-01"), D("2026-06-30")),
    ]
    assert uncovered(want, back_to_back) == []
    gap = [Period(D("2026-01-01"), D("2026-03-31")), Period(D("2026-05-01"), D("2026-11-30"))]
    assert uncovered(want, gap) == [
        Period(D("2026-04-01"), D("2026-04-30")),
        Period(D("2026-12-01"), D("2026-12-31")),
    ]
    assert uncovered(Period(D("2026-01-01")), [want]) == [Period(D("2027-01-01"))]
    assert uncovered(Period(D("2026-01-01")), []) == [Period(D("2026-01-01"))]
    assert uncovered(want, [Period(D("2026-03-01"), D("2026-03-01"))])[0] == Period(
        D("2026-01-01"), D("2026-02-28")
    )


def test_uncovered_at_the_ends_of_the_calendar() -> None:
    assert uncovered(Period(date.max - timedelta(days=1)), [Period(date.max)]) == [
        Period(date.max - timedelta(days=1), date.max - timedelta(days=1))
    ]
    assert uncovered(Period(date.min), [Period(date.min)]) == []


# ------------------------------------------------------------------ properties

_DAY0 = D("2026-01-01")
_days = st.integers(min_value=0, max_value=40)


@st.composite
def _periods(draw: st.DrawFn) -> Period:
    start = draw(_days)
    length = draw(st.one_of(st.none(), st.integers(min_value=0, max_value=15)))
    return Period(
        _DAY0 + timedelta(days=start),
        None if length is None else _DAY0 + timedelta(days=start + length),
    )


@settings(max_examples=300, deadline=None)
@given(want=_periods(), cover=st.lists(_periods(), max_size=5))
def test_uncovered_matches_a_day_by_day_oracle(want: Period, cover: list[Period]) -> None:
    gaps = uncovered(want, cover)
    horizon = _DAY0 + timedelta(days=80)  # beyond every finite end drawn
    day = want.starts_on
    while day <= (want.ends_on or horizon):
        covered = any(p.contains(day) for p in cover)
        assert covered != any(g.contains(day) for g in gaps), day
        day += timedelta(days=1)
    # Gaps are disjoint, ordered, and not adjacent (each is maximal).
    for a, b in pairwise(gaps):
        assert a.ends_on is not None and a.ends_on + timedelta(days=1) < b.starts_on


_CATALOG = plans_of(
    plan("base", 1, channels=("email",), excluded=("training", "upgrade")),
    plan("addon", 2, requires="base", channels=("phone",), excluded=("training",)),
    plan("other", 1, channels=("web",)),
    plan("top", 3, requires="addon", channels=("chat",)),
)


@st.composite
def _contracts(draw: st.DrawFn) -> list[ContractTerms]:
    found = []
    for code in _CATALOG:
        for period in draw(st.lists(_periods(), max_size=2)):
            found.append(
                ContractTerms(
                    id=uuid.uuid4(),
                    plan_code=code,
                    starts_on=period.starts_on,
                    ends_on=period.ends_on,
                )
            )
    return found


@settings(max_examples=300, deadline=None)
@given(
    held=_contracts(),
    day=_days,
    channel=st.one_of(st.none(), st.sampled_from(Channel)),
    category=st.one_of(st.none(), st.sampled_from(Category)),
)
def test_decisions_are_consistent(
    held: list[ContractTerms], day: int, channel: Channel | None, category: Category | None
) -> None:
    at = datetime(2026, 1, 1, 20, 0, tzinfo=UTC) + timedelta(days=day)  # noon in Vancouver
    e = decide(at, held, _CATALOG, channel=channel, category=category)
    assert e.allowed == (e.reasons == ())
    today = local_date(at, "America/Vancouver")
    active = {c.plan_code for c in held if c.period.contains(today)}
    if e.coverage is None:
        assert e.contract is None and e.contracts == ()
        assert e.reasons[0] in (Reason.NO_ACTIVE_CONTRACT, Reason.CONTRACT_EXPIRED)
        return
    # Every plan of the chain is held today, and nothing held outranks the choice.
    chain = [p.code for p in e.coverage.chain]
    assert set(chain) <= active and (chain[-1] == "base" or chain == ["other"])
    assert [c.plan_code for c in e.contracts] == chain
    assert all(c.period.contains(today) for c in e.contracts)
    for code in active:
        counted = all(p.code in active for p in requires_chain(code, _CATALOG))
        assert not counted or _CATALOG[code].level <= e.coverage.plan.level
    # An add-on only widens: its coverage includes every base's channels, and excludes
    # nothing its base covers.
    for p in e.coverage.chain:
        assert p.channels <= e.coverage.channels
        assert e.coverage.excluded_categories <= p.excluded_categories
    assert (channel is not None and channel not in e.channels) == (
        Reason.CHANNEL_NOT_IN_PLAN in e.reasons
    )
