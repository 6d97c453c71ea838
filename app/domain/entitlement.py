"""Entitlement: who is covered, under which plan, with which targets, at an instant.

Everything here is data and pure functions; the services load plans, contracts and
the contact, call :func:`decide`, and act on the :class:`Entitlement` it returns.
Ticket intake calls exactly :func:`decide`; the SLA preview calls it too.

Plans and add-ons
-----------------
A plan may *require* another plan (seed 000: Premium only on top of Primary; seed
002: Elite as an add-on to Standard; seed 003: Premium and Premium Plus as options on
top of Standard). A plan together with the plans it requires, transitively, is its
**chain** (the plan first, then its base, then the base's base...). What a chain
gives (:class:`Coverage`, built by :func:`coverage_of`):

* **channels**: the union of the chain's channels (an add-on adds channels);
* **excluded categories**: the categories *every* plan of the chain excludes (an
  add-on can only widen coverage: seed 002's Elite covers the custom work that
  Standard excludes);
* **targets**, chosen per ticket and metric: the add-on's most specific matching
  target (`app.domain.sla.select_target`); when none of the add-on's targets
  matches the ticket for that metric, the base's, and so on down the chain.
  Decision: the fallback is per ticket, not per metric. An add-on that only
  promises something for critical tickets (a 24x7 tier-3 line) keeps the base's
  targets for every other ticket, instead of silently dropping them because it
  "defines the metric". An add-on that wants to replace the base everywhere says
  so with a target without conditions;
* **calendar, pause_on, auto_close and billing** come from the plan itself (the top
  of the chain); a base target on the `business` clock is counted on the top
  plan's calendar.

Contracts and the effective plan
--------------------------------
A contract holds a plan from `starts_on` to `ends_on` (inclusive; None = open
ended). Its dates are **local dates of the plan's calendar time zone**: it is
active at instant `t` when ``starts_on <= local_date(t) <= ends_on``. A contract
*counts* at `t` when it is active and its plan's `requires` is satisfied at `t`
(some counting contract holds the required plan). The **effective plan** is the
highest `level` among the counting contracts' plans; on a tie the plan whose chain
contains the other wins (the add-on over its base), then the longer chain, then
the smaller code (deterministic). Two add-ons on one base do not combine: only the
effective plan's chain applies.

Decision reasons (stable codes, in this order)
----------------------------------------------
* ``no_active_contract``: nothing counts at `t`, and not every contract ended
  before `t` (none at all, only future ones, an expired one with a renewal still
  to start, or an add-on whose base does not count);
* ``contract_expired``: the organization had contracts and all ended before `t`;
* ``contact_inactive``: the contact was deactivated (seed 004: personnel change);
* ``contact_not_authorized``: the contact is an `end_user` (seed 002: the customer
  supports its end users; seed 004: only authorized persons raise tickets);
* ``channel_not_in_plan``: e.g. phone on seed 001's Standard;
* ``category_excluded``: e.g. seed 001's upgrades, installations, training.

`allowed` is true exactly when there is no reason. The plan-dependent reasons
(channel, category) are only checked when a plan applies.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from app.domain.lifecycle import DEFAULT_PAUSE_ON, AutoClosePolicy
from app.domain.sla import Target, select_target
from app.domain.vocab import Category, Channel, ContactRole, Metric, Severity, TicketStatus

__all__ = [
    "Billing",
    "ContactInfo",
    "ContractTerms",
    "Coverage",
    "Entitlement",
    "Period",
    "PlanTarget",
    "PlanTerms",
    "Reason",
    "RequiresCycle",
    "UnrequestedAfterHours",
    "counting_contracts",
    "coverage_of",
    "decide",
    "find_requires_cycle",
    "local_date",
    "plan_reasons",
    "requires_chain",
    "uncovered",
]


class Reason(StrEnum):
    """Why a request is not entitled (stable codes, part of the API)."""

    NO_ACTIVE_CONTRACT = "no_active_contract"
    CONTRACT_EXPIRED = "contract_expired"
    CONTACT_INACTIVE = "contact_inactive"
    CONTACT_NOT_AUTHORIZED = "contact_not_authorized"
    CHANNEL_NOT_IN_PLAN = "channel_not_in_plan"
    CATEGORY_EXCLUDED = "category_excluded"


class RequiresCycle(ValueError):
    """Plans that require each other in a circle (refused when a plan is written)."""

    def __init__(self, codes: Sequence[str]) -> None:
        self.codes = tuple(codes)
        super().__init__("requires cycle: " + " -> ".join(self.codes))


# ----------------------------------------------------------------------------- data


class UnrequestedAfterHours(StrEnum):
    """What a plan does with after-hours time the client did not request (seed 004:
    after-hours attention is requested in advance, by e-mail)."""

    BUSINESS_RATE = "business_rate"  # charged as business time, without the multiplier
    REFUSE = "refuse"  # manual entries refused; automatic follow-ups recorded unbilled


@dataclass(frozen=True, kw_only=True)
class Billing:
    """Seed 004's billing rules (used by work logs; carried here for intake)."""

    follow_up_minutes: int = 15
    sessions_per_consultant: bool = True
    after_hours_allowed: bool = False
    after_hours_multiplier: float = 1.5
    after_hours_unrequested: UnrequestedAfterHours = UnrequestedAfterHours.BUSINESS_RATE


