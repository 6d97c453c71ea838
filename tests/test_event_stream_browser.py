"""A real browser's EventSource (headless Chromium from Debian's `chromium` package,
driven over the DevTools protocol) on the live stream of a real server running the
timer loop: a warning arrives at its instant, and the browser's own reconnections
(each stream ends after its maximum duration) lose and repeat nothing.

Skipped when `chromium` is not installed; fails instead when `CI` is set (`.ci/run`
installs it), so that CI always runs it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from websockets.asyncio.client import ClientConnection, connect

from app.config import Settings
from app.main import create_app
from tests.conftest import auth
from tests.plan_factories import target
from tests.sse_harness import serving
from tests.ticket_factories import make_desk, open_ticket
from tests.webhook_harness import eventually, rows

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser test: install Debian's chromium package")
    pytest.skip("chromium is not installed", allow_module_level=True)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
)


class Page:
    """One tab, spoken to over the DevTools protocol."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        await self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            reply = json.loads(await self._socket.recv())
            if reply.get("id") == number:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Page]:
    assert CHROMIUM is not None
    profile = Path(tempfile.mkdtemp(prefix="sladesk-chromium-"))
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        await eventually(active.exists, within=60, what="chromium's DevTools port")
        port = int(active.read_text().split()[0])
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            yield Page(socket)
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()
        shutil.rmtree(profile, ignore_errors=True)


# Every event the EventSource dispatches, with the browser's clock at that moment.
LISTEN = """
window.got = []; window.opens = 0; window.errors = 0;
const source = new EventSource(%s);
source.onopen = () => { window.opens += 1; };
source.onerror = () => { window.errors += 1; };
for (const type of %s) {
  source.addEventListener(type, (e) => window.got.push(
    {id: Number(e.lastEventId), type: e.type, data: JSON.parse(e.data), at: Date.now()}));
}
"""


async def test_a_browser_eventsource_sees_a_warning_at_its_instant(
    db: AsyncEngine, admin: httpx.AsyncClient, admin_key: str, settings: Settings
) -> None:
    desk = await make_desk(
        admin, targets=[target("first_response", 1, clock="24x7", warn_at_percent=[50])]
    )
    # The real timer loop; streams end every 3 s, so the browser reconnects on its own.
    app = create_app(
        settings.model_copy(update={"run_workers": True, "stream_max_seconds": 3.0}), engine=db
    )
    types = ["ticket.created", "sla.warning"]
    async with serving(app) as (base, _), browser() as page:
        await page.call("Page.navigate", url=f"{base}/healthz")  # the API's own origin
        await eventually(
            lambda: _loaded(page), within=60, what="the page loaded", tolerate=(AssertionError,)
        )
        async with httpx.AsyncClient(base_url=base, headers=auth(admin_key)) as http:
            token = (await http.post("/v1/events/stream-tokens")).json()
        url = f"{token['url']}&types=sla.warning&types=ticket.created"
        await page.evaluate(LISTEN % (json.dumps(url), json.dumps(types)))
        await eventually(lambda: _value(page, "window.opens >= 1"), within=30, what="open")

        received = datetime.now(UTC) - timedelta(seconds=24)  # the warning: in 6 s
        ticket = await open_ticket(admin, desk, received_at=received.isoformat())
        await eventually(
            lambda: _value(page, "window.got.some(e => e.type === 'sla.warning')"),
            within=60,
            what="the warning in the browser",
        )
        got = await page.evaluate("window.got")
        opens = await page.evaluate("window.opens")

    instant = received + timedelta(seconds=30)
    warning = next(e for e in got if e["type"] == "sla.warning")
    assert warning["data"]["data"]["ticket"]["id"] == ticket["id"]
    assert warning["data"]["data"]["threshold"]["at"] == instant.isoformat().replace("+00:00", "Z")
    arrived = datetime.fromtimestamp(warning["at"] / 1000, UTC)
    assert arrived >= instant - timedelta(milliseconds=5)  # never early (browser ms clock)
    logging.getLogger("tests").warning(
        "sla.warning in Chromium: %.0f ms after its instant",
        (arrived - instant).total_seconds() * 1000,
    )
    # The browser reconnected by itself (each stream lasts 3 s) with its Last-Event-ID:
    # every event of the two types once, in order.
    assert opens >= 2
    expected = await rows(
        db, "SELECT seq FROM outbox_events WHERE type = ANY(:t) ORDER BY seq", t=types
    )
    assert [e["id"] for e in got] == [r.seq for r in expected]


async def _loaded(page: Page) -> bool:
    return bool(await page.evaluate("document.readyState === 'complete'"))


async def _value(page: Page, expression: str) -> bool:
    return bool(await page.evaluate(expression))
