"""Random ticket histories (actions and time steps) through the API, checking the clock
invariants on every step: elapsed never decreases, paused clocks do not move, a stopped
clock never changes, met/breached agree with the due and stop instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.db import make_sessionmaker
from app.models.tickets import SlaClock
from tests.plan_factories import target
from tests.ticket_factories import Desk, make_desk

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # Monday 08:30 in Mexico City

STEP = st.one_of(
    st.tuples(st.just("reply"), st.just({"body": "reply"})),
    st.tuples(st.just("note"), st.just({"body": "note"})),
    st.tuples(st.just("request_info"), st.just({"body": "which version?"})),
    st.tuples(st.just("contact_attempt"), st.just({"channel": "phone", "body": "no answer"})),
    st.tuples(st.just("customer_reply"), st.just({"body": "4.2"})),
    st.tuples(st.just("callback"), st.just({})),
    st.tuples(st.just("resolve"), st.just({"resolution": "fix", "body": "fixed"})),
    st.tuples(st.just("confirm"), st.just({})),
    st.tuples(st.just("reopen"), st.just({"body": "again"})),
    st.tuples(st.just("close"), st.sampled_from([{"reason": "duplicate"}, {"reason": "other"}])),
    st.tuples(st.just("change"), st.sampled_from(
        [{"severity": s} for s in ("critical", "high", "low")]
        + [{"category": c} for c in ("technical", "maintenance")]
    )),
    st.tuples(st.just("escalate"), st.sampled_from(
        [{"to_tier": 2}, {"to_tier": 3}, {"to_tier": 1, "reason": "back"},
         {"to_tier": 4, "vendor": "Microsoft", "vendor_case_ref": "MS-1"}]
    )),
)  # fmt: skip

_desks: dict[int, Desk] = {}


def _promised(metric: str, severity: str, category: str) -> int:
    """The plan below, as a table: what each metric promises for such a ticket."""
    if metric == "first_response":
        return 30 if severity == "critical" else 240
    if metric == "callback":
        return 120
    if category == "maintenance":
        return 720 if severity == "critical" else 960
    return 480 if severity == "critical" else 600


async def _desk(admin: httpx.AsyncClient) -> Desk:
    # One desk per test run: Hypothesis runs many examples within one set of fixtures.
    if id(admin) not in _desks:
        _desks[id(admin)] = await make_desk(
            admin,
            calendar_fields={"weekly_hours": {
                d: ["08:30-13:00", "14:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")
            }},
            channels=["email", "voicemail", "phone"],
            pause_on=["waiting_on_customer", "waiting_on_vendor"],
            targets=[
                target("first_response", 30, severities=["critical"], clock="24x7",
                       warn_at_percent=[50]),
                target("first_response", 240, warn_at_percent=[50, 90]),
                target("resolution", 480, severities=["critical"], clock="24x7"),
                target("resolution", 960, categories=["maintenance"]),
                target("resolution", 720, severities=["critical"], categories=["maintenance"],
                       clock="24x7"),
                target("resolution", 600),
                target("callback", 120),
            ],
        )  # fmt: skip
    return _desks[id(admin)]


async def _rows(db: Any, ticket_id: str) -> dict[str, dict[str, Any]]:
    async with make_sessionmaker(db)() as session:
        rows = (
            await session.execute(select(SlaClock).where(SlaClock.ticket_id == ticket_id))
        ).scalars()
        return {r.metric: r.model_dump() for r in rows}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    severity=st.sampled_from(["critical", "high", "low"]),
    channel=st.sampled_from(["email", "voicemail"]),
    start_minutes=st.integers(0, 5 * 24 * 60),
    program=st.lists(st.tuples(STEP, st.integers(0, 900)), min_size=1, max_size=18),
)
async def test_random_histories_keep_the_clock_invariants(
    admin: httpx.AsyncClient,
    db: Any,
    severity: str,
    channel: str,
    start_minutes: int,
    program: list[tuple[tuple[str, dict[str, Any]], int]],
) -> None:
    desk = await _desk(admin)
    at = START + timedelta(minutes=start_minutes)
    created = await admin.post(
        "/v1/tickets",
        json={
            "organization_id": desk.org["id"], "contact_id": desk.contact["id"],
            "channel": channel, "severity": severity, "category": "technical",
            "subject": "random history", "received_at": at.isoformat(),
        },
    )  # fmt: skip
    assert created.status_code == 201, created.text
    ticket = created.json()
    before = await _rows(db, ticket["id"])
    readings = {c["metric"]: c for c in ticket["sla"]}
    for (action, body), step in program:
        at += timedelta(minutes=step)
        response = await admin.post(
            f"/v1/tickets/{ticket['id']}/actions/{action}",
            json={**body, "occurred_at": at.isoformat()},
        )
        assert response.status_code in (200, 409, 422), response.text
        after = await _rows(db, ticket["id"])
        if response.status_code != 200:
            assert after == before  # a refused action changes nothing
            continue
        ticket = response.json()
        for metric, old in before.items():
            new = after[metric]
            assert new["elapsed_us"] >= old["elapsed_us"], "elapsed went backwards"
            if old["stopped_at"] is not None and action == "reopen" and metric == "resolution":
                # Reopening continues the resolution clock with its elapsed time.
                assert (
                    new["elapsed_us"] == old["elapsed_us"] and new["crossings"] == old["crossings"]
                )
                assert new["running_since"] == at or new["running_since"] is None
            elif old["stopped_at"] is not None:
                assert new == old, "a stopped clock changed"
            elif old["running_since"] is None and new["running_since"] is None:
                assert new["elapsed_us"] == old["elapsed_us"], "a paused clock moved"
        new_readings = {c["metric"]: c for c in ticket["sla"]}
        expected = {"first_response", "resolution"} | (
            {"callback"} if channel == "voicemail" else set()
        )
        assert set(new_readings) == expected
        for metric, reading in new_readings.items():
            if reading["stopped_at"] is None:  # a live clock runs on the target chosen now
                promised = _promised(metric, ticket["severity"], ticket["category"])
                assert reading["minutes"] == promised, (metric, reading, ticket["severity"])
        for metric, reading in new_readings.items():
            state = reading["state"]
            assert (state == "breached") == (
                reading["breached_at"] is not None
            ) or state == "best_effort"
            if reading["stopped_at"] is not None and state in ("met", "breached"):
                assert (
                    reading["breached_at"] is None
                    or reading["breached_at"] <= reading["stopped_at"]
                )
            previous = readings.get(metric)
            stopped_now = (
                reading["stopped_at"] is not None and previous and previous["stopped_at"] is None
            )
            if stopped_now and previous["running"] and previous["due_at"] and action != "change":
                # The stop instant against the due instant of the segment it closed.
                due = datetime.fromisoformat(previous["due_at"])
                stopped = datetime.fromisoformat(reading["stopped_at"])
                # (readings are taken now, months later: a breach recorded before this
                # step is the stored one, not the reading's.)
                recorded = before[metric]["breached_at"] is not None
                assert (state == "breached") == (stopped > due or recorded)
        readings, before = new_readings, after
