"""/v1/contacts: a person across organizations (staff)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.pagination import CursorQuery, LimitQuery, Page
from app.schemas.common import NO_NUL
from app.schemas.directory import ContactRead
from app.security import StaffKey
from app.services import directory

router = APIRouter(prefix="/v1/contacts", tags=["organizations"])


@router.get("", response_model=Page[ContactRead])
async def find_contacts(
    session: SessionDep,
    principal: StaffKey,
    email: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=320,
            pattern=NO_NUL,
            description="exactly this e-mail address, case-insensitive",
        ),
    ] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> Page[ContactRead]:
    """Contacts of every organization, oldest first: who is writing in, and for which
    customer (one person may be a contact of several organizations). Staff only;
    organizations' own contacts are under `/v1/organizations/{id}/contacts`."""
    rows, next_cursor = await directory.find_contacts(
        session, email=email, cursor=cursor, limit=limit
    )
    return Page(items=[ContactRead.model_validate(r) for r in rows], next_cursor=next_cursor)
