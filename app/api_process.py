"""One API process of `sladesk serve --workers N` (N > 1), started by app.supervisor.

    python -m app.api_process FD

FD is the listening socket the supervisor bound and passed on: every API process
accepts on that one socket, so the kernel hands each connection to one of them. The
supervisor writes the settings (a 4-byte length, then the pickled ``Settings``, with
the resolved database URL and ``run_workers`` off) on stdin and keeps stdin open: its
end of file means the supervisor is gone, and this process stops rather than outlive
it. The process writes one line, ``serving``, on stdout once it accepts connections;
anything else it would print goes to stderr, with its JSON log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import warnings
from typing import BinaryIO

SERVING = b"serving\n"


def read_settings(fd: int) -> object:
    """The settings the supervisor wrote on ``fd``. Unbuffered reads (never sys.stdin):
    a daemon thread keeps reading that fd, and a buffered reader it holds would block
    the interpreter's shutdown."""
    (size,) = struct.unpack("!I", _read_exactly(fd, 4))
    return pickle.loads(_read_exactly(fd, size))  # our own supervisor wrote it


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
    loop = asyncio.get_running_loop()

    def orphaned() -> None:
        while os.read(0, 4096):  # b"" at end of file: the supervisor is gone
            pass
        loop.call_soon_threadsafe(server.handle_exit, signal.SIGTERM, None)

    threading.Thread(target=orphaned, name="sladesk-supervisor-watch", daemon=True).start()
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
    from app.observability import configure_logging

    fd = int(sys.argv[1])
    # Our stdout is the supervisor's control pipe; keep it for the "serving" line and
    # send whatever else is printed to stderr, so no stray text reaches the pipe.
    control = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    settings = read_settings(0)
    configure_logging(getattr(settings, "log_level", "INFO"))
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    # uvicorn re-raises the signal it stopped on after its graceful shutdown: a clean
    # exit (status 0) rather than death by signal, so the supervisor can tell them apart.
    signal.signal(signal.SIGTERM, _interrupt)
    sock = socket.socket(fileno=fd)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, sock, control))


if __name__ == "__main__":
    main()