@dataclass(frozen=True, kw_only=True)
class PlanTerms:
    """A plan as the decision needs it. `timezone` is its calendar's time zone (the
    zone its contracts' dates are read in); `requires` is a plan code."""

    id: uuid.UUID
    code: str
    level: int
    calendar_id: uuid.UUID
    timezone: str
    channels: frozenset[Channel]
    targets: tuple[Target, ...] = ()
    requires: str | None = None
    name: str = ""
    excluded_categories: frozenset[Category] = frozenset()
    pause_on: frozenset[TicketStatus] = DEFAULT_PAUSE_ON
    auto_close: AutoClosePolicy | None = None
    billing: Billing = field(default_factory=Billing)
    version: int = 1
    active: bool = True


@dataclass(frozen=True, kw_only=True)
class ContractTerms:
    """An organization's contract for a plan (dates inclusive, local to the plan)."""

    id: uuid.UUID
    plan_code: str
    starts_on: date
    ends_on: date | None = None

    @property
    def period(self) -> Period:
        return Period(self.starts_on, self.ends_on)


@dataclass(frozen=True, kw_only=True)
class ContactInfo:
    id: uuid.UUID
    role: ContactRole
    active: bool = True


@dataclass(frozen=True)
class PlanTarget:
    """A target and the plan of the chain it comes from (`Target.index` is its
    position in that plan's list)."""

    plan_code: str
    target: Target


# -------------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """Inclusive local dates; `ends_on` None = open ended."""

    starts_on: date
    ends_on: date | None = None

    def __post_init__(self) -> None:
        if self.ends_on is not None and self.ends_on < self.starts_on:
            raise ValueError("a period cannot end before it starts")

    def contains(self, day: date) -> bool:
        return self.starts_on <= day and (self.ends_on is None or day <= self.ends_on)

    def overlaps(self, other: Period) -> bool:
        return (self.ends_on is None or other.starts_on <= self.ends_on) and (
            other.ends_on is None or self.starts_on <= other.ends_on
        )

    def ended_before(self, day: date) -> bool:
        return self.ends_on is not None and self.ends_on < day


def _last(period: Period) -> int:
    """Ordinal of the last day (open ended = beyond every date)."""
    return date.max.toordinal() + 1 if period.ends_on is None else period.ends_on.toordinal()


def uncovered(period: Period, cover: Iterable[Period]) -> list[Period]:
    """The parts of `period` that no period of `cover` contains, in order.

    Used for `requires`: an add-on contract needs its base plan held on every day of
    its period (by one contract or by back-to-back renewals)."""
    gaps: list[Period] = []
    cursor = period.starts_on.toordinal()  # first day not known to be covered
    stop = _last(period)
    for piece in sorted(cover, key=lambda p: p.starts_on):
        if cursor > stop:
            break
        first, last = piece.starts_on.toordinal(), _last(piece)
        if last < cursor:
            continue
        if first > cursor:
            gaps.append(_period(cursor, min(first - 1, stop)))
        cursor = max(cursor, last + 1)
    if cursor <= stop:
        gaps.append(_period(cursor, stop))
    return gaps


def _period(first: int, last: int) -> Period:
    end = None if last > date.max.toordinal() else date.fromordinal(last)
    return Period(date.fromordinal(first), end)


