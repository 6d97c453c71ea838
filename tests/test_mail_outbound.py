"""Customer e-mail from the outbox to a real SMTP relay (aiosmtpd): what is sent for which
event, at least once with its own Message-ID, retried while the relay is down, held while
there is none, resent on request, and the company's own wording."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.security import Role
from app.workers.escalation import TimerLoop
from tests.conftest import client_for, make_key
from tests.factories import create_agent
from tests.mail_harness import Relay, mail_settings, sending, until
from tests.ticket_factories import Desk, act, make_desk, open_ticket
from tests.webhook_harness import rows


@pytest.fixture
async def relay() -> Any:
    server = Relay()
    await server.start()
    yield server
    await server.stop()


async def _desk(admin: httpx.AsyncClient, **plan: Any) -> Desk:
    desk = await make_desk(admin, channels=["email", "web"], **plan)
    return desk


async def _log(admin: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await admin.get("/v1/mail/outbound", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_what_is_sent_for_which_event(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay, app: Any
) -> None:
    """The acknowledgment (with a best-effort resolution), every public reply, resolved
    asking to confirm, closed, an authorization request; never an internal note. Each
    message threads: our Message-ID, In-Reply-To/References, the token in the subject."""
    desk = await _desk(
        admin,
        billing={"after_hours": {"allowed": True}},
        targets=[
            {"metric": "first_response", "minutes": 60},
            {"metric": "resolution", "minutes": None},
        ],
    )
    agent = await create_agent(admin)
    ticket = await open_ticket(admin, desk, subject="Export <fails> & more")
    t = ticket["id"]
    config = mail_settings(settings, smtp_url=relay.url)
    async with sending(db, config):
        await act(admin, t, "assign", agent_id=agent["id"])
        # A reassignment is no news to the customer: one acknowledgment.
        await act(admin, t, "assign", agent_id=(await create_agent(admin))["id"])
        await act(admin, t, "note", body="Internal: the customer is grumpy.")
        await act(admin, t, "reply", body="We are looking at it.\nSecond line.")
        # The reply was charged a follow-up: the next one passes an estimate just above.
        charged = (await admin.get(f"/v1/tickets/{t}/estimate")).json()["charged_minutes"]
        estimate = await admin.put(f"/v1/tickets/{t}/estimate", json={"minutes": charged + 1})
        assert estimate.status_code == 200, estimate.text
        logged = await admin.post(f"/v1/tickets/{t}/worklogs", json={"kind": "follow_up"})
        assert logged.status_code == 201, logged.text
        await act(admin, t, "resolve", resolution="workaround", body="Restart the service.")
        await act(admin, t, "close", reason="other", body="Closing as agreed.")
        delivered = await relay.wait_for(5)
    log = list(reversed(await _log(admin)))
    kinds = [m["kind"] for m in log]
    assert kinds == ["acknowledged", "reply", "authorization_required", "resolved", "closed"]
    # Sent concurrently: matched by Message-ID, in the order they were composed.
    by_id = {d["Message-ID"]: d for d in delivered}
    ack, reply, authorization, resolved, closed = (by_id[m["message_id"]] for m in log)
    assert "Resolution: best effort" in ack.text and "First response: by" in ack.text
    assert reply.text.startswith("We are looking at it.\nSecond line.")
    assert "We are looking at it.<br>" in reply.html
    assert "Export &lt;fails&gt; &amp; more" in ack.html  # the subject, escaped in HTML
    assert reply["Auto-Submitted"] is None or reply["Auto-Submitted"] == "None"
    assert (
        "authorization" in authorization["Subject"].lower()
        and f"estimate you agreed to is {charged + 1} minutes" in authorization.text
    )
    assert "CONFIRM" in resolved.text and "Restart the service." in resolved.text
    assert "Closing as agreed." in closed.text
    assert all("grumpy" not in d.text for d in delivered)
    token = f"[{ticket['number']}]"
    ids = [m["message_id"] for m in log]
    assert all(token in d["Subject"] for d in delivered) and len(set(ids)) == 5
    assert reply["In-Reply-To"] == ack["Message-ID"]
    assert closed["References"].split() == ids[:4]
    # The conversation, as the customer sees it.
    customer = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"])
    async with client_for(app, customer) as mine:
        page = (await mine.get(f"/v1/tickets/{t}/messages", params={"limit": 2})).json()
        assert [m["kind"] for m in page["items"]] == ["acknowledged", "reply"]
        rest = (
            await mine.get(f"/v1/tickets/{t}/messages", params={"cursor": page["next_cursor"]})
        ).json()
        assert [m["kind"] for m in rest["items"]] == [
            "authorization_required",
            "resolved",
            "closed",
        ]
        assert rest["next_cursor"] is None


async def test_a_relay_down_then_up_delivers_every_message_once(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    desk = await _desk(admin)
    agent = await create_agent(admin)
    tickets = [(await open_ticket(admin, desk, subject=f"Issue {n}"))["id"] for n in range(4)]
    await relay.stop()  # connection refused from now on
    config = mail_settings(settings, smtp_url=relay.url)
    async with sending(db, config):
        for t in tickets:
            await act(admin, t, "assign", agent_id=agent["id"])

        async def retried() -> bool:
            log = await _log(admin)
            return len(log) == 4 and all(m["attempt_count"] >= 2 for m in log)

        await until(retried)
        assert all(m["status"] == "pending" for m in await _log(admin))
        await relay.start()  # the same port, back
        await relay.wait_for(4)

        async def all_sent() -> bool:
            return all(m["status"] == "sent" for m in await _log(admin))

        await until(all_sent)
    ids = [d["Message-ID"] for d in relay.received]
    assert len(ids) == 4 and len(set(ids)) == 4
    log = await _log(admin)
    assert sorted(m["message_id"] for m in log) == sorted(ids)
    for entry in log:
        outcomes = [a["outcome"] for a in entry["attempts"]]
        assert outcomes[-1] == "sent" and set(outcomes[:-1]) == {"failed"}
        assert (
            "ConnectError" in entry["attempts"][0]["error"]
            or "refused" in entry["attempts"][0]["error"].lower()
        )


async def test_held_without_a_relay_then_sent_once_one_is_configured_and_resent(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    desk = await _desk(admin)
    agent = await create_agent(admin)
    t = (await open_ticket(admin, desk))["id"]
    embedded = mail_settings(settings)  # no SLADESK_SMTP_URL: the embedded default
    async with sending(db, embedded):
        await act(admin, t, "assign", agent_id=agent["id"])

        async def held() -> list[dict[str, Any]]:
            return await _log(admin, status="held")

        [message] = await until(held)
    assert message["attempts"] == [] and message["kind"] == "acknowledged"
    assert relay.received == []
    async with sending(db, mail_settings(settings, smtp_url=relay.url)):
        [delivered] = await relay.wait_for(1)
        assert delivered["Message-ID"] == message["message_id"]
        resent = await admin.post(f"/v1/mail/outbound/{message['id']}/resend")
        assert resent.status_code == 200, resent.text
        await relay.wait_for(2)

        async def sent_again() -> list[dict[str, Any]]:
            log = await _log(admin, status="sent")
            return log if log and len(log[0]["attempts"]) == 2 else []

        [entry] = await until(sent_again)
    assert relay.received[1]["Message-ID"] == message["message_id"]  # the same message
    assert [(a["number"], a["trigger"]) for a in entry["attempts"]] == [
        (1, "schedule"),
        (2, "resend"),
    ]


async def test_a_permanent_refusal_fails_without_retrying(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    desk = await _desk(admin)
    t = (await open_ticket(admin, desk))["id"]
    relay.refuse = "550 5.1.1 <nobody>: Recipient address rejected"
    async with sending(db, mail_settings(settings, smtp_url=relay.url)):
        await act(admin, t, "reply", body="Hello")

        async def failed() -> list[dict[str, Any]]:
            return await _log(admin, status="failed")

        [entry] = await until(failed)
    assert entry["reason"] == "refused" and len(entry["attempts"]) == 1
    assert entry["attempts"][0]["smtp_code"] == 550


async def test_the_company_wording_overrides_a_template(
    db: AsyncEngine,
    admin: httpx.AsyncClient,
    settings: Settings,
    relay: Relay,
    tmp_path: Path,
) -> None:
    (tmp_path / "es").mkdir()
    (tmp_path / "es" / "reply.j2").write_text(
        "{% block subject %}Respuesta de ACME: {{ ticket.subject }}{% endblock %}\n"
        "{% block text %}{% autoescape false %}ACME dice: {{ message }}{% endautoescape %}"
        "{% endblock %}\n"
        "{% block html %}<p>ACME dice: {{ message }}</p>{% endblock %}\n"
    )
    (tmp_path / "es" / "closed.j2").write_text(
        "{% block subject %}{{ no_such_variable }}{% endblock %}"
    )
    desk = await _desk(admin)
    await admin.patch(f"/v1/organizations/{desk.org['id']}", json={"locale": "es-MX"})
    t = (await open_ticket(admin, desk, subject="Impresora"))["id"]
    config = mail_settings(settings, smtp_url=relay.url, mail_templates_dir=str(tmp_path))
    async with sending(db, config):
        await act(admin, t, "reply", body="<Reinicie> la impresora")
        await act(admin, t, "close", reason="duplicate")
        reply, closed = await relay.wait_for(2)
    assert "Respuesta de ACME: Impresora" in reply["Subject"]
    assert reply.text.strip() == "ACME dice: <Reinicie> la impresora"
    assert "&lt;Reinicie&gt;" in reply.html  # autoescaped even in an override
    # A broken override falls back to the shipped Spanish template: the customer is told.
    assert "Cerrado: Impresora" in closed["Subject"] and "duplica otra solicitud" in closed.text


async def test_the_auto_close_notice(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    """Closed by the timer for lack of response (seed 004): the customer is told, and that
    help asked later opens a new ticket."""
    desk = await _desk(admin, auto_close={"contact_attempts": 1, "notice_business_days": 0})
    t = (await open_ticket(admin, desk))["id"]
    async with sending(db, mail_settings(settings, smtp_url=relay.url)):
        await act(admin, t, "request_info", body="Which version?")
        closed = await TimerLoop(db).auto_close(datetime.now(UTC))
        assert closed.closed == 1
        asked, notice = await relay.wait_for(2)
    assert "Which version?" in asked.text and "will be closed on" in asked.text
    assert "Closed for lack of response" in notice["Subject"]
    assert "after 1 attempt," in notice.text and "a new ticket will be created" in notice.text
    assert notice["Auto-Submitted"] == "auto-generated"


async def test_no_relay_configured_keeps_outbox_events_marked(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings
) -> None:
    """Every event is looked at once (``mailed_at``), whether it makes a message or not."""
    desk = await _desk(admin)
    t = (await open_ticket(admin, desk))["id"]
    async with sending(db, mail_settings(settings)):
        await act(admin, t, "note", body="internal")

        async def looked_at() -> bool:
            pending = await rows(db, "SELECT count(*) FROM outbox_events WHERE mailed_at IS NULL")
            return pending[0][0] == 0

        await until(looked_at)
    assert await _log(admin) == []
