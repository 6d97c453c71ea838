"""/v1/me: who the calling key is."""

from __future__ import annotations

from fastapi import APIRouter

from app.db import SessionDep
from app.schemas.api_keys import MeRead
from app.security import AnyKey
from app.services import api_keys

router = APIRouter(prefix="/v1/me", tags=["api keys"])


@router.get("", response_model=MeRead)
async def me(session: SessionDep, principal: AnyKey) -> MeRead:
    """The calling key (never the key itself): its role, what it is bound to (the agent a
    staff key acts as; a customer key's organization and contact) and the `actor` its
    actions are recorded as on timelines, work logs and webhooks. Any key may ask."""
    return await api_keys.whoami(session, principal)
