"""`sladesk serve | worker | migrate | create-key | load | healthcheck`.

What a command did goes to stdout (the API key of `create-key`, the records of `load`,
or one JSON document with `--json`); how it got there (data directory, database) goes to
stderr, so `KEY=$(sladesk create-key)` captures the key alone. `serve` prints its facts
to stdout, one line each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import dburl
from app.config import Settings, describe_settings_error
from app.db import DataDirLocked, EmbeddedPostgres, make_engine, make_sessionmaker
from app.observability import configure_logging

Say = Callable[[str], None]


def say(message: str) -> None:
    print(f"sladesk: {message}", flush=True)


def note(message: str) -> None:
    print(f"sladesk: {message}", file=sys.stderr, flush=True)


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


def embedded_refusal(settings: Settings) -> str:
    return (
        "SLADESK_DATABASE_URL is not set and SLADESK_ALLOW_EMBEDDED is false: set "
        "SLADESK_DATABASE_URL=postgresql://user:password@host:5432/database, or run the "
        "embedded PostgreSQL with SLADESK_ALLOW_EMBEDDED=true and a volume mounted at "
        f"{settings.data_dir} (SLADESK_DATA_DIR), or its data dies with the container"
    )


@contextlib.contextmanager
def database(settings: Settings, command: str, out: Say) -> Iterator[Settings]:
    """The settings with a database URL: the configured one, the embedded server that a
    running `sladesk serve` published in the data directory, or a private embedded one."""
    if settings.database_url is not None:
        out(f"database {dburl.display(settings.database_url.get_secret_value())}")
        yield settings
        return
    embedded = EmbeddedPostgres(settings.data_dir, command=command)
    try:
        url = embedded.start()
    except DataDirLocked as exc:
        if exc.command != "serve" or command in ("serve", "worker"):
            fail(str(exc))
        url = _published_by_serve(embedded, exc)
        out(f"database: the embedded PostgreSQL of the running sladesk serve (pid {exc.pid})")
        yield settings.model_copy(update={"database_url": SecretStr(url)})
        return
    except Exception as exc:  # pgserver failures are long; one line is what a user needs
        fail(f"could not start the embedded PostgreSQL in {settings.data_dir}: {exc}")
    out(f"data directory {settings.data_dir.resolve()}")
    out(f"database: embedded PostgreSQL in {embedded.pg_dir}")
    try:
        if command == "serve":
            embedded.publish(url)  # `load`, `create-key` and `migrate` use it meanwhile
        yield settings.model_copy(update={"database_url": SecretStr(url)})
    finally:
        embedded.stop()
        out("embedded PostgreSQL stopped")


def _published_by_serve(embedded: EmbeddedPostgres, locked: DataDirLocked) -> str:
    try:
        return embedded.wait_for_published(locked.pid, timeout=90)
    except TimeoutError:
        fail(
            f"sladesk serve (pid {locked.pid}) holds {embedded.data_dir.resolve()} but has not "
            "started its database yet; try again when it prints its URL"
        )
    except ProcessLookupError:
        fail(f"sladesk serve (pid {locked.pid}) stopped; run this command again")
    raise AssertionError("unreachable")


async def _current_revision(engine: AsyncEngine) -> str | None:
    from sqlalchemy import text

    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return str(revision) if revision is not None else None


@contextlib.asynccontextmanager
async def migrated_engine(
    settings: Settings, before: list[str | None] | None = None
) -> AsyncIterator[AsyncEngine]:
    """An engine on a database at the migrations' head; ``before`` receives the revision
    the database was at. Failing to reach the database is one line, not a traceback."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    from app.migrate import upgrade

    assert settings.database_url is not None
    raw = settings.database_url.get_secret_value()
    engine = make_engine(raw, settings)
    try:
        try:
            revision = await _current_revision(engine)
            await upgrade(engine)
        except (OSError, TimeoutError, DBAPIError, asyncpg.PostgresError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            detail = reason[0] if reason else type(exc).__name__
            fail(f"cannot use the database {dburl.display(raw)}: {detail}")
        if before is not None:
            before.append(revision)
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
    from app.server import Server

    async with migrated_engine(settings) as engine:
        key = await _bootstrap_key(engine, settings)
        app = create_app(settings, engine=engine)
        # No uvicorn access line: ours (observability) logs paths, never query strings,
        # where a stream token travels.
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            proxy_headers=True,
        )
        server = Server(config, app)
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


