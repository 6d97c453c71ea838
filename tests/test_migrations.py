"""The schema comes from the migrations; models and migrations must not drift."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
import zipfile
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.migrate import head_revision
from app.models import metadata
from tests.conftest import _admin_execute


def _diff(connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_models_and_migrations_do_not_drift(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


async def test_database_is_at_head(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    assert version == head_revision()


# ------------------------------------------------ where the migrations live and ship

ROOT = Path(__file__).resolve().parent.parent


async def _fresh_database(database_url: str) -> tuple[str, str]:
    name = f"sladesk_mig_{uuid.uuid4().hex[:8]}"
    await _admin_execute(database_url, f'CREATE DATABASE "{name}"')
    return name, re.sub(r"/sladesk_test_[0-9a-f]+", f"/{name}", database_url)


async def _run(*command: str, cwd: Path, **env: str) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLADESK_")}
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(300):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_the_migrations_are_the_top_level_alembic_directory() -> None:
    assert (ROOT / "alembic" / "env.py").exists() and (ROOT / "alembic" / "versions").is_dir()
    assert not (ROOT / "alembic" / "__init__.py").exists()  # never shadows the library
    assert not (ROOT / "app" / "migrations").exists()
    assert "script_location = alembic" in (ROOT / "alembic.ini").read_text()


async def test_alembic_works_from_the_repository_root(database_url: str) -> None:
    code, out, err = await _run(
        sys.executable, "-c", "import alembic; print(alembic.__file__)", cwd=ROOT
    )
    assert code == 0 and "site-packages" in out, (out, err)
    name, url = await _fresh_database(database_url)
    try:
        alembic_cli = str(Path(sys.executable).parent / "alembic")
        code, _, err = await _run(
            alembic_cli, "upgrade", "head", cwd=ROOT, SLADESK_DATABASE_URL=url
        )
        assert code == 0, err
        code, out, err = await _run(alembic_cli, "current", cwd=ROOT, SLADESK_DATABASE_URL=url)
        assert code == 0 and f"{head_revision()} (head)" in out, (out, err)
    finally:
        await _admin_execute(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_a_built_wheel_carries_the_migrations_and_applies_them_anywhere(
    database_url: str, tmp_path: Path
) -> None:
    wheels, site, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, err = await _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--wheel-dir", str(wheels), str(ROOT), cwd=tmp_path,
    )  # fmt: skip
    assert code == 0, err
    [wheel] = list(wheels.glob("sladesk-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(site)
    assert "app/migrations/env.py" in names and "app/migrations/script.py.mako" in names
    assert any(n.startswith(f"app/migrations/versions/{head_revision()}_") for n in names)
    assert not any(n.startswith("alembic/") for n in names)  # no top-level package shipped
    name, url = await _fresh_database(database_url)
    try:
        where = "import app, app.migrate as m; print(app.__file__, m.MIGRATIONS_DIR)"
        code, out, err = await _run(
            sys.executable, "-c", where, cwd=elsewhere, PYTHONPATH=str(site)
        )
        assert code == 0 and out.split() == [
            str(site / "app" / "__init__.py"),
            str(site / "app" / "migrations"),
        ], (out, err)
        code, out, err = await _run(
            sys.executable, "-m", "app.cli", "migrate", "--json",
            cwd=elsewhere, PYTHONPATH=str(site), SLADESK_DATABASE_URL=url,
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out) == {"from": None, "to": head_revision()}
    finally:
        await _admin_execute(database_url, f'DROP DATABASE "{name}" WITH (FORCE)')
