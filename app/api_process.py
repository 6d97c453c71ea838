"""One API process of `sladesk serve --workers N` (N > 1), started by app.supervisor.

    python -m app.api_process reuse-port    # Linux
    python -m app.api_process FD            # elsewhere

On Linux each API process listens on its own socket bound to the same host:port with
SO_REUSEPORT, and the kernel spreads new connections evenly over those sockets. One
socket shared by all (FD, bound by the supervisor) is the fallback: there the first
process to wake accepts every connection waiting, so a burst of connections (a load
balancer's kept-alive pool, a benchmark) can end up in one process and leave the other
cores idle. The supervisor writes the settings (a 4-byte length, then the pickled ``Settings``, with
the resolved database URL and ``run_workers`` off) on stdin and keeps stdin open: its
end of file means the supervisor is gone, and this process stops rather than outlive
it. The process writes one line, ``serving``, on stdout once it accepts connections;
anything else it would print goes to stderr, with its JSON log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import warnings
from collections.abc import Callable
from typing import BinaryIO

SERVING = b"serving\n"
REUSE_PORT = "reuse-port"
BACKLOG = 2048  # uvicorn's default


def listening_socket(
    host: str, port: int, *, reuse_port: bool, listen: bool = True
) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets that say they
    # are TCP, and without it Nagle and delayed ACKs add ~40 ms to a small answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # As uvicorn: a restart may bind while old connections sit in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def read_settings(fd: int) -> object:
    """The settings the supervisor wrote on ``fd``. Unbuffered reads (never sys.stdin):
    a daemon thread keeps reading that fd, and a buffered reader it holds would block
    the interpreter's shutdown."""
    (size,) = struct.unpack("!I", _read_exactly(fd, 4))
    return pickle.loads(_read_exactly(fd, size))  # our own supervisor wrote it


def start_child() -> tuple[BinaryIO, object]:
    """What every child of the supervisor does first: keep stdout as the control pipe
    (for the "serving" line) and send whatever else is printed to stderr, so no stray
    text reaches the pipe; read the settings from stdin; configure logging.
    Returns (the control pipe, the settings)."""
    from app.config import Settings
    from app.observability import configure_logging

    control = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    settings = read_settings(0)
    assert isinstance(settings, Settings)
    configure_logging(settings.log_level)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    return control, settings


def watch_supervisor(loop: asyncio.AbstractEventLoop, gone: Callable[[], object]) -> None:
    """Call ``gone`` on ``loop`` once stdin ends: the supervisor is gone, and this
    process stops rather than outlive it."""

    def watch() -> None:
        while os.read(0, 4096):  # b"" at end of file
            pass
        loop.call_soon_threadsafe(gone)

    threading.Thread(target=watch, name="sladesk-supervisor-watch", daemon=True).start()


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise SystemExit("sladesk: the supervisor closed the settings pipe")
        data += chunk
    return data


def encode_settings(settings: object) -> bytes:
    payload = pickle.dumps(settings)
    return struct.pack("!I", len(payload)) + payload


async def serve(settings: object, sock: socket.socket, control: BinaryIO) -> None:
    import uvicorn

    from app.config import Settings
    from app.main import create_app
    from app.server import Server

    assert isinstance(settings, Settings)
    # The app makes (and disposes of) its own engine from the resolved URL; the
    # supervisor already migrated the database and runs the background loops.
    app = create_app(settings)
    # As the single-process `serve`: no uvicorn access line (query strings carry
    # stream tokens; ours logs paths only).
    config = uvicorn.Config(app, log_config=None, access_log=False, proxy_headers=True)
    server = Server(config, app)
    watch_supervisor(asyncio.get_running_loop(), lambda: server.handle_exit(signal.SIGTERM, None))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn offers no "started" event; a short poll, as in the single-process serve.
    while not server.started and not serving.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if server.started:
        control.write(SERVING)
        control.flush()
    control.close()
    await serving


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    from app.config import Settings

    where = sys.argv[1]
    control, settings = start_child()
    assert isinstance(settings, Settings)
    # uvicorn re-raises the signal it stopped on after its graceful shutdown: a clean
    # exit (status 0) rather than death by signal, so the supervisor can tell them apart.
    signal.signal(signal.SIGTERM, _interrupt)
    if where == REUSE_PORT:
        try:
            sock = listening_socket(settings.host, settings.port, reuse_port=True)
        except OSError as exc:  # one line; the supervisor reports the exit
            logging.getLogger("sladesk.api").error("cannot listen: %s", exc)
            raise SystemExit(1) from None
    else:
        sock = socket.socket(fileno=int(where))
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory()) as run:
        run.run(serve(settings, sock, control))


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (uvicorn[standard] brings it), as uvicorn
    itself would choose: an API process spends much of a request in the loop and the
    driver's protocol, which uvloop runs at a fraction of asyncio's cost."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - the default install has it
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    main()
