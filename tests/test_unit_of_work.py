"""The session dependency is the unit of work: commit on return, roll back on error."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from app.db import SessionDep, make_sessionmaker
from app.errors import Conflict
from app.models import Organization


async def _count(engine: Any, name: str) -> int:
    async with make_sessionmaker(engine)() as session:
        stmt = select(func.count()).select_from(Organization).where(Organization.name == name)
        return int((await session.execute(stmt)).scalar_one())


async def test_commit_on_return_and_rollback_on_error(app: Any, db: Any) -> None:
    async def writes_then_returns(session: SessionDep) -> dict[str, str]:
        session.add(Organization(name="kept"))
        await session.flush()
        return {"ok": "yes"}

    async def writes_then_fails(session: SessionDep) -> dict[str, str]:
        session.add(Organization(name="discarded"))
        await session.flush()  # the row reached the database inside the transaction ...
        raise Conflict("refused after writing")  # ... and must not survive this

    async def writes_then_crashes(session: SessionDep) -> dict[str, str]:
        session.add(Organization(name="crashed"))
        await session.flush()
        raise RuntimeError("bug")

    app.add_api_route("/test/ok", writes_then_returns, methods=["POST"])
    app.add_api_route("/test/fail", writes_then_fails, methods=["POST"])
    app.add_api_route("/test/crash", writes_then_crashes, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/test/ok")).status_code == 200
        assert (await client.post("/test/fail")).status_code == 409
        crashed = await client.post("/test/crash")
        assert crashed.status_code == 500
        assert crashed.headers["content-type"].startswith("application/problem+json")
        assert "bug" not in crashed.text  # internals do not leak to clients
    # Read back through a separate connection: only the committed row exists.
    assert await _count(db, "kept") == 1
    assert await _count(db, "discarded") == 0
    assert await _count(db, "crashed") == 0


async def test_commit_happens_before_the_response_is_sent(app: Any, db: Any) -> None:
    """A 2xx means committed: another connection sees the row as soon as the reply arrives."""

    async def create(session: SessionDep) -> dict[str, str]:
        session.add(Organization(name="visible"))
        return {"ok": "yes"}

    app.add_api_route("/test/create", create, methods=["POST"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assert (await c.post("/test/create")).status_code == 200
        assert await _count(db, "visible") == 1
