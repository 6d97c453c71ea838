"""ticket search (kept by the database), stream tokens, who recorded a work log entry

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-14

* ``ticket_search``: one row per ticket with its text as ``tsvector`` documents, its
  organization and receipt (see app/models/search.py), written only by the triggers
  below, in the transaction that changes them. Existing tickets are indexed here.
* ``organizations``: GIN index on the words of the name, index on ``external_ref``;
  ``contacts``: index on ``lower(email)`` (a person across organizations).
* ``stream_tokens``: short-lived credentials of the event stream.
* ``worklogs.actor``: who recorded an entry; automatic entries get their event's actor.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The language of an organization's locale (`en`, `es-MX`…) -> its text-search
# configuration; anything else is searched word for word (`simple`). Mirrors
# app.domain.vocab.LANGUAGES (tests/test_search.py checks every language maps).
SEARCH_CONFIG = """
CREATE FUNCTION sladesk_search_config(locale text) RETURNS regconfig
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE split_part(lower(coalesce(locale, '')), '-', 1)
    WHEN 'en' THEN 'pg_catalog.english'::regconfig
    WHEN 'es' THEN 'pg_catalog.spanish'::regconfig
    ELSE 'pg_catalog.simple'::regconfig
  END
$$"""

TICKET_HEAD = """
CREATE FUNCTION sladesk_ticket_head(config regconfig, subject text, description text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT setweight(to_tsvector(config, coalesce(subject, '')), 'A')
      || setweight(to_tsvector(config, coalesce(description, '')), 'B')
$$"""

# A tsvector holds at most 1 MB of lexemes: a conversation that would pass it keeps what
# it has (NULL tells the caller), rather than failing the reply that adds to it.
CONCAT = """
CREATE FUNCTION sladesk_tsvector_concat(a tsvector, b tsvector) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN a || b;
EXCEPTION WHEN program_limit_exceeded THEN
  RETURN NULL;
END
$$"""

ON_TICKET_INSERT = """
CREATE FUNCTION sladesk_ticket_search_created() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  cfg regconfig;
BEGIN
  SELECT sladesk_search_config(o.locale) INTO cfg
  FROM organizations o WHERE o.id = NEW.organization_id;
  cfg := coalesce(cfg, 'pg_catalog.simple'::regconfig);
  INSERT INTO ticket_search (ticket_id, organization_id, received_at, config, conversation,
                             internal, document)
  VALUES (NEW.id, NEW.organization_id, NEW.received_at, cfg, ''::tsvector, ''::tsvector,
          sladesk_ticket_head(cfg, NEW.subject, NEW.description));
  RETURN NULL;
END
$$"""

ON_TICKET_EDIT = """
CREATE FUNCTION sladesk_ticket_search_edited() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s ticket_search%ROWTYPE;
  head tsvector;
BEGIN
  SELECT * INTO s FROM ticket_search WHERE ticket_id = NEW.id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  head := sladesk_ticket_head(s.config, NEW.subject, NEW.description);
  UPDATE ticket_search
  SET document = coalesce(sladesk_tsvector_concat(head, s.conversation), head),
      organization_id = NEW.organization_id,
      received_at = NEW.received_at
  WHERE ticket_id = NEW.id;
  RETURN NULL;
END
$$"""

# Every timeline event with a body adds it: public ones to the document everyone searches,
# internal notes to `internal` (staff only). The `created` event's body is the
# description, which the document has already.
ON_EVENT = """
CREATE FUNCTION sladesk_ticket_search_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s ticket_search%ROWTYPE;
  v tsvector;
  joined tsvector;
  doc tsvector;
BEGIN
  SELECT * INTO s FROM ticket_search WHERE ticket_id = NEW.ticket_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF NEW.public THEN
    v := setweight(to_tsvector(s.config, NEW.body), 'C');
    joined := sladesk_tsvector_concat(s.conversation, v);
    doc := sladesk_tsvector_concat(s.document, v);
    IF joined IS NOT NULL AND doc IS NOT NULL THEN
      UPDATE ticket_search SET conversation = joined, document = doc
      WHERE ticket_id = NEW.ticket_id;
    END IF;
  ELSE
    v := setweight(to_tsvector(s.config, NEW.body), 'D');
    joined := sladesk_tsvector_concat(s.internal, v);
    IF joined IS NOT NULL THEN
      UPDATE ticket_search SET internal = joined WHERE ticket_id = NEW.ticket_id;
    END IF;
  END IF;
  RETURN NULL;
END
$$"""

TRIGGERS = (
    "CREATE TRIGGER ticket_search_created AFTER INSERT ON tickets "
    "FOR EACH ROW EXECUTE FUNCTION sladesk_ticket_search_created()",
    "CREATE TRIGGER ticket_search_edited "
    "AFTER UPDATE OF subject, description, organization_id, received_at ON tickets "
    "FOR EACH ROW WHEN (OLD.subject IS DISTINCT FROM NEW.subject "
    "OR OLD.description IS DISTINCT FROM NEW.description "
    "OR OLD.organization_id IS DISTINCT FROM NEW.organization_id "
    "OR OLD.received_at IS DISTINCT FROM NEW.received_at) "
    "EXECUTE FUNCTION sladesk_ticket_search_edited()",
    "CREATE TRIGGER ticket_search_event AFTER INSERT ON ticket_events "
    "FOR EACH ROW WHEN (NEW.body IS NOT NULL AND NEW.kind <> 'created') "
    "EXECUTE FUNCTION sladesk_ticket_search_event()",
)

# Tickets that exist already: their text as the triggers would have kept it (each part
# cut to 200,000 characters, far inside the 1 MB a tsvector may hold).
BACKFILL = """
INSERT INTO ticket_search (ticket_id, organization_id, received_at, config, conversation,
                           internal, document)
SELECT t.id, t.organization_id, t.received_at, k.cfg, c.conversation, c.internal,
       sladesk_ticket_head(k.cfg, t.subject, t.description) || c.conversation
FROM tickets t
JOIN organizations o ON o.id = t.organization_id
CROSS JOIN LATERAL (SELECT sladesk_search_config(o.locale) AS cfg) k
CROSS JOIN LATERAL (
  SELECT
    setweight(to_tsvector(k.cfg, left(coalesce(
      string_agg(e.body, ' ' ORDER BY e.seq) FILTER (WHERE e.public), ''), 200000)), 'C')
      AS conversation,
    setweight(to_tsvector(k.cfg, left(coalesce(
      string_agg(e.body, ' ' ORDER BY e.seq) FILTER (WHERE NOT e.public), ''), 200000)), 'D')
      AS internal
  FROM ticket_events e
  WHERE e.ticket_id = t.id AND e.body IS NOT NULL AND e.kind <> 'created'
) c"""

FUNCTIONS = (
    "sladesk_ticket_search_event()",
    "sladesk_ticket_search_edited()",
    "sladesk_ticket_search_created()",
    "sladesk_tsvector_concat(tsvector, tsvector)",
    "sladesk_ticket_head(regconfig, text, text)",
    "sladesk_search_config(text)",
)


def upgrade() -> None:
    op.create_table(
        "ticket_search",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("organization_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config", postgresql.REGCONFIG(), nullable=False),
        sa.Column("conversation", postgresql.TSVECTOR(), nullable=False),
        sa.Column("internal", postgresql.TSVECTOR(), nullable=False),
        sa.Column("document", postgresql.TSVECTOR(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_search_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_search")),
    )
    for statement in (SEARCH_CONFIG, TICKET_HEAD, CONCAT, ON_TICKET_INSERT, ON_TICKET_EDIT):
        op.execute(statement)
    op.execute(ON_EVENT)
    for statement in TRIGGERS:
        op.execute(statement)
    op.execute(BACKFILL)
    # After the backfill: one index build instead of a million insertions.
    op.create_index(
        "ix_ticket_search_document",
        "ticket_search",
        ["document"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_ticket_search_internal",
        "ticket_search",
        ["internal"],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index(
        "ix_ticket_search_received_at_ticket_id",
        "ticket_search",
        ["received_at", "ticket_id"],
        unique=False,
    )
    op.create_index(
        "ix_ticket_search_organization_id_received_at_ticket_id",
        "ticket_search",
        ["organization_id", "received_at", "ticket_id"],
        unique=False,
    )

    op.create_index(
        "ix_organizations_external_ref", "organizations", ["external_ref"], unique=False
    )
    op.create_index(
        "ix_organizations_name_search",
        "organizations",
        [sa.text("to_tsvector('simple'::regconfig, name)")],
        unique=False,
        postgresql_using="gin",
    )
    op.create_index("ix_contacts_email_lower", "contacts", [sa.text("lower(email)")], unique=False)

    op.create_table(
        "stream_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.Uuid(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_stream_tokens_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stream_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_stream_tokens_token_hash")),
    )
    op.create_index("ix_stream_tokens_expires_at", "stream_tokens", ["expires_at"], unique=False)

    op.add_column(
        "worklogs",
        sa.Column("actor", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.execute("UPDATE worklogs w SET actor = e.actor FROM ticket_events e WHERE e.id = w.event_id")


def downgrade() -> None:
    op.drop_column("worklogs", "actor")
    op.drop_index("ix_stream_tokens_expires_at", table_name="stream_tokens")
    op.drop_table("stream_tokens")
    op.drop_index("ix_contacts_email_lower", table_name="contacts")
    op.drop_index("ix_organizations_name_search", table_name="organizations")
    op.drop_index("ix_organizations_external_ref", table_name="organizations")
    op.execute("DROP TRIGGER ticket_search_event ON ticket_events")
    op.execute("DROP TRIGGER ticket_search_edited ON tickets")
    op.execute("DROP TRIGGER ticket_search_created ON tickets")
    op.drop_table("ticket_search")
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