async def _serve_processes(settings: Settings) -> None:
    """`serve` with ``settings.workers`` > 1 API processes (app.supervisor): the database,
    its migrations, the admin key and the background loops here, once; then the API
    processes on the host:port bound here; the start-up lines once they all serve."""
    from app.supervisor import ApiProcesses, bind
    from app.workers.compiled_listener import compiled_listener
    from app.workers.runner import running_workers

    async with migrated_engine(settings) as engine:
        key = await _bootstrap_key(engine, settings)
        try:
            sock = bind(settings.host, settings.port)
        except OSError as exc:
            logging.getLogger("sladesk.supervisor").error("%s", exc)
            fail(f"could not serve on {settings.host}:{settings.port} (see the log above)")
        loops = contextlib.AsyncExitStack()
        webhook_processes = settings.webhook_processes if settings.run_workers else 0
        if settings.run_workers:
            without = ("webhooks",) if webhook_processes else ()
            await loops.enter_async_context(running_workers(engine, settings, without=without))
            # The timer's calendars come from this process's compiled cache, as in `worker`.
            await loops.enter_async_context(compiled_listener(engine, settings))

        def announce() -> None:  # the same lines, in the same order, as one process
            if key is not None and settings.bootstrap_admin_key is None:
                say(f"admin API key (shown only this once, store it now): {key}")
            say(f"API docs at http://{settings.host}:{settings.port}/docs")

        with sock:
            async with loops:
                # The port bound (--port 0 picks one): every API process listens on it.
                bound = settings.model_copy(update={"port": sock.getsockname()[1]})
                processes = ApiProcesses(bound, sock, settings.workers, webhook_processes)
                code = await processes.run(announce)
    if code != 0:
        fail("an API process could not start (see the log above)")


async def _worker(settings: Settings) -> None:
    from app.workers.compiled_listener import compiled_listener
    from app.workers.runner import running_workers

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with (
        migrated_engine(settings) as engine,
        running_workers(engine, settings),
        compiled_listener(engine, settings),  # the timer's calendars, as serve's
    ):
        say("worker running; Ctrl-C to stop")
        await stop.wait()


async def _migrate(settings: Settings, as_json: bool) -> None:
    from app.migrate import head_revision

    before: list[str | None] = []
    async with migrated_engine(settings, before):
        head = head_revision()
    if as_json:
        print(json.dumps({"from": before[0], "to": head}))
    elif before[0] == head:
        say(f"database already at {head}; nothing to do")
    else:
        say(f"database migrated from {before[0] or 'empty'} to {head}")


async def _create_key(settings: Settings, role: str, name: str, as_json: bool) -> None:
    from app.schemas.api_keys import ApiKeyCreate
    from app.security import Role
    from app.services.api_keys import create_api_key

    async with (
        migrated_engine(settings) as engine,
        make_sessionmaker(engine)() as session,
        session.begin(),
    ):
        row, key = await create_api_key(session, ApiKeyCreate(name=name, role=Role(role)))
    if as_json:
        print(json.dumps({"id": str(row.id), "name": name, "role": role, "key": key}))
        return
    note(f"created {role} API key {name!r} (id {row.id}); it is shown only this once:")
    print(key, flush=True)


