"""The tiered cache: memory LRU/TTL, decorators, versioned invalidation, single flight, the Redis tier and its
circuit breaker against real Redis servers."""

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from tests.platform.conftest import REDIS_URL, PrivateRedis

from voltway.core import cache as cache_module
from voltway.core.cache import MISSING, MemoryTier, TieredCache, cache, cached, invalidate_on_commit
from voltway.core.db import Database, sqlite_path
from voltway.settings import Settings


def test_memory_tier_is_a_bounded_lru_with_expiry() -> None:
    tier = MemoryTier(max_entries=3)
    for key in "abc":
        tier.set(key, key.upper(), ttl=60)
    assert tier.get("a") == "A"  # a is now the most recently used
    tier.set("d", "D", ttl=60)
    assert (tier.get("b"), len(tier)) == (MISSING, 3)  # b was the least recently used
    assert [tier.get(k) for k in "acd"] == ["A", "C", "D"]
    tier.set("short", 1, ttl=0.05)
    time.sleep(0.06)
    assert tier.get("short") is MISSING


async def test_async_and_sync_functions_are_cached_by_arguments() -> None:
    cache.configure(redis_url=None, default_ttl=60)
    calls: list[tuple[str, int]] = []

    @cached("things")
    async def fetch(*, session: object, name: str, size: int = 1) -> dict[str, int]:
        calls.append((name, size))
        return {name: size}

    @cached("things", ttl=60)
    def compute(name: str, size: int = 1) -> str:
        calls.append(("sync-" + name, size))
        return name * size

    assert await fetch(session=object(), name="a") == {"a": 1}
    assert await fetch(session=object(), name="a", size=1) == {"a": 1}  # same key: session excluded, default bound
    assert await fetch(session=None, name="a", size=2) == {"a": 2}
    assert compute("x", 3) == compute("x", size=3) == "xxx"
    assert calls == [("a", 1), ("a", 2), ("sync-x", 3)]

    await cache_module.invalidate("things")
    assert await fetch(session=None, name="a") == {"a": 1}
    assert compute("x", 3) == "xxx"
    assert calls[3:] == [("a", 1), ("sync-x", 3)]


async def test_a_cold_key_is_computed_once_under_concurrency() -> None:
    cache.configure(redis_url=None)
    runs = 0

    async def produce() -> bytes:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return b"value"

    results = await asyncio.gather(*(cache.get_or_set("ns", "k", produce) for _ in range(50)))
    assert results == [b"value"] * 50 and runs == 1


