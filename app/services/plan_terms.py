"""What a ticket keeps of the plan it was taken under (``tickets.plan_snapshot``).

The snapshot is the whole coverage (the effective plan and the plans it requires, as
stored), so that a later `change` of severity or category selects targets exactly as
intake did, with the same add-on-over-base fallback (app.domain.entitlement.Coverage).
Plan edits rewrite the snapshots of open tickets (services.clock_edits).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.domain import sla
from app.domain.entitlement import Coverage, PlanTarget
from app.domain.lifecycle import AutoClosePolicy, LifecyclePolicy
from app.domain.vocab import Category, Channel, Metric, Severity
from app.models.plan import Plan
from app.services import compiled

# The plan fields a snapshot keeps, as stored (besides id, calendar, time zone, requires).
_PLAN_FIELDS = compiled.PLAN_FIELDS


def snapshot_of(coverage: Coverage, rows: dict[str, Plan]) -> dict[str, Any]:
    """The JSON kept on the ticket: every plan of the coverage's chain, as stored."""
    top = rows[coverage.plan.code]
    chain = []
    for terms in coverage.chain:
        row = rows[terms.code]
        chain.append(
            {
                "id": str(row.id),
                "calendar_id": str(row.calendar_id),
                "timezone": terms.timezone,
                "requires": terms.requires,
                **{name: getattr(row, name) for name in _PLAN_FIELDS},
            }
        )
    return {
        "plan": {"id": str(top.id), "code": top.code, "name": top.name, "version": top.version},
        "calendar_id": str(coverage.calendar_id),
        "chain": chain,
    }


@dataclass(frozen=True)
class TicketTerms:
    """A ticket's plan terms, rebuilt from its snapshot.

    Each plan of the chain comes from the compiled-terms cache (app.services.compiled),
    by the plan id and version the snapshot names; the cache uses an entry only when
    the snapshot keeps exactly the values the entry was compiled from, so a snapshot
    of an older version, or one rewritten by a plan edit, is never read with another's
    terms."""

    snapshot: dict[str, Any]
    coverage: Coverage

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> TicketTerms:
        chain = tuple(compiled.terms_of_snapshot(item) for item in snapshot["chain"])
        return cls(snapshot, Coverage(plan=chain[0], chain=chain))

    @property
    def plan_id(self) -> uuid.UUID:
        return self.coverage.plan.id

    @property
    def code(self) -> str:
        return self.coverage.plan.code

    @property
    def calendar_id(self) -> uuid.UUID:
        return self.coverage.calendar_id

    @property
    def excluded_categories(self) -> frozenset[Category]:
        return self.coverage.excluded_categories

    @property
    def billing(self) -> dict[str, Any]:
        return dict(self.snapshot["chain"][0]["billing"] or {})

    @property
    def auto_close(self) -> AutoClosePolicy | None:
        return self.coverage.auto_close

    @property
    def policy(self) -> LifecyclePolicy:
        return LifecyclePolicy(pause_on=self.coverage.pause_on, auto_close=self.coverage.auto_close)

    def target_for(
        self, metric: Metric, severity: Severity, category: Category, channel: Channel
    ) -> tuple[sla.Target, dict[str, Any]] | None:
        """The winning target of a metric and its JSON (kept on the clock row, with the
        plan it comes from)."""
        chosen = self.coverage.select(metric, severity, category, channel)
        if chosen is None:
            return None
        return chosen.target, self.target_json(chosen)

    def target_json(self, chosen: PlanTarget) -> dict[str, Any]:
        plan = next(p for p in self.snapshot["chain"] if p["code"] == chosen.plan_code)
        stored = plan["targets"][chosen.target.index]
        return {"plan": chosen.plan_code, "index": chosen.target.index, "target": stored}
