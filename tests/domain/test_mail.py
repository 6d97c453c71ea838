"""The e-mail channel's pure rules: header facts, threading, loops, authentication
results, routing, notices and retries (no database, no network)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.domain.lifecycle import Action
from app.domain.mail import authresults, delivery, loops, routing, threading
from app.domain.mail.facts import (
    Dsn,
    MessageFacts,
    message_ids,
    parse_delivery_status,
    read_facts,
)
from app.domain.mail.notices import NOTICE_TYPES, Notice, notice_for
from app.domain.mail.routing import NewTicket, Reason, Reject, Reply, SenderContact, ThreadTarget
from app.domain.vocab import Category, ContactRole, Severity, TicketStatus

ORG, OTHER = uuid.uuid4(), uuid.uuid4()
ANA, BOB = uuid.uuid4(), uuid.uuid4()
TICKET = uuid.uuid4()


# --------------------------------------------------------------------------- facts


def test_read_facts_normalizes_addresses_and_ids() -> None:
    facts = read_facts(
        {
            "from": ["Ana <Ana@Client.Example.MX>"],
            "to": ["soporte@desk.example, Other <x@Y.example>"],
            "cc": ["x@y.example"],
            "message-id": ["<abc@client.example.mx>"],
            "in-reply-to": ["<p1@desk.example>"],
            "references": ["<r1@a> <r2@b>", "<p1@desk.example>"],
            "auto-submitted": ["Auto-Replied; owner-email=x@y"],
            "x-auto-response-suppress": ["OOF, DR"],
            "return-path": ["<>"],
        }
    )
    assert facts.from_address == "ana@client.example.mx" and facts.from_name == "Ana"
    assert facts.from_domain == "client.example.mx"
    assert facts.to == ("soporte@desk.example", "x@y.example")
    assert facts.message_id == "<abc@client.example.mx>"
    assert facts.thread_ids == ("<p1@desk.example>", "<r2@b>", "<r1@a>")
    assert facts.auto_submitted == "auto-replied"
    assert facts.suppress_auto_response is True
    assert facts.envelope_from == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b> <c@d>", ("<a@b>", "<c@d>")),
        ("a@b", ("<a@b>",)),
        ("<a@b> <a@b>", ("<a@b>",)),
        ("", ()),
        ("garbage", ()),
    ],
)
def test_message_ids(value: str, expected: tuple[str, ...]) -> None:
    assert message_ids(value) == expected


def test_a_delivery_status_notification_names_the_first_recipient() -> None:
    dsn = parse_delivery_status(
        "Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; Ana@X.example\n"
        "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1\n  user unknown\n",
        "<ours@desk.example>",
    )
    assert dsn == Dsn(
        "<ours@desk.example>", "failed", "5.1.1", "ana@x.example", "smtp; 550 5.1.1 user unknown"
    )
    assert dsn.failed
    assert not parse_delivery_status("Final-Recipient: rfc822; a@b\nAction: delayed", None).failed


# ------------------------------------------------------------------------ threading


@pytest.mark.parametrize(
    ("subject", "number"),
    [
        ("Re: [SD-001042] VPN", 1042),
        ("[#1042] VPN", 1042),
        ("RE: AW: [ #SD-001042 ] x", 1042),
        ("[sd-7]", 7),
        ("VPN [draft]", None),
        ("", None),
    ],
)
def test_ticket_token_in_subject(subject: str, number: int | None) -> None:
    assert threading.ticket_number_in(subject) == number


def test_subjects() -> None:
    assert threading.ticket_token(1042) == "[SD-001042]"
    assert (
        threading.clean_subject("Re: Fwd: RV: [SD-000001]  Printer  on fire") == "Printer on fire"
    )
    assert threading.subject_with_token(1, "Hello") == "[SD-000001] Hello"
    assert threading.subject_with_token(1, "Re: [SD-000001] Hello") == "Re: [SD-000001] Hello"


def test_references_keep_the_root_and_end_with_the_parent() -> None:
    ids = [f"<m{n}@x>" for n in range(30)]
    chain = threading.references_for(ids[0], ids, ids[29], limit=12)
    assert chain[0] == ids[0] and chain[-1] == ids[29] and len(chain) == 12
    assert len(set(chain)) == 12
    assert threading.references_for(None, [], "<p@x>") == ("<p@x>",)
    assert threading.references_for(None, [], None) == ()


# ---------------------------------------------------------------------------- loops


def _facts(**fields: object) -> MessageFacts:
    base: dict[str, object] = {"message_id": "<m@x>", "from_address": "ana@x.example"}
    return MessageFacts(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({}, None),
        ({"auto_submitted": "no"}, None),
        ({"auto_submitted": "auto-replied"}, loops.AutoKind.AUTO_REPLY),
        ({"autoreply_header": True}, loops.AutoKind.AUTO_REPLY),
        ({"precedence": "auto_reply"}, loops.AutoKind.AUTO_REPLY),
        ({"envelope_from": ""}, loops.AutoKind.BOUNCE),
        ({"from_address": "MAILER-DAEMON@mx.example"}, loops.AutoKind.BOUNCE),
        ({"dsn": Dsn(None, "failed")}, loops.AutoKind.BOUNCE),
        ({"precedence": "bulk"}, None),  # no ticket rule, only no answer
    ],
)
def test_automatic_kind(fields: dict[str, object], kind: loops.AutoKind | None) -> None:
    assert loops.automatic_kind(_facts(**fields)) is kind


@pytest.mark.parametrize(
    ("fields", "answers", "authenticated", "why"),
    [
        ({}, 0, None, None),
        ({}, 2, True, None),
        ({}, 3, None, loops.NoAnswer.RATE_LIMITED),
        ({"from_address": None}, 0, None, loops.NoAnswer.NO_ADDRESS),
        ({"from_address": "soporte@desk.example"}, 0, None, loops.NoAnswer.OWN_ADDRESS),
        ({"envelope_from": ""}, 0, None, loops.NoAnswer.NOTIFICATION),
        ({"from_address": "postmaster@x.example"}, 0, None, loops.NoAnswer.NOTIFICATION),
        ({"auto_submitted": "auto-generated"}, 0, None, loops.NoAnswer.AUTOMATIC),
        ({"precedence": "junk"}, 0, None, loops.NoAnswer.BULK),
        ({"precedence": "list"}, 0, None, loops.NoAnswer.BULK),
        ({"list_id": "<users.lists.x>"}, 0, None, loops.NoAnswer.MAILING_LIST),
        ({"suppress_auto_response": True}, 0, None, loops.NoAnswer.SUPPRESS_REQUESTED),
        ({}, 0, False, loops.NoAnswer.UNAUTHENTICATED),
    ],
)
def test_why_not_answer(
    fields: dict[str, object], answers: int, authenticated: bool | None, why: object
) -> None:
    found = loops.why_not_answer(
        _facts(**fields),
        own_addresses={"soporte@desk.example"},
        answers_last_hour=answers,
        limit=3,
        authenticated=authenticated,
    )
    assert found is why


# ---------------------------------------------------------------- authentication


def test_authentication_results_parse_comments_and_properties() -> None:
    authserv, results = authresults.parse(
        "MX.Desk.Example 1; spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=bounce@Mail.X.example;"
        ' dkim=pass header.d=x.example header.s="sel;1"; dmarc=none'
    )
    assert authserv == "mx.desk.example"
    assert [(r.method, r.result) for r in results] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "none"),
    ]
    assert results[0].properties["smtp.mailfrom"] == "bounce@mail.x.example"
    assert results[1].properties["header.d"] == "x.example"


@pytest.mark.parametrize(
    ("fields", "passed"),
    [
        (["mx.desk.example; dmarc=pass header.from=x.example"], True),
        (["mx.desk.example; spf=pass smtp.mailfrom=a@mail.x.example; dmarc=none"], True),
        (["mx.desk.example; dkim=pass header.d=x.example"], True),
        (["mx.desk.example; dkim=pass header.i=@sub.x.example"], True),
        (["mx.desk.example; spf=pass smtp.mailfrom=a@evil.example"], False),
        (["mx.desk.example; dkim=pass header.d=evil.example"], False),
        (["mx.desk.example; dkim=pass header.d=x.example; dmarc=fail"], False),
        (["mx.evil.example; dmarc=pass"], False),
        ([], False),
        # The topmost field of our MTA counts (it was added last).
        (["mx.desk.example; dmarc=fail", "mx.desk.example; dmarc=pass"], False),
        (["mx.evil.example; dmarc=fail", "mx.desk.example; dmarc=pass"], True),
    ],
)
def test_authentication_verdict(fields: list[str], passed: bool) -> None:
    assert authresults.verdict(fields, "MX.desk.example", "x.example").passed is passed


def test_alignment_is_relaxed_without_crossing_organizations() -> None:
    assert authresults.aligned("mail.x.example", "x.example")
    assert authresults.aligned("x.example", "eu.x.example")
    assert not authresults.aligned("notx.example", "x.example")
    assert not authresults.aligned(None, "x.example")


# --------------------------------------------------------------------------- routing


def _route(**fields: object) -> routing.Route:
    base: dict[str, object] = {
        "sender": "ana@x.example",
        "own_address": False,
        "auth": None,
        "automatic": None,
        "too_large": None,
        "thread": None,
        "contacts": [],
        "domain_organizations": [],
        "reply_text": "text",
    }
    return routing.route(**{**base, **fields})  # type: ignore[arg-type]


def _contact(org: uuid.UUID = ORG, role: str = "authorized", active: bool = True) -> SenderContact:
    return SenderContact(ANA, org, ContactRole(role), active)


def _thread(
    status: TicketStatus = TicketStatus.OPEN, domains: frozenset[str] = frozenset()
) -> ThreadTarget:
    return ThreadTarget(TICKET, ORG, status, domains)


def test_a_contact_makes_a_ticket_and_an_end_user_is_refused() -> None:
    assert _route(contacts=[_contact()]) == NewTicket(ORG, ANA)
    # Inactive: the entitlement decision says contact_inactive (it is made on intake).
    assert _route(contacts=[_contact(active=False)]) == NewTicket(ORG, ANA)
    refused = _route(contacts=[_contact(role="end_user")])
    assert isinstance(refused, Reject) and refused.reason is Reason.END_USER
    assert (refused.organization_id, refused.contact_id) == (ORG, ANA)


def test_senders_nobody_knows_or_several_know() -> None:
    unknown = _route()
    assert isinstance(unknown, Reject) and unknown.reason is Reason.UNKNOWN_SENDER
    by_domain = _route(domain_organizations=[ORG])
    assert isinstance(by_domain, Reject) and by_domain.reason is Reason.END_USER
    assert by_domain.organization_id == ORG
    two = _route(contacts=[_contact(), _contact(OTHER)])
    assert isinstance(two, Reject) and two.reason is Reason.AMBIGUOUS_SENDER
    domains = _route(domain_organizations=[ORG, OTHER])
    assert isinstance(domains, Reject) and domains.reason is Reason.AMBIGUOUS_SENDER


def test_rejections_come_first_in_order() -> None:
    fail = authresults.AuthVerdict(False, "dmarc=fail")
    cases = [
        ({"sender": None}, Reason.INVALID),
        ({"own_address": True, "contacts": [_contact()]}, Reason.LOOP),
        (
            {"auth": fail, "contacts": [_contact()], "automatic": loops.AutoKind.BOUNCE},
            Reason.UNAUTHENTICATED,
        ),
        ({"auth": fail}, Reason.UNKNOWN_SENDER),  # a stranger stays a stranger
        ({"automatic": loops.AutoKind.AUTO_REPLY, "contacts": [_contact()]}, Reason.AUTO_REPLY),
        ({"too_large": "the file x is 9 MB", "contacts": [_contact()]}, Reason.TOO_LARGE),
    ]
    for fields, reason in cases:
        found = _route(**fields)
        assert isinstance(found, Reject) and found.reason is reason, (fields, found)
    passed = authresults.AuthVerdict(True, "dmarc=pass")
    assert _route(auth=passed, contacts=[_contact()]) == NewTicket(ORG, ANA)


@pytest.mark.parametrize(
    ("status", "text", "action"),
    [
        (TicketStatus.NEW, "more", Action.CUSTOMER_REPLY),
        (TicketStatus.WAITING_ON_CUSTOMER, "here", Action.CUSTOMER_REPLY),
        (TicketStatus.WAITING_ON_VENDOR, "any news?", Action.CUSTOMER_REPLY),
        (TicketStatus.RESOLVED, "Confirmo, gracias", Action.CONFIRM),
        (TicketStatus.RESOLVED, "CONFIRM.", Action.CONFIRM),
        (TicketStatus.RESOLVED, "I cannot confirm, it fails", Action.REOPEN),
    ],
)
def test_replies_by_status(status: TicketStatus, text: str, action: Action) -> None:
    assert _route(thread=_thread(status), contacts=[_contact()], reply_text=text) == Reply(
        TICKET, ORG, action, ANA
    )


def test_replies_of_the_organization_only() -> None:
    # A colleague of the customer's domain who is no contact may reply.
    colleague = _route(sender="bob@x.example", thread=_thread(domains=frozenset({"x.example"})))
    assert colleague == Reply(TICKET, ORG, Action.CUSTOMER_REPLY, None)
    # A contact of both organizations: the thread says which.
    both = _route(thread=_thread(), contacts=[_contact(OTHER), _contact()])
    assert both == Reply(TICKET, ORG, Action.CUSTOMER_REPLY, ANA)
    # Someone else with the token is routed as a new message of their own.
    outsider = _route(
        thread=_thread(), contacts=[SenderContact(BOB, OTHER, ContactRole.AUTHORIZED, True)]
    )
    assert outsider == NewTicket(OTHER, BOB)
    # A deactivated contact (personnel change) no longer acts on the ticket.
    gone = _route(thread=_thread(), contacts=[_contact(active=False)])
    assert gone == NewTicket(ORG, ANA)


def test_a_reply_to_a_closed_ticket_is_a_follow_up_ticket() -> None:
    closed = _thread(TicketStatus.CLOSED)
    assert _route(thread=closed, contacts=[_contact()]) == NewTicket(ORG, ANA, TICKET)
    assert _route(thread=closed, contacts=[_contact(OTHER), _contact()]) == NewTicket(
        ORG, ANA, TICKET
    )


def test_email_defaults() -> None:
    assert routing.email_defaults(None, None) == (Severity.MEDIUM, Category.OTHER)
    plan = {"severity": "critical", "category": "technical"}
    assert routing.email_defaults(None, plan) == (Severity.CRITICAL, Category.TECHNICAL)
    assert routing.email_defaults({"severity": "low", "category": None}, plan) == (
        Severity.LOW,
        Category.TECHNICAL,
    )


# --------------------------------------------------------------------------- notices


@pytest.mark.parametrize(
    ("event_type", "data", "notice"),
    [
        ("ticket.acknowledged", {}, Notice.ACKNOWLEDGED),
        ("ticket.replied", {"event": {"kind": "replied"}}, Notice.REPLY),
        ("ticket.replied", {"event": {"kind": "info_requested"}}, Notice.INFO_REQUESTED),
        ("ticket.contact_attempted", {}, Notice.CONTACT_ATTEMPT),
        ("ticket.resolved", {}, Notice.RESOLVED),
        ("ticket.closed", {"ticket": {"close_reason": "no_response"}}, Notice.AUTO_CLOSED),
        ("ticket.closed", {"ticket": {"close_reason": "confirmed"}}, Notice.CLOSED),
        ("authorization.required", {}, Notice.AUTHORIZATION_REQUIRED),
        ("mail.rejected", {"mail": {"reason": "end_user"}}, Notice.REFUSED),
        ("mail.rejected", {"mail": {"reason": "unknown_sender"}}, Notice.REFUSED),
        ("mail.rejected", {"mail": {"reason": "not_entitled"}}, Notice.NOT_ENTITLED),
        ("mail.rejected", {"mail": {"reason": "too_large"}}, Notice.TOO_LARGE),
        ("mail.rejected", {"mail": {"reason": "auto_reply"}}, None),
        ("mail.rejected", {"mail": {"reason": "unauthenticated"}}, None),
        ("ticket.created", {}, None),
        ("ticket.customer_replied", {}, None),
        ("sla.breached", {}, None),
        ("ticket.auto_close_scheduled", {}, None),  # the contact attempt says it
    ],
)
def test_notice_for(event_type: str, data: dict[str, object], notice: Notice | None) -> None:
    assert notice_for(event_type, data) is notice


def test_the_types_that_may_send_are_catalogue_types() -> None:
    # The composer marks every other type as done without looking (one UPDATE): a misspelt
    # name here would silently swallow that notice.
    from app.events import EVENT_TYPES

    assert NOTICE_TYPES.issubset(EVENT_TYPES)


# -------------------------------------------------------------------------- delivery


def test_retry_schedule() -> None:
    now = datetime(2026, 3, 6, 12, tzinfo=UTC)
    schedule = (timedelta(seconds=30), timedelta(minutes=2))
    assert delivery.next_attempt_at(
        1, now, permanent=False, schedule=schedule, jitter=0
    ) == now + timedelta(seconds=30)
    assert delivery.next_attempt_at(
        2, now, permanent=False, schedule=schedule, jitter=0
    ) == now + timedelta(minutes=2)
    assert delivery.next_attempt_at(3, now, permanent=False, schedule=schedule) is None
    assert delivery.next_attempt_at(1, now, permanent=True, schedule=schedule) is None
    low = delivery.next_attempt_at(1, now, permanent=False, schedule=schedule, u=0.0)
    high = delivery.next_attempt_at(1, now, permanent=False, schedule=schedule, u=0.999)
    assert low == now + timedelta(seconds=27)
    assert high is not None and now + timedelta(seconds=32) < high < now + timedelta(seconds=33)
