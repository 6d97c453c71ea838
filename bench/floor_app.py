"""The floor of bench/intake.py: a bare FastAPI + asyncpg app on the same PostgreSQL.

It parses the same JSON body as `POST /v1/tickets` (a pydantic model of the same fields)
and does one `INSERT … RETURNING` on a pool: the least any intake endpoint on this stack
can do. Run by the bench as `uvicorn bench.floor_app:app` with `FLOOR_DATABASE_URL` set.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import FastAPI
from pydantic import BaseModel

TABLE = """
CREATE TABLE IF NOT EXISTS floor_tickets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    number bigserial UNIQUE,
    organization_id uuid NOT NULL,
    contact_id uuid NOT NULL,
    channel text NOT NULL,
    severity text NOT NULL,
    category text NOT NULL,
    subject text NOT NULL,
    description text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""


class TicketIn(BaseModel):
    organization_id: uuid.UUID
    contact_id: uuid.UUID
    channel: str
    severity: str
    category: str
    subject: str
    description: str = ""
    received_at: datetime | None = None


pool: Any = None


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(os.environ["FLOOR_DATABASE_URL"], min_size=4, max_size=10)
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/tickets", status_code=201)
async def create(body: TicketIn) -> dict[str, Any]:
    row = await pool.fetchrow(
        "INSERT INTO floor_tickets (organization_id, contact_id, channel, severity, category,"
        " subject, description, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7,"
        " coalesce($8, now())) RETURNING id, number, received_at",
        body.organization_id,
        body.contact_id,
        body.channel,
        body.severity,
        body.category,
        body.subject,
        body.description,
        body.received_at,
    )
    return {**body.model_dump(), **dict(row)}
