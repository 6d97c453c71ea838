"""Every server process frees the compiled plans and calendars that an edit replaced.

The edit's transaction sends ``NOTIFY sladesk_compiled`` (app.services.compiled); this
LISTEN drops the older versions of that plan or calendar from the process's cache. It
runs in every API process, with or without the background loops (each process has its
own cache), and is a memory hint only: requests never rely on it (the cache is keyed by
version), so a process that cannot LISTEN (a transaction pooler and no direct URL) just
goes without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.services import compiled
from app.workers.listener import listen, listen_url_of

logger = logging.getLogger("sladesk.workers")


@contextlib.asynccontextmanager
async def compiled_listener(engine: AsyncEngine, settings: Settings) -> AsyncIterator[None]:
    if settings.db_transaction_pooling and settings.listen_database_url is None:
        logger.info("compiled-terms cache: no LISTEN behind a transaction pooler")
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(
        listen(
            engine,
            compiled.CHANNEL,
            # (Re)connected: changes may have been missed meanwhile; start afresh.
            wake=compiled.clear,
            notify=compiled.forget_notified,
            stop=stop,
            listening=asyncio.Event(),
            name="compiled",
            url=listen_url_of(settings),
        ),
        name="sladesk-compiled-listen",
    )
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
