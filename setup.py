"""The build step pyproject.toml cannot say: ship the top-level alembic/ migrations inside
the package as app/migrations, so `sladesk serve` applies them from a wheel, anywhere."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithMigrations(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads alembic/ in the checkout (app/migrate.py)
        target = Path(self.build_lib) / "app" / "migrations"
        shutil.copytree(
            Path(__file__).parent / "alembic",
            target,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )


setup(cmdclass={"build_py": BuildPyWithMigrations})
