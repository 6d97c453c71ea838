"""The session dependency is the unit of work: commit on return, roll back on error."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.config import Settings
from app.db import SessionDep, make_sessionmaker
from app.errors import LOST_AT_COMMIT, PROBLEM_BASE, PROBLEM_MEDIA_TYPE, Conflict
from app.models import Organization
from tests.conftest import raw_connect


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


async def test_a_connection_lost_before_commit_is_a_503_that_does_not_claim_nothing_was_saved(
    app: Any, db: Any, settings: Settings
) -> None:
    """The handler returned, its connection is gone when the unit of work commits: the
    client cannot know whether a COMMIT that lost its connection committed, so the 503
    says "all or nothing, look first" instead of "retry". (Here nothing was: the server
    rolled the transaction back when the connection ended.)"""
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()

    async def loses_its_connection(session: SessionDep) -> dict[str, str]:
        session.add(Organization(name="lost at commit"))
        await session.flush()
        pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        killer = await raw_connect(url)
        try:  # returns once the backend is gone (or after 5 s: then false)
            assert await killer.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await killer.close()
        return {"ok": "yes"}

    app.add_api_route("/test/lost", loses_its_connection, methods=["POST"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        lost = await c.post("/test/lost")
        assert lost.status_code == 503, lost.text
        assert lost.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
        assert lost.headers["retry-after"] == "1"
        assert lost.json()["type"] == PROBLEM_BASE + "database-connection-lost"
        assert lost.json()["detail"] == LOST_AT_COMMIT
    assert await _count(db, "lost at commit") == 0


async def test_a_statement_that_fails_on_a_live_connection_stays_a_500(app: Any) -> None:
    """Only a lost connection is a 503: a statement timeout or a failing statement is
    still the logged 500 it was, raised on to the server."""

    async def divides_by_zero(session: SessionDep) -> None:
        await session.execute(text("SELECT 1 / 0"))

    async def times_out(session: SessionDep) -> None:
        await session.execute(text("SET LOCAL statement_timeout = 1"))
        await session.execute(text("SELECT pg_sleep(5)"))

    app.add_api_route("/test/zero", divides_by_zero, methods=["POST"])
    app.add_api_route("/test/timeout", times_out, methods=["POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in ("/test/zero", "/test/timeout"):
            failed = await client.post(path)
            assert failed.status_code == 500, failed.text
            assert failed.json()["type"] == PROBLEM_BASE + "internal-error"
            assert "retry-after" not in failed.headers
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        with pytest.raises(DBAPIError, match="division by zero"):
            await c.post("/test/zero")
