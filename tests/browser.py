"""Real processes for end-to-end tests: `voltway serve` on a free port, and headless Chromium looking at it.

Chromium is skipped when absent, except under CI=true where it is a failure (`.ci/run` installs it).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def voltway_server(
    directory: Path, *, env: dict[str, str] | None = None, demo: bool = False, startup_timeout: float = 90
) -> Iterator[str]:
    """Run `voltway serve` in `directory` (its working directory: SQLite file, logs, data) on a free port and
    yield its base URL once `/health` answers. `env` adds to or overrides the environment; DATABASE_URL
    defaults to a SQLite file in `directory`. The server's output is in `directory/server.log`."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'voltway.db'}",
        "LOG_DIR": str(directory / "logs"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [sys.executable, "-m", "voltway", "serve", "--port", str(port), *(["--demo"] if demo else [])]
    log_path = directory / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=directory, env=environment, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"voltway serve exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"voltway serve did not answer in {startup_timeout}s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
