"""The hot path costs a handful of statements (issue 18): creating a ticket reads what it
needs once and reads back nothing it has just written; its answer and its outbox event
are built from what is at hand."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.plan_factories import target
from tests.ticket_factories import make_desk, open_ticket
from tests.webhook_harness import rows


@contextmanager
def recorded(db: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    event.listen(db.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
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
    # Nothing written is read back: no SELECT of clocks, firings or calendars (the
    # decision loaded the calendar with the plan).
    reads = [s for s in statements if s.startswith("SELECT")]
    read_back = [s for s in reads if " FROM sla_clocks" in s or " FROM sla_firings" in s]
    assert read_back == [], read_back
    assert not [s for s in reads if " FROM calendars " in s and "plans" not in s], reads
    # A handful: the key, the timing lock, the organization and contact, the decision,
    # the number, and the inserts (ticket, clocks, timeline and outbox events), the
    # NOTIFYs and the commit's bookkeeping.
    assert len(statements) <= 14, "\n".join(statements)


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
