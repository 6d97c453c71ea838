"""Schemathesis against a real sladesk server, with a key of each role.

Shared by tests/test_openapi_fuzz.py (a short run in CI) and bench/fuzz.py (the long run):

- :class:`LiveServer` serves the app with uvicorn on 127.0.0.1 (an ephemeral port) in a
  thread, against a migrated database;
- :func:`seed` fills that database through the API, as a user would: a calendar, plans, an
  organization with contacts, a contract, tickets in several states, work logs, a webhook
  and its deliveries, and one API key per role (the customer key bound to the seeded
  organization and contact), so that every operation has real data to reach;
- :func:`run_schemathesis` runs the ``st`` command line (every phase, stateful links
  included, every check) with one key and returns its exit code and output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.config import Settings
from app.main import create_app

ROLES = ("admin", "agent", "customer")
PHASES = "examples,coverage,fuzzing,stateful"
ST = str(Path(sys.executable).with_name("st"))
ROOT = Path(__file__).resolve().parents[1]
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = "tests.fuzz_hooks"


class LiveServer:
    """The app under uvicorn in a background thread (its own event loop and engine)."""

    def __init__(self, settings: Settings) -> None:
        app = create_app(settings)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fuzz-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fuzz server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    @property
    def url(self) -> str:
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"


def fuzz_settings(database_url: str) -> Settings:
    # No workers: deliveries stay pending (nothing leaves the machine); private webhook
    # targets are refused as in production, and a fuzzed host name is never resolved
    # (http is allowed so that the seeded subscription can point at a literal address).
    return Settings(
        database_url=database_url,
        run_workers=False,
        webhooks_allow_private=False,
        webhooks_allow_http=True,
        db_pool_size=5,
        db_max_overflow=5,
        # An event stream is one long response by design; the fuzzer reads each response
        # whole and holds every answer to a response-time limit, so streams end soon here
        # (heartbeats included), as SLADESK_STREAM_MAX_SECONDS documents.
        stream_max_seconds=2.0,
        stream_heartbeat_seconds=0.5,
    )


@dataclass
class Seeded:
    keys: dict[str, str]


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return dict(response.json()) if response.content else {}


def seed(base_url: str, admin_key: str) -> Seeded:
    """Data for every operation to reach, and one key per role."""
    api = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60
    )
    with api:
        week = {d: ["08:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
        calendar = _ok(
            api.post(
                "/v1/calendars",
                json={"name": "Fuzz hours", "timezone": "America/Vancouver", "weekly_hours": week},
            )
        )
        spare = _ok(
            api.post(
                "/v1/calendars",
                json={"name": "Fuzz spare", "timezone": "UTC", "weekly_hours": "24x7"},
            )
        )
        targets = [
            {"metric": "first_response", "minutes": 60, "warn_at_percent": [50, 75]},
            {"metric": "resolution", "minutes": 960, "on_breach": {"escalate_to_tier": 2}},
        ]
        base = _ok(
            api.post(
                "/v1/plans",
                json={
                    "code": "fuzz-base",
                    "name": "Fuzz base",
                    "level": 1,
                    "calendar_id": calendar["id"],
                    "channels": ["email", "web", "phone"],
                    "targets": targets,
                    "auto_close": {"contact_attempts": 3, "notice_business_days": 5},
                    "billing": {"after_hours": {"allowed": True, "multiplier": 1.5}},
                },
            )
        )
        _ok(
            api.post(
                "/v1/plans",
                json={
                    "code": "fuzz-addon",
                    "name": "Fuzz add-on",
                    "level": 2,
                    "requires": "fuzz-base",
                    "calendar_id": spare["id"],
                    "channels": ["phone"],
                    "targets": [{"metric": "first_response", "minutes": 30, "clock": "24x7"}],
                },
            )
        )
        org = _ok(api.post("/v1/organizations", json={"name": "Fuzz Org", "locale": "es-MX"}))
        contact = _ok(
            api.post(
                f"/v1/organizations/{org['id']}/contacts",
                json={"name": "Ana Fuzz", "email": "ana@fuzz.example"},
            )
        )
        _ok(
            api.post(
                f"/v1/organizations/{org['id']}/contacts",
                json={"name": "Eve User", "email": "eve@fuzz.example", "role": "end_user"},
            )
        )
        agent = _ok(api.post("/v1/agents", json={"name": "Al Agent", "email": "al@vendor.example"}))
        contract = _ok(
            api.post(
                "/v1/contracts",
                json={
                    "organization_id": org["id"],
                    "plan_id": base["id"],
                    "starts_on": "2025-01-01",
                    "hours_budget": 40,
                },
            )
        )
        assert contract
        received = (datetime.now(UTC) - timedelta(days=3)).isoformat()
        worked = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        tickets = []
        for n, severity in enumerate(("critical", "high", "medium")):
            tickets.append(
                _ok(
                    api.post(
                        "/v1/tickets",
                        json={
                            "organization_id": org["id"],
                            "contact_id": contact["id"],
                            "channel": "email",
                            "severity": severity,
                            "category": "technical",
                            "subject": f"Fuzz ticket {n}",
                            "description": "seeded",
                            "received_at": received,
                        },
                    )
                )
            )
        first, second, third = (t["id"] for t in tickets)
        _ok(api.post(f"/v1/tickets/{first}/actions/assign", json={"agent_id": agent["id"]}))
        _ok(api.post(f"/v1/tickets/{first}/actions/reply", json={"body": "On it."}))
        _ok(
            api.post(
                f"/v1/tickets/{first}/worklogs",
                json={"kind": "work", "minutes": 30, "occurred_at": worked},
            )
        )
        _ok(api.put(f"/v1/tickets/{first}/estimate", json={"minutes": 120}))
        _ok(api.post(f"/v1/tickets/{second}/actions/request_info", json={"body": "Logs?"}))
        _ok(
            api.post(
                f"/v1/tickets/{third}/actions/resolve",
                json={"resolution": "fix", "body": "Fixed."},
            )
        )
        _ok(
            api.post(
                "/v1/webhooks",
                json={"url": "http://93.184.215.14/hooks", "event_types": ["*"]},
            )
        )
        _ok(api.post(f"/v1/tickets/{second}/actions/note", json={"body": "internal"}))
        keys = {"admin": admin_key}
        keys["agent"] = _ok(api.post("/v1/api-keys", json={"name": "fuzz agent", "role": "agent"}))[
            "key"
        ]
        keys["customer"] = _ok(
            api.post(
                "/v1/api-keys",
                json={
                    "name": "fuzz customer",
                    "role": "customer",
                    "organization_id": org["id"],
                    "contact_id": contact["id"],
                },
            )
        )["key"]
    return Seeded(keys=keys)


def run_schemathesis(
    base_url: str,
    key: str,
    *,
    max_examples: int,
    seed_value: int | None = None,
    workers: int = 1,
    phases: str = PHASES,
    extra: tuple[str, ...] = (),
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """`st run` with every phase and every check; returns the finished process."""
    command = [
        ST,
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        phases,
        "--max-examples",
        str(max_examples),
        "--workers",
        str(workers),
        "--header",
        f"Authorization: Bearer {key}",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--no-color",
        *extra,
    ]
    if seed_value is not None:
        command += ["--seed", str(seed_value)]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "SCHEMATHESIS_TELEMETRY": "false",
        "COLUMNS": "120",
    }
    # Its own working directory: Schemathesis keeps a cache where it runs.
    with tempfile.TemporaryDirectory(prefix="sladesk-fuzz-") as workdir:
        return subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False,
            cwd=workdir,
        )  # fmt: skip


def summary_lines(output: str) -> list[str]:
    """The closing lines of a run (the summary Schemathesis prints at the end)."""
    lines = output.rstrip().splitlines()
    for i, line in enumerate(lines):
        if "SUMMARY" in line:
            return [ln for ln in lines[i:] if ln.strip()]
    return lines[-15:]
