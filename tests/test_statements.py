"""GET /v1/reports/statement on hand-computed work logs.

Organization A, tz America/Mexico_City (UTC-6 all year since 2022): March 2026 is
[2026-03-01T06:00Z, 2026-04-01T06:00Z).

    F1 follow_up 03-01T06:00Z raw   5           charged  15  (first instant: in)
    S  session   03-03T16:00Z raw 120 x 3 cons  charged 360
    W  work      03-04T02:00Z raw  60 after hours 60 x 1.5 = 90 (requested: R, on t2)
    F2 follow_up 03-05T15:00Z raw  10           charged  15
    F3 follow_up 03-05T15:00Z raw  20           charged  15  (same instant as F2: id decides)
    E  work      04-01T05:30Z raw  25           charged  25  (local 03-31 23:30: in; no contract;
                                                              after hours, not requested: x 1)
    N  work      03-06T16:00Z raw  30 non-billable, charged 0 (unbilled)
    P  work      03-01T05:59Z raw  10           (local 02-28 23:59: out)
    Q  work      04-01T06:00Z raw  40           (local 04-01 00:00: out)

Billable in March (local): 6 entries, raw 5+120+60+10+20+25 = 240, charged
15+360+90+15+15+25 = 520 (8.67 h), after hours 60+25 = 85 of which 25 not requested;
follow_up 3 / 45, session 1 / 360,
work 2 / 115; contract 5 / 495, no contract 1 / 25; unbilled 1 entry / 30 raw.
In UTC the month is [03-01T00Z, 04-01T00Z): P in, E out: 6 entries, charged 520-25+10 = 505.
Organization B has a billable March entry that must never appear.
"""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import make_sessionmaker
from app.models.billing import AfterHoursRequest, Worklog
from app.security import Role
from tests.conftest import auth, client_for, make_key
from tests.factories import create_agent, create_org
from tests.ticket_factories import Desk, make_desk, open_ticket

URL = "/v1/reports/statement"
MX = "America/Mexico_City"
EVIL = '=HYPERLINK("http://evil.example","click")'
VALIDATION = "https://sladesk.dev/problems/validation-error"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Data:
    a: Desk
    b_org: dict[str, Any]
    agent: dict[str, Any]
    tickets: dict[str, dict[str, Any]]
    ids: dict[str, uuid.UUID]


async def build(api: httpx.AsyncClient, engine: AsyncEngine) -> Data:
    a = await make_desk(api)
    b_desk = await make_desk(api)
    b = b_desk.org
    agent = await create_agent(api)
    t1 = await open_ticket(api, a, subject=EVIL)
    t2 = await open_ticket(api, a, subject="Printer on fire")
    tb = await open_ticket(api, b_desk, subject="theirs")
    contract = uuid.UUID(a.contract["id"])
    org = uuid.UUID(a.org["id"])
    # The client's e-mail asking for an engineer on the evening of 03-03 (local).
    request = AfterHoursRequest(
        organization_id=org,
        ticket_id=uuid.UUID(t2["id"]),
        contact_id=uuid.UUID(a.contact["id"]),
        requested_at=at("2026-03-03T18:05:00Z"),
        starts_at=at("2026-03-04T00:00:00Z"),
        ends_at=at("2026-03-04T04:00:00Z"),
        reference="RE: Printer on fire - tonight please",
        recorded_by={"role": "agent"},
    )

    def entry(ticket: dict[str, Any], kind: str, when: str, **fields: Any) -> Worklog:
        values: dict[str, Any] = {
            "ticket_id": uuid.UUID(ticket["id"]),
            "organization_id": uuid.UUID(ticket["organization_id"]),
            "contract_id": contract,
            "kind": kind,
            "agent_id": uuid.UUID(agent["id"]),
            "occurred_at": at(when),
            "note": f"note {kind} {when}",
            **fields,
        }
        return Worklog(**values)

    rows = {
        "F1": entry(t1, "follow_up", "2026-03-01T06:00:00Z", minutes=5, charged_minutes=15),
        "S": entry(
            t2, "session", "2026-03-03T16:00:00Z", minutes=120, consultants=3,
            charged_minutes=360, source="auto",
        ),
        "W": entry(
            t2, "work", "2026-03-04T02:00:00Z", minutes=60, after_hours_minutes=60,
            multiplier=Decimal("1.5"), charged_minutes=90, after_hours_request_id=request.id,
        ),
        "F2": entry(t1, "follow_up", "2026-03-05T15:00:00Z", minutes=10, charged_minutes=15),
        "F3": entry(t2, "follow_up", "2026-03-05T15:00:00Z", minutes=20, charged_minutes=15),
        "E": entry(
            t1, "work", "2026-04-01T05:30:00Z", minutes=25, charged_minutes=25, contract_id=None,
            after_hours_minutes=25, unrequested_minutes=25,
        ),
        "N": entry(
            t2, "work", "2026-03-06T16:00:00Z", minutes=30, charged_minutes=0, billable=False,
            unbilled_reason="warranty",
        ),
        "P": entry(t1, "work", "2026-03-01T05:59:00Z", minutes=10, charged_minutes=10),
        "Q": entry(t1, "work", "2026-04-01T06:00:00Z", minutes=40, charged_minutes=40),
        "B": entry(
            tb, "work", "2026-03-10T12:00:00Z", minutes=45, charged_minutes=45, contract_id=None
        ),
    }  # fmt: skip
    assert rows["B"].organization_id != org
    async with make_sessionmaker(engine)() as session, session.begin():
        session.add(request)
        await session.flush()
        session.add_all(rows.values())
    ids = {k: r.id for k, r in rows.items()} | {"R": request.id}
    return Data(a, b, agent, {"t1": t1, "t2": t2}, ids)


