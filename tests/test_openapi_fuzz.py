"""Schemathesis over the whole OpenAPI document, against a real server, with each role.

A fresh database is seeded through the API (tests/fuzz_harness.py: a calendar, plans, an
organization with contacts and a contract, tickets in several states, work logs, a webhook,
and one key per role — the customer key bound to that organization), then ``st run`` drives
every operation with the admin, the agent and the customer key in turn: every phase
(examples, coverage, fuzzing, stateful links) and every check (no 5xx; status codes,
content types, headers and bodies as documented; schema-invalid data refused; schema-valid
data accepted unless a rule no schema can state refuses it, tests/fuzz_hooks.py; 405 and
``Allow`` right; no auth ignored; no use after delete...). Later endpoints are covered
automatically; keep this green.

CI cost is bounded: a few examples per operation (``SLADESK_FUZZ_EXAMPLES``, default 2),
and the coverage phase (deterministic boundary and negative values of every parameter,
the same requests whatever the key; it is most of the time) with the admin key only —
``SLADESK_FUZZ_ALL_PHASES=1`` runs it for every role. The runs go at once, as separate
``st`` processes against the one server (each role's requests are independent of the
others'; the admin's coverage phase is split in two by path, since it is the longest), so
the test takes the time of its longest run on a machine with two cores, not their sum.
The long run, every phase with every role and 50 examples per operation, is
``python bench/fuzz.py``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.config import Settings
from app.db import make_engine
from app.security import Role
from tests.conftest import make_key
from tests.fuzz_harness import (
    PHASES,
    ROLES,
    ST,
    LiveServer,
    Seeded,
    fuzz_settings,
    run_schemathesis,
    seed,
    summary_lines,
)

EXAMPLES = int(os.environ.get("SLADESK_FUZZ_EXAMPLES", "2"))
SEED = int(os.environ.get("SLADESK_FUZZ_SEED", "20261207"))
ALL_PHASES = os.environ.get("SLADESK_FUZZ_ALL_PHASES") == "1"


@pytest.fixture(scope="module")
def fuzzed_server(settings: Settings, engine: Any) -> Any:
    if shutil.which(ST) is None:
        pytest.fail(f"the Schemathesis command line ({ST}) is not installed")
    assert settings.database_url is not None
    url = settings.database_url.get_secret_value()

    async def admin_key() -> str:
        unpooled = make_engine(url, settings, pooled=False)
        try:
            from sqlalchemy import text

            from tests.conftest import _TABLES

            async with unpooled.begin() as conn:
                await conn.execute(text(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE"))
            return await make_key(unpooled, Role.ADMIN)
        finally:
            await unpooled.dispose()

    key = asyncio.run(admin_key())
    with LiveServer(fuzz_settings(url)) as server:
        yield server, seed(server.url, key)


# The admin's coverage phase, split by path into two runs of similar length.
_SPLIT = "^/v1/(tickets|mail)"
# name -> (role, phases, extra st options)
RUNS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "admin-coverage-tickets-mail": ("admin", "coverage", ("--include-path-regex", _SPLIT)),
    "admin-coverage-rest": ("admin", "coverage", ("--exclude-path-regex", _SPLIT)),
    "admin": ("admin", "examples,fuzzing,stateful", ()),
    **{
        role: (role, PHASES if ALL_PHASES else "examples,fuzzing,stateful", ())
        for role in ROLES
        if role != "admin"
    },
}


@pytest.fixture(scope="module")
def fuzz_runs(fuzzed_server: Any) -> dict[str, subprocess.CompletedProcess[str]]:
    server, seeded = fuzzed_server
    assert isinstance(seeded, Seeded)
    assert {role for role, _, _ in RUNS.values()} == set(ROLES)

    def run(name: str) -> subprocess.CompletedProcess[str]:
        role, phases, extra = RUNS[name]
        started = time.monotonic()
        try:
            return run_schemathesis(
                server.url,
                seeded.keys[role],
                max_examples=EXAMPLES,
                seed_value=SEED,
                phases=phases,
                extra=extra,
                timeout=1200,
            )
        finally:
            # Which run is the longest (seen with -s, or in the captured output of a
            # failure): the one to split next when CI time grows.
            print(f"fuzz run {name}: {time.monotonic() - started:.0f} s")

    with ThreadPoolExecutor(max_workers=len(RUNS)) as pool:
        return dict(zip(RUNS, pool.map(run, RUNS), strict=True))


@pytest.mark.parametrize("name", list(RUNS))
def test_api_conforms_to_its_documentation(
    fuzz_runs: dict[str, subprocess.CompletedProcess[str]], name: str
) -> None:
    result = fuzz_runs[name]
    summary = "\n".join(summary_lines(result.stdout))
    assert result.returncode == 0, f"{name}:\n{result.stdout[-30000:]}\n{result.stderr[-3000:]}"
    assert "Tested:" in summary, summary
