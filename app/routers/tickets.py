"""/v1/tickets: intake, reading with live SLA clocks, actions, timeline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query
from fastapi.responses import Response

from app.db import SessionDep, read_only
from app.domain.lifecycle import Action
from app.domain.vocab import Severity, TicketStatus
from app.errors import invalid_field
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import NO_NUL, Instant, problems
from app.schemas.tickets import (
    ACTION_BODIES,
    ActionBase,
    TicketCreate,
    TicketEventRead,
    TicketRead,
    TicketUpdate,
)
from app.security import AnyKey, StaffKey
from app.services import intake, ticket_actions, tickets

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])

IfMatch = Annotated[
    str | None,
    Header(description="ETag of the version you read; 412 if the ticket changed since"),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        description="retries with the same key and body return the first response",
    ),
]


def _now() -> datetime:
    return datetime.now(UTC)


def _with_etag(view: TicketRead, status_code: int = 200, **headers: str) -> Response:
    # Serialized once, straight to JSON bytes by pydantic (not to a dict for json.dumps).
    return Response(
        _TO_JSON(view),
        status_code=status_code,
        headers={"ETag": f'"{view.version}"', **headers},
        media_type="application/json",
    )


_TO_JSON = TicketRead.__pydantic_serializer__.to_json


@router.post(
    "",
    status_code=201,
    response_model=TicketRead,
    responses=problems(404, 409),
)
async def create_ticket(
    data: TicketCreate,
    session: SessionDep,
    principal: AnyKey,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Take a request from any channel. The customer's entitlement is checked (a refusal is
    a 422 `entitlement-denied` listing the `reasons`; staff may accept it anyway with
    `override_reason`), the SLA clocks start at `received_at`, and `ticket.created` is
    published. With `Idempotency-Key`, a retry returns the first response (a different
    body with the same key is a 409)."""
    view, replayed = await intake.create_ticket(
        session, principal, data, idempotency_key=idempotency_key, now=_now()
    )
    headers = {"Location": f"/v1/tickets/{view.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _with_etag(view, 201, **headers)


@router.get("", response_model=Page[TicketRead])
async def list_tickets(
    session: SessionDep,
    principal: AnyKey,
    status: Annotated[list[TicketStatus] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    organization_id: uuid.UUID | None = None,
    assignee_id: uuid.UUID | None = None,
    tier: Annotated[int | None, Query(ge=1, le=4)] = None,
    breached: bool | None = Query(default=None, description="any clock breached (now or before)"),
    due_before: Annotated[
        Instant | None, Query(description="a running clock is due before this instant")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=500,
            pattern=NO_NUL,
            description="words of the subject, description or conversation (web search "
            'syntax: `vpn timeout`, `"exact phrase"`, `vpn or proxy`, `vpn -office`); '
            "stemmed in each ticket's language. Customer keys never match internal notes.",
        ),
    ] = None,
    sort: Annotated[
        str | None,
        Query(
            pattern="^(received_at|-received_at|next_due|relevance)$",
            description="`-received_at` (newest first; the default without `q`), "
            "`received_at`, `next_due` (only tickets with a running timed clock, earliest "
            "due first), or `relevance` (best match first; the default with `q`)",
        ),
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[TicketRead]:
    """Tickets, filtered; every filter combines with `q` and with the others. Customer
    keys see their own organization's only."""
    if sort is None:
        sort = "relevance" if q is not None else "-received_at"
    elif sort == "relevance" and q is None:
        raise invalid_field("query.sort", "relevance needs q (the words to rank by)")
    items, next_cursor = await tickets.list_tickets(
        session,
        principal,
        now=_now(),
        cursor=cursor,
        limit=limit,
        status=status or (),
        severity=[s.value for s in severity or ()],
        organization_id=organization_id,
        assignee_id=assignee_id,
        tier=tier,
        breached=breached,
        due_before=due_before,
        q=q,
        sort=sort,
    )
    return Page(items=items, next_cursor=next_cursor)


@router.get("/{ticket_id}", response_model=TicketRead, responses=problems(404))
@read_only  # the key, then one statement: no transaction to begin or commit
async def get_ticket(ticket_id: uuid.UUID, session: SessionDep, principal: AnyKey) -> Response:
    """The ticket with its SLA clocks read now (reading never changes the ticket)."""
    _, view = await tickets.get_ticket(session, principal, ticket_id, _now())
    return _with_etag(view)


@router.patch("/{ticket_id}", response_model=TicketRead, responses=problems(404, 412))
async def update_ticket(
    ticket_id: uuid.UUID,
    data: TicketUpdate,
    session: SessionDep,
    principal: StaffKey,
    if_match: IfMatch = None,
) -> Response:
    """Edit the subject or description (severity and category change through the `change`
    action, which re-applies the SLA targets)."""
    now = _now()
    ticket = await tickets.update_ticket(
        session, principal, ticket_id, data, if_match=if_match, now=now
    )
    return _with_etag(await tickets.read_ticket(session, principal, ticket, now))


@router.get("/{ticket_id}/timeline", response_model=Page[TicketEventRead], responses=problems(404))
async def timeline(
    ticket_id: uuid.UUID,
    session: SessionDep,
    principal: AnyKey,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[TicketEventRead]:
    """Every event in order with its actor, `occurred_at` and `recorded_at` (customer keys
    do not see internal notes)."""
    items, next_cursor = await tickets.timeline(
        session, principal, ticket_id, cursor=cursor, limit=limit
    )
    return Page(items=items, next_cursor=next_cursor)


_ACTION_DOCS: dict[Action, str] = {
    Action.ASSIGN: "Assign an agent: `new` becomes `open`; the `acknowledged` event carries "
    "the current due times.",
    Action.REPLY: "A public agent reply; the first one stops the `first_response` clock.",
    Action.NOTE: "An internal note, never shown to customer keys.",
    Action.REQUEST_INFO: "Ask the customer: `waiting_on_customer`; the plan's `pause_on` "
    "clocks pause. Counts as contact attempt 1.",
    Action.CONTACT_ATTEMPT: "Another unanswered attempt to reach the customer; reaching the "
    "plan's `auto_close.contact_attempts` schedules the auto-close (seed 004).",
    Action.CUSTOMER_REPLY: "The customer answered (customer key, or an agent logging it): "
    "from `waiting_on_customer` back to `in_progress`, paused clocks resume, contact "
    "attempts and a pending auto-close are cleared.",
    Action.ESCALATE: "Move to tier 1-4; tier 4 (the product vendor) needs `vendor` and "
    "`vendor_case_ref` and waits on the vendor; going down needs a `reason`.",
    Action.CHANGE: "Change severity and/or category: the matching targets are chosen again, "
    "elapsed business time is kept.",
    Action.CALLBACK: "The customer was called back: stops the `callback` clock.",
    Action.RESOLVE: "Resolved with a fix, a workaround or another solution (seed 003); "
    "stops every clock still running (a resolution is also a response).",
    Action.CONFIRM: "The customer validates the resolution: `closed` (`confirmed`).",
    Action.REOPEN: "Back to `in_progress` from `resolved`, or from `closed` as duplicate, out "
    "of scope or other; the resolution clock continues with its elapsed time. A ticket closed "
    "for no response (or confirmed) cannot be reopened: open a new one that follows it up.",
    Action.CLOSE: "An agent closes: `duplicate`, `out_of_scope`, `no_response` or `other`.",
}


def _action_route(action: Action, model: type[ActionBase]) -> None:
    # Actions whose fields are all optional (confirm, callback) may be sent without a body.
    optional = not any(f.is_required() for f in model.model_fields.values())

    async def endpoint(
        ticket_id: uuid.UUID,
        session: SessionDep,
        principal: AnyKey,
        body: Annotated[Any, Body()],
        if_match: IfMatch = None,
    ) -> Response:
        now = _now()
        view = await ticket_actions.perform_and_read(
            session, principal, ticket_id, action, body or model(), if_match=if_match, now=now
        )
        return _with_etag(view)

    if optional:
        endpoint.__annotations__["body"] = Annotated[model | None, Body()]
        endpoint.__defaults__ = (None, None)
    else:
        endpoint.__annotations__["body"] = Annotated[model, Body()]
    router.add_api_route(
        f"/{{ticket_id}}/actions/{action.value}",
        endpoint,
        methods=["POST"],
        response_model=TicketRead,
        responses=problems(404, 409, 412),
        summary=f"{action.value.replace('_', ' ').capitalize()}",
        description=_ACTION_DOCS[action]
        + " Takes an optional `occurred_at` (default now; never in the future; never before "
        "the ticket's receipt or its latest event recorded by a person). It may precede the "
        "system's own events: warnings and breaches that no longer hold are retracted "
        "(`sla.retracted`), and an auto-close it precedes is withdrawn when the action shows "
        "the customer was no longer awaited.",
        name=f"ticket_{action.value}",
    )


for _action, _model in ACTION_BODIES.items():
    _action_route(_action, _model)
