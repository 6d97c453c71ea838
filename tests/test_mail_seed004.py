"""Seed 004 by e-mail, end to end, with real mail: ``smtplib`` into our running listener,
our messages received by a real SMTP relay (aiosmtpd).

"All incidents must be reported via email" — an authorized contact's e-mail becomes a
critical/technical ticket whose clocks start at its arrival; the assignment sends the
acknowledgment with the due times in Mexico City time (seed 000); the customer's reply
threads to the ticket by In-Reply-To and resumes the paused clock; three contact attempts
send three messages naming the date the ticket will close ("Lack of customer service
after 3 attempts ... The notification time is 5 business days").
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_sessionmaker
from app.services.loader import load_files
from app.services.mail_templates import local_date, local_datetime
from tests.factories import create_agent
from tests.mail_harness import Relay, listening, mail_settings, message, sending, smtp_send
from tests.ticket_factories import act, clock
from tests.webhook_harness import rows

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "004_mexico_specialized.toml"
ANA = "ana@client.example.mx"
MEXICO = ZoneInfo("America/Mexico_City")


async def _load_seed(db: AsyncEngine, admin: httpx.AsyncClient) -> dict[str, Any]:
    async with make_sessionmaker(db)() as session, session.begin():
        await load_files(session, [EXAMPLE], now=datetime.now(MEXICO))
    orgs = (await admin.get("/v1/organizations")).json()["items"]
    org = next(o for o in orgs if o["name"] == "Specialized support demo client")
    # The demo contract is for 2026; keep it open so that this test does not age.
    contracts = (await admin.get("/v1/contracts", params={"organization_id": org["id"]})).json()
    for contract in contracts["items"]:
        patched = await admin.patch(f"/v1/contracts/{contract['id']}", json={"ends_on": None})
        assert patched.status_code == 200, patched.text
        if contract["starts_on"] > datetime.now(MEXICO).date().isoformat():
            moved = await admin.patch(
                f"/v1/contracts/{contract['id']}", json={"starts_on": "2025-01-01"}
            )
            assert moved.status_code == 200, moved.text
    return org


async def _ticket_of(admin: httpx.AsyncClient, org_id: str) -> dict[str, Any]:
    listed = (await admin.get("/v1/tickets", params={"organization_id": org_id})).json()
    assert len(listed["items"]) == 1, listed
    return dict(listed["items"][0])


def _in_mexico(instant: str) -> datetime:
    return datetime.fromisoformat(instant).astimezone(MEXICO)


async def test_seed_004_by_email(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings
) -> None:
    org = await _load_seed(db, admin)
    agent = await create_agent(admin)
    relay = Relay()
    await relay.start()
    config = mail_settings(settings, smtp_url=relay.url)
    try:
        async with listening(db, config) as port, sending(db, config):
            # 1. The incident, by e-mail from the authorized contact.
            first = message(
                f"Ana Authorized <{ANA}>",
                "Falla en producción",
                "El servidor de reportes no responde desde las 9:00.",
            )
            await smtp_send(port, first, mail_from=ANA)
            received = await rows(db, "SELECT * FROM mail_inbound")
            assert [(r.status, r.reason) for r in received] == [("ticket", None)]
            arrival = received[0].received_at
            ticket = await _ticket_of(admin, org["id"])
            assert (ticket["channel"], ticket["severity"], ticket["category"]) == (
                "email",
                "critical",
                "technical",
            )
            assert ticket["subject"] == "Falla en producción"
            assert datetime.fromisoformat(ticket["received_at"]) == arrival
            assert {c["metric"] for c in ticket["sla"]} == {"first_response", "resolution"}
            assert all(datetime.fromisoformat(c["started_at"]) == arrival for c in ticket["sla"])
            number = ticket["number"]
            token = f"[{number}]"

            # 2. Assigned: the acknowledgment, due times in Mexico City time (seed 000).
            await act(admin, ticket["id"], "assign", agent_id=agent["id"])
            ack = (await relay.wait_for(1))[0]
            assert ack.rcpt_tos == [ANA]
            assert token in ack["Subject"] and ack["Auto-Submitted"] == "auto-generated"
            shown = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
            for metric in ("first_response", "resolution"):
                due = clock(shown, metric)["due_at"]
                assert due is not None
                local = _in_mexico(due)
                written = local_datetime(local, "America/Mexico_City", "es-MX")
                assert written in ack.text, (written, ack.text)
                assert f"{local.day} de " in written and f"{local:%-I:%M}" in written
            assert "Primera respuesta" in ack.text and "America/Mexico_City" in ack.text
            assert "<li>" in ack.html

            # 3. We ask; the clocks pause. The customer answers by replying: In-Reply-To.
            await act(admin, ticket["id"], "request_info", body="¿Qué versión del servidor?")
            asked = (await relay.wait_for(2))[1]
            assert "¿Qué versión del servidor?" in asked.text
            assert asked["In-Reply-To"] == received[0].message_id
            paused = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
            assert clock(paused, "resolution")["state"] == "paused"
            reply = message(
                f"Ana Authorized <{ANA}>",
                f"Re: {asked['Subject']}",
                "Es la versión 2.4.\n\nEl lun, 1 de abril, Soporte escribió:\n> ¿Qué versión?",
                In_Reply_To=asked["Message-ID"],
                References=f"{received[0].message_id} {asked['Message-ID']}",
            )
            await smtp_send(port, reply, mail_from=ANA)
            answer = (await rows(db, "SELECT * FROM mail_inbound ORDER BY received_at"))[-1]
            assert (answer.status, str(answer.ticket_id)) == ("reply", ticket["id"])
            resumed = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
            assert resumed["status"] == "in_progress"
            assert clock(resumed, "resolution")["state"] == "running"
            timeline = (await admin.get(f"/v1/tickets/{ticket['id']}/timeline")).json()["items"]
            replied = [e for e in timeline if e["kind"] == "customer_replied"]
            assert len(replied) == 1
            assert datetime.fromisoformat(replied[0]["occurred_at"]) == answer.received_at
            assert replied[0]["body"] == "Es la versión 2.4."  # the quoted history is cut

            # 4. Three contact attempts: three messages naming the auto-close date.
            await act(admin, ticket["id"], "request_info", body="¿Puede enviar el log?")
            await relay.wait_for(3)
            for n in range(3):
                await act(
                    admin, ticket["id"], "contact_attempt", channel="phone", body=f"Llamada {n + 1}"
                )
            delivered = await relay.wait_for(6)
            attempts = [d for d in delivered if "Intento" in d["Subject"]]
            assert len(attempts) == 3
            closing = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
            assert closing["auto_close_at"] is not None
            close_on = local_date(
                datetime.fromisoformat(closing["auto_close_at"]), "America/Mexico_City", "es-MX"
            )
            for sent in attempts:
                assert close_on in sent.text, sent.text
            assert "intento 2 de 3" in attempts[0].text and "intento 3 de 3" in attempts[1].text
            assert "se cerrará el" in attempts[1].text and "se cerrará el" in attempts[2].text
            # Every message threads to the ticket: its token, and one Message-ID each.
            assert all(token in d["Subject"] for d in delivered)
            assert len({d["Message-ID"] for d in delivered}) == len(delivered)
    finally:
        await relay.stop()
