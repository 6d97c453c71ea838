"""The five seeds as shipped examples: they load (idempotently), and the preview gives the
due times computed by hand from each seed's text (the arithmetic is in the comments).

Hours used below (see the comments in examples/*.toml):
* 000 Vivatia: Mexico City (UTC-6), Mon-Fri 09:00-18:00, MX holidays (2026-03-16).
* 001 Vivvo: UTC+1 (Etc/GMT-1), Mon-Fri 09:00-18:00.
* 002 Vitrium: Vancouver, Mon-Fri 00:00-18:00, CA/BC holidays; DST from 2026-03-08.
* 003 VIDIZMO: New York, Mon-Fri 09:00-17:00, US holidays (2026-05-25); DST from 03-08.
* 004 Specialized support: Mexico City (UTC-6), Mon-Fri 08:30-18:00, MX holidays.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_sessionmaker
from app.services.loader import Loaded, LoadError, load_document, load_files
from tests.conftest import _admin_execute

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))
NOW = datetime(2026, 3, 1, tzinfo=UTC)


async def _load(engine: AsyncEngine, paths: list[Path] = EXAMPLES) -> list[Loaded]:
    async with make_sessionmaker(engine)() as session, session.begin():
        results = await load_files(session, paths, now=NOW)
    return [item for _, loaded in results for item in loaded]


@pytest.fixture
async def loaded(db: AsyncEngine) -> list[Loaded]:
    return await _load(db)


class Desk:
    """Previews against the loaded examples, by organization name or plan code."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.orgs: dict[str, str] = {}
        self.plans: dict[str, str] = {}

    async def setup(self) -> Desk:
        orgs = (await self.api.get("/v1/organizations", params={"limit": 200})).json()["items"]
        self.orgs = {o["name"]: o["id"] for o in orgs}
        plans = (await self.api.get("/v1/plans", params={"limit": 200})).json()["items"]
        self.plans = {p["code"]: p["id"] for p in plans}
        return self

    async def preview(self, who: str, severity: str, received_at: str, **more: Any) -> Any:
        subject = (
            {"organization_id": self.orgs[who]}
            if who in self.orgs
            else {"plan_id": self.plans[who]}
        )
        body = {**subject, "severity": severity, "received_at": received_at, **more}
        response = await self.api.post("/v1/sla/preview", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    async def due(self, who: str, severity: str, received_at: str, **more: Any) -> Any:
        body = await self.preview(who, severity, received_at, **more)
        assert body["entitlement"]["allowed"], body["entitlement"]["reasons"]
        return {t["metric"]: t["due_at"] for t in body["targets"]}

    async def reasons(self, org: str, **params: Any) -> list[str]:
        url = f"/v1/organizations/{self.orgs[org]}/entitlement"
        response = await self.api.get(url, params={"at": "2026-03-10T12:00:00Z", **params})
        assert response.status_code == 200, response.text
        return list(response.json()["reasons"])

    async def contact(self, org: str, email: str) -> str:
        url = f"/v1/organizations/{self.orgs[org]}/contacts"
        contacts = (await self.api.get(url)).json()["items"]
        return next(c["id"] for c in contacts if c["email"] == email)


@pytest.fixture
async def desk(loaded: list[Loaded], admin: httpx.AsyncClient) -> Desk:
    return await Desk(admin).setup()


# --------------------------------------------------------------------- loading


def test_there_is_an_example_per_seed() -> None:
    assert [p.name[:3] for p in EXAMPLES] == ["000", "001", "002", "003", "004"]


async def test_every_example_loads_and_a_second_load_changes_nothing(
    db: AsyncEngine, admin: httpx.AsyncClient
) -> None:
    first = await _load(db)
    assert {item.outcome for item in first} == {"created"}
    kinds = {k: sum(1 for i in first if i.kind == k) for k in ("calendar", "plan")}
    assert kinds == {"calendar": 5, "plan": 10}
    before = (await admin.get("/v1/plans", params={"limit": 200})).json()["items"]
    calendars = (await admin.get("/v1/calendars", params={"limit": 200})).json()["items"]
    second = await _load(db)
    assert [(i.kind, i.key) for i in second] == [(i.kind, i.key) for i in first]
    assert {i.outcome for i in second} == {"unchanged"}
    after = (await admin.get("/v1/plans", params={"limit": 200})).json()["items"]
    assert after == before  # no version bumped, nothing touched
    assert (await admin.get("/v1/calendars", params={"limit": 200})).json()["items"] == calendars
    assert all(p["version"] == 1 for p in after)


async def test_a_changed_file_updates_only_what_changed(
    db: AsyncEngine, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    source = (ROOT / "examples" / "001_vivvo.toml").read_text()
    await _load(db, [ROOT / "examples" / "001_vivvo.toml"])
    edited = tmp_path / "001_vivvo.toml"
    edited.write_text(source.replace("minutes = 720", "minutes = 600"))
    loaded = await _load(db, [edited])
    outcomes = {(i.kind, i.key): i.outcome for i in loaded}
    assert outcomes[("plan", "vivvo-premium")] == "updated"
    assert outcomes[("plan", "vivvo-standard")] == "unchanged"
    assert outcomes[("calendar", "Vivvo CMS HelpDesk")] == "unchanged"
    plans = {p["code"]: p for p in (await admin.get("/v1/plans")).json()["items"]}
    assert plans["vivvo-premium"]["version"] == 2 and plans["vivvo-standard"]["version"] == 1


async def test_load_errors_name_the_record_and_load_nothing(
    db: AsyncEngine, admin: httpx.AsyncClient, tmp_path: Path
) -> None:
    bad_target = {
        "calendars": [{"name": "C", "timezone": "UTC", "weekly_hours": "24x7"}],
        "plans": [
            {
                "code": "p",
                "name": "P",
                "level": 1,
                "calendar": "C",
                "channels": ["email"],
                "targets": [
                    {"metric": "first_response", "minutes": 60},
                    {"metric": "first_response", "minutes": 30},
                ],
            }
        ],
    }
    async with make_sessionmaker(db)() as session:
        with pytest.raises(LoadError, match=r"<doc>: plans\[0\] \(p\): Ambiguous targets"):
            await load_document(session, bad_target, now=NOW)
        await session.rollback()
    cases = [
        (
            {
                "plans": [
                    {
                        "code": "p",
                        "name": "P",
                        "level": 1,
                        "calendar": "Nope",
                        "channels": ["email"],
                    }
                ]
            },
            "no calendar named 'Nope'",
        ),
        (
            {
                "calendars": bad_target["calendars"],
                "plans": [
                    {"code": "p", "name": "P", "level": 1, "calendar": "C", "channels": ["fax"]}
                ],
            },
            "channels.0",
        ),
        (
            {"calendars": [{"name": "C", "timezone": "Mars/Base", "weekly_hours": "24x7"}]},
            "timezone",
        ),
        (
            {
                "organizations": [
                    {"name": "O", "contracts": [{"plan": "nope", "starts_on": "2026-01-01"}]}
                ]
            },
            "no plan with code 'nope'",
        ),
        ({"tickets": []}, "unknown section"),
    ]
    for document, message in cases:
        async with make_sessionmaker(db)() as session:
            with pytest.raises(LoadError, match=re.escape(message)):
                await load_document(session, document, now=NOW)
            await session.rollback()
    broken = tmp_path / "broken.toml"
    broken.write_text("[[plans]\ncode = 'x'\n")
    async with make_sessionmaker(db)() as session:
        with pytest.raises(LoadError, match=r"broken\.toml: not valid TOML"):
            await load_files(session, [EXAMPLES[0], broken], now=NOW)
    # One transaction: the good file before the broken one was not kept either.
    assert (await admin.get("/v1/plans")).json()["items"] == []


# ------------------------------------------------------------- seed 000 Vivatia


async def test_seed_000_vivatia(desk: Desk) -> None:
    # Primary, high, e-mail, Tuesday 2026-03-10 17:00 (UTC-6): 8 business hours =
    # Tue 17:00-18:00 (1 h) + Wed 09:00-16:00 (7 h) -> Wed 16:00-06:00 = 22:00Z.
    assert await desk.due(
        "Vivatia demo: Primary", "high", "2026-03-10T17:00:00-06:00", channel="email"
    ) == {"first_response": "2026-03-11T22:00:00Z"}
    # Primary, low, by answering machine, Monday 2026-03-02 16:00: callback within 4 h =
    # Mon 16:00-18:00 + Tue 09:00-11:00 -> 17:00Z; response within 8 h = Mon 2 h +
    # Tue 09:00-15:00 -> 21:00Z.
    assert await desk.due(
        "Vivatia demo: Primary", "low", "2026-03-02T16:00:00-06:00", channel="voicemail"
    ) == {"first_response": "2026-03-03T21:00:00Z", "callback": "2026-03-03T17:00:00Z"}
    # Premium (on top of Primary), critical, answering machine, Friday 2026-03-13 17:30:
    # 1 h = Fri 17:30-18:00 + (Monday 16 March is Benito Juarez Day, closed) Tue
    # 09:00-09:30 -> 15:30Z, for the response and the callback alike.
    body = await desk.preview(
        "Vivatia demo: Premium", "critical", "2026-03-13T17:30:00-06:00", channel="voicemail"
    )
    assert body["plan"]["code"] == "vivatia-premium"
    assert body["entitlement"]["plans"] == ["vivatia-premium", "vivatia-primary"]
    due = {t["metric"]: t["due_at"] for t in body["targets"]}
    assert due == {"first_response": "2026-03-17T15:30:00Z", "callback": "2026-03-17T15:30:00Z"}
    callback = next(t for t in body["targets"] if t["metric"] == "callback")
    assert callback["intervals"] == [
        ["2026-03-13T23:30:00Z", "2026-03-14T00:00:00Z"],
        ["2026-03-17T15:00:00Z", "2026-03-17T15:30:00Z"],
    ]
    assert callback["warnings"][0]["at"] == "2026-03-17T15:15:00Z"  # 15 minutes before
    # Help with upgrades: Premium's "support for product updates" only.
    assert await desk.reasons("Vivatia demo: Primary", category="upgrade") == ["category_excluded"]
    assert await desk.reasons("Vivatia demo: Premium", category="upgrade") == []


# --------------------------------------------------------------- seed 001 Vivvo


async def test_seed_001_vivvo(desk: Desk) -> None:
    # Standard, medium, e-mail, Monday 2026-03-02 10:00 GMT+1: 24 h of HelpDesk time =
    # Mon 10-18 (8 h) + Tue 9-18 (9 h) + Wed 9-16 (7 h) -> Wed 16:00+01 = 15:00Z.
    assert await desk.due(
        "Vivvo demo: Standard", "medium", "2026-03-02T10:00:00+01:00", channel="email"
    ) == {"first_response": "2026-03-04T15:00:00Z"}
    # Premium/Developer, same ticket by phone: 12 h = Mon 8 h + Tue 9-13 -> 12:00Z.
    assert await desk.due(
        "Vivvo demo: Premium", "medium", "2026-03-02T10:00:00+01:00", channel="phone"
    ) == {"first_response": "2026-03-03T12:00:00Z"}
    # Mission critical, Friday 2026-03-06 17:30: "immediate" = 1 business hour =
    # Fri 17:30-18:00 + Mon 09:00-09:30+01 -> 08:30Z.
    assert await desk.due("Vivvo demo: Standard", "critical", "2026-03-06T17:30:00+01:00") == {
        "first_response": "2026-03-09T08:30:00Z"
    }
    # Premium, high, Saturday noon: after hours, counted from Monday 09:00: 12 h =
    # Mon 9 h + Tue 09:00-12:00+01 -> 11:00Z.
    body = await desk.preview("Vivvo demo: Premium", "high", "2026-03-07T12:00:00+01:00")
    assert body["after_hours"] is True
    assert body["targets"][0]["counting_from"] == "2026-03-09T08:00:00Z"
    assert body["targets"][0]["due_at"] == "2026-03-10T11:00:00Z"
    # "No affect on productivity": best effort, never due.
    low = await desk.preview("Vivvo demo: Standard", "low", "2026-03-02T10:00:00+01:00")
    assert low["targets"][0]["minutes"] is None and low["targets"][0]["due_at"] is None
    # No phone on Standard; upgrades and installations are "not provided".
    assert await desk.reasons("Vivvo demo: Standard", channel="phone") == ["channel_not_in_plan"]
    assert await desk.reasons("Vivvo demo: Premium", channel="phone") == []
    for category in ("installation", "upgrade", "training", "customization"):
        assert await desk.reasons("Vivvo demo: Premium", category=category) == ["category_excluded"]


# ------------------------------------------------------------- seed 002 Vitrium


async def test_seed_002_vitrium(desk: Desk) -> None:
    # Tier 2 (high), e-mail, Friday 2026-03-06 17:00 PST: 2 business hours = Fri
    # 17:00-18:00 PST + Mon 00:00-01:00 PDT (DST began Sunday) -> Mon 08:00Z.
    assert await desk.due(
        "Vitrium demo: Standard", "high", "2026-03-06T17:00:00-08:00", channel="email"
    ) == {"first_response": "2026-03-09T08:00:00Z"}
    # Tier 3 (totally inoperable), Saturday 2026-03-07 10:00 PST: respond within 1 h and
    # fix within 8 h, around the clock -> 11:00 PST = 19:00Z and 18:00 PST = 02:00Z.
    assert await desk.due("Vitrium demo: Standard", "critical", "2026-03-07T10:00:00-08:00") == {
        "first_response": "2026-03-07T19:00:00Z",
        "resolution": "2026-03-08T02:00:00Z",
    }
    # Tier 1 (medium) on BC Day, Monday 2026-08-03 09:00 PDT: closed all day, then
    # Tue 00:00-08:00 PDT -> 15:00Z.
    assert await desk.due("Vitrium demo: Standard", "medium", "2026-08-03T09:00:00-07:00") == {
        "first_response": "2026-08-04T15:00:00Z"
    }
    # Elite applies on top of Standard: phone and custom integrations are covered, and
    # the tier targets are Standard's.
    elite = await desk.preview(
        "Vitrium demo: Elite",
        "high",
        "2026-03-06T17:00:00-08:00",
        channel="phone",
        category="customization",
    )
    assert elite["entitlement"]["allowed"] and elite["plan"]["code"] == "vitrium-elite"
    assert [(t["plan"], t["due_at"]) for t in elite["targets"]] == [
        ("vitrium-standard", "2026-03-09T08:00:00Z")
    ]
    assert await desk.reasons("Vitrium demo: Standard", channel="phone") == ["channel_not_in_plan"]
    assert await desk.reasons("Vitrium demo: Standard", category="customization") == [
        "category_excluded"
    ]
    # End users are sent back to the customer.
    reader = await desk.contact("Vitrium demo: Standard", "reader@standard.vitrium.example")
    assert await desk.reasons("Vitrium demo: Standard", contact_id=reader) == [
        "contact_not_authorized"
    ]
    # The demo subscription is open ended, so the README keeps working in years to come;
    # ended on 2026-12-31 (Vancouver time), it stops covering at that local midnight.
    assert await desk.reasons("Vitrium demo: Standard", at="2040-01-01T00:00:00Z") == []
    org = desk.orgs["Vitrium demo: Standard"]
    held = (await desk.api.get("/v1/contracts", params={"organization_id": org})).json()
    [contract] = held["items"]
    assert contract["ends_on"] is None
    ended = await desk.api.patch(f"/v1/contracts/{contract['id']}", json={"ends_on": "2026-12-31"})
    assert ended.status_code == 200, ended.text
    assert await desk.reasons("Vitrium demo: Standard", at="2027-01-01T07:59:00Z") == []
    assert await desk.reasons("Vitrium demo: Standard", at="2027-01-01T08:00:00Z") == [
        "contract_expired"
    ]


# ------------------------------------------------------------- seed 003 VIDIZMO


async def test_seed_003_vidizmo(desk: Desk) -> None:
    # Standard, high (severity 2), web, Friday 2026-03-06 15:00 EST: respond within
    # 8 business hours = Fri 15-17 (2 h) + Mon 09:00-15:00 EDT (6 h) -> 19:00Z; resolve
    # within 24 = Fri 2 + Mon 8 + Tue 8 + Wed 09:00-15:00 EDT -> Wed 19:00Z.
    assert await desk.due(
        "VIDIZMO demo: Standard", "high", "2026-03-06T15:00:00-05:00", channel="web"
    ) == {"first_response": "2026-03-09T19:00:00Z", "resolution": "2026-03-11T19:00:00Z"}
    # Premium Plus, critical (severity 1), phone, Saturday 2026-03-07 10:00 EST: 1 h and
    # 8 h around the clock -> 11:00 EST = 16:00Z and 18:00 EST = 23:00Z.
    body = await desk.preview(
        "VIDIZMO demo: Premium Plus", "critical", "2026-03-07T10:00:00-05:00", channel="phone"
    )
    due = {t["metric"]: t["due_at"] for t in body["targets"]}
    assert due == {"first_response": "2026-03-07T16:00:00Z", "resolution": "2026-03-07T23:00:00Z"}
    warnings = [w["at"] for w in body["targets"][0]["warnings"]]
    assert warnings == ["2026-03-07T15:30:00Z", "2026-03-07T15:45:00Z", "2026-03-07T15:54:00Z"]
    # Premium Plus, high, same Saturday: business hours, from Monday 09:00 EDT: 2 h ->
    # 11:00 EDT = 15:00Z.
    high = await desk.preview("VIDIZMO demo: Premium Plus", "high", "2026-03-07T10:00:00-05:00")
    assert high["after_hours"] is True
    assert high["targets"][0]["due_at"] == "2026-03-09T15:00:00Z"
    # Premium (no demo customer: preview the plan), medium, Friday 2026-05-22 16:00 EDT,
    # before Memorial Day: 8 h = Fri 16-17 + (Mon 25 closed) Tue 09:00-16:00 -> 20:00Z.
    assert (await desk.due("vidizmo-premium", "medium", "2026-05-22T16:00:00-04:00"))[
        "first_response"
    ] == "2026-05-26T20:00:00Z"
    assert await desk.reasons("VIDIZMO demo: Standard", channel="phone") == ["channel_not_in_plan"]
    assert await desk.reasons("VIDIZMO demo: Premium Plus", channel="phone") == []


# ------------------------------------------------------ seed 004 specialized support


async def test_seed_004_specialized_support(desk: Desk) -> None:
    org = "Specialized support demo client"
    # A Mexican partner: written to in Spanish.
    assert (await desk.api.get(f"/v1/organizations/{desk.orgs[org]}")).json()["locale"] == "es-MX"
    # Critical, e-mail, Monday 2026-03-02 18:00 (closing time, so closed): "immediate
    # within 30 minutes" from Tue 08:30 -> 09:00-06:00 = 15:00Z.
    body = await desk.preview(org, "critical", "2026-03-02T18:00:00-06:00", channel="email")
    assert body["after_hours"] is True
    assert body["targets"][0]["due_at"] == "2026-03-03T15:00:00Z"
    # High, technical, Wednesday 2026-03-04 15:00: attention "from 1 to 4 hours" = Wed
    # 15:00-18:00 + Thu 08:30-09:30 -> 15:30Z, warned at the 1 h mark (Wed 16:00 = 22:00Z);
    # resolution "Technical-Regular: 6 hours" = Wed 3 h + Thu 08:30-11:30 -> 17:30Z.
    body = await desk.preview(org, "high", "2026-03-04T15:00:00-06:00", category="technical")
    due = {t["metric"]: t for t in body["targets"]}
    assert due["first_response"]["due_at"] == "2026-03-05T15:30:00Z"
    assert due["first_response"]["warnings"] == [
        {"key": "before:180", "percent": None, "before_minutes": 180, "at": "2026-03-04T22:00:00Z"}
    ]
    assert due["resolution"]["due_at"] == "2026-03-05T17:30:00Z"
    assert due["resolution"]["escalate_to_tier"] == 2
    # Average, Friday 2026-03-13 17:00: 8 business hours = Fri 1 h + (Monday 16 March is
    # a holiday) Tue 08:30-15:30 -> 21:30Z.
    assert (await desk.due(org, "medium", "2026-03-13T17:00:00-06:00"))[
        "first_response"
    ] == "2026-03-17T21:30:00Z"
    # Low, maintenance, Monday 2026-03-02 08:30 (9.5 h a day): attention within 24 h =
    # Mon 9.5 + Tue 9.5 + Wed 08:30-13:30 -> 19:30Z; resolution within 36 h = 3 x 9.5 h
    # + Thu 08:30-16:00 -> 22:00Z; both warned at their 16 h mark = Mon 9.5 h + Tue
    # 08:30-15:00 -> 21:00Z.
    body = await desk.preview(org, "low", "2026-03-02T08:30:00-06:00", category="maintenance")
    due = {t["metric"]: t for t in body["targets"]}
    assert due["first_response"]["due_at"] == "2026-03-04T19:30:00Z"
    assert due["resolution"]["due_at"] == "2026-03-05T22:00:00Z"
    assert due["first_response"]["warnings"][0]["at"] == "2026-03-03T21:00:00Z"
    assert due["resolution"]["warnings"][0]["at"] == "2026-03-03T21:00:00Z"
    # Authorized persons only; a person who left is deactivated.
    ana = await desk.contact(org, "ana@client.example.mx")
    luis = await desk.contact(org, "luis@client.example.mx")
    assert await desk.reasons(org, contact_id=ana, channel="email") == []
    assert await desk.reasons(org, contact_id=luis) == ["contact_inactive"]
    entitlement = (await desk.api.get(f"/v1/organizations/{desk.orgs[org]}/entitlement")).json()
    assert entitlement["auto_close"] == {"contact_attempts": 3, "notice_business_days": 5}
    assert entitlement["billing"]["after_hours"] == {
        "allowed": True,
        "multiplier": 1.5,
        "unrequested": "refuse",
    }
    assert entitlement["billing"]["follow_up_minutes"] == 15


async def test_seed_004_charged_time(desk: Desk) -> None:
    """Seed 004's billing, on the shipped example: follow-ups, a session, after-hours
    work, the estimate's authorization, and the contract's 40-hour budget."""
    api, org = desk.api, desk.orgs["Specialized support demo client"]
    ticket = await api.post(
        "/v1/tickets",
        json={
            "organization_id": org, "contact_id": await desk.contact(
                "Specialized support demo client", "ana@client.example.mx"),
            "channel": "email", "severity": "high", "category": "technical",
            "subject": "Payroll export fails", "received_at": "2026-11-09T09:00:00-06:00",
        },
    )  # fmt: skip
    assert ticket.status_code == 201, ticket.text
    t = ticket.json()["id"]
    agent = (await api.post("/v1/agents", json={"name": "Eva", "email": "eva@desk.example"})).json()

    async def act(action: str, at: str, **body: Any) -> None:
        url = f"/v1/tickets/{t}/actions/{action}"
        response = await api.post(url, json={"occurred_at": at, **body})
        assert response.status_code == 200, response.text

    async def log(expect: int = 201, **body: Any) -> Any:
        response = await api.post(f"/v1/tickets/{t}/worklogs", json=body)
        assert response.status_code == expect, response.text
        return response.json()

    # "Each follow-up carried out will be charged with a time of 15 minutes": a reply, an
    # information request and a contact attempt are 3 x 15 = 45 minutes.
    await act("assign", "2026-11-09T09:10:00-06:00", agent_id=agent["id"])
    await act("reply", "2026-11-09T10:00:00-06:00", body="We are on it.")
    await act("request_info", "2026-11-09T11:00:00-06:00", body="Which payroll period?")
    await act("contact_attempt", "2026-11-09T15:00:00-06:00", channel="phone", body="No answer.")
    # "The time will be multiplied by each consultant": 2 h x 3 consultants = 360 minutes.
    session = await log(kind="session", minutes=120, consultants=3,
                        occurred_at="2026-11-10T10:00:00-06:00")  # fmt: skip
    # "If the client requires attention after hours, they must request it in advance and
    # via email": an evening hour nobody asked for is refused...
    evening = {"kind": "work", "minutes": 60, "occurred_at": "2026-11-10T19:00:00-06:00"}
    refused = await log(422, **evening)
    assert refused["type"].endswith("/after-hours-not-requested")
    # ...until Ana's e-mail of Monday noon, asking for Tuesday evening, is recorded. After
    # 18:00 Mexico City time, inside that window, at the plan's 1.5: the hour is 90 minutes.
    requested = await api.post(
        f"/v1/tickets/{t}/after-hours-requests",
        json={
            "contact_id": await desk.contact(
                "Specialized support demo client", "ana@client.example.mx"),
            "requested_at": "2026-11-09T12:00:00-06:00",
            "starts_at": "2026-11-10T18:00:00-06:00", "ends_at": "2026-11-10T22:00:00-06:00",
            "reference": "RE: Payroll export fails - please continue tomorrow evening",
        },
    )  # fmt: skip
    assert requested.status_code == 201, requested.text
    late = await log(**evening)
    assert (session["charged_minutes"], late["charged_minutes"]) == (360, 90)
    assert late["after_hours_request_id"] == requested.json()["id"]
    estimate = (await api.get(f"/v1/tickets/{t}/estimate")).json()
    assert estimate["charged_minutes"] == 45 + 360 + 90

    # An estimate of 500: the next follow-up (495 + 15 = 510) needs the client's approval,
    # and the entry after it waits for it.
    assert (await api.put(f"/v1/tickets/{t}/estimate", json={"minutes": 500})).status_code == 200
    await log(kind="follow_up", occurred_at="2026-11-11T09:00:00-06:00")
    blocked = await log(409, kind="follow_up", occurred_at="2026-11-11T10:00:00-06:00")
    assert blocked["type"].endswith("/authorization-pending")
    pending = (await api.get(f"/v1/tickets/{t}/estimate")).json()["pending_authorization"]
    approve = f"/v1/tickets/{t}/authorizations/{pending['id']}/approve"
    approved = await api.post(approve, json={"estimate_minutes": 600, "note": "Ana's e-mail"})
    assert approved.status_code == 200, approved.text
    await log(kind="follow_up", occurred_at="2026-11-11T10:00:00-06:00")

    # 525 minutes = 8.75 h of the contract's 40.
    contract = (await api.get("/v1/contracts", params={"organization_id": org})).json()["items"]
    usage = (await api.get(f"/v1/contracts/{contract[0]['id']}/usage")).json()
    assert (usage["used_minutes"], usage["used_hours"]) == (525, 8.75)
    assert (usage["remaining_hours"], usage["overage_hours"]) == (31.25, 0.0)

    # November's statement, in Mexico City months: the seven entries and their total.
    statement = await api.get(
        "/v1/reports/statement",
        params={"organization_id": org, "month": "2026-11", "tz": "America/Mexico_City"},
    )
    assert statement.status_code == 200, statement.text
    totals = statement.json()["totals"]
    assert (totals["entries"], totals["charged_minutes"], totals["charged_hours"]) == (7, 525, 8.75)
    by_kind = {k["kind"]: (k["entries"], k["charged_minutes"]) for k in totals["by_kind"]}
    assert by_kind == {"follow_up": (5, 75), "session": (1, 360), "work": (1, 90)}
    assert [line["charged_minutes"] for line in statement.json()["lines"]] == [
        15, 15, 15, 360, 90, 15, 15
    ]  # fmt: skip
    # The after-hours line shows the client's request it relies on.
    relied = [line["after_hours_request"] for line in statement.json()["lines"]]
    assert [r["id"] if r else None for r in relied] == [None] * 4 + [requested.json()["id"]] + [
        None
    ] * 2
    assert relied[4]["requested_at"] == "2026-11-09T18:00:00Z"


# ------------------------------------------------------------------------- CLI


async def test_the_load_command(database_url: str) -> None:
    name = f"sladesk_load_{uuid.uuid4().hex[:8]}"
    await _admin_execute(database_url, f'CREATE DATABASE "{name}"')
    target = re.sub(r"/sladesk_test_[0-9a-f]+", f"/{name}", database_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    env["SLADESK_DATABASE_URL"] = target

    async def run(*files: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app.cli",
            "load",
            *files,
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(120):
            out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    try:
        files = [str(p.relative_to(ROOT)) for p in EXAMPLES]
        code, out, err = await run(*files)
        assert code == 0, err
        assert re.search(
            r"examples/002_vitrium.toml: plan 'vitrium-elite' \(id [0-9a-f-]{36}\): created", out
        )
        assert "examples/004_mexico_specialized.toml: 10 created, 0 updated, 0 unchanged" in out
        # A customer key per organization created, each usable (shown once, here).
        keys = re.findall(r"its customer API key \(shown only this once\): (sld_\S+)", out)
        assert len(keys) == out.count("organization '") == 9  # the five files' demo customers
        code, out, err = await run(*files, "--json")
        assert code == 0, err
        loaded = json.loads(out)
        assert "customer_api_key" not in out  # only organizations created now get one
        items = [i for f in loaded["files"] for i in f["items"]]
        assert {i["outcome"] for i in items} == {"unchanged"}
        agents = loaded["ids"]["agent"]
        assert sorted(agents) == [
            "diana@support.example.mx",
            "sergio@support.example.mx",
            "sofia@support.example.mx",
            "victor@support.example.mx",
        ]
        assert all(uuid.UUID(i["id"]) for i in items)
        code, out, err = await run(*files)
        assert code == 0, err
        assert "created" not in out.replace("0 created", "")
        assert "examples/003_vidizmo.toml: 0 created, 0 updated, 9 unchanged" in out
        code, out, err = await run("examples/does-not-exist.toml")
        assert code == 1
        assert err.strip().startswith("sladesk: error: examples/does-not-exist.toml: cannot read")
        assert "nothing was loaded" in err and "Traceback" not in err
    finally:
        await _admin_execute(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')
