"""What a ticket keeps of the plan it was taken under (``tickets.plan_snapshot``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from app.domain import sla
from app.domain.lifecycle import AutoClosePolicy, LifecyclePolicy
from app.domain.vocab import Category, Channel, Metric, Severity, TicketStatus


@dataclass(frozen=True)
class PlanTerms:
    plan_id: uuid.UUID
    code: str
    name: str
    version: int
    calendar_id: uuid.UUID
    targets: tuple[sla.Target, ...]
    target_json: tuple[dict[str, Any], ...]
    pause_on: frozenset[TicketStatus]
    auto_close: AutoClosePolicy | None
    billing: dict[str, Any] = field(default_factory=dict)
    channels: frozenset[str] = frozenset()
    excluded_categories: frozenset[str] = frozenset()

    @classmethod
    def from_snapshot(cls, snapshot: dict[str, Any]) -> PlanTerms:
        targets_json = tuple(snapshot.get("targets") or ())
        auto = snapshot.get("auto_close")
        return cls(
            plan_id=uuid.UUID(snapshot["plan"]["id"]),
            code=snapshot["plan"]["code"],
            name=snapshot["plan"]["name"],
            version=int(snapshot["plan"].get("version", 1)),
            calendar_id=uuid.UUID(snapshot["calendar_id"]),
            targets=sla.targets_from_config(targets_json),
            target_json=targets_json,
            pause_on=frozenset(TicketStatus(s) for s in snapshot.get("pause_on") or ()),
            auto_close=AutoClosePolicy(**auto) if auto else None,
            billing=dict(snapshot.get("billing") or {}),
            channels=frozenset(snapshot.get("channels") or ()),
            excluded_categories=frozenset(snapshot.get("excluded_categories") or ()),
        )

    @property
    def policy(self) -> LifecyclePolicy:
        return LifecyclePolicy(pause_on=self.pause_on, auto_close=self.auto_close)

    def target_for(
        self, metric: Metric, severity: Severity, category: Category, channel: Channel
    ) -> tuple[sla.Target, dict[str, Any]] | None:
        """The winning target of a metric, with its JSON (kept on the clock row)."""
        if metric is Metric.CALLBACK and channel is not Channel.VOICEMAIL:
            return None  # seed 000: only a call that reached the answering machine
        target = sla.select_target(self.targets, metric, severity, category, channel)
        if target is None:
            return None
        return target, {**self.target_json[target.index], "index": target.index}
