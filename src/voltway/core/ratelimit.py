"""Rate limits per API key, per user or per IP, declared per route; shared through Redis when it is set.

Built on the `limits` library (moving-window strategy: exact, atomic Lua on Redis). When Redis fails the
limiter falls back to per-process memory counters for `RETRY_AFTER` seconds, then tries Redis again.

    @router.post("/exports", dependencies=[Depends(rate_limit("jobs.write", "60/minute", scope="key"))])
    await check_rate("login:alice", "5/minute")        # imperative form: counts, raises TooManyRequests

Every limit has a name; `RATE_LIMITS` (JSON, e.g. `{"jobs.write": "10/minute"}`) overrides the default of
any name without a code change.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Literal, TypeVar

import jwt
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.requests import Request
from starlette.responses import Response

from voltway.core.errors import TooManyRequests

log = logging.getLogger(__name__)

Scope = Literal["ip", "key", "user", "auto"]
RETRY_AFTER = 3.0
T = TypeVar("T")


@lru_cache(maxsize=256)
def parse_limit(limit: str) -> tuple[RateLimitItem, ...]:
    """`"10/second;500/hour"` -> the items (cached: routes parse their limit on every request)."""
    return tuple(parse_many(limit))


class RateLimiter:
    """The process-wide limiter: Redis storage when configured, memory otherwise (and while Redis is away)."""

    def __init__(self) -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.shared: MovingWindowRateLimiter | None = None
        self.overrides: dict[str, str] = {}
        self._down_until = 0.0

    def configure(self, *, redis_url: str | None, prefix: str = "voltway", overrides: dict[str, str] | None = None) -> None:
        self.memory = MovingWindowRateLimiter(MemoryStorage())
        self.overrides = dict(overrides or {})
        self._down_until = 0.0
        self.shared = (
            MovingWindowRateLimiter(
                RedisStorage(
                    "async+" + redis_url, implementation="redispy", key_prefix=f"{prefix}:rl", wrap_exceptions=True,
                    socket_timeout=0.5, socket_connect_timeout=0.5,
                )
            )
            if redis_url
            else None
        )

    def limit_of(self, name: str, default: str) -> tuple[RateLimitItem, ...]:
        return parse_limit(self.overrides.get(name, default))

    async def _run(self, action: Callable[[MovingWindowRateLimiter], Awaitable[T]]) -> T:
        if self.shared is not None and time.monotonic() >= self._down_until:
            try:
                return await action(self.shared)
            except StorageError as exc:
                log.warning("redis rate-limit storage unavailable, memory only for %.0fs: %s", RETRY_AFTER, exc)
                self._down_until = time.monotonic() + RETRY_AFTER
        return await action(self.memory)

    async def hit(self, items: tuple[RateLimitItem, ...], *identity: str) -> dict[str, str]:
        """Count one request against every item; raise TooManyRequests when one is exceeded.

        Returns the RateLimit-* headers of the tightest item.
        """
        return await self._run(lambda limiter: _hit(limiter, items, identity, count=True))

    async def test(self, items: tuple[RateLimitItem, ...], *identity: str) -> dict[str, str]:
        """Like `hit` without counting: raise TooManyRequests when an item is already used up."""
        return await self._run(lambda limiter: _hit(limiter, items, identity, count=False))

    async def clear(self, items: tuple[RateLimitItem, ...], *identity: str) -> None:
        async def clear_all(limiter: MovingWindowRateLimiter) -> None:
            for item in items:
                await limiter.clear(item, *identity)

        await self._run(clear_all)


async def _hit(
    limiter: MovingWindowRateLimiter, items: tuple[RateLimitItem, ...], identity: tuple[str, ...], *, count: bool
) -> dict[str, str]:
    tightest: dict[str, str] = {}
    tightest_remaining = math.inf
    for item in items:
        allowed = await (limiter.hit if count else limiter.test)(item, *identity)
        stats = await limiter.get_window_stats(item, *identity)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            retry_after = str(max(1, reset))
            raise TooManyRequests(
                f"rate limit exceeded: {item.amount} per {item.get_expiry()} s; retry in {retry_after} s",
                details={"limit": str(item), "retry_after": int(retry_after)},
                headers={**headers, "Retry-After": retry_after},
            )
        if stats.remaining < tightest_remaining:
            tightest, tightest_remaining = headers, stats.remaining
    return tightest


limiter = RateLimiter()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _user_subject(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if not auth.lower().startswith("bearer "):
        return None
    try:
        claims = jwt.decode(
            auth[7:].strip(), request.app.state.settings.resolved_secret_key(), algorithms=["HS256"],
            options={"verify_aud": False},
        )
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return str(subject) if subject is not None else None


def identify(request: Request, scope: Scope) -> str:
    """The counter identity of a request: `key:<hash>`, `user:<id>` or `ip:<addr>`.

    `key` and `user` fall back to the IP for requests without those credentials; `auto` tries key, user, IP.
    """
    if scope in ("key", "auto"):
        api_key = request.headers.get("x-api-key")
        if api_key:
            return "key:" + _digest(api_key)
    if scope in ("user", "auto"):
        subject = _user_subject(request)
        if subject is not None:
            return "user:" + subject
    return "ip:" + client_ip(request)


def rate_limit(name: str, default: str, *, scope: Scope = "auto") -> Callable[..., Awaitable[None]]:
    """A route dependency enforcing the limit `name` (default `default`, e.g. `"60/minute"`) per `scope`.

    Routes sharing a name share the counter. Successful responses carry the RateLimit-* headers (when the
    route returns data rather than a Response of its own).
    """
    parse_limit(default)  # a bad default fails at import time, not on the first request

    async def dependency(request: Request, response: Response) -> None:
        headers = await limiter.hit(limiter.limit_of(name, default), name, identify(request, scope))
        response.headers.update(headers)

    return dependency


async def check_rate(key: str, limit: str) -> dict[str, str]:
    """Count one event under `key` (e.g. `login:alice`); raises TooManyRequests once `limit` is exceeded."""
    return await limiter.hit(parse_limit(limit), "custom", key)


async def peek_rate(key: str, limit: str) -> dict[str, str]:
    """Raise TooManyRequests if `key` has used up `limit`, without counting (e.g. before a sign-in attempt)."""
    return await limiter.test(parse_limit(limit), "custom", key)


async def clear_rate(key: str, limit: str) -> None:
    """Forget the events counted under `key` (e.g. after a successful sign-in)."""
    await limiter.clear(parse_limit(limit), "custom", key)
