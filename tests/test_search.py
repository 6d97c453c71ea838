"""Search: tickets by their words (stemmed in their language, ranked, combined with every
filter), organizations by name or external reference, contacts by e-mail across
organizations. Internal notes are never found with a customer key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.domain.vocab import LANGUAGES
from app.models.search import SEARCH_CONFIGS
from app.security import Role
from app.services import search
from tests.conftest import client_for, make_key
from tests.factories import create_contact, create_org
from tests.plan_factories import create_contract
from tests.ticket_factories import Desk, act, make_desk, open_ticket


async def _numbers(api: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await api.get("/v1/tickets", params=params)
    assert response.status_code == 200, response.text
    return [t["number"] for t in response.json()["items"]]


async def _spanish_desk(admin: httpx.AsyncClient) -> Desk:
    desk = await make_desk(admin)
    spanish = await create_org(admin, locale="es-MX")
    contact = await create_contact(admin, spanish["id"])
    contract = await create_contract(admin, spanish["id"], desk.plan["id"], starts_on="2025-01-01")
    return Desk(desk.calendar, desk.plan, spanish, contact, contract)


async def test_a_ticket_is_found_by_its_description_and_its_public_replies(
    admin: httpx.AsyncClient, app: Any, db: AsyncEngine
) -> None:
    desk = await make_desk(admin)
    vpn = await open_ticket(
        admin, desk, subject="Remote access", description="The VPN tunnel drops every hour."
    )
    other = await open_ticket(admin, desk, subject="Invoices", description="Totals are wrong.")
    # English stemming: "dropping" finds "drops", "tunnels" finds "tunnel".
    assert await _numbers(admin, q="dropping tunnels") == [vpn["number"]]
    assert await _numbers(admin, q="invoice") == [other["number"]]

    await act(admin, vpn["id"], "reply", body="Please send the firewall logs.")
    await act(admin, vpn["id"], "note", body="Suspect the Fortinet appliance.")
    assert await _numbers(admin, q="firewall") == [vpn["number"]]
    # Staff find internal notes too…
    assert await _numbers(admin, q="fortinet") == [vpn["number"]]
    key = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"])
    async with client_for(app, key) as customer:
        # …a customer key never does, alone or combined with public words.
        assert await _numbers(customer, q="fortinet") == []
        assert await _numbers(customer, q="fortinet or invoices") == [other["number"]]
        assert await _numbers(customer, q="firewall") == [vpn["number"]]
        await act(customer, vpn["id"], "customer_reply", body="Logs attached from the Cisco box.")
        assert await _numbers(customer, q="cisco") == [vpn["number"]]

    # Web search syntax: a phrase, a negation.
    assert await _numbers(admin, q='"tunnel drops"') == [vpn["number"]]
    assert await _numbers(admin, q='"drops tunnel"') == []
    assert await _numbers(admin, q="hour -firewall") == []

    # An edit of the subject or description is searchable at once; the old words are gone,
    # the conversation stays.
    edited = await admin.patch(f"/v1/tickets/{other['id']}", json={"description": "VAT missing"})
    assert edited.status_code == 200, edited.text
    assert await _numbers(admin, q="totals") == []
    assert await _numbers(admin, q="vat") == [other["number"]]
    await admin.patch(f"/v1/tickets/{vpn['id']}", json={"subject": "Remote desktop"})
    assert await _numbers(admin, q="desktop firewall") == [vpn["number"]]


async def test_spanish_tickets_are_stemmed_in_spanish(admin: httpx.AsyncClient) -> None:
    desk = await _spanish_desk(admin)
    ticket = await open_ticket(
        admin,
        desk,
        subject="Facturación",
        description="Las facturas electrónicas no se generan desde el lunes.",
    )
    await act(admin, ticket["id"], "reply", body="Estamos revisando los certificados.")
    # Spanish stems: "factura" finds "facturas", "generar" finds "generan", "certificado"
    # finds "certificados"; Spanish stop words ("las", "desde") match nothing.
    assert await _numbers(admin, q="factura generar") == [ticket["number"]]
    assert await _numbers(admin, q="certificado") == [ticket["number"]]
    assert await _numbers(admin, q="desde") == []
    # An English ticket with the same word is stemmed as English and still found by it.
    english = await make_desk(admin)
    vat = await open_ticket(admin, english, description="Certificates expired.")
    assert await _numbers(admin, q="certificate") == [vat["number"]]


async def test_every_language_has_its_text_search_configuration(db: AsyncEngine) -> None:
    async with db.connect() as conn:
        for language in LANGUAGES:
            for locale in (language, f"{language}-MX"):
                config = await conn.scalar(
                    text("SELECT sladesk_search_config(:l)::text"), {"l": locale}
                )
                assert config in SEARCH_CONFIGS and config != "simple", locale
        assert await conn.scalar(text("SELECT sladesk_search_config('fr')::text")) == "simple"


async def test_search_is_ranked_combines_with_filters_and_pages(
    admin: httpx.AsyncClient, app: Any, db: AsyncEngine
) -> None:
    desk = await make_desk(admin)
    # Best match: the word in the subject (weight A) and the description; then description
    # only; then conversation only.
    strong = await open_ticket(admin, desk, subject="Printer jam", description="Printer stuck.")
    medium = await open_ticket(admin, desk, subject="Office", description="The printer is slow.")
    weak = await open_ticket(admin, desk, subject="Other", description="Nothing.")
    await act(admin, weak["id"], "reply", body="Is a printer involved?")
    await open_ticket(admin, desk, subject="Scanner", description="Unrelated.")
    ranked = await _numbers(admin, q="printer")
    assert ranked == [strong["number"], medium["number"], weak["number"]]

    # Pages of one walk the same order, each ticket once.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "printer", "limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await admin.get("/v1/tickets", params=params)).json()
        seen += [t["number"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ranked

    # Every filter still applies, and another sort may be asked for.
    await act(admin, medium["id"], "escalate", to_tier=2)
    assert await _numbers(admin, q="printer", tier=2) == [medium["number"]]
    assert await _numbers(admin, q="printer", status="in_progress") == [weak["number"]]
    assert await _numbers(admin, q="printer", status=["new", "in_progress"], tier=1) == [
        strong["number"],
        weak["number"],
    ]
    newest = await _numbers(admin, q="printer", sort="-received_at")
    assert newest == [weak["number"], medium["number"], strong["number"]]
    other = await make_desk(admin)
    theirs = await open_ticket(admin, other, subject="Printer", description="Printer.")
    assert await _numbers(admin, q="printer", organization_id=other.org["id"]) == [theirs["number"]]
    # A customer key: its own organization only, whatever it asks for.
    key = await make_key(db, Role.CUSTOMER, organization_id=desk.org["id"])
    async with client_for(app, key) as customer:
        assert theirs["number"] not in await _numbers(customer, q="printer")
        assert await _numbers(customer, q="printer", organization_id=other.org["id"]) == []

    bad = await admin.get("/v1/tickets", params={"sort": "relevance"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.sort"
    nul = await admin.get("/v1/tickets", params={"q": "a\x00b"})
    assert nul.status_code == 422


async def test_organizations_by_name_or_external_ref_and_contacts_by_email(
    admin: httpx.AsyncClient, app: Any, db: AsyncEngine
) -> None:
    acme = await create_org(admin, name="Acme Corporation", external_ref="CRM-0042")
    await create_org(admin, name="Acme Labs Mexico", external_ref="CRM-0043")
    await create_org(admin, name="Globex")

    async def names(**params: str) -> list[str]:
        response = await admin.get("/v1/organizations", params=params)
        assert response.status_code == 200, response.text
        return [o["name"] for o in response.json()["items"]]

    assert await names(q="acme") == ["Acme Corporation", "Acme Labs Mexico"]
    assert await names(q="ACME lab") == ["Acme Labs Mexico"]  # the last word as a prefix
    assert await names(q="corp") == ["Acme Corporation"]
    assert await names(q="initech") == []
    assert await names(q="'&|!:*") == []  # no word at all: nothing, never an error
    assert await names(external_ref="CRM-0042") == ["Acme Corporation"]
    assert await names(external_ref="crm-0042") == []
    assert await names(q="acme", external_ref="CRM-0043") == ["Acme Labs Mexico"]

    one = await create_contact(admin, acme["id"], email="Pat@Example.com")
    globex = (await admin.get("/v1/organizations", params={"q": "globex"})).json()["items"][0]
    two = await create_contact(admin, globex["id"], email="pat@example.com")
    await create_contact(admin, globex["id"], email="someone@example.com")
    found = await admin.get("/v1/contacts", params={"email": "PAT@example.COM"})
    assert found.status_code == 200, found.text
    assert [c["id"] for c in found.json()["items"]] == [one["id"], two["id"]]
    assert {c["organization_id"] for c in found.json()["items"]} == {acme["id"], globex["id"]}

    key = await make_key(db, Role.CUSTOMER, organization_id=acme["id"])
    async with client_for(app, key) as customer:
        refused = await customer.get("/v1/contacts", params={"email": "pat@example.com"})
        assert refused.status_code == 403
        mine = await customer.get("/v1/organizations", params={"q": "acme"})
        assert [o["name"] for o in mine.json()["items"]] == ["Acme Corporation"]


async def test_a_broad_search_ranks_its_most_recent_matches(
    admin: httpx.AsyncClient, monkeypatch: Any
) -> None:
    """Relevance is computed over the newest RANKED_WINDOW matches (all of them when fewer
    match); sorting by receipt pages through every match."""
    monkeypatch.setattr(search, "RANKED_WINDOW", 3)
    desk = await make_desk(admin)
    base = datetime.now(UTC) - timedelta(days=1)
    # The oldest is the best match (the word in its subject and description).
    numbers = [
        (
            await open_ticket(
                admin,
                desk,
                subject="Modem modem" if n == 0 else f"Ticket {n}",
                description="modem" if n in (0, 3) else "The modem again.",
                received_at=(base + timedelta(minutes=n)).isoformat(),
            )
        )["number"]
        for n in range(5)
    ]
    ranked = await _numbers(admin, q="modem")
    assert sorted(ranked) == sorted(numbers[2:])  # the three most recent matches
    assert numbers[0] not in ranked
    assert await _numbers(admin, q="modem", sort="-received_at") == numbers[::-1]
    assert await _numbers(admin, q="modem", sort="received_at") == numbers


async def test_a_status_filter_follows_every_change_of_status(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    """A ranked search filtered by status reads the status ``ticket_search`` keeps beside
    the text (migration 0014): it follows every action in the transaction that makes it."""
    desk = await make_desk(admin)
    ticket = await open_ticket(admin, desk, subject="Gateway", description="Gateway down.")
    bystander = await open_ticket(admin, desk, subject="Gateway", description="Gateway slow.")

    async def by_status(status: str) -> list[str]:
        return await _numbers(admin, q="gateway", status=status)

    async def copies_agree() -> None:
        async with db.connect() as conn:
            differing = await conn.scalar(
                text(
                    "SELECT count(*) FROM tickets t JOIN ticket_search s ON s.ticket_id = t.id"
                    " WHERE s.status IS DISTINCT FROM t.status"
                )
            )
        assert differing == 0

    assert sorted(await by_status("new")) == sorted([ticket["number"], bystander["number"]])
    for action, body, status in [
        ("reply", {"body": "Looking at the gateway."}, "in_progress"),
        ("request_info", {"body": "Which gateway?"}, "waiting_on_customer"),
        ("customer_reply", {"body": "The gateway in Lima."}, "in_progress"),
        ("resolve", {"resolution": "fix", "body": "Restarted."}, "resolved"),
        ("reopen", {"body": "Down again."}, "in_progress"),
        ("close", {"reason": "other"}, "closed"),
    ]:
        before = (await admin.get(f"/v1/tickets/{ticket['id']}")).json()["status"]
        await act(admin, ticket["id"], action, **body)
        assert await by_status(status) == [ticket["number"]], action
        if before != status:
            assert ticket["number"] not in await by_status(before), action
        await copies_agree()
    assert await by_status("new") == [bystander["number"]]


async def test_a_query_is_parsed_once_per_configuration_and_never_read_as_sql(
    admin: httpx.AsyncClient, db: AsyncEngine
) -> None:
    desk = await make_desk(admin)
    quoted = await open_ticket(
        admin, desk, subject="Quotes", description="The user's $q$ macro and it's 100% broken."
    )
    # Every character the tsquery literal could be broken by, in the query itself.
    for q in ["user's", "$q$ macro", "'$q$'::tsquery --", "user\\'s", "$q1$ $q$q$"]:
        response = await admin.get("/v1/tickets", params={"q": q})
        assert response.status_code == 200, (q, response.text)
    assert await _numbers(admin, q="user's macro") == [quoted["number"]]
    assert await _numbers(admin, q="macro -broken") == []
    # Only stop words in every language: nothing matches (and nothing fails).
    assert await _numbers(admin, q="the and") == []

    async with db.connect() as conn, AsyncSession(bind=conn) as session:
        parsed = await search.parse(session, "printer")
        stop = await search.parse(session, "the")
    # `printer` is the same word to English and `simple`: they share one match (one GIN
    # scan); Spanish stems it to `print`.
    assert parsed["english"] == parsed["simple"] == "'printer'"
    assert parsed["spanish"] == "'print'"
    queries = search._queries(parsed)
    assert sorted(sorted(names) for names, _ in queries) == [["english", "simple"], ["spanish"]]
    # An English stop word is no query in English: that configuration is not matched at all.
    assert stop["english"] == "" and stop["simple"] == "'the'"
    assert "english" not in [n for names, _ in search._queries(stop) for n in names]
