"""/v1/api-keys (admin only)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.api_keys import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, ApiKeyUpdate
from app.schemas.common import problems
from app.security import AdminKey
from app.services import api_keys

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_api_key(
    data: ApiKeyCreate, session: SessionDep, principal: AdminKey
) -> ApiKeyCreated:
    """Create a key. The response carries the key itself: it is shown only this once."""
    row, key = await api_keys.create_api_key(session, data)
    return ApiKeyCreated.model_validate({**ApiKeyRead.model_validate(row).model_dump(), "key": key})


@router.get("", response_model=Page[ApiKeyRead])
async def list_api_keys(
    session: SessionDep,
    principal: AdminKey,
    prefix: str | None = Query(
        default=None, pattern=r"^[A-Za-z0-9_-]{1,16}$", description="keys starting with"
    ),
    include_revoked: bool = False,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ApiKeyRead]:
    rows, next_cursor = await api_keys.list_api_keys(
        session, cursor=cursor, limit=limit, prefix=prefix, include_revoked=include_revoked
    )
    return Page(items=[ApiKeyRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.patch("/{key_id}", response_model=ApiKeyRead, responses=problems(404))
async def update_api_key(
    key_id: uuid.UUID, data: ApiKeyUpdate, session: SessionDep, principal: AdminKey
) -> ApiKeyRead:
    """Rename a key, or bind a staff key to an agent (`agent_id`; null unbinds). A bound
    key's actions, and the follow-ups they log, are that agent's; an unbound staff key's
    are recorded as the key, by its name."""
    return ApiKeyRead.model_validate(await api_keys.update_api_key(session, key_id, data))


@router.delete("/{key_id}", response_model=ApiKeyRead, responses=problems(404))
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, principal: AdminKey) -> ApiKeyRead:
    """Revoke a key at once; it stays listed (with `include_revoked`) for the audit trail."""
    return ApiKeyRead.model_validate(await api_keys.revoke_api_key(session, key_id))
