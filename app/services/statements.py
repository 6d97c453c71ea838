"""The monthly statement (`GET /v1/reports/statement`): an organization's billable work
log entries of one month, and the month's totals.

* The month is ``[local midnight of the 1st, local midnight of the next 1st)`` in ``tz``
  (a midnight skipped by a DST change starts the day at the change, as the clock does).
* Lines: the billable entries (``worklogs.billable``), by ``(occurred_at, id)``, one page
  at a time (keyset cursor). Staff keys also get ``agent_id`` and ``note``.
* Totals: one SQL aggregate (:data:`TOTALS`) over the whole month, whatever the page:
  billable entries, raw / charged / after-hours minutes, per kind and per contract, and
  the non-billable entries (charged 0 by convention) as ``unbilled``.

Both queries read ``ix_worklogs_organization_id_occurred_at``.
"""

from __future__ import annotations

import re
import uuid
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.domain.billing import EntryKind
from app.errors import NotFound, invalid_field
from app.models import Organization
from app.models.billing import Worklog
from app.models.tickets import Ticket
from app.pagination import keyset, page_of
from app.schemas.common import MAX_YEAR, MIN_YEAR
from app.schemas.statements import (
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
        col(Worklog.multiplier),
        col(Worklog.charged_minutes),
        col(Worklog.agent_id),
        col(Worklog.note),
    ]
    stmt: Select[Any] = (
        select(*columns)
        .join(Ticket, col(Ticket.id) == col(Worklog.ticket_id))
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
        "multiplier": row.multiplier,
        "charged_minutes": row.charged_minutes,
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
        by_kind=list(kinds.values()),
        by_contract=contracts,
        unbilled=Unbilled(entries=total.unbilled_entries, minutes=total.unbilled_minutes),
    )


async def statement(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None,
    month: str,
    tz: str,
    cursor: str | None,
    limit: int,
) -> Statement:
    period = month_of(month, tz)
    org = await _organization(session, principal, organization_id)
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
    "multiplier",
    "charged_minutes",
)


def to_csv(report: Statement, *, staff: bool) -> str:
    """One row per line of the page (`record` = line), then the month's total row
    (`record` = total, with the whole month's figures). Staff keys get agent_id and note."""
    header = ["record", "entries", *_LINE_COLUMNS, "charged_hours"]
    if staff:
        header += ["agent_id", "note"]
    rows: list[Sequence[object]] = []
    for line in report.lines:
        row: list[object] = ["line", 1, *(getattr(line, c) for c in _LINE_COLUMNS), None]
        if staff:
            row += [line.agent_id, line.note]
        rows.append(row)
    t = report.totals
    total: list[object] = ["total", t.entries, *([None] * len(_LINE_COLUMNS)), t.charged_hours]
    first = len(("record", "entries"))
    for name, value in (
        ("minutes", t.minutes),
        ("after_hours_minutes", t.after_hours_minutes),
        ("charged_minutes", t.charged_minutes),
    ):
        total[first + _LINE_COLUMNS.index(name)] = value
    if staff:
        total += [None, None]
    rows.append(total)
    return csv_export.to_csv(header, rows)


__all__ = ["lines_statement", "month_of", "statement", "to_csv"]