async def test_a_failing_producer_is_not_cached_and_fails_every_waiter() -> None:
    cache.configure(redis_url=None)

    async def broken() -> bytes:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    results = await asyncio.gather(*(cache.get_or_set("ns", "k", broken) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await cache.get("ns", "k") is MISSING


# -------------------------------------------------------------------------------------------- Redis
@pytest.mark.redis
async def test_the_redis_tier_is_shared_and_a_bump_reaches_every_process(redis_prefix: str) -> None:
    """Two caches on one Redis stand for two processes: values and invalidations cross between them."""
    one, two = TieredCache(), TieredCache()
    for c in (one, two):
        c.configure(redis_url=REDIS_URL, prefix=redis_prefix, default_ttl=60)
    try:
        await one.set("stations", "q", b"old")
        assert await two.get("stations", "q") == b"old"  # from Redis, now in two's memory tier too
        await one.invalidate("stations")
        assert await two.get("stations", "q") is MISSING  # two's memory copy is under the old version
        await two.set("stations", "q", {"fresh": True})
        assert await one.get("stations", "q") == {"fresh": True}
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_a_cold_key_is_computed_once_across_processes(redis_prefix: str) -> None:
    caches = [TieredCache() for _ in range(3)]
    for c in caches:
        c.configure(redis_url=REDIS_URL, prefix=redis_prefix)
    runs = 0

    async def produce() -> bytes:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.2)
        return b"v"

    try:
        results = await asyncio.gather(*(c.get_or_set("ns", "k", produce) for c in caches for _ in range(5)))
        assert results == [b"v"] * 15 and runs == 1
    finally:
        for c in caches:
            await c.close()


@pytest.mark.redis
async def test_requests_succeed_while_redis_is_down_and_the_tier_comes_back(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cache_module, "RETRY_AFTER", 0.5)
    one, two = TieredCache(), TieredCache()
    for c in (one, two):
        c.configure(redis_url=private_redis.url, prefix="t", default_ttl=60)
    produced: list[str] = []

    def producer(value: str):  # noqa: ANN202
        async def produce() -> str:
            produced.append(value)
            return value

        return produce

    try:
        assert await one.get_or_set("ns", "k", producer("v1")) == "v1"
        private_redis.stop()
        started = time.perf_counter()
        assert await one.get_or_set("ns", "k", producer("x")) == "v1"  # memory tier
        assert await two.get_or_set("ns", "k", producer("v2")) == "v2"  # computed, Redis is away
        await one.invalidate("ns")  # remembered, replayed when Redis is back
        assert await one.get_or_set("ns", "k", producer("v3")) == "v3"
        assert time.perf_counter() - started < 3  # the breaker keeps failures fast
        assert not one.redis_up and one.stats["error"] >= 1

        private_redis.start()  # an empty server: the lost keys and version are gone
        await asyncio.sleep(0.6)
        assert one.redis_up
        assert await one.get_or_set("ns", "k", producer("v4")) == "v4"  # the replayed bump made v3 stale
        assert await two.get("ns", "k") == "v4"  # shared again through Redis
        assert produced == ["v1", "v2", "v3", "v4"]
    finally:
        await one.close()
        await two.close()


@pytest.mark.redis
async def test_a_redis_restarted_empty_never_revives_an_older_version(
    private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "RETRY_AFTER", 0.2)
    one = TieredCache()
    one.configure(redis_url=private_redis.url, prefix="t", default_ttl=60)
    try:
        await one.set("ns", "k", "version 0 answer")
        await one.invalidate("ns")
        await one.set("ns", "k", "version 1 answer")
        private_redis.stop()
        private_redis.start()
        await one.version("ns")  # the pooled connection is dead: this may open the breaker
        await asyncio.sleep(0.3)
        assert await one.get("ns", "k") is MISSING
        assert await one.version("ns") == (2, True)
    finally:
        await one.close()


async def test_an_answer_computed_across_a_bump_is_never_served() -> None:
    """A value read before a write but stored after its bump is filed under the old version."""
    cache.configure(redis_url=None)
    started = asyncio.Event()

    async def slow_old_read() -> str:
        started.set()
        await asyncio.sleep(0.05)
        return "before the write"

    computing = asyncio.create_task(cache.get_or_set("ns", "k", slow_old_read))
    await started.wait()
    await cache.invalidate("ns")  # the write commits and bumps while the old read is in flight
    assert await computing == "before the write"  # its own caller gets it, as it would without a cache

    async def fresh() -> str:
        return "after the write"

    assert await cache.get_or_set("ns", "k", fresh) == "after the write"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # the file versions are SQLite's embedded mode
async def test_embedded_processes_share_versions_through_the_sqlite_file(settings: Settings) -> None:
    path = sqlite_path(settings.database_url)
    one, two = TieredCache(), TieredCache()
    for c in (one, two):
        c.configure(redis_url=None, sqlite_path=path)
    try:
        await one.set("stations", "q", "old")
        await two.set("stations", "q", "old")
        await one.invalidate("stations")
        assert await two.get("stations", "q") is MISSING  # two's memory copy is under the old version
        await two.set("stations", "q", "new")
        # Another program writing the file (a CLI import, another server) bumps the same way.
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE cache_namespaces SET version = version + 1 WHERE name = 'stations'")
        assert await two.get("stations", "q") is MISSING
        assert await two.version("stations") == (2, False)
    finally:
        await one.close()
        await two.close()


@pytest.mark.usefixtures("backend")
async def test_invalidate_on_commit_bumps_after_a_commit_only(db: Database) -> None:
    before, _ = await cache.version("stations")
    async with db.sessionmaker() as session:
        invalidate_on_commit(session, "stations")
        await session.rollback()
    assert (await cache.version("stations"))[0] == before
    async with db.sessionmaker() as session:
        invalidate_on_commit(session, "stations")
        assert (await cache.version("stations"))[0] == before  # not before the commit
        await session.commit()
    await asyncio.sleep(0.05)  # the file-backed bump runs in a thread
    assert (await cache.version("stations"))[0] == before + 1


@pytest.mark.redis
async def test_followed_bumps_reach_other_processes_without_a_version_read(redis_prefix: str) -> None:
    one, two = TieredCache(), TieredCache()
    for c in (one, two):
        c.configure(redis_url=REDIS_URL, prefix=redis_prefix, default_ttl=60)
        c.start()
    try:
        for _ in range(100):
            if one._listening and two._listening:  # noqa: SLF001
                break
            await asyncio.sleep(0.02)
        await one.set("stations", "q", "old")
        assert await two.get("stations", "q") == "old"
        assert "stations" in two._pushed  # noqa: SLF001 - later lookups need no version read
        for n in range(1, 6):
            await one.invalidate("stations")
            await asyncio.sleep(0.05)  # the publish latency, generously
            assert await two.version("stations") == (n, True)
            assert await two.get("stations", "q") is MISSING
    finally:
        await one.close()
        await two.close()
