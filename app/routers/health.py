"""Probes and metrics. /healthz and /readyz are open (orchestrators call them without a key);
they reveal nothing but up/down. /metrics needs a staff key."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from app.schemas.common import problems
from app.security import StaffKey

router = APIRouter(tags=["operations"])
logger = logging.getLogger("sladesk.health")


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "database unreachable or not migrated"}})
async def readyz(request: Request) -> JSONResponse:
    """The database answers and its schema is at the migrations' head."""
    expected = request.app.state.migration_head
    try:
        async with request.app.state.engine.connect() as conn:
            current = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception as exc:  # any failure means "not ready"; say which, never a 500
        logger.warning("readiness check failed: %s", type(exc).__name__)
        return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
    if current != expected:
        body = {"status": "unavailable", "database": "not migrated", "schema": current}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "schema": current})


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **problems(401, 403)},
)
async def metrics(request: Request, principal: StaffKey) -> Response:
    """Prometheus text format: request count and latency by route template and status."""
    body = generate_latest(request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
