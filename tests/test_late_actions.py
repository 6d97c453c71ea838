"""Actions logged late: dated before the system's own events, they count from when they
happened. Warnings and breaches that no longer hold are retracted (with the webhook-id of
the delivery they withdraw), an auto-close a late customer reply precedes is withdrawn,
reports count the final truth, and what people recorded still cannot be reordered.

The first test runs the real timer loop and the real dispatcher against a receiver on
127.0.0.1, on a 2-minute around-the-clock target, as a user would see it; the others
drive the timer with a chosen `now` (tests/test_escalation.py), so hours pass in
milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from standardwebhooks import Webhook

from app.workers.dispatcher import Dispatcher
from app.workers.escalation import TimerConfig, TimerLoop
from tests.plan_factories import target
from tests.ticket_factories import act, clock, make_desk, open_ticket
from tests.webhook_harness import Receiver, config, eventually, msg_id, rows, running, scalar

S = timedelta(seconds=1)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def timeline(api: httpx.AsyncClient, ticket_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/tickets/{ticket_id}/timeline", params={"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def outbox(engine: AsyncEngine, ticket_id: str, *types: str) -> list[Any]:
    return await rows(
        engine,
        "SELECT id, type, occurred_at, data FROM outbox_events WHERE ticket_id = :t "
        "AND type = ANY(:types) ORDER BY seq",
        t=uuid.UUID(ticket_id),
        types=list(types),
    )


async def firings(engine: AsyncEngine, ticket_id: str) -> list[tuple[str, datetime]]:
    found = await rows(
        engine,
        "SELECT c.metric || ' ' || f.key AS what, f.instant FROM sla_firings f "
        "JOIN sla_clocks c ON c.id = f.clock_id WHERE f.ticket_id = :t ORDER BY f.instant, what",
        t=uuid.UUID(ticket_id),
    )
    return [(r.what, r.instant) for r in found]


def timer(engine: AsyncEngine) -> TimerLoop:
    return TimerLoop(engine, TimerConfig())


# ------------------------------------------------------------------ on a live loop


async def test_a_reply_logged_late_retracts_the_warning_and_the_breach_on_a_live_loop(
    db: AsyncEngine, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    desk = await make_desk(
        admin,
        targets=[
            target("first_response", 2, clock="24x7", warn_at_percent=[50],
                   on_breach={"escalate_to_tier": 2}),
        ],
    )  # fmt: skip
    types = ["sla.warning", "sla.breached", "sla.retracted"]
    response = await admin.post("/v1/webhooks", json={"url": receiver.url(), "event_types": types})
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    loop = TimerLoop(db, TimerConfig(safety_recheck=300.0, listener_health_interval=1.0))

    def delivered(type_: str) -> list[Any]:
        """One request per webhook-id (a retry, at-least-once, carries the same id)."""
        by_id = {r.id: r for r in receiver.requests if r.json["type"] == type_}
        return sorted(by_id.values(), key=receiver.requests.index)

    async with running(Dispatcher(db, config())), running(loop):
        await eventually(loop.listening.is_set, what="timer listening")
        # A call came in 110 s ago: the 50 % warning (at 60 s) is overdue, the breach (at
        # 120 s) comes while we watch. The loops fire and deliver both by themselves.
        received = datetime.now(UTC).replace(microsecond=0) - 110 * S
        t = (await open_ticket(admin, desk, received_at=received.isoformat()))["id"]
        await eventually(
            lambda: len(delivered("sla.breached")) == 1 and len(delivered("sla.warning")) == 1,
            within=60,
            what="the warning and the breach delivered",
        )
        [warning], [breach] = delivered("sla.warning"), delivered("sla.breached")
        assert (await admin.get(f"/v1/tickets/{t}")).json()["tier"] == 2

        # The agent answered the phone 30 s after the call, and logs it now.
        answered = received + 30 * S
        read = await act(admin, t, "reply", body="Answered by phone.",
                         occurred_at=answered.isoformat())  # fmt: skip
        fr = clock(read, "first_response")
        assert (fr["state"], fr["stopped_at"], fr["breached_at"]) == ("met", z(answered), None)
        assert fr["due_at"] == z(received + 2 * M) and fr["met_by_seconds"] == 90
        assert fr["elapsed_seconds"] == 30 and fr["overdue_seconds"] == 0

        await eventually(
            lambda: len(delivered("sla.retracted")) == 2, within=30, what="two retractions"
        )
    retracted = delivered("sla.retracted")
    # Each names the threshold it withdraws and the webhook-id of that delivery.
    assert [r.json["data"]["threshold"] for r in retracted] == [
        warning.json["data"]["threshold"],
        breach.json["data"]["threshold"],
    ]
    assert [r.json["data"]["retracted"] for r in retracted] == [
        {"type": "sla.warning", "webhook_id": warning.id},
        {"type": "sla.breached", "webhook_id": breach.id},
    ]
    for r in retracted:
        assert Webhook(secret).verify(r.body, r.headers)["type"] == "sla.retracted"
        cause = r.json["data"]["cause"]
        assert (cause["kind"], cause["occurred_at"]) == ("replied", answered.isoformat())
        [entry] = r.json["data"]["sla"]
        assert (entry["state"], entry["breached_at"]) == ("met", None)
    # Nothing fired again: the clock stopped in time.
    assert len({r.id for r in receiver.requests}) == 4

    # The tier raised by the withdrawn breach stays; the timeline says its cause is gone.
    ticket = (await admin.get(f"/v1/tickets/{t}")).json()
    assert ticket["tier"] == 2
    events = await timeline(admin, t)
    kinds = [e["kind"] for e in events]
    assert kinds[-4:] == ["replied", "sla_retracted", "sla_retracted", "escalation_cause_withdrawn"]
    note = events[-1]["data"]
    assert (note["from_tier"], note["to_tier"], note["tier"]) == (1, 2, 2)
    assert "agent's decision" in note["reason"]
    assert events[-2]["data"]["retracted"]["webhook_id"] == breach.id
    assert all(not e["public"] for e in events[-3:])
    assert await firings(db, t) == []

    # Reports count the final truth: one timed clock, met.
    span = {"from": z(received - H), "to": z(received + H), "group_by": "metric"}
    report = (await admin.get("/v1/reports/sla-compliance", params=span)).json()
    assert (report["total"]["met"], report["total"]["breached"]) == (1, 0)
    simulated = await admin.post(
        "/v1/reports/simulate", json={"from": span["from"], "to": span["to"]}
    )
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["simulated"] == simulated.json()["actual"]
    assert (await admin.get("/v1/tickets", params={"breached": "true"})).json()["items"] == []

    # What people recorded keeps its order: nothing before the reply, even now...
    before = await admin.post(
        f"/v1/tickets/{t}/actions/note",
        json={"body": "x", "occurred_at": (answered - 10 * S).isoformat()},
    )
    assert before.status_code == 422, before.text
    assert before.json()["errors"][0]["type"] == "before_last_event"
    assert answered.isoformat() in before.json()["detail"]
    # ...but the system's events in between never bound it.
    await act(admin, t, "note", body="Logged late too.",
              occurred_at=(received + 45 * S).isoformat())  # fmt: skip


# ------------------------------------------------------------- timer with a chosen now


async def test_a_pause_logged_late_retracts_a_warning_that_fires_again_later(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(
        admin, targets=[target("resolution", 60, clock="24x7", warn_at_percent=[50])]
    )
    received = datetime.now(UTC).replace(microsecond=0) - 5 * H
    t = (await open_ticket(admin, desk, received_at=received.isoformat()))["id"]
    assert (await timer(db).fire_thresholds(received + 31 * M)).fired == 1
    [fired] = await outbox(db, t, "sla.warning")

    # The agent had asked the customer for logs 20 minutes in: the clock paused at 20 of 60.
    await act(admin, t, "request_info", body="Logs, please.",
              occurred_at=(received + 20 * M).isoformat())  # fmt: skip
    assert await firings(db, t) == []
    [retraction] = await outbox(db, t, "sla.retracted")
    assert retraction.data["retracted"] == {"type": "sla.warning", "webhook_id": msg_id(fired.id)}
    assert retraction.data["threshold"]["at"] == z(received + 30 * M)
    assert await scalar(db, "SELECT next_check_at FROM sla_clocks") is None

    # The customer answers two hours in: 40 minutes remain, the 50 % mark is 10 minutes on,
    # and the warning fires again, at its new instant.
    await act(admin, t, "customer_reply", body="Attached.",
              occurred_at=(received + 2 * H).isoformat())  # fmt: skip
    assert await scalar(db, "SELECT next_check_at FROM sla_clocks") == received + 2 * H + 10 * M
    assert (await timer(db).fire_thresholds(received + 2 * H + 15 * M)).fired == 1
    assert await firings(db, t) == [("resolution warn:50", received + 2 * H + 10 * M)]
    assert [e.type for e in await outbox(db, t, "sla.warning", "sla.retracted")] == [
        "sla.warning",
        "sla.retracted",
        "sla.warning",
    ]


async def test_a_reply_at_the_exact_due_instant_retracts_the_breach(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(admin, targets=[target("first_response", 60, clock="24x7")])
    received = datetime.now(UTC).replace(microsecond=0) - 5 * H
    t = (await open_ticket(admin, desk, received_at=received.isoformat()))["id"]
    assert (await timer(db).fire_thresholds(received + 2 * H)).fired == 1
    # Answered exactly at the due instant: on time (a breach needs time past it).
    read = await act(admin, t, "reply", body="Just in time.",
                     occurred_at=(received + H).isoformat())  # fmt: skip
    fr = clock(read, "first_response")
    assert (fr["state"], fr["breached_at"], fr["due_at"]) == ("met", None, z(received + H))
    assert fr["met_by_seconds"] == 0
    assert [e.type for e in await outbox(db, t, "sla.breached", "sla.retracted")] == [
        "sla.breached",
        "sla.retracted",
    ]


async def test_a_severity_change_logged_late_moves_a_warning_to_its_true_instant(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(
        admin,
        targets=[
            target("resolution", 120, clock="24x7", warn_at_percent=[50]),
            target("resolution", 30, clock="24x7", severities=["critical"],
                   warn_at_percent=[50]),
        ],
    )  # fmt: skip
    received = datetime.now(UTC).replace(microsecond=0) - 5 * H
    t = (await open_ticket(admin, desk, received_at=received.isoformat()))["id"]
    assert (await timer(db).fire_thresholds(received + 61 * M)).fired == 1  # 50 % of 120
    # It was critical from the tenth minute: 50 % of 30 minutes was reached at 15, and the
    # breach at 30. The warning at 60 did not happen then: it is retracted and fired anew.
    await act(admin, t, "change", severity="critical",
              occurred_at=(received + 10 * M).isoformat())  # fmt: skip
    [retraction] = await outbox(db, t, "sla.retracted")
    assert retraction.data["threshold"]["at"] == z(received + 60 * M)
    assert (await timer(db).fire_thresholds(received + 61 * M)).fired == 2
    assert await firings(db, t) == [
        ("resolution warn:50", received + 15 * M),
        ("resolution breach", received + 30 * M),
    ]


async def test_a_late_note_changes_nothing_the_system_did(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    desk = await make_desk(
        admin,
        targets=[target("first_response", 60, clock="24x7", warn_at_percent=[50],
                        on_breach={"escalate_to_tier": 3})],
    )  # fmt: skip
    received = datetime.now(UTC).replace(microsecond=0) - 5 * H
    t = (await open_ticket(admin, desk, received_at=received.isoformat()))["id"]
    assert (await timer(db).fire_thresholds(received + 2 * H)).fired == 2
    await act(admin, t, "note", body="Tried to call, line busy.",
              occurred_at=(received + 10 * M).isoformat())  # fmt: skip
    assert await firings(db, t) == [
        ("first_response warn:50", received + 30 * M),
        ("first_response breach", received + H),
    ]
    assert await outbox(db, t, "sla.retracted") == []
    read = (await admin.get(f"/v1/tickets/{t}")).json()
    assert read["tier"] == 3 and clock(read, "first_response")["breached_at"] == z(received + H)


# ---------------------------------------------------------------------- auto-close


async def _auto_closed(db: AsyncEngine, admin: httpx.AsyncClient) -> str:
    """Seed 004's auto-close on a Mexico City desk: asked Monday 2026-03-02, three
    attempts, closed for no response on Wednesday 2026-03-11 10:00 local (16:00Z)."""
    desk = await make_desk(
        admin,
        targets=[target("resolution", 600)],
        auto_close={"contact_attempts": 3, "notice_business_days": 5},
    )
    t = (await open_ticket(admin, desk, received_at="2026-03-02T15:00:00Z"))["id"]
    await act(admin, t, "request_info", body="Logs?", occurred_at="2026-03-02T16:00:00Z")
    for day in ("03", "04"):
        await act(admin, t, "contact_attempt", channel="phone", body="No answer.",
                  occurred_at=f"2026-03-{day}T16:00:00Z")  # fmt: skip
    assert (await timer(db).auto_close(at("2026-03-11T16:00:30Z"))).closed == 1
    read = (await admin.get(f"/v1/tickets/{t}")).json()
    assert (read["status"], read["close_reason"]) == ("closed", "no_response")
    return t


async def test_a_customer_reply_logged_late_withdraws_the_auto_close(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    t = await _auto_closed(db, admin)
    # The customer's e-mail of Tuesday 09:00 local was found in the shared inbox today.
    read = await act(admin, t, "customer_reply", body="Here are the logs.",
                     occurred_at="2026-03-10T15:00:00Z")  # fmt: skip
    assert (read["status"], read["close_reason"], read["closed_at"]) == ("in_progress", None, None)
    assert read["auto_close_at"] is None and read["contact_attempts"] == 0
    assert "resolve" in read["allowed_actions"]
    # The resolution clock counted 1 hour (Monday 09:00-10:00), paused while waiting, and
    # runs again from the reply: 540 minutes from Tuesday 09:00 is Tuesday 18:00 local.
    resolution = clock(read, "resolution")
    assert resolution["running"] and resolution["stopped_at"] is None
    assert resolution["due_at"] == "2026-03-11T00:00:00Z"

    events = await timeline(admin, t)
    closed = next(e for e in events if e["kind"] == "closed")
    assert closed["actor"] == {"role": "system"}
    assert [e["kind"] for e in events[-4:]] == [
        "closed",
        "customer_replied",
        "auto_close_cancelled",
        "auto_close_withdrawn",
    ]
    withdrawn = events[-1]
    assert withdrawn["public"] and withdrawn["data"]["event_id"] == closed["id"]
    assert withdrawn["data"]["closed_at"] == "2026-03-11T16:00:00+00:00"
    assert "before the auto-close" in withdrawn["data"]["reason"]
    assert events[-3]["occurred_at"] == "2026-03-10T15:00:00Z"
    reopened = await outbox(db, t, "ticket.reopened", "ticket.status_changed")
    assert [(e.type, e.data["event"].get("kind")) for e in reopened][-2:] == [
        ("ticket.status_changed", None),
        ("ticket.reopened", "auto_close_withdrawn"),
    ]
    change = dict(reopened[-2].data["event"])
    assert change.pop("actor")["role"] == "admin"  # who logged the customer's reply
    assert change == {"from": "closed", "to": "in_progress", "action": "customer_reply"}
    # The simulator replays the history in the order it happened, without the close.
    simulated = await admin.post(
        "/v1/reports/simulate",
        json={"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"},
    )
    assert simulated.status_code == 200, simulated.text
    assert simulated.json()["changed"] == [] and simulated.json()["skipped_events"] == 0
    # The timer has nothing left to close.
    assert (await timer(db).auto_close(at("2026-03-20T00:00:00Z"))).closed == 0


async def test_a_late_action_that_keeps_the_customer_waiting_leaves_the_close_standing(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    t = await _auto_closed(db, admin)
    before = (await admin.get(f"/v1/tickets/{t}")).json()
    await act(admin, t, "contact_attempt", channel="email", body="Reminder sent.",
              occurred_at="2026-03-09T16:00:00Z")  # fmt: skip
    after = (await admin.get(f"/v1/tickets/{t}")).json()
    for field in ("status", "close_reason", "closed_at", "auto_close_at", "contact_attempts"):
        assert after[field] == before[field], field
    assert clock(after, "resolution") == clock(before, "resolution")
    kinds = [e["kind"] for e in await timeline(admin, t)]
    assert kinds.count("closed") == 1 and "auto_close_withdrawn" not in kinds
    assert await outbox(db, t, "ticket.reopened") == []
    # The close is still undoable by a reply that came before it.
    read = await act(admin, t, "customer_reply", body="Sorry, here.",
                     occurred_at="2026-03-10T15:00:00Z")  # fmt: skip
    assert read["status"] == "in_progress"


async def test_nothing_is_dated_before_what_a_person_recorded_after_the_close(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    t = await _auto_closed(db, admin)
    await act(admin, t, "note", body="Closed, as announced.", occurred_at="2026-03-12T16:00:00Z")
    late = await admin.post(
        f"/v1/tickets/{t}/actions/customer_reply",
        json={"body": "Logs", "occurred_at": "2026-03-10T15:00:00Z"},
    )
    assert late.status_code == 422 and late.json()["errors"][0]["type"] == "before_last_event"
    assert (await admin.get(f"/v1/tickets/{t}")).json()["status"] == "closed"


async def test_clocks_that_ran_while_waiting_resume_as_they_were_before_the_close(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    """A plan that does not pause while waiting on the customer: the auto-close stopped a
    running clock. Withdrawing the close gives it back exactly as it ran: same due instant,
    never stopped."""
    desk = await make_desk(
        admin,
        targets=[target("resolution", 6000)],
        pause_on=[],
        auto_close={"contact_attempts": 1, "notice_business_days": 2},
    )
    t = (await open_ticket(admin, desk, received_at="2026-03-02T15:00:00Z"))["id"]
    await act(admin, t, "request_info", body="Logs?", occurred_at="2026-03-02T16:00:00Z")
    running = clock((await admin.get(f"/v1/tickets/{t}")).json(), "resolution")
    assert running["running"] and running["due_at"] is not None
    assert (await timer(db).auto_close(at("2026-03-04T16:00:30Z"))).closed == 1
    closed = clock((await admin.get(f"/v1/tickets/{t}")).json(), "resolution")
    assert closed["stopped_at"] == "2026-03-04T16:00:00Z"

    read = await act(admin, t, "customer_reply", body="Logs attached.",
                     occurred_at="2026-03-03T16:00:00Z")  # fmt: skip
    resolution = clock(read, "resolution")
    assert (resolution["running"], resolution["stopped_at"]) == (True, None)
    assert resolution["due_at"] == running["due_at"]
    assert resolution["started_at"] == running["started_at"]
