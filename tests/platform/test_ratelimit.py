"""Rate limits: per key / user / IP, 429 in the error model with the headers, memory and Redis storage, and
two real server processes sharing one Redis."""

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from tests.platform.conftest import REDIS_URL, PrivateRedis, Processes, free_port, process_env
from fastapi import Depends, FastAPI

from voltway.accounts.keys import create_key
from voltway.accounts.roles import Role
from voltway.core import ratelimit
from voltway.core.db import Database
from voltway.core.error_handlers import install_error_handlers
from voltway.core.errors import TooManyRequests
from voltway.core.ratelimit import RateLimiter, check_rate, clear_rate, limiter, peek_rate, rate_limit
from voltway.settings import Settings

SECRET = "s" * 40


@pytest.fixture
async def limited() -> AsyncIterator[httpx.AsyncClient]:
    limiter.configure(redis_url=None, overrides={"tight": "2/minute"})
    app = FastAPI()
    app.state.settings = Settings(secret_key=SECRET)
    install_error_handlers(app)

    @app.get("/by-key", dependencies=[Depends(rate_limit("by-key", "3/minute", scope="key"))])
    async def by_key() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/auto", dependencies=[Depends(rate_limit("auto", "2/minute;10/hour"))])
    async def auto() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/tight", dependencies=[Depends(rate_limit("tight", "100/minute", scope="ip"))])
    async def tight() -> dict[str, bool]:
        return {"ok": True}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client


async def test_a_limit_per_key_with_headers_and_a_429(limited: httpx.AsyncClient) -> None:
    a, b = {"X-API-Key": "key-a"}, {"X-API-Key": "key-b"}
    remaining = []
    for _ in range(3):
        response = await limited.get("/by-key", headers=a)
        assert response.status_code == 200 and response.headers["RateLimit-Limit"] == "3"
        remaining.append(response.headers["RateLimit-Remaining"])
        assert 0 < int(response.headers["RateLimit-Reset"]) <= 60
    assert remaining == ["2", "1", "0"]
    refused = await limited.get("/by-key", headers=a)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["details"] == {"limit": "3 per 1 minute", "retry_after": int(refused.headers["Retry-After"])}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (refused.headers["RateLimit-Remaining"], refused.headers["RateLimit-Limit"]) == ("0", "3")
    assert (await limited.get("/by-key", headers=b)).status_code == 200  # another key has its own counter


async def test_auto_scope_tells_users_keys_and_addresses_apart(limited: httpx.AsyncClient) -> None:
    alice = {"Authorization": "Bearer " + jwt.encode({"sub": "17"}, SECRET, algorithm="HS256")}
    forged = {"Authorization": "Bearer " + jwt.encode({"sub": "17"}, "x" * 40, algorithm="HS256")}
    assert [(await limited.get("/auto", headers=alice)).status_code for _ in range(3)] == [200, 200, 429]
    # A token that does not verify is no user: it counts against the address, which is still fresh.
    assert [(await limited.get("/auto", headers=forged)).status_code for _ in range(3)] == [200, 200, 429]
    assert (await limited.get("/auto", headers={"X-API-Key": "k"})).status_code == 200


async def test_rate_limits_can_be_overridden_by_name(limited: httpx.AsyncClient) -> None:
    assert [(await limited.get("/tight")).status_code for _ in range(3)] == [200, 200, 429]


async def test_failure_counting_for_sign_in() -> None:
    limiter.configure(redis_url=None)
    for _ in range(3):
        await peek_rate("login:bob", "3/minute")
        await check_rate("login:bob", "3/minute")
    with pytest.raises(TooManyRequests):
        await peek_rate("login:bob", "3/minute")
    await clear_rate("login:bob", "3/minute")
    assert (await peek_rate("login:bob", "3/minute"))["RateLimit-Remaining"] == "3"


@pytest.mark.redis
async def test_counters_are_shared_through_redis(redis_prefix: str) -> None:
    one, two = RateLimiter(), RateLimiter()
    for instance in (one, two):
        instance.configure(redis_url=REDIS_URL, prefix=redis_prefix)
    items = ratelimit.parse_limit("3/minute")
    await one.hit(items, "route", "ip:1")
    await two.hit(items, "route", "ip:1")
    await one.hit(items, "route", "ip:1")
    with pytest.raises(TooManyRequests):
        await two.hit(items, "route", "ip:1")


@pytest.mark.redis
async def test_limits_hold_in_memory_while_redis_is_down(private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "RETRY_AFTER", 0.3)
    instance = RateLimiter()
    instance.configure(redis_url=private_redis.url, prefix="t")
    items = ratelimit.parse_limit("2/minute")
    await instance.hit(items, "r", "a")
    private_redis.stop()
    started = time.perf_counter()
    await instance.hit(items, "r", "a")  # memory now: a fresh counter
    await instance.hit(items, "r", "a")
    with pytest.raises(TooManyRequests):
        await instance.hit(items, "r", "a")
    assert time.perf_counter() - started < 3
    private_redis.start()
    await asyncio.sleep(0.4)
    await instance.hit(items, "r", "a")  # Redis again: a fresh server, a fresh counter
    await instance.hit(items, "r", "a")
    with pytest.raises(TooManyRequests):
        await instance.hit(items, "r", "a")


async def _wait_until_up(url: str, process_output: Processes, name: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                if (await client.get(url + "/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name} did not start:\n{process_output.output(name)}")


@pytest.mark.redis
@pytest.mark.usefixtures("backend")
async def test_limits_hold_across_two_server_processes(
    redis_settings: Settings, processes: Processes, db: Database, tmp_path: Path
) -> None:
    async with db.sessionmaker.begin() as session:
        _key, secret = await create_key(session, role=Role.operator, name="limits")
    env = process_env(redis_settings, RATE_LIMITS='{"jobs.read": "6/minute"}')
    urls = []
    for name in ("serve1", "serve2"):
        port = free_port()
        processes.start(["serve", "--port", str(port)], env, name)
        urls.append(f"http://127.0.0.1:{port}")
    for url, name in zip(urls, ("serve1", "serve2"), strict=True):
        await _wait_until_up(url, processes, name)
    async with httpx.AsyncClient(headers={"X-API-Key": secret}) as client:
        statuses = [(await client.get(urls[i % 2] + "/api/v1/jobs")).status_code for i in range(10)]
    assert statuses == [200] * 6 + [429] * 4
