"""Two-tier cache: a bounded in-process LRU (always) and Redis (when `REDIS_URL` is set).

Invalidation is by versioned namespaces: every key lives under `namespace:version`, and `invalidate(ns)` bumps
the version, so every answer cached under the namespace is stale at once, in every process. The version lives
in Redis when there is one (bumps are also published, and each process follows the channel, so a lookup needs
no round trip while the subscription is live: a bump reaches the other processes within the publish latency,
the bumping process at once; without a live subscription every lookup reads the version), in the SQLite file
in the embedded mode, in memory otherwise. Values are served from the memory tier when this process has them.

Redis failures open a circuit breaker: for `RETRY_AFTER` seconds the cache runs on the memory tier alone
(entries then live at most `DEGRADED_TTL` seconds, since bumps by other processes cannot be seen), bumps made
meanwhile are carried over to Redis when it answers again (its version is raised past any this process has
seen, which also covers a Redis that restarted empty), and the Redis tier comes back by itself.

A cold key is computed once: single-flight per process, plus a short `SET NX` lock across processes.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import logging
import pickle
import re
import secrets
import sqlite3
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import Integer, String, event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, SessionTransaction, mapped_column
from sqlalchemy.orm import Session as OrmSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from voltway.core.db import Base, sqlite_path
from voltway.core.metrics import CACHE_LOOKUPS
from voltway.settings import Settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

MISSING: Any = object()
RETRY_AFTER = 3.0  # seconds the breaker stays open after a Redis failure
DEGRADED_TTL = 5.0  # cap on memory-tier lifetimes while Redis is away
LOCK_MS = 5_000  # cross-process compute lock on a cold key
LOCK_WAIT = 2.0  # how long another process waits for the lock holder's value before computing itself
DEFAULT_EXCLUDE = ("session", "db", "request", "settings")
REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

_RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# Version changes are published (channel ARGV[2], message "namespace version") so that processes can keep
# their copy of the version current without asking Redis on every lookup.
_RAISE_VERSION = """
local current = tonumber(redis.call('get', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if current < wanted then
    redis.call('set', KEYS[1], wanted)
    redis.call('publish', ARGV[2], ARGV[3] .. ' ' .. wanted)
    return wanted
end
return current
"""
_BUMP_VERSION = """
local version = redis.call('incr', KEYS[1])
redis.call('publish', ARGV[1], ARGV[2] .. ' ' .. version)
return version
"""


class CacheNamespace(Base):
    """A namespace's version in the database (used by the embedded mode on SQLite, see `FileVersions`)."""

    __tablename__ = "cache_namespaces"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class FileVersions:
    """Namespace versions in the SQLite file, so that every process on it (`serve --workers N`, a CLI import
    while the server runs) sees a bump without Redis.

    A read costs `PRAGMA data_version` (microseconds; it changes only when another connection commits) and
    re-reads the small table only then. Bumps are written from a thread, never blocking the event loop.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._seen = -1
        self._versions: dict[str, int] = {}

    def current(self, namespace: str) -> int:
        data_version = self._reader.execute("PRAGMA data_version").fetchone()[0]
        if data_version != self._seen:
            self._versions = dict(self._reader.execute("SELECT name, version FROM cache_namespaces").fetchall())
            self._seen = data_version
        return self._versions.get(namespace, 0)

    def _bump(self, namespace: str) -> int:
        with sqlite3.connect(self.path, timeout=30, isolation_level=None) as writer:
            (version,) = writer.execute(
                "INSERT INTO cache_namespaces (name, version) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET version = version + 1 RETURNING version",
                (namespace,),
            ).fetchone()
        writer.close()
        return int(version)

    async def bump(self, namespace: str) -> int:
        return await asyncio.to_thread(self._bump, namespace)

    def close(self) -> None:
        self._reader.close()


class MemoryTier:
    """A bounded LRU with per-entry expiry."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any:
        entry = self._data.get(key)
        if entry is None:
            return MISSING
        if entry[0] < time.monotonic():
            del self._data[key]
            return MISSING
        self._data.move_to_end(key)
        return entry[1]

    def set(self, key: str, value: Any, ttl: float) -> None:
        self._data[key] = (time.monotonic() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


def _encode(value: Any) -> bytes:
    return b"B" + value if isinstance(value, bytes) else b"P" + pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _decode(raw: bytes) -> Any:
    return raw[1:] if raw[:1] == b"B" else pickle.loads(raw[1:])


class TieredCache:
    """The process-wide cache. `configure()` it once per process (the app lifespan, the worker)."""

    def __init__(self) -> None:
        self.memory = MemoryTier()
        self.default_ttl = 3600
        self.prefix = "voltway"
        self.redis: aioredis.Redis | None = None
        self.files: FileVersions | None = None
        self._redis_url: str | None = None
        # Namespaces whose version this process keeps current from the bump channel (no GET per lookup);
        # emptied whenever the subscription is not known to be live.
        self._pushed: set[str] = set()
        self._listening = False
        self._listener: asyncio.Task[None] | None = None
        self._versions: dict[str, int] = {}
        self._down_until = 0.0
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self.stats = {"hit": 0, "miss": 0, "error": 0}
        self._popular: Counter[tuple[str, str]] = Counter()

    # ------------------------------------------------------------------------------ setup
    def configure(
        self, *, redis_url: str | None, prefix: str = "voltway", default_ttl: int = 3600, max_entries: int = 10_000,
        sqlite_path: str | None = None,
    ) -> None:
        """Redis when `redis_url` is given; else versions in the SQLite file at `sqlite_path` when given (the
        embedded mode's processes share them), else in this process only."""
        self.memory = MemoryTier(max_entries)
        self.default_ttl = default_ttl
        self.prefix = prefix
        self._versions.clear()
        self._popular.clear()
        self._down_until = 0.0
        if self.files is not None:
            self.files.close()
        self.files = FileVersions(sqlite_path) if sqlite_path and not redis_url else None
        self._redis_url = redis_url
        self._pushed.clear()
        self._listening = False
        self.redis = (
            aioredis.Redis.from_url(
                redis_url, socket_connect_timeout=0.5, socket_timeout=0.5, health_check_interval=30
            )
            if redis_url
            else None
        )

    def start(self) -> None:
        """Follow the version bumps of other processes (Redis mode); call from the running event loop."""
        if self._redis_url and self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen(), name="voltway-cache-bumps")

    @property
    def _channel(self) -> str:
        return f"{self.prefix}:ns-bumps"

    async def _listen(self) -> None:
        while True:
            client = aioredis.Redis.from_url(self._redis_url, socket_connect_timeout=0.5, health_check_interval=5)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                # Only once the server confirms the subscription can a version read be trusted to be followed.
                while (await pubsub.get_message(timeout=5.0) or {}).get("type") != "subscribe":
                    pass
                self._listening = True
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is not None:
                        namespace, _, version = message["data"].decode().partition(" ")
                        self._versions[namespace] = max(int(version), self._versions.get(namespace, 0))
            except REDIS_ERRORS as exc:
                log.warning("cache bump channel lost, reading versions from Redis per lookup: %s", exc)
            finally:
                self._listening = False
                self._pushed.clear()
                await pubsub.aclose()
                await client.aclose()
            await asyncio.sleep(RETRY_AFTER)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self.files is not None:
            self.files.close()
            self.files = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    # ------------------------------------------------------------------------ breaker
    @property
    def redis_up(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._down_until

    def _redis_failed(self, exc: BaseException, namespace: str) -> None:
        self._pushed.clear()
        if time.monotonic() >= self._down_until:
            log.warning("redis cache tier unavailable, memory only for %.0fs: %s", RETRY_AFTER, exc)
        self._down_until = time.monotonic() + RETRY_AFTER
        self._count("error", namespace)

    def _count(self, result: str, namespace: str) -> None:
        """Count a lookup `hit`/`miss`, or a Redis `error`, under the namespace as the metric's cache name."""
        self.stats[result] += 1
        CACHE_LOOKUPS.labels(cache=namespace, result=result).inc()

    # ------------------------------------------------------------------------ versions
    def _vkey(self, namespace: str) -> str:
        return f"{self.prefix}:ns:{namespace}"

    async def version(self, namespace: str) -> tuple[int, bool]:
        """The namespace's current version and whether it came from Redis."""
        if self.files is not None:
            try:
                self._versions[namespace] = self.files.current(namespace)
            except sqlite3.Error as exc:  # e.g. a database not migrated yet: this process's versions
                log.warning("cache versions unreadable in %s: %s", self.files.path, exc)
                self.files.close()
                self.files = None
        known = self._versions.get(namespace, 0)
        if self.redis_up:
            if self._listening and namespace in self._pushed:
                return known, True  # kept current by the bump channel
            assert self.redis is not None
            following = self._listening
            try:
                raw = await self.redis.get(self._vkey(namespace))
                version = int(raw) if raw is not None else 0
                if version < known:
                    # Redis lost the version (restarted empty) or missed bumps made while it was away:
                    # move it past every version this process has seen, so no older entry can match.
                    version = int(await self.redis.eval(
                        _RAISE_VERSION, 1, self._vkey(namespace), known + 1, self._channel, namespace
                    ))
                    self.memory.clear()
            except REDIS_ERRORS as exc:
                self._redis_failed(exc, namespace)
            else:
                version = self._versions[namespace] = max(version, self._versions.get(namespace, 0))
                if following and self._listening:
                    self._pushed.add(namespace)
                return version, True
        return known, False

    async def invalidate(self, namespace: str) -> None:
        """Make every cached answer of `namespace` stale, in every process.

        While Redis is away only this process's version moves; `version()` carries it over to Redis later.
        """
        self._versions[namespace] = self._versions.get(namespace, 0) + 1
        if self.files is not None:
            self._versions[namespace] = await self.files.bump(namespace)
        if self.redis_up:
            assert self.redis is not None
            try:
                version = int(await self.redis.eval(_BUMP_VERSION, 1, self._vkey(namespace), self._channel, namespace))
                self._versions[namespace] = max(version, self._versions[namespace])
            except REDIS_ERRORS as exc:
                self._redis_failed(exc, namespace)

    # -------------------------------------------------------------------------- values
    def _rkey(self, namespace: str, version: int, key: str) -> str:
        return f"{self.prefix}:c:{namespace}:{version}:{hashlib.blake2b(key.encode(), digest_size=16).hexdigest()}"

    async def get(self, namespace: str, key: str, *, count_miss: bool = True) -> Any:
        """The cached value or `MISSING` (`count_miss=False` when the caller goes on to a counted lookup)."""
        version, shared = await self.version(namespace)
        return await self._lookup(namespace, version, shared, key, count_miss=count_miss)

    async def set(self, namespace: str, key: str, value: Any, ttl: float | None = None) -> None:
        version, shared = await self.version(namespace)
        await self._store(namespace, version, shared, key, value, ttl)

    async def _lookup(self, namespace: str, version: int, shared: bool, key: str, *, count_miss: bool = True) -> Any:
        mkey = f"{namespace}:{version}:{key}"
        value = self.memory.get(mkey)
        if value is not MISSING:
            self._count("hit", namespace)
            return value
        if shared and self.redis_up:
            assert self.redis is not None
            rkey = self._rkey(namespace, version, key)
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    raw, ms = await pipe.get(rkey).pttl(rkey).execute()
            except REDIS_ERRORS as exc:
                self._redis_failed(exc, namespace)
            else:
                if raw is not None:
                    value = _decode(raw)
                    self.memory.set(mkey, value, ms / 1000 if ms > 0 else DEGRADED_TTL)
                    self._count("hit", namespace)
                    return value
        if count_miss:
            self._count("miss", namespace)
        return MISSING

    async def _store(self, namespace: str, version: int, shared: bool, key: str, value: Any, ttl: float | None) -> None:
        ttl = self.default_ttl if ttl is None else ttl
        degraded = self.redis is not None and not shared
        self.memory.set(f"{namespace}:{version}:{key}", value, min(ttl, DEGRADED_TTL) if degraded else ttl)
        if shared and self.redis_up:
            assert self.redis is not None
            try:
                await self.redis.set(self._rkey(namespace, version, key), _encode(value), px=max(1, int(ttl * 1000)))
            except REDIS_ERRORS as exc:
                self._redis_failed(exc, namespace)

    async def get_or_set(
        self, namespace: str, key: str, producer: Callable[[], Awaitable[Any]], ttl: float | None = None
    ) -> Any:
        """The cached value, else `producer()` computed once (per process and, with Redis, across processes).

        The value is stored under the version read before computing it: if a write bumps the namespace
        meanwhile, the value (maybe read before the write) is filed under the old version and never served.
        """
        version, shared = await self.version(namespace)
        value = await self._lookup(namespace, version, shared, key)
        if value is not MISSING:
            return value
        flight_key = f"{namespace}:{version}:{key}"
        running = self._inflight.get(flight_key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved" warnings
        self._inflight[flight_key] = future
        try:
            value = await self._compute(namespace, version, shared, key, producer, ttl)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(value)
            return value
        finally:
            del self._inflight[flight_key]

    async def _compute(
        self, namespace: str, version: int, shared: bool, key: str, producer: Callable[[], Awaitable[Any]],
        ttl: float | None,
    ) -> Any:
        lock_key = token = None
        if shared and self.redis_up:
            assert self.redis is not None
            lock_key, token = f"{self.prefix}:lock:{namespace}:{version}:{key}", secrets.token_hex(8)
            try:
                if not await self.redis.set(lock_key, token, nx=True, px=LOCK_MS):
                    lock_key = None
                    value = await self._wait_for_holder(namespace, version, key)
                    if value is not MISSING:
                        return value
            except REDIS_ERRORS as exc:
                self._redis_failed(exc, namespace)
                lock_key = None
        try:
            value = await producer()
            await self._store(namespace, version, shared, key, value, ttl)
            return value
        finally:
            if lock_key is not None and self.redis_up:
                assert self.redis is not None
                try:
                    await self.redis.eval(_RELEASE_LOCK, 1, lock_key, token)
                except REDIS_ERRORS as exc:
                    self._redis_failed(exc, namespace)

    async def _wait_for_holder(self, namespace: str, version: int, key: str) -> Any:
        """Another process computes the value: poll Redis for it for up to LOCK_WAIT seconds."""
        assert self.redis is not None
        rkey = self._rkey(namespace, version, key)
        deadline = time.monotonic() + LOCK_WAIT
        while time.monotonic() < deadline and self.redis_up:
            await asyncio.sleep(0.02)
            raw = await self.redis.get(rkey)
            if raw is not None:
                return _decode(raw)
        return MISSING

    # ---------------------------------------------------------------------------- popularity
    def _pkey(self, namespace: str) -> str:
        return f"{self.prefix}:popular:{namespace}"

    async def note_miss(self, namespace: str, key: str) -> None:
        """Count a recomputed answer (Redis sorted set when shared, this process's counter otherwise)."""
        if self.redis_up:
            assert self.redis is not None
            try:
                await self.redis.zincrby(self._pkey(namespace), 1, key)
                return
            except REDIS_ERRORS as exc:
                self._redis_failed(exc, namespace)
        self._popular[(namespace, key)] += 1
        if len(self._popular) > 2 * POPULAR_KEEP:
            self._popular = Counter(dict(self._popular.most_common(POPULAR_KEEP)))

    async def popular(self, namespace: str, limit: int) -> list[str]:
        """The keys of `namespace` recomputed most often, most first (trims the Redis set as it goes)."""
        if self.redis_up:
            assert self.redis is not None
            try:
                await self.redis.zremrangebyrank(self._pkey(namespace), 0, -POPULAR_KEEP - 1)
                return [k.decode() for k in await self.redis.zrevrange(self._pkey(namespace), 0, limit - 1)]
            except REDIS_ERRORS as exc:
                self._redis_failed(exc, namespace)
        ranked = sorted(((n, k) for (ns, k), n in self._popular.items() if ns == namespace), reverse=True)
        return [k for _, k in ranked[:limit]]


cache = TieredCache()


def configure_cache(settings: Settings) -> None:
    """Configure this process's cache from the settings (the app, the worker and the CLI commands)."""
    cache.configure(
        redis_url=settings.redis_url,
        prefix=settings.redis_prefix,
        default_ttl=settings.cache_ttl,
        sqlite_path=sqlite_path(settings.database_url) if settings.is_sqlite else None,
    )


async def invalidate(namespace: str) -> None:
    """Make every cached answer of `namespace` stale (in every process when Redis is configured)."""
    await cache.invalidate(namespace)


def invalidate_soon(namespace: str) -> None:
    """`invalidate` from sync code running on the event loop's thread: the bump is scheduled at once."""
    cache._versions[namespace] = cache._versions.get(namespace, 0) + 1
    if cache.redis is not None or cache.files is not None:
        task = asyncio.get_running_loop().create_task(cache.invalidate(namespace))
        _background.add(task)
        task.add_done_callback(_background.discard)


async def invalidate_after_commit(session: AsyncSession, *namespaces: str) -> None:
    """Commit the session, then bump the namespaces (the usual ending of a write route).

    Bumping after the commit, not before, closes the window in which a reader could cache the pre-write
    state under the new version.
    """
    await session.commit()
    for namespace in namespaces:
        await cache.invalidate(namespace)


_ON_COMMIT = "voltway.cache.invalidate_on_commit"


def invalidate_on_commit(session: AsyncSession, *namespaces: str) -> None:
    """Bump the namespaces when the session's transaction commits (never on a rollback).

    For service code that writes inside a transaction it does not commit itself. The bump is scheduled
    right after the commit (in memory mode it takes effect at once).
    """
    session.info.setdefault(_ON_COMMIT, set()).update(namespaces)


@event.listens_for(OrmSession, "after_commit")
def _bump_after_commit(session: OrmSession) -> None:
    for namespace in session.info.pop(_ON_COMMIT, ()):
        invalidate_soon(namespace)


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_rolled_back(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # after a commit the set is already gone; what is left was rolled back
        session.info.pop(_ON_COMMIT, None)


_background: set[asyncio.Task[None]] = set()


def make_key(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], exclude: Iterable[str]) -> str:
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    parts = [f"{name}={value!r}" for name, value in bound.arguments.items() if name not in exclude]
    return f"{func.__module__}.{func.__qualname__}(" + ",".join(parts) + ")"


def cached(
    namespace: str, *, ttl: float | None = None, exclude: Iterable[str] = DEFAULT_EXCLUDE
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Cache a service function's result, keyed by its arguments (minus `exclude`), for `ttl` seconds.

    Works on `async def` functions and on plain functions. Plain ones use the memory tier only (they cannot
    await Redis): with Redis their version is this process's last view and entries live at most DEGRADED_TTL;
    with the SQLite file versions they see every bump at once.
    """
    excluded = frozenset(exclude)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                key = make_key(func, args, kwargs, excluded)
                return await cache.get_or_set(namespace, key, lambda: func(*args, **kwargs), ttl)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            version = cache.files.current(namespace) if cache.files else cache._versions.get(namespace, 0)
            mkey = f"{namespace}:{version}:{make_key(func, args, kwargs, excluded)}"
            value = cache.memory.get(mkey)
            if value is not MISSING:
                cache._count("hit", namespace)
                return value
            cache._count("miss", namespace)
            value = func(*args, **kwargs)
            lifetime = cache.default_ttl if ttl is None else ttl
            # Other processes' bumps reach sync callers only when an async read refreshes the version.
            cache.memory.set(mkey, value, lifetime if cache.redis is None else min(lifetime, DEGRADED_TTL))
            return value

        return sync_wrapper

    return decorate


# ------------------------------------------------------------------------------------- HTTP answers
ETAG_LENGTH = 18  # '"' + 16 hex digits + '"'
_SCOPE_KEY = "voltway.cache_key"
POPULAR_KEEP = 1000


def _tag(body: bytes) -> bytes:
    """The body behind its ETag: CRC-32 and length, 5 times cheaper than a cryptographic hash of an uncached
    answer (25 us for 35 KB with blake2b) and as good a validator: it only has to tell one URL's answers apart."""
    return b'"%08x%08x"' % (zlib.crc32(body), len(body) & 0xFFFFFFFF) + body


def scope_key(scope: Scope) -> str:
    """Path and query string with the parameters sorted, so equivalent URLs share one entry.

    Kept in the scope: `CacheFront` and the route it passes a miss to need the same key."""
    key: str | None = scope.get(_SCOPE_KEY)
    if key is None:
        raw = scope.get("query_string", b"")
        key = scope["path"]
        if raw:
            key += "?" + urlencode(sorted(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)))
        scope[_SCOPE_KEY] = key
    return key


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


async def cached_response(
    request: Request,
    produce: Callable[[], Awaitable[bytes]],
    *,
    namespace: str,
    ttl: float | None = None,
    max_age: int = 30,
    media_type: str = "application/json",
) -> Response:
    """A GET answer served from the cache as ready bytes, with `ETag` and `Cache-Control`; 304 on a match.

    `produce()` renders the body on a miss (its errors propagate and nothing is cached). Misses are counted
    per URL, so the warm-up job knows which answers are worth computing before anyone asks again.
    """
    if (cache.default_ttl if ttl is None else ttl) <= 0:  # CACHE_TTL=0: the answer cache is off
        value = _tag(await produce())
    else:
        key = scope_key(request.scope)

        async def tagged() -> bytes:
            await cache.note_miss(namespace, key)
            return _tag(await produce())

        value = await cache.get_or_set(namespace, key, tagged, ttl)
    etag = value[:ETAG_LENGTH].decode()
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(value[ETAG_LENGTH:], media_type=media_type, headers=headers)


class CacheFront:
    """ASGI middleware answering cache hits of `cached_response` routes before routing and validation.

    A GET whose path matches `paths` is looked up under the same key the route uses; a hit is sent at once
    (a key only exists once the route has validated and answered that exact request), a miss goes on to
    the route, which computes and stores the answer.
    """

    def __init__(self, app: ASGIApp, *, namespace: str, paths: re.Pattern[str], max_age: int = 30) -> None:
        self.app = app
        self.namespace = namespace
        self.paths = paths
        self.cache_control = f"public, max-age={max_age}".encode()
        # The route each path shape stands for, learnt from the first request routed normally, so that a
        # hit leaves it in the scope as routing would (the metrics around us label requests by route).
        self._routes: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        matched = self.paths.fullmatch(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if matched is None or cache.default_ttl <= 0:
            await self.app(scope, receive, send)
            return
        shape = re.sub(r"/[0-9]+$", "/{id}", matched.group(0))
        route = self._routes.get(shape)
        value = MISSING if route is None else await cache.get(self.namespace, scope_key(scope), count_miss=False)
        if value is MISSING:
            await self.app(scope, receive, send)
            if route is None and "route" in scope:
                self._routes[shape] = scope["route"]
            return
        scope["route"] = route
        etag = value[:ETAG_LENGTH]
        headers = [(b"etag", etag), (b"cache-control", self.cache_control)]
        if_none_match = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        if etag_matches(if_none_match.decode("latin-1") if if_none_match else None, etag.decode()):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        body = value[ETAG_LENGTH:]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
