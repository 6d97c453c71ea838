"""The monthly statement (`GET /v1/reports/statement`): an organization's billable work
log entries of one month, and the month's totals.

* The month is ``[local midnight of the 1st, local midnight of the next 1st)`` in ``tz``
  (a midnight skipped by a DST change starts the day at the change, as the clock does).
* Lines: the billable entries (``worklogs.billable``), by ``(occurred_at, id)``, one page
  at a time (keyset cursor), each with the client's after-hours request its multiplied
  minutes rely on (services/after_hours.py). Staff keys also get ``agent_id`` and ``note``.
* Totals: one SQL aggregate (:data:`TOTALS`) over the whole month, whatever the page:
  billable entries, raw / charged / after-hours (and unrequested after-hours) minutes, per
  kind and per contract, and
  the non-billable entries (charged 0 by convention) as ``unbilled``.

Both queries read ``ix_worklogs_organization_id_occurred_at``.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, case, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.billing import EntryKind
from app.errors import NotFound, invalid_field
from app.models import CalendarRow, Contract, Organization, Plan
from app.models.billing import AfterHoursRequest, Worklog
from app.models.tickets import Ticket
from app.pagination import keyset, page_of
from app.schemas.common import MAX_YEAR, MIN_YEAR
from app.schemas.statements import (
    AfterHoursRequestRef,
    ContractTotal,
    KindTotal,
    Statement,
    StatementLine,
    StatementTotals,
    Unbilled,
)
from app.security import Principal
from app.services import csv_export
from app.services.tickets import display_number

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")

# GROUPING(kind) = 0: a kind's row; GROUPING(contract_id) = 0: a contract's row; both 1:
# the month. A contract row is kept only when it has billable entries.
TOTALS = """
SELECT GROUPING(w.kind) AS all_kinds, GROUPING(w.contract_id) AS all_contracts,
    w.kind, w.contract_id,
    count(*) FILTER (WHERE w.billable) AS entries,
    COALESCE(sum(w.minutes) FILTER (WHERE w.billable), 0) AS minutes,
    COALESCE(sum(w.charged_minutes) FILTER (WHERE w.billable), 0) AS charged_minutes,
    round(COALESCE(sum(w.charged_minutes) FILTER (WHERE w.billable), 0) / 60.0, 2)
        AS charged_hours,
    COALESCE(sum(w.after_hours_minutes) FILTER (WHERE w.billable), 0) AS after_hours_minutes,
    COALESCE(sum(w.unrequested_minutes) FILTER (WHERE w.billable), 0) AS unrequested_minutes,
    count(*) FILTER (WHERE NOT w.billable) AS unbilled_entries,
    COALESCE(sum(w.minutes) FILTER (WHERE NOT w.billable), 0) AS unbilled_minutes
