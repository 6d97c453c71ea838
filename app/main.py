"""The application factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine

from app import __version__
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker, read_only_sessionmaker
from app.docs import install_docs
from app.errors import install_error_handlers
from app.http_contract import MethodsMiddleware, request_contract
from app.migrate import head_revision
from app.observability import (
    BodyLimitMiddleware,
    Metrics,
    RequestContextMiddleware,
    install_request_id_factory,
)
from app.openapi import install_openapi
from app.routers import (
    after_hours,
    agents,
    api_keys,
    billing,
    calendars,
    contacts,
    contracts,
    entitlement,
    events,
    health,
    mail,
    me,
    organizations,
    plans,
    reports,
    statements,
    tickets,
    webhooks,
)
from app.workers.compiled_listener import compiled_listener
from app.workers.runner import running_workers
from app.workers.stream_hub import HubConfig, HubRegistry

DESCRIPTION = """
Support desk backend: entitlements, SLA clocks in business time, escalations, webhooks.

**Authentication**: every `/v1` endpoint needs `Authorization: Bearer <API key>`.
Roles: `admin`, `agent`, `customer` (bound to one organization; another organization's
resources answer 404).

**Errors** are RFC 9457 `application/problem+json` with a stable `type`.

**Lists** use cursor pagination: `limit` (default 50, max 200) and `cursor` (the
`next_cursor` of the previous page).

**Instants** are ISO 8601 with an offset (a naive timestamp is refused with a 422).
"""


def create_app(settings: Settings | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    """Build the API. Given an ``engine`` (tests, the CLI), the app uses it and does not
    dispose of it; otherwise it makes one from ``settings.database_url`` at start-up."""
    settings = settings or get_settings()
    install_request_id_factory()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = None
        if not hasattr(app.state, "engine"):
            if settings.database_url is None:
                raise RuntimeError("SLADESK_DATABASE_URL is not set")
            own_engine = make_engine(settings.database_url.get_secret_value(), settings)
            _bind(app, own_engine, settings)
        try:
            async with contextlib.AsyncExitStack() as stack:
                # Every API process frees the compiled terms edits replace (a hint).
                await stack.enter_async_context(compiled_listener(app.state.engine, settings))
                if settings.run_workers:
                    await stack.enter_async_context(running_workers(app.state.engine, settings))
                yield
        finally:
            app.state.stream_hubs.close_all("the server is stopping")
            if own_engine is not None:
                await own_engine.dispose()

    app = FastAPI(
        title="sladesk",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # app.docs serves both pages with assets from the package
        redoc_url=None,
        # A redirect to the slash-less path would be built from the Host header.
        redirect_slashes=False,
        dependencies=[Depends(request_contract)],
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.migration_head = head_revision()
    # Event streams' hubs read the outbox with whatever engine the app is bound to.
    # Revoked keys' streams end within a heartbeat.
    hub_config = HubConfig(key_check=settings.stream_heartbeat_seconds)
    app.state.stream_hubs = HubRegistry(lambda: app.state.engine, hub_config)
    if engine is not None:
        _bind(app, engine, settings)

    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    for router in (
        health.router,
        api_keys.router,
        me.router,
        organizations.router,
        contacts.router,
        agents.router,
        calendars.router,
        plans.router,
        contracts.router,
        entitlement.router,
        tickets.router,
        billing.router,
        after_hours.router,
        webhooks.router,
        events.router,
        reports.router,
        statements.router,
        mail.router,
        mail.ticket_router,
    ):
        app.include_router(router)
    webhooks.document_webhooks(app)

    # Outermost last: the request id and metrics see everything, the limit sits inside.
    app.add_middleware(MethodsMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        limits={mail.INBOUND_PATH: settings.mail_max_message_bytes},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["ETag", "X-Request-ID", "Location"],
        )
    app.add_middleware(
        RequestContextMiddleware, metrics=app.state.metrics, routes=app.router.routes
    )
    return app


def _bind(app: FastAPI, engine: AsyncEngine, settings: Settings) -> None:
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    # Behind a transaction pooler a statement outside a transaction may find its prepared
    # statement on another server connection: read-only routes keep their transaction.
    app.state.read_only_sessionmaker = (
        app.state.sessionmaker
        if settings.db_transaction_pooling
        else read_only_sessionmaker(engine)
    )
