"""`sladesk serve --workers N`: N API processes on one host:port, supervised.

The supervisor (the `serve` process itself) binds host:port first, so that a port that
is taken fails once, before any child starts, and keeps it bound while N children
(``python -m app.api_process``, see there) listen on it: on Linux each with its own
SO_REUSEPORT socket (the kernel balances connections over them; the supervisor's socket
only holds the port and never listens), elsewhere on the supervisor's socket, shared.
Everything that must happen once stays here: the database (embedded or not) and its
migrations before the children start, the background loops (the caller runs them in
this process), the start-up lines on stdout.

With ``webhook_processes`` > 0 (SLADESK_WEBHOOK_PROCESSES) the webhook dispatcher runs in
that many children of its own (``python -m app.loop_process webhooks``), kept and stopped
like the API processes, and not in this process: under a burst of SLA thresholds the
timer's batches and the dispatcher's sends then use two cores instead of taking turns on
one event loop. Several dispatchers are safe (leases, SKIP LOCKED, the fan-out's advisory
lock).

Children are plain subprocesses (not multiprocessing): nothing but the socket and the
pipes crosses over, and no helper process (multiprocessing's resource tracker) is left
to reap.

Policy when a child dies:
- before it ever served (start-up failed: a broken install, a bad setting): retrying
  would fail again, so every process stops and `serve` exits non-zero;
- after it served (a crash, the OOM killer): it is logged as an error and replaced, at
  most once per RESTART_DELAY seconds per slot; a replacement that then fails to start
  stops `serve` as above.

SIGINT or SIGTERM: every child gets SIGTERM (uvicorn's graceful shutdown; event streams
end at once), and is killed if it is still running after STOP_GRACE seconds; a second
signal kills them at once. `serve` returns only when no child is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from app.api_process import REUSE_PORT as REUSE_PORT_ARG
from app.api_process import SERVING, encode_settings, listening_socket
from app.config import Settings

logger = logging.getLogger("sladesk.supervisor")

RESTART_DELAY = 1.0
STOP_GRACE = 60.0
REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int) -> socket.socket:
    """The supervisor's socket on host:port (OSError when the port is taken). With
    SO_REUSEPORT, a plain bind first: a port held by anyone, even another sladesk with
    SO_REUSEPORT, is refused rather than silently shared."""
    if not REUSE_PORT:
        return listening_socket(host, port, reuse_port=False)
    listening_socket(host, port, reuse_port=False, listen=False).close()
    return listening_socket(host, port, reuse_port=True, listen=False)


@dataclass
class _Slot:
    index: int
    kind: str = "API"  # or "webhook" (app.loop_process)
    proc: asyncio.subprocess.Process | None = None
    served: bool = False
    pids: list[int] = field(default_factory=list)


class ApiProcesses:
    """``count`` API processes serving ``sock`` (and ``webhook_processes`` dispatcher
    processes), kept until a stop signal."""

    def __init__(
        self, settings: Settings, sock: socket.socket, count: int, webhook_processes: int = 0
    ) -> None:
        # The API processes never run the loops: this process does (or nobody,
        # --no-workers), except the dispatcher when it has processes of its own.
        self.settings = settings.model_copy(update={"run_workers": False})
        self.loop_settings = settings
        self.sock = sock
        self.slots = [_Slot(i) for i in range(count)] + [
            _Slot(count + i, kind="webhook") for i in range(webhook_processes)
        ]
        self.failure: str | None = None
        self._stopping = asyncio.Event()
        self._all_serving = asyncio.Event()
        self._signals = 0

    @property
    def pids(self) -> list[int]:
        """The API processes' (the webhook processes': ``loop_pids``)."""
        return [s.proc.pid for s in self.slots if s.proc is not None and s.kind == "API"]

    @property
    def loop_pids(self) -> list[int]:
        return [s.proc.pid for s in self.slots if s.proc is not None and s.kind != "API"]

    async def run(self, announce: Callable[[], None]) -> int:
        """Start the processes, call ``announce`` once all of them serve, keep them until
        SIGINT/SIGTERM (or a start-up failure); 0 after a requested stop, else 1."""
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            loop.add_signal_handler(sig, self._on_signal)
        try:
            keepers = [asyncio.create_task(self._keep(slot)) for slot in self.slots]
            up = asyncio.create_task(self._all_serving.wait())
            stop = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({up, stop}, return_when=asyncio.FIRST_COMPLETED)
            if self._all_serving.is_set() and not self._stopping.is_set():
                logger.info(
                    "%d API processes serving",
                    len(self.pids),
                    extra={"pids": self.pids, "webhook_pids": self.loop_pids},
                )
                announce()
            await self._stopping.wait()
            up.cancel()
            await self._stop_all(keepers)
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, handler)
        return 1 if self.failure is not None else 0

    def stop(self) -> None:
        """As SIGTERM: stop every API process gracefully; `run` returns when they are gone."""
        self._stopping.set()

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            self._stopping.set()
        else:  # asked twice: do not wait for open connections
            self._signal_all(signal.SIGKILL)

    def _signal_all(self, sig: int) -> None:
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)

    async def _stop_all(self, keepers: list[asyncio.Task[None]]) -> None:
        """SIGTERM to every child; done when every slot's keeper saw its child exit."""
        self._signal_all(signal.SIGTERM)
        _, pending = await asyncio.wait(keepers, timeout=STOP_GRACE)  # never cancels them
        if pending:
            logger.error("API processes still running %.0f s after SIGTERM: killed", STOP_GRACE)
            self._signal_all(signal.SIGKILL)
        await asyncio.gather(*keepers)

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
            logger.error("%s", message)
        self._stopping.set()

    async def _keep(self, slot: _Slot) -> None:
        try:
            await self._keep_running(slot)
        except Exception as exc:  # e.g. no process could be started at all
            self._fail(f"could not run an {slot.kind} process: {type(exc).__name__}: {exc}")

    async def _keep_running(self, slot: _Slot) -> None:
        """Run one slot's process, replacing it when it dies after serving."""
        while not self._stopping.is_set():
            proc = await self._spawn(slot)
            slot.proc = proc
            slot.pids.append(proc.pid)
            if self._stopping.is_set():  # the stop signalled the others while we spawned
                proc.send_signal(signal.SIGTERM)
            serving = await self._serving(proc)
            if serving:
                slot.served = True
                if all(s.served for s in self.slots):
                    self._all_serving.set()
            code = await proc.wait()
            if self._stopping.is_set():
                return
            if not serving:
                self._fail(
                    f"an {slot.kind} process (pid {proc.pid}) exited with status {code} "
                    "before serving; stopping (see its log above)"
                )
                return
            logger.error(
                "%s process (pid %d) exited with status %s; starting another",
                slot.kind,
                proc.pid,
                code,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RESTART_DELAY)

    async def _spawn(self, slot: _Slot) -> asyncio.subprocess.Process:
        if slot.kind == "API":
            shared: tuple[int, ...] = () if REUSE_PORT else (self.sock.fileno(),)
            where = REUSE_PORT_ARG if REUSE_PORT else str(self.sock.fileno())
            command, settings = ("app.api_process", where), self.settings
        else:
            shared, command, settings = (), ("app.loop_process", "webhooks"), self.loop_settings
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            pass_fds=shared,
        )  # fmt: skip
        assert proc.stdin is not None
        # stdin stays open for the child's life: its end of file tells the child that
        # this process is gone (even after a SIGKILL), so no child outlives it.
        with contextlib.suppress(ConnectionError):
            proc.stdin.write(encode_settings(settings))
            await proc.stdin.drain()
        return proc

    async def _serving(self, proc: asyncio.subprocess.Process) -> bool:
        """True once the child says it accepts connections; False if it ended first."""
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        return line == SERVING