def local_date(at: datetime, timezone: str) -> date:
    """The date the wall clock of `timezone` shows at the aware instant `at`."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, got naive {at.isoformat()}")
    return at.astimezone(ZoneInfo(timezone)).date()


# ---------------------------------------------------------------------------- chains


def requires_chain(code: str, plans: Mapping[str, PlanTerms]) -> tuple[PlanTerms, ...]:
    """The plan and the plans it requires, transitively (plan first). A required
    code missing from `plans` ends the chain; a cycle raises :class:`RequiresCycle`."""
    chain: list[PlanTerms] = []
    seen: list[str] = []
    current: str | None = code
    while current is not None and current in plans:
        if current in seen:
            raise RequiresCycle([*seen[seen.index(current) :], current])
        seen.append(current)
        plan = plans[current]
        chain.append(plan)
        current = plan.requires
    return tuple(chain)


def find_requires_cycle(requires: Mapping[str, str | None]) -> list[str] | None:
    """A cycle in a code -> required code map (e.g. after a proposed edit), as the
    codes along it with the first repeated at the end; None when there is none."""
    for start in sorted(requires):
        seen: list[str] = []
        current: str | None = start
        while current is not None and current in requires:
            if current in seen:
                return [*seen[seen.index(current) :], current]
            seen.append(current)
            current = requires[current]
    return None


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """What holding `plan` (and so its chain) gives. See the module docstring."""

    plan: PlanTerms
    chain: tuple[PlanTerms, ...]

    @property
    def calendar_id(self) -> uuid.UUID:
        return self.plan.calendar_id

    @property
    def timezone(self) -> str:
        return self.plan.timezone

    @property
    def pause_on(self) -> frozenset[TicketStatus]:
        return self.plan.pause_on

    @property
    def auto_close(self) -> AutoClosePolicy | None:
        return self.plan.auto_close

    @property
    def billing(self) -> Billing:
        return self.plan.billing

    @property
    def channels(self) -> frozenset[Channel]:
        return frozenset().union(*(p.channels for p in self.chain))

    @property
    def excluded_categories(self) -> frozenset[Category]:
        excluded = self.chain[0].excluded_categories
        for plan in self.chain[1:]:
            excluded &= plan.excluded_categories
        return excluded

    @property
    def targets(self) -> tuple[PlanTarget, ...]:
        """Every target of the chain, the plan's first (the order of precedence)."""
        return tuple(PlanTarget(p.code, t) for p in self.chain for t in p.targets)

    def select(
        self,
        metric: Metric,
        severity: Severity,
        category: Category | None = None,
        channel: Channel | None = None,
    ) -> PlanTarget | None:
        """The target counting `metric` for such a ticket: the most specific match
        of the first plan of the chain that has one; None = no commitment. A call-back is
        owed only to a call that reached the answering machine (seed 000): `callback`
        targets apply to the `voicemail` channel alone."""
        if metric is Metric.CALLBACK and channel is not Channel.VOICEMAIL:
            return None
        for plan in self.chain:
            found = select_target(plan.targets, metric, severity, category, channel)
            if found is not None:
                return PlanTarget(plan.code, found)
        return None

    def select_all(
        self, severity: Severity, category: Category | None = None, channel: Channel | None = None
    ) -> dict[Metric, PlanTarget]:
        """The target of each metric the plan commits to for such a ticket."""
        found = {m: self.select(m, severity, category, channel) for m in Metric}
        return {m: t for m, t in found.items() if t is not None}


def coverage_of(code: str, plans: Mapping[str, PlanTerms]) -> Coverage:
    """The coverage of holding plan `code` with its whole chain."""
    chain = requires_chain(code, plans)
    if not chain:
        raise KeyError(code)
    return Coverage(plan=chain[0], chain=chain)


# ------------------------------------------------------------------------- decision


@dataclass(frozen=True, kw_only=True)
class Entitlement:
    """The decision at `at`, and everything intake needs to open a ticket under it."""

    at: datetime
    allowed: bool
    reasons: tuple[Reason, ...]
    coverage: Coverage | None = None
    contract: ContractTerms | None = None  # the effective plan's contract
    contracts: tuple[ContractTerms, ...] = ()  # one per plan of the chain, same order

    @property
    def plan(self) -> PlanTerms | None:
        return self.coverage.plan if self.coverage else None

    @property
    def calendar_id(self) -> uuid.UUID | None:
        return self.coverage.calendar_id if self.coverage else None

    @property
    def channels(self) -> frozenset[Channel]:
        return self.coverage.channels if self.coverage else frozenset()

    @property
    def targets(self) -> tuple[PlanTarget, ...]:
        return self.coverage.targets if self.coverage else ()


