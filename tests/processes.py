"""Real processes for end-to-end tests: `voltway serve` on a free port, stopped with SIGINT afterwards."""

import os
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

from voltway.core.metrics import MULTIPROC_ENV

IN_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def voltway_server(
    directory: Path,
    *,
    env: dict[str, str] | None = None,
    demo: bool = False,
    workers: int = 1,
    startup_timeout: float = 90,
) -> Iterator[str]:
    """Run `voltway serve` in `directory` (its working directory: SQLite file, logs, data) on a free port and
    yield its base URL once `/health` answers. `env` adds to or overrides the environment; DATABASE_URL
    defaults to a SQLite file in `directory`. The server's output is in `directory/server.log`. The server sets
    up its own Prometheus multiprocess directory: none is inherited from the test process."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'voltway.db'}",
        "LOG_DIR": str(directory / "logs"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    environment.pop(MULTIPROC_ENV, None)
    command = [sys.executable, "-m", "voltway", "serve", "--port", str(port), "--workers", str(workers)]
    if demo:
        command.append("--demo")
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
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
