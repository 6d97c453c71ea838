"""`sladesk serve | worker | migrate | create-key | load`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Iterator

from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings, describe_settings_error
from app.db import DataDirLocked, EmbeddedPostgres, make_engine, make_sessionmaker
from app.observability import configure_logging


def say(message: str) -> None:
    print(f"sladesk: {message}", flush=True)


def fail(message: str, code: int = 1) -> None:
    print(f"sladesk: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def load_settings(**overrides: object) -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        fail(describe_settings_error(exc), 2)
    clean = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=clean) if clean else settings


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """The settings with a database URL: the configured one, or a private embedded server."""
    if settings.database_url is not None:
        yield settings
        return
    embedded = EmbeddedPostgres(settings.data_dir)
    try:
        url = embedded.start()
    except DataDirLocked as exc:
        fail(str(exc))
    except Exception as exc:  # pgserver failures are long; one line is what a user needs
        fail(f"could not start the embedded PostgreSQL in {settings.data_dir}: {exc}")
    say(f"embedded PostgreSQL running in {(settings.data_dir / 'pg').resolve()}")
    try:
        yield settings.model_copy(update={"database_url": SecretStr(url)})
    finally:
        embedded.stop()
        say("embedded PostgreSQL stopped")


@contextlib.asynccontextmanager
async def migrated_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    from app.migrate import upgrade

    assert settings.database_url is not None
    engine = make_engine(settings.database_url.get_secret_value(), settings)
    try:
        try:
            await upgrade(engine)
        except OSError as exc:
            fail(f"cannot reach the database: {exc}")
        yield engine
    finally:
        await engine.dispose()


async def _bootstrap_key(engine: AsyncEngine, settings: Settings) -> str | None:
    from app.services.api_keys import bootstrap_admin_key

    wanted = (
        settings.bootstrap_admin_key.get_secret_value() if settings.bootstrap_admin_key else None
    )
    async with make_sessionmaker(engine)() as session, session.begin():
        return await bootstrap_admin_key(session, wanted)


async def _serve(settings: Settings) -> None:
    import uvicorn

    from app.main import create_app

    async with migrated_engine(settings) as engine:
        key = await _bootstrap_key(engine, settings)
        app = create_app(settings, engine=engine)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, proxy_headers=True
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        # uvicorn offers no "started" event; a short poll keeps start-up output truthful.
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if server.started:  # announce only what is true: the port is open
            if key is not None and settings.bootstrap_admin_key is None:
                say(f"admin API key (shown only this once, store it now): {key}")
            say(f"API docs at http://{settings.host}:{settings.port}/docs")
        await serving
        if not server.started:
            fail(f"could not serve on {settings.host}:{settings.port} (see the log above)")


async def _worker(settings: Settings) -> None:
    from app.workers.runner import running_workers

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with migrated_engine(settings) as engine, running_workers(engine, settings):
        say("worker running; Ctrl-C to stop")
        await stop.wait()


async def _migrate(settings: Settings) -> None:
    from app.migrate import head_revision

    async with migrated_engine(settings):
        say(f"database migrated to {head_revision()}")


async def _create_key(settings: Settings, role: str, name: str) -> None:
    from app.schemas.api_keys import ApiKeyCreate
    from app.security import Role
    from app.services.api_keys import create_api_key

    async with migrated_engine(settings) as engine:
        async with make_sessionmaker(engine)() as session, session.begin():
            _, key = await create_api_key(session, ApiKeyCreate(name=name, role=Role(role)))
        say(f"{role} API key (shown only this once): {key}")


async def _load(settings: Settings, files: list[str]) -> None:
    from datetime import UTC, datetime
    from pathlib import Path

    from app.services.loader import LoadError, load_documents, read_file

    try:  # read every file before touching the database: a typo fails fast
        documents = [(Path(f), read_file(Path(f))) for f in files]
    except LoadError as exc:
        fail(f"{exc} (nothing was loaded)")
    async with migrated_engine(settings) as engine:
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                results = await load_documents(session, documents, now=datetime.now(UTC))
        except LoadError as exc:
            fail(f"{exc} (nothing was loaded)")
    for path, loaded in results:
        for item in loaded:
            say(f"{path}: {item}")
        counts = {o: sum(1 for i in loaded if i.outcome == o) for o in ("created", "updated")}
        unchanged = len(loaded) - sum(counts.values())
        say(
            f"{path}: {counts['created']} created, {counts['updated']} updated, "
            f"{unchanged} unchanged"
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sladesk", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (and the workers)")
    serve.add_argument("--host", help="bind address (SLADESK_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SLADESK_PORT, default 8000)")
    serve.add_argument("--no-workers", action="store_true", help="API only; run `sladesk worker`")
    commands.add_parser("worker", help="run only the background loops (needs a database URL)")
    commands.add_parser("migrate", help="apply the database migrations and exit")
    create_key = commands.add_parser("create-key", help="create an API key (e.g. a lost admin key)")
    create_key.add_argument("--role", choices=["admin", "agent", "mail"], default="admin")
    create_key.add_argument("--name", default="created from the command line")
    load = commands.add_parser(
        "load", help="create or update calendars, plans and demo customers from TOML files"
    )
    load.add_argument("files", nargs="+", metavar="FILE", help="e.g. examples/002_vitrium.toml")
    args = parser.parse_args(argv)

    overrides: dict[str, object] = {}
    if args.command == "serve":
        overrides = {"host": args.host, "port": args.port}
        if args.no_workers:
            overrides["run_workers"] = False
    settings = load_settings(**overrides)
    configure_logging(settings.log_level)

    # uvicorn re-raises a caught SIGTERM after its graceful shutdown; turning it into
    # KeyboardInterrupt lets the embedded PostgreSQL be stopped cleanly on the way out.
    signal.signal(signal.SIGTERM, _interrupt)

    if args.command == "worker" and settings.database_url is None:
        fail("`sladesk worker` needs SLADESK_DATABASE_URL (the embedded database is serve's)")
    with database(settings) as ready:
        try:
            if args.command == "serve":
                asyncio.run(_serve(ready))
            elif args.command == "worker":
                asyncio.run(_worker(ready))
            elif args.command == "migrate":
                asyncio.run(_migrate(ready))
            elif args.command == "create-key":
                asyncio.run(_create_key(ready, args.role, args.name))
            elif args.command == "load":
                asyncio.run(_load(ready, args.files))
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
