"""A background-loop process of `sladesk serve --workers N`, started by app.supervisor.

    python -m app.loop_process webhooks

Runs the named loops of app.workers.runner (today: the webhook dispatcher, when
SLADESK_WEBHOOK_PROCESSES > 0) on the database the supervisor already migrated. As an
API process (app.api_process): the settings come pickled on stdin, which stays open (its
end of file means the supervisor is gone, and this process stops rather than outlive
it); one line, ``serving``, on stdout once the loops run; everything else on stderr.
SIGTERM or SIGINT stops the loops (a dispatcher frees the leases of sends it had not
recorded) and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import BinaryIO

from app.api_process import SERVING, start_child, watch_supervisor


async def run(settings: object, loops: list[str], control: BinaryIO) -> None:
    from app.config import Settings
    from app.db import make_engine
    from app.workers.runner import running_workers

    assert isinstance(settings, Settings)
    assert settings.database_url is not None  # the supervisor passes the resolved URL
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch_supervisor(loop, stop.set)
    engine = make_engine(settings.database_url.get_secret_value(), settings)
    try:
        async with running_workers(engine, settings, only=loops):
            control.write(SERVING)
            control.flush()
            control.close()
            await stop.wait()
    finally:
        await engine.dispose()


def main() -> None:
    from app.workers.runner import LOOPS

    loops = sys.argv[1:]
    known = {name for name, _ in LOOPS}
    if not loops or not set(loops) <= known:
        raise SystemExit(f"usage: python -m app.loop_process LOOP… (of {sorted(known)})")
    control, settings = start_child()
    try:
        asyncio.run(run(settings, loops, control))
    except Exception:
        logging.getLogger("sladesk.workers").exception("the loop process failed")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
