"""The timer loop: SLA thresholds and auto-closes fired at their exact instant, each once.

Every clock with an unfired threshold has ``sla_clocks.next_check_at`` (indexed): the
instant of its next warning or its breach (``app.services.clocks.store`` keeps it true in
the transaction of every clock change). Every ticket waiting to be closed for lack of
response has ``tickets.auto_close_at``. The loop, in rounds:

1. **Claim clocks.** In one transaction per batch: the shared timing lock (so calendar
   and plan edits, which hold it exclusively, never re-time a clock under us), then the
   due clocks, oldest ``next_check_at`` first, ``FOR UPDATE SKIP LOCKED`` (replicas take
   different clocks), then their tickets ``FOR NO KEY UPDATE SKIP LOCKED`` (a ticket an
   action is changing right now is left for the next round; the action re-times it
   anyway). The loop never *waits* for a row lock, so it cannot deadlock with the
   ticket-then-clocks order of actions and edits.
2. **Fire.** The crossings reached by ``now`` and not fired yet (``app.domain.sla``) are
   fired in instant order: an ``sla_firings`` row whose unique key (clock, threshold key,
   cycle) makes a second firing impossible across any number of replicas, a timeline
   event, an ``sla.warning`` / ``sla.breached`` outbox event carrying the threshold and its
   *original* instant, and for a breach the target's ``on_breach.escalate_to_tier`` (raise
   the tier, ``ticket.escalated``). Then ``next_check_at`` moves to the next unfired
   threshold. A full batch fires only up to its last claimed instant, so that a backlog
   (thresholds missed while nothing ran) fires oldest first across batches.
3. **Auto-close.** Tickets whose ``auto_close_at`` passed are closed with reason
   ``no_response`` at that instant, through the same code as the ``close`` action.
4. **Commit** per batch; then sleep until the earliest ``next_check_at`` /
   ``auto_close_at``, or until ``NOTIFY sladesk_timers`` (sent at commit by whatever
   changes a clock) says the queue moved. A safety re-check bounds the sleep.

A round that fails (database gone, connection killed) rolls back: nothing of it
happened, and the next round does it again. A cancelled loop likewise.

Decisions:
* ``cycle`` is always 0: the domain crosses each threshold key at most once per clock
  (across retargets and reopens), so the key alone identifies a threshold; the column
  keeps room for a future "re-arm on reopen" rule without a new constraint.
* A breach escalates only a ticket that is still open (not resolved or closed) and only
  upwards; an automatic escalation changes the tier, not the status (tier 4 with a
  vendor case is an agent's decision: the vendor and its case number are theirs to give).
* Firings are internal timeline events (``public: false``): customers see the deadlines
  on the ticket, not the desk's alarms.
* A firing is not final: an action logged late, dated before it, may show the threshold
  was not reached (or not then). services/reevaluation.py then deletes the firing row
  (so the threshold fires again, at its new instant, if the corrected clock reaches it)
  and announces ``sla.retracted``; it also keeps, on the ticket, what an auto-close
  closed (``tickets.auto_closed_from``), so that a late customer reply can undo it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from app.config import Settings
from app.db import make_sessionmaker
from app.domain import lifecycle, sla
from app.domain.lifecycle import Action
from app.domain.sla import Crossing, ThresholdKind
from app.domain.vocab import TicketStatus
from app.models.tickets import SlaClock, SlaFiring, Ticket
from app.schemas.tickets import CloseBody
from app.security import actor_of
from app.services import clocks as clock_store
from app.services import outbox, ticket_actions, tickets
from app.services.clocks import TIMER_CHANNEL
from app.workers.listener import listen, listen_url_of
from app.workers.rounds import run_rounds

logger = logging.getLogger("sladesk.timers")

CYCLE = 0


def utcnow() -> datetime:
    return datetime.now(UTC)


# One statement with a parameter list (batched into multi-row VALUES, compiled once), not
# a VALUES clause built per batch: compiling it cost more than sending it.
_INSERT_FIRINGS = (
    insert(SlaFiring)
    .on_conflict_do_nothing(index_elements=["clock_id", "key", "cycle"])
    .returning(col(SlaFiring.clock_id), col(SlaFiring.key))
)


@dataclass(frozen=True)
class TimerConfig:
    batch: int = 200
    safety_recheck: float = 30.0
    error_backoff_max: float = 5.0
    listener_health_interval: float = 15.0
    listen_url: str | None = field(default=None, repr=False)  # may hold a password

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TimerConfig:
        return replace(cls(listen_url=listen_url_of(settings)), **overrides)


@dataclass
class RoundResult:
    fired: int = 0
    escalated: int = 0
    closed: int = 0
    more: bool = False  # a batch was full: go again at once


def threshold_json(metric: str, crossing: Crossing) -> dict[str, Any]:
    """The ``threshold`` of an ``sla.warning`` / ``sla.breached`` payload."""
    t = crossing.threshold
    return {
        "metric": metric,
        "key": t.key,
        "kind": t.kind.value,
        "percent": t.percent,
        "before_minutes": t.before_minutes,
        "at": crossing.at.isoformat().replace("+00:00", "Z"),
    }


def _escalate_to(row: SlaClock) -> int | None:
    stored = row.target.get("target") or {}
    on_breach = stored.get("on_breach") or {}
    tier = on_breach.get("escalate_to_tier")
    return tier if isinstance(tier, int) else None


class TimerLoop:
    def __init__(
        self,
        engine: AsyncEngine,
        config: TimerConfig | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        name: str = "timers",
    ) -> None:
        self.engine = engine
        self.config = config or TimerConfig()
        self.clock = clock
        self.name = name
        self.sessions = make_sessionmaker(engine)
        self.listening = asyncio.Event()  # set while the LISTEN connection is up
        self._wake = asyncio.Event()
        # The instant of the round this loop sleeps until; None during a round (and
        # after a failed one), when every notification wakes it.
        self._asleep_until: datetime | None = None

    # ---------------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(
            listen(
                self.engine,
                TIMER_CHANNEL,
                wake=self._wake.set,
                stop=stop,
                listening=self.listening,
                name=self.name,
                health_interval=self.config.listener_health_interval,
                backoff_max=self.config.error_backoff_max,
                url=self.config.listen_url,
                notify=self.notified,
            ),
            name=f"sladesk-{self.name}-listen",
        )
        stopper = asyncio.create_task(self._wake_on(stop))
        try:
            await self._loop(stop)
        finally:
            listener.cancel()
            stopper.cancel()
            await asyncio.gather(listener, stopper, return_exceptions=True)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    def notified(self, payload: str) -> None:
        """A NOTIFY on the timer channel: wake up, unless it is an intake's hint
        (clocks.timer_hint) for an instant at or after the round this loop already
        sleeps until — that round finds the new clocks (they are committed before the
        NOTIFY is delivered) and plans for them. During a round every notification
        wakes the loop: the round may have looked before those clocks were there."""
        hinted = clock_store.hinted_instant(payload)
        asleep_until = self._asleep_until
        if hinted is not None and asleep_until is not None and hinted >= asleep_until:
            return
        self._wake.set()

    async def _loop(self, stop: asyncio.Event) -> None:
        await run_rounds(
            stop,
            self._wake,
            self.run_round,
            what="timer",
            worker=self.name,
            backoff_max=self.config.error_backoff_max,
        )

    async def run_round(self) -> float:
        """Fire what is due (one batch of clocks, one of auto-closes); the seconds to
        wait before the next round."""
        self._asleep_until = None
        now = self.clock()
        fired = await self.fire_thresholds(now)
        closed = await self.auto_close(now)
        if fired.more or closed.more:
            return 0.0
        upcoming = await self.next_instant()
        delay = self.config.safety_recheck
        if upcoming is not None:
            # A due row that could not be claimed is locked by another transaction for a
            # moment (an action, another replica): look again soon, without spinning.
            delay = min(delay, max((upcoming - self.clock()).total_seconds(), 0.005))
        # Nothing is awaited from here to the sleep: a notification either came during
        # the round (and wakes the sleep) or is compared with this instant.
        self._asleep_until = self.clock() + timedelta(seconds=delay)
        return delay

    async def next_instant(self) -> datetime | None:
        async with self.engine.connect() as conn:
            clocks = await conn.scalar(select(func.min(col(SlaClock.next_check_at))))
            closes = await conn.scalar(select(func.min(col(Ticket.auto_close_at))))
            await conn.rollback()
        found = [t for t in (clocks, closes) if t is not None]
        return min(found) if found else None

    # ---------------------------------------------------------------------- thresholds

    async def fire_thresholds(self, now: datetime) -> RoundResult:
        result = RoundResult()
        async with self.sessions() as session, session.begin():
            await clock_store.share_timing(session)
            claimed = list(
                (
                    await session.execute(
                        select(SlaClock)
                        .where(col(SlaClock.next_check_at) <= now)
                        .order_by(col(SlaClock.next_check_at))
                        .limit(self.config.batch)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            if not claimed:
                return result
            full = len(claimed) == self.config.batch
            # A full batch may have left older crossings of other clocks unclaimed: fire
            # only up to the last claimed instant, so a backlog goes out oldest first. One
            # microsecond past it, because a breach is reached strictly after its due
            # instant: a horizon *at* the instant would fire none of a full batch of clocks
            # due together, and the next round would claim the same batch again, forever.
            last = max(r.next_check_at for r in claimed if r.next_check_at)
            horizon = min(now, last + timedelta(microseconds=1)) if full else now
            ticket_ids = sorted({r.ticket_id for r in claimed})
            locked = {
                t.id: t
                for t in (
                    await session.execute(
                        select(Ticket)
                        .where(col(Ticket.id).in_(ticket_ids))
                        .order_by(col(Ticket.id))
                        .with_for_update(key_share=True, skip_locked=True)
                    )
                ).scalars()
            }
            rows = [r for r in claimed if r.ticket_id in locked]
            await self._fire(session, rows, locked, horizon, now, result)
            result.more = full
        if result.fired:
            logger.info(
                "fired %d SLA thresholds (%d escalations)",
                result.fired,
                result.escalated,
                extra={"worker": self.name},
            )
        return result

    async def _fire(
        self,
        session: AsyncSession,
        rows: Sequence[SlaClock],
        locked: dict[uuid.UUID, Ticket],
        horizon: datetime,
        now: datetime,
        result: RoundResult,
    ) -> None:
        # Everything the batch reads is read here, in three queries; what follows only adds
        # rows to the session, flushed together at the end (a batch costs a handful of
        # round trips, not a handful per threshold).
        context = await tickets.payload_context(session, sorted({r.ticket_id for r in rows}))
        fired = context.fired
        due: list[tuple[Crossing, SlaClock]] = []
        # Each row once (its JSON thresholds parsed once per batch, not once per use).
        clocks = {row.id: clock_store.to_domain(row) for row in rows}
        for row in rows:
            for crossing in sla.crossings(
                clocks[row.id], horizon, context.cals.of(row), exclude=fired.get(row.id, set())
            ):
                due.append((crossing, row))
        due.sort(key=lambda item: (item[0].at, item[0].threshold.mark, item[1].id.hex))
        inserted: set[tuple[uuid.UUID, str]] = set()
        if due:
            returned = await session.execute(
                _INSERT_FIRINGS,
                [
                    {
                        "id": uuid.uuid4(),
                        "clock_id": row.id,
                        "ticket_id": row.ticket_id,
                        "key": crossing.threshold.key,
                        "cycle": CYCLE,
                        "instant": crossing.at,
                        "fired_at": now,
                    }
                    for crossing, row in due
                ],
            )
            inserted = {(clock_id, key) for clock_id, key in returned}
        for crossing, row in due:
            fired.setdefault(row.id, set()).add(crossing.threshold.key)
            if (row.id, crossing.threshold.key) not in inserted:
                continue  # fired already (cannot happen under the row lock)
            result.fired += 1
            await self._announce(
                session, locked[row.ticket_id], row, crossing, now, result, context
            )
        for row in rows:
            # Firing changes the ticket (tier, version), never the clock: still current.
            pending = sla.next_threshold(
                clocks[row.id], fired.get(row.id, set()), context.cals.of(row)
            )
            row.next_check_at = pending.at if pending is not None else None
        await session.flush()
        if result.fired:
            await outbox.notify(session)

    async def _announce(
        self,
        session: AsyncSession,
        ticket: Ticket,
        row: SlaClock,
        crossing: Crossing,
        now: datetime,
        result: RoundResult,
        context: tickets.PayloadContext,
    ) -> None:
        """The events of one firing (added to the session, not flushed: see ``_fire``)."""
        breach = crossing.threshold.kind is ThresholdKind.BREACH
        threshold = threshold_json(row.metric, crossing)
        await tickets.record(
            session,
            ticket,
            None,
            kind="sla_breached" if breach else "sla_warning",
            occurred_at=crossing.at,
            now=now,
            public=False,
            data=threshold,
            context=context,
        )
        await tickets.emit(
            session,
            ticket,
            "sla.breached" if breach else "sla.warning",
            occurred_at=crossing.at,
            now=now,
            context=context,
            threshold=threshold,
            actor=actor_of(None),
        )
        to_tier = _escalate_to(row) if breach else None
        status = TicketStatus(ticket.status)
        if to_tier is None or to_tier <= ticket.tier or status not in lifecycle.OPEN_STATUSES:
            return
        previous = ticket.tier
        ticket.tier = to_tier
        ticket.version += 1
        result.escalated += 1
        await tickets.record(
            session,
            ticket,
            None,
            kind="escalated",
            occurred_at=crossing.at,
            now=now,
            data={
                "from_tier": previous,
                "to_tier": to_tier,
                "reason": f"{row.metric} SLA breached",
                "threshold": threshold,
            },
            outbox_type="ticket.escalated",
            context=context,
        )

    # ---------------------------------------------------------------------- auto-close

    async def auto_close(self, now: datetime) -> RoundResult:
        result = RoundResult()
        async with self.sessions() as session, session.begin():
            await clock_store.share_timing(session)
            due = list(
                (
                    await session.execute(
                        select(Ticket)
                        .where(col(Ticket.auto_close_at) <= now)
                        .order_by(col(Ticket.auto_close_at), col(Ticket.id))
                        .limit(self.config.batch)
                        .with_for_update(key_share=True, skip_locked=True)
                    )
                ).scalars()
            )
            for ticket in due:
                at = ticket.auto_close_at
                assert at is not None
                # Cleared first: the close itself must not read as a cancellation.
                ticket.auto_close_at = None
                if ticket.status != TicketStatus.WAITING_ON_CUSTOMER.value:
                    continue  # every path out of waiting clears it; repaired, not closed
                await ticket_actions.apply(
                    session,
                    ticket,
                    None,
                    Action.CLOSE,
                    CloseBody(reason="no_response"),
                    occurred=max(at, ticket.last_event_at),
                    now=now,
                )
                result.closed += 1
            result.more = len(due) == self.config.batch
        if result.closed:
            logger.info(
                "closed %d tickets for lack of response",
                result.closed,
                extra={"worker": self.name},
            )
        return result


async def notify(engine: AsyncEngine) -> None:
    """Wake every timer loop (tests, tools)."""
    async with engine.begin() as conn:
        await conn.execute(text(f"NOTIFY {TIMER_CHANNEL}"))


async def run_timers(engine: AsyncEngine, settings: Settings, stop: asyncio.Event) -> None:
    """The loop registered in app.workers.runner."""
    await TimerLoop(engine, TimerConfig.from_settings(settings)).run(stop)


__all__ = ["TimerConfig", "TimerLoop", "run_timers", "threshold_json"]