def _is_active(contract: ContractTerms, plans: Mapping[str, PlanTerms], at: datetime) -> bool:
    plan = plans.get(contract.plan_code)
    return plan is not None and contract.period.contains(local_date(at, plan.timezone))


def counting_contracts(
    at: datetime, contracts: Collection[ContractTerms], plans: Mapping[str, PlanTerms]
) -> dict[str, ContractTerms]:
    """Contracts that count at `at` (active, and their plan's requirement held), by
    plan code. Contracts for plans missing from `plans` are ignored."""
    active = {c.plan_code: c for c in contracts if _is_active(c, plans, at)}
    counting: dict[str, ContractTerms] = {}
    for code, contract in active.items():
        try:
            chain = requires_chain(code, plans)
        except RequiresCycle:
            continue
        # A required plan missing from `plans` ends the chain early: unverifiable, so
        # such a contract does not count.
        complete = chain[-1].requires is None
        if complete and all(p.code in active for p in chain):
            counting[code] = contract
    return counting


def _effective(
    codes: Collection[str], plans: Mapping[str, PlanTerms]
) -> tuple[PlanTerms, ...] | None:
    """The chain of the effective plan among `codes`: the highest level, then the
    longer chain (an add-on's chain strictly contains its base's, so on a level tie
    the add-on wins), then the smaller code."""
    chains = [requires_chain(code, plans) for code in codes]
    return min(chains, key=lambda c: (-c[0].level, -len(c), c[0].code), default=None)


def plan_reasons(
    coverage: Coverage, channel: Channel | None, category: Category | None
) -> list[Reason]:
    """The plan-dependent reasons: channel not offered, category not covered."""
    reasons: list[Reason] = []
    if channel is not None and channel not in coverage.channels:
        reasons.append(Reason.CHANNEL_NOT_IN_PLAN)
    if category is not None and category in coverage.excluded_categories:
        reasons.append(Reason.CATEGORY_EXCLUDED)
    return reasons


def decide(
    at: datetime,
    contracts: Collection[ContractTerms],
    plans: Mapping[str, PlanTerms],
    contact: ContactInfo | None = None,
    channel: Channel | None = None,
    category: Category | None = None,
) -> Entitlement:
    """Is a request arriving at `at` (from `contact`, by `channel`, about `category`)
    covered, and under which plan? `contracts` are the organization's (all of them:
    past ones tell an expiry from a missing contract); `plans` maps code to plan and
    must hold every plan the contracts name and every plan those require."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"at must be timezone-aware, got naive {at.isoformat()}")
    reasons: list[Reason] = []
    counting = counting_contracts(at, contracts, plans)
    chain = _effective(counting, plans)
    coverage: Coverage | None = None
    contract: ContractTerms | None = None
    used: tuple[ContractTerms, ...] = ()
    if chain is None:
        known = [c for c in contracts if c.plan_code in plans]
        expired = bool(known) and all(
            c.period.ended_before(local_date(at, plans[c.plan_code].timezone)) for c in known
        )
        reasons.append(Reason.CONTRACT_EXPIRED if expired else Reason.NO_ACTIVE_CONTRACT)
    else:
        coverage = Coverage(plan=chain[0], chain=chain)
        contract = counting[chain[0].code]
        used = tuple(counting[p.code] for p in chain)
    if contact is not None:
        if not contact.active:
            reasons.append(Reason.CONTACT_INACTIVE)
        if contact.role is not ContactRole.AUTHORIZED:
            reasons.append(Reason.CONTACT_NOT_AUTHORIZED)
    if coverage is not None:
        reasons.extend(plan_reasons(coverage, channel, category))
    order = list(Reason)
    reasons.sort(key=order.index)
    return Entitlement(
        at=at,
        allowed=not reasons,
        reasons=tuple(reasons),
        coverage=coverage,
        contract=contract,
        contracts=used,
    )
