"""The hot path costs a handful of statements (issue 18): creating a ticket reads what it
needs once and reads back nothing it has just written; its answer and its outbox event
are built from what is at hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.plan_factories import target
from tests.ticket_factories import act, clock, make_desk, open_ticket
from tests.webhook_harness import rows


@contextmanager
def recorded(db: AsyncEngine) -> Iterator[list[str]]:
    """Every statement a request sends: through SQLAlchemy, and straight through the
    driver (app.db.fetch_row and fetch_rows, the ways around SQLAlchemy in a request)."""
    from app import db as app_db

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    def counting(fetch: Any) -> Any:
        async def counted(session: Any, sql: str, *args: Any) -> Any:
            statements.append(" ".join(sql.split()))
            return await fetch(session, sql, *args)

        return counted

    originals = {name: getattr(app_db, name) for name in ("fetch_row", "fetch_rows")}
    event.listen(db.sync_engine, "before_cursor_execute", count)
    for name, fetch in originals.items():
        setattr(app_db, name, counting(fetch))
    try:
        yield statements
    finally:
        for name, fetch in originals.items():
            setattr(app_db, name, fetch)
        event.remove(db.sync_engine, "before_cursor_execute", count)


async def test_intake_reads_nothing_back_and_costs_a_handful_of_statements(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin, targets=[target("first_response", 60), target("resolution", 600)])
    await open_ticket(admin, desk)  # warm: the key, the compiled plan and calendar
    with recorded(db) as statements:
        ticket = await open_ticket(admin, desk)
    # The answer carries both clocks, read from the rows just made ...
    assert sorted(c["metric"] for c in ticket["sla"]) == ["first_response", "resolution"]
    assert all(c["due_at"] for c in ticket["sla"])
    # ... and so does the outbox event, equal to what a later read shows.
    [created] = await rows(
        db,
        "SELECT data FROM outbox_events WHERE ticket_id = :t AND type = 'ticket.created'",
        t=ticket["id"],
    )
    read = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
    stable = ("metric", "clock", "minutes", "state", "due_at", "due_local", "started_at")

    def fixed(clocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: c[k] for k in stable} for c in clocks]

    assert fixed(created.data["sla"]) == fixed(read["sla"]) == fixed(ticket["sla"])
    # The event is the answer's public part, read at the same instant (the ticket is read
    # once for both): never a key's own parts (allowed actions, the override reason).
    public = {k: v for k, v in ticket.items() if k not in ("allowed_actions", "override_reason")}
    assert {**created.data["ticket"], "sla": created.data["sla"]} == public
    # Nothing written is read back: no SELECT of clocks, firings or calendars (the
    # decision loaded the calendar with the plan).
    reads = [s for s in statements if s.startswith("SELECT")]
    read_back = [s for s in reads if " FROM sla_clocks" in s or " FROM sla_firings" in s]
    assert read_back == [], read_back
    assert not [s for s in reads if " FROM calendars " in s and "plans" not in s], reads
    # A handful: the key; the timing lock with the organization and contact; the
    # decision; the ticket, its number returned; one statement for the clocks, timeline
    # and outbox events and both NOTIFYs. No UPDATE of the ticket just inserted.
    assert len(statements) <= 5, "\n".join(statements)
    assert not [s for s in statements if s.startswith("UPDATE")], statements


async def test_a_ticket_read_is_the_key_and_one_statement(
    db: AsyncEngine, admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = await make_desk(admin, targets=[target("first_response", 60), target("resolution", 600)])
    ticket = await open_ticket(admin, desk)
    began: list[object] = []
    start = asyncpg.transaction.Transaction.start

    async def counted(self: asyncpg.transaction.Transaction) -> None:
        began.append(self)
        await start(self)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", counted)
    with recorded(db) as statements:
        read = await admin.get(f"/v1/tickets/{ticket['id']}")
    assert read.status_code == 200
    # Nothing to commit: no BEGIN, no COMMIT (app.db.read_only).
    assert began == []
    assert len(read.json()["sla"]) == 2
    # The key, then the ticket with its clocks, their firings and calendars.
    assert len(statements) == 2, "\n".join(statements)
    assert " FROM api_keys " in statements[0]
    assert " FROM tickets " in statements[1] and " sla_firings " in statements[1]


async def test_an_action_reads_the_clocks_once_and_nothing_back(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin, targets=[target("first_response", 60), target("resolution", 600)])
    ticket = await open_ticket(admin, desk)
    await act(admin, ticket["id"], "note", body="warm")  # warm: the key, the compiled terms
    with recorded(db) as statements:
        replied = await act(admin, ticket["id"], "reply", body="Looking at it now.")
    # The first reply stops first_response: the answer shows it, as a later read does.
    read = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
    assert clock(replied, "first_response")["state"] == "met"
    assert replied["sla"] == [
        {**c, **{k: replied_c[k] for k in ("elapsed_seconds", "remaining_seconds")}}
        for c, replied_c in zip(read["sla"], replied["sla"], strict=True)
    ]
    # The clocks are read once, after the row lock; the events' payloads and the answer
    # are built from them. The ticket is updated once.
    clock_reads = [s for s in statements if s.startswith("SELECT") and " FROM sla_clocks" in s]
    assert len(clock_reads) == 1, clock_reads
    assert len([s for s in statements if s.startswith("UPDATE tickets")]) == 1, statements
    # The key; the timing and row locks; the clocks; the clock and ticket updates; the
    # timeline and outbox events; the follow-up work log (the charged total, the entry,
    # the after-hours requests when outside business hours); the status change's outbox
    # event; one statement for both NOTIFYs.
    assert len(statements) <= 12, "\n".join(statements)


def test_remembered_default_factory_answers_are_pydantics() -> None:
    import uuid

    from pydantic import BaseModel, Field
    from pydantic._internal import _fields

    from app.models import construct_speed

    assert _fields.takes_validated_data_argument is construct_speed.takes_validated_data_argument
    assert construct_speed.takes_validated_data_argument(uuid.uuid4) is False
    assert construct_speed.takes_validated_data_argument(lambda data: data["a"]) is True

    class Derived(BaseModel):  # a factory that reads the validated data still gets it
        a: int
        b: int = Field(default_factory=lambda data: data["a"] + 1)

    assert Derived(a=1).b == 2 and Derived(a=5).b == 6


def test_a_built_row_is_the_row_the_constructor_makes() -> None:
    import uuid
    from datetime import UTC, datetime

    import pytest
    from sqlalchemy import inspect

    from app.models.build import build
    from app.models.outbox import OutboxEvent
    from app.models.tickets import IdempotencyKey, SlaClock, Ticket, TicketEvent

    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    given = {
        Ticket: dict(
            organization_id=uuid.uuid4(),
            contact_id=uuid.uuid4(),
            channel="email",
            severity="high",
            category="technical",
            subject="VPN",
            description="drops",
            status="new",
            entitled=True,
            entitlement_reasons=[],
            received_at=now,
            last_event_at=now,
        ),
        SlaClock: dict(
            ticket_id=uuid.uuid4(),
            metric="first_response",
            target={"minutes": 60},
            kind="business",
            started_at=now,
            changed_at=now,
        ),
        TicketEvent: dict(
            ticket_id=uuid.uuid4(), kind="created", public=True, actor={}, occurred_at=now
        ),
        OutboxEvent: dict(type="ticket.created", occurred_at=now, data={"a": [1]}),
        IdempotencyKey: dict(
            api_key_id=uuid.uuid4(), key="k", request_hash="h", ticket_id=uuid.uuid4()
        ),
    }
    for model, values in given.items():
        made, built = model(**values), build(model, **values)
        # What default factories make (ids, instants of now) differs between two calls.
        fresh = {
            name
            for name, field in model.model_fields.items()
            if field.default_factory is not None and name not in values
        }
        assert made.model_dump(exclude=fresh) == built.model_dump(exclude=fresh), model
        assert set(made.__dict__) == set(built.__dict__), model
        assert made.__pydantic_fields_set__ == built.__pydantic_fields_set__, model
        assert all(getattr(built, name) is not None for name in fresh), model
        assert inspect(built).transient
    # Two rows never share a mutable default, and a later change is tracked as usual.
    one, two = build(SlaClock, **given[SlaClock]), build(SlaClock, **given[SlaClock])
    assert one.id != two.id
    one.thresholds.append({"at": 50})
    assert two.thresholds == []
    one.metric = "resolution"
    assert inspect(one).attrs.metric.history.added == ["resolution"]
    with pytest.raises(TypeError, match="no field"):
        build(Ticket, **given[Ticket], colour="red")


async def test_an_actions_answer_is_what_a_read_shows(admin: httpx.AsyncClient) -> None:
    # Around-the-clock clocks only: no clock counts on the plan's calendar, so a read
    # tells due times in the time zone the ticket's snapshot recorded, even after the
    # calendar moved to another one; the action's answer (built from what it stored)
    # must say the same.
    desk = await make_desk(
        admin,
        timezone="America/Mexico_City",
        targets=[
            target("first_response", 60, clock="24x7"),
            target("resolution", 600, clock="24x7"),
        ],
    )
    ticket = await open_ticket(admin, desk)
    moved = await admin.patch(
        f"/v1/calendars/{desk.calendar['id']}", json={"timezone": "Asia/Tokyo"}
    )
    assert moved.status_code == 200, moved.text
    noted = await act(admin, ticket["id"], "note", body="Checked the logs.")
    read = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
    assert [c["due_local"] for c in noted["sla"]] == [c["due_local"] for c in read["sla"]]


async def test_the_timer_sleeps_through_intake_whose_clocks_come_later(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    # Under a burst of intake the timer ran a whole round (8 statements) per ticket and
    # found nothing due: an intake's NOTIFY now says when its clocks are first checked,
    # and a timer already sleeping until then stays asleep. Anything earlier wakes it.
    import asyncio
    from datetime import UTC, datetime, timedelta

    from app.workers.escalation import TimerConfig, TimerLoop
    from tests.webhook_harness import eventually, scalar

    loop = TimerLoop(db, TimerConfig(safety_recheck=600))
    heard: list[tuple[str, bool]] = []
    notified = loop.notified

    def spy(payload: str) -> None:
        notified(payload)
        heard.append((payload, loop._wake.is_set()))

    loop.notified = spy  # type: ignore[method-assign]
    desk = await make_desk(admin, targets=[target("first_response", 60, clock="24x7")])
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    try:
        await eventually(
            lambda: (
                loop.listening.is_set()
                and loop._asleep_until is not None
                and not loop._wake.is_set()
            ),
            what="the timer asleep",
        )
        asleep_until = loop._asleep_until
        assert asleep_until is not None
        later = await open_ticket(admin, desk)
        await eventually(lambda: len(heard) == 1, what="the first NOTIFY")
        [(payload, woken)] = heard
        first_check = await scalar(
            db, "SELECT min(next_check_at) FROM sla_clocks WHERE ticket_id = :t", t=later["id"]
        )
        assert datetime.fromisoformat(payload) == first_check > asleep_until
        assert not woken and loop._asleep_until == asleep_until
        # A ticket whose breach is already behind it wakes the timer, which fires it.
        overdue = await open_ticket(
            admin, desk, received_at=(datetime.now(UTC) - timedelta(hours=3)).isoformat()
        )
        await eventually(lambda: len(heard) == 2, what="the second NOTIFY")
        assert heard[1][1], "an earlier instant wakes the timer"
        await eventually(
            lambda: scalar(
                db,
                "SELECT count(*) FROM sla_firings f JOIN sla_clocks c ON c.id = f.clock_id"
                " WHERE c.ticket_id = :t AND f.key = 'breach'",
                t=overdue["id"],
            ),
            what="the overdue ticket's breach fired",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    # Any other payload (an action's wake, a garbled one) wakes it, asleep or not.
    for payload in ("", "not an instant", "2026-03-02T09:00:00"):
        loop._wake.clear()
        loop._asleep_until = datetime.now(UTC) - timedelta(days=1)
        loop.notified(payload)
        assert loop._wake.is_set(), payload
    loop._wake.clear()
    loop._asleep_until = None  # in a round: every notification wakes it
    loop.notified((datetime.now(UTC) + timedelta(days=1)).isoformat())
    assert loop._wake.is_set()
