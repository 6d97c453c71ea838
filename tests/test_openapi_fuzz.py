"""Schemathesis over the whole OpenAPI document, in-process, with an admin key.

It generates requests for every operation and checks: no 5xx, every status code and
content type documented, every response body valid against its documented schema.
Later endpoints are covered automatically; keep this green.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.security import Role
from tests.conftest import _TABLES, auth, make_key
from tests.mail_harness import raw_mail

EXAMPLES = int(os.environ.get("SLADESK_FUZZ_EXAMPLES", "15"))


async def _prepare(engine: Any) -> str:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
    return await make_key(engine, Role.ADMIN)


# The schema is read at import (schemathesis' lazy fixture mode does not support this pytest);
# the database is bound to the app by the fixture below, once the test database exists.
APP = create_app(Settings(database_url="postgresql://bound-later/none", run_workers=False))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# POST /v1/mail/inbound takes raw e-mail (message/rfc822): messages and arbitrary bytes.
schemathesis.openapi.media_type("message/rfc822", raw_mail())


@pytest.fixture(scope="module")
def fuzz_target(settings: Settings, engine: Any) -> Any:
    # Schemathesis drives the ASGI app from its own event loops: no pooled connections.
    assert settings.database_url is not None
    unpooled = make_engine(settings.database_url.get_secret_value(), settings, pooled=False)
    key = asyncio.run(_prepare(unpooled))
    APP.state.engine = unpooled
    APP.state.sessionmaker = make_sessionmaker(unpooled)
    APP.state.settings = settings
    return APP, key


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_api_conforms_to_its_documentation(case: Any, fuzz_target: Any) -> None:
    _, key = fuzz_target
    case.call_and_validate(
        headers=auth(key),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
