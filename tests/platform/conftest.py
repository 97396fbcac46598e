"""Platform fixtures: real Redis (shared server with a key prefix per test, or a private server we can
stop), job waiting helpers, real `voltway` processes."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.processes import free_port
from voltway.app import create_app
from voltway.core.db import Database
from voltway.core.jobs import FINISHED, Job
from voltway.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))  # sample_jobs, for the tests and the worker subprocesses

import sample_jobs  # noqa: E402,F401 - registers the test job kinds


def _service_missing(what: str, reason: object) -> None:
    """Skip, except under CI=true where a missing service is a failure (as tests/conftest.py does)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true but does not answer: {reason}")
    pytest.skip(f"{what} does not answer: {reason}")

REDIS_URL = os.environ.get("VOLTWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]
VOLTWAY = [sys.executable, "-m", "voltway"]


async def _ping(url: str) -> None:
    client = Redis.from_url(url, socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test on the shared Redis (skips when Redis is down; fails under CI=true).
    Its keys are deleted afterwards."""
    try:
        await _ping(REDIS_URL)
    except (RedisError, OSError) as exc:
        _service_missing("Redis", exc)
    prefix = f"vwtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def redis_settings(settings: Settings, redis_prefix: str) -> Settings:
    return settings.model_copy(update={"redis_url": REDIS_URL, "redis_prefix": redis_prefix})


class PrivateRedis:
    """A redis-server of this test on a free port, which the test may stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            _service_missing("redis-server", "not installed")
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def wait_for_job(db: Database, job_id: int, *, timeout: float = 20, until: tuple[str, ...] = FINISHED) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        async with db.sessionmaker() as session:
            job = await session.get(Job, job_id)
        assert job is not None
        if job.status in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout}s (error: {job.error})")
        await asyncio.sleep(0.05)


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for a `voltway` subprocess running with `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        LOG_DIR=str(settings.log_dir),
        DATA_DIR=str(settings.data_dir),
        SECRET_KEY=settings.resolved_secret_key(),
        PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(ROOT / "src")]),
        LOG_JSON_CONSOLE="false",
    )
    if settings.redis_url:
        env.update(REDIS_URL=settings.redis_url, REDIS_PREFIX=settings.redis_prefix)
    env.update(extra)
    return env


@pytest.fixture
async def redis_app(redis_settings: Settings) -> AsyncIterator[FastAPI]:
    """The app in the Redis mode: it enqueues jobs on the queue and runs none itself."""
    application = create_app(redis_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def redis_client(redis_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=redis_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class Processes:
    """`voltway` subprocesses started by a test, all killed at its end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        out = (self.directory / f"{name}.out").open("wb")
        process = subprocess.Popen([*VOLTWAY, *args], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.directory)
        self.started.append(process)
        return process

    def output(self, name: str) -> str:
        return (self.directory / f"{name}.out").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.terminate()
        for process in self.started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()
