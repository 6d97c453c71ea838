"""/docs and /redoc in a real browser (Debian's headless Chromium, driven over the DevTools
protocol), offline: every host name but 127.0.0.1 fails to resolve, as on a desk's server
without internet. The pages must render every operation from assets sladesk serves."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.servers import need, serving

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Offline: nothing but the server under test resolves (a CDN would fail here).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--remote-debugging-port=0",
]


class Page:
    """One browser tab over the DevTools protocol: commands, and the requests it made."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.requested: dict[str, str] = {}  # request id -> URL
        self.blocked: set[str] = set()  # request ids the page's policy stopped
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                self.requested[params["requestId"]] = params["request"]["url"]
            elif message.get("method") == "Network.loadingFailed" and params.get("blockedReason"):
                self.blocked.add(params["requestId"])
            elif "id" in message and message["id"] in self.waiting:
                self.waiting.pop(message["id"]).set_result(message)

    async def send(self, method: str, **params: Any) -> Any:
        number = next(self.ids)
        self.waiting[number] = asyncio.get_running_loop().create_future()
        await self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        reply = await self.waiting[number]
        assert "error" not in reply, reply
        return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, within: float = 60) -> Any:
        async with asyncio.timeout(within):
            while not (value := await self.evaluate(expression)):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        return value


@contextlib.asynccontextmanager
async def browser() -> AsyncIterator[Page]:
    binary = need(shutil.which("chromium"), "Chromium (Debian's chromium package)")
    profile = Path(tempfile.mkdtemp(prefix="sladesk-chromium-"))
    process = subprocess.Popen(  # noqa: ASYNC220 (returns at once; we wait without blocking)
        [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        active = profile / "DevToolsActivePort"
        async with asyncio.timeout(60):
            while not active.exists() or len(active.read_text().splitlines()) < 2:
                assert process.poll() is None, "chromium exited"
                await asyncio.sleep(0.1)
        port = active.read_text().splitlines()[0]
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        tab = next(t for t in targets if t["type"] == "page")
        async with connect(tab["webSocketDebuggerUrl"], max_size=None) as socket:
            page = Page(socket)
            await page.send("Network.enable")
            await page.send("Page.enable")
            try:
                yield page
            finally:
                page.reader.cancel()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def test_docs_and_redoc_render_every_operation_offline(app: Any) -> None:
    async with serving(app) as base, browser() as page:
        async with httpx.AsyncClient() as http:
            spec = (await http.get(f"{base}/openapi.json")).json()
        operations = [
            (method.upper(), path)
            for path, item in spec["paths"].items()
            for method in item
            if method in {"get", "post", "put", "patch", "delete"}
        ]
        # Swagger UI also shows the webhooks sladesk sends (the spec's `webhooks` section).
        webhooks = sum(len(item) for item in spec.get("webhooks", {}).values())
        await page.send("Page.navigate", url=f"{base}/docs")
        count = f"document.querySelectorAll('.opblock').length === {len(operations) + webhooks}"
        await page.wait_for(count)
        shown = await page.evaluate(
            "[...document.querySelectorAll('.opblock-summary-path')]"
            ".map(e => e.getAttribute('data-path'))"
        )
        expected = {path for _, path in operations} | set(spec.get("webhooks", {}))
        assert sorted(set(shown)) == sorted(expected)
        assert await page.evaluate("document.title") == "sladesk - API docs"

        await page.send("Page.navigate", url=f"{base}/redoc")
        await page.wait_for("document.querySelectorAll('[data-section-id^=\"operation/\"]').length")
        listed = await page.evaluate(
            "document.querySelectorAll('[data-section-id^=\"operation/\"]').length"
        )
        assert listed == len(operations) + webhooks

        # Everything came from the server itself: any other host (ReDoc's footer logo) was
        # stopped by the pages' Content-Security-Policy before reaching the network.
        elsewhere = {
            url
            for rid, url in page.requested.items()
            if not url.startswith((base, "data:", "about:", "blob:")) and rid not in page.blocked
        }
        assert elsewhere == set()
        assert f"{base}/docs/assets/swagger-ui-bundle.js" in page.requested.values()
        assert f"{base}/docs/assets/redoc.standalone.js" in page.requested.values()
