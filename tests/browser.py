"""Headless Chromium for end-to-end tests of the pages served by `tests.processes.voltway_server`.

Two ways to use Chromium: one-shot (`dump_dom`, `screenshot`: the page after some virtual time), and driven
(`browser_page`: a small DevTools-protocol client to evaluate JavaScript, wait for conditions, click, and
collect uncaught page errors). Chromium is skipped when absent, except under CI=true where it is a failure
(`.ci/run` installs it).
"""

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.processes import IN_CI, free_port

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_path() -> str:
    """The Chromium executable; skips the test when there is none (fails under CI=true)."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    if IN_CI:
        pytest.fail("Chromium is required under CI=true (apt-get install chromium)")
    pytest.skip("Chromium is not installed")


def run_chromium(args: list[str], profile: Path, *, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    command = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"chromium failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


def dump_dom(url: str, profile: Path, *, budget_ms: int = 8000, window: tuple[int, int] = (1280, 800)) -> str:
    """The page's DOM after `budget_ms` of virtual time (scripts run, fetches answered)."""
    return run_chromium(
        [f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}", "--dump-dom", url], profile
    ).stdout


def screenshot(
    url: str, path: Path, profile: Path, *, budget_ms: int = 8000, window: tuple[int, int] = (1280, 800)
) -> Path:
    """A PNG of the page after `budget_ms` of virtual time."""
    run_chromium(
        [f"--window-size={window[0]},{window[1]}", f"--virtual-time-budget={budget_ms}", f"--screenshot={path}", url],
        profile,
    )
    assert path.exists() and path.stat().st_size > 0, "chromium wrote no screenshot"
    return path


class Page:
    """One Chromium tab over the DevTools protocol. `errors` collects uncaught exceptions and console errors."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._socket:
            message = json.loads(raw)
            if "id" in message:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif message.get("method") == "Runtime.consoleAPICalled" and message["params"]["type"] == "error":
                self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in message["params"]["args"]))

    async def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        reply = await asyncio.wait_for(future, timeout)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited)."""
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression!r} raised: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, *, timeout: float = 20) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression!r} (page errors: {self.errors})")
            await asyncio.sleep(0.1)

    async def goto(self, url: str, *, timeout: float = 30) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'", timeout=timeout)

    async def screenshot(self, path: Path) -> Path:
        data = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(data["data"]))
        return path

    async def close(self) -> None:
        self._reader.cancel()


@asynccontextmanager
async def browser_page(profile: Path, *, window: tuple[int, int] = (1280, 800)) -> AsyncIterator[Page]:
    """A headless Chromium with one blank tab, driven over the DevTools protocol."""
    port = free_port()
    command = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
               f"--window-size={window[0]},{window[1]}", "about:blank"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        target = None
        async with httpx.AsyncClient(timeout=1) as http:
            for _ in range(300):
                try:
                    targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
                    target = next((t for t in targets if t.get("type") == "page"), None)
                except httpx.TransportError:
                    pass
                if target is not None:
                    break
                if process.poll() is not None:
                    pytest.fail(f"chromium exited with {process.returncode}")
                await asyncio.sleep(0.1)
            else:
                pytest.fail("chromium's DevTools endpoint did not answer")
        async with connect(target["webSocketDebuggerUrl"], max_size=None) as socket:
            page = Page(socket)
            await page.send("Runtime.enable")
            await page.send("Page.enable")
            try:
                yield page
            finally:
                await page.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
