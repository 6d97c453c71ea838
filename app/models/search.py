"""What ticket search reads: each ticket's text as PostgreSQL ``tsvector`` documents.

The database keeps these rows (triggers of migration 0010), in the transaction that
changes the text: a ticket's insert (subject, description), an edit of either, and
every timeline event with a body. The application never writes them.

* ``config``: the text-search configuration of the ticket's language (``english``,
  ``spanish`` or ``simple``), chosen from the organization's locale when the ticket
  arrives (``sladesk_search_config``).
* ``document``: what every key may find: subject (weight A), description (B) and the
  public conversation (C). ``conversation`` keeps the public bodies alone, so that an
  edit of the subject or description rebuilds ``document`` without re-reading events.
* ``status``: the ticket's, copied (a search filtered by status walks only its tickets).
* ``internal``: the internal notes (D), matched for staff keys only: public and internal
  text are never in one document, so a customer's search cannot reach a note.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, String, Uuid
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR
from sqlmodel import Field, SQLModel

from app.models.base import timestamptz

# The configurations ``sladesk_search_config`` may choose (a query is parsed with each, and
# matched against the tickets of that configuration only).
SEARCH_CONFIGS = ("english", "spanish", "simple")


class TicketSearch(SQLModel, table=True):
    __tablename__ = "ticket_search"
    __table_args__ = (
        Index("ix_ticket_search_document", "document", postgresql_using="gin"),
        Index("ix_ticket_search_internal", "internal", postgresql_using="gin"),
        # The most recent matches first (services.search.RANKED_WINDOW), overall and per
        # organization (customer keys), without touching the tickets table.
        Index("ix_ticket_search_received_at_ticket_id", "received_at", "ticket_id"),
        Index(
            "ix_ticket_search_organization_id_received_at_ticket_id",
            "organization_id",
            "received_at",
            "ticket_id",
        ),
        # A search filtered by status walks only that status's tickets (migration 0014).
        Index(
            "ix_ticket_search_status_received_at_ticket_id", "status", "received_at", "ticket_id"
        ),
    )

    ticket_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    )
    # The ticket's, copied (they never change after intake; the edit trigger follows them).
    organization_id: uuid.UUID = Field(sa_column=Column(Uuid, nullable=False))
    received_at: datetime = timestamptz()
    # The ticket's status, copied by a trigger in the transaction that changes it.
    status: str = Field(sa_type=String(30))
    config: str = Field(sa_column=Column(REGCONFIG, nullable=False))
    conversation: str = Field(sa_column=Column(TSVECTOR, nullable=False))
    internal: str = Field(sa_column=Column(TSVECTOR, nullable=False))
    document: str = Field(sa_column=Column(TSVECTOR, nullable=False))