FROM worklogs w
WHERE w.organization_id = :org AND w.occurred_at >= :from_ AND w.occurred_at < :to
GROUP BY GROUPING SETS ((), (w.kind), (w.contract_id))
HAVING GROUPING(w.contract_id) = 1 OR count(*) FILTER (WHERE w.billable) > 0
ORDER BY all_kinds, all_contracts, w.kind, w.contract_id NULLS LAST"""


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True)
class Month:
    label: str
    tz: str
    from_: datetime
    to: datetime


def month_of(month: str, tz: str) -> Month:
    """``[from, to)`` of ``month`` (YYYY-MM) in ``tz``, as UTC instants; 422 when invalid."""
    found = _MONTH.fullmatch(month)
    if found is None:
        raise invalid_field("query.month", "must be a month as YYYY-MM, e.g. 2026-03")
    year, number = int(found[1]), int(found[2])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise invalid_field("query.month", f"must lie between the years {MIN_YEAR} and {MAX_YEAR}")
    if tz not in _zones():
        raise invalid_field("query.tz", "unknown IANA time zone (e.g. America/Mexico_City)")
    zone = zoneinfo.ZoneInfo(tz)
    after = (year + 1, 1) if number == 12 else (year, number + 1)
    # fold=0: a skipped midnight maps to the instant of the change, a repeated one to its
    # first occurrence: both are the first instant of the local day.
    from_ = datetime(year, number, 1, tzinfo=zone).astimezone(UTC)
    to = datetime(*after, 1, tzinfo=zone).astimezone(UTC)
    return Month(month, tz, from_, to)


async def _organization(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID | None
) -> Organization:
    if organization_id is None:
        if not principal.is_customer or principal.organization_id is None:
            raise invalid_field(
                "query.organization_id", "required with a staff key", "required_for_staff"
            )
        organization_id = principal.organization_id
    principal.ensure_organization(organization_id)
    org = await session.get(Organization, organization_id)
    if org is None:
        raise NotFound("No organization with that id.")
    return org


def lines_statement(
    organization_id: uuid.UUID, month: Month, cursor: str | None, limit: int
) -> Select[Any]:
    """The page query: limit + 1 billable entries after the cursor, by (occurred_at, id)."""
    columns: list[Any] = [
        col(Worklog.id),
        col(Worklog.ticket_id),
        col(Ticket.number).label("ticket_number"),
        col(Ticket.subject).label("ticket_subject"),
        col(Worklog.contract_id),
        col(Worklog.kind),
        col(Worklog.source),
        col(Worklog.occurred_at),
        col(Worklog.minutes),
        col(Worklog.consultants),
        col(Worklog.after_hours_minutes),
        col(Worklog.unrequested_minutes),
        col(Worklog.multiplier),
        col(Worklog.charged_minutes),
        col(Worklog.agent_id),
        col(Worklog.note),
        col(AfterHoursRequest.id).label("request_id"),
        col(AfterHoursRequest.ticket_id).label("request_ticket_id"),
        col(AfterHoursRequest.contact_id).label("request_contact_id"),
        col(AfterHoursRequest.requested_at).label("requested_at"),
        col(AfterHoursRequest.starts_at).label("request_starts_at"),
        col(AfterHoursRequest.ends_at).label("request_ends_at"),
        col(AfterHoursRequest.reference).label("request_reference"),
    ]
    stmt: Select[Any] = (
        select(*columns)
        .join(Ticket, col(Ticket.id) == col(Worklog.ticket_id))
        .outerjoin(
            AfterHoursRequest,
            col(AfterHoursRequest.id) == col(Worklog.after_hours_request_id),
        )
        .where(
            col(Worklog.organization_id) == organization_id,
            col(Worklog.occurred_at) >= month.from_,
            col(Worklog.occurred_at) < month.to,
            col(Worklog.billable).is_(True),
        )
    )
    return keyset(stmt, [col(Worklog.occurred_at), col(Worklog.id)], cursor, limit)


def _line(row: Any, staff: bool) -> StatementLine:
    fields: dict[str, Any] = {
        "id": row.id,
        "ticket_id": row.ticket_id,
        "ticket_number": display_number(row.ticket_number),
        "ticket_subject": row.ticket_subject,
        "contract_id": row.contract_id,
        "kind": row.kind,
        "source": row.source,
        "occurred_at": row.occurred_at,
        "minutes": row.minutes,
        "consultants": row.consultants,
        "after_hours_minutes": row.after_hours_minutes,
        "unrequested_minutes": row.unrequested_minutes,
        "multiplier": row.multiplier,
        "charged_minutes": row.charged_minutes,
        "after_hours_request": None
        if row.request_id is None
        else AfterHoursRequestRef(
            id=row.request_id,
            scope="ticket" if row.request_ticket_id is not None else "contract",
            contact_id=row.request_contact_id,
            requested_at=row.requested_at,
            starts_at=row.request_starts_at,
            ends_at=row.request_ends_at,
            reference=row.request_reference,
        ),
    }
    if staff:  # left unset (absent from the reply) for customer keys
        fields["agent_id"] = row.agent_id
        fields["note"] = row.note
    return StatementLine(**fields)


async def _totals(session: AsyncSession, org_id: uuid.UUID, month: Month) -> StatementTotals:
    rows = (
        await session.execute(text(TOTALS), {"org": org_id, "from_": month.from_, "to": month.to})
    ).all()
    kinds = {k.value: KindTotal(kind=k.value, entries=0, charged_minutes=0) for k in EntryKind}
    contracts: list[ContractTotal] = []
    total: Any = None
    for row in rows:
        if row.all_kinds and row.all_contracts:
            total = row
        elif not row.all_kinds:
            kinds[row.kind] = KindTotal(
                kind=row.kind, entries=row.entries, charged_minutes=row.charged_minutes
            )
        else:
            contracts.append(
                ContractTotal(
                    contract_id=row.contract_id,
                    entries=row.entries,
                    charged_minutes=row.charged_minutes,
                )
            )
    assert total is not None  # the () grouping set yields a row even for an empty month
    return StatementTotals(
        entries=total.entries,
        minutes=total.minutes,
        charged_minutes=total.charged_minutes,
        charged_hours=total.charged_hours,
        after_hours_minutes=total.after_hours_minutes,
        unrequested_minutes=total.unrequested_minutes,
        by_kind=list(kinds.values()),
        by_contract=contracts,
        unbilled=Unbilled(entries=total.unbilled_entries, minutes=total.unbilled_minutes),
    )


async def plan_timezone(session: AsyncSession, organization_id: uuid.UUID, month: str) -> str:
    """The time zone of the organization's plan calendar for ``month`` (YYYY-MM): of the
    highest-level plan among its contracts that overlap the month (else its latest
    contract's plan); UTC when it holds none."""
    found = _MONTH.fullmatch(month)
    if found is None:
        raise invalid_field("query.month", "must be a month as YYYY-MM, e.g. 2026-03")
    year, number = int(found[1]), int(found[2])
    first = date(year, number, 1)
    after = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    overlaps = and_(
        col(Contract.starts_on) < after,
        or_(col(Contract.ends_on).is_(None), col(Contract.ends_on) >= first),
    )
    stmt = (
        select(col(CalendarRow.timezone))
        .select_from(Contract)
        .join(Plan, col(Plan.id) == col(Contract.plan_id))
        .join(CalendarRow, col(CalendarRow.id) == col(Plan.calendar_id))
        .where(col(Contract.organization_id) == organization_id)
        .order_by(
            case((overlaps, 0), else_=1),
            col(Plan.level).desc(),
            col(Contract.starts_on).desc(),
            col(Contract.id),
        )
        .limit(1)
    )
    zone = await session.scalar(stmt)
    return str(zone) if zone is not None else "UTC"


async def statement(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None,
    month: str,
    tz: str | None,
    cursor: str | None,
    limit: int,
) -> Statement:
    """``tz`` None: a customer key's statement is in its plan calendar's zone (what its
    contract's dates mean), a staff key's in UTC."""
    org = await _organization(session, principal, organization_id)
    if tz is None:
        tz = await plan_timezone(session, org.id, month) if principal.is_customer else "UTC"
    period = month_of(month, tz)
    totals = await _totals(session, org.id, period)
    rows = (await session.execute(lines_statement(org.id, period, cursor, limit))).all()
    page, next_cursor = page_of(rows, limit, lambda r: (r.occurred_at, r.id))
    return Statement(
        organization_id=org.id,
        organization_name=org.name,
        month=period.label,
        tz=period.tz,
        from_=period.from_,
        to=period.to,
        totals=totals,
        lines=[_line(r, principal.is_staff) for r in page],
        next_cursor=next_cursor,
    )


_LINE_COLUMNS = (
    "id",
    "occurred_at",
    "ticket_number",
    "ticket_subject",
    "ticket_id",
    "contract_id",
    "kind",
    "source",
    "minutes",
    "consultants",
    "after_hours_minutes",
    "unrequested_minutes",
    "multiplier",
    "charged_minutes",
)
# The after-hours request a line relies on: CSV column -> its field.
_REQUEST_COLUMNS = {
    "after_hours_request_id": "id",
    "after_hours_requested_at": "requested_at",
    "after_hours_request_reference": "reference",
}


def to_csv(report: Statement, *, staff: bool) -> str:
    """One row per line of the page (`record` = line), then the month's total row
    (`record` = total, with the whole month's figures). Staff keys get agent_id and note."""
    header = ["record", "entries", *_LINE_COLUMNS, *_REQUEST_COLUMNS, "charged_hours"]
    if staff:
        header += ["agent_id", "note"]
    rows: list[Sequence[object]] = []
    for line in report.lines:
        request = line.after_hours_request
        row: list[object] = [
            "line",
            1,
            *(getattr(line, c) for c in _LINE_COLUMNS),
            *(getattr(request, f) if request else None for f in _REQUEST_COLUMNS.values()),
            None,
        ]
        if staff:
            row += [line.agent_id, line.note]
        rows.append(row)
    t = report.totals
    blank = [None] * (len(_LINE_COLUMNS) + len(_REQUEST_COLUMNS))
    total: list[object] = ["total", t.entries, *blank, t.charged_hours]
    first = len(("record", "entries"))
    for name, value in (
        ("minutes", t.minutes),
        ("after_hours_minutes", t.after_hours_minutes),
        ("unrequested_minutes", t.unrequested_minutes),
        ("charged_minutes", t.charged_minutes),
    ):
        total[first + _LINE_COLUMNS.index(name)] = value
    if staff:
        total += [None, None]
    rows.append(total)
    return csv_export.to_csv(header, rows)


__all__ = ["lines_statement", "month_of", "statement", "to_csv"]