def order(data: Data, *names: str) -> list[str]:
    """Ids of the named entries by (occurred_at, id), as the statement orders them."""
    when = {
        "F1": "2026-03-01T06:00:00Z", "S": "2026-03-03T16:00:00Z", "W": "2026-03-04T02:00:00Z",
        "F2": "2026-03-05T15:00:00Z", "F3": "2026-03-05T15:00:00Z", "E": "2026-04-01T05:30:00Z",
        "P": "2026-03-01T05:59:00Z",
    }  # fmt: skip
    return [str(data.ids[n]) for n in sorted(names, key=lambda n: (at(when[n]), data.ids[n]))]


async def get(api: httpx.AsyncClient, expect: int = 200, **params: Any) -> Any:
    response = await api.get(URL, params=params)
    assert response.status_code == expect, response.text
    return response.json()


MARCH_MX = {
    "entries": 6,
    "minutes": 240,
    "charged_minutes": 520,
    "charged_hours": 8.67,
    "after_hours_minutes": 85,
    "unrequested_minutes": 25,
    "by_kind": [
        {"kind": "follow_up", "entries": 3, "charged_minutes": 45},
        {"kind": "session", "entries": 1, "charged_minutes": 360},
        {"kind": "work", "entries": 2, "charged_minutes": 115},
    ],
    "unbilled": {"entries": 1, "minutes": 30},
}


