"""Tickets: reading them with live SLA clocks, listing, editing, and their timeline.

Intake lives in services/intake.py and actions in services/ticket_actions.py; both end
by calling :func:`record` here, which writes the timeline event and the outbox event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, exists, func, inspect, or_, select, text
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement, TextClause
from sqlmodel import col

from app import db
from app.domain import lifecycle, sla
from app.domain.lifecycle import Action, CloseReason
from app.domain.vocab import Metric, TicketStatus
from app.errors import NotFound, PreconditionFailed, if_match_unquoted, unquoted_etags
from app.models.build import build
from app.models.calendar import CalendarRow
from app.models.search import TicketSearch
from app.models.tickets import SlaClock, SlaFiring, Ticket, TicketEvent
from app.pagination import keyset, page_of
from app.schemas.common import local_time
from app.schemas.tickets import ClockRead, PlanSummary, TicketEventRead, TicketRead, TicketUpdate
from app.security import Principal, actor_of
from app.services import clocks as clock_store
from app.services import compiled, outbox, search
from app.services.clocks import CalendarSet

_SECOND = timedelta(seconds=1)


def display_number(number: int) -> str:
    return f"SD-{number:06d}"


def etag(ticket: Ticket) -> str:
    # The ticket's version: its clock readings move with time, but what If-Match guards
    # (the ticket's state and history) changes only with the version.
    return f'"{ticket.version}"'


def check_if_match(ticket: Ticket, if_match: str | None) -> None:
    """Optimistic concurrency: If-Match must name the current version (412 otherwise).
    Strong comparison (RFC 9110): a weak tag never matches."""
    if if_match is None:
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    if "*" in wanted or etag(ticket) in wanted:
        return
    if unquoted_etags(if_match):
        raise if_match_unquoted(if_match, etag(ticket), current_etag=etag(ticket))
    raise PreconditionFailed(
        f"The ticket changed (it is at version {ticket.version}, ETag {etag(ticket)}); "
        "read it again and retry.",
        current_etag=etag(ticket),
    )


# ------------------------------------------------------------------------- loading


async def load(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, *, for_update: bool = False
) -> Ticket:
    """The ticket, scoped to the key (another organization's ticket is a 404). With
    ``for_update`` the row is locked: actions on one ticket are serialized here."""
    stmt = select(Ticket).where(col(Ticket.id) == ticket_id)
    if for_update:
        # FOR NO KEY UPDATE: serializes writers of this ticket without blocking rows that
        # merely reference it (a follow-up ticket, a firing, a work log).
        stmt = stmt.with_for_update(key_share=True)
    ticket = (await session.execute(stmt)).scalar_one_or_none()
    if ticket is None or not principal.can_see_organization(ticket.organization_id):
        raise NotFound("No ticket with that id.")
    return ticket


# An action's first statement: the shared timing lock, then the ticket's row lock (as
# share_timing then load(for_update=True), the lock order of services/clocks.py), in one
# round trip. The row lock returns the ticket's latest version even when it waited.
_LOCK_FOR_ACTION = (
    select(Ticket)
    .select_from(select(clock_store.SHARE_TIMING.label("timing")).subquery())
    .join(Ticket, col(Ticket.id) == bindparam("ticket_id"))
    .with_for_update(key_share=True, of=Ticket)
)


async def lock_for_action(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID
) -> Ticket:
    """The shared timing lock and the ticket's row lock (see :func:`load`)."""
    result = await session.execute(_LOCK_FOR_ACTION, {"ticket_id": ticket_id})
    ticket = result.scalar_one_or_none()
    if ticket is None or not principal.can_see_organization(ticket.organization_id):
        raise NotFound("No ticket with that id.")
    return ticket


def _clock_columns() -> tuple[Any, ...]:
    """A clock row, the keys and instants of its firings (in key order), and the version
    and spec of the calendar counting it (for the compiled cache)."""
    fired = col(SlaFiring.clock_id) == col(SlaClock.id)
    by_key = col(SlaFiring.key)
    keys = select(func.array_agg(aggregate_order_by(col(SlaFiring.key), by_key)))
    instants = select(func.array_agg(aggregate_order_by(col(SlaFiring.instant), by_key)))
    return (
        SlaClock,
        keys.where(fired).scalar_subquery().label("fired_keys"),
        instants.where(fired).scalar_subquery().label("fired_instants"),
        col(CalendarRow.version),
        col(CalendarRow.spec),
    )


# A ticket read used to cost four round trips (the ticket, its clocks, their calendars,
# their firings), each dearer in the ORM and the driver than the database's own work:
# one statement each now, built once.
_TICKET_WITH_CLOCKS = (
    select(Ticket, *_clock_columns())
    .outerjoin(SlaClock, col(SlaClock.ticket_id) == col(Ticket.id))
    .outerjoin(CalendarRow, col(CalendarRow.id) == col(SlaClock.calendar_id))
    .where(col(Ticket.id) == bindparam("ticket_id"))
    .order_by(col(SlaClock.metric))
)
# After the ticket's row lock, in a statement of its own: a locking statement that waited
# for another writer sees that writer's ticket row but the rest as it was before (its
# snapshot), so the clocks must be read by a later statement.
_CLOCKS = (
    select(*_clock_columns())
    .outerjoin(CalendarRow, col(CalendarRow.id) == col(SlaClock.calendar_id))
    .where(col(SlaClock.ticket_id) == bindparam("ticket_id"))
    .order_by(col(SlaClock.metric))
)


@dataclass
class Clocks:
    """A ticket's clocks (by metric), the calendars they count on and the thresholds fired
    on each (key -> the instant it fired for)."""

    rows: list[SlaClock]
    cals: CalendarSet
    firings: dict[uuid.UUID, dict[str, datetime]]

    @property
    def fired(self) -> dict[uuid.UUID, set[str]]:
        return {clock_id: set(keys) for clock_id, keys in self.firings.items()}


async def _clocks_from(session: AsyncSession, found: Iterable[Sequence[Any]]) -> Clocks:
    rows: list[SlaClock] = []
    firings: dict[uuid.UUID, dict[str, datetime]] = {}
    versions: dict[uuid.UUID, tuple[uuid.UUID, int, dict[str, Any]]] = {}
    for row, keys, instants, version, spec in found:
        if row is None:
            continue
        rows.append(row)
        if keys:
            firings[row.id] = dict(zip(keys, instants, strict=True))
        if row.calendar_id is not None and version is not None:
            versions[row.calendar_id] = (row.calendar_id, version, spec)
    cals = CalendarSet.of_versions(versions.values())
    # A deleted calendar still counts the clocks timed with it: its last version.
    deleted = {r.calendar_id for r in rows if r.calendar_id is not None} - set(versions)
    if deleted:
        cals.add(CalendarSet((), await compiled.last_versions(session, deleted)))
    return Clocks(rows, cals, firings)


async def clocks_of(session: AsyncSession, ticket_id: uuid.UUID) -> Clocks:
    """The ticket's clocks with their firings and calendars, in one statement."""
    result = await session.execute(_CLOCKS, {"ticket_id": ticket_id})
    return await _clocks_from(session, result)


async def load_with_clocks(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID
) -> tuple[Ticket, Clocks]:
    """:func:`load` (unlocked) and :func:`clocks_of`, in one statement, for a read.

    The statement goes straight to the driver and the rows are built (models.build), not
    loaded by the ORM: on a ticket read, SQLAlchemy's execution and loading cost more
    CPU than everything else. The objects are not in the session: nothing is written
    through them."""
    found = await db.fetch_rows(session, _TICKET_WITH_CLOCKS_SQL, ticket_id)
    first = found[0] if found else None
    if first is None or not principal.can_see_organization(first[_TICKET_ORGANIZATION]):
        raise NotFound("No ticket with that id.")
    ticket = build(Ticket, **dict(zip(_TICKET_KEYS, first[:_CLOCKS_AT], strict=True)))
    clocks = (
        (build(SlaClock, **dict(zip(_CLOCK_KEYS, r[_CLOCKS_AT:_EXTRAS_AT], strict=True))),
         *r[_EXTRAS_AT:])
        if r[_CLOCKS_AT] is not None
        else (None, None, None, None, None)  # the outer join's row of a clockless ticket
        for r in found
    )  # fmt: skip
    return ticket, await _clocks_from(session, clocks)


def _ticket_with_clocks_sql() -> str:
    """:data:`_TICKET_WITH_CLOCKS` as the driver takes it (``$1``: the ticket's id): its
    columns are the ticket's, the clock's, then :func:`_clock_columns`' four others."""
    compiled = _TICKET_WITH_CLOCKS.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    assert compiled.positiontup == ["ticket_id"], compiled.positiontup
    assert len(_TICKET_WITH_CLOCKS.selected_columns) == _EXTRAS_AT + 4, "a column moved"
    return str(compiled)


_TICKET_KEYS = [c.key for c in inspect(Ticket).columns]
_CLOCK_KEYS = [c.key for c in inspect(SlaClock).columns]
_TICKET_ORGANIZATION = _TICKET_KEYS.index("organization_id")
_CLOCKS_AT = len(_TICKET_KEYS)
_EXTRAS_AT = _CLOCKS_AT + len(_CLOCK_KEYS)
_TICKET_WITH_CLOCKS_SQL = _ticket_with_clocks_sql()


# Timeline events that are a public response to the customer (they stop first_response).
_RESPONSES = ("replied", "info_requested", "called_back")


async def startable_metrics(session: AsyncSession, ticket: Ticket) -> frozenset[Metric]:
    """Metrics a newly applicable target may start a clock for: none once the ticket is
    resolved or closed, and no first response once the customer was answered."""
    if TicketStatus(ticket.status) not in lifecycle.OPEN_STATUSES:
        return frozenset()
    answered = await session.scalar(
        select(
            exists().where(
                col(TicketEvent.ticket_id) == ticket.id, col(TicketEvent.kind).in_(_RESPONSES)
            )
        )
    )
    return frozenset(Metric) - ({Metric.FIRST_RESPONSE} if answered else set())


async def clock_rows(session: AsyncSession, ticket_ids: Sequence[uuid.UUID]) -> list[SlaClock]:
    if not ticket_ids:
        return []
    stmt = (
        select(SlaClock)
        .where(col(SlaClock.ticket_id).in_(ticket_ids))
        .order_by(col(SlaClock.metric))
    )
    return list((await session.execute(stmt)).scalars())


async def calendars_for(session: AsyncSession, rows: Sequence[SlaClock]) -> CalendarSet:
    return await clock_store.calendar_set(session, (r.calendar_id for r in rows))


# ------------------------------------------------------------------------- reading


def plan_timezone(ticket: Ticket, cals: CalendarSet) -> str | None:
    """The time zone of the ticket's plan calendar: its live value when the calendar is
    loaded (a business clock counts by it), else as the ticket's snapshot recorded it."""
    snapshot = ticket.plan_snapshot
    if not snapshot or not snapshot.get("calendar_id"):
        return None
    calendar_id = snapshot["calendar_id"]
    live = cals.timezone(uuid.UUID(calendar_id))
    if live is not None:
        return live
    recorded = [
        p.get("timezone") for p in snapshot.get("chain", ()) if p.get("calendar_id") == calendar_id
    ]
    return recorded[0] if recorded else None


def clock_read(
    row: SlaClock,
    cals: CalendarSet,
    now: datetime,
    fired: set[str] | None = None,
    timezone: str | None = None,
) -> ClockRead:
    """The clock read at ``now``; its due time is also told in ``timezone``."""
    clock = clock_store.to_domain(row)
    cal = cals.of(row)
    reading = sla.read(clock, now, cal)
    pending = sla.next_threshold(clock, fired or set(), cal)
    return ClockRead(
        metric=reading.metric,
        minutes=reading.minutes,
        clock="24x7" if row.kind == "24x7" else "business",
        state=reading.state.value,
        running=reading.running,
        started_at=reading.started_at,
        due_at=reading.due_at,
        due_local=local_time(reading.due_at, timezone),
        elapsed_seconds=reading.elapsed // _SECOND,
        remaining_seconds=None if reading.remaining is None else reading.remaining // _SECOND,
        overdue_seconds=None if reading.overdue is None else reading.overdue // _SECOND,
        met_by_seconds=None if reading.met_by is None else reading.met_by // _SECOND,
        stopped_at=reading.stopped_at,
        breached_at=reading.breached_at,
        next_threshold=(
            {"key": pending.threshold.key, "kind": pending.threshold.kind.value, "at": pending.at}
            if pending is not None
            else None
        ),
    )


def ticket_read(
    ticket: Ticket,
    rows: Sequence[SlaClock],
    cals: CalendarSet,
    now: datetime,
    principal: Principal | None = None,
    fired: dict[uuid.UUID, set[str]] | None = None,
) -> TicketRead:
    """The ticket with its clocks read at ``now`` (reading never changes anything)."""
    status = TicketStatus(ticket.status)
    reason = CloseReason(ticket.close_reason) if ticket.close_reason else None
    allowed = lifecycle.allowed_actions(status, reason)
    customer = principal is not None and principal.is_customer
    if customer:
        allowed &= lifecycle.CUSTOMER_ACTIONS
    snapshot = ticket.plan_snapshot or None
    plan = PlanSummary.model_validate(snapshot["plan"]) if snapshot else None
    zone = plan_timezone(ticket, cals) if rows else None
    return TicketRead(
        id=ticket.id,
        number=display_number(ticket.number),
        organization_id=ticket.organization_id,
        contact_id=ticket.contact_id,
        channel=ticket.channel,
        severity=ticket.severity,
        category=ticket.category,
        subject=ticket.subject,
        description=ticket.description,
        status=status,
        tier=ticket.tier,
        assignee_id=ticket.assignee_id,
        entitled=ticket.entitled,
        entitlement_reasons=list(ticket.entitlement_reasons),
        override_reason=None if customer else ticket.override_reason,
        plan=plan,
        after_hours=ticket.after_hours,
        received_at=ticket.received_at,
        contact_attempts=ticket.contact_attempts,
        auto_close_at=ticket.auto_close_at,
        close_reason=reason,
        resolution=ticket.resolution,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        follows_up_ticket_id=ticket.follows_up_ticket_id,
        vendor=ticket.vendor,
        vendor_case_ref=ticket.vendor_case_ref,
        next_due_at=ticket.next_due_at,
        version=ticket.version,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        sla=[clock_read(r, cals, now, (fired or {}).get(r.id), zone) for r in rows],
        allowed_actions=sorted(allowed, key=lambda a: list(Action).index(a)),
    )


async def read_ticket(
    session: AsyncSession, principal: Principal, ticket: Ticket, now: datetime
) -> TicketRead:
    clocks = await clocks_of(session, ticket.id)
    return ticket_read(ticket, clocks.rows, clocks.cals, now, principal, clocks.fired)


async def get_ticket(
    session: AsyncSession, principal: Principal, ticket_id: uuid.UUID, now: datetime
) -> tuple[Ticket, TicketRead]:
    ticket, clocks = await load_with_clocks(session, principal, ticket_id)
    return ticket, ticket_read(ticket, clocks.rows, clocks.cals, now, principal, clocks.fired)


async def update_ticket(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    data: TicketUpdate,
    *,
    if_match: str | None,
    now: datetime,
) -> Ticket:
    ticket = await load(session, principal, ticket_id, for_update=True)
    check_if_match(ticket, if_match)
    changes = data.changes()
    changed = {k: v for k, v in changes.items() if getattr(ticket, k) != v}
    if changed:
        for key, value in changed.items():
            setattr(ticket, key, value)
        ticket.version += 1
        at = max(now, ticket.last_event_at)
        await record(
            session,
            ticket,
            principal,
            kind="edited",
            occurred_at=at,
            data={"fields": sorted(changed)},
            outbox_type="ticket.updated",
            now=now,
        )
    await session.flush()
    return ticket


# ----------------------------------------------------------------------- recording


@dataclass
class PayloadContext:
    """What the event payloads of some tickets read (their clocks, calendars and fired
    thresholds), loaded once for a batch of events. Whoever changes those rows or fires a
    threshold meanwhile updates the same objects (``fired`` included)."""

    rows: dict[uuid.UUID, list[SlaClock]]
    cals: CalendarSet
    fired: dict[uuid.UUID, set[str]]


async def payload_context(session: AsyncSession, ticket_ids: Sequence[uuid.UUID]) -> PayloadContext:
    if len(ticket_ids) == 1:
        clocks = await clocks_of(session, ticket_ids[0])
        return PayloadContext({ticket_ids[0]: clocks.rows}, clocks.cals, clocks.fired)
    rows = await clock_rows(session, ticket_ids)
    by_ticket: dict[uuid.UUID, list[SlaClock]] = {}
    for row in rows:
        by_ticket.setdefault(row.ticket_id, []).append(row)
    return PayloadContext(
        rows=by_ticket,
        cals=await calendars_for(session, rows),
        fired=await clock_store.fired_keys(session, [r.id for r in rows]),
    )


async def event_payload(
    session: AsyncSession,
    ticket: Ticket,
    now: datetime,
    *,
    context: PayloadContext | None = None,
    view: TicketRead | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The outbox/webhook ``data`` of a ticket event: the ticket with its SLA clocks.
    ``view``: the ticket already read at ``now`` (by any key: the parts a key changes are
    not in the payload), so it is not read twice."""
    if view is None:
        ctx = context or await payload_context(session, [ticket.id])
        view = ticket_read(ticket, ctx.rows.get(ticket.id, []), ctx.cals, now, None, ctx.fired)
    payload = view.model_dump(mode="json", exclude={"allowed_actions", "override_reason"})
    sla_entries = payload.pop("sla")
    return {"ticket": payload, "sla": sla_entries, **extra}


async def emit(
    session: AsyncSession,
    ticket: Ticket,
    type_: str,
    *,
    occurred_at: datetime,
    now: datetime,
    context: PayloadContext | None = None,
    ticket_event_id: uuid.UUID | None = None,
    view: TicketRead | None = None,
    **extra: Any,
) -> None:
    """An outbox event about the ticket: its current state, clocks read at the event
    (``ticket_event_id``: the timeline event it reports, whose body e-mail quotes).

    With a ``context`` (a batch), nothing is read or written here: the event is added to
    the session, and the caller flushes and calls ``outbox.notify`` once."""
    payload = await event_payload(
        session, ticket, max(now, occurred_at), context=context, view=view, **extra
    )
    await outbox.emit(
        session,
        type_,
        occurred_at=occurred_at,
        data=payload,
        organization_id=ticket.organization_id,
        ticket_id=ticket.id,
        ticket_event_id=ticket_event_id,
        deferred=context is not None,
    )


async def record(
    session: AsyncSession,
    ticket: Ticket,
    principal: Principal | None,
    *,
    kind: str,
    occurred_at: datetime,
    now: datetime,
    body: str | None = None,
    public: bool = True,
    data: dict[str, Any] | None = None,
    outbox_type: str | None = None,
    context: PayloadContext | None = None,
    actor: dict[str, Any] | None = None,
    view: TicketRead | None = None,
) -> TicketEvent:
    """Write one timeline event and (optionally) its outbox event, in this transaction.
    ``actor`` (default: the principal's) says who acted; ``view``: see ``event_payload``
    (read at ``max(now, occurred_at)``).

    With a ``context`` (see ``emit``) both are only added to the session."""
    actor = actor or actor_of(principal)
    event = build(
        TicketEvent,
        ticket_id=ticket.id,
        kind=kind,
        public=public,
        actor=actor,
        body=body,
        data=data or {},
        occurred_at=occurred_at,
        recorded_at=now,
    )
    session.add(event)
    ticket.last_event_at = max(ticket.last_event_at, occurred_at)
    if context is None:
        await session.flush()
    if outbox_type is not None:
        event_data = {"kind": kind, "occurred_at": occurred_at.isoformat(), "actor": actor}
        await emit(
            session,
            ticket,
            outbox_type,
            occurred_at=occurred_at,
            now=now,
            context=context,
            ticket_event_id=event.id,
            view=view,
            event={**event_data, **(data or {})},
        )
    return event


async def wake(session: AsyncSession, *, outbox: bool = False, timers: bool = False) -> None:
    """Wake the dispatchers (new outbox events) and/or the timer loop (a clock's next
    instant changed) at commit: both in one statement when both are due."""
    channels = [
        c for c, due in ((outbox_channel, outbox), (clock_store.TIMER_CHANNEL, timers)) if due
    ]
    if channels:
        await session.execute(_WAKE[tuple(channels)])


outbox_channel = outbox.OUTBOX_CHANNEL
_WAKE: dict[tuple[str, ...], TextClause] = {
    channels: text("SELECT " + ", ".join(f"pg_notify('{c}', '')" for c in channels))
    for channels in (
        (outbox_channel,),
        (clock_store.TIMER_CHANNEL,),
        (outbox_channel, clock_store.TIMER_CHANNEL),
    )
}


async def timeline(
    session: AsyncSession,
    principal: Principal,
    ticket_id: uuid.UUID,
    *,
    cursor: str | None,
    limit: int,
) -> tuple[list[TicketEventRead], str | None]:
    """Every event in order (customer keys never see internal notes)."""
    await load(session, principal, ticket_id)
    stmt = select(TicketEvent).where(col(TicketEvent.ticket_id) == ticket_id)
    if principal.is_customer:
        stmt = stmt.where(col(TicketEvent.public).is_(True))
    stmt = keyset(stmt, [col(TicketEvent.seq)], cursor, limit)
    rows = (await session.execute(stmt)).scalars().all()
    items, next_cursor = page_of(rows, limit, lambda r: (r.seq,))
    events = [TicketEventRead.model_validate(r) for r in items]
    if principal.is_customer:
        for event in events:
            event.actor = customer_view_of_actor(event.actor)
    return events, next_cursor


def customer_view_of_actor(actor: dict[str, Any]) -> dict[str, Any]:
    """Customers see who acted by role (and their own contact), not staff key ids."""
    return {k: v for k, v in actor.items() if k in ("role", "contact_id") and v}


# ------------------------------------------------------------------------- listing


def list_statement(
    principal: Principal,
    *,
    now: datetime,
    cursor: str | None,
    limit: int,
    status: Sequence[TicketStatus] = (),
    severity: Sequence[str] = (),
    organization_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    tier: int | None = None,
    breached: bool | None = None,
    due_before: datetime | None = None,
    q: search.Parsed | None = None,
    sort: str = "-received_at",
) -> Select[Any]:
    """The page query of `GET /v1/tickets` (limit + 1 rows, keyset on the sort). Rows are
    tickets, or (ticket, rank) with ``sort="relevance"`` (which needs ``q``, as
    :func:`search.parse` gave it)."""
    organizations = {organization_id}
    if principal.is_customer:
        organizations.add(principal.organization_id)
    organizations.discard(None)
    conditions: list[ColumnElement[bool]] = []
    statuses = [s.value for s in status]
    if statuses and sort != "relevance":
        conditions.append(col(Ticket.status).in_(statuses))
    if severity:
        conditions.append(col(Ticket.severity).in_(list(severity)))
    if assignee_id is not None:
        conditions.append(col(Ticket.assignee_id) == assignee_id)
    if tier is not None:
        conditions.append(col(Ticket.tier) == tier)
    if due_before is not None:
        # next_due_at is the earliest due instant among the ticket's running clocks.
        conditions.append(col(Ticket.next_due_at) < due_before)
    if breached is not None:
        is_breached = exists().where(
            col(SlaClock.ticket_id) == col(Ticket.id),
            or_(
                col(SlaClock.breached_at).is_not(None),
                and_(col(SlaClock.due_at).is_not(None), col(SlaClock.due_at) < now),
            ),
        )
        conditions.append(is_breached if breached else ~is_breached)
    if sort == "relevance":
        assert q is not None, "relevance needs q"
        return search.ranked_tickets(
            principal,
            q,
            organizations=organizations,
            statuses=statuses,
            conditions=conditions,
            cursor=cursor,
            limit=limit,
        )
    stmt: Select[Any] = select(Ticket).where(*conditions)
    for organization in organizations:
        stmt = stmt.where(col(Ticket.organization_id) == organization)
    if q is not None:
        found, _ = search.ticket_match(principal, q)
        stmt = stmt.join(TicketSearch, col(TicketSearch.ticket_id) == col(Ticket.id)).where(found)
    if sort == "next_due":
        stmt = stmt.where(col(Ticket.next_due_at).is_not(None))
        return keyset(stmt, [col(Ticket.next_due_at), col(Ticket.id)], cursor, limit)
    columns = [col(Ticket.received_at), col(Ticket.id)]
    return keyset(stmt, columns, cursor, limit, descending=sort.startswith("-"))


async def list_tickets(
    session: AsyncSession,
    principal: Principal,
    *,
    now: datetime,
    cursor: str | None,
    limit: int,
    sort: str = "-received_at",
    **filters: Any,
) -> tuple[list[TicketRead], str | None]:
    if filters.get("q") is not None:
        filters["q"] = await search.parse(session, filters["q"])
    stmt = list_statement(principal, now=now, cursor=cursor, limit=limit, sort=sort, **filters)
    result = await session.execute(stmt)
    if sort == "relevance":
        ranked = list(result.all())
        page, next_cursor = page_of(ranked, limit, lambda r: (r.rank, r.Ticket.id))
        items = [r.Ticket for r in page]
    else:
        if sort == "next_due":
            key = lambda t: (t.next_due_at, t.id)  # noqa: E731
        else:
            key = lambda t: (t.received_at, t.id)  # noqa: E731
        items, next_cursor = page_of(list(result.scalars().all()), limit, key)
    rows = await clock_rows(session, [t.id for t in items])
    cals = await calendars_for(session, rows)
    fired = await clock_store.fired_keys(session, [r.id for r in rows])
    by_ticket: dict[uuid.UUID, list[SlaClock]] = {}
    for row in rows:
        by_ticket.setdefault(row.ticket_id, []).append(row)
    return [
        ticket_read(t, by_ticket.get(t.id, []), cals, now, principal, fired) for t in items
    ], next_cursor
