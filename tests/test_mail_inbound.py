"""Received e-mail, through both doors (``smtplib`` into the running listener, and
``POST /v1/mail/inbound``): stored first and once, routed through the API's own services,
and what is no ticket kept, listed and answered only when that is safe."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.events import CATALOGUE
from app.main import create_app
from app.security import Role
from tests.conftest import client_for, make_key
from tests.factories import create_contact, create_org
from tests.mail_harness import (
    DESK,
    Relay,
    listening,
    mail_settings,
    message,
    sending,
    smtp_send,
    until,
)
from tests.ticket_factories import Desk, act, make_desk
from tests.webhook_harness import execute, rows

RFC822 = {"Content-Type": "message/rfc822"}


async def _desk(admin: httpx.AsyncClient, **plan: Any) -> Desk:
    return await make_desk(admin, channels=["email", "web"], **plan)


async def _inbound(db: AsyncEngine) -> list[Any]:
    return await rows(db, "SELECT * FROM mail_inbound ORDER BY received_at, id")


async def _rejected(admin: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await admin.get("/v1/mail/rejected", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@pytest.fixture
async def relay() -> Any:
    server = Relay()
    await server.start()
    yield server
    await server.stop()


# ------------------------------------------------------------------------ refusals


async def test_end_users_are_refused_with_the_seed_002_answer_and_listed(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    """Seed 002: "If a support email ... is received by Vitrium by an end user": no
    ticket, the customer supports its end users; the sender is told to contact the
    organization's administrator. A stranger of the customer's e-mail domain is its end
    user too."""
    desk = await _desk(admin)
    await admin.patch(
        f"/v1/organizations/{desk.org['id']}", json={"email_domains": ["pub.example"]}
    )
    reader = await create_contact(
        admin, desk.org["id"], email="reader@elsewhere.example", role="end_user"
    )
    config = mail_settings(settings, smtp_url=relay.url)
    async with listening(db, config) as port, sending(db, config):
        await smtp_send(port, message("reader@elsewhere.example", "Cannot open the PDF", "Help"))
        await smtp_send(port, message("Stranger <new@PUB.example>", "Locked out", "Help me"))
        answers = await relay.wait_for(2)
    stored = await _inbound(db)
    assert [(r.status, r.reason) for r in stored] == [("rejected", "end_user")] * 2
    assert str(stored[0].contact_id) == reader["id"]
    assert [str(r.organization_id) for r in stored] == [desk.org["id"]] * 2
    assert (await admin.get("/v1/tickets")).json()["items"] == []
    listed = await _rejected(admin, reason="end_user")
    assert {m["from_address"] for m in listed} == {"reader@elsewhere.example", "new@pub.example"}
    for answer in answers:
        assert "organization's administrator" in answer.text
        assert answer["Auto-Submitted"] == "auto-replied"
        assert answer["In-Reply-To"] in {r.message_id for r in stored}
    assert {a.rcpt_tos[0] for a in answers} == {"reader@elsewhere.example", "new@pub.example"}
    # Each rejection is a ``mail.rejected`` event shaped as the catalogue says.
    events = await rows(db, "SELECT data FROM outbox_events WHERE type = 'mail.rejected'")
    assert len(events) == 2
    example = CATALOGUE["mail.rejected"].example
    assert all(set(e.data["mail"]) == set(example["mail"]) for e in events)


async def test_unknown_and_forged_senders_are_rejected_with_their_reason(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings
) -> None:
    """With a trusted authserv-id, an authorized contact's address without DMARC (or
    aligned SPF/DKIM) from our border MTA is ``unauthenticated`` (seed 004: the address
    must not be forgeable into billable tickets); a pass of someone else's MTA counts
    for nothing; an aligned pass is a ticket."""
    desk = await _desk(admin)
    contact = desk.contact["email"]
    domain = contact.rsplit("@", 1)[1]
    config = mail_settings(settings, mail_trusted_authserv_id="mx.desk.example")
    async with listening(db, config) as port:
        await smtp_send(port, message("who@nowhere.example", "Hello", "Anyone?"))
        forged = message(
            contact,
            "Urgent: restore the database",
            "Bill it.",
            Authentication_Results=f"mx.desk.example; spf=fail smtp.mailfrom=evil.example; "
            f"dkim=none; dmarc=fail header.from={domain}",
        )
        await smtp_send(port, forged)
        other_mta = message(
            contact,
            "Also urgent",
            "Trust me.",
            Authentication_Results=f"mx.evil.example; dmarc=pass header.from={domain}",
        )
        await smtp_send(port, other_mta)
        genuine = message(
            contact,
            "The export fails",
            "Error 500.",
            Authentication_Results=f"mx.desk.example; spf=pass smtp.mailfrom=bounce.{domain}; "
            f"dkim=pass header.d={domain}",
        )
        await smtp_send(port, genuine)
    stored = await _inbound(db)
    assert [(r.subject, r.status, r.reason) for r in stored] == [
        ("Hello", "rejected", "unknown_sender"),
        ("Urgent: restore the database", "rejected", "unauthenticated"),
        ("Also urgent", "rejected", "unauthenticated"),
        ("The export fails", "ticket", None),
    ]
    listed = {m["subject"]: m for m in await _rejected(admin)}
    assert listed["Hello"]["reason"] == "unknown_sender"
    assert listed["Hello"]["excerpt"] == "Anyone?" and "text" not in listed["Hello"]
    assert listed["Urgent: restore the database"]["reason"] == "unauthenticated"
    assert "dmarc=fail" in listed["Urgent: restore the database"]["detail"]
    assert "no Authentication-Results from mx.desk.example" in listed["Also urgent"]["detail"]
    tickets = (await admin.get("/v1/tickets")).json()["items"]
    assert [t["subject"] for t in tickets] == ["The export fails"]


async def test_auto_replies_get_no_answer_and_answers_are_rate_limited(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    """No automatic answer to Auto-Submitted mail (kept as ``auto_reply``), bulk mail,
    or more than N answers per sender per hour: withheld answers are logged as
    ``suppressed`` with the rule, never sent."""
    config = mail_settings(settings, smtp_url=relay.url, mail_auto_replies_per_hour=2)
    async with listening(db, config) as port, sending(db, config):
        await smtp_send(
            port,
            message(
                "ooo@far.example", "Out of office", "Back Monday", Auto_Submitted="auto-replied"
            ),
        )
        await smtp_send(port, message("news@far.example", "Newsletter", "Hi", Precedence="bulk"))
        for n in range(3):
            await smtp_send(port, message("lost@far.example", f"Question {n}", "Hello?"))

        async def settled() -> bool:
            log = (await admin.get("/v1/mail/outbound")).json()["items"]
            return len(log) == 4 and all(m["status"] in ("sent", "suppressed") for m in log)

        await until(settled)
    stored = await _inbound(db)
    assert stored[0].reason == "auto_reply"
    log = (await admin.get("/v1/mail/outbound")).json()["items"]
    by_status = sorted((m["to_address"], m["status"], m["reason"]) for m in log)
    assert by_status == [
        ("lost@far.example", "sent", None),
        ("lost@far.example", "sent", None),
        ("lost@far.example", "suppressed", "rate_limited"),
        ("news@far.example", "suppressed", "bulk"),
    ]
    assert sorted(d.rcpt_tos[0] for d in relay.received) == ["lost@far.example"] * 2
    assert not relay.to("ooo@far.example")


# ------------------------------------------------------------------- stored first, once


async def test_a_message_delivered_twice_makes_one_ticket(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, app: Any
) -> None:
    desk = await _desk(admin)
    raw = message(desk.contact["email"], "The export fails", "Error 500.", message_id="<once@a.b>")
    config = mail_settings(settings)
    async with listening(db, config) as port:
        assert await smtp_send(port, raw) == {}
        assert await smtp_send(port, raw) == {}  # accepted again (the MTA retried): no-op
    key = await make_key(db, Role.MAIL)
    async with client_for(app, key) as relay_client:
        again = await relay_client.post("/v1/mail/inbound", content=raw, headers=RFC822)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True and again.json()["status"] == "ticket"
    assert len(await _inbound(db)) == 1
    tickets = (await admin.get("/v1/tickets")).json()["items"]
    assert len(tickets) == 1 and again.json()["ticket_id"] == tickets[0]["id"]


async def test_http_door_for_cloud_relays(
    db: AsyncEngine, admin: httpx.AsyncClient, app: Any
) -> None:
    """POST /v1/mail/inbound takes raw MIME from a key of role ``mail`` (which may do
    nothing else), with clear refusals."""
    desk = await _desk(admin)
    key = await make_key(db, Role.MAIL)
    raw = message(desk.contact["email"], "Printer on fire", "Really.")
    async with client_for(app, key) as relay_client:
        created = await relay_client.post("/v1/mail/inbound", content=raw, headers=RFC822)
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "ticket" and created.json()["duplicate"] is False
        json_body = await relay_client.post("/v1/mail/inbound", json={"raw": "x"})
        assert json_body.status_code == 415
        assert json_body.headers["content-type"] == "application/problem+json"
        empty = await relay_client.post("/v1/mail/inbound", content=b"  ", headers=RFC822)
        assert empty.status_code == 422 and empty.json()["errors"][0]["type"] == "empty"
        junk = await relay_client.post("/v1/mail/inbound", content=b"\x00\x01 hi", headers=RFC822)
        assert junk.status_code == 422 and junk.json()["errors"][0]["type"] == "not_a_message"
        # A mail key reaches nothing else.
        for method, path in (("GET", "/v1/tickets"), ("GET", "/v1/mail/rejected")):
            refused = await relay_client.request(method, path)
            assert refused.status_code == 403, (path, refused.text)
            assert "mail/inbound" in refused.json()["detail"]
    customer = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"])
    async with client_for(app, customer) as customer_client:
        refused = await customer_client.post("/v1/mail/inbound", content=raw, headers=RFC822)
        assert refused.status_code == 403
    actor = (await rows(db, "SELECT actor FROM ticket_events WHERE kind = 'created'"))[0].actor
    assert actor["role"] == "mail" and actor["contact_id"] == desk.contact["id"]


async def test_http_door_size_limit(db: AsyncEngine, settings: Settings) -> None:
    small = create_app(mail_settings(settings, mail_max_message_bytes=64 * 1024), engine=db)
    key = await make_key(db, Role.MAIL)
    big = message("a@b.example", "Big", "x" * (70 * 1024))
    async with client_for(small, key) as relay_client:
        refused = await relay_client.post("/v1/mail/inbound", content=big, headers=RFC822)
    assert refused.status_code == 413
    assert "65536 bytes" in refused.json()["detail"]
    assert await _inbound(db) == []


# --------------------------------------------------------------- text, html, files


async def test_html_is_sanitized_and_attachments_are_kept_and_downloadable(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, app: Any
) -> None:
    desk = await _desk(admin)
    pdf = b"%PDF-1.4 fake log " * 100
    raw = message(
        desk.contact["email"],
        "Logs attached",
        "See the log.",
        html='<p onclick="steal()">See <b>the log</b><script>alert(1)</script>'
        '<a href="javascript:alert(2)">here</a></p>',
        attachments=[("server log.pdf", "application/pdf", pdf)],
    )
    async with listening(db, mail_settings(settings)) as port:
        await smtp_send(port, raw)
    ticket = (await admin.get("/v1/tickets")).json()["items"][0]
    page = (await admin.get(f"/v1/tickets/{ticket['id']}/messages")).json()
    [received] = page["items"]
    assert received["direction"] == "in" and received["text"] == "See the log."
    html = received["html"]
    assert "<b>the log</b>" in html
    assert "script" not in html and "onclick" not in html and "javascript" not in html
    [file] = received["attachments"]
    assert (file["filename"], file["content_type"], file["size"]) == (
        "server log.pdf",
        "application/pdf",
        len(pdf),
    )
    assert file["sha256"] == hashlib.sha256(pdf).hexdigest()
    url = f"/v1/tickets/{ticket['id']}/attachments/{file['id']}"
    customer = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"])
    other = await make_key(db, Role.CUSTOMER, organization_id=(await create_org(admin))["id"])
    async with client_for(app, customer) as mine, client_for(app, other) as theirs:
        download = await mine.get(url)
        assert download.status_code == 200 and download.content == pdf
        assert download.headers["content-type"] == "application/octet-stream"
        assert "attachment" in download.headers["content-disposition"]
        assert (await theirs.get(url)).status_code == 404
        original = await mine.get(f"/v1/tickets/{ticket['id']}/messages/{received['id']}/raw")
        assert original.status_code == 200 and original.content == raw
        assert original.headers["content-type"] == "message/rfc822"
        # Staff reach any received message and its files by the message's own id.
        assert (await mine.get(f"/v1/mail/inbound/{received['id']}/raw")).status_code == 403
    staff_raw = await admin.get(f"/v1/mail/inbound/{received['id']}/raw")
    assert staff_raw.status_code == 200 and staff_raw.content == raw
    staff_file = await admin.get(f"/v1/mail/inbound/{received['id']}/attachments/{file['id']}")
    assert staff_file.status_code == 200 and staff_file.content == pdf
    detail = (await admin.get(f"/v1/mail/inbound/{received['id']}")).json()
    assert detail["status"] == "ticket" and detail["text"] == "See the log."


async def test_a_too_large_attachment_is_kept_rejected_and_answered(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    desk = await _desk(admin)
    config = mail_settings(settings, smtp_url=relay.url, mail_max_attachment_bytes=4096)
    raw = message(
        desk.contact["email"],
        "Dump",
        "The dump.",
        attachments=[("core.dump", "application/octet-stream", b"\x7fELF" * 2048)],
    )
    async with listening(db, config) as port, sending(db, config):
        await smtp_send(port, raw)
        [answer] = await relay.wait_for(1)
    [kept] = await _inbound(db)
    assert (kept.status, kept.reason) == ("rejected", "too_large")
    assert kept.raw == raw and str(kept.contact_id) == desk.contact["id"]
    assert "core.dump" in answer.text
    assert "is 8 KB, more than the limit of 4 KB" in answer.text
    assert answer["In-Reply-To"] == kept.message_id


# --------------------------------------------------------------------- replies


async def test_replies_thread_by_token_and_move_the_ticket(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings
) -> None:
    """The token in the subject threads a reply; a resolved ticket is confirmed by
    "CONFIRMO" (else reopened); a reply to a closed ticket opens a follow-up ticket;
    someone of another organization using the token does not reach the ticket."""
    desk = await _desk(admin)
    sender = desk.contact["email"]
    outsider_desk = await _desk(admin)
    async with listening(db, mail_settings(settings)) as port:
        await smtp_send(port, message(sender, "VPN drops", "Every hour."))
        ticket = (await admin.get("/v1/tickets")).json()["items"][0]
        token = f"[{ticket['number']}]"
        await smtp_send(port, message(sender, f"Re: {token} VPN drops", "Also at noon."))
        await act(admin, ticket["id"], "resolve", resolution="fix", body="Patched the tunnel.")
        await smtp_send(port, message(sender, f"Re: {token}", "Still drops!"))
        reopened = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
        assert reopened["status"] == "in_progress"
        await act(admin, ticket["id"], "resolve", resolution="fix", body="Now for real.")
        await smtp_send(port, message(sender, f"Re: {token}", "Confirmo, gracias."))
        closed = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()
        assert (closed["status"], closed["close_reason"]) == ("closed", "confirmed")
        await smtp_send(port, message(sender, f"Re: {token}", "It is back."))
        await smtp_send(
            port, message(outsider_desk.contact["email"], f"{token} hijack", "Mine now.")
        )
    timeline = (await admin.get(f"/v1/tickets/{ticket['id']}/timeline")).json()["items"]
    kinds = [e["kind"] for e in timeline if e["actor"].get("role") == "mail"]
    assert kinds == ["created", "customer_replied", "reopened", "confirmed"]
    tickets = {t["subject"]: t for t in (await admin.get("/v1/tickets")).json()["items"]}
    follow_up = [t for t in tickets.values() if t["follows_up_ticket_id"] == ticket["id"]]
    assert len(follow_up) == 1 and follow_up[0]["organization_id"] == desk.org["id"]
    assert (
        follow_up[0]["subject"] == "(no subject)" and follow_up[0]["description"] == "It is back."
    )
    hijack = [t for t in tickets.values() if t["organization_id"] == outsider_desk.org["id"]]
    assert len(hijack) == 1 and hijack[0]["subject"] == "hijack"
    statuses = [(r.status, r.reason) for r in await _inbound(db)]
    assert (
        statuses
        == [("ticket", None), ("reply", None), ("reply", None), ("reply", None)]
        + [("ticket", None)] * 2
    )


async def test_not_entitled_ambiguous_and_lmtp(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings
) -> None:
    """An inactive contact is ``not_entitled`` with the entitlement reasons (and is told
    them); an address that is a contact of two organizations is ``ambiguous_sender`` (for
    staff: no answer); Postfix's LMTP transport delivers like SMTP, one reply per
    recipient."""
    desk = await _desk(admin)
    gone = await create_contact(admin, desk.org["id"], email="gone@co.example")
    await admin.patch(
        f"/v1/organizations/{desk.org['id']}/contacts/{gone['id']}", json={"active": False}
    )
    other = await create_org(admin)
    await create_contact(admin, other["id"], email=desk.contact["email"])
    config = mail_settings(settings, mail_listen_protocol="lmtp")
    async with listening(db, config) as port, sending(db, config):
        refused = await smtp_send(
            port, message("gone@co.example", "Help", "x"), to=(DESK, "help@desk.example"), lmtp=True
        )
        assert refused == {}  # both recipients accepted
        await smtp_send(port, message(desk.contact["email"], "Help", "y"), lmtp=True)

        async def held() -> list[dict[str, Any]]:
            return (await admin.get("/v1/mail/outbound", params={"status": "held"})).json()["items"]

        [answer] = await until(held)
    stored = await _inbound(db)
    assert [(r.reason, r.entitlement_reasons, r.source) for r in stored] == [
        ("not_entitled", ["contact_inactive"], "lmtp"),
        ("ambiguous_sender", [], "lmtp"),
    ]
    assert stored[0].envelope_to == [DESK, "help@desk.example"]
    assert (answer["kind"], answer["to_address"]) == ("not_entitled", "gone@co.example")
    assert "no longer registered to raise tickets" in answer["text"]


async def test_staff_accept_a_rejected_message(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings
) -> None:
    desk = await _desk(admin)
    async with listening(db, mail_settings(settings)) as port:
        await smtp_send(port, message("newhire@co.example", "Access please", "I am new."))
    [rejected] = await _rejected(admin, reason="unknown_sender")
    url = f"/v1/mail/rejected/{rejected['id']}/accept"
    missing = await admin.post(url, json={"override_reason": "Confirmed by phone"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "body.contact_id"
    contact = await create_contact(
        admin, desk.org["id"], email="newhire@co.example", role="end_user"
    )
    accepted = await admin.post(
        url,
        json={"override_reason": "Their admin asked by phone", "contact_id": contact["id"],
              "severity": "low"},
    )  # fmt: skip
    assert accepted.status_code == 201, accepted.text
    body = accepted.json()
    assert body["status"] == "ticket" and body["override_reason"] == "Their admin asked by phone"
    ticket = (await admin.get(f"/v1/tickets/{body['ticket_id']}")).json()
    assert datetime.fromisoformat(ticket["received_at"]) == datetime.fromisoformat(
        rejected["received_at"]
    )
    assert (ticket["entitled"], ticket["override_reason"], ticket["severity"]) == (
        False,
        "Their admin asked by phone",
        "low",
    )
    assert ticket["entitlement_reasons"] == ["contact_not_authorized"]
    again = await admin.post(url, json={"override_reason": "x", "contact_id": contact["id"]})
    assert again.status_code == 409
    assert await _rejected(admin) == []


async def test_a_bounce_fails_the_message_and_notes_the_ticket(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    desk = await _desk(admin)
    config = mail_settings(settings, smtp_url=relay.url)
    async with listening(db, config) as port, sending(db, config):
        await smtp_send(port, message(desk.contact["email"], "Help", "x"))
        ticket = (await admin.get("/v1/tickets")).json()["items"][0]
        await act(admin, ticket["id"], "reply", body="On it.")
        [ours] = await relay.wait_for(1)
        dsn = _dsn(ours["Message-ID"], desk.contact["email"])
        await smtp_send(port, dsn, mail_from="<>")
    [sent] = (await admin.get("/v1/mail/outbound")).json()["items"]
    assert (sent["status"], sent["reason"]) == ("failed", "bounced")
    assert "5.1.1" in sent["last_error"]
    bounce = (await _inbound(db))[-1]
    assert (bounce.reason, str(bounce.ticket_id)) == ("bounce", ticket["id"])
    notes = [
        e
        for e in (await admin.get(f"/v1/tickets/{ticket['id']}/timeline")).json()["items"]
        if e["kind"] == "noted"
    ]
    assert len(notes) == 1 and not notes[0]["public"] and "bounced" in notes[0]["body"]
    assert len(relay.received) == 1  # no answer to a bounce


async def test_a_bounce_that_comes_back_before_the_send_is_recorded_stays(
    db: AsyncEngine, admin: httpx.AsyncClient, settings: Settings, relay: Relay
) -> None:
    # A relay may bounce a message at once, and a busy sender records the relay's
    # acceptance a moment later: that late "sent" must not undo the bounce (CI saw it).
    import uuid

    from app.workers.mail_sender import Job, Result

    desk = await _desk(admin)
    config = mail_settings(settings, smtp_url=relay.url)
    async with listening(db, config) as port, sending(db, config) as sender:
        await smtp_send(port, message(desk.contact["email"], "Help", "x"))
        ticket = (await admin.get("/v1/tickets")).json()["items"][0]
        await act(admin, ticket["id"], "reply", body="On it.")
        [ours] = await relay.wait_for(1)
        await until(lambda: _outbound_status(admin, "sent"))
        # Back to the moment the relay had accepted it and the sender had not said so.
        token = uuid.uuid4()
        await execute(
            db,
            "UPDATE mail_outbound SET status = 'pending', sent_at = NULL,"
            " lease_token = :t, locked_until = now() + interval '1 minute'"
            " WHERE message_id = :m",
            t=token,
            m=ours["Message-ID"],
        )
        [row] = await rows(
            db,
            "SELECT id, from_address, to_address FROM mail_outbound WHERE lease_token = :t",
            t=token,
        )
        await smtp_send(port, _dsn(ours["Message-ID"], desk.contact["email"]), mail_from="<>")
        await until(lambda: _outbound_status(admin, "failed"))
        job = Job(row.id, token, False, row.from_address, row.to_address, b"")
        await sender._record(job, Result(attempt_id=uuid.uuid4(), started_at=datetime.now(UTC)))
    [sent] = (await admin.get("/v1/mail/outbound")).json()["items"]
    assert (sent["status"], sent["reason"]) == ("failed", "bounced")
    [recorded] = await rows(
        db, "SELECT attempt_count, lease_token FROM mail_outbound WHERE id = :i", i=row.id
    )
    # The attempt is still recorded (its count moved on) and the lease is given back.
    assert recorded.attempt_count == 2 and recorded.lease_token is None


async def _outbound_status(admin: httpx.AsyncClient, status: str) -> bool:
    items = (await admin.get("/v1/mail/outbound")).json()["items"]
    return bool(items) and items[0]["status"] == status


def _dsn(original_id: str, recipient: str) -> bytes:
    boundary = "dsn-boundary"
    return (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example>\r\n"
        f"To: {DESK}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <dsn.1@mx.example>\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        f"\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: {original_id}\r\nSubject: whatever\r\n"
        f"\r\n--{boundary}--\r\n"
    ).encode()