async def test_statement_matches_the_hand_computation(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    body = await get(admin, organization_id=data.a.org["id"], month="2026-03", tz=MX)
    assert body["from"] == "2026-03-01T06:00:00Z"
    assert body["to"] == "2026-04-01T06:00:00Z"
    assert body["organization_name"] == data.a.org["name"]
    totals = body["totals"]
    assert {k: v for k, v in totals.items() if k != "by_contract"} == MARCH_MX
    assert totals["by_contract"] == [
        {"contract_id": data.a.contract["id"], "entries": 5, "charged_minutes": 495},
        {"contract_id": None, "entries": 1, "charged_minutes": 25},
    ]
    lines = body["lines"]
    assert [line["id"] for line in lines] == order(data, "F1", "S", "W", "F2", "F3", "E")
    assert body["next_cursor"] is None
    session = next(line for line in lines if line["id"] == str(data.ids["S"]))
    assert session == {
        "id": str(data.ids["S"]),
        "ticket_id": data.tickets["t2"]["id"],
        "ticket_number": data.tickets["t2"]["number"],
        "ticket_subject": "Printer on fire",
        "contract_id": data.a.contract["id"],
        "kind": "session",
        "source": "auto",
        "occurred_at": "2026-03-03T16:00:00Z",
        "minutes": 120,
        "consultants": 3,
        "after_hours_minutes": 0,
        "unrequested_minutes": 0,
        "multiplier": 1.0,
        "charged_minutes": 360,
        "after_hours_request": None,
        "agent_id": data.agent["id"],
        "note": "note session 2026-03-03T16:00:00Z",
    }
    after_hours = next(line for line in lines if line["id"] == str(data.ids["W"]))
    assert (after_hours["multiplier"], after_hours["after_hours_minutes"]) == (1.5, 60)
    # The line shows the client's request its multiplied minutes rely on.
    assert after_hours["after_hours_request"] == {
        "id": str(data.ids["R"]),
        "scope": "ticket",
        "contact_id": data.a.contact["id"],
        "requested_at": "2026-03-03T18:05:00Z",
        "starts_at": "2026-03-04T00:00:00Z",
        "ends_at": "2026-03-04T04:00:00Z",
        "reference": "RE: Printer on fire - tonight please",
    }
    late = next(line for line in lines if line["id"] == str(data.ids["E"]))
    assert (late["after_hours_minutes"], late["unrequested_minutes"]) == (25, 25)
    assert (late["multiplier"], late["after_hours_request"]) == (1.0, None)
    assert data.tickets["t2"]["number"].startswith("SD-")


async def test_the_month_is_bounded_by_local_midnights(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    utc = await get(admin, organization_id=data.a.org["id"], month="2026-03")
    assert (utc["from"], utc["to"]) == ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
    assert [line["id"] for line in utc["lines"]] == order(data, "P", "F1", "S", "W", "F2", "F3")
    assert (utc["totals"]["entries"], utc["totals"]["charged_minutes"]) == (6, 505)
    april = await get(admin, organization_id=data.a.org["id"], month="2026-04", tz=MX)
    assert [line["id"] for line in april["lines"]] == [str(data.ids["Q"])]
    february = await get(admin, organization_id=data.a.org["id"], month="2026-02", tz=MX)
    assert [line["id"] for line in february["lines"]] == [str(data.ids["P"])]
    empty = await get(admin, organization_id=data.a.org["id"], month="2025-12", tz=MX)
    assert empty["lines"] == [] and empty["next_cursor"] is None
    assert empty["totals"] == {
        "entries": 0, "minutes": 0, "charged_minutes": 0, "charged_hours": 0.0,
        "after_hours_minutes": 0, "unrequested_minutes": 0,
        "by_kind": [{"kind": k, "entries": 0, "charged_minutes": 0}
                    for k in ("follow_up", "session", "work")],
        "by_contract": [], "unbilled": {"entries": 0, "minutes": 0},
    }  # fmt: skip


async def test_other_organizations_entries_never_appear(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    body = await get(admin, organization_id=data.a.org["id"], month="2026-03", tz=MX)
    assert str(data.ids["B"]) not in str(body)
    theirs = await get(admin, organization_id=data.b_org["id"], month="2026-03", tz=MX)
    assert [line["id"] for line in theirs["lines"]] == [str(data.ids["B"])]
    assert (theirs["totals"]["entries"], theirs["totals"]["charged_minutes"]) == (1, 45)


async def test_customer_key_sees_its_own_organization_without_staff_fields(
    app: Any, admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    key = await make_key(db, Role.CUSTOMER, organization_id=data.a.org["id"])
    async with client_for(app, key) as customer:
        body = await get(customer, month="2026-03", tz=MX)  # defaults to its organization
        assert body["organization_id"] == data.a.org["id"]
        assert len(body["lines"]) == 6
        for line in body["lines"]:
            assert "agent_id" not in line and "note" not in line
        assert body["totals"]["charged_minutes"] == 520
        same = await get(customer, organization_id=data.a.org["id"], month="2026-03", tz=MX)
        assert same == body
        other = await customer.get(
            URL, params={"organization_id": data.b_org["id"], "month": "2026-03"}
        )
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/problem+json")
        assert other.json()["type"] == "https://sladesk.dev/problems/not-found"
        assert str(data.ids["B"]) not in other.text
        response = await customer.get(
            URL, params={"month": "2026-03", "tz": MX}, headers={"Accept": "text/csv"}
        )
        rows = list(csv.reader(io.StringIO(response.text)))
        assert "agent_id" not in rows[0] and "note" not in rows[0]
        assert data.agent["id"] not in response.text and "note " not in response.text


async def test_pages_walk_every_line_and_totals_stay_whole_month(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    params = {"organization_id": data.a.org["id"], "month": "2026-03", "tz": MX, "limit": 2}
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        body = await get(admin, **params, **({"cursor": cursor} if cursor else {}))
        pages += 1
        assert len(body["lines"]) <= 2
        assert {k: v for k, v in body["totals"].items() if k != "by_contract"} == MARCH_MX
        seen += [line["id"] for line in body["lines"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == order(data, "F1", "S", "W", "F2", "F3", "E")


async def test_csv_has_the_page_the_total_row_and_guarded_cells(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    data = await build(admin, db)
    response = await admin.get(
        URL,
        params={"organization_id": data.a.org["id"], "month": "2026-03", "tz": MX, "limit": 4},
        headers={"Accept": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["record"] for r in rows] == ["line"] * 4 + ["total"]
    assert [r["id"] for r in rows[:4]] == order(data, "F1", "S", "W", "F2", "F3", "E")[:4]
    first = rows[0]
    assert first["ticket_subject"] == "'" + EVIL
    assert first["ticket_number"] == data.tickets["t1"]["number"]
    assert (first["kind"], first["minutes"], first["charged_minutes"]) == ("follow_up", "5", "15")
    assert first["agent_id"] == data.agent["id"]
    assert first["occurred_at"] == "2026-03-01T06:00:00+00:00"
    total = rows[-1]
    # The total row is the whole month's, not the page's.
    assert (total["entries"], total["minutes"], total["after_hours_minutes"]) == ("6", "240", "85")
    assert total["unrequested_minutes"] == "25"
    by_id = {r["id"]: r for r in rows}
    w = by_id[str(data.ids["W"])]
    assert w["after_hours_request_id"] == str(data.ids["R"])
    assert w["after_hours_request_reference"] == "RE: Printer on fire - tonight please"
    assert by_id[str(data.ids["S"])]["after_hours_request_id"] == ""
    assert (total["charged_minutes"], total["charged_hours"]) == ("520", "8.67")
    assert total["id"] == "" and total["ticket_subject"] == ""


async def test_invalid_queries_are_problems(admin: httpx.AsyncClient, db: AsyncEngine) -> None:
    org = await create_org(admin)
    cases = [
        ({"organization_id": org["id"], "month": "2026-13"}, "query.month"),
        ({"organization_id": org["id"], "month": "2026-3"}, "query.month"),
        ({"organization_id": org["id"], "month": "March"}, "query.month"),
        ({"organization_id": org["id"], "month": "1900-01"}, "query.month"),
        ({"organization_id": org["id"], "month": "2026-03", "tz": "Mars/Olympus"}, "query.tz"),
        ({"organization_id": org["id"], "month": "2026-03", "limit": 5001}, "query.limit"),
        ({"organization_id": org["id"], "month": "2026-03", "limit": 0}, "query.limit"),
        ({"organization_id": org["id"], "month": "2026-03", "cursor": "nope"}, "query.cursor"),
        ({"month": "2026-03"}, "query.organization_id"),
        ({"organization_id": org["id"]}, "query.month"),
    ]
    for params, field in cases:
        response = await admin.get(URL, params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["type"] == VALIDATION, params
        assert [e["field"] for e in problem["errors"]] == [field], (params, problem)
    unknown = await admin.get(
        URL, params={"organization_id": str(uuid.uuid4()), "month": "2026-03"}
    )
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "https://sladesk.dev/problems/not-found"
    ok = await admin.get(
        URL, params={"organization_id": org["id"], "month": "2026-03", "limit": 5000}
    )
    assert ok.status_code == 200


async def test_agent_key_needs_the_organization(
    agent: httpx.AsyncClient, admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    org = await create_org(admin)
    response = await agent.get(URL, params={"month": "2026-03"}, headers=auth("sld_wrong"))
    assert response.status_code == 401
    missing = await agent.get(URL, params={"month": "2026-03"})
    assert missing.status_code == 422
    body = await get(agent, organization_id=org["id"], month="2026-03")
    assert body["lines"] == [] and body["totals"]["entries"] == 0
