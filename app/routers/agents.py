"""/v1/agents: the vendor's support staff, by tier."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import problems
from app.schemas.directory import AgentCreate, AgentRead, AgentUpdate
from app.security import AdminKey, StaffKey
from app.services import directory

router = APIRouter(prefix="/v1/agents", tags=["agents"])


@router.get("", response_model=Page[AgentRead])
async def list_agents(
    session: SessionDep,
    principal: StaffKey,
    active: bool | None = Query(default=None),
    tier: int | None = Query(default=None, ge=1, le=4),
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[AgentRead]:
    rows, next_cursor = await directory.list_agents(
        session, cursor=cursor, limit=limit, active=active, tier=tier
    )
    return Page(items=[AgentRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=AgentRead, responses=problems(409))
async def create_agent(data: AgentCreate, session: SessionDep, principal: AdminKey) -> AgentRead:
    """Tier 1 support team, 2 senior consultant, 3 development, 4 product vendor (seed 004)."""
    return AgentRead.model_validate(await directory.create_agent(session, data))


@router.get("/{agent_id}", response_model=AgentRead, responses=problems(404))
async def get_agent(agent_id: uuid.UUID, session: SessionDep, principal: StaffKey) -> AgentRead:
    return AgentRead.model_validate(await directory.get_agent(session, agent_id))


@router.patch("/{agent_id}", response_model=AgentRead, responses=problems(404, 409))
async def update_agent(
    agent_id: uuid.UUID, data: AgentUpdate, session: SessionDep, principal: AdminKey
) -> AgentRead:
    return AgentRead.model_validate(await directory.update_agent(session, agent_id, data))
