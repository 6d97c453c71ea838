"""Starts and stops the background loops inside `sladesk serve` or `sladesk worker`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.workers.dispatcher import run_dispatcher
from app.workers.escalation import run_timers
from app.workers.listener import check_listen_url
from app.workers.mail_listener import run_mail_listener
from app.workers.mail_sender import run_mail_sender
from app.workers.retention import run_retention

logger = logging.getLogger("sladesk.workers")

Loop = Callable[[AsyncEngine, Settings, asyncio.Event], Coroutine[Any, Any, None]]

# Issues that add loops register them here: each runs until the stop event is set.
LOOPS: list[tuple[str, Loop]] = [
    ("timers", run_timers),
    ("webhooks", run_dispatcher),
    ("retention", run_retention),
    ("mail", run_mail_sender),
    ("mail-listener", run_mail_listener),
]


@contextlib.asynccontextmanager
async def running_workers(
    engine: AsyncEngine,
    settings: Settings,
    *,
    only: Collection[str] | None = None,
    without: Collection[str] = (),
) -> AsyncIterator[None]:
    """The LOOPS (those named in ``only``, if given; never those in ``without``) until
    the block ends."""
    check_listen_url(settings)
    stop = asyncio.Event()
    chosen = [
        (name, loop)
        for name, loop in LOOPS
        if (only is None or name in only) and name not in without
    ]
    tasks: list[asyncio.Task[None]] = [
        asyncio.create_task(loop(engine, settings, stop), name=f"sladesk-{name}")
        for name, loop in chosen
    ]
    logger.info("workers started: %s", ", ".join(name for name, _ in chosen))
    try:
        yield
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
