"""Full-text search conditions: tickets by their words, organizations by their name.

A ticket's text lives in ``ticket_search`` (app/models/search.py), kept by the database in
the configuration of its language. A query is parsed with ``websearch_to_tsquery`` (the
syntax of web search engines: words, ``"a phrase"``, ``or``, ``-word``) once per
configuration and matched only against the tickets of that configuration, so that an
English query is stemmed as English for English tickets and as Spanish for Spanish ones,
and a negation in one language never lets a ticket of another through. Each branch is a
GIN index scan; PostgreSQL ORs their bitmaps.

Customer keys match ``document`` (subject, description, public conversation); staff keys
also match ``internal`` (internal notes).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import (
    Float,
    Select,
    Text,
    and_,
    bindparam,
    case,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy import cast as cast_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from app.models import Organization
from app.models.search import SEARCH_CONFIGS, TicketSearch
from app.models.tickets import Ticket
from app.pagination import keyset
from app.security import Principal

# ts_rank normalization 1: divided by 1 + log(document length), so a long conversation
# does not outrank a ticket about exactly this just by being long.
_RANK_NORMALIZATION = 1

# Relevance is computed over the most recent matches, at most this many: every match
# when fewer match (the searches that look for something), the newest this many of a
# broad search (a word in a tenth of all tickets), whose cost would otherwise grow with
# the whole history. Sorting by `received_at` pages through every match.
RANKED_WINDOW = 1000


def _config(name: str) -> ColumnElement[Any]:
    return literal_column(f"'{name}'::regconfig")


def _rank(document: Any, query: ColumnElement[Any]) -> ColumnElement[float]:
    return func.ts_rank(document, query, _RANK_NORMALIZATION, type_=Float)


# A query parsed in each configuration: configuration name -> the tsquery's text ("" when
# the words are all stop words there). See :func:`parse`.
Parsed = Mapping[str, str]


async def parse(session: AsyncSession, q: str) -> dict[str, str]:
    """``q`` parsed by ``websearch_to_tsquery`` in every configuration, in one round trip.

    The page query is then built with these tsqueries written into it, which buys two
    things: configurations whose query comes out the same (an English word that no
    stemmer changes is the same in ``english`` and ``simple``) share one GIN scan
    instead of one each, and the planner sees each search's own tsquery, so it plans
    a rare word (the GIN index) and a common one (walking ``received_at``) each their
    own way rather than reusing one generic plan for every search.
    """
    columns = [
        cast_(func.websearch_to_tsquery(_config(name), bindparam("q", q)), Text)
        for name in SEARCH_CONFIGS
    ]
    row = (await session.execute(select(*columns))).one()
    return dict(zip(SEARCH_CONFIGS, row, strict=True))


def _literal(tsquery: str) -> ColumnElement[Any]:
    """A tsquery text as a SQL literal. Dollar-quoted, with a tag the text does not
    contain, so nothing in it is ever read as SQL (whatever the server's string
    settings)."""
    tag = "$q$"
    n = 0
    while tag in tsquery or tsquery.endswith(tag[:-1]):
        n += 1
        tag = f"$q{n}$"
    return literal_column(f"{tag}{tsquery}{tag}::tsquery")


def _queries(q: Parsed) -> list[tuple[list[str], ColumnElement[Any]]]:
    """(configurations, tsquery) pairs to match: configurations with the same tsquery
    share one pair, and a configuration whose tsquery is empty has none (an empty
    tsquery matches nothing)."""
    shared: dict[str, list[str]] = {}
    for name in SEARCH_CONFIGS:
        if q[name]:
            shared.setdefault(q[name], []).append(name)
    return [(names, _literal(text)) for text, names in shared.items()]


def ticket_match(
    principal: Principal, q: Parsed, rows: Any = TicketSearch
) -> tuple[ColumnElement[bool], ColumnElement[float]]:
    """The condition on ``ticket_search`` rows (``rows``: the table or an alias) matching
    ``q`` (as :func:`parse` gave it) for this key, and their rank (higher is better)."""
    staff = principal.is_staff
    conditions = []
    ranks = []
    for names, query in _queries(q):
        found: ColumnElement[bool] = rows.document.op("@@")(query)
        rank = _rank(rows.document, query)
        if staff:
            found = or_(found, rows.internal.op("@@")(query))
            rank = rank + _rank(rows.internal, query)
        same_language = or_(*(rows.config == _config(name) for name in names))
        conditions.append(and_(same_language, found))
        ranks.append((same_language, rank))
    if not conditions:
        return false(), literal(0.0, Float)
    return or_(*conditions), case(*ranks, else_=0.0).cast(Float)


def ranked_tickets(
    principal: Principal,
    q: Parsed,
    *,
    organizations: set[uuid.UUID | None],
    statuses: Sequence[str] = (),
    conditions: list[ColumnElement[bool]],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """The page query of a search by relevance: (ticket, rank) rows, best first, keyset on
    (rank, id). The window of the most recent matches (:data:`RANKED_WINDOW`) is found
    first — by the GIN index for a rare word, by walking ``received_at`` backwards for
    a common one, as the planner estimates —, and only its tickets are ranked.
    ``conditions`` are on ``tickets``; ``organizations`` all must hold (customer scope,
    organization filter); ``statuses``, when given, are matched on ``ticket_search``'s
    copy of the status, so that the walk reads only those tickets and never joins
    ``tickets`` for them."""
    found, _ = ticket_match(principal, q)
    documents = [col(TicketSearch.config), col(TicketSearch.document), col(TicketSearch.internal)]
    window = select(col(TicketSearch.ticket_id), *documents).where(found)
    for organization in organizations:
        window = window.where(col(TicketSearch.organization_id) == organization)
    if statuses:
        window = window.where(col(TicketSearch.status).in_(list(statuses)))
    if conditions:
        window = window.join(Ticket, col(Ticket.id) == col(TicketSearch.ticket_id)).where(
            *conditions
        )
    recent = (
        window.order_by(col(TicketSearch.received_at).desc(), col(TicketSearch.ticket_id).desc())
        .limit(RANKED_WINDOW)
        .subquery("recent")
    )
    # Ranked where the documents are at hand; only the page's tickets are then read.
    _, rank = ticket_match(principal, q, recent.c)
    scored = keyset(
        select(recent.c.ticket_id, rank.label("rank")),
        [rank, recent.c.ticket_id],
        cursor,
        limit,
        descending=True,
    ).subquery("scored")
    return cast(
        "Select[Any]",
        select(Ticket, scored.c.rank)
        .join(scored, scored.c.ticket_id == col(Ticket.id))
        .order_by(scored.c.rank.desc(), col(Ticket.id).desc()),
    )


# The expression of ix_organizations_name_search: a query must repeat it exactly.
NAME_DOCUMENT = "to_tsvector('simple'::regconfig, name)"


def organization_match(q: str) -> ColumnElement[bool] | None:
    """Organizations whose name has every word of ``q``, the last one as a prefix (so
    that a console can search as the user types: ``acm`` finds "Acme Corp"); None when
    ``q`` has no word at all."""
    words = [w for w in _words(q) if w]
    if not words:
        return None
    terms = [f"'{w}'" for w in words[:-1]] + [f"'{words[-1]}':*"]
    query = func.to_tsquery(_config("simple"), bindparam("q", " & ".join(terms), unique=True))
    document = func.to_tsvector(_config("simple"), col(Organization.name))
    return document.op("@@")(query)


def _words(q: str) -> list[str]:
    """Lower-cased words of ``q`` as the `simple` parser would see them; quotes and
    backslashes are dropped, so a word can never break out of its tsquery literal."""
    cleaned = "".join(c if c.isalnum() else " " for c in q.lower())
    return cleaned.split()[:16]


__all__ = [
    "NAME_DOCUMENT",
    "RANKED_WINDOW",
    "Parsed",
    "organization_match",
    "parse",
    "ranked_tickets",
    "ticket_match",
]
