"""The timer loop: thresholds fire at their exact instants, each once, with their actions;
auto-close closes at its instant; a backlog fires oldest first.

Most tests drive `TimerLoop.run_round()` with a chosen `now` (the loop's clock is a
parameter), so weeks of timers run in milliseconds; the last ones run the real loop and
check that it wakes by itself (its own deadline, or a NOTIFY) and never fires early."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.workers.escalation import TimerConfig, TimerLoop
from tests.plan_factories import target
from tests.ticket_factories import act, clock, make_desk, open_ticket
from tests.webhook_harness import eventually, rows, running, scalar

H = timedelta(hours=1)
M = timedelta(minutes=1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def loop(engine: AsyncEngine, now: datetime | None = None, **config: Any) -> TimerLoop:
    fixed = (lambda: now) if now is not None else (lambda: datetime.now(UTC))
    return TimerLoop(engine, TimerConfig(**config), clock=fixed)


async def outbox(engine: AsyncEngine, ticket_id: str, *types: str) -> list[dict[str, Any]]:
    found = await rows(
        engine,
        "SELECT type, occurred_at, data FROM outbox_events WHERE ticket_id = :t "
        "AND type = ANY(:types) ORDER BY seq",
        t=uuid.UUID(ticket_id),
        types=list(types),
    )
    return [{"type": r.type, "occurred_at": r.occurred_at, "data": r.data} for r in found]


async def firings(engine: AsyncEngine, ticket_id: str) -> list[tuple[str, datetime]]:
    found = await rows(
        engine,
        "SELECT c.metric || ' ' || f.key AS what, f.instant FROM sla_firings f "
        "JOIN sla_clocks c ON c.id = f.clock_id WHERE f.ticket_id = :t ORDER BY f.instant, what",
        t=uuid.UUID(ticket_id),
    )
    return [(r.what, r.instant) for r in found]


async def test_warnings_breach_and_escalation_fire_once_at_their_instants(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(
        admin,
        targets=[
            target("first_response", 240),
            target(
                "resolution",
                60,
                clock="24x7",
                warn_at_percent=[50, 90],
                on_breach={"escalate_to_tier": 3},
            ),
        ],
    )
    received = datetime.now(UTC).replace(microsecond=0) - 3 * H
    ticket = await open_ticket(admin, desk, received_at=received.isoformat())

    # 31 minutes in: only the 50 % warning (30 min of 60, around the clock) is due.
    result = await loop(db, received + 31 * M).fire_thresholds(received + 31 * M)
    assert result.fired == 1
    assert await firings(db, ticket["id"]) == [("resolution warn:50", received + 30 * M)]
    # The clock now waits for its next threshold: 90 % = 54 minutes.
    assert (
        await scalar(db, "SELECT next_check_at FROM sla_clocks WHERE metric = 'resolution'")
        == received + 54 * M
    )

    # The same instant again, or a second loop: nothing more.
    assert (await loop(db).fire_thresholds(received + 31 * M)).fired == 0

    # Two hours in: the 90 % warning, then the breach at the due instant, then the tier.
    result = await loop(db).fire_thresholds(received + 2 * H)
    assert (result.fired, result.escalated) == (2, 1)
    assert await firings(db, ticket["id"]) == [
        ("resolution warn:50", received + 30 * M),
        ("resolution warn:90", received + 54 * M),
        ("resolution breach", received + 60 * M),
    ]
    events = await outbox(db, ticket["id"], "sla.warning", "sla.breached", "ticket.escalated")
    assert [e["type"] for e in events] == [
        "sla.warning",
        "sla.warning",
        "sla.breached",
        "ticket.escalated",
    ]
    warning, breach = events[1]["data"]["threshold"], events[2]["data"]["threshold"]
    assert warning == {
        "metric": "resolution",
        "key": "warn:90",
        "kind": "warning",
        "percent": 90,
        "before_minutes": None,
        "at": (received + 54 * M).isoformat().replace("+00:00", "Z"),
    }
    assert events[1]["occurred_at"] == received + 54 * M
    assert breach["key"] == "breach" and breach["at"] == (received + H).isoformat().replace(
        "+00:00", "Z"
    )
    assert {c["metric"] for c in events[2]["data"]["sla"]} == {"first_response", "resolution"}
    escalated = events[3]["data"]
    assert escalated["ticket"]["tier"] == 3
    assert escalated["event"]["from_tier"] == 1 and escalated["event"]["to_tier"] == 3
    assert escalated["event"]["threshold"]["key"] == "breach"
    assert escalated["event"]["actor"] == {"role": "system"}

    # The ticket: tier 3, breached at the due instant; the timeline says what fired,
    # but customers' view of it (public events) does not carry the desk's alarms.
    read = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
    assert read["tier"] == 3
    assert clock(read, "resolution")["breached_at"] == (received + H).isoformat().replace(
        "+00:00", "Z"
    )
    timeline = (await admin.get(f"/v1/tickets/{ticket['id']}/timeline")).json()["items"]
    kinds = [(e["kind"], e["public"]) for e in timeline]
    assert kinds[-4:] == [
        ("sla_warning", False),
        ("sla_warning", False),
        ("sla_breached", False),
        ("escalated", True),
    ]
    # Nothing is left to fire on the resolution clock; the first response is still due.
    assert (
        await scalar(db, "SELECT next_check_at FROM sla_clocks WHERE metric = 'resolution'") is None
    )
    assert (await loop(db).fire_thresholds(received + 3 * H)).fired == 0


async def test_business_time_thresholds_follow_the_calendar(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    # Mexico City, 08:30-18:00 Mon-Fri (UTC-6 all year). Received Friday 2026-03-06 17:40
    # local (23:40Z); 60 business minutes: 20 on Friday until 18:00, 40 from Monday 08:30.
    # The 50 % warning (30 min) is Monday 08:40 local = 14:40Z; the breach 09:10 = 15:10Z.
    desk = await make_desk(admin, targets=[target("first_response", 60, warn_at_percent=[50])])
    ticket = await open_ticket(admin, desk, received_at="2026-03-06T23:40:00Z")
    assert await scalar(db, "SELECT next_check_at FROM sla_clocks") == at("2026-03-09T14:40:00Z")

    # The weekend passes: nothing is due.
    assert (await loop(db).fire_thresholds(at("2026-03-08T23:00:00Z"))).fired == 0
    assert (await loop(db).fire_thresholds(at("2026-03-09T14:40:00Z"))).fired == 1
    assert await scalar(db, "SELECT next_check_at FROM sla_clocks") == at("2026-03-09T15:10:00Z")
    # Monday 09:10 local exactly: due, not late yet (a reply now would be on time).
    assert (await loop(db).fire_thresholds(at("2026-03-09T15:10:00Z"))).fired == 0
    assert (await loop(db).fire_thresholds(at("2026-03-09T15:10:01Z"))).fired == 1
    assert await firings(db, ticket["id"]) == [
        ("first_response warn:50", at("2026-03-09T14:40:00Z")),
        ("first_response breach", at("2026-03-09T15:10:00Z")),
    ]


async def test_paused_clocks_do_not_fire_and_resume_moves_the_instant(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin, targets=[target("resolution", 60, clock="24x7")])
    received = datetime.now(UTC).replace(microsecond=0) - 10 * H
    ticket = await open_ticket(admin, desk, received_at=received.isoformat())
    assert await scalar(db, "SELECT next_check_at FROM sla_clocks") == received + H

    # 20 minutes counted, then the ticket waits on the customer for 5 hours.
    await act(admin, ticket["id"], "request_info", body="Which version?",
              occurred_at=(received + 20 * M).isoformat())  # fmt: skip
    assert await scalar(db, "SELECT next_check_at FROM sla_clocks") is None
    assert (await loop(db).fire_thresholds(received + 4 * H)).fired == 0

    await act(admin, ticket["id"], "customer_reply", body="3.2",
              occurred_at=(received + 5 * H + 20 * M).isoformat())  # fmt: skip
    # 40 minutes remain from 05:20: due at 06:00.
    assert await scalar(db, "SELECT next_check_at FROM sla_clocks") == received + 6 * H
    assert (await loop(db).fire_thresholds(received + 7 * H)).fired == 1
    assert await firings(db, ticket["id"]) == [("resolution breach", received + 6 * H)]


async def test_a_clock_stopped_in_time_never_breaches_and_a_late_stop_still_reports(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin, targets=[target("first_response", 60, clock="24x7")])
    received = datetime.now(UTC).replace(microsecond=0) - 5 * H
    on_time = await open_ticket(admin, desk, received_at=received.isoformat())
    late = await open_ticket(admin, desk, received_at=received.isoformat())
    await act(admin, on_time["id"], "reply", body="On it.",
              occurred_at=(received + 59 * M).isoformat())  # fmt: skip
    # Answered two hours late while no timer ran: the breach is history with its instant,
    # and the timer still reports it (once), at the due instant, not at the reply.
    await act(admin, late["id"], "reply", body="Sorry for the wait.",
              occurred_at=(received + 2 * H).isoformat())  # fmt: skip
    assert (await loop(db).fire_thresholds(received + 3 * H)).fired == 1
    assert await firings(db, on_time["id"]) == []
    assert await firings(db, late["id"]) == [("first_response breach", received + H)]
    assert await scalar(db, "SELECT count(*) FROM sla_clocks WHERE next_check_at IS NOT NULL") == 0


async def test_a_backlog_fires_oldest_first_across_batches(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(
        admin, targets=[target("first_response", 60, clock="24x7", warn_at_percent=[50])]
    )
    base = datetime.now(UTC).replace(microsecond=0) - 48 * H
    # Five tickets, received an hour apart, in a shuffled order of creation.
    created = []
    for offset in (3, 0, 4, 1, 2):
        t = await open_ticket(admin, desk, received_at=(base + offset * H).isoformat())
        created.append(t)
    timer = loop(db, batch=3)
    rounds = 0
    while True:
        result = await timer.fire_thresholds(base + 24 * H)
        rounds += 1
        if result.fired == 0 and not result.more:
            break
    assert rounds >= 4  # 10 thresholds, 3 clocks a batch
    instants = [
        r.occurred_at
        for r in await rows(
            db,
            "SELECT occurred_at FROM outbox_events WHERE type LIKE 'sla.%' ORDER BY seq",
        )
    ]
    assert len(instants) == 10 and instants == sorted(instants)
    assert instants[0] == base + 30 * M and instants[-1] == base + 5 * H


async def test_a_full_batch_of_clocks_due_at_one_instant_fires_them_all(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    # An outage: every customer writes in the same second, so every breach is due at one
    # instant. A batch full of them must still fire (a breach is reached strictly after its
    # due instant, so a horizon at the instant would fire none and claim them for ever).
    desk = await make_desk(admin, targets=[target("first_response", 60, clock="24x7")])
    received = datetime.now(UTC).replace(microsecond=0) - 3 * H
    created = [await open_ticket(admin, desk, received_at=received.isoformat()) for _ in range(4)]
    timer = loop(db, batch=2)
    rounds = 0
    while rounds < 10:
        result = await timer.fire_thresholds(received + 2 * H)
        rounds += 1
        if result.fired == 0 and not result.more:
            break
    assert rounds <= 4  # two full batches, then an empty round
    for ticket in created:
        assert await firings(db, ticket["id"]) == [("first_response breach", received + H)]
    assert await scalar(db, "SELECT count(*) FROM sla_clocks WHERE next_check_at IS NOT NULL") == 0


async def test_auto_close_closes_for_no_response_at_its_instant(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    # Seed 004: three attempts to reach the customer, then five business days' notice.
    desk = await make_desk(
        admin,
        targets=[target("resolution", 600)],
        auto_close={"contact_attempts": 3, "notice_business_days": 5},
    )
    # Monday 2026-03-02, Mexico City (UTC-6).
    ticket = await open_ticket(admin, desk, received_at="2026-03-02T15:00:00Z")
    answered = await open_ticket(admin, desk, received_at="2026-03-02T15:00:00Z")
    for t in (ticket, answered):
        await act(admin, t["id"], "request_info", body="Logs?", occurred_at="2026-03-02T16:00:00Z")
        for day in ("03", "04"):
            await act(admin, t["id"], "contact_attempt", channel="phone", body="No answer.",
                      occurred_at=f"2026-03-{day}T16:00:00Z")  # fmt: skip
    # The third attempt was Wednesday 10:00 local; five business days later is the next
    # Wednesday, 2026-03-11 10:00 local = 16:00Z.
    read = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
    assert read["auto_close_at"] == "2026-03-11T16:00:00Z"
    await act(admin, answered["id"], "customer_reply", body="Here they are.",
              occurred_at="2026-03-05T16:00:00Z")  # fmt: skip

    assert (await loop(db).auto_close(at("2026-03-11T15:59:59Z"))).closed == 0
    assert (await loop(db).auto_close(at("2026-03-11T16:00:30Z"))).closed == 1
    assert (await loop(db).auto_close(at("2026-03-12T00:00:00Z"))).closed == 0

    read = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
    assert (read["status"], read["close_reason"]) == ("closed", "no_response")
    assert read["closed_at"] == "2026-03-11T16:00:00Z" and read["auto_close_at"] is None
    assert clock(read, "resolution")["stopped_at"] == "2026-03-11T16:00:00Z"
    closed = await outbox(db, ticket["id"], "ticket.closed")
    assert len(closed) == 1 and closed[0]["data"]["event"]["reason"] == "no_response"
    assert closed[0]["data"]["event"]["actor"] == {"role": "system"}
    assert closed[0]["occurred_at"] == at("2026-03-11T16:00:00Z")
    # Seed 004: help asked for later is a new ticket, not a reopen.
    response = await admin.post(f"/v1/tickets/{ticket['id']}/actions/reopen", json={"body": "?"})
    assert response.status_code == 409 and "follows_up_ticket_id" in response.json()["detail"]
    # The customer who answered keeps an open ticket.
    other = (await admin.get(f"/v1/tickets/{answered['id']}")).json()
    assert other["status"] == "in_progress" and other["auto_close_at"] is None


async def test_the_running_loop_sleeps_until_the_instant_and_never_fires_early(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin, targets=[target("first_response", 1, clock="24x7")])
    timer = loop(db, safety_recheck=300.0, listener_health_interval=1.0)
    async with running(timer):
        await eventually(timer.listening.is_set, what="timer listening")
        # Due in about two seconds: the loop must wake for it by itself.
        received = datetime.now(UTC) - timedelta(seconds=58)
        ticket = await open_ticket(admin, desk, received_at=received.isoformat())
        await eventually(_fired(db, 1), within=20, what="the breach fired by the sleeping loop")
        instant, fired_at = (await rows(db, "SELECT instant, fired_at FROM sla_firings"))[0]
        assert instant == received + M
        assert fired_at > instant  # a breach is strictly after the due instant

        # An overdue threshold created while the loop sleeps (its next instant is far):
        # the NOTIFY of the change wakes it, long before its 300 s safety re-check.
        old = await open_ticket(admin, desk, received_at=(received - H).isoformat())
        await eventually(_fired(db, 2), within=20, what="woken by NOTIFY")
    assert await firings(db, old["id"]) == [("first_response breach", received - H + M)]
    assert len(await firings(db, ticket["id"])) == 1


def _fired(engine: AsyncEngine, n: int) -> Any:
    async def check() -> bool:
        return bool(await scalar(engine, "SELECT count(*) FROM sla_firings") >= n)

    return check
