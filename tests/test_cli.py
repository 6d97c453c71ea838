"""`sladesk serve` as a user runs it: embedded PostgreSQL, admin key once, one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import uuid
from pathlib import Path

import httpx
import psutil

from app.migrate import head_revision
from tests.conftest import _admin_execute

ROOT = Path(__file__).resolve().parent.parent
KEY = re.compile(r"admin API key \(shown only this once, store it now\): (sld_\S+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    env.update(extra)
    return env


async def _start(data_dir: Path, port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-workers",
        env=_env(SLADESK_DATA_DIR=str(data_dir)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _read_until(proc: asyncio.subprocess.Process, marker: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(90):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError(f"exited before {marker!r}: {lines}")
            lines.append(raw.decode().rstrip())
            if marker in lines[-1]:
                return lines


async def _stop(proc: asyncio.subprocess.Process, sig: int) -> str:
    proc.send_signal(sig)
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return out.decode()


def _postgres_running(data_dir: Path) -> bool:
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "postgres" and str(data_dir / "pg") in " ".join(
            p.info["cmdline"] or []
        ):
            return True
    return False


async def test_serve_embedded_lifecycle(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", _free_port()
    base = f"http://127.0.0.1:{port}"
    first = await _start(data_dir, port)
    try:
        lines = await _read_until(first, "API docs at")
        assert lines[-1] == f"sladesk: API docs at {base}/docs"
        found = [m.group(1) for line in lines if (m := KEY.search(line))]
        assert len(found) == 1, lines
        key = found[0]
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}
        ) as api:
            assert (await api.get("/healthz")).json() == {"status": "ok"}
            assert (await api.get("/readyz")).json()["schema"] == head_revision()
            created = await api.post("/v1/organizations", json={"name": "Persisted"})
            assert created.status_code == 201

        # A second server on the same data directory: one clear line, no traceback.
        second = await _start(data_dir, _free_port())
        async with asyncio.timeout(60):
            _, err = await second.communicate()
        assert second.returncode == 1
        message = err.decode().strip()
        assert "\n" not in message and "Traceback" not in message
        assert message.startswith("sladesk: error: the data directory") and "in use" in message
    finally:
        if first.returncode is None:
            out_text = await _stop(first, signal.SIGTERM)
    assert first.returncode == 0
    assert "embedded PostgreSQL stopped" in out_text
    assert not _postgres_running(data_dir)

    # Restart: the data is still there and no new admin key is printed.
    again = await _start(data_dir, port)
    try:
        lines = await _read_until(again, "API docs at")
        assert not any(KEY.search(line) for line in lines)
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}
        ) as api:
            names = [o["name"] for o in (await api.get("/v1/organizations")).json()["items"]]
        assert names == ["Persisted"]
    finally:
        await _stop(again, signal.SIGINT)
    assert again.returncode == 0
    assert not _postgres_running(data_dir)


async def test_bad_setting_is_one_line() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", "serve",
        env=_env(SLADESK_PORT="eighty"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(60):
        _, err = await proc.communicate()
    assert proc.returncode == 2
    assert err.decode().strip().startswith("sladesk: error: invalid setting SLADESK_PORT:")
    assert err.decode().strip().count("\n") == 0


async def test_migrate_with_a_database_url(database_url: str) -> None:
    name = f"sladesk_cli_{uuid.uuid4().hex[:8]}"
    await _admin_execute(database_url, f'CREATE DATABASE "{name}"')
    target = re.sub(r"/sladesk_test_[0-9a-f]+", f"/{name}", database_url)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "migrate",
            env=_env(SLADESK_DATABASE_URL=target),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert f"database migrated from empty to {head_revision()}" in out.decode()
    finally:
        await _admin_execute(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')


async def _cli(data_dir: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app.cli", *args,
        env=_env(SLADESK_DATA_DIR=str(data_dir)), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(120):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_commands_share_the_running_serve_and_its_start_is_quiet(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = await _start(data_dir, port)
    try:
        lines = await _read_until(serve, "API docs at")
        # One line per fact: where the data lives, the database, the key, the URL.
        assert lines[0] == f"sladesk: data directory {data_dir.resolve()}"
        assert (
            lines[1] == f"sladesk: database: embedded PostgreSQL in {(data_dir / 'pg').resolve()}"
        )
        assert KEY.search(lines[2]) and lines[3] == f"sladesk: API docs at {base}/docs"
        assert len(lines) == 4

        using = f"the embedded PostgreSQL of the running sladesk serve (pid {serve.pid})"
        code, out, err = await _cli(
            data_dir, "load", "--json", "examples/004_mexico_specialized.toml"
        )
        assert code == 0 and using in err, err
        loaded = json.loads(out)
        org_id = loaded["ids"]["organization"]["Specialized support demo client"]
        [org_item] = [i for f in loaded["files"] for i in f["items"] if i["kind"] == "organization"]
        customer_key = org_item["customer_api_key"]
        code, out, err = await _cli(data_dir, "create-key", "--role", "agent", "--json")
        assert code == 0 and using in err, err
        agent_key = json.loads(out)["key"]
        code, out, err = await _cli(data_dir, "create-key", "--role", "admin", "--name", "ops")
        assert code == 0 and out.strip().startswith("sld_") and out.count("\n") == 1, out
        assert "created admin API key 'ops' (id " in err
        code, out, err = await _cli(data_dir, "migrate", "--json")
        assert code == 0 and json.loads(out) == {"from": head_revision(), "to": head_revision()}

        async with httpx.AsyncClient(base_url=base) as api:
            agents = await api.get("/v1/agents", headers={"Authorization": f"Bearer {agent_key}"})
            assert sorted(a["tier"] for a in agents.json()["items"]) == [1, 2, 3, 4]
            mine = await api.get(
                "/v1/organizations", headers={"Authorization": f"Bearer {customer_key}"}
            )
            assert [o["id"] for o in mine.json()["items"]] == [org_id]
    finally:
        if serve.returncode is None:
            serve.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            _, err_bytes = await serve.communicate()
    # Its log: JSON lines of its own; no initdb transcript, no runtime-dir warning.
    log = err_bytes.decode()
    assert "XDG_RUNTIME_DIR" not in log and "initdb" not in log and "Traceback" not in log
    for line in log.splitlines():
        entry = json.loads(line)
        assert entry["logger"].startswith("sladesk") or entry["level"] in ("warning", "error")
