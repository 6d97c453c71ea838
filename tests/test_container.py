"""The container image, without a Docker engine: its entry command run with its own
environment (read from the Dockerfile), its health check, and the lock it installs from."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
import tomllib
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from tests.conftest import _admin_execute
from tests.servers import free_port, serving

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
BIN = Path(sys.executable).parent  # where `pip install` put the `sladesk` command


def _final_stage() -> list[str]:
    """The last stage's instructions, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    last = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return lines[last:]


def _instruction(name: str) -> list[str]:
    return [ln[len(name) :].strip() for ln in _final_stage() if ln.upper().startswith(name + " ")]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for body in _instruction("ENV"):
        for pair in shlex.split(body):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def _exec_form(body: str) -> list[str]:
    command = json.loads(body)
    assert isinstance(command, list), f"use the exec form: {body}"
    return [str(part) for part in command]


def image_cmd() -> list[str]:
    [body] = _instruction("CMD")
    return _exec_form(body)


def healthcheck_cmd() -> list[str]:
    [body] = _instruction("HEALTHCHECK")
    return _exec_form(body.split(" CMD ", 1)[1])


async def _run(command: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    full = {**base, **env, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = await asyncio.create_subprocess_exec(
        *command, env=full, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _untouched(directory: Path) -> bool:
    return not directory.exists() or not any(directory.iterdir())


async def test_the_image_refuses_to_start_without_a_database(tmp_path: Path) -> None:
    env = image_env()
    assert "SLADESK_DATABASE_URL" not in env and env["SLADESK_ALLOW_EMBEDDED"] == "false"
    data_dir = env["SLADESK_DATA_DIR"]
    code, out, err = await _run(image_cmd(), env)
    assert code == 2 and out == ""
    message = err.strip()
    assert "\n" not in message and message.startswith("sladesk: error: SLADESK_DATABASE_URL")
    assert "SLADESK_ALLOW_EMBEDDED=true" in message and data_dir in message
    assert _untouched(Path(data_dir))
    # Told to run embedded, with a volume at the data directory, it starts (that part is
    # `sladesk serve` as tested elsewhere); here: it gets past the refusal.
    volume = tmp_path / "volume"
    code, _, err = await _run(
        ["sladesk", "migrate"],
        {**env, "SLADESK_ALLOW_EMBEDDED": "true", "SLADESK_DATA_DIR": str(volume)},
    )
    assert code == 0, err
    assert (volume / "pg" / "PG_VERSION").exists()


async def test_the_health_check_asks_readiness_on_the_configured_port(
    settings: Settings, db: AsyncEngine, database_url: str
) -> None:
    assert "8000" not in " ".join(healthcheck_cmd())
    env = image_env()
    ready_app = create_app(settings, engine=db)
    async with serving(ready_app) as base:
        port = base.rsplit(":", 1)[1]
        code, _, err = await _run(healthcheck_cmd(), {**env, "SLADESK_PORT": port})
        assert code == 0, err
    # Alive but not ready (a database without the schema): the check fails.
    name = f"sladesk_unmigrated_{uuid.uuid4().hex[:8]}"
    await _admin_execute(database_url, f'CREATE DATABASE "{name}"')
    empty = make_engine(re.sub(r"/sladesk_test_[0-9a-f]+", f"/{name}", database_url), settings)
    try:
        async with serving(create_app(settings, engine=empty)) as base:
            port = base.rsplit(":", 1)[1]
            code, _, err = await _run(healthcheck_cmd(), {**env, "SLADESK_PORT": port})
            assert code == 1 and "/readyz answered 503" in err
    finally:
        await empty.dispose()
        await _admin_execute(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')
    code, _, err = await _run(healthcheck_cmd(), {**env, "SLADESK_PORT": str(free_port())})
    assert code == 1 and err.count("\n") == 1


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_image_installs_from_a_lock_with_every_dependency_hashed() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    entries: dict[str, Any] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock.split("\n", 1)[1] if lock else ""):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        if match:
            entries[match[1].lower().replace("_", "-")] = re.findall(r"--hash=sha256:\w{64}", block)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    missing = [d for d in project["dependencies"] if _name(d) not in entries]
    assert missing == [], (
        f"pyproject dependencies missing from requirements.lock: {missing}; regenerate it with "
        "the command at the top of requirements.lock"
    )
    unhashed = [name for name, hashes in entries.items() if not hashes]
    assert unhashed == []
    assert "pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock" in (
        DOCKERFILE
    )
    assert re.search(r"pip install [^\n]*--no-deps /wheels/\*\.whl", DOCKERFILE)