def _read_files(files: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    """Every file read before the database is touched: a typo fails fast."""
    from app.services.loader import LoadError, read_file

    try:
        return [(Path(f), read_file(Path(f))) for f in files]
    except LoadError as exc:
        fail(f"{exc} (nothing was loaded)")
    raise AssertionError("unreachable")


async def _load(
    settings: Settings, documents: list[tuple[Path, dict[str, Any]]], as_json: bool
) -> None:
    from datetime import UTC, datetime

    from app.services.loader import LoadError, load_documents

    async with migrated_engine(settings) as engine:
        try:
            async with make_sessionmaker(engine)() as session, session.begin():
                results = await load_documents(session, documents, now=datetime.now(UTC))
        except LoadError as exc:
            fail(f"{exc} (nothing was loaded)")
    if as_json:
        print(json.dumps(_load_json(results), indent=2))
        return
    for path, loaded in results:
        for item in loaded:
            say(f"{path}: {item}")
            if item.secret is not None:
                say(f"{path}:   its customer API key (shown only this once): {item.secret}")
        counts = {o: sum(1 for i in loaded if i.outcome == o) for o in ("created", "updated")}
        unchanged = len(loaded) - sum(counts.values())
        say(
            f"{path}: {counts['created']} created, {counts['updated']} updated, "
            f"{unchanged} unchanged"
        )


def _load_json(results: list[Any]) -> dict[str, Any]:
    """Every record with its id, per file, and ``ids``: kind -> key -> id, for scripts."""
    ids: dict[str, dict[str, str]] = {}
    files = []
    for path, loaded in results:
        files.append({"path": str(path), "items": [item.as_json() for item in loaded]})
        for item in loaded:
            ids.setdefault(item.kind, {})[item.key] = str(item.id)
    return {"files": files, "ids": ids}


def _healthcheck(settings: Settings, path: str) -> None:
    """Exit 0 if the server on this machine answers ``path`` (the container's HEALTHCHECK)."""
    import urllib.error
    import urllib.request

    host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    url = f"http://{host}:{settings.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:
            status = reply.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        fail(f"{url}: {getattr(exc, 'reason', exc)}")
    if status != 200:
        fail(f"{url} answered {status}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"give a number of processes (1 or more), not {value!r}")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sladesk", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (and the workers)")
    serve.add_argument("--host", help="bind address (SLADESK_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (SLADESK_PORT, default 8000)")
    serve.add_argument(
        "--workers",
        type=_positive,
        metavar="N",
        help="API processes on the one port (SLADESK_WORKERS, default: the number of cores); "
        "the background loops run once, in the supervising process",
    )
    serve.add_argument(
        "--no-workers",
        action="store_true",
        help="API only, no background loops; run `sladesk worker`",
    )
    commands.add_parser("worker", help="run only the background loops (needs a database URL)")
    migrate = commands.add_parser("migrate", help="apply the database migrations and exit")
    create_key = commands.add_parser(
        "create-key", help="create an API key and print it (stdout) once"
    )
    create_key.add_argument("--role", choices=["admin", "agent", "mail"], default="admin")
    create_key.add_argument("--name", default="created from the command line")
    load = commands.add_parser(
        "load", help="create or update calendars, plans, agents and demo customers from TOML"
    )
    load.add_argument("files", nargs="+", metavar="FILE", help="e.g. examples/002_vitrium.toml")
    for command in (migrate, create_key, load):
        command.add_argument("--json", action="store_true", help="print one JSON document")
    health = commands.add_parser(
        "healthcheck", help="exit 0 if the server on this machine is ready (/readyz)"
    )
    health.add_argument("--path", default="/readyz", help="default /readyz")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if args.command == "serve":
        overrides = {"host": args.host, "port": args.port, "workers": args.workers}
        if args.no_workers:
            overrides["run_workers"] = False
    settings = load_settings(**overrides)
    configure_logging(settings.log_level)
    # platformdirs warns when it falls back to /tmp for the embedded server's socket.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

    if args.command == "healthcheck":
        _healthcheck(settings, args.path)
        return
    if args.command == "worker" and settings.database_url is None:
        fail("`sladesk worker` needs SLADESK_DATABASE_URL (the embedded database is serve's)")
    if settings.database_url is None and not settings.allow_embedded:
        fail(embedded_refusal(settings), 2)
    if args.command in ("serve", "worker"):
        from app.workers.listener import check_listen_url

        try:
            if settings.run_workers or args.command == "worker":
                check_listen_url(settings)
        except ValueError as exc:
            fail(str(exc), 2)

    # uvicorn re-raises a caught SIGTERM after its graceful shutdown; turning it into
    # KeyboardInterrupt lets the embedded PostgreSQL be stopped cleanly on the way out.
    signal.signal(signal.SIGTERM, _interrupt)

    documents = _read_files(args.files) if args.command == "load" else []
    out = say if args.command in ("serve", "worker") else note
    with database(settings, args.command, out) as ready:
        try:
            if args.command == "serve" and ready.workers > 1:
                asyncio.run(_serve_processes(ready))
            elif args.command == "serve":
                asyncio.run(_serve(ready))
            elif args.command == "worker":
                asyncio.run(_worker(ready))
            elif args.command == "migrate":
                asyncio.run(_migrate(ready, args.json))
            elif args.command == "create-key":
                asyncio.run(_create_key(ready, args.role, args.name, args.json))
            elif args.command == "load":
                asyncio.run(_load(ready, documents, args.json))
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
