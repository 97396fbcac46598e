"""Liveness and readiness, on both databases; failures of required dependencies answer 503."""

import asyncio
import logging
import shutil
import socket
import subprocess
import time

import httpx
import pytest

from tests.processes import free_port
from tests.conftest import TEST_MEMORY_THRESHOLD_MB
from voltway import __version__
from voltway.core.memory import start_memory_monitor
from voltway.health.router import DISK_MIN_FREE_MB

REDIS_URL = "redis://127.0.0.1:6379/0"
CLOSED_PORT_PG = "postgresql+asyncpg://postgres@127.0.0.1:1/voltway"


async def test_liveness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/api/v1/health")).json() == {"status": "ok", "version": __version__}


async def test_ready_checks_every_dependency(client: httpx.AsyncClient, backend: str) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert set(checks) == {"database", "cache", "queue", "memory", "disk"}
    assert checks["database"]["status"] == "ok" and checks["database"]["backend"] == backend
    assert checks["cache"] == {"status": "ok", "backend": "memory"}
    assert checks["queue"] == {"status": "ok", "backend": "in-process"}
    assert checks["memory"]["status"] == "ok" and checks["memory"]["threshold_mb"] == TEST_MEMORY_THRESHOLD_MB
    assert 10 < checks["memory"]["rss_mb"] < TEST_MEMORY_THRESHOLD_MB
    assert checks["disk"]["status"] == "ok" and checks["disk"]["free_mb"] > DISK_MIN_FREE_MB


async def test_ready_degraded_above_memory_threshold(app_factory) -> None:
    async with app_factory(memory_threshold_mb=1) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["memory"]["status"] == "degraded" and body["checks"]["memory"]["threshold_mb"] == 1
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_ready_503_when_the_database_is_unreachable(app_factory) -> None:
    async with app_factory(database_url=CLOSED_PORT_PG) as client:
        live = await client.get("/health")
        response = await client.get("/health/ready")
    assert live.status_code == 200  # liveness does not depend on the database
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["database"]["status"] == "fail" and body["checks"]["database"]["backend"] == "postgresql"
    assert body["checks"]["memory"]["status"] == "ok"


@pytest.mark.redis
async def test_ready_checks_redis_when_configured(app_factory) -> None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.RedisError as exc:
        pytest.skip(f"Redis does not answer: {exc}")
    async with app_factory(redis_url=REDIS_URL) as client:
        ok = (await client.get("/health/ready")).json()
    assert ok["status"] == "ok"
    assert ok["checks"]["cache"]["backend"] == "redis" and ok["checks"]["cache"]["status"] == "ok"
    assert ok["checks"]["queue"]["status"] == "ok"


class PrivateRedis:
    """A Redis server of this test only, so the test can stop and restart it while the app runs."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_ready_503_while_configured_redis_is_down(app_factory) -> None:
    redis_server = PrivateRedis()
    redis_server.start()
    try:
        async with app_factory(redis_url=redis_server.url) as client:
            up = await client.get("/health/ready")
            redis_server.stop()
            down = await client.get("/health/ready")
            redis_server.start()
            back = await client.get("/health/ready")
    finally:
        redis_server.stop()
    assert up.status_code == 200 and up.json()["checks"]["cache"]["status"] == "ok"
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "fail"
    assert body["checks"]["cache"]["status"] == "fail" and body["checks"]["queue"]["status"] == "fail"
    assert body["checks"]["database"]["status"] == "ok"
    assert back.status_code == 200 and back.json()["status"] == "ok"


async def test_memory_monitor_warns_above_threshold(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="voltway.core.memory"):
        task = start_memory_monitor(1, interval=0.01, repeat_every=3)
        await asyncio.sleep(0.1)
        task.cancel()
    warnings = [r for r in caplog.records if r.name == "voltway.core.memory"]
    # Checked ~10 times while above: warned on the first check and then every third one, not every time.
    assert 2 <= len(warnings) <= 4
    assert warnings[0].levelno == logging.WARNING and warnings[0].threshold_mb == 1 and warnings[0].rss_mb > 1
