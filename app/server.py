"""The HTTP server `sladesk serve` runs: uvicorn, ending event streams on shutdown.

uvicorn shuts down gracefully: it stops accepting, then waits for every open response
to finish before the application's own shutdown. An event stream would hold that wait
for up to its maximum duration, so on the exit signal the streams are told to end at
once (clients reconnect with their Last-Event-ID, to a replica that is up).
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

import uvicorn


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None:  # a signal handler: hand it to the loop
            self._loop.call_soon_threadsafe(
                self._app.state.stream_hubs.close_all, "the server is stopping"
            )
