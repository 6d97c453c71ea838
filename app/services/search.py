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

from typing import Any

from sqlalchemy import Float, and_, bindparam, case, func, literal_column, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from app.models import Organization
from app.models.search import SEARCH_CONFIGS, TicketSearch
from app.security import Principal

# ts_rank normalization 1: divided by 1 + log(document length), so a long conversation
# does not outrank a ticket about exactly this just by being long.
_RANK_NORMALIZATION = 1


def _config(name: str) -> ColumnElement[Any]:
    return literal_column(f"'{name}'::regconfig")


def _query(name: str, q: str) -> ColumnElement[Any]:
    return func.websearch_to_tsquery(_config(name), bindparam("search_q", q))


def _rank(document: Any, query: ColumnElement[Any]) -> ColumnElement[float]:
    return func.ts_rank(document, query, _RANK_NORMALIZATION, type_=Float)


def ticket_match(principal: Principal, q: str) -> tuple[ColumnElement[bool], ColumnElement[float]]:
    """The condition on ``ticket_search`` rows matching ``q`` for this key, and their rank
    (higher is better)."""
    staff = principal.is_staff
    conditions = []
    ranks = []
    for name in SEARCH_CONFIGS:
        query = _query(name, q)
        found: ColumnElement[bool] = col(TicketSearch.document).op("@@")(query)
        rank = _rank(col(TicketSearch.document), query)
        if staff:
            found = or_(found, col(TicketSearch.internal).op("@@")(query))
            rank = rank + _rank(col(TicketSearch.internal), query)
        same_language = col(TicketSearch.config) == _config(name)
        conditions.append(and_(same_language, found))
        ranks.append((same_language, rank))
    return or_(*conditions), case(*ranks, else_=0.0).cast(Float)


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
    query = func.to_tsquery(_config("simple"), bindparam("name_q", " & ".join(terms)))
    document = func.to_tsvector(_config("simple"), col(Organization.name))
    return document.op("@@")(query)


def _words(q: str) -> list[str]:
    """Lower-cased words of ``q`` as the `simple` parser would see them; quotes and
    backslashes are dropped, so a word can never break out of its tsquery literal."""
    cleaned = "".join(c if c.isalnum() else " " for c in q.lower())
    return cleaned.split()[:16]


__all__ = ["NAME_DOCUMENT", "organization_match", "ticket_match"]
