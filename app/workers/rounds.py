"""The loop every worker runs: a round, then sleep until its delay or a wake-up.

A round returns the seconds to wait before the next one (0: go again at once). A failed
round is logged and retried with exponential backoff, so a database outage never ends
the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("sladesk.workers")


async def run_rounds(
    stop: asyncio.Event,
    wake: asyncio.Event,
    round_: Callable[[], Awaitable[float]],
    *,
    what: str,
    worker: str,
    backoff_max: float,
) -> None:
    backoff = 0.0
    while not stop.is_set():
        # Cleared before the round reads its queue: a NOTIFY that arrives during the
        # round wakes the sleep that follows it.
        wake.clear()
        try:
            delay = await round_()
            backoff = 0.0
        except Exception:
            backoff = min(max(backoff * 2, 0.1), backoff_max)
            logger.warning(
                "%s round failed; retrying in %.1f s",
                what,
                backoff,
                exc_info=True,
                extra={"worker": worker},
            )
            delay = backoff
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=delay)
        else:
            await asyncio.sleep(0)
